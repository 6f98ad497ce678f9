"""The central citizen-services simulator: fee assessment (L2), requests, confirmations (P4-P7)."""

from __future__ import annotations

import re
from typing import Any

from simulators.citizen_services.app import create_app
from simulators.common import egypt
from simulators.common.config import load_settings
from simulators.common.contracts import problems, validate

CONFIRM = "/api/payment-confirmations"
CANCEL = "/api/payment-cancellations"


def confirmation_for(request: dict[str, Any], payment_id: str = "PAY-0001", **extra: Any) -> dict[str, Any]:
    body = {"payment_id": payment_id, "request_number": request["request_number"],
            "bill_reference": "100000000017", "amount": request["total"], "currency": "EGP",
            "channel": "card", "paid_at": "2026-03-01T08:05:00Z"}
    body.update(extra)
    return body


# --- fee assessment ---------------------------------------------------------------------------

def test_building_permit_renewal_is_assessed_line_by_line(cs_client):
    response = cs_client.post("/api/service-requests", json={
        "governorate_code": "01", "service_code": "BPR", "units": {"area_m2": 120}})
    assert response.status_code == 201
    request = response.get_json()
    validate("cs-service-request.schema.json", request)
    lines = {line["code"]: line for line in request["fee_lines"]}
    assert {code: line["amount"] for code, line in lines.items()} == {
        "BASE": "500.00", "AREA": "300.00", "VAT": "112.00", "STAMP": "10.00"}
    assert request["total"] == "922.00"
    assert request["status"] == "ASSESSED"
    assert re.fullmatch(r"SR-01-\d{8}", request["request_number"])
    # L2: each line carries its pool, the pool's budget chapter and item, and Cairo's account.
    assert lines["VAT"]["revenue_pool"] == "VAT"
    assert (lines["VAT"]["budget_chapter"], lines["VAT"]["budget_item"]) == ("1", "1-3-1")
    assert lines["VAT"]["settlement_account"] == "0108001"
    assert (lines["AREA"]["revenue_pool"], lines["AREA"]["settlement_account"]) == ("BLD", "0101001")


def test_default_units_apply_and_request_units_override_them(cs_client):
    default = cs_client.post("/api/service-requests", json={"governorate_code": "21", "service_code": "BPR"})
    assert default.get_json()["total"] == "922.00"
    assert default.get_json()["units"] == {"area_m2": 120}
    assert default.get_json()["fee_lines"][0]["settlement_account"] == "2101001"
    bigger = cs_client.post("/api/service-requests", json={
        "governorate_code": "21", "service_code": "BPR", "units": {"area_m2": 77}})
    amounts = [line["amount"] for line in bigger.get_json()["fee_lines"]]
    assert amounts == ["500.00", "192.50", "96.95", "10.00"]
    assert bigger.get_json()["total"] == "799.45"


def test_zero_units_are_refused_naming_the_unit(cs_client):
    # A breaker's case: area 0 assessed a 0.00 fee line that the collection service could not take,
    # so the request could never be paid.
    response = cs_client.post("/api/service-requests", json={
        "governorate_code": "01", "service_code": "BPR", "units": {"area_m2": 0}})
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "units.area_m2"


def test_an_assessment_above_the_largest_wire_amount_is_refused_naming_the_units():
    # A breaker's case: an edited catalog (huge rate) times a huge area published a total off contract.
    from simulators.citizen_services.app import create_app

    settings = load_settings()
    for service in settings["catalog"]["services"]:
        for line in service["fee_lines"]:
            if line["kind"] == "per_unit":
                line["rate"] = "999999999999.99"
    app = create_app(settings)
    try:
        response = app.test_client().post("/api/service-requests", json={
            "governorate_code": "01", "service_code": "BPR", "units": {"area_m2": 1000000}})
        assert response.status_code == 422
        assert response.get_json()["error"] == {"code": "AMOUNT_TOO_LARGE", "field": "units",
                                                "message": response.get_json()["error"]["message"]}
    finally:
        app.extensions["tahseel"].stop()


def _catalog_with(service: dict[str, Any]) -> dict[str, Any]:
    services = load_settings()["catalog"]["services"]
    return load_settings(overrides={"catalog": {"services": [*services, service]}})


def test_percentage_rounds_half_up_to_the_piaster():
    settings = _catalog_with({
        "code": "TST", "name_ar": "خدمة", "name_en": "Test", "fee_lines": [
            {"code": "TAX", "name_ar": "ض", "name_en": "Tax", "kind": "percentage", "revenue_pool": "VAT",
             "rate_basis_points": 1400, "of": ["BASE"]},
            {"code": "BASE", "name_ar": "أ", "name_en": "Base", "kind": "fixed", "revenue_pool": "LIC",
             "amount": "10.25"}]})
    app = create_app(settings)
    try:
        response = app.test_client().post("/api/service-requests",
                                          json={"governorate_code": "02", "service_code": "TST"})
        # 10.25 x 14 % = 1.435 -> 1.44 (half-up), even though the base line is listed after the tax.
        assert [line["amount"] for line in response.get_json()["fee_lines"]] == ["1.44", "10.25"]
        assert response.get_json()["total"] == "11.69"
    finally:
        app.extensions["tahseel"].stop()


