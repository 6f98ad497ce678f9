"""How the harness talks to the parties: plain HTTP, and the shared clock through ``/_admin/clock``.

The shared clock moves every component's clock together and runs due work in global time order:
it asks each component when its next work is due, steps all clocks to the earliest such instant,
lets each run what fell due (``/_admin/tick``) until all are quiet, and repeats up to the target.
Two simulated business days take milliseconds and no real sleep.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import requests

from simulators.common.calendar import BusinessCalendar, cairo_datetime, parse_hhmm
from simulators.common.clock import CAIRO, iso, parse_duration, parse_instant


class PartyError(Exception):
    """Raised when a party cannot be reached or its admin plane answers with an error."""


class Parties:
    def __init__(self, urls: dict[str, str], timeout: float = 15.0) -> None:
        self.urls = dict(urls)
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # loopback only: never a proxy from the environment

    def url(self, party: str, path: str) -> str:
        if party not in self.urls:
            raise PartyError(f"unknown party {party!r}; known: {', '.join(self.urls)}")
        return self.urls[party].rstrip("/") + path

    def call(self, party: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        try:
            return self.session.request(method, self.url(party, path), **kwargs)
        except requests.RequestException as exc:
            raise PartyError(f"{party} did not answer {method} {path}: {exc}") from exc

    def admin(self, party: str, method: str, path: str, payload: Any = None) -> Any:
        response = self.call(party, method, "/_admin" + path, json=payload)
        if response.status_code >= 400:
            raise PartyError(f"{party} /_admin{path} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def offers_test_clock(self, party: str) -> bool:
        return self.offers_hook(party, "/_admin/clock")

    def offers_hook(self, party: str, path: str) -> bool:
        """Does the party answer this optional test hook (``/_admin/clock``, ``/_admin/settings``)?"""
        try:
            return self.call(party, "GET", path).status_code == 200
        except PartyError:
            return False

    def close(self) -> None:
        self.session.close()


class SharedClock:
    """The one simulated clock of a scenario run, set on every controllable party."""

    MAX_STEPS = 20_000

    def __init__(self, parties: Parties, controlled: list[str], calendar: BusinessCalendar) -> None:
        self.parties = parties
        self.controlled = controlled
        self.calendar = calendar

    def now(self) -> datetime:
        return parse_instant(self.parties.admin(self.controlled[0], "GET", "/clock")["now"])

    def quiesce(self, max_rounds: int = 100) -> int:
        """Tick every party until none has work due now; returns the work done.

        A round in which nobody ran anything is not enough: a party's own ticker may have done work
        during the round that made work due at a party ticked earlier (a webhook that queued a
        confirmation). So the round ends with every party saying nothing is due at its now.
        """
        total, idle_but_due = 0, 0
        for _ in range(max_rounds):
            ran = sum(int(self.parties.admin(p, "POST", "/tick").get("ran", 0)) for p in self.controlled)
            total += ran
            if ran:
                idle_but_due = 0
                continue
            if not any(self._due_now(p) for p in self.controlled):
                return total
            # Work is due but nobody ran it: a party's own ticker had it in hand (the next tick waits
            # for that to finish), or a party reports work it cannot do yet. Give it a few rounds.
            idle_but_due += 1
            if idle_but_due >= 3:
                return total
        raise PartyError(f"parties still busy after {max_rounds} rounds of due work (a retry loop?)")

    def _due_now(self, party: str) -> bool:
        state = self.parties.admin(party, "GET", "/clock")
        return bool(state.get("next_due")) and parse_instant(state["next_due"]) <= parse_instant(state["now"])

    def _set_all(self, instant: datetime) -> None:
        for party in self.controlled:
            self.parties.admin(party, "POST", "/clock", {"set": iso(instant), "run_due": False})

    def set(self, instant: datetime) -> None:
        self._set_all(instant)
        self.quiesce()

    def advance_to(self, target: datetime) -> None:
        current = self.now()
        if target < current:
            raise ValueError(f"the clock only moves forward (now {iso(current)}, asked {iso(target)})")
        for _ in range(self.MAX_STEPS):
            dues = []
            for party in self.controlled:
                due = self.parties.admin(party, "GET", "/clock").get("next_due")
                if due:
                    instant = parse_instant(due)
                    if instant > current:
                        dues.append(instant)
            step = min([d for d in dues if d <= target], default=target)
            self._set_all(step)
            self.quiesce()
            current = step
            if current >= target:
                return
        raise PartyError("too many due instants before the target time")

    def target_for(self, spec: str | int | float) -> datetime:
        """Instant for ``'2h'``, ``'3 business days'``, ``'next business day 10:00'`` or an ISO time."""
        now = self.now()
        if isinstance(spec, str):
            text = spec.strip().lower()
            words = text.split()
            if len(words) == 3 and words[1:] in (["business", "days"], ["business", "day"]):
                local = now.astimezone(CAIRO)
                day = self.calendar.add_business_days(local.date(), int(words[0]))
                return cairo_datetime(day, local.time().replace(tzinfo=None))
            if text.startswith("next business day"):
                at = parse_hhmm(words[3]) if len(words) == 4 else now.astimezone(CAIRO).time()
                day = self.calendar.next_business_day(now.astimezone(CAIRO).date())
                return cairo_datetime(day, at.replace(tzinfo=None))
            if len(text) == 5 and text[2] == ":":
                candidate = cairo_datetime(now.astimezone(CAIRO).date(), parse_hhmm(text))
                return candidate if candidate > now else candidate + timedelta(days=1)
            if "t" in text and "-" in text:
                return parse_instant(spec)
        return now + parse_duration(spec)
