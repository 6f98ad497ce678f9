"""The Egyptian business calendar: Friday–Saturday weekend and public holidays.

Holidays come from the maintained ``holidays`` package (``country_holidays("EG")`` with the
``public`` and ``government`` categories); configuration can add days (a holiday moved to a
Thursday by decree) or remove them. Business days, cut-offs and report dates are Cairo dates.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

import holidays

from .clock import CAIRO

WEEKEND = (4, 5)  # Friday, Saturday (Monday = 0)


@lru_cache(maxsize=64)
def _egypt_holidays(year: int, categories: tuple[str, ...]) -> dict[date, str]:
    return dict(holidays.country_holidays("EG", years=year, categories=categories).items())


class BusinessCalendar:
    """Answers "is this a business day?" and "which day is T+n?" for Egypt."""

    def __init__(
        self,
        *,
        categories: Iterable[str] = ("public", "government"),
        extra_holidays: Iterable[date | str] = (),
        removed_holidays: Iterable[date | str] = (),
        weekend: Iterable[int] = WEEKEND,
    ) -> None:
        self.categories = tuple(sorted(categories))
        self.extra = {_as_date(d) for d in extra_holidays}
        self.removed = {_as_date(d) for d in removed_holidays}
        self.weekend = frozenset(weekend)

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> BusinessCalendar:
        config = config or {}
        return cls(
            categories=config.get("holiday_categories", ("public", "government")),
            extra_holidays=config.get("extra_holidays", ()),
            removed_holidays=config.get("removed_holidays", ()),
        )

    def holiday_name(self, day: date) -> str | None:
        if day in self.removed:
            return None
        if day in self.extra:
            return "holiday (configured)"
        return _egypt_holidays(day.year, self.categories).get(day)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() not in self.weekend and self.holiday_name(day) is None

    def next_business_day(self, day: date, *, include_today: bool = False) -> date:
        current = day if include_today else day + timedelta(days=1)
        while not self.is_business_day(current):
            current += timedelta(days=1)
        return current

    def add_business_days(self, day: date, count: int) -> date:
        """The business day ``count`` business days after ``day`` (``day`` itself need not be one)."""
        current = day
        for _ in range(count):
            current = self.next_business_day(current)
        return current

    def business_date(self, instant: datetime, cutoff: time | None = None) -> date:
        """The Cairo business day a collection at ``instant`` belongs to.

        On a business day before the cut-off: that day. After the cut-off, or on a weekend or
        holiday: the next business day. ``cutoff=None`` means the end of the Cairo day.
        """
        local = instant.astimezone(CAIRO)
        day = local.date()
        # Compare instants, not wall-clock times: when daylight saving ends, 23:00-23:59 happens twice
        # and a cut-off inside that hour is passed at its first occurrence only (fold=0). Aware
        # datetimes of one tzinfo compare by wall clock, ignoring fold, hence the UTC conversion.
        if cutoff is not None and instant.astimezone(UTC) >= cairo_datetime(day, cutoff).astimezone(UTC):
            return self.next_business_day(day)
        return self.next_business_day(day, include_today=True)

    def business_days_between(self, start: date, end: date) -> int:
        """Business days in ``(start, end]`` (negative when ``end`` is before ``start``)."""
        if end < start:
            return -self.business_days_between(end, start)
        count, current = 0, start
        while current < end:
            current += timedelta(days=1)
            if self.is_business_day(current):
                count += 1
        return count


def cairo_datetime(day: date, at: time) -> datetime:
    """An aware instant for a Cairo wall-clock time on ``day`` (DST applied by zoneinfo)."""
    return datetime.combine(day, at, tzinfo=CAIRO)


def parse_hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
