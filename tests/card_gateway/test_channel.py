"""The cash network's Channel API at e-finance (issue 3; assumed API, README "Channel"): inquiry,
payment idempotent by the Khales transaction id, reversal; signed with ``efinance_channel``; every
refusal a 4xx naming the field, and nothing changes. In-process client on the simulated clock; the
whole path with the Khales simulator is ``test_channel_khales.py``."""

from __future__ import annotations

from typing import Any

import pytest

from simulators.common.contracts import validate
from simulators.common.http import encode_json
from simulators.common.signing import sign_headers

from .test_efinance_initiation import PASSWORD, S2S_PATH, parse_response, srn_of
from .test_mechanisms import initiate, mechanism_xml, sender  # noqa: F401 (fixtures)

OUTLET = "KH-01-0001"


class Outlet:
    """Khales as the gateway sees it: signs each call with the efinance_channel secret."""

    def __init__(self, client: Any, app: Any) -> None:
        self.client = client
        self.component = app.extensions["tahseel"]

    def post(self, path: str, body: dict[str, Any], secret: str | None = None) -> Any:
        raw = encode_json(body)
        headers = sign_headers(secret or self.component.secret("efinance_channel"), raw, self.component.clock.now())
        headers["Content-Type"] = "application/json"
        return self.client.post(f"/api/channel/{path}", data=raw, headers=headers)

    def inquire(self, number: str, **changes: Any) -> Any:
        return self.post("inquiry", {"payment_request_number": number, "inquiry_id": "KHI000000000001",
                                     "outlet_id": OUTLET, **changes})

    def pay(self, number: str, tx: str = "KHT000000000001", amount: str = "150.00", **changes: Any) -> Any:
        return self.post("payments", {"payment_request_number": number, "khales_transaction_id": tx,
                                      "amount": amount, "outlet_id": OUTLET, **changes})

    def reverse(self, tx: str, reversal_id: str = "KHR000000000001", **changes: Any) -> Any:
        return self.post("reversals", {"reversal_id": reversal_id, "khales_transaction_id": tx, **changes})


@pytest.fixture
def outlet(client: Any, app: Any) -> Outlet:
    return Outlet(client, app)


def state(app: Any, number: str) -> tuple[Any, ...]:
    """What a refused call must not change: the session and the request's deliveries and refunds."""
    gateway = app.extensions["card_gateway_efinance"]
    record = gateway.by_payment_request_number(number)
    session = gateway.model.get_session(record.session_id)
    return (session.status, session.attempts, session.transaction_id, len(session.deliveries),
            len(record.confirmations), len(record.refunds))


def error_of(response: Any) -> tuple[int, str, str]:
    body = response.get_json()["error"]
    return response.status_code, body["code"], body.get("field")


def test_server_to_server_channel_request_is_inquired_and_paid(client, sender, outlet, app):  # noqa: F811
    srn = srn_of(0xCA5)
    answer = client.post(S2S_PATH, data=sender.fields(srn, xml=mechanism_xml(sender, srn, "Channel")))
    number = parse_response(answer.data)["PaymentRequestNumber"]

    inquiry = outlet.inquire(number)
    assert inquiry.status_code == 200
    body = inquiry.get_json()
    validate("cg-channel-inquiry-result.schema.json", body)
    assert (body["status"], body["amount_due"], body["collection_fee"], body["total_due"]) == (
        "UNPAID", "150.00", "0.00", "150.00")
    assert (body["governorate_code"], body["governorate_name_en"], body["sender_id"]) == ("01", "Cairo", "9001")
    assert body["sender_name"] == "Tahseel test sender" and body["inquiry_id"] == "KHI000000000001"

    paid = outlet.pay(number)
    assert paid.status_code == 201
    receipt = paid.get_json()
    validate("cg-channel-payment-result.schema.json", receipt)
    assert (receipt["status"], receipt["amount"], receipt["payment_request_number"]) == ("ACCEPTED", "150.00", number)
    assert receipt["payment_id"].startswith("TX")
    assert outlet.inquire(number).get_json()["status"] == "PAID"
    session = app.extensions["card_gateway_efinance"].model.get_session(
        app.extensions["card_gateway_efinance"].by_payment_request_number(number).session_id)
    assert (session.status, session.last_mechanism) == ("APPROVED", "Channel")
    assert session.channel_payment == {"khales_transaction_id": "KHT000000000001", "outlet_id": OUTLET}
    log = client.get("/api/channel/payments/KHT000000000001").get_json()
    assert log["answer"] == receipt and log["reversal"] is None


