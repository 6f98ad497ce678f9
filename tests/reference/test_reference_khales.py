"""The Khales biller: inquiry, idempotent payments and reversals, all signed."""

from __future__ import annotations

import pytest

from simulators.common.contracts import problems
from simulators.common.errors import ValidationFailed


def payments_of(ref, order):
    return ref.order(order["bill_reference"])["payments"]


def test_inquiry_answers_the_amount_due(ref):
    order = ref.create_order()

    response = ref.signed("/khales/inquiry", {"inquiry_id": "INQ-1", "bill_reference": order["bill_reference"],
                                              "outlet_id": "OUT-01-001"}, "khales_biller")

    assert response.status_code == 200
    answer = response.get_json()
    assert problems("kh-inquiry-result.schema.json", answer) == []
    assert answer["status"] == "UNPAID" and answer["amount_due"] == "855.00"
    assert answer["collection_fee"] == "0.00" and answer["total_due"] == "855.00"
    assert [line["code"] for line in answer["fee_lines"]] == ["BASE", "AREA", "VAT"]


def test_inquiry_of_unknown_bill_is_404(ref):
    response = ref.signed("/khales/inquiry", {"inquiry_id": "INQ-1", "bill_reference": "123456789012",
                                              "outlet_id": "OUT-01-001"}, "khales_biller")

    assert response.status_code == 404
    assert response.get_json()["error"] == {"code": "UNKNOWN_BILL", "field": "bill_reference",
                                            "message": "no order with bill reference 123456789012"}


def test_payment_is_accepted_once_and_replayed(ref):
    order = ref.create_order()

    first = ref.khales_payment(order)
    again = ref.khales_payment(order)

    assert first.status_code == 200 and again.status_code == 200
    assert problems("kh-payment-result.schema.json", first.get_json()) == []
    assert again.get_json() == first.get_json()
    assert first.get_json()["status"] == "ACCEPTED" and first.get_json()["amount"] == "855.00"
    view = ref.order(order["bill_reference"])
    assert view["status"] == "PAID" and view["paid_amount"] == "855.00"
    assert len(view["payments"]) == 1
    payment = view["payments"][0]
    assert payment["channel"] == "cash" and payment["external_id"] == "KH-TXN-1"
    assert payment["business_date"] == "2026-12-07" and payment["confirmation"] == "PENDING"


def test_same_transaction_with_another_body_is_409(ref):
    order = ref.create_order()
    ref.khales_payment(order)

    response = ref.khales_payment(order, outlet_id="OUT-01-002")

    assert response.status_code == 409
    assert response.get_json()["error"]["field"] == "khales_transaction_id"
    assert len(payments_of(ref, order)) == 1


def test_second_transaction_on_a_paid_bill_is_409(ref):
    order = ref.create_order()
    ref.khales_payment(order)

    response = ref.khales_payment(order, txn="KH-TXN-2")

    assert response.status_code == 409 and response.get_json()["error"]["code"] == "ALREADY_PAID"
    assert len(payments_of(ref, order)) == 1


def test_wrong_amounts_are_refused_and_change_nothing(ref):
    order = ref.create_order()

    partial = ref.khales_payment(order, amount="800.00")
    negative = ref.khales_payment(order, amount="-1.00")
    number = ref.khales_payment(order, amount=855)

    assert partial.status_code == 422 and partial.get_json()["error"]["code"] == "AMOUNT_MISMATCH"
    assert partial.get_json()["error"]["field"] == "amount"
    assert negative.status_code == 422 and negative.get_json()["error"]["field"] == "amount"
    assert number.status_code == 422
    assert payments_of(ref, order) == [] and ref.order(order["bill_reference"])["status"] == "UNPAID"


def test_bad_signature_is_401_and_changes_nothing(ref):
    order = ref.create_order()
    body = {"khales_transaction_id": "KH-TXN-1", "bill_reference": order["bill_reference"], "amount": "855.00",
            "currency": "EGP", "outlet_id": "OUT-01-001", "paid_at": ref.now()}

    forged = ref.signed("/khales/payments", body, "card_gateway_webhook")  # the wrong secret
    stale = ref.signed("/khales/payments", body, "khales_biller", signed_at=ref.at("2026-12-07T09:00:00+02:00"))
    unsigned = ref.client.post("/khales/payments", json=body)

    assert forged.status_code == 401 and forged.get_json()["error"]["code"] == "BAD_SIGNATURE"
    assert stale.status_code == 401 and stale.get_json()["error"]["code"] == "SIGNATURE_EXPIRED"
    assert unsigned.status_code == 401
    assert payments_of(ref, order) == []


