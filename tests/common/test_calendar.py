"""The Egyptian business calendar on real dates (weekend Friday-Saturday, holidays package)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from simulators.common.calendar import BusinessCalendar
from simulators.common.clock import CAIRO

cal = BusinessCalendar()


def test_weekend_is_friday_and_saturday() -> None:
    assert not cal.is_business_day(date(2026, 12, 4))  # Friday
    assert not cal.is_business_day(date(2026, 12, 5))  # Saturday
    assert cal.is_business_day(date(2026, 12, 6))  # Sunday


def test_thursday_plus_two_business_days_is_monday() -> None:
    assert cal.add_business_days(date(2026, 12, 3), 2) == date(2026, 12, 7)


def test_coptic_christmas_and_eid_are_holidays() -> None:
    assert not cal.is_business_day(date(2026, 1, 7))  # Coptic Christmas, a Wednesday
    assert cal.holiday_name(date(2026, 3, 22)) is not None  # Eid al-Fitr, a Sunday
    # Tuesday 2026-01-06 + 1 business day skips Coptic Christmas (Wed) to Thursday
    assert cal.add_business_days(date(2026, 1, 6), 1) == date(2026, 1, 8)


def test_decree_moved_holiday_from_configuration() -> None:
    moved = BusinessCalendar(extra_holidays=["2026-12-10"])
    assert not moved.is_business_day(date(2026, 12, 10))
    assert moved.add_business_days(date(2026, 12, 9), 1) == date(2026, 12, 13)


def test_business_date_is_a_cairo_date_whatever_the_utc_date() -> None:
    # 23:30 UTC on Sunday 6 Dec is 01:30 Monday in Cairo (UTC+2 in winter)
    assert cal.business_date(datetime(2026, 12, 6, 23, 30, tzinfo=UTC)) == date(2026, 12, 7)
    # In summer (DST, UTC+3) 21:30 UTC on Monday 6 July 2026 is already 00:30 Tuesday in Cairo
    assert cal.business_date(datetime(2026, 7, 6, 21, 30, tzinfo=UTC)) == date(2026, 7, 7)


def test_after_cutoff_or_on_weekend_rolls_to_next_business_day() -> None:
    thursday_evening = datetime(2026, 12, 3, 18, 0, tzinfo=CAIRO)
    assert cal.business_date(thursday_evening, cutoff=time(16, 0)) == date(2026, 12, 6)
    assert cal.business_date(datetime(2026, 12, 4, 12, 0, tzinfo=CAIRO)) == date(2026, 12, 6)
