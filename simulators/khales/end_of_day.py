"""Khales' end-of-day file: every transaction of a Cairo day that moved cash, sent to settlement.

Assumed (no public specification; FACTS: the outlet network "files an end-of-day list of its
transactions"). One file per Cairo calendar day that had such a transaction: a **payment** line per
payment posted to a biller (its status when the file is made: PAID, or REVERSED / REVERSAL_PENDING /
FAILED when the outlet never learned the outcome) and a **reversal** line, with negative amounts,
per reversal answered that day. Columns: ``contracts/kh-end-of-day-file.schema.json``.

The file of day D is made at ``khales.end_of_day_at`` (Cairo) on D + 1, on the component's clock,
and delivered to settlement (``POST /api/khales-files``, signed with ``collections_feed``) by a
:class:`~simulators.common.delivery.Courier` that retries until settlement takes it. Before that
moment ``GET /api/end-of-day/<D>`` shows a live preview; after it, the file as it was made.

Faults (domain, point ``end_of_day``, ``match: {business_date: "YYYY-MM-DD"}`` or every day):
``end_of_day_late`` (the first delivery ``params.after`` later), ``end_of_day_missing`` (never
sent), ``end_of_day_corrupted`` (data line ``params.line``, default 1, arrives cut short; the file
Khales keeps and serves stays whole).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from simulators.common import money
from simulators.common.calendar import cairo_datetime, parse_hhmm
from simulators.common.clock import cairo, iso, parse_duration
from simulators.common.contracts import load_contract
from simulators.common.delivery import Courier, Delivery
from simulators.common.errors import ValidationFailed
from simulators.common.files import csv_text

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .models import KhalesModel, Transaction

COLUMNS: tuple[str, ...] = tuple(load_contract("kh-end-of-day-file.schema.json")["properties"]["columns"]["const"])
FEED_SECRET = "collections_feed"
POINT = "end_of_day"
LATE, MISSING, CORRUPTED = "end_of_day_late", "end_of_day_missing", "end_of_day_corrupted"
FAULT_KINDS = (LATE, MISSING, CORRUPTED)
FAULT_PARAMS = {LATE: {"after"}, MISSING: set(), CORRUPTED: {"line"}}
DEFAULT_RETRY_SECONDS = (60, 300, 900, 3600)


@dataclass
class DayFile:
    """The file of one day, as made at the end of that day (its rows never change afterwards)."""

    business_date: date
    rows: list[dict[str, str]]
    generated_at: datetime
    delivery: Delivery | None = None
    faults: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"business_date": self.business_date.isoformat(), "state": "final",
                "generated_at": iso(self.generated_at), "line_count": len(self.rows),
                "net_amount": net_amount(self.rows), "faults": list(self.faults),
                "delivery": self.delivery.to_dict() if self.delivery else None}


def net_amount(rows: list[dict[str, str]]) -> str:
    return money.format_amount(sum(money.parse_signed_amount(r["amount"]) for r in rows))


def validate_fault(spec: dict[str, Any]) -> None:
    """Refuse (422 naming the field) an end-of-day fault Khales could not apply as written."""
    kind = str(spec.get("kind"))
    if spec.get("endpoint") is not None and spec["endpoint"] != POINT:
        raise ValidationFailed(f"a {kind} fault acts at the point {POINT!r}", field="endpoint")
    for name in ("method", "target"):
        if spec.get(name) is not None:
            raise ValidationFailed(f"{name} does not scope a {kind} fault; use match", field=name)
    for key, value in (spec.get("match") or {}).items():
        if key != "business_date":
            raise ValidationFailed(f"a {kind} fault matches on business_date, not {str(key)[:40]!r}",
                                   field=f"match.{key}")
        try:
            date.fromisoformat(str(value))
        except ValueError:
            raise ValidationFailed("match.business_date is a date YYYY-MM-DD", field="match.business_date") from None
    params = spec.get("params") or {}
    for name in params:
        if name not in FAULT_PARAMS[kind]:
            raise ValidationFailed(f"a {kind} fault takes {', '.join(sorted(FAULT_PARAMS[kind])) or 'no params'},"
                                   f" not {str(name)[:40]!r}", field=f"params.{name}")
    if kind == LATE:
        if "after" not in params:
            raise ValidationFailed("params.after is required: how much later the file is sent (e.g. '3h')",
                                   field="params.after")
        try:
            if parse_duration(params["after"]).total_seconds() <= 0:
                raise ValueError("a duration greater than zero is needed")
        except ValueError as exc:
            raise ValidationFailed(f"params.after: {exc}", field="params.after") from None
    line = params.get("line", 1)
    if kind == CORRUPTED and (not isinstance(line, int) or isinstance(line, bool) or not 1 <= line <= 1_000_000):
        raise ValidationFailed("params.line is the data line to damage, from 1", field="params.line")


class EndOfDayFiles:
    """Makes, keeps and delivers the end-of-day file of each day (a part of the Khales model)."""

    def __init__(self, component: Component, model: KhalesModel) -> None:
        self.component = component
        self.model = model
        own = component.own
        self.at = parse_hhmm(str(own.get("end_of_day_at", "00:15")))
        self.courier = Courier(component, own.get("end_of_day_retry_seconds") or DEFAULT_RETRY_SECONDS,
                               give_up=False, timeout=own.get("end_of_day_timeout_seconds", 5))
        component.faults.declare(FAULT_KINDS, validate_fault)
        self._lock = threading.Lock()
        self._files: dict[date, DayFile] = {}
        self._scheduled: set[date] = set()
        component.on_reset(self.reset)

    def reset(self) -> None:
        with self._lock:
            self._files.clear()
            self._scheduled.clear()

    def due_at(self, day: date) -> datetime:
        """When the file of ``day`` is made: ``end_of_day_at`` Cairo on the next day."""
        return cairo_datetime(day + timedelta(days=1), self.at)

    def touch(self, instant: datetime) -> None:
        """A line of the Cairo day of ``instant`` exists: make sure that day's file will be made."""
        day = cairo(instant).date()
        with self._lock:
            if day in self._scheduled:
                return
            self._scheduled.add(day)
        self.component.scheduler.schedule(self.due_at(day), f"khales end-of-day file {day}",
                                          lambda: self.make(day))

    # --- the file -------------------------------------------------------------------------------
    def rows(self, day: date) -> list[dict[str, str]]:
        """The lines of ``day`` as the transactions stand now, in time order (then the order the
        transactions were opened in: a visit's bills in their order), numbered from 1."""
        items: list[tuple[datetime, int, int, dict[str, str]]] = []
        with self.model.lock:
            for tx in self.model.snapshot():
                if tx.posted is not None and tx.status != "REFUSED" and cairo(tx.posted).date() == day:
                    items.append((tx.posted, tx.seq, 0, _line(tx, "payment", day)))
                if tx.reversed is not None and cairo(tx.reversed).date() == day:
                    items.append((tx.reversed, tx.seq, 1, _line(tx, "reversal", day)))
        items.sort(key=lambda item: item[:3])
        return [dict(row, line=str(n)) for n, (*_, row) in enumerate(items, start=1)]

    def view(self, day: date) -> tuple[list[dict[str, str]], str, datetime]:
        """``(rows, state, generated_at)``: the file as made (final) or, before then, a preview."""
        with self._lock:
            made = self._files.get(day)
        if made is not None:
            return [dict(r) for r in made.rows], "final", made.generated_at
        return self.rows(day), "preview", self.component.clock.now()

    def summaries(self) -> list[dict[str, Any]]:
        with self._lock:
            files = sorted(self._files.values(), key=lambda f: f.business_date)
            return [f.summary() for f in files]

    def make(self, day: date) -> None:
        """End of ``day``: fix its lines and send them to settlement (unless a fault says otherwise)."""
        now = self.component.clock.now()
        rows = self.rows(day)
        made = DayFile(business_date=day, rows=rows, generated_at=now)
        with self._lock:
            self._files[day] = made
        faults = self.component.faults
        attrs = {"business_date": day.isoformat()}
        missing = faults.take("domain", POINT, kinds=(MISSING,), **attrs)
        if missing is not None:
            made.faults.append({"id": missing.id, "kind": MISSING})
            return
        content = csv_text(COLUMNS, rows)
        corrupted = faults.take("domain", POINT, kinds=(CORRUPTED,), **attrs)
        if corrupted is not None:
            line = int(corrupted.params.get("line", 1))
            content = _damage(content, line)
            made.faults.append({"id": corrupted.id, "kind": CORRUPTED, "line": line})
        at = now
        late = faults.take("domain", POINT, kinds=(LATE,), **attrs)
        if late is not None:  # later than it was due (not than now: a clock that jumped ran this late already)
            at = max(now, self.due_at(day) + parse_duration(late.params["after"]))
            made.faults.append({"id": late.id, "kind": LATE, "after": str(late.params["after"])})
        body = {"file_id": f"KH-EOD-{day:%Y%m%d}", "network": "khales", "business_date": day.isoformat(),
                "generated_at": iso(now), "format": "csv", "line_count": len(rows), "net_amount": net_amount(rows),
                "content": content}
        made.delivery = Delivery(delivery_id=body["file_id"], kind="end_of_day_file",
                                 url=self.component.url_of("settlement") + "/api/khales-files", target="settlement",
                                 secret_name=FEED_SECRET, body=body)
        self.courier.send(made.delivery, at=at)