def test_malformed_json_is_400(ref):
    response = ref.signed("/khales/payments", None, "khales_biller", raw=b'{"khales_transaction_id": "x",')

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "MALFORMED_BODY"


def test_unknown_and_expired_bills(ref):
    order = ref.create_order()
    unknown = ref.khales_payment(dict(order, bill_reference="123456789012"))
    ref.advance("72h")
    expired = ref.khales_payment(order, paid_at=ref.now())

    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "UNKNOWN_BILL"
    assert expired.status_code == 409 and expired.get_json()["error"]["code"] == "BILL_EXPIRED"


def test_reversal_before_confirmation_cancels_it(ref, citizen_services):
    order = ref.create_order()
    ref.khales_payment(order)
    body = {"reversal_id": "REV-1", "khales_transaction_id": "KH-TXN-1", "bill_reference": order["bill_reference"]}

    first = ref.signed("/khales/reversals", body, "khales_biller")
    again = ref.signed("/khales/reversals", body, "khales_biller")
    other = ref.signed("/khales/reversals", dict(body, reason="changed"), "khales_biller")
    ref.tick()

    assert first.status_code == 200 and first.get_json()["status"] == "REVERSED"
    assert problems("kh-reversal-result.schema.json", first.get_json()) == []
    assert again.get_json() == first.get_json()
    assert other.status_code == 409
    view = ref.order(order["bill_reference"])
    assert view["status"] == "UNPAID" and view["paid_amount"] == "0.00"
    assert view["payments"][0]["status"] == "REVERSED" and view["payments"][0]["confirmation"] == "CANCELLED"
    assert citizen_services.confirmations == [] and citizen_services.cancellations == []
    assert ref.khales_payment(order, txn="KH-TXN-2").status_code == 200  # payable again


def test_reversal_after_confirmation_sends_a_cancellation(ref, citizen_services):
    order = ref.create_order()
    payment = ref.khales_payment(order).get_json()
    ref.tick()
    assert len(citizen_services.delivered()) == 1

    ref.signed("/khales/reversals", {"reversal_id": "REV-1", "khales_transaction_id": "KH-TXN-1",
                                     "bill_reference": order["bill_reference"], "reason": "timeout"},
               "khales_biller")
    ref.tick()

    assert citizen_services.cancellations == [{"payment_id": payment["payment_id"],
                                               "request_number": "SR-01-00000001", "reason": "timeout"}]
    assert ref.order(order["bill_reference"])["payments"][0]["confirmation"] == "CANCELLED"


def test_reversal_of_unknown_transaction_blocks_a_late_payment(ref):
    order = ref.create_order()

    answer = ref.signed("/khales/reversals", {"reversal_id": "REV-9", "khales_transaction_id": "KH-LOST",
                                              "bill_reference": order["bill_reference"]}, "khales_biller")
    late = ref.khales_payment(order, txn="KH-LOST")

    assert answer.status_code == 200 and answer.get_json()["status"] == "NOT_FOUND"
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "TRANSACTION_REVERSED"
    assert payments_of(ref, order) == []


# --- partial payments (reference.khales_partial_payments), expired and already-paid bills --------------

def inquire(ref, order, inquiry_id="INQ-1"):
    response = ref.signed("/khales/inquiry", {"inquiry_id": inquiry_id, "bill_reference": order["bill_reference"],
                                              "outlet_id": "OUT-01-001"}, "khales_biller")
    assert response.status_code == 200
    assert problems("kh-inquiry-result.schema.json", response.get_json()) == []
    return response.get_json()


def accepting(ref):
    """The same reference with the biller's rule switched to accept (the admin plane's settings hook)."""
    answer = ref.client.post("/_admin/settings", json={"khales_partial_payments": "accept"})
    assert answer.status_code == 200, answer.get_json()
    return ref


def test_the_partial_payment_rule_is_a_setting(settings):
    from reference.app import create_app
    from simulators.common.config import deep_merge, load_settings

    app = create_app(deep_merge(settings, {"reference": {"khales_partial_payments": "accept"}}))
    try:
        assert app.extensions["reference"]["ledger"].partial_payments == "accept"
    finally:
        app.extensions["tahseel"].stop()
    with pytest.raises(ValidationFailed):
        load_settings(overrides={"reference": {"khales_partial_payments": "sometimes"}})


