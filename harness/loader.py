"""Scenario files → validated scenario models, with the file and line of every error.

Validation happens before anything runs: the schema (``contracts/scenario.schema.json``, format
checking on) and the rule that each step has exactly one action. Errors name file, line and what
was expected, as tavern does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema.exceptions import best_match

from simulators.common.contracts import load_contract, validator

STEP_KEYS = {"name", "save", "expect"}
# The actions are whatever the scenario schema lets a step hold besides name / save / expect.
ACTIONS = tuple(k for k in load_contract("scenario.schema.json")["$defs"]["step"]["properties"] if k not in STEP_KEYS)


class ScenarioFileError(Exception):
    """Raised when a scenario file cannot be read or breaks the scenario schema."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file, self.line, self.message = file, line, message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")


@dataclass
class Step:
    index: int
    action: str
    args: Any
    name: str
    save: dict[str, str] = field(default_factory=dict)
    expect: dict[str, Any] | None = None
    line: int | None = None
    label: str = ""  # "step 3" or "expect 1": how reports name it


@dataclass
class Scenario:
    name: str
    file: str
    obligations: list[str]
    tags: list[str]
    steps: list[Step]
    checks: list[Step]
    given: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    requires: list[str] = field(default_factory=list)
    seed: int | None = None
    line: int | None = None


def _line_of(node: yaml.Node | None, path: list[Any]) -> int | None:
    """1-based line of the YAML node at ``path`` (deepest node found along it)."""
    best = node.start_mark.line + 1 if node is not None else None
    current = node
    for part in path:
        if isinstance(current, yaml.MappingNode):
            nxt = next((v for k, v in current.value if k.value == str(part)), None)
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int) and part < len(current.value):
            nxt = current.value[part]
        else:
            nxt = None
        if nxt is None:
            break
        current = nxt
        best = current.start_mark.line + 1
    return best


def load_file(path: str | Path) -> Scenario:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except OSError as exc:
        raise ScenarioFileError(file, None, f"cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ScenarioFileError(file, mark.line + 1 if mark else None, f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioFileError(file, 1, "a scenario file holds one mapping (name, obligations, steps…)")
    error = best_match(validator("scenario.schema.json").iter_errors(data))
    if error is not None:
        path_parts = list(error.absolute_path)
        where = ".".join(str(p) for p in path_parts) or "top level"
        raise ScenarioFileError(file, _line_of(node, path_parts), f"{where}: {error.message}")
    steps = [_step(file, node, ["steps", i], i + 1, raw, f"step {i + 1}") for i, raw in enumerate(data["steps"])]
    checks = [_step(file, node, ["expect", i], len(steps) + i + 1, raw, f"expect {i + 1}")
              for i, raw in enumerate(data.get("expect") or [])]
    return Scenario(
        name=data["name"], file=file, obligations=list(data["obligations"]), tags=list(data.get("tags") or []),
        steps=steps, checks=checks, given=dict(data.get("given") or {}),
        description=data.get("description", ""), requires=list(data.get("requires") or []),
        seed=data.get("seed"), line=1,
    )


def _step(file: str, node: yaml.Node | None, path: list[Any], index: int, raw: dict[str, Any],
          label: str) -> Step:
    actions = [k for k in raw if k not in STEP_KEYS]
    line = _line_of(node, path)
    if len(actions) != 1:
        found = ", ".join(actions) or "none"
        raise ScenarioFileError(file, line, f"{label} must have exactly one action of "
                                            f"{', '.join(ACTIONS)} (found: {found})")
    action = actions[0]
    return Step(index=index, action=action, args=raw[action], name=raw.get("name") or action,
                save=dict(raw.get("save") or {}), expect=raw.get("expect"), line=line, label=label)


def discover(paths: list[str]) -> list[Path]:
    """Every ``*.yaml`` scenario under ``paths`` (files or folders), in a stable order.

    Folders named ``stages`` hold reusable parts, not scenarios, and are skipped.
    """
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*.y*ml") if "stages" not in f.parts))
        elif p.is_file():
            found.append(p)
        else:
            raise ScenarioFileError(raw, None, "no such file or folder")
    return found
