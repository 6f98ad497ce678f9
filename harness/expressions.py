"""Variables, dotted paths and comparisons used by scenario steps.

Matchers return ``(matched, reason)`` like getsentry/responses' matchers, so a failing expectation
explains itself: which path, what was expected, what was seen.
"""

from __future__ import annotations

import re
from typing import Any

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.\-]*)\}")
_MISSING = object()
OPERATORS = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "matches", "contains", "present"}


class ScenarioError(Exception):
    """Raised when a scenario cannot run as written (unknown variable, bad step argument)."""


def lookup(data: Any, path: str) -> Any:
    """Follow ``a.b.0.c`` through dicts and lists; return the ``_MISSING`` marker if absent."""
    current = data
    if path in ("", "."):
        return current
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and re.fullmatch(r"-?\d+", part) and -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def is_missing(value: Any) -> bool:
    return value is _MISSING


def substitute(value: Any, variables: dict[str, Any]) -> Any:
    """Replace ``${name.path}`` in every string of ``value`` (a whole-string reference keeps its type)."""
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole:
            return _resolve(whole.group(1), variables)
        return _VAR.sub(lambda m: str(_resolve(m.group(1), variables)), value)
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def _resolve(reference: str, variables: dict[str, Any]) -> Any:
    name, _, path = reference.partition(".")
    if name not in variables:
        raise ScenarioError(f"unknown variable ${{{reference}}}; known: {', '.join(sorted(variables)) or 'none'}")
    value = lookup(variables[name], path) if path else variables[name]
    if value is _MISSING:
        raise ScenarioError(f"variable ${{{reference}}}: no {path!r} in {name}")
    return value


def compare(actual: Any, expected: Any) -> tuple[bool, str]:
    """Does ``actual`` satisfy ``expected`` (a value, or ``{op: value}``)? With the reason if not."""
    if isinstance(expected, dict) and expected and set(expected) <= OPERATORS:
        for op, want in expected.items():
            ok, reason = _apply(op, actual, want)
            if not ok:
                return False, reason
        return True, ""
    if is_missing(actual):
        return False, f"expected {expected!r}, but it is absent"
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, want in expected.items():
            ok, reason = compare(lookup(actual, key), want)
            if not ok:
                return False, f"{key}: {reason}"
        return True, ""
    if _equal(actual, expected):
        return True, ""
    return False, f"expected {expected!r}, got {actual!r}"


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return actual == expected
    return actual == expected


def _apply(op: str, actual: Any, want: Any) -> tuple[bool, str]:
    if op == "present":
        ok = (not is_missing(actual)) == bool(want)
        return ok, "" if ok else ("expected it to be present" if want else f"expected it absent, got {actual!r}")
    if is_missing(actual):
        return False, f"expected {op} {want!r}, but it is absent"
    try:
        ok = {
            "eq": lambda: _equal(actual, want),
            "ne": lambda: not _equal(actual, want),
            "gt": lambda: actual > want,
            "gte": lambda: actual >= want,
            "lt": lambda: actual < want,
            "lte": lambda: actual <= want,
            "in": lambda: actual in want,
            "matches": lambda: re.search(str(want), str(actual)) is not None,
            "contains": lambda: want in actual,
        }[op]()
    except TypeError:
        return False, f"cannot compare {actual!r} {op} {want!r}"
    return ok, "" if ok else f"expected {op} {want!r}, got {actual!r}"
