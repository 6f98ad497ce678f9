"""The Khales biller: inquiry, idempotent payments and reversals, all signed."""

from __future__ import annotations

from simulators.common.contracts import problems


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
