"""Load the JSON Schemas in ``contracts/`` and validate messages against them.

Contracts are data: this module only finds, loads and applies them. Format checking is on
(``date-time``, ``date``, ``email``, …) so that a value that is not what the schema says is refused.
Errors name the field by its JSON path, using jsonschema's ``best_match``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

from .errors import ValidationFailed

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"


def _retrieve(uri: str) -> Resource:
    return Resource.from_contents(load_contract(uri))


@cache
def load_contract(name: str) -> Any:
    path = CONTRACTS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"no contract {name!r} in {CONTRACTS_DIR}")
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


_REGISTRY: Registry = Registry(retrieve=_retrieve)  # type: ignore[call-arg]


REQUIRED_FORMATS = ("date-time", "date", "email")


def check_format_support() -> None:
    """Fail at start-up if jsonschema would silently skip a format the contracts rely on."""
    missing = [f for f in REQUIRED_FORMATS if f not in Draft202012Validator.FORMAT_CHECKER.checkers]
    if missing:
        raise RuntimeError(f"jsonschema cannot check formats {missing}: install rfc3339-validator")


@cache
def validator(name: str) -> Draft202012Validator:
    check_format_support()
    schema = load_contract(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_REGISTRY,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def error_path(error: Any) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [r for r in error.validator_value if r not in error.instance]
        if missing:
            parts.append(str(missing[0]))
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        if extra:
            parts.append(str(extra[0]))
    return ".".join(parts) or "body"


def validate(name: str, instance: Any) -> None:
    """Raise :class:`ValidationFailed` naming the field when ``instance`` breaks contract ``name``."""
    error = best_match(validator(name).iter_errors(instance))
    if error is not None:
        field = error_path(error)
        raise ValidationFailed(f"{field}: {error.message}", field=field)


def problems(name: str, instance: Any) -> list[str]:
    """Every violation of contract ``name`` (for reports that list all, not just the best)."""
    return [f"{error_path(e)}: {e.message}" for e in validator(name).iter_errors(instance)]
