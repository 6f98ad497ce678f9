"""Confirmations to citizen services are stored and forwarded until they arrive (P5)."""

from __future__ import annotations

from simulators.common.contracts import problems
from simulators.common.signing import verify


def confirmations(ref, status=None):
    query = f"?status={status}" if status else ""
    return ref.client.get(f"/api/confirmations{query}").get_json()["confirmations"]


def test_outage_then_recovery_delivers_exactly_one_confirmation(ref, citizen_services):
    citizen_services.confirmation_statuses = [503, 503, 503]
    order = ref.create_order()
    payment = ref.khales_payment(order).get_json()

    ref.tick()  # first attempt at the payment's time: 503
    row = confirmations(ref)[0]
    assert row["status"] == "PENDING" and row["attempts"] == 1 and row["last_status"] == 503
    assert row["next_attempt_at"] == ref.at("2026-12-07T10:00:30+02:00")  # backoff 30 s

    ref.advance("29s")
    assert len(citizen_services.confirmations) == 1  # not due yet
    ref.advance("1s")  # 503 again, next in 60 s
    ref.advance("60s")  # 503 again, next in 120 s
    assert confirmations(ref)[0]["next_attempt_at"] == ref.at("2026-12-07T10:03:30+02:00")
    ref.advance("2m")  # 201
    ref.advance("1h")
    ref.tick()

    assert [c["status"] for c in citizen_services.confirmations] == [503, 503, 503, 201]
    delivered = citizen_services.delivered()
    assert len(delivered) == 1
    assert delivered[0] == {"payment_id": payment["payment_id"], "request_number": "SR-01-00000001",
                            "bill_reference": order["bill_reference"], "amount": "855.00", "currency": "EGP",
                            "channel": "cash", "paid_at": ref.at("2026-12-07T10:00:00+02:00"),
                            "transaction_reference": "KH-TXN-1"}
    assert problems("cs-payment-confirmation.schema.json", delivered[0]) == []
    row = confirmations(ref, "DELIVERED")[0]
    assert row["attempts"] == 4 and row["delivered_at"] == ref.at("2026-12-07T10:03:30+02:00")
    assert confirmations(ref, "PENDING") == []
    assert ref.order(order["bill_reference"])["payments"][0]["confirmation"] == "CONFIRMED"


def test_backoff_keeps_its_last_value_forever(ref, citizen_services):
    citizen_services.confirmation_statuses = [503] * 20
    ref.khales_payment(ref.create_order())
    ref.tick()
    for _ in range(9):
        ref.advance("1h")

    row = confirmations(ref)[0]
    assert row["status"] == "PENDING" and row["attempts"] == 10
    assert row["next_attempt_at"] == ref.at("2026-12-07T20:00:00+02:00")  # + 3600 s, the last backoff


def test_conflict_is_a_permanent_failure_with_a_reason(ref, citizen_services):
    citizen_services.confirmation_statuses = [409]
    order = ref.create_order()
    ref.khales_payment(order)

    ref.tick()
    ref.advance("2h")

    row = confirmations(ref)[0]
    assert row["status"] == "FAILED" and row["attempts"] == 1 and "409" in row["last_error"]
    assert len(citizen_services.confirmations) == 1
    kinds = [e["kind"] for e in ref.client.get("/api/reconciliation/exceptions").get_json()["exceptions"]]
    assert kinds == ["CONFIRMATION_FAILED"]
    assert ref.order(order["bill_reference"])["payments"][0]["confirmation"] == "FAILED"


def test_confirmations_are_signed_for_citizen_services(ref, citizen_services):
    ref.khales_payment(ref.create_order())
    ref.tick()

    sent = citizen_services.confirmations[0]
    verify(ref.settings["secrets"]["citizen_services_api"], sent["headers"], sent["raw"],
           ref.app.extensions["tahseel"].clock.now())


def test_unknown_status_filter_is_400(ref):
    response = ref.client.get("/api/confirmations?status=LOST")

    assert response.status_code == 400 and response.get_json()["error"]["field"] == "status"
