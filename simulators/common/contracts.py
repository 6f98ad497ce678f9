"""Load the JSON Schemas in ``contracts/`` and validate messages against them.

Contracts are data: this module only finds, loads and applies them. Format checking is on
(``date-time``, ``date``, ``email``, …) so that a value that is not what the schema says is refused.
Errors name the field by its JSON path, using jsonschema's ``best_match``.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

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


@cache
def _registry() -> Registry:
    """Every contract, loaded and crawled once: a ``$ref`` to another contract is then a lookup, not a
    retrieval and a crawl of the registry on every use (which made validating the settings, with a
    sender per governorate, take a quarter of a second)."""
    resources = [(path.name, DRAFT202012.create_resource(load_contract(path.name)))
                 for path in sorted(CONTRACTS_DIR.glob("*.json"))]
    return _REGISTRY.with_resources(resources).crawl()


_END_ANCHOR = re.compile(r"(?<!\\)\$")


@cache
def _ecma(pattern: str) -> re.Pattern[str]:
    """A JSON Schema pattern with ECMA-262 meaning: ``\\d`` is ASCII, ``$`` is the very end.

    Python's ``$`` also matches before a final newline and its ``\\d`` matches any Unicode digit,
    so ``"KHT1\\n"`` and Arabic-Indic digits passed ``^[0-9A-Z]+$``-style patterns.
    """
    return re.compile(_END_ANCHOR.sub(r"\\Z", pattern), re.ASCII)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if validator.is_type(instance, "string") and not _ecma(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


ContractValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


REQUIRED_FORMATS = ("date-time", "date", "email")


def check_format_support() -> None:
    """Fail at start-up if jsonschema would silently skip a format the contracts rely on."""
    missing = [f for f in REQUIRED_FORMATS if f not in Draft202012Validator.FORMAT_CHECKER.checkers]
    if missing:
        raise RuntimeError(f"jsonschema cannot check formats {missing}: install rfc3339-validator")


@cache
def validator(name: str) -> Any:
    check_format_support()
    schema = load_contract(name)
    Draft202012Validator.check_schema(schema)
    return ContractValidator(schema, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)


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
