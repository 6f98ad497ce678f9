"""Card payments through e-finance: the sealed initiation, the silent call, the refunds.

The gateway here is the fake of conftest.py (its own key pair and its own FACTS cryptography): it
decrypts what the reference seals and encrypts the silent calls under the key and IV it read.
"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from reference.app import create_app
from simulators.common.clock import parse_instant
from simulators.common.config import deep_merge
from simulators.common.contracts import problems


def order_and_card(ref, **body):
    order = ref.create_order()
    return order, ref.open_card(order, **body)


def attempts(ref, order):
    return ref.order(order["bill_reference"])["card_attempts"]


def code(response):
    return response.headers.get("Response_Code")


# --- opening -------------------------------------------------------------------------------------
def test_the_initiation_is_sealed_exactly_as_facts_says(ref, card_gateway):
    order, opened = order_and_card(ref)

    fields = opened["initiation"]["fields"]
    assert opened["initiation"]["url"] == card_gateway.url + "/CardPaymentRequestIntiation/index"
    assert opened["initiation"]["method"] == "POST"
    assert set(fields) == {"SenderID", "RandomSecret", "RequestObject", "HashedRequestObject", "LanguageId"}
    assert fields["SenderID"] == "1001" and fields["LanguageId"] == "ar"
    assert re.fullmatch(r"[0-9A-F]{16}", opened["sender_request_number"])
    assert opened["payment_url"] == f"http://127.0.0.1:9/portal/card-payments/{opened['sender_request_number']}"
    assert (opened["amount"], opened["currency"], opened["mechanism"]) == ("855.00", "EGP", "Card")
    assert opened["expires_at"] == order["expires_at"]

    sealed = card_gateway.unseal(fields)  # asserts the hash, the 48-byte secret as base64 text
    assert sealed["plaintext"].startswith(b'<?xml version="1.0" encoding="utf-16"?>')  # the published quirk
    xml = sealed["xml"]
    assert xml.tag == "PaymentRequestInitiationReq"
    assert xml.findtext("Sender/Id") == "1001" and xml.findtext("Sender/Name") == "Tahseel - Cairo"
    assert re.fullmatch(r"[0-9A-F]{32}", xml.findtext("Sender/RandomValue"))
    assert card_gateway.rsa_decrypt(xml.findtext("Sender/Password")) == b"tahseel-cairo-test"
    lines = [(line.findtext("SettlementAccountCode"), line.findtext("Amount"))
             for line in xml.findall("SettlementAmounts/SettlementAmounts")]
    assert lines == [("0101001", "500.00"), ("0101001", "250.00"), ("0109001", "105.00")]  # one per fee line
    assert xml.findtext("SettlementAmounts/SettlementAmounts/SettlementAmountsDescription") == "رسم BASE"
    assert xml.findtext("SenderRequestNumber") == opened["sender_request_number"]
    assert xml.findtext("SenderInvoiceNumber") == order["bill_reference"]
    assert xml.findtext("ServiceCode") == "1001" and xml.findtext("Currency") == "818"
    assert xml.findtext("PaymentMechanism/Type") == "Card" and xml.findtext("PaymentMechanism/MechanismType") == "Card"
    assert xml.findtext("ExpiryDate") == "2026-12-10"  # the order expires 2026-12-10 10:00 Cairo
    assert xml.findtext("PaymentConfirmationUrl") == "http://127.0.0.1:9/efinance/confirmations"
    assert xml.findtext("PaymentConfirmationRedirectUrl") == "http://127.0.0.1:9/payments/return"
    assert re.fullmatch(r"[0-9A-Za-z]{8}", xml.findtext("UserUniqueIdentifier"))

    # the key and IV are in SQLite with the attempt, before anything was sent
    stored = ref.app.extensions["reference"]["store"].card_attempt(opened["sender_request_number"])
    assert base64.b64decode(stored["secret_key"]) == sealed["key"]
    assert base64.b64decode(stored["secret_iv"]) == sealed["iv"]
    assert attempts(ref, order) == [{"sender_request_number": opened["sender_request_number"],
                                     "payment_request_number": None, "status": "OPEN", "mechanism": "Card",
                                     "created_at": ref.now(), "updated_at": ref.now()}]
    assert problems("ref-order.schema.json", ref.order(order["bill_reference"])) == []


def test_each_attempt_has_its_own_number_key_and_iv_and_english_is_asked_for(ref, card_gateway):
    order, first = order_and_card(ref)
    second = ref.open_card(order, language="en")

    a, b = card_gateway.unseal(first["initiation"]["fields"]), card_gateway.unseal(second["initiation"]["fields"])
    assert first["sender_request_number"] != second["sender_request_number"]
    assert a["key"] != b["key"] and a["iv"] != b["iv"]
    assert second["initiation"]["fields"]["LanguageId"] == "en" and second["payment_url"].endswith("?lang=en")
    assert b["xml"].findtext("PaymentConfirmationRedirectUrl").endswith("/payments/return?lang=en")
    assert b["xml"].findtext("SettlementAmounts/SettlementAmounts/SettlementAmountsDescription") == "BASE fee"
    assert card_gateway.certificate_downloads == 1  # fetched at first use, then kept


def test_bad_input_to_card_payments_is_4xx_with_code_and_field_and_changes_nothing(ref):
    order = ref.create_order()
    url = f"/api/orders/{order['bill_reference']}/card-payments"

    cases = [(ref.client.post(url, json={"mechanism": "Cash"}), 422, "mechanism"),
             (ref.client.post(url, json={"language": "fr"}), 422, "language"),
             (ref.client.post(url, json={"return_url": "http://evil.test/"}), 422, None),
             (ref.client.post(url, data=b'{"language": ', content_type="application/json"), 400, "body"),
             (ref.client.post(url, data=b"language=en", content_type="text/plain"), 415, "Content-Type"),
             (ref.client.post("/api/orders/999999999999/card-payments", json={}), 404, "bill_reference"),
             (ref.client.post("/api/orders/12/card-payments", json={}), 404, "bill_reference")]

    for response, status, field in cases:
        error = response.get_json()["error"]
        assert response.status_code == status and error["code"] and error["message"], response.get_json()
        if field:
            assert error["field"] == field
    assert attempts(ref, order) == []


def test_card_payment_when_the_gateway_is_down_is_503_and_opens_nothing(ref, card_gateway):
    order = ref.create_order()
    card_gateway.down = True

    response = ref.client.post(f"/api/orders/{order['bill_reference']}/card-payments")

    assert response.status_code == 503 and response.get_json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert attempts(ref, order) == []


def test_card_payment_on_a_paid_order_is_409(ref):
    order = ref.create_order()
    assert ref.khales_payment(order).status_code == 200

    response = ref.client.post(f"/api/orders/{order['bill_reference']}/card-payments", json={})

    assert response.status_code == 409 and response.get_json()["error"]["code"] == "ALREADY_PAID"


def test_mechanism_channel_is_initiated_server_to_server(ref, card_gateway):
    order, opened = order_and_card(ref, mechanism="Channel")

    assert opened["payment_request_number"] == "100000000001"
    [sent] = card_gateway.initiations
    assert sent["xml"].findtext("PaymentMechanism/Type") == "Channel"
    assert attempts(ref, order)[0]["payment_request_number"] == "100000000001"


def test_mechanism_channel_refused_or_down_is_502_or_503_and_the_attempt_failed(ref, card_gateway):
    order = ref.create_order()
    card_gateway.refuse_with = "123"
    url = f"/api/orders/{order['bill_reference']}/card-payments"

    refused = ref.client.post(url, json={"mechanism": "Channel"})
    ref.open_card(order)  # the certificate is cached now: the next failure is the call itself
    card_gateway.down = True
    down = ref.client.post(url, json={"mechanism": "Channel"})

    assert refused.status_code == 502 and refused.get_json()["error"]["code"] == "UPSTREAM_REJECTED"
    assert "ResponseCode 123" in refused.get_json()["error"]["message"]
    assert down.status_code == 503
    assert [a["status"] for a in attempts(ref, order)] == ["FAILED", "OPEN", "FAILED"]


# --- the silent call ------------------------------------------------------------------------------
def test_a_confirmed_silent_call_is_credited_once_after_the_status_inquiry(ref, card_gateway, citizen_services):
    order, opened = order_and_card(ref)
    card_gateway.approve(opened)
    form = card_gateway.silent_call_form(opened)

    first = ref.silent_call(form)
    again = ref.silent_call(form)
    ref.tick()

    assert first.status_code == 200 and code(first) == "000" and first.get_json()["status"] == "credited"
    assert again.status_code == 200 and code(again) == "000" and again.get_json()["status"] == "duplicate"
    view = ref.order(order["bill_reference"])
    assert view["status"] == "PAID" and len(view["payments"]) == 1
    payment = view["payments"][0]
    assert {k: payment[k] for k in ("channel", "external_id", "amount", "auth_code", "payment_request_number",
                                    "mechanism", "institution", "reconciliation_date", "business_date",
                                    "confirmation")} == {
        "channel": "card", "external_id": "TX000000000001", "amount": "855.00", "auth_code": "123456",
        "payment_request_number": "400000000001", "mechanism": "Card", "institution": "Visa",
        "reconciliation_date": "2026-12-07", "business_date": "2026-12-07", "confirmation": "CONFIRMED"}
    assert payment["paid_at"] == ref.at("2026-12-07T10:00:00+02:00") and payment["receipt_number"].startswith("RCPT-")
    assert view["card_attempts"][0]["status"] == "APPROVED"
    assert view["card_attempts"][0]["payment_request_number"] == "400000000001"
    [inquiry] = card_gateway.inquiries  # asked once, before crediting; the duplicate asked nobody
    assert inquiry["SenderID"] == "1001" and inquiry["SenderRequestNumber"] == opened["sender_request_number"]
    assert card_gateway.rsa_decrypt(inquiry["SenderPassword"]) == b"tahseel-cairo-test"
    assert [c["payment_id"] for c in citizen_services.delivered()] == [payment["payment_id"]]
    assert problems("ref-order.schema.json", view) == []


def test_the_key_is_durable_a_restarted_service_still_decrypts_the_silent_call(ref, card_gateway, settings):
    order, opened = order_and_card(ref)
    card_gateway.approve(opened)
    ref.app.extensions["tahseel"].stop()  # the service goes away after sending the customer off

    restarted = create_app(settings)
    try:
        restarted.extensions["tahseel"].clock.set(ref.app.extensions["tahseel"].clock.now())
        answer = restarted.test_client().post("/efinance/confirmations", data=card_gateway.silent_call_form(opened))
        assert code(answer) == "000" and answer.get_json()["status"] == "credited"
    finally:
        restarted.extensions["tahseel"].stop()


@pytest.mark.parametrize(("change", "status", "response_code", "field"), [
    ({"Signature": ""}, 401, "110", "Signature"),
    ({"Signature": "0" * 64}, 401, "110", "Signature"),
    ({"SenderID": "9001"}, 403, "101", "SenderID"),
    ({"SenderID": "1002"}, 404, "104", "SenderRequestNumber"),
    ({"SenderRequestNumber": "0123456789ABCDEF"}, 404, "104", "SenderRequestNumber"),
    ({"RequestObject": ""}, 400, "114", "RequestObject"),
    ({"SenderID": ""}, 400, "114", "SenderID"),
])
def test_a_refused_silent_call_changes_nothing(ref, card_gateway, change, status, response_code, field):
    order, opened = order_and_card(ref)
    card_gateway.approve(opened)
    form = dict(card_gateway.silent_call_form(opened), **change)

    answer = ref.silent_call(form)

    assert answer.status_code == status and code(answer) == response_code, answer.get_json()
    assert answer.get_json()["error"]["field"] == field and answer.get_json()["response_code"] == response_code
    assert ref.order(order["bill_reference"])["payments"] == []
    assert card_gateway.inquiries == []  # refused before anybody was asked


def test_undecryptable_and_malformed_notices_are_refused(ref, card_gateway):
    order, opened = order_and_card(ref)
    card_gateway.approve(opened)
    other_order = ref.open_card(order)  # another attempt: another key
    under_other_key = card_gateway.silent_call_form(other_order)
    # Every way a RequestObject can be unreadable gets ONE answer (112): telling bad padding from bad XML
    # or a bad field apart is a padding oracle (a breaker forged a refund notice through it).
    cases = {
        "112": [dict(card_gateway.silent_call_form(opened), RequestObject=under_other_key["RequestObject"],
                     Signature=under_other_key["Signature"]),
                {**card_gateway.silent_call_form(opened), "RequestObject": "not base64!",
                 "Signature": hashlib.sha256(b"not base64!").hexdigest()},
                card_gateway.silent_call_form(opened, plaintext=b"<PaymentConfirmationRequest><Unclosed>"),
                card_gateway.silent_call_form(opened, plaintext=b"<SomethingElse/>"),
                card_gateway.silent_call_form(opened, plaintext=b'<!DOCTYPE x [<!ENTITY a "b">]>'
                                                                  b"<PaymentConfirmationRequest/>"),
                card_gateway.silent_call_form(opened, TransactionNumber=""),
                card_gateway.silent_call_form(opened, IsConfirmed="yes"),
                card_gateway.silent_call_form(opened, PaymentRequestTotalAmount="855,00")],
        "116": [card_gateway.silent_call_form(opened, SenderRequestNumber=other_order["sender_request_number"])],
        "122": [card_gateway.silent_call_form(opened, PaymentRequestTotalAmount="1.00",
                                              CustomerAuthorizationAmount="1.00"),
                card_gateway.silent_call_form(opened, CustomerAuthorizationAmount="900.00")],
    }
    for response_code, forms in cases.items():
        for form in forms:
            answer = ref.silent_call(form)
            assert code(answer) == response_code and answer.status_code >= 400, (response_code, answer.get_json())
            if response_code == "112":
                assert answer.get_json()["error"]["message"] == ("RequestObject cannot be decrypted and read under"
                                                                 " this request's key")
    assert ref.order(order["bill_reference"])["payments"] == []
    assert card_gateway.inquiries == []


def test_the_gateway_not_confirming_or_not_answering_credits_nothing_and_is_retried(ref, card_gateway):
    order, opened = order_and_card(ref)
    form = card_gateway.silent_call_form(opened)

    unknown = ref.silent_call(form)  # the status inquiry does not know the request (140)
    card_gateway.approve(opened, status="UNPAID")
    unpaid = ref.silent_call(form)
    card_gateway.approve(opened, transaction="TX999999999999")
    other_transaction = ref.silent_call(form)
    card_gateway.approve(opened)
    card_gateway.down = True
    down = ref.silent_call(form)
    card_gateway.down = False
    retried = ref.silent_call(form)

    for refused in (unknown, unpaid, other_transaction):
        assert refused.status_code == 409 and code(refused) == "150"
    assert "Status is UNPAID" in unpaid.get_json()["error"]["message"]
    assert down.status_code == 503 and code(down) == "190"
    assert code(retried) == "000" and retried.get_json()["status"] == "credited"
    assert len(ref.order(order["bill_reference"])["payments"]) == 1


def test_the_new_canceled_vocabulary_is_understood(ref, card_gateway):
    order, opened = order_and_card(ref)
    card_gateway.approve(opened, status="NEW")
    assert code(ref.silent_call(card_gateway.silent_call_form(opened))) == "150"


def test_a_decline_is_recorded_on_the_attempt_and_the_bill_stays_payable(ref, card_gateway):
    order, opened = order_and_card(ref)
    form = card_gateway.silent_call_form(opened, IsConfirmed="false", TransactionNumber="", AuthorizationCode="",
                                         ReconciliationDate="")

    answer = ref.silent_call(form)

    assert code(answer) == "000" and answer.get_json()["status"] == "declined"
    view = ref.order(order["bill_reference"])
    assert view["status"] == "UNPAID" and view["payments"] == []
    assert view["card_attempts"][0]["status"] == "DECLINED"
    assert card_gateway.inquiries == []
    ref.open_card(order)  # payable again


def test_a_card_payment_after_cash_is_kept_as_excess_and_a_late_decline_never_undoes_an_approval(
        ref, card_gateway):
    order, opened = order_and_card(ref)
    ref.khales_payment(order)
    card_gateway.approve(opened)

    answer = ref.silent_call(card_gateway.silent_call_form(opened))
    late_decline = ref.silent_call(card_gateway.silent_call_form(opened, IsConfirmed="false", TransactionNumber=""))

    assert code(answer) == "000" and answer.get_json()["status"] == "excess"
    assert code(late_decline) == "000"
    view = ref.order(order["bill_reference"])
    assert view["status"] == "PAID" and view["excess_amount"] == "855.00"
    card = next(p for p in view["payments"] if p["channel"] == "card")
    assert card["excess"] is True and card["confirmation"] == "NOT_REQUIRED"
    assert view["card_attempts"][0]["status"] == "APPROVED"
    exceptions = ref.client.get("/api/reconciliation/exceptions?status=OPEN").get_json()["exceptions"]
    assert [(e["kind"], e["payment_id"]) for e in exceptions] == [("EXCESS_PAYMENT", card["payment_id"])]


def test_a_card_payment_heard_after_the_order_expired_is_kept_for_refund(ref, card_gateway, citizen_services):
    order, opened = order_and_card(ref)
    ref.advance("73h")  # past expires_at (72 h); nobody marked the order expired yet
    card_gateway.approve(opened)

    answer = ref.silent_call(card_gateway.silent_call_form(opened))
    ref.tick()

    assert code(answer) == "000" and answer.get_json()["status"] == "excess"
    view = ref.order(order["bill_reference"])
    assert view["status"] == "EXPIRED" and view["excess_amount"] == "855.00"
    assert citizen_services.confirmations == []  # an expired order is not confirmed: the money is owed back


def test_reversing_the_cash_payment_lets_the_excess_card_payment_pay_the_order(ref, card_gateway, citizen_services):
    order, opened = order_and_card(ref)
    ref.khales_payment(order)
    card_gateway.approve(opened)
    card_payment = ref.silent_call(card_gateway.silent_call_form(opened)).get_json()["payment_id"]

    ref.signed("/khales/reversals", {"reversal_id": "REV-1", "khales_transaction_id": "KH-TXN-1",
                                     "bill_reference": order["bill_reference"]}, "khales_biller")
    ref.tick()

    view = ref.order(order["bill_reference"])
    card = next(p for p in view["payments"] if p["payment_id"] == card_payment)
    assert view["status"] == "PAID" and card["excess"] is False and card["confirmation"] == "CONFIRMED"
    assert [c["payment_id"] for c in citizen_services.delivered()] == [card_payment]


def test_signature_none_accepts_a_notice_without_one(tmp_path, citizen_services, card_gateway, settings):
    app = create_app(deep_merge(settings, {"reference": {"efinance": {"signature": "none"},
                                                         "database": str(tmp_path / "none.sqlite3")}}))
    try:
        app.extensions["tahseel"].clock.set(parse_instant("2026-12-07T10:00:00+02:00"))
        client = app.test_client()
        order = client.post("/api/orders", json={"request_number": "SR-01-00000001"}).get_json()
        opened = client.post(f"/api/orders/{order['bill_reference']}/card-payments").get_json()
        card_gateway.approve(opened)
        answer = client.post("/efinance/confirmations", data=dict(card_gateway.silent_call_form(opened), Signature=""))
        assert code(answer) == "000" and answer.get_json()["status"] == "credited"
    finally:
        app.extensions["tahseel"].stop()


# --- refund notices ----------------------------------------------------------------------------------
def refund_form(card_gateway, opened, number="RF000000000001", amount="855.00", refunded="855.00",
                status="REFUNDED", **values):
    return card_gateway.silent_call_form(opened, OperationType="Refund", RefundRequestNumber="BO-1",
                                         RefundNumber=number, RefundAmount=amount, RefundedAmount=refunded,
                                         RefundDateTime="2026-12-07 11:00:00", Status=status, **values)


def test_a_full_refund_of_a_credited_payment_reverses_it(ref, card_gateway, citizen_services):
    order, opened = order_and_card(ref)
    card_gateway.approve(opened)
    ref.silent_call(card_gateway.silent_call_form(opened))
    ref.tick()  # the confirmation reached citizen services
    card_gateway.approve(opened, status="REFUNDED", refunded="855.00")

    answer = ref.silent_call(refund_form(card_gateway, opened))
    again = ref.silent_call(refund_form(card_gateway, opened))
    ref.tick()

    assert code(answer) == "000" and answer.get_json()["status"] == "refunded"
    assert code(again) == "000" and again.get_json()["status"] == "duplicate"
    view = ref.order(order["bill_reference"])
    assert view["status"] == "REFUNDED" and view["paid_amount"] == "0.00"
    [payment] = view["payments"]
    assert payment["status"] == "REFUNDED" and payment["refunded_amount"] == "855.00"
    assert payment["confirmation"] == "CANCELLED"
    assert [r["refund_number"] for r in payment["refunds"]] == ["RF000000000001"]
    assert [c["payment_id"] for c in citizen_services.cancellations] == [payment["payment_id"]]
    assert problems("ref-order.schema.json", view) == []
    report = ref.client.get("/api/reports/daily?date=2026-12-07").get_json()
    [cairo] = report["governorates"]
    assert cairo["collections"]["amount"] == "0.00" and cairo["collections"]["reversed"]["amount"] == "855.00"
    assert cairo["collections"]["refunds"] == {"count": 1, "amount": "855.00"}
    assert cairo["settlement"]["expected_amount"] == "0.00"
    assert problems("ref-daily-report.schema.json", report) == []
    # a REFUNDED order is closed: the request may have a new order
    assert ref.client.post("/api/orders", json={"request_number": "SR-01-00000001"}).status_code == 201


def test_a_refund_heard_before_its_payment_records_both_and_confirms_nothing(ref, card_gateway, citizen_services):
    order, opened = order_and_card(ref)
    card_gateway.approve(opened, status="REFUNDED", refunded="855.00")

    refund = ref.silent_call(refund_form(card_gateway, opened))
    payment_notice = ref.silent_call(card_gateway.silent_call_form(opened))
    ref.tick()

    assert code(refund) == "000" and refund.get_json()["status"] == "refunded"
    assert code(payment_notice) == "000" and payment_notice.get_json()["status"] == "duplicate"
    view = ref.order(order["bill_reference"])
    assert view["status"] == "REFUNDED"
    [payment] = view["payments"]
    assert payment["status"] == "REFUNDED" and payment["confirmation"] == "NOT_REQUIRED"
    assert citizen_services.confirmations == [] and citizen_services.cancellations == []
    assert ref.client.get("/api/confirmations").get_json()["confirmations"] == []


def test_partial_refunds_keep_the_order_paid_until_they_add_up(ref, card_gateway, citizen_services):
    order, opened = order_and_card(ref)
    card_gateway.approve(opened)
    ref.silent_call(card_gateway.silent_call_form(opened))
    card_gateway.approve(opened, status="PARTIAL_REFUNDED", refunded="100.00")

    partial = ref.silent_call(refund_form(card_gateway, opened, "RF000000000001", "100.00", "100.00",
                                          "PARTIAL_REFUNDED"))
    view = ref.order(order["bill_reference"])
    assert code(partial) == "000" and partial.get_json()["status"] == "partially_refunded"
    assert view["status"] == "PAID" and view["payments"][0]["refunded_amount"] == "100.00"
    assert view["payments"][0]["status"] == "CAPTURED"

    card_gateway.approve(opened, status="REFUNDED", refunded="855.00")
    rest = ref.silent_call(refund_form(card_gateway, opened, "RF000000000002", "755.00", "855.00"))
    assert code(rest) == "000" and rest.get_json()["status"] == "refunded"
    assert ref.order(order["bill_reference"])["status"] == "REFUNDED"
    report = ref.client.get("/api/reports/daily?date=2026-12-07").get_json()
    assert report["governorates"][0]["settlement"]["expected_amount"] == "0.00"


def test_a_refund_the_gateway_does_not_confirm_changes_nothing(ref, card_gateway):
    order, opened = order_and_card(ref)
    card_gateway.approve(opened)
    ref.silent_call(card_gateway.silent_call_form(opened))

    not_refunded = ref.silent_call(refund_form(card_gateway, opened))  # the status still says PAID
    card_gateway.approve(opened, status="PARTIAL_REFUNDED", refunded="100.00")
    less = ref.silent_call(refund_form(card_gateway, opened))
    bad = ref.silent_call(refund_form(card_gateway, opened, amount="900.00", refunded="900.00"))

    assert code(not_refunded) == "150" and code(less) == "150" and code(bad) == "122"
    view = ref.order(order["bill_reference"])
    assert view["status"] == "PAID" and "refunded_amount" not in view["payments"][0]


def test_a_refund_notice_beyond_what_the_gateway_refunded_in_all_is_refused(ref, card_gateway):
    # A breaker's case: a second refund notice (another RefundNumber, within the gateway's total
    # RefundedAmount) for a refund the gateway never made. The gateway's total bounds what we record.
    order, opened = order_and_card(ref)
    card_gateway.approve(opened)
    ref.silent_call(card_gateway.silent_call_form(opened))
    card_gateway.approve(opened, status="PARTIAL_REFUNDED", refunded="100.00")
    real = ref.silent_call(refund_form(card_gateway, opened, "RF000000000001", "100.00", "100.00",
                                       "PARTIAL_REFUNDED"))

    forged = ref.silent_call(refund_form(card_gateway, opened, "RFFORGED00001", "100.00", "100.00",
                                         "PARTIAL_REFUNDED"))

    assert code(real) == "000" and code(forged) == "150" and forged.get_json()["error"]["field"] == "RefundAmount"
    view = ref.order(order["bill_reference"])
    assert view["status"] == "PAID" and view["payments"][0]["refunded_amount"] == "100.00"


def test_a_wrong_method_or_an_oversized_body_on_the_silent_call_still_answers_a_response_code(ref):
    wrong_method = ref.client.get("/efinance/confirmations")
    oversized = ref.client.post("/efinance/confirmations", data={"RequestObject": "A" * (1024 * 1024 + 10)})

    assert wrong_method.status_code == 405 and wrong_method.headers["Response_Code"] == "113"
    assert "POST" in wrong_method.headers["Allow"]
    assert oversized.status_code == 413 and oversized.headers["Response_Code"] == "114"
    assert oversized.headers["Connection"] == "close"
    assert oversized.get_json()["response_code"] == "114"


def test_an_order_opens_at_most_the_configured_number_of_card_attempts(settings, card_gateway):
    # A breaker's case: each POST of the portal's form opened a new attempt (an RSA operation, a row,
    # status inquiries later), without end.
    from .conftest import Reference

    settings["reference"]["efinance"]["max_attempts_per_order"] = 2
    app = create_app(settings)
    try:
        ref = Reference(app, settings)
        ref.set_clock("2026-12-07T10:00:00+02:00")
        order = ref.create_order()
        url = f"/api/orders/{order['bill_reference']}/card-payments"
        answers = [ref.client.post(url, json={}) for _ in range(3)]
        assert [a.status_code for a in answers] == [201, 201, 429]
        assert answers[2].get_json()["error"]["code"] == "TOO_MANY_ATTEMPTS"
        assert len(attempts(ref, order)) == 2
    finally:
        app.extensions["tahseel"].stop()
