"""One clock per component, real by default, simulated when a harness takes it over.

Every component reads time only from its :class:`Clock`. In a scenario run the harness sets the
clock of every component through ``/_admin/clock``, so that two business days pass in milliseconds
and work that falls due (webhook retries, outbox retries, settlement at T+2) runs in order.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
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
        with self._lock:
            self._simulated = instant.astimezone(UTC)
            return self._simulated

    def advance(self, delta: timedelta) -> datetime:
        """Move simulated time forward (a real clock is first frozen at the real now)."""
        if delta < timedelta(0):
            raise ValueError("the clock only moves forward")
        with self._lock:
            base = self._simulated if self._simulated is not None else datetime.now(UTC)
            self._simulated = base + delta
            return self._simulated

    def use_real_time(self) -> None:
        with self._lock:
            self._simulated = None


_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "hours": 3600,
          "d": 86400, "day": 86400, "days": 86400, "minutes": 60, "seconds": 1}


def parse_duration(text: str | int | float) -> timedelta:
    """Parse ``"2h"``, ``"30 m"``, ``"1d"``, ``"90s"``, ``"1h30m"`` or a number of seconds.

    Business days are not durations: they need the calendar (see ``calendar.py``).
    """
    if isinstance(text, bool):
        raise ValueError("a duration is a number of seconds or a text such as '2h'")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=text)
    import re

    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", text.strip().lower())
    rest = re.sub(r"(\d+(?:\.\d+)?)\s*([a-z]+)", "", text.strip().lower()).strip()
    if not parts or rest:
        raise ValueError(f"not a duration: {text!r} (use e.g. '90s', '15m', '2h', '1d')")
    total = 0.0
    for number, unit in parts:
        if unit not in _UNITS:
            raise ValueError(f"unknown duration unit {unit!r} in {text!r}")
        total += float(number) * _UNITS[unit]
    return timedelta(seconds=total)
