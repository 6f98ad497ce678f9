"""Payment orders: created once per service request, from the amounts citizen services assessed (P6)."""

from __future__ import annotations

from simulators.common.contracts import problems
from simulators.common.egypt import luhn_valid


def test_order_is_created_once_per_request(ref, citizen_services):
    first = ref.client.post("/api/orders", json={"request_number": "SR-01-00000001"})
    again = ref.client.post("/api/orders", json={"request_number": "SR-01-00000001"})

    assert first.status_code == 201
    assert again.status_code == 200
    order = first.get_json()
    assert again.get_json()["bill_reference"] == order["bill_reference"]
    assert problems("ref-order.schema.json", order) == []
    assert luhn_valid(order["bill_reference"]) and len(order["bill_reference"]) == 12
    assert order["amount"] == "855.00" and order["paid_amount"] == "0.00"
    assert order["status"] == "UNPAID" and order["payer_name"] == "أحمد محمد علي"
    assert order["expires_at"] == ref.at("2026-12-10T10:00:00+02:00")  # order_ttl 72h
    assert {line["revenue_pool"] for line in order["fee_lines"]} == {"BLD", "VAT"}
    assert ref.order(order["bill_reference"])["bill_reference"] == order["bill_reference"]


def test_unknown_request_is_404_and_creates_nothing(ref):
    response = ref.client.post("/api/orders", json={"request_number": "SR-01-99999999"})

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "UNKNOWN_REQUEST"
    assert response.get_json()["error"]["field"] == "request_number"


def test_citizen_services_down_is_503(ref, citizen_services):
    citizen_services.down = True

    response = ref.client.post("/api/orders", json={"request_number": "SR-01-00000001"})

    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"


def test_request_already_paid_is_409(ref, citizen_services, service_request):
    citizen_services.requests["SR-01-00000002"] = service_request("SR-01-00000002", status="PAID")

    response = ref.client.post("/api/orders", json={"request_number": "SR-01-00000002"})

    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "ALREADY_PAID"


def test_bad_bodies_are_refused(ref):
    malformed = ref.client.post("/api/orders", data=b'{"request_number": ', content_type="application/json")
    invalid = ref.client.post("/api/orders", json={"request_number": "42"})

    assert malformed.status_code == 400 and malformed.get_json()["error"]["field"] == "body"
    assert invalid.status_code == 422 and invalid.get_json()["error"]["field"] == "request_number"


def test_unknown_bill_is_404(ref):
    response = ref.client.get("/api/orders/123456789012")

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "UNKNOWN_BILL"


def test_expired_order_is_replaced_by_a_new_one(ref):
    order = ref.create_order()
    ref.advance("73h")

    assert ref.order(order["bill_reference"])["status"] == "EXPIRED"
    renewed = ref.client.post("/api/orders", json={"request_number": "SR-01-00000001"})
    assert renewed.status_code == 201
    assert renewed.get_json()["bill_reference"] != order["bill_reference"]
    assert ref.order(order["bill_reference"])["status"] == "EXPIRED"


def test_a_restarted_worker_comes_back_on_the_simulated_clock_and_releasing_it_is_kept_too(settings):
    # A breaker's case: after kill -9, gunicorn's new worker ran on the real clock while every other
    # party stayed on the scenario's time, so Khales' signed calls looked stale to it.
    from reference.app import create_app

    first = create_app(settings)
    moved = first.test_client().post("/_admin/clock", json={"set": "2026-12-07T10:00:00+02:00"})
    assert moved.status_code == 200
    first.extensions["tahseel"].stop()

    second = create_app(settings)  # same database file: the restarted worker
    try:
        clock = second.test_client().get("/_admin/clock").get_json()
        assert clock["simulated"] is True and clock["now"].startswith("2026-12-07T08:00:00")
        second.test_client().post("/_admin/clock", json={"real": True})
    finally:
        second.extensions["tahseel"].stop()
    third = create_app(settings)
    try:
        assert third.test_client().get("/_admin/clock").get_json()["simulated"] is False
    finally:
        third.extensions["tahseel"].stop()