def test_by_default_less_than_due_is_refused_and_the_inquiry_says_so(ref, citizen_services):
    order = ref.create_order()
    assert inquire(ref, order)["partial_payments"] == "reject"

    partial = ref.khales_payment(order, amount="300.00")

    assert (partial.status_code, partial.get_json()["error"]["code"]) == (422, "AMOUNT_MISMATCH")
    assert "partial payments are not accepted" in partial.get_json()["error"]["message"]
    assert payments_of(ref, order) == [] and ref.order(order["bill_reference"])["outstanding_amount"] == "855.00"


def test_accepted_parts_never_mark_the_order_paid_until_the_whole_amount_is_in(ref, citizen_services):
    accepting(ref)
    order = ref.create_order()
    first = ref.khales_payment(order, txn="KH-PART-1", amount="300.00")
    ref.tick()

    assert first.status_code == 200
    assert problems("kh-payment-result.schema.json", first.get_json()) == []
    assert {k: first.get_json()[k] for k in ("status", "amount", "bill_status", "paid_amount", "outstanding_amount",
                                            "bill_amount")} == {
        "status": "ACCEPTED", "amount": "300.00", "bill_status": "PARTIALLY_PAID", "paid_amount": "300.00",
        "outstanding_amount": "555.00", "bill_amount": "855.00"}
    view = ref.order(order["bill_reference"])
    assert (view["status"], view["paid_amount"], view["outstanding_amount"], view["paid_at"]) == (
        "UNPAID", "300.00", "555.00", None)
    assert view["payments"][0]["partial"] is True and view["payments"][0]["confirmation"] == "PENDING"
    assert problems("ref-order.schema.json", view) == []
    assert citizen_services.confirmations == []  # nothing confirmed before the whole amount is in
    inquiry = inquire(ref, order, "INQ-2")
    assert {k: inquiry[k] for k in ("status", "amount_due", "total_due", "bill_amount", "paid_amount",
                                    "outstanding_amount", "partial_payments")} == {
        "status": "PARTIALLY_PAID", "amount_due": "555.00", "total_due": "555.00", "bill_amount": "855.00",
        "paid_amount": "300.00", "outstanding_amount": "555.00", "partial_payments": "accept"}

    over = ref.khales_payment(order, txn="KH-PART-2", amount="600.00")
    assert (over.status_code, over.get_json()["error"]["code"], over.get_json()["error"]["field"]) == (
        422, "AMOUNT_EXCEEDS_DUE", "amount")
    assert len(payments_of(ref, order)) == 1

    rest = ref.khales_payment(order, txn="KH-PART-3", amount="555.00")
    ref.tick()

    assert rest.get_json()["bill_status"] == "PAID" and rest.get_json()["outstanding_amount"] == "0.00"
    view = ref.order(order["bill_reference"])
    assert (view["status"], view["paid_amount"], view["outstanding_amount"]) == ("PAID", "855.00", "0.00")
    assert [p["confirmation"] for p in view["payments"]] == ["CONFIRMED", "CONFIRMED"]
    # One confirmation, for the whole amount, carried by the part that completed the bill.
    [confirmation] = citizen_services.delivered()
    assert (confirmation["payment_id"], confirmation["amount"], confirmation["transaction_reference"]) == (
        rest.get_json()["payment_id"], "855.00", "KH-PART-3")
    assert inquire(ref, order, "INQ-3")["status"] == "PAID"
    assert ref.khales_payment(order, txn="KH-PART-4", amount="1.00").get_json()["error"]["code"] == "ALREADY_PAID"


def test_a_card_payment_is_refused_on_a_partly_paid_order(ref):
    accepting(ref)
    order = ref.create_order()
    ref.khales_payment(order, txn="KH-PART-1", amount="300.00")

    response = ref.client.post(f"/api/orders/{order['bill_reference']}/card-payments", json={})

    assert (response.status_code, response.get_json()["error"]["code"]) == (409, "PARTIALLY_PAID")
    assert ref.order(order["bill_reference"])["card_attempts"] == []


