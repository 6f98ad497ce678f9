"""The status watch: open e-finance payment requests are asked about until they are settled.

Why: FACTS says a careful receiver never trusts the silent call alone, and the silent call may never
come at all (lost, given up, or the gateway's bug) while the citizen closes the browser before the
redirect. Money the gateway took must still reach the ledger. So each attempt carries a
``next_check_at``: at ``reference.efinance.status_check_seconds`` after it was opened, then once
when its order expires, the status inquiry is asked and a PAID answer is credited through the same
idempotent capture as the silent call. At the order's expiry a request still unpaid is cancelled at
the gateway (its ExpiryDate is a whole day, the order's expiry an instant). A request the gateway
calls final (paid, refunded, expired, cancelled) or an attempt already credited is watched no more.
A scheduler poller, like the outbox, so the simulated clock drives it.
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
                log.warning("status watch of %s: %r", number, exc.message)
            else:
                if status is not None and status.status in FINAL:
                    following = None
                elif status is not None and self._order_expired(attempt, now):
                    following = self._cancel(attempt, now, following)
        with self.store.transaction():
            self.store.schedule_status_check(number, following, iso(now))

    def _order_expired(self, attempt: dict[str, Any], now: datetime) -> bool:
        order = self.store.order(attempt["bill_reference"])
        return order is not None and parse_instant(order["expires_at"]) <= now

    def _cancel(self, attempt: dict[str, Any], now: datetime, following: str | None) -> str | None:
        """The order expired but e-finance's request lives to the end of its ExpiryDate (a date): cancel
        it, so the gateway refuses a payment the order can no longer take. Paid meanwhile (130): credit
        it like any payment (kept as excess for an expired order: money is never lost)."""
        number = attempt["sender_request_number"]
        sender = self.cards.client.sender_by_id(attempt["sender_id"])
        if sender is None:
            return None
        try:
            code = self.cards.client.cancel(sender, number, attempt["payment_request_number"] or "")
            if code == "130":
                self.cards.check_with_gateway(attempt)
        except ApiError as exc:  # try again in an hour: the gateway must hear it
            log.warning("cancel of %s at the order's expiry: %r", number, exc.message)
            return following or iso(now + timedelta(hours=1))
        log.info("cancelled e-finance request %s at its order's expiry: ResponseCode %s", number, code)
        return None

    def _following_check(self, attempt: dict[str, Any]) -> str | None:
        """The check after this one: the earlier of the schedule's next point and the order's expiry
        (if not checked yet); none when both are behind."""
        opened = parse_instant(attempt["created_at"])
        last = parse_instant(attempt["next_check_at"]) if attempt["next_check_at"] else opened
        done = int(attempt["checks"]) + 1
        schedule = check_schedule(self.component)
        candidates = [opened + timedelta(seconds=seconds) for seconds in schedule[done:]]
        order = self.store.order(attempt["bill_reference"])
        if order is not None:
            candidates.append(parse_instant(order["expires_at"]))
        later = [at for at in candidates if at > last]
        return iso(min(later)) if later else None
