"""State of e-finance settlement: collection lines, settlement batches, bank credits, credit notices.

No Flask here. Each collection fed by the card gateway or Khales becomes a line of the settlement
batch of its governorate and Cairo business date. A batch is credited to the governorate's bank
account on its value date (business date + ``value_days`` business days, obligation E2) at
``credit_time`` Cairo; the clock drives that transition through :meth:`SettlementModel.run_due`
(the model is the scheduler's poller), and each credit sends one signed credit notice (E4), retried
with backoff until acknowledged and never re-sent once it was.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any

from simulators.common.calendar import cairo_datetime, parse_hhmm
from simulators.common.clock import cairo, iso
from simulators.common.delivery import Courier, Delivery
from simulators.common.errors import ValidationFailed
from simulators.common.money import format_amount, parse_amount, parse_currency
from simulators.common.wire import parse_date, parse_instant_field

from .errors import (
    AlreadyReversed,
    BatchNotFound,
    CollectionConflict,
    ReversalMismatch,
    UnknownCollection,
    UnknownGovernorate,
)

if TYPE_CHECKING:
    from simulators.common.component import Component

OPEN, CREDITED = "OPEN", "CREDITED"
DEFAULT_RETRY_SECONDS = (60, 300, 900, 3600, 10800, 21600, 43200)
FILE_COLUMNS = ("batch_id", "governorate_code", "business_date", "value_date", "collection_id", "channel",
                "bill_reference", "service_code", "transaction_number", "amount", "collection_fee",
                "collected_at", "settlement_account_code")


@dataclass
class Line:
    """One collection in a batch; a reversal is a line with negative amount and fee."""

    collection_id: str
    type: str  # payment | reversal
    channel: str
    source: str
    governorate_code: str
    service_code: str | None
    bill_reference: str
    amount: int  # signed piasters
    collection_fee: int  # signed piasters
    currency: str
    collected_at: datetime
    transaction_number: str
    reverses: str | None
    business_date: date
    batch_id: str
    reversed_by: list[str] = field(default_factory=list)  # partial refunds may reverse a line in parts
    reversed_amount: int = 0  # piasters reversed so far, never above ``amount``
    settlement_account_code: str | None = None  # e-finance: the SettlementAmounts line's account

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "collection_id": self.collection_id,
            "type": self.type,
            "channel": self.channel,
            "source": self.source,
            "bill_reference": self.bill_reference,
            "service_code": self.service_code,
            "amount": format_amount(self.amount),
            "collection_fee": format_amount(self.collection_fee),
            "transaction_number": self.transaction_number,
            "collected_at": iso(self.collected_at),
        }
        if self.reverses:
            data["reverses"] = self.reverses
        if self.settlement_account_code:
            data["settlement_account_code"] = self.settlement_account_code
        return data


@dataclass
class Batch:
    """The collections of one governorate and one Cairo business date, credited together."""

    batch_id: str
    governorate_code: str
    business_date: date
    value_date: date
    credit_at: datetime
    iban: str
    mode: str
    created_at: datetime
    late_by: int = 0
    status: str = OPEN
    lines: list[Line] = field(default_factory=list)
    credited_at: datetime | None = None
    statement_entry_id: str | None = None
    notice: Delivery | None = None

    @property
    def gross(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def collection_fees(self) -> int:
        return sum(line.collection_fee for line in self.lines)

    @property
    def amount(self) -> int:
        """What the governorate's account receives: gross, or net of collection fees."""
        return self.gross - self.collection_fees if self.mode == "net" else self.gross

    def summary(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "governorate_code": self.governorate_code,
            "business_date": self.business_date.isoformat(),
            "value_date": self.value_date.isoformat(),
            "credit_at": iso(self.credit_at),
            "status": self.status,
            "late_by": self.late_by,
            "mode": self.mode,
            "iban": self.iban,
            "count": len(self.lines),
            "gross_amount": format_amount(self.gross),
            "collection_fees": format_amount(self.collection_fees),
            "amount": format_amount(self.amount),
            "currency": "EGP",
            "credited_at": iso(self.credited_at) if self.credited_at else None,
            "statement_entry_id": self.statement_entry_id,
            "notice": self.notice.to_dict() if self.notice else None,
            "by_settlement_account": _by_account(self.lines),
        }

    def to_dict(self) -> dict[str, Any]:
        return dict(self.summary(), lines=[line.to_dict() for line in self.lines])


