"""Settlement notices against the ledger (obligations E2, E4, E5, L3).

What it owns: one row per (governorate, business date) that has money, holding the expected value
date (T + ``settlement.value_days`` Egyptian business days), the deadline (plus
``reference.settlement_grace_business_days``) and what e-finance credited. A business date is the
Cairo day a payment belongs to under ``settlement.cutoff`` (weekends and holidays roll to the next
business day), computed by ``component.calendar`` only.

Why a poller: "late" must show up even when no notice ever comes. ``next_due`` is the earliest end
(Cairo midnight) of a deadline still uncredited; ``run_due`` opens a ``LATE_SETTLEMENT`` exception
for each such day (status OVERDUE). When the credit comes later, the day turns LATE with the number
of business days and the exception is resolved with the time.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from simulators.common.calendar import cairo_datetime, parse_hhmm
from simulators.common.clock import cairo, iso, parse_instant
from simulators.common.errors import Conflict
from simulators.common.money import format_amount, parse_signed_amount
from simulators.common.wire import parse_date, parse_instant_field

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .store import Store


def body_hash(body: Any) -> str:
    """A stable fingerprint of a request body for idempotency (same id + other body = conflict)."""
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Reconciliation:
    def __init__(self, component: Component, store: Store) -> None:
        self.component = component
        self.store = store
        settlement = component.settings.get("settlement") or {}
        cutoff = str(settlement.get("cutoff", "24:00"))
        self.cutoff: time | None = None if cutoff == "24:00" else parse_hhmm(cutoff)
        self.value_days = int(settlement.get("value_days", 2))
        self.grace = int(component.own.get("settlement_grace_business_days", 0))

    # --- the calendar of one business date ----------------------------------------------------
    def business_date(self, instant: datetime) -> date:
        return self.component.calendar.business_date(instant, self.cutoff)

    def expected_value_date(self, business_date: date) -> date:
        return self.component.calendar.add_business_days(business_date, self.value_days)

    def deadline_date(self, business_date: date) -> date:
        return self.component.calendar.add_business_days(business_date, self.value_days + self.grace)

    def deadline_end(self, business_date: date) -> datetime:
        """Cairo midnight at the end of the deadline: a credit at or after it is late."""
        return cairo_datetime(self.deadline_date(business_date) + timedelta(days=1), time(0))

    def ensure_day(self, governorate_code: str, business_date: date) -> None:
        """Called in the payment's transaction: from now on this day expects a credit."""
        self.store.ensure_settlement_day({
            "governorate_code": governorate_code, "business_date": business_date.isoformat(),
            "expected_value_date": self.expected_value_date(business_date).isoformat(),
            "deadline_date": self.deadline_date(business_date).isoformat(),
            "due_at": iso(self.deadline_end(business_date))})

    # --- state of one (governorate, business date) --------------------------------------------
    def status(self, governorate_code: str, business_date: date, now: datetime) -> dict[str, Any]:
        """The settlement block of the daily report: PENDING|ON_TIME|LATE|OVERDUE|SHORT|OVER."""
        count, expected = self.store.expected_settlement(governorate_code, business_date.isoformat())
        day = self.store.settlement_day(governorate_code, business_date.isoformat())
        deadline = self.deadline_date(business_date)
        out: dict[str, Any] = {
            "governorate_code": governorate_code, "business_date": business_date.isoformat(),
            "expected_value_date": self.expected_value_date(business_date).isoformat(),
            "deadline": deadline.isoformat(), "expected_amount": format_amount(expected),
            "expected_count": count, "credited_amount": None, "collection_fees": None, "credited_at": None,
            "difference": None, "days_late": 0, "notices": 0,
        }
        if day is None or day["credited_at"] is None:
            overdue = now >= self.deadline_end(business_date) and expected != 0
            out["status"] = "OVERDUE" if overdue else "PENDING"
            if overdue:
                out["days_late"] = self._days_late(deadline, cairo(now).date())
            return out
        credited, fees = int(day["credited_amount"]), int(day["collection_fees"])
        credited_at = parse_instant(day["credited_at"])
        # A net credit had the collection fees deducted: compare the gross it stands for.
        difference = credited + fees - expected
        late = credited_at >= self.deadline_end(business_date)
        out.update(credited_amount=format_amount(credited), collection_fees=format_amount(fees),
                   credited_at=day["credited_at"], difference=format_amount(difference),
                   notices=int(day["notices"]),
                   days_late=self._days_late(deadline, cairo(credited_at).date()) if late else 0)
        if difference < 0:
            out["status"] = "SHORT"
        elif difference > 0:
            out["status"] = "OVER"
        else:
            out["status"] = "LATE" if late else "ON_TIME"
        return out

    def _days_late(self, deadline: date, day: date) -> int:
        """Business days past the deadline; a credit on a weekend counts from the next business day."""
        effective = self.component.calendar.next_business_day(day, include_today=True)
        return max(1, self.component.calendar.business_days_between(deadline, effective))

    # --- POST /settlement/notices ---------------------------------------------------------------
    def record_notice(self, body: dict[str, Any]) -> dict[str, Any]:
        """Record a credit notice once (idempotent by ``notice_id``) and reconcile its day."""
        now = self.component.clock.now()
        fingerprint = body_hash(body)
        amount = parse_signed_amount(body["amount"], "amount")
        fees = parse_signed_amount(body.get("collection_fees", "0.00"), "collection_fees")
        business_date = parse_date(body["business_date"], "business_date")
        parse_date(body["value_date"], "value_date")
        credited_at = iso(parse_instant_field(body["credited_at"], "credited_at"))
        gov = body["governorate_code"]
        mode = body.get("mode", "gross")
        with self.store.transaction():
            known = self.store.settlement_notice(body["notice_id"])
            if known is not None:
                if known["request_hash"] != fingerprint:
                    raise Conflict(f"notice {body['notice_id']} was already received with another body",
                                   field="notice_id")
                return known["response"]
            self.store.insert_settlement_notice({
                "notice_id": body["notice_id"], "request_hash": fingerprint, "batch_id": body["batch_id"],
                "governorate_code": gov, "business_date": business_date.isoformat(),
                "value_date": body["value_date"], "credited_at": credited_at, "amount": amount,
                "collection_fees": fees, "mode": mode, "iban": body["iban"],
                "transactions": body["transactions"], "received_at": iso(now)})
            self.ensure_day(gov, business_date)
            self.store.add_credit(gov, business_date.isoformat(), amount, fees if mode == "net" else 0,
                                  credited_at)
            unmatched = self._orphans(body, now)
            result = self.status(gov, business_date, now)
            self._exceptions(result, now)
            response = {"notice_id": body["notice_id"], "status": "RECORDED", "reconciliation": result,
                        "unmatched_transactions": unmatched}
            self.store.set_notice_response(body["notice_id"], response)
        return response

    def _orphans(self, body: dict[str, Any], now: datetime) -> int:
        """Settled collections we have no captured payment for: orphan money, each an exception."""
        unmatched = 0
        for tx in body["transactions"]:
            if self.store.has_settled_payment(tx["channel"], tx["bill_reference"]):
                continue
            unmatched += 1
            self.store.open_exception({
                "exception_key": f"ORPHAN_COLLECTION:{body['notice_id']}:{tx['collection_id']}",
                "kind": "ORPHAN_COLLECTION", "governorate_code": body["governorate_code"],
                "business_date": body["business_date"], "bill_reference": tx["bill_reference"],
                "amount": parse_signed_amount(tx["amount"], "transactions.amount"),
                "detail": f"settled {tx['channel']} collection {tx['transaction_number']} has no captured"
                          " payment in the ledger", "opened_at": iso(now)})
        return unmatched

    def _exceptions(self, result: dict[str, Any], now: datetime) -> None:
        gov, day = result["governorate_code"], result["business_date"]
        stamp = iso(now)
        base = {"governorate_code": gov, "business_date": day, "opened_at": stamp}
        late_key = f"LATE_SETTLEMENT:{gov}:{day}"
        if result["days_late"]:
            self.store.open_exception(dict(base, exception_key=late_key, kind="LATE_SETTLEMENT",
                                           detail=f"credit expected by {result['deadline']}"))
            self.store.resolve_exception(late_key, stamp, f"credited at {result['credited_at']},"
                                         f" {result['days_late']} business day(s) late")
        else:
            self.store.resolve_exception(late_key, stamp, f"credited at {result['credited_at']}")
        difference = abs(parse_signed_amount(result["difference"], "difference"))
        for kind in ("SHORT_SETTLEMENT", "OVER_SETTLEMENT"):
            key = f"{kind}:{gov}:{day}"
            if result["status"] == kind.split("_")[0]:
                self.store.open_exception(dict(
                    base, exception_key=key, kind=kind, amount=difference,
                    detail=f"credited {result['credited_amount']} (+ fees {result['collection_fees']})"
                           f" against {result['expected_amount']} collected"))
            else:
                self.store.resolve_exception(key, stamp, "amounts agree after a later notice")

    # --- the poller -------------------------------------------------------------------------------
    def next_due(self) -> datetime | None:
        due = self.store.next_overdue_due()
        return parse_instant(due) if due else None

    def run_due(self, now: datetime) -> int:
        opened = 0
        for day in self.store.overdue_days(iso(now)):
            with self.store.transaction():
                if not self.store.mark_overdue(day["governorate_code"], day["business_date"], iso(now)):
                    continue
                _, expected = self.store.expected_settlement(day["governorate_code"], day["business_date"])
                if expected == 0:
                    continue  # reversed or refunded the same day: nothing to settle, nothing late
                self.store.open_exception({
                    "exception_key": f"LATE_SETTLEMENT:{day['governorate_code']}:{day['business_date']}",
                    "kind": "LATE_SETTLEMENT", "governorate_code": day["governorate_code"],
                    "business_date": day["business_date"],
                    "detail": f"no credit for business date {day['business_date']} by the end of"
                              f" {day['deadline_date']} (expected value date {day['expected_value_date']})",
                    "opened_at": iso(now)})
            opened += 1
        return opened
