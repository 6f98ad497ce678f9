"""Every shipped scenario passes against the reference; a broken expectation fails loudly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.loader import discover, load_file
from harness.reports import junit, table
from harness.runner import Runner
from harness.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = discover([str(ROOT / "scenarios")])


@pytest.fixture(scope="module")
def runner(stack: Stack) -> Iterator[Runner]:
    runner = Runner(stack.urls, stack.settings)
    yield runner
    runner.close()


@pytest.mark.parametrize("path", SCENARIOS, ids=[f"{p.parent.name}/{p.stem}" for p in SCENARIOS])
def test_shipped_scenario_passes(runner: Runner, path: Path) -> None:
    result = runner.run_one(load_file(path))
    assert result.status == "passed", result.message + "\n" + repr(result.failed_step)


def test_expecting_two_credits_fails_naming_the_step_and_difference(runner: Runner, tmp_path: Path) -> None:
    text = (ROOT / "scenarios/duplicates/silent_call_delivered_twice.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "two_credits.yaml"
    broken.write_text(text.replace("payments.1: {present: false}", "payments.1.status: CAPTURED"), encoding="utf-8")
    result = runner.run([load_file(broken)])
    scenario = result.scenarios[0]
    assert not result.ok and scenario.status == "failed"
    assert "expect 1 'one payment, one credit'" in scenario.message
    assert "payments.1.status: expected 'CAPTURED', but it is absent" in scenario.message
    step = scenario.failed_step
    assert step is not None and step.evidence, "a failure carries journal evidence"
    assert any(e.get("path") == "/efinance/confirmations" for e in step.evidence)
    rendered = table(result)
    assert "FAILED" in rendered and "one payment, one credit" in rendered and "0 passed, 1 failed" in rendered
    assert "<failure" in junit(result)


def test_the_daily_report_keeps_its_contract(runner: Runner, stack: Stack) -> None:
    """Certification reads the report, so the reference must serve exactly ref-daily-report."""
    import requests

    from simulators.common.contracts import problems

    result = runner.run_one(load_file(ROOT / "scenarios/settlement/batch_late_by_one_day.yaml"))
    assert result.status == "passed", result.message
    report = requests.get(stack.urls["reference"] + "/api/reports/daily", params={"date": "2026-12-07"}).json()
    assert problems("ref-daily-report.schema.json", report) == []
    assert report["governorates"][0]["settlement"]["status"] == "LATE"
