"""Fixtures for the Khales simulator: a fake biller, a fake e-finance Channel API and a fake
settlement on real loopback sockets.

The fakes are built on :class:`simulators.common.component.Component`, so they verify signatures
against their own (simulated) clock, journal what they receive, and take declared faults (an
inbound ``delay`` on the biller is how a real timeout is made). They answer per the ``kh-*`` and
``st-collection`` contracts, deliberately small: they are test doubles, not the reference service.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Blueprint, Flask, jsonify, request
from flask.testing import FlaskClient

from simulators.common import signing
from simulators.common.component import Component, read_json
from simulators.common.config import load_settings
from simulators.common.money import format_amount, parse_amount
from simulators.common.server import ServerThread
from simulators.khales.app import create_app

CLOCK_AT = "2026-03-01T10:00:00+02:00"  # Sunday 1 March 2026, 10:00 in Cairo
UNPAID_BILL = "100000000017"
PAID_BILL = "100000000025"
EXPIRED_BILL = "100000000033"
BROKEN_BILL = "100000000041"  # the biller's inquiry answer breaks the contract
BIG_BILL = "100000000058"     # above the surcharge threshold
PARTS_BILL = "100000000066"   # the biller takes parts of it (a partial payment leaves the rest due)


@dataclass
class RunningFake:
    """A fake party running on a loopback server: its URL and its component."""

    server: ServerThread | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def component(self) -> Component:
        assert self.server is not None
        return self.server.app.extensions["tahseel"]


@dataclass
class FakeBiller(RunningFake):
    """The collection service as Khales sees it: bills by reference, and what it was sent."""

    bills: dict[str, dict[str, Any]] = field(default_factory=dict)
    inquiries: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    reversals: list[dict[str, Any]] = field(default_factory=list)
    accepted: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    # Payments whose answer is held back (the work is done first) until ``release`` is set or a
    # few seconds pass: the caller, with a shorter timeout, sees a real timeout.
    hold_payment_answers: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class FakeEfinance(RunningFake):
    """e-finance's Channel API as Khales sees it (cg-channel-* contracts): payment requests by
    PaymentRequestNumber, payments once per Khales transaction id, and what it was sent."""

    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    inquiries: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    reversals: list[dict[str, Any]] = field(default_factory=list)
    accepted: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class FakeSettlement(RunningFake):
    collections: list[dict[str, Any]] = field(default_factory=list)


def _error(status: int, code: str, message: str, field_name: str | None = None) -> tuple[Any, int]:
    body: dict[str, Any] = {"code": code, "message": message}
    if field_name:
        body["field"] = field_name
    return jsonify(error=body), status


def _default_bills() -> dict[str, dict[str, Any]]:
    def bill(status: str, amount: str, **extra: Any) -> dict[str, Any]:
        return {"status": status, "amount_due": amount, "collection_fee": "0.00", "total_due": amount,
                "currency": "EGP", "payer_name": "منى علي حسن", "expires_at": "2026-03-04T08:00:00.000Z",
                "governorate_code": "21", "service_code": "TUC", **extra}

    return {UNPAID_BILL: bill("UNPAID", "360.00"), PAID_BILL: bill("PAID", "360.00"),
            EXPIRED_BILL: bill("EXPIRED", "360.00"), BROKEN_BILL: bill("UNPAID", "360.00", amount_due=360),
            BIG_BILL: bill("UNPAID", "922.00", service_code="BPR", governorate_code="01"),
            PARTS_BILL: bill("UNPAID", "100.00", partial_payments="accept")}


def make_fake_biller(settings: dict[str, Any]) -> FakeBiller:
    state = FakeBiller(bills=_default_bills())
    component = Component("reference", settings)
    bp = Blueprint("fake_biller", __name__, url_prefix="/khales")

    def verify() -> None:
        signing.verify(component.secret("khales_biller"), request.headers, request.get_data(cache=True),
                       component.clock.now(), settings["signature_window_seconds"])

    @bp.post("/inquiry")
    def inquiry():  # type: ignore[no-untyped-def]
        verify()
        body = read_json("kh-inquiry.schema.json")
        with state.lock:
            state.inquiries.append(body)
            bill = state.bills.get(body["bill_reference"])
            if bill is None:
                return _error(404, "UNKNOWN_BILL", f"no bill {body['bill_reference']}", "bill_reference")
            return jsonify(dict(bill, inquiry_id=body["inquiry_id"], bill_reference=body["bill_reference"]))

    @bp.post("/payments")
    def payment():  # type: ignore[no-untyped-def]
        verify()
        body = read_json("kh-payment.schema.json")
        with state.lock:
            answer = _pay(body)
            hold = state.hold_payment_answers > 0
            state.hold_payment_answers -= 1 if hold else 0
        if hold:
            state.release.wait(5)
        return answer

    def _pay(body: dict[str, Any]) -> tuple[Any, int]:
        """Pay once per khales_transaction_id; the same id and body replays the answer."""
        state.payments.append(body)
        tx_id = body["khales_transaction_id"]
        if tx_id in state.accepted:
            first, answer = state.accepted[tx_id]
            if first != body:
                return _error(409, "CONFLICT", f"{tx_id} was paid with another body", "khales_transaction_id")
            return jsonify(answer), 200
        bill = state.bills.get(body["bill_reference"])
        if bill is None:
            return _error(404, "UNKNOWN_BILL", "no such bill", "bill_reference")
        if bill["status"] not in ("UNPAID", "PARTIALLY_PAID"):
            return _error(409, "ALREADY_PAID", "the bill is not payable", "bill_reference")
        due, amount = parse_amount(bill["total_due"]), parse_amount(body["amount"])
        if amount > due or (amount < due and bill.get("partial_payments") != "accept"):
            return _error(422, "AMOUNT_MISMATCH", "amount is not the total due", "amount")
        rest = format_amount(due - amount)
        bill.update(status="PAID" if amount == due else "PARTIALLY_PAID", amount_due=rest, total_due=rest)
        answer = {"khales_transaction_id": tx_id, "payment_id": f"PAY-{len(state.accepted) + 1:04d}",
                  "bill_reference": body["bill_reference"], "status": "ACCEPTED", "amount": body["amount"],
                  "receipt_number": f"R{len(state.accepted) + 1:08d}", "outstanding_amount": rest,
                  "bill_status": bill["status"]}
        state.accepted[tx_id] = (body, answer)
        return jsonify(answer), 201

    @bp.post("/reversals")
    def reversal():  # type: ignore[no-untyped-def]
        verify()
        body = read_json("kh-reversal.schema.json")
        with state.lock:
            state.reversals.append(body)
            accepted = state.accepted.pop(body["khales_transaction_id"], None)
            if accepted is not None:
                state.bills[body["bill_reference"]]["status"] = "UNPAID"
            return jsonify(reversal_id=body["reversal_id"], khales_transaction_id=body["khales_transaction_id"],
                           status="REVERSED" if accepted else "NOT_FOUND")

    app = Flask("fake_biller")
    app.register_blueprint(bp)
    component.install(app)
    state.server = ServerThread(app).start()
    return state


CHANNEL_REQUEST = "700000000019"  # an unpaid Channel payment request at the fake e-finance


def make_fake_efinance(settings: dict[str, Any]) -> FakeEfinance:
    state = FakeEfinance(requests={CHANNEL_REQUEST: {"status": "UNPAID", "amount_due": "240.50",
                                                     "collection_fee": "0.00", "total_due": "240.50"}})
    component = Component("card_gateway", settings)
    bp = Blueprint("fake_efinance", __name__, url_prefix="/api/channel")

    def verify() -> None:
        signing.verify(component.secret("efinance_channel"), request.headers, request.get_data(cache=True),
                       component.clock.now(), settings["signature_window_seconds"])

    @bp.post("/inquiry")
    def inquiry():  # type: ignore[no-untyped-def]
        verify()
        body = read_json("cg-channel-inquiry.schema.json")
        with state.lock:
            state.inquiries.append(body)
            found = state.requests.get(body["payment_request_number"])
            if found is None:
                return _error(404, "PAYMENT_REQUEST_NOT_FOUND", "no such request", "payment_request_number")
            return jsonify(dict(found, inquiry_id=body["inquiry_id"], currency="EGP",
                                payment_request_number=body["payment_request_number"],
                                expires_at="2026-03-04T08:00:00.000Z", governorate_code="01", sender_id="9001",
                                sender_name="Tahseel test sender"))

    @bp.post("/payments")
    def payment():  # type: ignore[no-untyped-def]
        verify()
        body = read_json("cg-channel-payment.schema.json")
        with state.lock:
            state.payments.append(body)
            tx_id = body["khales_transaction_id"]
            if tx_id in state.accepted:
                first, answer = state.accepted[tx_id]
                if first != body:
                    return _error(409, "IDEMPOTENCY_CONFLICT", "another body", "khales_transaction_id")
                return jsonify(answer), 200
            found = state.requests[body["payment_request_number"]]
            if found["status"] != "UNPAID":
                return _error(409, "ALREADY_PAID", "paid", "payment_request_number")
            found["status"] = "PAID"
            answer = {"khales_transaction_id": tx_id, "payment_id": f"TX{len(state.accepted) + 1:012d}",
                      "payment_request_number": body["payment_request_number"], "status": "ACCEPTED",
                      "amount": body["amount"]}
            state.accepted[tx_id] = (body, answer)
            return jsonify(answer), 201

    @bp.post("/reversals")
    def reversal():  # type: ignore[no-untyped-def]
        verify()
        body = read_json("cg-channel-reversal.schema.json")
        with state.lock:
            state.reversals.append(body)
            accepted = state.accepted.get(body["khales_transaction_id"])
            if accepted is not None:
                state.requests[accepted[0]["payment_request_number"]]["status"] = "REFUNDED"
            return jsonify(reversal_id=body["reversal_id"], khales_transaction_id=body["khales_transaction_id"],
                           status="REVERSED" if accepted else "NOT_FOUND")

    app = Flask("fake_efinance")
    app.register_blueprint(bp)
    component.install(app)
    state.server = ServerThread(app).start()
    return state


def make_fake_settlement(settings: dict[str, Any]) -> FakeSettlement:
    state = FakeSettlement()
    component = Component("settlement", settings)
    bp = Blueprint("fake_settlement", __name__, url_prefix="/api")

    @bp.post("/collections")
    def collections():  # type: ignore[no-untyped-def]
        signing.verify(component.secret("collections_feed"), request.headers, request.get_data(cache=True),
                       component.clock.now(), settings["signature_window_seconds"])
        body = read_json("st-collection.schema.json")
        state.collections.append(body)
        return jsonify(collection_id=body["collection_id"], status="RECEIVED"), 201

    app = Flask("fake_settlement")
    app.register_blueprint(bp)
    component.install(app)
    state.server = ServerThread(app).start()
    return state


@pytest.fixture
def fake_biller() -> Iterator[FakeBiller]:
    biller = make_fake_biller(load_settings())
    biller.component.clock.set(_instant(CLOCK_AT))
    yield biller
    biller.release.set()
    assert biller.server is not None
    biller.server.stop()


@pytest.fixture
def fake_efinance() -> Iterator[FakeEfinance]:
    efinance = make_fake_efinance(load_settings())
    efinance.component.clock.set(_instant(CLOCK_AT))
    yield efinance
    assert efinance.server is not None
    efinance.server.stop()


@pytest.fixture
def fake_settlement() -> Iterator[FakeSettlement]:
    settlement = make_fake_settlement(load_settings())
    settlement.component.clock.set(_instant(CLOCK_AT))
    yield settlement
    assert settlement.server is not None
    settlement.server.stop()


def _instant(text: str) -> Any:
    from simulators.common.clock import parse_instant

    return parse_instant(text)


@pytest.fixture
def khales_factory() -> Iterator[Callable[..., FlaskClient]]:
    """Build Khales apps (test clients) from settings overrides; every app is stopped afterwards."""
    apps: list[Flask] = []

    def build(overrides: dict[str, Any] | None = None) -> FlaskClient:
        app = create_app(load_settings(overrides=overrides))
        apps.append(app)
        client = app.test_client()
        assert client.post("/_admin/clock", json={"set": CLOCK_AT}).status_code == 200
        return client

    yield build
    for app in apps:
        app.extensions["tahseel"].stop()


@pytest.fixture
def khales(khales_factory: Callable[..., FlaskClient], fake_biller: FakeBiller,
           fake_settlement: FakeSettlement) -> FlaskClient:
    """Khales pointed at the fake biller and the fake settlement, clocks together."""
    return khales_factory({"urls": {"reference": fake_biller.url, "settlement": fake_settlement.url},
                           "khales": {"biller_timeout_seconds": 2}})


@pytest.fixture
def bills() -> SimpleNamespace:
    """The fake biller's bill references, by what they are for."""
    return SimpleNamespace(unpaid=UNPAID_BILL, paid=PAID_BILL, expired=EXPIRED_BILL, broken=BROKEN_BILL,
                           big=BIG_BILL, parts=PARTS_BILL, clock_at=CLOCK_AT)


def add_fault(client: FlaskClient, **spec: Any) -> dict[str, Any]:
    response = client.post("/_admin/faults", json=spec)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture
def fault() -> Callable[..., dict[str, Any]]:
    """Declare a fault on a Khales test client (outbound faults hit the biller link)."""
    return add_fault
