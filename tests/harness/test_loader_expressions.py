"""Scenario files fail early with file and line; expressions explain their mismatches."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.expressions import ScenarioError, compare, lookup, substitute
from harness.loader import ScenarioFileError, discover, load_file

ROOT = Path(__file__).resolve().parents[2]


def test_every_shipped_scenario_loads_and_cites_obligations() -> None:
    files = discover([str(ROOT / "scenarios")])
    assert len(files) >= 5
    themes = {f.parent.name for f in files}
    assert {"happy", "duplicates", "outages", "settlement"} <= themes
    for f in files:
        scenario = load_file(f)
        assert scenario.obligations and scenario.steps


def test_schema_error_names_file_line_and_expectation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: a bad scenario\nobligations: [E1]\nsteps:\n  - order: {}\n  - pay_cash: {amount: 12.5}\n",
                   encoding="utf-8")
    with pytest.raises(ScenarioFileError) as info:
        load_file(bad)
    assert info.value.file == str(bad)
    assert info.value.line == 5
    assert "12.5 is not of type 'string'" in info.value.message


def test_a_step_needs_exactly_one_action(tmp_path: Path) -> None:
    bad = tmp_path / "two.yaml"
    bad.write_text("name: two actions\nobligations: [E1]\nsteps:\n  - name: x\n    expect: {status: 200}\n",
                   encoding="utf-8")
    with pytest.raises(ScenarioFileError) as info:
        load_file(bad)
    assert info.value.line == 4 and "exactly one action" in info.value.message


def test_unknown_obligation_and_bad_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "ob.yaml"
    bad.write_text("name: obligation\nobligations: [Z9]\nsteps:\n  - order: {}\n", encoding="utf-8")
    with pytest.raises(ScenarioFileError, match="obligations.0"):
        load_file(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ScenarioFileError, match="not valid YAML"):
        load_file(broken)


def test_substitution_and_paths() -> None:
    variables = {"order": {"bill_reference": "123456789012", "payments": [{"amount": "1.00"}]}}
    assert substitute("${order.bill_reference}", variables) == "123456789012"
    assert substitute({"p": "/api/orders/${order.bill_reference}"}, variables) == {"p": "/api/orders/123456789012"}
    assert substitute("${order.payments}", variables) == [{"amount": "1.00"}]  # keeps its type
    assert lookup(variables, "order.payments.0.amount") == "1.00"
    with pytest.raises(ScenarioError, match="unknown variable"):
        substitute("${nothing.here}", variables)


def test_compare_explains_itself() -> None:
    assert compare("PAID", "PAID") == (True, "")
    assert compare("UNPAID", "PAID") == (False, "expected 'PAID', got 'UNPAID'")
    assert compare(3, {"gte": 2}) == (True, "")
    assert compare(1, {"gte": 2}) == (False, "expected gte 2, got 1")
    assert compare(lookup({}, "x"), {"present": False}) == (True, "")
    ok, reason = compare(lookup({}, "x"), "PAID")
    assert not ok and "absent" in reason
    assert compare(True, 1)[0] is False  # booleans are not numbers


def test_every_action_the_schema_allows_has_an_implementation() -> None:
    from harness.actions import ACTIONS as IMPLEMENTED
    from harness.loader import ACTIONS as DECLARED

    assert set(DECLARED) == set(IMPLEMENTED)
