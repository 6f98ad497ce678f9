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
from simulators.common.yamlfile import YamlFileError, line_of, load_yaml_file

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


def load_file(path: str | Path) -> Scenario:
    file = str(path)
    try:  # the shared YAML reader: parsed once, a key written twice refused with its line
        data, node = load_yaml_file(path)
    except YamlFileError as exc:
        text = f"{exc.field}: {exc.message}" if exc.field else exc.message
        raise ScenarioFileError(file, exc.line, text) from None
    if not isinstance(data, dict):
        raise ScenarioFileError(file, 1, "a scenario file holds one mapping (name, obligations, steps…)")
    error = best_match(validator("scenario.schema.json").iter_errors(data))
    if error is not None:
        path_parts = list(error.absolute_path)
        where = ".".join(str(p) for p in path_parts) or "top level"
        raise ScenarioFileError(file, line_of(node, path_parts), f"{where}: {error.message}")
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
    line = line_of(node, path)
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
