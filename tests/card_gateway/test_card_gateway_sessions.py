"""Merchant API of the card gateway: opening sessions, idempotency, authentication, status, expiry."""

from __future__ import annotations

from datetime import timedelta

from simulators.card_gateway.app import create_app
from simulators.common.clock import iso, parse_instant
from simulators.common.config import load_settings
from simulators.common.contracts import validate
from simulators.common.http import encode_json
from simulators.common.signing import sign_headers

MERCHANT_ID = "9001"


def test_create_session_returns_an_open_session_with_fee_total_and_expiry(merchant, app, session_body):
    response = merchant.create(session_body())

    assert response.status_code == 201
    session = response.get_json()
    validate("cg-session.schema.json", session)
    assert session["session_id"].startswith("CS") and len(session["session_id"]) == 18
    assert session["status"] == "OPEN"
    assert (session["amount"], session["collection_fee"], session["total"]) == ("1250.50", "0.00", "1250.50")
    assert session["expires_at"] == iso(parse_instant("2026-12-03T12:00:00+02:00") + timedelta(hours=24))
    assert session["payment_url"] == f"{app.extensions['tahseel'].url_of('card_gateway')}/pay/{session['session_id']}"


def test_collection_fee_from_settings_is_added_on_top_of_the_amount(session_body, tmp_path):
    settings = load_settings(overrides={"card_gateway": {"collection_fee": "2.50", "data_dir": str(tmp_path)}})
    app = create_app(settings)
    try:
        component = app.extensions["tahseel"]
        raw = encode_json(session_body())
        headers = sign_headers(component.secret("card_gateway_merchant"), raw, component.clock.now())
        headers.update({"X-Merchant-Id": MERCHANT_ID, "Content-Type": "application/json"})
        session = app.test_client().post("/api/sessions", data=raw, headers=headers).get_json()
    finally:
        app.extensions["tahseel"].stop()
    assert (session["amount"], session["collection_fee"], session["total"]) == ("1250.50", "2.50", "1253.00")


def test_same_request_id_and_body_returns_the_same_session_another_body_is_a_conflict(merchant, session_body):
    first = merchant.create(session_body())
    again = merchant.create(session_body())
    other = merchant.create(session_body(amount="99.00"))

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.get_json()["session_id"] == first.get_json()["session_id"]
    assert other.status_code == 409
    assert other.get_json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    assert other.get_json()["error"]["field"] == "merchant_request_id"
    assert merchant.get(first.get_json()["session_id"]).get_json()["amount"] == "1250.50"


def test_bad_signature_is_refused_and_changes_nothing(merchant, client, session_body):
    raw = encode_json(session_body())
    headers = merchant.headers(raw)
    headers["X-Tahseel-Signature"] = "v1=" + "0" * 64

    refused = client.post("/api/sessions", data=raw, headers=headers)

    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "BAD_SIGNATURE"
    # Had the refused call stored anything, this other body under the same id would be a 409.
    assert merchant.create(session_body(amount="10.00")).status_code == 201


def test_unknown_merchant_is_refused_before_the_body_is_read(merchant, client):
    raw = b"not json at all"
    response = client.post("/api/sessions", data=raw, headers=merchant.headers(raw, merchant_id="1234"))

    assert response.status_code == 401
    assert response.get_json()["error"] == {
        "code": "UNKNOWN_MERCHANT", "message": "X-Merchant-Id is missing or not a known merchant",
        "field": "X-Merchant-Id"}


def test_body_that_breaks_the_contract_names_the_field(merchant, session_body):
    response = merchant.create(session_body(amount=1250.5))

    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "amount"


def test_fee_lines_must_add_up_to_the_amount(merchant, session_body):
    lines = [{"code": "BASE", "amount": "1000.00"}, {"code": "VAT", "amount": "200.00"}]
    response = merchant.create(session_body(fee_lines=lines))

    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "AMOUNT_MISMATCH"
    assert response.get_json()["error"]["field"] == "fee_lines"


def test_status_query_is_signed_and_reports_expired_after_the_ttl(merchant, client, app, session_body):
    session_id = merchant.create(session_body()).get_json()["session_id"]

    unsigned = client.get(f"/api/sessions/{session_id}", headers={"X-Merchant-Id": MERCHANT_ID})
    assert unsigned.status_code == 401
    assert merchant.get(session_id).get_json()["status"] == "OPEN"

    app.extensions["tahseel"].clock.advance(timedelta(hours=24))
    assert merchant.get(session_id).get_json()["status"] == "EXPIRED"


def test_unknown_session_is_404_naming_the_session(merchant):
    response = merchant.get("CS0000000000000000")

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "SESSION_NOT_FOUND"