def test_a_per_unit_line_without_units_names_the_missing_unit():
    settings = _catalog_with({
        "code": "TST", "name_ar": "خدمة", "name_en": "Test", "fee_lines": [
            {"code": "AREA", "name_ar": "م", "name_en": "Area", "kind": "per_unit", "revenue_pool": "LIC",
             "rate": "3.00", "unit": "frontage_m"}]})
    app = create_app(settings)
    try:
        client = app.test_client()
        response = client.post("/api/service-requests", json={"governorate_code": "02", "service_code": "TST"})
        assert response.status_code == 422
        assert response.get_json()["error"]["code"] == "MISSING_UNITS"
        assert response.get_json()["error"]["field"] == "units.frontage_m"
        ok = client.post("/api/service-requests", json={
            "governorate_code": "02", "service_code": "TST", "units": {"frontage_m": 7}})
        assert ok.get_json()["total"] == "21.00"
        # The failed attempt consumed no request number.
        assert ok.get_json()["request_number"] == "SR-02-00000001"
    finally:
        app.extensions["tahseel"].stop()


def test_catalog_views(cs_client):
    services = cs_client.get("/api/services").get_json()["services"]
    assert len(services) == 9
    bpr = next(s for s in services if s["code"] == "BPR")
    assert bpr["default_units"] == {"area_m2": 120}
    assert bpr["fee_lines"][2]["rate_basis_points"] == 1400
    governorates = cs_client.get("/api/governorates").get_json()["governorates"]
    assert [g["code"] for g in governorates] == sorted(egypt.GOVERNORATES)  # all 27
    assert governorates[0]["settlement_accounts"]["STAMP"] == "0109001"
    assert all(g["example"] for g in governorates)


# --- service requests -------------------------------------------------------------------------

def test_bad_requests_are_refused_naming_the_field_and_create_nothing(cs_client):
    cases = [
        ({"governorate_code": "99", "service_code": "BPR"}, 422, "VALIDATION_FAILED", "governorate_code"),
        ({"governorate_code": "01", "service_code": "XYZ"}, 422, "UNKNOWN_SERVICE", "service_code"),
        ({"governorate_code": "01", "service_code": "BPR", "local_unit": "GIZ-DOKKI"}, 422,
         "UNKNOWN_LOCAL_UNIT", "local_unit"),
        ({"governorate_code": "01", "service_code": "BPR", "citizen": {
            "name": "منى علي حسن", "national_id": "29913450100011", "mobile": "01012345678"}},
         422, "INVALID_NATIONAL_ID", "citizen.national_id"),
        ({"governorate_code": "01"}, 422, "VALIDATION_FAILED", "service_code"),
        ({"governorate_code": "01", "service_code": "BPR", "units": {"area_m2": -5}}, 422,
         "VALIDATION_FAILED", "units.area_m2"),
    ]
    for body, status, code, field in cases:
        response = cs_client.post("/api/service-requests", json=body)
        assert response.status_code == status, body
        assert response.get_json()["error"]["code"] == code, body
        assert response.get_json()["error"]["field"] == field, body
    malformed = cs_client.post("/api/service-requests", data=b"{not json", content_type="application/json")
    assert malformed.status_code == 400
    assert malformed.get_json()["error"]["code"] == "MALFORMED_BODY"
    created = cs_client.post("/api/service-requests", json={"governorate_code": "01", "service_code": "CTC"})
    assert created.get_json()["request_number"] == "SR-01-00000001"


def test_generated_citizen_is_real_shaped_and_reproducible(cs_client, cs_settings):
    first = cs_client.post("/api/service-requests", json={"governorate_code": "21", "service_code": "RNT"})
    citizen = first.get_json()["citizen"]
    nid = citizen["national_id"]
    assert egypt.national_id_problem(nid) is None
    assert nid[7:9] == "21"  # born in the governorate of the request
    assert int(nid[12]) % 2 == (1 if citizen["gender"] == "male" else 0)
    assert re.fullmatch(r"01[0125]\d{8}", citizen["mobile"])
    assert len(citizen["name"].split()) >= 3  # first, father's and family name (some are compound)
    validate("cs-service-request.schema.json", first.get_json())
    # Same seed, same sequence: another app gives the same citizen; a reset starts it over.
    other = create_app(cs_settings)
    try:
        again = other.test_client().post("/api/service-requests",
                                         json={"governorate_code": "21", "service_code": "RNT"})
        assert again.get_json()["citizen"] == citizen
    finally:
        other.extensions["tahseel"].stop()
    second = cs_client.post("/api/service-requests", json={"governorate_code": "21", "service_code": "RNT"})
    assert second.get_json()["citizen"] != citizen
    assert cs_client.post("/_admin/reset").status_code == 200
    after = cs_client.post("/api/service-requests", json={"governorate_code": "21", "service_code": "RNT"})
    assert after.get_json()["citizen"] == citizen
    assert after.get_json()["request_number"] == "SR-21-00000001"


