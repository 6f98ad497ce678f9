"""Outages of the central system (P5) as declared faults, on a real loopback socket: the link down for a
window of simulated time, intermittent 5xx at a seeded rate, a confirmation taken whose answer is lost."""

from __future__ import annotations

import pytest
import requests

from .test_citizen_services_api import CONFIRM, confirmation_for


def _request(live, governorate: str = "01", service: str = "CTC") -> dict:
    response = live.post("/api/service-requests", {"governorate_code": governorate, "service_code": service})
    assert response.status_code == 201
    return response.json()


def test_a_confirmation_taken_but_its_answer_lost_is_recorded_once_and_replayed(live_cs):
    live = live_cs()
    request = _request(live)
    fault = live.post("/_admin/faults", {"kind": "drop_response", "endpoint": CONFIRM, "method": "POST", "count": 1})
    assert fault.status_code == 201
    body = confirmation_for(request, "PAY-LOST")
    with pytest.raises(requests.ConnectionError):
        live.signed_post(CONFIRM, body)
    # The work was done: the request is paid, the confirmation recorded once.
    assert live.get(f"/api/service-requests/{request['request_number']}").json()["status"] == "PAID"
    entries = live.get(f"/_admin/journal?path={CONFIRM}&direction=in&method=POST").json()["entries"]
    assert [(e["status"], e["outcome"]) for e in entries] == [(201, "fault:drop_response")]
    # The sender retries with the same payment id: the same answer, nothing applied twice.
    retry = live.signed_post(CONFIRM, body)
    assert retry.status_code == 200 and retry.json()["payment_id"] == "PAY-LOST"
    assert [c["payment_id"] for c in live.get(CONFIRM).json()["confirmations"]] == ["PAY-LOST"]
    assert live.get("/api/confirmation-conflicts").json()["conflicts"] == []


def test_the_link_down_for_a_window_of_simulated_time(live_cs):
    live = live_cs()
    request = _request(live)
    assert live.post("/_admin/faults", {"kind": "down", "for": "1d"}).status_code == 201
    down = live.signed_post(CONFIRM, confirmation_for(request))
    assert (down.status_code, down.json()["error"]["code"]) == (503, "DOWN")
    assert live.get(f"/api/service-requests/{request['request_number']}").status_code == 503
    assert live.post("/_admin/clock", {"advance": "23h59m"}).status_code == 200
    assert live.signed_post(CONFIRM, confirmation_for(request)).status_code == 503
    assert live.post("/_admin/clock", {"advance": "1m"}).status_code == 200
    assert live.signed_post(CONFIRM, confirmation_for(request)).status_code == 201
    assert len(live.get(CONFIRM).json()["confirmations"]) == 1


def test_intermittent_errors_at_a_seeded_rate(live_cs):
    live = live_cs()
    spec = {"kind": "error", "endpoint": "/api/services", "params": {"status": 503, "rate": 0.3, "seed": 42}}
    assert live.post("/_admin/faults", spec).status_code == 201

    def pattern() -> list[int]:
        return [live.get("/api/services").status_code for _ in range(60)]

    first = pattern()
    assert set(first) == {200, 503}
    assert 8 <= first.count(503) <= 30  # about 30 % of 60
    [listed] = live.get("/_admin/faults").json()["faults"]
    assert (listed["hits"], listed["spared"]) == (first.count(503), first.count(200))
    # The same seed, the same calls: the same errors on every run.
    assert live.post("/_admin/reset").status_code == 200
    assert live.post("/_admin/faults", spec).status_code == 201
    assert pattern() == first
    for bad, field in (({"rate": 1.5}, "params.rate"), ({"rate": "half"}, "params.rate"),
                       ({"rate": 0.5, "seed": "x"}, "params.seed")):
        refused = live.post("/_admin/faults", {"kind": "error", "params": bad})
        assert (refused.status_code, refused.json()["error"]["field"]) == (422, field)


def test_a_count_limited_intermittent_fault_counts_hits_only(live_cs):
    live = live_cs()
    spec = {"kind": "error", "endpoint": "/api/governorates", "count": 3, "params": {"rate": 0.5, "seed": 1}}
    assert live.post("/_admin/faults", spec).status_code == 201
    statuses = [live.get("/api/governorates").status_code for _ in range(40)]
    assert statuses.count(500) == 3