def _line(tx: Transaction, record_type: str, day: date) -> dict[str, str]:
    """One line of the file (``line`` is numbered afterwards); a reversal's amounts are negative."""
    sign = -1 if record_type == "reversal" else 1
    amount = (tx.amount or 0) * sign
    fee = tx.collection_fee * sign
    inquiry = tx.inquiry if isinstance(tx.inquiry, dict) else {}
    at = tx.reversed if record_type == "reversal" else tx.posted
    assert at is not None  # noqa: S101 - only called for lines that have their instant
    receipt = tx.receipt if isinstance(tx.receipt, dict) else {}
    paid = record_type == "payment" and tx.status == "PAID"
    return {
        "line": "", "business_date": day.isoformat(), "record_type": record_type,
        "transaction_id": tx.transaction_id, "visit_id": tx.visit_id or "", "biller": tx.biller,
        "bill_reference": tx.bill_reference, "status": tx.status,
        "bill_status": (tx.bill_status or "") if paid else "",
        "amount": money.format_amount(amount), "collection_fee": money.format_amount(fee),
        "cash_amount": money.format_amount(amount + fee), "currency": money.CURRENCY,
        "outlet_id": tx.outlet.outlet_id, "outlet_name_ar": tx.outlet.name_ar, "terminal_id": tx.outlet.terminal_id,
        "outlet_governorate_code": tx.outlet.governorate_code,
        "governorate_code": str(inquiry.get("governorate_code") or tx.outlet.governorate_code),
        "service_code": str(inquiry.get("service_code") or ""), "payer_name": str(inquiry.get("payer_name") or ""),
        "time_cairo": cairo(at).isoformat(timespec="seconds"),
        "reversal_id": str((tx.reversal or {}).get("reversal_id") or "") if record_type == "reversal" else "",
        "receipt_number": str(receipt.get("receipt_number") or "") if paid else "",
        # What the collections feed carries for it (e-finance settles its Channel payments itself).
        "collection_id": f"khales:{tx.transaction_id}" if paid and tx.biller == "collection_service" else "",
    }


def _damage(content: str, line: int) -> str:
    """Cut data line ``line`` (1 = the first after the header) to its first half of fields, as a
    file damaged in transit; a line past the end damages the last one. The header stays whole."""
    lines = content.split("\r\n")
    data = [i for i in range(1, len(lines)) if lines[i]]
    if not data:
        return content
    index = data[min(line, len(data)) - 1]
    fields = lines[index].split(",")
    lines[index] = ",".join(fields[: max(1, len(fields) // 2)])
    return "\r\n".join(lines)
