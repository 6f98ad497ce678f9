"""The status watch: open e-finance payment requests are asked about until they are settled.

Why: FACTS says a careful receiver never trusts the silent call alone, and the silent call may never
come at all (lost, given up, or the gateway's bug) while the citizen closes the browser before the
redirect. Money the gateway took must still reach the ledger. So each attempt carries a
``next_check_at``: at ``reference.efinance.status_check_seconds`` after it was opened, then once
when its order expires, the status inquiry is asked and a PAID answer is credited through the same
idempotent capture as the silent call. A request the gateway calls final (paid, refunded, expired,
cancelled) or an attempt already credited is watched no more. A scheduler poller, like the outbox,
so the simulated clock drives it.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from simulators.common.clock import iso, parse_instant
from simulators.common.errors import ApiError

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .card_payments import CardPayments
    from .store import Store

log = logging.getLogger(__name__)
DEFAULT_CHECK_SECONDS = (600, 3600, 21600)
FINAL = {"PAID", "REFUNDED", "PARTIAL_REFUNDED", "EXPIRED", "CANCELLED"}


def check_schedule(component: Component) -> list[int]:
    """Seconds after opening at which an attempt is asked about (settings, validated by the schema)."""
    own = component.own.get("efinance") or {}
    return [int(s) for s in own.get("status_check_seconds") or DEFAULT_CHECK_SECONDS]


def first_check_at(component: Component, opened_at: datetime) -> str:
    return iso(opened_at + timedelta(seconds=check_schedule(component)[0]))


class StatusWatch:
    """A scheduler poller: ``next_due`` is the earliest check, ``run_due`` makes the due ones."""

    def __init__(self, component: Component, store: Store, cards: CardPayments) -> None:
        self.component = component
        self.store = store
        self.cards = cards
        self._lock = threading.Lock()

    def next_due(self) -> datetime | None:
        due = self.store.next_status_check()
        return parse_instant(due) if due else None

    def run_due(self, now: datetime) -> int:
        """Check every attempt due at ``now``, oldest first; one thread at a time."""
        if not self._lock.acquire(blocking=False):
            return 0
        try:
            done = 0
            while (attempt := self.store.first_status_check_due(iso(now))) is not None:
                self._check(attempt, now)
                done += 1
            return done
        finally:
            self._lock.release()

    def _check(self, attempt: dict[str, Any], now: datetime) -> None:
        number = attempt["sender_request_number"]
        following = self._following_check(attempt)
        if attempt["status"] == "APPROVED":  # credited meanwhile (silent call or return)
            following = None
        else:
            try:
                status = self.cards.check_with_gateway(attempt)
            except ApiError as exc:  # the gateway cannot be asked: keep to the schedule
                log.warning("status watch of %s: %s", number, exc.message)
            else:
                if status is not None and status.status in FINAL:
                    following = None
        with self.store.transaction():
            self.store.schedule_status_check(number, following, iso(now))

    def _following_check(self, attempt: dict[str, Any]) -> str | None:
        """The check after this one: the next of the schedule, then the order's expiry, then none."""
        opened = parse_instant(attempt["created_at"])
        done = int(attempt["checks"]) + 1
        schedule = check_schedule(self.component)
        if done < len(schedule):
            return iso(opened + timedelta(seconds=schedule[done]))
        order = self.store.order(attempt["bill_reference"])
        if order is None:
            return None
        expiry = parse_instant(order["expires_at"])
        last = parse_instant(attempt["next_check_at"]) if attempt["next_check_at"] else opened
        return iso(expiry) if expiry > last else None