def test_the_same_transaction_again_answers_the_same_and_another_body_is_a_conflict(initiate, outlet, app):  # noqa: F811
    _, _, number = initiate("Channel")
    first = outlet.pay(number)
    again = outlet.pay(number)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    before = state(app, number)
    assert before[1] == 1  # paid once
    conflict = outlet.pay(number, outlet_id="KH-01-0002")
    assert error_of(conflict) == (409, "IDEMPOTENCY_CONFLICT", "khales_transaction_id")
    other = outlet.pay(number, tx="KHT000000000002")
    assert error_of(other) == (409, "ALREADY_PAID", "payment_request_number")
    assert state(app, number) == before


@pytest.mark.parametrize(("changes", "expected"), [
    ({"amount": "149.99"}, (422, "AMOUNT_MISMATCH", "amount")),
    ({"amount": "150"}, (422, "VALIDATION_FAILED", "amount")),
    ({"outlet_id": None}, (422, "VALIDATION_FAILED", "outlet_id")),
    ({"currency": "USD"}, (422, "VALIDATION_FAILED", "currency")),
    ({"payment_request_number": "12345"}, (422, "VALIDATION_FAILED", "payment_request_number")),
    ({"extra": "x"}, (422, "VALIDATION_FAILED", "extra")),
])
def test_bad_payments_are_4xx_naming_the_field_and_change_nothing(initiate, outlet, app, changes, expected):  # noqa: F811
    _, _, number = initiate("Channel")
    before = state(app, number)
    body = {"payment_request_number": number, "khales_transaction_id": "KHT000000000009", "amount": "150.00",
            "outlet_id": OUTLET, **changes}
    response = outlet.post("payments", {k: v for k, v in body.items() if v is not None})
    assert error_of(response) == expected
    assert state(app, number) == before
    assert outlet.pay(number, tx="KHT000000000009").status_code == 201  # the id was not used up


def test_an_unsigned_or_wrongly_signed_call_is_401_before_the_body_is_read(initiate, outlet, app):  # noqa: F811
    _, _, number = initiate("Channel")
    body = {"payment_request_number": number, "khales_transaction_id": "KHT000000000001", "amount": "150.00",
            "outlet_id": OUTLET}
    wrong = outlet.post("payments", body, secret="not-the-efinance-channel-secret")
    assert error_of(wrong) == (401, "BAD_SIGNATURE", "X-Tahseel-Signature")
    unsigned = outlet.client.post("/api/channel/inquiry", json={"payment_request_number": number})
    assert error_of(unsigned)[:2] == (401, "SIGNATURE_MISSING")
    assert state(app, number)[0] == "OPEN"


def test_unknown_and_not_channel_requests_are_refused(initiate, outlet, client):  # noqa: F811
    assert error_of(outlet.inquire("999999999999")) == (404, "PAYMENT_REQUEST_NOT_FOUND", "payment_request_number")
    assert error_of(outlet.pay("999999999999"))[:2] == (404, "PAYMENT_REQUEST_NOT_FOUND")
    for type_ in ("Card", "Meeza", "MobileWallet"):
        _, _, number = initiate(type_)
        assert error_of(outlet.inquire(number)) == (409, "CHANNEL_NOT_OFFERED", "payment_request_number")
        assert error_of(outlet.pay(number))[:2] == (409, "CHANNEL_NOT_OFFERED")


def test_not_set_is_payable_at_an_outlet_once_the_citizen_picked_channel(initiate, outlet, client):  # noqa: F811
    _, session_id, number = initiate("NotSet")
    assert error_of(outlet.inquire(number))[:2] == (409, "CHANNEL_NOT_OFFERED")
    assert client.get(f"/pay/{session_id}?mechanism=Channel").status_code == 200
    assert outlet.inquire(number).get_json()["status"] == "UNPAID"
    assert outlet.pay(number).status_code == 201
    # Paid in cash: the page now answers 409 like any paid session.
    assert client.get(f"/pay/{session_id}").status_code == 409


