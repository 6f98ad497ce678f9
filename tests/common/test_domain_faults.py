"""Domain faults declared by a part of a party, asked kind by kind; a domain fault losing an answer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask, jsonify

from simulators.common.clock import Clock
from simulators.common.component import Component
from simulators.common.config import load_settings
from simulators.common.errors import ValidationFailed
from simulators.common.faults import FaultInjector


def test_declared_kinds_are_validated_and_taken_kind_by_kind() -> None:
    faults = FaultInjector(Clock(datetime(2026, 12, 3, 10, tzinfo=UTC)), {"late_batch"})

    def validate(spec: dict) -> None:
        if "after" not in (spec.get("params") or {}):
            raise ValidationFailed("params.after is required", field="params.after")

    faults.declare({"slow", "lost"}, validate)
    assert faults.domain_kinds == {"late_batch", "slow", "lost"}
    with pytest.raises(ValidationFailed) as refused:
        faults.add({"direction": "domain", "kind": "slow"})
    assert refused.value.field == "params.after" and faults.list() == []
    faults.add({"direction": "domain", "kind": "slow", "params": {"after": "1m"}, "count": 1})
    faults.add({"direction": "domain", "kind": "lost", "params": {"after": "1m"}, "count": 1})
    assert faults.take("domain", "x", kinds=("lost",)).kind == "lost"
    assert faults.take("domain", "x", kinds=("lost",)) is None  # used up; "slow" kept its count
    assert faults.take("domain", "x", kinds=("slow",)).kind == "slow"


def test_a_domain_fault_drops_the_answer_only_inside_a_request() -> None:
    app = Flask("dropper")
    component = Component("dropper", load_settings(), ticker=False)
    assert component.serving_request() is False and component.drop_answer(object()) is False

    @app.post("/api/work")
    def work():  # type: ignore[no-untyped-def]
        return jsonify(serving=component.serving_request())

    component.install(app)
    assert app.test_client().post("/api/work").get_json() == {"serving": True}
