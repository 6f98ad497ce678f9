"""A service request's lifecycle on the simulated clock, and refusals recorded, not applied (P6)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from simulators.citizen_services.app import create_app
from simulators.common import signing
from simulators.common.config import load_settings
from simulators.common.contracts import validate
from simulators.common.http import encode_json

from .conftest import CLOCK_AT
from .test_citizen_services_api import CANCEL, CONFIRM, confirmation_for

CONFLICTS = "/api/confirmation-conflicts"


def _get(client: FlaskClient, number: str) -> dict[str, Any]:
    response = client.get(f"/api/service-requests/{number}")
    assert response.status_code == 200
    return response.get_json()


def _advance(client: FlaskClient, by: str) -> None:
    assert client.post("/_admin/clock", json={"advance": by}).status_code == 200


def _events(request: dict[str, Any]) -> list[tuple[str, str]]:
    return [(h["event"], h["status"]) for h in request["history"]]


def _signed(client: FlaskClient, path: str, body: dict[str, Any]) -> Any:
    """POST ``body`` signed as the collection service signs it, to an app built by ``client_with``."""
    app = client.application
    data = encode_json(body)
    headers = signing.sign_headers(app.extensions["tahseel"].settings["secrets"]["citizen_services_api"], data,
                                   app.extensions["tahseel"].clock.now())
    headers["Content-Type"] = "application/json"
    return client.post(path, data=data, headers=headers)


@pytest.fixture
def client_with() -> Iterator[Any]:
    """A test client of an app built with ``citizen_services`` settings overrides, clock at CLOCK_AT."""
    apps = []

    def make(**own: Any) -> FlaskClient:
        app = create_app(load_settings(overrides={"citizen_services": own}))
        apps.append(app)
        client = app.test_client()
        assert client.post("/_admin/clock", json={"set": CLOCK_AT}).status_code == 200
        return client

    yield make
    for app in apps:
        app.extensions["tahseel"].stop()


def test_the_inquiry_is_complete(cs_client, new_request):
    request = new_request(units={"area_m2": 120})
    answer = _get(cs_client, request["request_number"])
    validate("cs-service-request.schema.json", answer)
    assert answer["status"] == "ASSESSED"
    assert (answer["created_at"], answer["expires_at"]) == ("2026-03-01T08:00:00.000Z", "2026-03-31T08:00:00.000Z")
    assert _events(answer) == [("SUBMITTED", "SUBMITTED"), ("ASSESSED", "ASSESSED")]
    assert answer["history"][1]["total"] == "922.00"
    for line in answer["fee_lines"]:
        assert {"code", "name_ar", "name_en", "amount", "kind", "revenue_pool", "budget_chapter", "budget_item",
                "settlement_account"} <= set(line)
    assert answer["citizen"]["address"].endswith("القاهرة")


def test_an_unpaid_request_expires_on_the_clock_and_a_paid_one_does_not(cs_client, new_request, signed_post):
    unpaid, paid = new_request(), new_request()
    assert signed_post(CONFIRM, confirmation_for(paid)).status_code == 201
    assert cs_client.get("/_admin/clock").get_json()["next_due"] == "2026-03-31T08:00:00.000Z"
    _advance(cs_client, "29d23h59m")
    assert _get(cs_client, unpaid["request_number"])["status"] == "ASSESSED"
    _advance(cs_client, "1m")
    expired = _get(cs_client, unpaid["request_number"])
    assert expired["status"] == "EXPIRED"
    assert expired["history"][-1] == {"at": "2026-03-31T08:00:00.000Z", "event": "EXPIRED", "status": "EXPIRED"}
    assert _get(cs_client, paid["request_number"])["status"] == "PAID"
    assert cs_client.get("/_admin/clock").get_json()["next_due"] is None
    # An expired request cannot be withdrawn any more, and nothing changes.
    refused = cs_client.post(f"/api/service-requests/{unpaid['request_number']}/cancel", json={})
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (409, "REQUEST_NOT_CANCELLABLE")
    assert _get(cs_client, unpaid["request_number"]) == expired


def test_a_confirmation_after_the_expiry_is_applied_only_if_paid_in_time(client_with):
    client = client_with(request_ttl="2h")
    request = client.post("/api/service-requests", json={"governorate_code": "01", "service_code": "CTC"}).get_json()
    _advance(client, "3h")
    assert _get(client, request["request_number"])["status"] == "EXPIRED"
    late = confirmation_for(request, "PAY-LATE", paid_at="2026-03-01T11:00:00Z")  # an hour after the expiry
    refused = _signed(client, CONFIRM, late)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "REQUEST_EXPIRED"
    assert refused.get_json()["error"]["field"] == "request_number"
    assert _get(client, request["request_number"])["status"] == "EXPIRED"
    in_time = confirmation_for(request, "PAY-IN-TIME", paid_at="2026-03-01T09:30:00Z")  # P5: delivered late
    accepted = _signed(client, CONFIRM, in_time)
    assert accepted.status_code == 201
    paid = _get(client, request["request_number"])
    assert (paid["status"], paid["payment_id"]) == ("PAID", "PAY-IN-TIME")
    assert paid["history"][-1]["late_confirmation"] is True
    listed = client.get(CONFIRM).get_json()["confirmations"]
    assert [(c["payment_id"], c["late"]) for c in listed] == [("PAY-IN-TIME", True)]
    conflicts = client.get(CONFLICTS).get_json()["conflicts"]
    assert [(c["code"], c["payment_id"], c["http_status"]) for c in conflicts] == [("REQUEST_EXPIRED", "PAY-LATE", 409)]


def test_late_confirmations_can_be_refused_altogether(client_with):
    client = client_with(request_ttl="2h", accept_paid_before_expiry=False)
    request = client.post("/api/service-requests", json={"governorate_code": "02", "service_code": "TUC"}).get_json()
    _advance(client, "2h")
    answer = _signed(client, CONFIRM, confirmation_for(request, paid_at="2026-03-01T08:30:00Z"))
    assert (answer.status_code, answer.get_json()["error"]["code"]) == (409, "REQUEST_EXPIRED")


def test_a_cancelled_request_refuses_its_payment_and_records_it(cs_client, new_request, signed_post):
    request = new_request()
    number = request["request_number"]
    cancelled = cs_client.post(f"/api/service-requests/{number}/cancel", json={"reason": "filed twice"})
    assert cancelled.status_code == 200
    assert cancelled.get_json()["status"] == "CANCELLED"
    assert cancelled.get_json()["history"][-1]["reason"] == "filed twice"
    again = cs_client.post(f"/api/service-requests/{number}/cancel", json={})
    assert (again.status_code, again.get_json()) == (200, cancelled.get_json())
    body = confirmation_for(request)
    for _ in range(2):
        refused = signed_post(CONFIRM, body)
        assert (refused.status_code, refused.get_json()["error"]["code"]) == (409, "REQUEST_CANCELLED")
    [conflict] = cs_client.get(f"{CONFLICTS}?request_number={number}").get_json()["conflicts"]
    assert (conflict["kind"], conflict["code"], conflict["count"]) == ("confirmation", "REQUEST_CANCELLED", 2)
    assert conflict["body"] == body
    state = _get(cs_client, number)
    assert state["status"] == "CANCELLED" and state["payment_id"] is None
    assert state["history"][-1]["event"] == "CONFIRMATION_REFUSED"
    assert state["history"][-1]["conflict_id"] == conflict["conflict_id"]
    assert cs_client.get(CONFIRM).get_json()["confirmations"] == []


def test_cancel_refuses_bad_input_and_changes_nothing(cs_client, new_request):
    number = new_request()["request_number"]
    before = _get(cs_client, number)
    cases = [
        (cs_client.post(f"/api/service-requests/{number}/cancel", data=b"x", content_type="text/plain"), 415,
         "Content-Type"),
        (cs_client.post(f"/api/service-requests/{number}/cancel", json={"reason": "x" * 201}), 422, "reason"),
        (cs_client.post(f"/api/service-requests/{number}/cancel", json={"why": "x"}), 422, "why"),
        (cs_client.post("/api/service-requests/SR-01-00009999/cancel", json={}), 404, "request_number"),
    ]
    for response, status, field in cases:
        assert (response.status_code, response.get_json()["error"]["field"]) == (status, field)
    assert _get(cs_client, number) == before


def test_another_body_for_a_payment_id_is_a_recorded_conflict_not_applied(cs_client, new_request, signed_post):
    request, other = new_request(), new_request(service_code="CTC")
    first = confirmation_for(request, "PAY-1")
    assert signed_post(CONFIRM, first).status_code == 201
    cases = [
        (dict(first, amount="900.00"), 409, "CONFLICT"),                        # the same payment, other amount
        (confirmation_for(request, "PAY-2", channel="cash"), 409, "ALREADY_PAID"),  # a second payment
        (confirmation_for(other, "PAY-3", amount="26.00"), 422, "AMOUNT_MISMATCH"),
    ]
    for body, status, code in cases:
        answer = signed_post(CONFIRM, body)
        assert (answer.status_code, answer.get_json()["error"]["code"]) == (status, code)
    conflicts = cs_client.get(CONFLICTS).get_json()["conflicts"]
    assert [(c["code"], c["payment_id"], c["request_number"]) for c in conflicts] == [
        ("CONFLICT", "PAY-1", request["request_number"]), ("ALREADY_PAID", "PAY-2", request["request_number"]),
        ("AMOUNT_MISMATCH", "PAY-3", other["request_number"])]
    assert "amount" in conflicts[0]["message"] and conflicts[0]["body"]["amount"] == "900.00"
    # Nothing applied: one confirmation, with the first amount; the request paid by PAY-1.
    listed = cs_client.get(CONFIRM).get_json()["confirmations"]
    assert [(c["payment_id"], c["amount"]) for c in listed] == [("PAY-1", "922.00")]
    assert _get(cs_client, request["request_number"])["payment_id"] == "PAY-1"
    assert _get(cs_client, other["request_number"])["status"] == "ASSESSED"
    assert cs_client.get(f"{CONFLICTS}?request_number=SR-1").status_code == 400
    assert cs_client.post("/_admin/reset").status_code == 200
    assert cs_client.get(CONFLICTS).get_json()["conflicts"] == []


def test_the_office_works_on_a_paid_request_by_admin_call(cs_client, new_request, signed_post):
    request = new_request()
    number = request["request_number"]
    status_path = f"/_admin/service-requests/{number}/status"
    early = cs_client.post(status_path, json={"status": "IN_PROGRESS"})
    assert (early.status_code, early.get_json()["error"]["code"], early.get_json()["error"]["field"]) == (
        409, "INVALID_TRANSITION", "status")
    signed_post(CONFIRM, confirmation_for(request, "PAY-1"))
    skip = cs_client.post(status_path, json={"status": "COMPLETED"})
    assert skip.status_code == 409
    bad = cs_client.post(status_path, json={"status": "PAID"})
    assert (bad.status_code, bad.get_json()["error"]["field"]) == (422, "status")
    unknown = cs_client.post("/_admin/service-requests/SR-01-00009999/status", json={"status": "IN_PROGRESS"})
    assert unknown.status_code == 404
    started = cs_client.post(status_path, json={"status": "IN_PROGRESS"})
    assert (started.status_code, started.get_json()["status"]) == (200, "IN_PROGRESS")
    assert cs_client.post(status_path, json={"status": "IN_PROGRESS"}).get_json() == started.get_json()
    # The work has started: the payment cannot be cancelled here; the refusal is recorded.
    refused = signed_post(CANCEL, {"payment_id": "PAY-1", "request_number": number, "reason": "reversed"})
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (409, "WORK_STARTED")
    assert cs_client.get(CONFLICTS).get_json()["conflicts"][0]["kind"] == "cancellation"
    assert cs_client.get(CONFIRM).get_json()["confirmations"][0]["status"] == "CONFIRMED"
    done = cs_client.post(status_path, json={"status": "COMPLETED"}).get_json()
    assert done["status"] == "COMPLETED" and done["payment_id"] == "PAY-1"
    assert _events(done)[-4:] == [("PAID", "PAID"), ("WORK_STARTED", "IN_PROGRESS"),
                                  ("CANCELLATION_REFUSED", "IN_PROGRESS"), ("COMPLETED", "COMPLETED")]
    assert done["history"][-1]["by"] == "admin"
    again = signed_post(CONFIRM, confirmation_for(request, "PAY-2"))
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "ALREADY_PAID")
    validate("cs-service-request.schema.json", done)


def test_the_office_works_on_its_own_when_configured(client_with):
    client = client_with(work={"start_after": "1h", "complete_after": "1d"})
    request = client.post("/api/service-requests", json={"governorate_code": "29", "service_code": "CTC"}).get_json()
    assert _signed(client, CONFIRM, confirmation_for(request)).status_code == 201
    _advance(client, "59m")
    assert _get(client, request["request_number"])["status"] == "PAID"
    _advance(client, "1m")
    assert _get(client, request["request_number"])["status"] == "IN_PROGRESS"
    _advance(client, "1d")
    done = _get(client, request["request_number"])
    assert done["status"] == "COMPLETED"
    assert [(h["event"], h["at"], h.get("by")) for h in done["history"][-2:]] == [
        ("WORK_STARTED", "2026-03-01T09:00:00.000Z", "schedule"), ("COMPLETED", "2026-03-02T09:00:00.000Z", "schedule")]


def test_a_payment_cancelled_after_the_expiry_leaves_the_request_expired(client_with):
    client = client_with(request_ttl="2h")
    request = client.post("/api/service-requests", json={"governorate_code": "01", "service_code": "CTC"}).get_json()
    assert _signed(client, CONFIRM, confirmation_for(request, "PAY-1")).status_code == 201
    _advance(client, "3h")
    assert _get(client, request["request_number"])["status"] == "PAID"  # a paid request never expires
    cancel = {"payment_id": "PAY-1", "request_number": request["request_number"], "reason": "reversed"}
    assert _signed(client, CANCEL, cancel).status_code == 201
    state = _get(client, request["request_number"])
    assert _events(state)[-2:] == [("PAYMENT_CANCELLED", "ASSESSED"), ("EXPIRED", "EXPIRED")]
