"""One result model for a run; every report format (table, JUnit, JSON) renders from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"


@dataclass
class StepResult:
    index: int
    name: str
    action: str
    status: str = PASSED
    duration_ms: float = 0.0
    message: str = ""
    expected: Any = None
    actual: Any = None
    clock: str = ""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    label: str = ""


@dataclass
class ScenarioResult:
    name: str
    file: str
    tags: list[str]
    obligations: list[str]
    status: str = PASSED
    duration_ms: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    message: str = ""

    @property
    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps if s.status in (FAILED, ERROR)), None)


@dataclass
class RunResult:
    target: str
    started_at: str
    scenarios: list[ScenarioResult] = field(default_factory=list)
    duration_ms: float = 0.0
    tool_version: str = ""
    seed: int | None = None

    @property
    def counts(self) -> dict[str, int]:
        out = {PASSED: 0, FAILED: 0, ERROR: 0, SKIPPED: 0}
        for scenario in self.scenarios:
            out[scenario.status] = out.get(scenario.status, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        counts = self.counts
        return counts[FAILED] == 0 and counts[ERROR] == 0 and bool(self.scenarios)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = self.counts
        data["ok"] = self.ok
        return data