def test_a_given_citizen_is_kept(new_request):
    citizen = {"name": "منى علي حسن", "national_id": "29001010100021", "mobile": "01112345678",
               "gender": "female"}
    assert new_request(citizen=citizen, local_unit="CAI-NASR")["citizen"] == citizen


def test_idempotency_key_replays_the_same_request(cs_client):
    body = {"governorate_code": "02", "service_code": "SLW"}
    first = cs_client.post("/api/service-requests", json=body, headers={"Idempotency-Key": "k-1"})
    replay = cs_client.post("/api/service-requests", json=body, headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.get_json() == first.get_json()
    other = cs_client.post("/api/service-requests", json={"governorate_code": "02", "service_code": "CTC"},
                           headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 409
    assert other.get_json()["error"]["field"] == "Idempotency-Key"
    fresh = cs_client.post("/api/service-requests", json=body)
    assert fresh.get_json()["request_number"] != first.get_json()["request_number"]


def test_get_request_and_unknown_request(cs_client, new_request):
    request = new_request()
    fetched = cs_client.get(f"/api/service-requests/{request['request_number']}")
    assert fetched.status_code == 200
    assert fetched.get_json() == request
    missing = cs_client.get("/api/service-requests/SR-01-99999999")
    assert missing.status_code == 404
    assert missing.get_json()["error"] == {
        "code": "UNKNOWN_REQUEST", "message": "no service request SR-01-99999999", "field": "request_number"}


# --- payment confirmations --------------------------------------------------------------------

def test_confirmation_is_recorded_once_and_replays_the_same_answer(cs_client, signed_post, new_request):
    request = new_request()
    body = confirmation_for(request)
    first = signed_post(CONFIRM, body)
    assert first.status_code == 201
    answer = first.get_json()
    assert problems("cs-payment-confirmation-result.schema.json", answer) == []
    assert (answer["status"], answer["payment_id"], answer["request_number"]) == (
        "CONFIRMED", "PAY-0001", request["request_number"])
    paid = cs_client.get(f"/api/service-requests/{request['request_number']}").get_json()
    assert (paid["status"], paid["payment_id"], paid["paid_at"]) == ("PAID", "PAY-0001", body["paid_at"])

    replay = signed_post(CONFIRM, body)
    assert replay.status_code == 200
    assert replay.get_json() == answer
    changed = signed_post(CONFIRM, dict(body, transaction_reference="another"))
    assert changed.status_code == 409
    assert changed.get_json()["error"]["code"] == "CONFLICT"
    listed = cs_client.get(f"{CONFIRM}?request_number={request['request_number']}").get_json()
    assert len(listed["confirmations"]) == 1
    assert listed["confirmations"][0]["amount"] == "922.00"


def test_a_wrong_or_missing_signature_is_refused_and_records_nothing(cs_client, signed_post, new_request):
    request = new_request()
    body = confirmation_for(request)
    wrong = signed_post(CONFIRM, body, secret="not-the-secret")
    assert wrong.status_code == 401
    assert wrong.get_json()["error"]["code"] == "BAD_SIGNATURE"
    unsigned = cs_client.post(CONFIRM, json=body)
    assert unsigned.status_code == 401
    assert unsigned.get_json()["error"]["code"] == "SIGNATURE_MISSING"
    # A signature made now is stale once the clock has moved past the replay window.
    assert cs_client.post("/_admin/clock", json={"advance": "10m"}).status_code == 200
    headers = {"X-Tahseel-Timestamp": "1772352000", "X-Tahseel-Signature": "v1=00"}
    stale = cs_client.post(CONFIRM, json=body, headers=headers)
    assert stale.get_json()["error"]["code"] == "SIGNATURE_EXPIRED"
    assert cs_client.get(CONFIRM).get_json()["confirmations"] == []
    assert cs_client.get(f"/api/service-requests/{request['request_number']}").get_json()["status"] == "ASSESSED"


def test_bad_confirmations_get_clear_errors_and_change_nothing(cs_client, signed_post, new_request):
    request = new_request()
    malformed = signed_post(CONFIRM, None, raw=b'{"payment_id": "P1",')
    assert malformed.status_code == 400
    assert malformed.get_json()["error"]["code"] == "MALFORMED_BODY"
    negative = signed_post(CONFIRM, confirmation_for(request, amount="-922.00"))
    assert negative.status_code == 422
    assert negative.get_json()["error"]["field"] == "amount"
    number_amount = signed_post(CONFIRM, confirmation_for(request, amount=922.0))
    assert (number_amount.status_code, number_amount.get_json()["error"]["field"]) == (422, "amount")
    short = signed_post(CONFIRM, confirmation_for(request, amount="900.00"))
    assert short.status_code == 422
    assert short.get_json()["error"] == {
        "code": "AMOUNT_MISMATCH", "field": "amount",
        "message": f"amount 900.00 is not the assessed total 922.00 of {request['request_number']}"}
    unknown = signed_post(CONFIRM, confirmation_for(request, request_number="SR-01-00009999"))
    assert unknown.status_code == 404
    assert unknown.get_json()["error"]["code"] == "UNKNOWN_REQUEST"
    assert cs_client.get(CONFIRM).get_json()["confirmations"] == []
    assert cs_client.get(f"/api/service-requests/{request['request_number']}").get_json()["status"] == "ASSESSED"
    # None of the refusals used up the payment id: a good confirmation with it still works.
    assert signed_post(CONFIRM, confirmation_for(request)).status_code == 201


def test_a_request_paid_by_one_payment_refuses_another(cs_client, signed_post, new_request):
    request = new_request()
    assert signed_post(CONFIRM, confirmation_for(request, "PAY-A")).status_code == 201
    second = signed_post(CONFIRM, confirmation_for(request, "PAY-B", channel="cash"))
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == "ALREADY_PAID"
    assert [c["payment_id"] for c in cs_client.get(CONFIRM).get_json()["confirmations"]] == ["PAY-A"]


def test_cancellation_makes_the_request_payable_again(cs_client, signed_post, new_request):
    request = new_request()
    number = request["request_number"]
    confirmed = signed_post(CONFIRM, confirmation_for(request, "PAY-A")).get_json()
    cancel = {"payment_id": "PAY-A", "request_number": number, "reason": "card payment refunded"}
    first = signed_post(CANCEL, cancel)
    assert first.status_code == 201
    assert first.get_json()["status"] == "CANCELLED"
    assert first.get_json()["confirmation_id"] == confirmed["confirmation_id"]
    assert problems("cs-payment-confirmation-result.schema.json", first.get_json()) == []
    state = cs_client.get(f"/api/service-requests/{number}").get_json()
    assert (state["status"], state["payment_id"], state["paid_at"]) == ("ASSESSED", None, None)
    replay = signed_post(CANCEL, cancel)
    assert (replay.status_code, replay.get_json()) == (200, first.get_json())
    assert signed_post(CANCEL, dict(cancel, reason="other")).status_code == 409
    assert signed_post(CANCEL, dict(cancel, payment_id="PAY-X")).status_code == 404
    assert signed_post(CANCEL, cancel, secret="forged").status_code == 401
    # A replayed confirmation of the cancelled payment does not pay the request again.
    again = signed_post(CONFIRM, confirmation_for(request, "PAY-A"))
    assert (again.status_code, again.get_json()["status"]) == (200, "CANCELLED")
    assert cs_client.get(f"/api/service-requests/{number}").get_json()["status"] == "ASSESSED"
    assert signed_post(CONFIRM, confirmation_for(request, "PAY-B")).status_code == 201
    assert cs_client.get(f"/api/service-requests/{number}").get_json()["payment_id"] == "PAY-B"


def test_cancellation_must_name_the_confirmed_request(signed_post, new_request):
    request, other = new_request(), new_request()
    signed_post(CONFIRM, confirmation_for(request, "PAY-A"))
    response = signed_post(CANCEL, {"payment_id": "PAY-A", "request_number": other["request_number"]})
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "REQUEST_MISMATCH"


def test_reset_forgets_requests_and_confirmations(cs_client, signed_post, new_request):
    request = new_request()
    signed_post(CONFIRM, confirmation_for(request))
    assert cs_client.post("/_admin/reset").status_code == 200
    assert cs_client.get(CONFIRM).get_json()["confirmations"] == []
    assert cs_client.get(f"/api/service-requests/{request['request_number']}").status_code == 404


def test_confirmations_are_journaled_for_scenarios(cs_client, signed_post, new_request):
    request = new_request()
    signed_post(CONFIRM, confirmation_for(request))
    signed_post(CONFIRM, confirmation_for(request))
    entries = cs_client.get(f"/_admin/journal?path={CONFIRM}&direction=in").get_json()["entries"]
    assert [e["status"] for e in entries if e["method"] == "POST"] == [201, 200]
