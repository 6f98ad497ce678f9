"""Card gateway webhooks: verified, checked against the gateway, credited exactly once."""

from __future__ import annotations

import pytest

from simulators.common.contracts import problems


@pytest.fixture
def session(ref):
    order = ref.create_order()
    opened = ref.client.post(f"/api/orders/{order['bill_reference']}/card-payments").get_json()
    return order, opened


def webhook(order, opened, *, event_id="EVT-1", status="APPROVED", transaction_id="TXN-1", **changes):
    body = {
        "event_id": event_id, "event_type": "payment.approved" if status == "APPROVED" else "payment.declined",
        "session_id": opened["session_id"], "merchant_request_id": opened["merchant_request_id"],
        "merchant_reference": order["bill_reference"], "status": status,
        "transaction_id": transaction_id if status == "APPROVED" else None, "auth_code": "123456",
        "amount": order["amount"], "collection_fee": "0.00", "total": order["amount"], "currency": "EGP",
        "card": {"bin": "507803", "last4": "1234", "scheme": "meeza"}, "decline_reason": None,
        "governorate_code": "01", "service_code": "BPR", "occurred_at": "2026-12-07T08:00:00.000Z",
    }
    body.update(changes)
    return body


def post(ref, body, secret="card_gateway_webhook"):
    return ref.signed("/webhooks/card-gateway", body, secret)


def test_webhook_delivered_twice_is_credited_once(ref, session, card_gateway):
    order, opened = session
    card_gateway.approve(opened["session_id"], "TXN-1")

    first = post(ref, webhook(order, opened))
    again = post(ref, webhook(order, opened))
    other_event = post(ref, webhook(order, opened, event_id="EVT-2"))

    assert first.status_code == 200 and first.get_json()["status"] == "credited"
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    assert other_event.status_code == 200 and other_event.get_json()["status"] == "duplicate"
    view = ref.order(order["bill_reference"])
    assert view["status"] == "PAID" and len(view["payments"]) == 1
    payment = view["payments"][0]
    assert payment["channel"] == "card" and payment["external_id"] == "TXN-1"
    assert payment["paid_at"] == "2026-12-07T08:00:00.000Z" and payment["business_date"] == "2026-12-07"
    assert len(card_gateway.lookups) == 1  # the gateway was asked once, before crediting
    assert card_gateway.lookups[0]["headers"]["X-Merchant-Id"] == "9001"


def test_wrong_signature_is_401_and_changes_nothing(ref, session, card_gateway):
    order, opened = session
    card_gateway.approve(opened["session_id"], "TXN-1")

    response = post(ref, webhook(order, opened), secret="khales_biller")

    assert response.status_code == 401
    assert ref.order(order["bill_reference"])["payments"] == []
    assert card_gateway.lookups == []  # refused before parsing, before asking anyone


def test_unknown_session_is_404(ref, session):
    order, opened = session

    response = post(ref, webhook(order, dict(opened, session_id="CS-999999")))

    assert response.status_code == 404 and response.get_json()["error"]["code"] == "UNKNOWN_SESSION"


def test_amount_mismatch_credits_nothing(ref, session, card_gateway):
    order, opened = session
    card_gateway.approve(opened["session_id"], "TXN-1")

    response = post(ref, webhook(order, opened, amount="1.00", total="1.00"))

    assert response.status_code == 422 and response.get_json()["error"]["code"] == "AMOUNT_MISMATCH"
    assert ref.order(order["bill_reference"])["payments"] == []


def test_webhook_the_gateway_does_not_confirm_is_refused(ref, session):
    order, opened = session  # the session is still OPEN at the gateway

    response = post(ref, webhook(order, opened))

    assert response.status_code == 409
    assert ref.order(order["bill_reference"])["status"] == "UNPAID"


def test_gateway_unreachable_answers_503_so_the_webhook_is_retried(ref, session, card_gateway):
    order, opened = session
    card_gateway.approve(opened["session_id"], "TXN-1")
    card_gateway.down = True

    refused = post(ref, webhook(order, opened))
    card_gateway.down = False
    retried = post(ref, webhook(order, opened))

    assert refused.status_code == 503
    assert retried.status_code == 200 and retried.get_json()["status"] == "credited"
    assert len(ref.order(order["bill_reference"])["payments"]) == 1


def test_declined_webhook_is_recorded(ref, session):
    order, opened = session

    response = post(ref, webhook(order, opened, status="DECLINED", decline_reason="insufficient funds"))

    assert response.status_code == 200 and response.get_json()["status"] == "declined"
    assert ref.order(order["bill_reference"])["status"] == "UNPAID"
    assert post(ref, webhook(order, opened, status="DECLINED")).get_json()["status"] == "duplicate"


def test_card_payment_after_cash_is_kept_as_excess_for_refund(ref, session, card_gateway):
    order, opened = session
    ref.khales_payment(order)
    card_gateway.approve(opened["session_id"], "TXN-1")

    response = post(ref, webhook(order, opened))

    assert response.status_code == 200 and response.get_json()["status"] == "excess"
    view = ref.order(order["bill_reference"])
    assert view["status"] == "PAID" and view["paid_amount"] == "855.00" and view["excess_amount"] == "855.00"
    assert problems("ref-order.schema.json", view) == []
    card = next(p for p in view["payments"] if p["channel"] == "card")
    assert card["excess"] is True and card["status"] == "CAPTURED" and card["confirmation"] == "NOT_REQUIRED"
    open_exceptions = ref.client.get("/api/reconciliation/exceptions?status=OPEN").get_json()["exceptions"]
    assert [(e["kind"], e["payment_id"], e["amount"]) for e in open_exceptions] == [
        ("EXCESS_PAYMENT", card["payment_id"], "855.00")]


def test_reversing_the_cash_payment_lets_the_excess_card_payment_pay_the_order(ref, session, card_gateway,
                                                                              citizen_services):
    order, opened = session
    ref.khales_payment(order)
    card_gateway.approve(opened["session_id"], "TXN-1")
    card_payment = post(ref, webhook(order, opened)).get_json()["payment_id"]

    ref.signed("/khales/reversals", {"reversal_id": "REV-1", "khales_transaction_id": "KH-TXN-1",
                                     "bill_reference": order["bill_reference"]}, "khales_biller")
    ref.tick()

    view = ref.order(order["bill_reference"])
    card = next(p for p in view["payments"] if p["payment_id"] == card_payment)
    assert view["status"] == "PAID" and card["excess"] is False and card["confirmation"] == "CONFIRMED"
    assert [c["payment_id"] for c in citizen_services.delivered()] == [card_payment]
    assert ref.client.get("/api/reconciliation/exceptions?status=OPEN").get_json()["exceptions"] == []
