"""Fixtures for the reference service: the app on a test client, fake upstreams on loopback.

The fakes stand for citizen services and the card gateway as the contracts describe them (and no
more): the reference service must work against anything that honours ``contracts/``. They run on
real sockets (``ServerThread`` on port 0) because the reference calls them over HTTP.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, jsonify, request

from reference.app import create_app
from simulators.common.clock import iso, parse_instant
from simulators.common.config import load_settings
from simulators.common.http import encode_json
from simulators.common.server import ServerThread
from simulators.common.signing import sign_headers

MONDAY_10 = "2026-12-07T10:00:00+02:00"


def make_service_request(number: str = "SR-01-00000001", *, status: str = "ASSESSED",
                    governorate: str = "01") -> dict[str, Any]:
    """A renewal of a building permit: 500.00 base + 250.00 area (BLD) + 105.00 VAT = 855.00."""
    def line(code: str, amount: str, pool: str, chapter: str, item: str, account: str) -> dict[str, str]:
        return {"code": code, "name_ar": f"رسم {code}", "name_en": f"{code} fee", "amount": amount,
                "revenue_pool": pool, "budget_chapter": chapter, "budget_item": item,
                "settlement_account": account}

    return {
        "request_number": number, "status": status, "governorate_code": governorate, "service_code": "BPR",
        "citizen": {"name": "أحمد محمد علي", "national_id": "29001010100015", "mobile": "01012345678"},
        "fee_lines": [line("BASE", "500.00", "BLD", "3", "3-2-1", "0101001"),
                      line("AREA", "250.00", "BLD", "3", "3-2-1", "0101001"),
                      line("VAT", "105.00", "VAT", "1", "1-3-1", "0109001")],
        "total": "855.00", "currency": "EGP", "created_at": "2026-12-01T08:00:00.000Z",
    }


class FakeCitizenServices:
    """Answers service-request inquiries and records confirmations and cancellations."""

    def __init__(self) -> None:
        self.requests: dict[str, dict[str, Any]] = {}
        self.confirmations: list[dict[str, Any]] = []
        self.cancellations: list[dict[str, Any]] = []
        self.confirmation_statuses: list[int] = []  # answers to give first; 201 afterwards
        self.down = False
        self.lock = threading.Lock()
        app = Flask("fake_citizen_services")

        @app.get("/api/service-requests/<number>")
        def get_request(number: str):  # type: ignore[no-untyped-def]
            if self.down:
                return jsonify(error={"code": "DOWN", "message": "down"}), 503
            found = self.requests.get(number)
            if found is None:
                return jsonify(error={"code": "NOT_FOUND", "message": "no such request"}), 404
            return jsonify(found)

        @app.post("/api/payment-confirmations")
        def confirm():  # type: ignore[no-untyped-def]
            with self.lock:
                status = self.confirmation_statuses.pop(0) if self.confirmation_statuses else 201
                self.confirmations.append({"status": status, "body": request.get_json(),
                                           "headers": dict(request.headers), "raw": request.get_data()})
            if status >= 300:
                return jsonify(error={"code": "CONFLICT" if status == 409 else "DOWN", "message": "x"}), status
            body = request.get_json()
            return jsonify(confirmation_id=f"CNF-{body['payment_id']}", payment_id=body["payment_id"],
                           request_number=body["request_number"], status="CONFIRMED",
                           received_at="2026-12-07T08:00:00.000Z"), status

        @app.post("/api/payment-cancellations")
        def cancel():  # type: ignore[no-untyped-def]
            self.cancellations.append(request.get_json())
            return jsonify(status="CANCELLED"), 200

        self.app = app

    def delivered(self) -> list[dict[str, Any]]:
        return [c["body"] for c in self.confirmations if 200 <= c["status"] < 300]


class FakeCardGateway:
    """Opens sessions and answers the merchant's session look-ups; tests decide the outcome."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.lookups: list[dict[str, Any]] = []
        self.down = False
        self._ids = itertools.count(1)
        app = Flask("fake_card_gateway")

        @app.post("/api/sessions")
        def open_session():  # type: ignore[no-untyped-def]
            if self.down:
                return jsonify(error={"code": "DOWN", "message": "down"}), 503
            body = request.get_json()
            self.created.append({"body": body, "headers": dict(request.headers), "raw": request.get_data()})
            session_id = f"CS-{next(self._ids):06d}"
            session = {"session_id": session_id, "merchant_request_id": body["merchant_request_id"],
                       "merchant_reference": body["merchant_reference"], "status": "OPEN",
                       "amount": body["amount"], "collection_fee": "0.00", "total": body["amount"],
                       "currency": "EGP", "payment_url": f"http://gateway.test/pay/{session_id}",
                       "expires_at": "2026-12-08T08:00:00.000Z", "transaction_id": None}
            self.sessions[session_id] = session
            return jsonify(session), 201

        @app.get("/api/sessions/<session_id>")
        def get_session(session_id: str):  # type: ignore[no-untyped-def]
            self.lookups.append({"session_id": session_id, "headers": dict(request.headers)})
            if self.down:
                return jsonify(error={"code": "DOWN", "message": "down"}), 503
            found = self.sessions.get(session_id)
            if found is None:
                return jsonify(error={"code": "NOT_FOUND", "message": "no such session"}), 404
            return jsonify(found)

        self.app = app

    def approve(self, session_id: str, transaction_id: str) -> None:
        self.sessions[session_id].update(status="APPROVED", transaction_id=transaction_id)


