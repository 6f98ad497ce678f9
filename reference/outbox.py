"""Store and forward of payment confirmations to citizen services (obligation P5).

Why an outbox: the confirmation must survive an outage of the link to citizen services "for any
compelling reason". The ledger writes the outbox row in the same transaction as the payment, so a
payment without its confirmation cannot exist; this poller delivers the rows later, when the
clock reaches ``next_attempt_at``, and retries with backoff forever (the last backoff repeats).

Exactly once as the receiver sees it: rows are delivered one at a time under one lock, so a row is
never in flight twice; the receiver deduplicates on ``payment_id`` for the rare answer lost after
the work was done. A cancellation is held back while its confirmation is still pending.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from simulators.common.clock import iso, parse_instant
from simulators.common.http import OutboundFailure
from simulators.common.money import CURRENCY, format_amount

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .store import Store

CONFIRMATIONS_PATH = "/api/payment-confirmations"
CANCELLATIONS_PATH = "/api/payment-cancellations"
RETRYABLE_4XX = {408, 425, 429}


class Outbox:
    """A scheduler poller: ``next_due`` is the earliest pending row, ``run_due`` delivers due rows."""

    def __init__(self, component: Component, store: Store) -> None:
        self.component = component
        self.store = store
        own = component.own
        self.backoff = [int(s) for s in own.get("outbox_backoff_seconds") or [30]]
        self.timeout = float(own.get("outbox_timeout_seconds", 5))
        self._deliver_lock = threading.Lock()

    # --- writing (inside the ledger's transaction) --------------------------------------------
    def enqueue_confirmation(self, payment: dict[str, Any], order: dict[str, Any], now: datetime) -> None:
        body = {
            "payment_id": payment["payment_id"],
            "request_number": order["request_number"],
            "bill_reference": order["bill_reference"],
            "amount": format_amount(payment["amount"]),
            "currency": CURRENCY,
            "channel": payment["channel"],
            "paid_at": payment["paid_at"],
            "transaction_reference": payment["external_id"][:64],
        }
        self.store.enqueue("confirmation", payment["payment_id"], CONFIRMATIONS_PATH, body, iso(now))

    def withdraw_confirmation(self, payment: dict[str, Any], order: dict[str, Any], reason: str,
                              now: datetime) -> None:
        """The payment was reversed: drop an unsent confirmation, or tell citizen services to cancel it.

        A confirmation never attempted is simply cancelled. One that was attempted may have reached
        citizen services even if we never saw the answer, so it is cancelled here *and* a
        cancellation is queued (the receiver answers 404 for one it never recorded).
        """
        row = self.store.outbox_row("confirmation", payment["payment_id"])
        if row is None or row["status"] == "CANCELLED":
            return
        if row["status"] in ("PENDING", "FAILED") and row["attempts"] == 0:
            self.store.outbox_cancel(row["id"], f"payment reversed before delivery: {reason}")
            return
        if row["status"] in ("PENDING", "FAILED"):
            self.store.outbox_cancel(row["id"], f"payment reversed: {reason}")
        body = {"payment_id": payment["payment_id"], "request_number": order["request_number"],
                "reason": reason[:200]}
        self.store.enqueue("cancellation", payment["payment_id"], CANCELLATIONS_PATH, body, iso(now))

    # --- reading ------------------------------------------------------------------------------
    def confirmation_state(self, payment_id: str, excess: bool) -> str:
        """PENDING | CONFIRMED | CANCELLED | FAILED | NOT_REQUIRED, as ref-order shows it."""
        if self.store.outbox_row("cancellation", payment_id) is not None:
            return "CANCELLED"
        row = self.store.outbox_row("confirmation", payment_id)
        if row is None:
            return "NOT_REQUIRED" if excess else "PENDING"
        return {"PENDING": "PENDING", "DELIVERED": "CONFIRMED", "CANCELLED": "CANCELLED",
                "FAILED": "FAILED"}[row["status"]]

    def rows(self, status: str | None = None) -> list[dict[str, Any]]:
        return [_public(row) for row in self.store.outbox_rows(status)]

    # --- the poller ---------------------------------------------------------------------------
    def next_due(self) -> datetime | None:
        due = self.store.outbox_next_due()
        return parse_instant(due) if due else None

    def run_due(self, now: datetime) -> int:
        """Deliver every row due at ``now``, oldest first, one at a time."""
        if not self._deliver_lock.acquire(blocking=False):
            return 0  # another thread is delivering: never two deliveries in flight
        try:
            done = 0
            while True:
                with self.store.transaction():
                    row = self.store.outbox_first_due(iso(now))
                    if row is None or not self.store.outbox_start_attempt(row["id"]):
                        break
                self._deliver(row, now)
                done += 1
            return done
        finally:
            self._deliver_lock.release()

    def _deliver(self, row: dict[str, Any], now: datetime) -> None:
        url = self.component.url_of("citizen_services") + row["path"]
        attempts = int(row["attempts"]) + 1
        try:
            response = self.component.http.request(
                "POST", url, target="citizen_services", json_body=row["body"],
                sign_with=self.component.secret("citizen_services_api"), timeout=self.timeout)
        except OutboundFailure as exc:
            self._retry(row, attempts, now, None, str(exc))
            return
        status = response.status
        if 200 <= status < 300 or (row["kind"] == "cancellation" and status == 404):
            note = "citizen services never recorded the payment" if status == 404 else None
            with self.store.transaction():
                self.store.outbox_finish(row["id"], status="DELIVERED", delivered_at=iso(now),
                                         last_status=status, last_error=note)
            return
        text = response.body[:300].decode("utf-8", "replace")
        if status >= 500 or status in RETRYABLE_4XX:
            self._retry(row, attempts, now, status, text)
            return
        # 409 CONFLICT and every other 4xx: retrying the same body cannot succeed; say why, loudly.
        reason = f"citizen services refused it ({status}): {text}"
        with self.store.transaction():
            if self.store.outbox_finish(row["id"], status="FAILED", last_status=status, last_error=reason):
                self.store.open_exception({
                    "exception_key": f"CONFIRMATION_FAILED:{row['kind']}:{row['payment_id']}",
                    "kind": "CONFIRMATION_FAILED", "payment_id": row["payment_id"],
                    "bill_reference": row["body"].get("bill_reference"), "detail": reason,
                    "opened_at": iso(now)})

    def _retry(self, row: dict[str, Any], attempts: int, now: datetime, status: int | None,
               error: str) -> None:
        delay = self.backoff[min(attempts - 1, len(self.backoff) - 1)]
        with self.store.transaction():
            self.store.outbox_finish(row["id"], status="PENDING",
                                     next_attempt_at=iso(now + timedelta(seconds=delay)),
                                     last_status=status, last_error=error[:300])


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in ("id", "kind", "payment_id", "status", "attempts", "next_attempt_at",
                                      "created_at", "delivered_at", "last_status", "last_error", "body")}
