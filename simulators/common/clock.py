"""One clock per component, real by default, simulated when a harness takes it over.

Every component reads time only from its :class:`Clock`. In a scenario run the harness sets the
clock of every component through ``/_admin/clock``, so that two business days pass in milliseconds
and work that falls due (webhook retries, outbox retries, settlement at T+2) runs in order.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

CAIRO = ZoneInfo("Africa/Cairo")


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 instant; a value without an offset is read as Cairo local time."""
    if len(text) > 10 and text[10] in "tT ":
        text = text[:10] + "T" + text[11:]  # RFC 3339 allows a lower-case t and z
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
        if value.tzinfo is None:
            value = value.replace(tzinfo=CAIRO)
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-23:59 is past the last representable instant
        raise ValueError(f"instant out of range: {text[:40]!r}") from None


def iso(value: datetime) -> str:
    """Render an aware instant as ISO 8601 in UTC with a ``Z`` (the wire format of every party)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cairo(value: datetime) -> datetime:
    """The same instant in Cairo local time (daylight saving included)."""
    return value.astimezone(CAIRO)


EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2999, 12, 31, tzinfo=UTC)


def _check_range(instant: datetime) -> datetime:
    """Simulated time stays within 2000-2999: calendars, holidays and dates all work there."""
    if not EARLIEST <= instant <= LATEST:
        raise ValueError(f"the simulated clock stays between {EARLIEST.date()} and {LATEST.date()}")
    return instant


class Clock:
    """A clock that is real until it is set, then simulated.

    A simulated clock stands still between ``set`` / ``advance`` calls: nothing in a component
    may depend on real time passing while a scenario runs.
    """

    def __init__(self, now: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._simulated: datetime | None = now.astimezone(UTC) if now else None

    @property
    def simulated(self) -> bool:
        return self._simulated is not None

    def now(self) -> datetime:
        with self._lock:
            if self._simulated is not None:
                return self._simulated
        return datetime.now(UTC)

    def set(self, instant: datetime) -> datetime:
        """Switch to simulated time at ``instant`` (aware)."""
        if instant.tzinfo is None:
            raise ValueError("clock instants must carry a time zone")
        _check_range(instant)
        with self._lock:
            self._simulated = instant.astimezone(UTC)
            return self._simulated

    def advance(self, delta: timedelta) -> datetime:
        """Move simulated time forward (a real clock is first frozen at the real now)."""
        if delta < timedelta(0):
            raise ValueError("the clock only moves forward")
        with self._lock:
            base = self._simulated if self._simulated is not None else datetime.now(UTC)
            self._simulated = _check_range(base + delta)
            return self._simulated

    def use_real_time(self) -> None:
        with self._lock:
            self._simulated = None


_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "seconds": 1, "m": 60, "min": 60, "minutes": 60, "h": 3600,
          "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400}
_DURATION_PART = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,6})?) ?([a-z]+)", re.ASCII)
_DURATION = re.compile(r"(?:[0-9]{1,9}(?:\.[0-9]{1,6})? ?[a-z]+ ?)+", re.ASCII)
MAX_DURATION = timedelta(days=3660)  # ten years: beyond it a simulation has lost its way


def parse_duration(text: str | int | float | Decimal) -> timedelta:
    """Parse ``"2h"``, ``"30 m"``, ``"1d"``, ``"90s"``, ``"1h30m"`` or a number of seconds.

    ASCII digits only, at most ten years. Business days are not durations: they need the calendar
    (see ``calendar.py``).
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float | Decimal):
        raise ValueError("a duration is a number of seconds or a text such as '2h'")
    if isinstance(text, str):
        if not _DURATION.fullmatch(text.lower()):
            raise ValueError(f"not a duration: {text[:40]!r} (use e.g. '90s', '15m', '2h', '1d')")
        seconds = Decimal(0)
        for number, unit in _DURATION_PART.findall(text.lower()):
            if unit not in _UNITS:
                raise ValueError(f"unknown duration unit {unit!r} in {text[:40]!r}")
            seconds += Decimal(number) * Decimal(str(_UNITS[unit]))
    else:
        seconds = Decimal(str(text))
    if not seconds.is_finite() or seconds < 0:
        raise ValueError("a duration is a finite, non-negative number of seconds")
    if seconds > Decimal(MAX_DURATION.total_seconds()):
        raise ValueError("a duration is at most ten years")
    return timedelta(seconds=float(seconds))