class SettlementModel:
    """Lines keyed by collection id, batches keyed by batch id, the bank statement; one lock."""

    def __init__(self, component: Component) -> None:
        self.component = component
        self._lock = threading.RLock()
        self._lines: dict[str, Line] = {}
        self._answers: dict[str, tuple[str, dict[str, Any]]] = {}  # collection_id -> (fingerprint, answer)
        self._batches: dict[str, Batch] = {}
        self._open: dict[tuple[str, date], str] = {}  # (governorate, business date) -> open batch id
        self._statement: list[dict[str, Any]] = []
        retry = component.own.get("notice_retry_seconds", DEFAULT_RETRY_SECONDS)
        self.courier = Courier(component, retry)  # credit notices: retried on the clock, then given up

    # --- settings -----------------------------------------------------------------------------
    def _cutoff(self) -> time | None:
        text = str(self.component.own.get("cutoff", "24:00"))
        return None if text == "24:00" else parse_hhmm(text)

    def _iban(self, governorate_code: str) -> str:
        governorates = (self.component.settings.get("catalog") or {}).get("governorates") or {}
        iban = (governorates.get(governorate_code) or {}).get("iban")
        if not iban:
            raise UnknownGovernorate(
                f"governorate {governorate_code} has no bank account in the catalog",
                field="governorate_code")
        return str(iban)

    # --- lifecycle ----------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._lines.clear()
            self._answers.clear()
            self._batches.clear()
            self._open.clear()
            self._statement.clear()

    # --- intake -------------------------------------------------------------------------------
    def add_collection(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Put a collection in its batch; the same id and body again replays the first answer.

        ``body`` has passed ``st-collection.schema.json``. Every check runs before anything is
        written, so a refused collection leaves no trace but the journal.
        """
        collection_id = body["collection_id"]
        amount = parse_amount(body["amount"], "amount")
        fee = parse_amount(body["collection_fee"], "collection_fee", allow_zero=True)
        parse_currency(body["currency"])
        collected_at = parse_instant_field(body["collected_at"], "collected_at")
        is_reversal = body["type"] == "reversal"
        if is_reversal and not body.get("reverses"):
            raise ReversalMismatch("a reversal names the collection it reverses", field="reverses")
        if not is_reversal and body.get("reverses"):
            raise ReversalMismatch("only a reversal may name reverses", field="reverses")
        gov = body["governorate_code"]
        iban = self._iban(gov)
        fingerprint = json.dumps(body, sort_keys=True, ensure_ascii=False)
        with self._lock:
            known = self._answers.get(collection_id)
            if known is not None:
                if known[0] != fingerprint:
                    raise CollectionConflict(
                        f"collection {collection_id} was already received with another body",
                        field="collection_id")
                return dict(known[1]), False
            if is_reversal:
                self._check_reversal(body["reverses"], gov, amount, body.get("settlement_account_code"))
            business_date = self._business_date(collected_at, body.get("reconciliation_date"))
            batch = self._batch_for(gov, business_date, iban)
            sign = -1 if is_reversal else 1
            line = Line(
                collection_id=collection_id, type=body["type"], channel=body["channel"],
                source=body["source"], governorate_code=gov, service_code=body.get("service_code"),
                bill_reference=body["bill_reference"], amount=sign * amount, collection_fee=sign * fee,
                currency=body["currency"], collected_at=collected_at,
                transaction_number=body["transaction_number"], reverses=body.get("reverses"),
                business_date=business_date, batch_id=batch.batch_id,
                settlement_account_code=body.get("settlement_account_code"),
            )
            batch.lines.append(line)
            self._lines[collection_id] = line
            if is_reversal:
                original = self._lines[body["reverses"]]
                original.reversed_by.append(collection_id)
                original.reversed_amount += amount
            answer = {"collection_id": collection_id, "status": "ACCEPTED", "batch_id": batch.batch_id,
                      "business_date": business_date.isoformat(), "value_date": batch.value_date.isoformat()}
            self._answers[collection_id] = (fingerprint, answer)
            return dict(answer), True

    def _business_date(self, collected_at: datetime, reconciliation_date: str | None) -> date:
        """The batch's business date: the sender's ``reconciliation_date`` when it gives one (e-finance
        decides the ReconciliationDate of an approval and settles by it), else the Cairo business
        date of ``collected_at`` under ``settlement.cutoff``. A given date must be a business day on
        or after the collection's Cairo calendar date: anything else is refused, not moved."""
        if reconciliation_date is None:
            return self.component.calendar.business_date(collected_at, self._cutoff())
        day = parse_date(reconciliation_date, "reconciliation_date", ValidationFailed)
        calendar = self.component.calendar
        if not calendar.is_business_day(day):
            raise ValidationFailed(f"reconciliation_date {day.isoformat()} is not an Egyptian business day",
                                   field="reconciliation_date")
        if day < cairo(collected_at).date():
            raise ValidationFailed(f"reconciliation_date {day.isoformat()} is before the collection's date "
                                   f"{cairo(collected_at).date().isoformat()}", field="reconciliation_date")
        return day

    def _check_reversal(self, reverses: str, governorate_code: str, amount: int,
                        account: str | None = None) -> None:
        original = self._lines.get(reverses)
        if original is None or original.type != "payment":
            raise UnknownCollection(f"no payment {reverses} to reverse", field="reverses")
        left = original.amount - original.reversed_amount
        if left == 0:
            raise AlreadyReversed(f"payment {reverses} was already reversed in full by "
                                  f"{', '.join(original.reversed_by)}", field="reverses")
        if original.governorate_code != governorate_code:
            raise ReversalMismatch(f"payment {reverses} belongs to governorate {original.governorate_code}",
                                   field="governorate_code")
        if account != original.settlement_account_code:
            raise ReversalMismatch(f"payment {reverses} went to settlement account "
                                   f"{original.settlement_account_code or '(none)'}, not {account or '(none)'}",
                                   field="settlement_account_code")
        if amount > left:
            raise ReversalMismatch(f"the reversal exceeds what is left of the payment ({format_amount(left)} of "
                                   f"{format_amount(original.amount)})", field="amount")

    def _batch_for(self, gov: str, business_date: date, iban: str) -> Batch:
        """The open batch of (governorate, business date), opened on first use.

        A new batch asks for a ``late_batch`` domain fault, which pushes its value date further by
        ``params.business_days``. A collection that arrives after its batch was credited opens a
        supplementary batch (``-2``, ``-3``…) instead of changing money already paid out.
        """
        batch_id = self._open.get((gov, business_date))
        if batch_id is not None:
            return self._batches[batch_id]
        base = f"B-{gov}-{business_date:%Y%m%d}"
        batch_id, n = base, 1
        while batch_id in self._batches:
            n += 1
            batch_id = f"{base}-{n}"
        own = self.component.own
        late_by = 0
        fault = self.component.faults.take("domain", "batch", governorate_code=gov,
                                           business_date=business_date.isoformat())
        if fault is not None and fault.kind == "late_batch":
            late_by = int(fault.params.get("business_days", 1))
        value_date = self.component.calendar.add_business_days(
            business_date, int(own.get("value_days", 2)) + late_by)
        now = self.component.clock.now()
        credit_at = max(cairo_datetime(value_date, parse_hhmm(str(own.get("credit_time", "10:00")))), now)
        batch = Batch(batch_id=batch_id, governorate_code=gov, business_date=business_date,
                      value_date=value_date, credit_at=credit_at, iban=iban,
                      mode=str(own.get("mode", "gross")), created_at=now, late_by=late_by)
        self._batches[batch_id] = batch
        self._open[(gov, business_date)] = batch_id
        return batch

    # --- queries ------------------------------------------------------------------------------
    def batches(self, business_date: date | None = None, governorate_code: str | None = None) -> list[Batch]:
        with self._lock:
            found = [b for b in self._batches.values()
                     if (business_date is None or b.business_date == business_date)
                     and (governorate_code is None or b.governorate_code == governorate_code)]
        return sorted(found, key=lambda b: (b.business_date, b.governorate_code, b.batch_id))

    def batch(self, batch_id: str) -> Batch:
        with self._lock:
            batch = self._batches.get(batch_id)
        if batch is None:
            raise BatchNotFound(f"no settlement batch {batch_id}", field="batch_id")
        return batch

    def batch_dict(self, batch: Batch, *, with_lines: bool) -> dict[str, Any]:
        with self._lock:
            return batch.to_dict() if with_lines else batch.summary()

    def file_rows(self, business_date: date, governorate_code: str | None = None) -> list[dict[str, str]]:
        """The detailed settlement file of a business date (E5): one row per line, batch by batch."""
        rows: list[dict[str, str]] = []
        with self._lock:
            for batch in self.batches(business_date, governorate_code):
                for line in sorted(batch.lines, key=lambda x: (x.collected_at, x.collection_id)):
                    rows.append({
                        "batch_id": batch.batch_id,
                        "governorate_code": batch.governorate_code,
                        "business_date": batch.business_date.isoformat(),
                        "value_date": batch.value_date.isoformat(),
                        "collection_id": line.collection_id,
                        "channel": line.channel,
                        "bill_reference": line.bill_reference,
                        "service_code": line.service_code or "",
                        "transaction_number": line.transaction_number,
                        "amount": format_amount(line.amount),
                        "collection_fee": format_amount(line.collection_fee),
                        "collected_at": iso(line.collected_at),
                        "settlement_account_code": line.settlement_account_code or "",
                    })
        return rows

    def daily_report(self, business_date: date) -> dict[str, Any]:
        """Totals of a business date per governorate, channel and service (E5's daily report)."""
        with self._lock:
            batches = self.batches(business_date)
            lines = [line for b in batches for line in b.lines]

            def totals(key: str) -> list[dict[str, Any]]:
                groups: dict[str, list[Line]] = {}
                for line in lines:
                    groups.setdefault(getattr(line, key) or "", []).append(line)
                return [{key: name, **_totals(group)} for name, group in sorted(groups.items())]

            governorates = []
            for row in totals("governorate_code"):
                own = [b for b in batches if b.governorate_code == row["governorate_code"]]
                row["settled_amount"] = format_amount(sum(b.amount for b in own))
                row["batches"] = [{"batch_id": b.batch_id, "value_date": b.value_date.isoformat(),
                                   "status": b.status} for b in own]
                governorates.append(row)
            return {
                "business_date": business_date.isoformat(),
                "currency": "EGP",
                "totals": _totals(lines),
                "by_governorate": governorates,
                "by_channel": totals("channel"),
                "by_service": totals("service_code"),
                "by_settlement_account": _by_account(lines),
            }

    def collections_on(self, source: str, day: date) -> list[dict[str, Any]]:
        """The payments ``source`` fed whose collection instant falls on the Cairo day ``day`` (what a
        party's own end-of-day file of that day should list), with their governorate."""
        with self._lock:
            lines = [line for line in self._lines.values()
                     if line.source == source and line.type == "payment" and cairo(line.collected_at).date() == day]
            return [dict(line.to_dict(), governorate_code=line.governorate_code) for line in lines]

    def statement(self, governorate_code: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._statement
                    if governorate_code is None or e["governorate_code"] == governorate_code]

    # --- poller: the clock credits batches ----------------------------------------------------
    def next_due(self) -> datetime | None:
        with self._lock:
            pending = [b.credit_at for b in self._batches.values() if b.status == OPEN]
        return min(pending) if pending else None

    def run_due(self, now: datetime) -> int:
        """Credit every batch whose credit instant has come, in order; returns the batches credited.

        Each credit posts a bank statement entry and sends the credit notice at once (this already
        runs off the request thread); a notice that fails is retried by scheduled tasks.
        """
        with self._lock:
            due = sorted((b for b in self._batches.values() if b.status == OPEN and b.credit_at <= now),
                         key=lambda b: (b.credit_at, b.batch_id))
            notices = [self._credit(batch) for batch in due]
        for notice in notices:
            self.courier.send(notice)
        return len(due)

    def _credit(self, batch: Batch) -> Delivery:
        batch.status = CREDITED
        batch.credited_at = batch.credit_at
        self._open.pop((batch.governorate_code, batch.business_date), None)
        entry_id = f"BS-{len(self._statement) + 1:08d}"
        batch.statement_entry_id = entry_id
        self._statement.append({
            "entry_id": entry_id,
            "governorate_code": batch.governorate_code,
            "iban": batch.iban,
            "value_date": batch.value_date.isoformat(),
            "amount": format_amount(batch.amount),
            "currency": "EGP",
            "reference": batch.batch_id,
            "credited_at": iso(batch.credit_at),
        })
        body = {
            "notice_id": f"N-{batch.batch_id}",
            "batch_id": batch.batch_id,
            "governorate_code": batch.governorate_code,
            "business_date": batch.business_date.isoformat(),
            "value_date": batch.value_date.isoformat(),
            "credited_at": iso(batch.credit_at),
            "iban": batch.iban,
            "amount": format_amount(batch.amount),
            "collection_fees": format_amount(batch.collection_fees),
            "currency": "EGP",
            "mode": batch.mode,
            "transactions": [line.to_dict() for line in batch.lines],
            "file_url": f"{self.component.url_of('settlement')}/api/settlement-files/"
                        f"{batch.business_date.isoformat()}",
        }
        notice = Delivery(delivery_id=body["notice_id"], kind="credit_notice",
                          url=f"{self.component.url_of('reference')}/settlement/notices", target="reference",
                          secret_name="settlement_notice", body=body)
        batch.notice = notice
        return notice


def _totals(lines: list[Line]) -> dict[str, Any]:
    return {"count": len(lines), "amount": format_amount(sum(x.amount for x in lines)),
            "collection_fees": format_amount(sum(x.collection_fee for x in lines))}


def _by_account(lines: list[Line]) -> list[dict[str, Any]]:
    """Totals per e-finance settlement account (a request's money is split over several; lines
    without an account, Khales' and the JSON card API's, are left out)."""
    groups: dict[str, list[Line]] = {}
    for line in lines:
        if line.settlement_account_code:
            groups.setdefault(line.settlement_account_code, []).append(line)
    return [{"settlement_account_code": code, **_totals(group)} for code, group in sorted(groups.items())]
