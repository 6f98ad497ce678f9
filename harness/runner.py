"""Run scenarios against live parties and produce the one result model.

Per scenario: reset every party, set the shared clock to ``given.clock``, run each step (then let
due work settle), check its expectation, stop at the first failure, and keep evidence (the request,
the response and the parties' journal excerpts) for every failure.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from simulators.common.calendar import BusinessCalendar
from simulators.common.clock import iso, parse_instant

from . import __version__
from .actions import ACTIONS, DEFAULT_NAMES, MUST_SUCCEED, Observation
from .expressions import ScenarioError, compare, is_missing, lookup, substitute
from .loader import Scenario, Step
from .parties import Parties, PartyError, SharedClock
from .results import ERROR, FAILED, PASSED, SKIPPED, RunResult, ScenarioResult, StepResult

DEFAULT_START = "2026-12-07T10:00:00+02:00"  # a Monday in Cairo


class ScenarioRun:
    """The state of one scenario while it runs: variables, clock, journal marks."""

    def __init__(self, scenario: Scenario, parties: Parties, controlled: list[str], settings: dict[str, Any],
                 calendar: BusinessCalendar) -> None:
        self.scenario = scenario
        self.parties = parties
        self.controlled = controlled
        self.settings = settings
        self.given = scenario.given
        self.clock = SharedClock(parties, controlled, calendar)
        self.variables: dict[str, Any] = dict(scenario.given.get("vars") or {})
        self.journal_marks: dict[str, int] = {}

    def var(self, reference: str) -> Any:
        return substitute("${" + reference + "}", self.variables)


class Runner:
    def __init__(self, urls: dict[str, str], settings: dict[str, Any], *, target: str | None = None,
                 verbose: bool = False) -> None:
        self.parties = Parties(urls)
        self.settings = settings
        self.target = target
        self.verbose = verbose
        self.calendar = BusinessCalendar.from_config(settings.get("calendar"))
        parties = [p for p in urls if p != "reference"]
        self.has_test_clock = self.parties.offers_test_clock("reference")
        self.has_test_settings = self.parties.offers_hook("reference", "/_admin/settings")
        self.controlled = (["reference"] if self.has_test_clock else []) + parties

    def run(self, scenarios: list[Scenario]) -> RunResult:
        started = time.perf_counter()
        result = RunResult(target=self.target or "reference (embedded)", started_at=iso(datetime.now(UTC)),
                           tool_version=__version__)
        for scenario in scenarios:
            result.scenarios.append(self.run_one(scenario))
        result.duration_ms = round((time.perf_counter() - started) * 1000, 1)
        return result

    def run_one(self, scenario: Scenario) -> ScenarioResult:
        outcome = ScenarioResult(name=scenario.name, file=scenario.file, tags=scenario.tags,
                                 obligations=scenario.obligations)
        started = time.perf_counter()
        if "test_clock" in scenario.requires and not self.has_test_clock:
            outcome.status = SKIPPED
            outcome.message = "needs the target's test-clock hook (/_admin/clock), which it does not offer"
            return outcome
        if "test_settings" in scenario.requires and not self.has_test_settings:
            outcome.status = SKIPPED
            outcome.message = "needs the target's test-settings hook (/_admin/settings), which it does not offer"
            return outcome
        run = ScenarioRun(scenario, self.parties, self.controlled, self.settings, self.calendar)
        try:
            self._prepare(run)
        except (PartyError, ScenarioError, ValueError) as exc:
            outcome.status = ERROR
            outcome.message = f"could not prepare the parties: {exc}"
            return outcome
        for step in [*scenario.steps, *scenario.checks]:
            step_result = self._run_step(run, step)
            outcome.steps.append(step_result)
            if step_result.status != PASSED:
                outcome.status = step_result.status
                outcome.message = f"{step.label} '{step.name}': {step_result.message}"
                break
        outcome.duration_ms = round((time.perf_counter() - started) * 1000, 1)
        return outcome

    def _prepare(self, run: ScenarioRun) -> None:
        for party in self.controlled:
            self.parties.admin(party, "POST", "/reset")
        run.clock.set(parse_instant(run.given.get("clock", DEFAULT_START)))
        for party in self.controlled:
            entries = self.parties.admin(party, "GET", "/journal?limit=1").get("entries", [])
            run.journal_marks[party] = entries[-1]["id"] if entries else 0

    def _run_step(self, run: ScenarioRun, step: Step) -> StepResult:
        result = StepResult(index=step.index, name=step.name, action=step.action, label=step.label)
        started = time.perf_counter()
        try:
            args = substitute(step.args, run.variables)
            observation: Observation = ACTIONS[step.action](run, args)
            run.clock.quiesce()
            self._check(substitute(step.expect or {}, run.variables), step, observation, result)
            if result.status == PASSED:  # a failed step's own difference is the message, not a save error
                self._save(run, step, args, observation)
        except (ScenarioError, ValueError) as exc:
            result.status, result.message = ERROR, str(exc)
        except PartyError as exc:
            result.status, result.message = ERROR, str(exc)
        result.duration_ms = round((time.perf_counter() - started) * 1000, 1)
        try:
            result.clock = iso(run.clock.now())
        except PartyError:
            pass
        if result.status != PASSED:
            result.evidence.extend(self._journal_excerpts(run))
        return result

    def _save(self, run: ScenarioRun, step: Step, args: Any, observation: Observation) -> None:
        explicit = args.get("as") if isinstance(args, dict) else None
        name = explicit or DEFAULT_NAMES.get(step.action)
        value = observation.json if observation.json is not None else {"status": observation.status}
        # An expected refusal does not overwrite `order` & co.; a result named with `as:` is always kept.
        if name and (explicit or observation.status is None or observation.status < 400):
            run.variables[name] = value
        for var, path in step.save.items():
            found = lookup(value, path)
            if is_missing(found):
                raise ScenarioError(f"save {var}: no {path!r} in the step's response")
            run.variables[var] = found

    def _check(self, expect: dict[str, Any], step: Step, observation: Observation, result: StepResult) -> None:
        evidence = observation.summary()
        if "status" in expect:
            if observation.status != expect["status"]:
                self._fail(result, f"status expected {expect['status']}, got {observation.status}",
                           expect["status"], observation.status, evidence)
                return
        elif step.action in MUST_SUCCEED and (observation.status is None or observation.status >= 400):
            self._fail(result, f"expected success (2xx), got {observation.status}", "2xx", observation.status,
                       evidence)
            return
        for path, want in (expect.get("json") or {}).items():
            ok, reason = compare(lookup(observation.json, path), want)
            if not ok:
                self._fail(result, f"{path}: {reason}", want, lookup_or_none(observation.json, path), evidence)
                return
        if "count" in expect:
            items = observation.json if isinstance(observation.json, list) else []
            ok, reason = compare(len(items), expect["count"])
            if not ok:
                self._fail(result, f"count: {reason}", expect["count"], len(items), evidence)
                return
        if self.verbose:
            result.evidence.append(evidence)

    @staticmethod
    def _fail(result: StepResult, message: str, expected: Any, actual: Any, evidence: dict[str, Any]) -> None:
        result.status, result.message, result.expected, result.actual = FAILED, message, expected, actual
        result.evidence.append(evidence)

    def _journal_excerpts(self, run: ScenarioRun, per_party: int = 10) -> list[dict[str, Any]]:
        excerpts: list[dict[str, Any]] = []
        for party in run.controlled:
            try:
                since = run.journal_marks.get(party, 0)
                entries = self.parties.admin(party, "GET", f"/journal?since={since}&limit={per_party}")["entries"]
            except PartyError:
                continue
            for e in entries:
                excerpts.append({"party": party, "id": e["id"], "at": e["at"], "direction": e["direction"],
                                 "method": e["method"], "path": e["path"], "status": e["status"],
                                 "outcome": e["outcome"], "response": (e.get("response_body") or "")[:300]})
        return excerpts

    def close(self) -> None:
        self.parties.close()


def lookup_or_none(data: Any, path: str) -> Any:
    value = lookup(data, path)
    return None if is_missing(value) else value