class Reference:
    """The reference service on a test client, with the helpers every test needs."""

    def __init__(self, app: Flask, settings: dict[str, Any]) -> None:
        self.app = app
        self.settings = settings
        self.client = app.test_client()

    @staticmethod
    def at(instant: str) -> str:
        """The wire form (UTC, Z) of an instant written in Cairo time in a test."""
        return iso(parse_instant(instant))

    def now(self) -> str:
        return self.client.get("/_admin/clock").get_json()["now"]

    def set_clock(self, instant: str) -> dict[str, Any]:
        response = self.client.post("/_admin/clock", json={"set": instant})
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def advance(self, duration: str) -> dict[str, Any]:
        return self.client.post("/_admin/clock", json={"advance": duration}).get_json()

    def tick(self) -> dict[str, Any]:
        return self.client.post("/_admin/tick").get_json()

    def signed(self, path: str, body: Any, secret: str, *, raw: bytes | None = None,
               signed_at: str | None = None) -> Any:
        data = raw if raw is not None else encode_json(body)
        headers = sign_headers(self.settings["secrets"][secret], data, parse_instant(signed_at or self.now()))
        headers["Content-Type"] = "application/json"
        return self.client.post(path, data=data, headers=headers)

    def create_order(self, request_number: str = "SR-01-00000001") -> dict[str, Any]:
        response = self.client.post("/api/orders", json={"request_number": request_number})
        assert response.status_code in (200, 201), response.get_json()
        return response.get_json()

    def order(self, bill_reference: str) -> dict[str, Any]:
        return self.client.get(f"/api/orders/{bill_reference}").get_json()

    def khales_payment(self, order: dict[str, Any], txn: str = "KH-TXN-1", **changes: Any) -> Any:
        body = {"khales_transaction_id": txn, "bill_reference": order["bill_reference"],
                "amount": order["amount"], "currency": "EGP", "outlet_id": "OUT-01-001", "paid_at": self.now()}
        body.update(changes)
        return self.signed("/khales/payments", body, "khales_biller")


@pytest.fixture
def citizen_services() -> Iterator[FakeCitizenServices]:
    fake = FakeCitizenServices()
    fake.requests["SR-01-00000001"] = make_service_request()
    server = ServerThread(fake.app).start()
    fake.url = server.url  # type: ignore[attr-defined]
    yield fake
    server.stop()


@pytest.fixture
def card_gateway() -> Iterator[FakeCardGateway]:
    fake = FakeCardGateway()
    server = ServerThread(fake.app).start()
    fake.url = server.url  # type: ignore[attr-defined]
    yield fake
    server.stop()


@pytest.fixture
def settings(tmp_path: Any, citizen_services: FakeCitizenServices, card_gateway: FakeCardGateway
             ) -> dict[str, Any]:
    return load_settings(overrides={
        "reference": {"database": str(tmp_path / "ref.sqlite3"), "ticker": False},
        "urls": {"reference": "http://127.0.0.1:9", "citizen_services": citizen_services.url,  # type: ignore[attr-defined]
                 "card_gateway": card_gateway.url},  # type: ignore[attr-defined]
    })


@pytest.fixture
def ref(settings: dict[str, Any]) -> Iterator[Reference]:
    app = create_app(settings)
    reference = Reference(app, settings)
    reference.set_clock(MONDAY_10)
    yield reference
    app.extensions["tahseel"].stop()


@pytest.fixture
def service_request() -> Any:
    """The factory of assessed service requests (tests import nothing from conftest)."""
    return make_service_request
