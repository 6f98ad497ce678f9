"""Signing, declared faults, the clock and due work, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulators.common.clock import Clock, parse_duration
from simulators.common.errors import BadSignature, ValidationFailed
from simulators.common.faults import FaultInjector
from simulators.common.scheduler import Scheduler
from simulators.common.signing import sign_headers, verify

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def test_signature_round_trip_and_tampering() -> None:
    body = b'{"amount":"10.00"}'
    headers = sign_headers("s" * 20, body, NOW)
    verify("s" * 20, headers, body, NOW)
    with pytest.raises(BadSignature):
        verify("s" * 20, headers, b'{"amount":"99.00"}', NOW)
    with pytest.raises(BadSignature):
        verify("t" * 20, headers, body, NOW)
    with pytest.raises(BadSignature) as info:
        verify("s" * 20, headers, body, NOW + timedelta(minutes=6))
    assert info.value.code == "SIGNATURE_EXPIRED"
    with pytest.raises(BadSignature) as info:
        verify("s" * 20, {}, body, NOW)
    assert info.value.code == "SIGNATURE_MISSING"


def test_fault_count_and_window_on_the_simulated_clock() -> None:
    clock = Clock(NOW)
    faults = FaultInjector(clock, {"late_batch"})
    faults.add({"kind": "down", "endpoint": "/api/*", "count": 2})
    assert faults.take("in", "/api/x", method="POST") is not None
    assert faults.take("in", "/other", method="POST") is None
    assert faults.take("in", "/api/y") is not None
    assert faults.take("in", "/api/z") is None  # count used up
    faults.add({"kind": "down", "for": "2h"})
    clock.advance(timedelta(hours=1, minutes=59))
    assert faults.take("in", "/x") is not None
    clock.advance(timedelta(minutes=1))
    assert faults.take("in", "/x") is None
    faults.add({"kind": "late_batch", "direction": "domain", "match": {"governorate_code": "01"}})
    assert faults.take("domain", "batch", governorate_code="02") is None
    assert faults.take("domain", "batch", governorate_code="01").kind == "late_batch"


@pytest.mark.parametrize("spec,field", [({"kind": "explode"}, "kind"), ({"kind": "down", "count": 0}, "count"),
                                        ({"kind": "down", "direction": "sideways"}, "direction"),
                                        ({"kind": "delay", "params": {"seconds": 600}}, "params.seconds"),
                                        ({"kind": "down", "for": "1h", "until": "2026-12-08T00:00:00Z"}, "for"),
                                        ({"kind": "error", "params": {"status": 200}}, "params.status"),
                                        ({"kind": "error", "params": {"status": 302}}, "params.status")])
def test_bad_fault_specs_name_the_field(spec: dict, field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        FaultInjector(Clock(NOW)).add(spec)
    assert info.value.field == field


def test_due_work_runs_in_time_order_only_when_the_clock_passes_it() -> None:
    clock = Clock(NOW)
    scheduler = Scheduler(clock)
    done: list[str] = []
    scheduler.schedule(NOW + timedelta(minutes=5), "b", lambda: done.append("b"))
    scheduler.schedule(NOW + timedelta(minutes=1), "a", lambda: done.append("a"))
    assert scheduler.run_due() == 0 and done == []
    assert scheduler.next_due() == NOW + timedelta(minutes=1)
    clock.advance(timedelta(minutes=10))
    assert scheduler.run_due() == 2
    assert done == ["a", "b"]


def test_durations() -> None:
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration(90) == timedelta(seconds=90)
    for bad in ("-2h", "soon", "2 parsecs", True):
        with pytest.raises(ValueError):
            parse_duration(bad)
