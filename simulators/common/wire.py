"""Strict parsing of values that come off the wire: ASCII digits, whole-string matches, no surprises.

Python's ``str.isdigit`` and ``\\d`` accept Arabic-Indic and other Unicode digits, ``$`` matches
before a final newline, and ``date.fromisoformat`` accepts ``20261203`` and ``2026-W01``. Each of
those let bad input through somewhere once; every component parses wire values here instead.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from .clock import parse_instant
from .errors import ApiError, ValidationFailed

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def ascii_digits(value: Any, *, length: int | tuple[int, int] | None = None) -> bool:
    """True when ``value`` is a string of ASCII digits only (of ``length`` or within ``(lo, hi)``)."""
    if not isinstance(value, str) or not _DIGITS.fullmatch(value):
        return False
    if length is None:
        return True
    lo, hi = (length, length) if isinstance(length, int) else length
    return lo <= len(value) <= hi


def is_date(text: Any) -> bool:
    """Is ``text`` a real ``YYYY-MM-DD`` date? (For readers that flag a bad value instead of raising.)"""
    if not isinstance(text, str) or not _DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def parse_date(value: Any, field: str, error: type[ApiError] = ValidationFailed) -> date:
    """A ``YYYY-MM-DD`` calendar date, or ``error`` (a query string's 400, a body's 422) naming ``field``."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise error(f"{field} must be a date written YYYY-MM-DD", field=field)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise error(f"{field} {value!r} is not a real date", field=field) from None


def parse_instant_field(value: Any, field: str) -> datetime:
    """An RFC 3339 instant with an offset, or :class:`ValidationFailed` naming ``field``."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be an RFC 3339 date-time", field=field)
    try:
        return parse_instant(value)
    except ValueError:
        raise ValidationFailed(f"{field} {value[:40]!r} is not a usable RFC 3339 date-time", field=field) from None