def test_a_reversed_part_makes_the_rest_outstanding_again_and_withdraws_the_confirmation(ref, citizen_services):
    accepting(ref)
    order = ref.create_order()
    ref.khales_payment(order, txn="KH-PART-1", amount="300.00")
    ref.khales_payment(order, txn="KH-PART-2", amount="555.00")
    ref.tick()
    assert len(citizen_services.delivered()) == 1

    reversal = ref.signed("/khales/reversals", {"reversal_id": "REV-P1", "khales_transaction_id": "KH-PART-1",
                                                "bill_reference": order["bill_reference"]}, "khales_biller")
    ref.tick()

    assert reversal.get_json()["status"] == "REVERSED"
    view = ref.order(order["bill_reference"])
    assert (view["status"], view["paid_amount"], view["outstanding_amount"]) == ("UNPAID", "555.00", "300.00")
    by_txn = {p["external_id"]: p for p in view["payments"]}
    assert (by_txn["KH-PART-1"]["status"], by_txn["KH-PART-1"]["confirmation"]) == ("REVERSED", "NOT_REQUIRED")
    assert (by_txn["KH-PART-2"]["status"], by_txn["KH-PART-2"]["confirmation"]) == ("CAPTURED", "PENDING")
    assert [c["payment_id"] for c in citizen_services.cancellations] == [by_txn["KH-PART-2"]["payment_id"]]
    assert inquire(ref, order, "INQ-9")["amount_due"] == "300.00"
    again = ref.khales_payment(order, txn="KH-PART-3", amount="300.00")
    ref.tick()
    assert again.get_json()["bill_status"] == "PAID"
    assert ref.order(order["bill_reference"])["status"] == "PAID"
    assert [c["amount"] for c in citizen_services.delivered()] == ["855.00", "855.00"]  # confirmed, cancelled, again


def test_the_daily_report_spreads_parts_over_the_fee_lines_once(ref):
    accepting(ref)
    order = ref.create_order()
    ref.khales_payment(order, txn="KH-PART-1", amount="600.00")
    ref.advance("24h")
    ref.khales_payment(order, txn="KH-PART-2", amount="255.00", paid_at=ref.now())

    monday = ref.client.get("/api/reports/daily?date=2026-12-07").get_json()["governorates"][0]["collections"]
    tuesday = ref.client.get("/api/reports/daily?date=2026-12-08").get_json()["governorates"][0]["collections"]

    assert (monday["amount"], monday["partial"]) == ("600.00", {"count": 1, "amount": "600.00"})
    assert {k: v["amount"] for k, v in monday["by_revenue_pool"].items()} == {"BLD": "600.00", "VAT": "0.00"}
    assert {k: v["amount"] for k, v in tuesday["by_revenue_pool"].items()} == {"BLD": "150.00", "VAT": "105.00"}
    assert (tuesday["by_channel"]["cash"]["amount"], tuesday["partial"]["count"]) == ("255.00", 1)


def test_an_expired_bill_is_refused_by_inquiry_and_payment_and_nothing_is_collected(ref):
    order = ref.create_order()
    ref.advance("72h")

    answer = inquire(ref, order)
    payment = ref.khales_payment(order, paid_at=ref.now())

    assert (answer["status"], answer["expires_at"]) == ("EXPIRED", order["expires_at"])
    assert (payment.status_code, payment.get_json()["error"]["code"]) == (409, "BILL_EXPIRED")
    assert payments_of(ref, order) == [] and ref.order(order["bill_reference"])["status"] == "EXPIRED"


def test_a_bill_paid_by_card_is_refused_in_cash_even_on_an_earlier_inquiry(ref, card_gateway, citizen_services):
    order = ref.create_order()
    before = inquire(ref, order)  # the outlet inquired while the bill was unpaid…
    opened = ref.open_card(order)
    card_gateway.approve(opened)
    assert ref.silent_call(card_gateway.silent_call_form(opened)).get_json()["status"] == "credited"

    cash = ref.khales_payment(order, txn="KH-AFTER-CARD", inquiry_id=before["inquiry_id"])  # …and pays after

    assert before["status"] == "UNPAID" and inquire(ref, order, "INQ-2")["status"] == "PAID"
    assert (cash.status_code, cash.get_json()["error"]["code"]) == (409, "ALREADY_PAID")
    view = ref.order(order["bill_reference"])
    assert [(p["channel"], p["amount"]) for p in view["payments"]] == [("card", "855.00")]
    assert view["excess_amount"] == "0.00"