def test_a_request_paid_by_card_first_is_already_paid_at_the_outlet(initiate, outlet, client):  # noqa: F811
    _, session_id, number = initiate("NotSet")
    client.get(f"/pay/{session_id}?mechanism=Channel")
    client.post(f"/pay/{session_id}", data={"card_number": "4111111111111111", "expiry": "12/30", "cvv": "123"})
    assert outlet.inquire(number).get_json()["status"] == "PAID"
    assert error_of(outlet.pay(number)) == (409, "ALREADY_PAID", "payment_request_number")


def test_expired_and_cancelled_requests_are_refused(initiate, outlet, client, sender, app):  # noqa: F811
    _, _, cancelled = initiate("Channel")
    form = {"SenderID": "9001", "SenderPassword": sender.rsa(PASSWORD.encode()), "PaymentRequestNumber": cancelled}
    assert client.post("/CardPaymentRequestIntiation/Cancel", data=form).status_code == 200
    assert outlet.inquire(cancelled).get_json()["status"] == "CANCELLED"
    assert error_of(outlet.pay(cancelled)) == (410, "PAYMENT_REQUEST_CANCELLED", "payment_request_number")

    _, _, expiring = initiate("Channel")
    client.post("/_admin/clock", json={"advance": "2d"})
    assert outlet.inquire(expiring).get_json()["status"] == "EXPIRED"
    response = outlet.pay(expiring)
    assert error_of(response) == (410, "PAYMENT_REQUEST_EXPIRED", "payment_request_number")
    assert state(app, expiring)[:2] == ("OPEN", 0)


def test_a_reversal_refunds_the_payment_in_full_and_is_idempotent(initiate, outlet, app, client):  # noqa: F811
    _, _, number = initiate("Channel")
    receipt = outlet.pay(number).get_json()
    reversed_ = outlet.reverse("KHT000000000001", reason="NO_ANSWER", payment_request_number=number)
    assert reversed_.status_code == 201
    answer = reversed_.get_json()
    validate("cg-channel-reversal-result.schema.json", answer)
    assert (answer["status"], answer["refunded_amount"], answer["payment_request_number"]) == (
        "REVERSED", "150.00", number)
    again = outlet.reverse("KHT000000000001", reason="NO_ANSWER", payment_request_number=number)
    assert (again.status_code, again.get_json()) == (200, answer)
    conflict = outlet.reverse("KHT000000000002")
    assert error_of(conflict) == (409, "IDEMPOTENCY_CONFLICT", "reversal_id")
    # Another reversal id for the same payment refunds nothing more.
    second = outlet.reverse("KHT000000000001", reversal_id="KHR000000000002").get_json()
    assert (second["status"], second["refund_number"]) == ("REVERSED", answer["refund_number"])
    record = app.extensions["card_gateway_efinance"].by_payment_request_number(number)
    assert [(r.amount, r.refund_request_number) for r in record.refunds] == [
        (15000, f"CH-{receipt['transaction_number']}")]
    assert outlet.inquire(number).get_json()["status"] == "REFUNDED"
    # The payment replayed after its reversal is refused: the outlet gave the cash back.
    assert error_of(outlet.pay(number))[:2] == (409, "TRANSACTION_REVERSED")


def test_a_reversal_of_an_unknown_transaction_is_not_found_and_voids_a_late_payment(initiate, outlet, app):  # noqa: F811
    _, _, number = initiate("Channel")
    answer = outlet.reverse("KHT000000000077")
    assert (answer.status_code, answer.get_json()["status"]) == (201, "NOT_FOUND")
    late = outlet.pay(number, tx="KHT000000000077")
    assert error_of(late) == (409, "TRANSACTION_REVERSED", "khales_transaction_id")
    assert state(app, number)[:2] == ("OPEN", 0)


def test_a_reversal_naming_another_request_than_the_one_paid_is_refused_and_refunds_nothing(
        initiate, outlet, app):  # noqa: F811
    # A breaker's case: the reversal named request 000000000000 and still refunded the paid one.
    _, _, number = initiate("Channel")
    outlet.pay(number)

    refused = outlet.reverse("KHT000000000001", reason="NO_ANSWER", payment_request_number="000000000000")

    assert error_of(refused) == (409, "REQUEST_MISMATCH", "payment_request_number")
    assert app.extensions["card_gateway_efinance"].by_payment_request_number(number).refunds == []
    assert outlet.inquire(number).get_json()["status"] == "PAID"
