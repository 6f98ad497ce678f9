"""State of e-finance settlement: collection lines, settlement batches, bank credits, credit notices.

No Flask here. Each collection fed by the card gateway or Khales becomes a line of the settlement
batch of its governorate and Cairo business date. A batch lives OPEN (lines join it) → CLOSED (a
file run published it in the detailed settlement file, E5) → CREDITED (the bank credited the
governorate's account on its value date, business date + ``value_days`` business days, obligation
E2, at ``credit_time`` Cairo). The clock drives every transition through
:meth:`SettlementModel.run_due` (the model is the scheduler's poller): file runs at ``file_time``,
credits (each sends one signed credit notice, E4, retried until acknowledged and never re-sent once
it was) and the bank statement of each day at ``statement_time``, in the order they fall due.
What is published and how is :mod:`simulators.settlement.publication`; the faults that bend each
step are :mod:`simulators.settlement.faults`.
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

from . import faults
from .errors import (
    AlreadyReversed,
    BatchNotFound,
    CollectionConflict,
    CollectionNotFound,
    ReversalMismatch,
    UnknownCollection,
    UnknownGovernorate,
)
from .publication import Publication, file_rows

if TYPE_CHECKING:
    from simulators.common.component import Component
    from simulators.common.faults import Fault

OPEN, CLOSED, CREDITED = "OPEN", "CLOSED", "CREDITED"
DEFAULT_RETRY_SECONDS = (60, 300, 900, 3600, 10800, 21600, 43200)
FILE_RUN, CREDIT, STATEMENT = 0, 1, 2  # at one instant: the file first, then credits, then the statement


@dataclass
class Line:
    """One collection in a batch; a reversal is a line with negative amount and fee."""

    collection_id: str
    type: str  # payment | reversal
    channel: str
    source: str
    governorate_code: str  # as fed (a wrong_governorate fault settles it in another governorate's batch)
    service_code: str | None
    bill_reference: str
    amount: int  # signed piasters
    collection_fee: int  # signed piasters
    currency: str
    collected_at: datetime
    transaction_number: str
    reverses: str | None
    business_date: date
    batch_id: str | None  # None: left out of every batch by a missing_transaction fault
    reversed_by: list[str] = field(default_factory=list)  # partial refunds may reverse a line in parts
    reversed_amount: int = 0  # piasters reversed so far, never above ``amount``
    settlement_account_code: str | None = None  # e-finance: the SettlementAmounts line's account
    reconciliation_date: date | None = None  # e-finance: the ReconciliationDate the sender gave
    payment_request_number: str | None = None  # e-finance: the request the line pays or refunds
    sender_request_number: str | None = None
    mechanism: str | None = None  # e-finance: Card, Meeza, MobileWallet or Channel
    faults: list[dict[str, Any]] = field(default_factory=list)  # the domain faults that bent this line

    def to_dict(self, *, with_faults: bool = True) -> dict[str, Any]:
        """The line as listed; ``with_faults=False`` for what goes to the collection service (a
        credit notice never says which fault bent a line: e-finance would not know it)."""
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
        for name in ("settlement_account_code", "payment_request_number", "sender_request_number", "mechanism"):
            if getattr(self, name):
                data[name] = getattr(self, name)
        if self.reconciliation_date:
            data["reconciliation_date"] = self.reconciliation_date.isoformat()
        if self.faults and with_faults:
            data["faults"] = list(self.faults)
        return data


@dataclass
class Batch:
    """The collections of one governorate and one Cairo business date, published and credited together."""

    batch_id: str
    governorate_code: str
    business_date: date
    value_date: date  # declared in the file; late_batch moves it, credit_late does not
    credit_at: datetime  # when the bank credits it (credit_late moves only this)
    iban: str
    mode: str
    created_at: datetime
    publish_at: datetime | None  # the file run that publishes it; None: withheld for good
    late_by: int = 0
    status: str = OPEN
    lines: list[Line] = field(default_factory=list)  # a line settled twice is here twice
    credited_at: datetime | None = None
    statement_entry_id: str | None = None
    notice: Delivery | None = None
    file_id: str | None = None
    withheld: dict[str, Any] | None = None  # credit_without_file: the fault, and when the batch is released
    credit_faults_asked: bool = False
    short_asked: int = 0  # short_batch: the fault's params.amount, in piasters
    short_by: int = 0  # short_batch: piasters the bank credits less than ``amount`` (never more than it)
    credit_late_by: int = 0  # credit_late: business days the bank credit comes after the value date
    faults: list[dict[str, Any]] = field(default_factory=list)

    @property
    def gross(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def collection_fees(self) -> int:
        return sum(line.collection_fee for line in self.lines)

    @property
    def amount(self) -> int:
        """What the governorate's account should receive: gross, or net of collection fees."""
        return self.gross - self.collection_fees if self.mode == "net" else self.gross

    @property
    def credited_amount(self) -> int:
        """What the bank credits: ``amount``, less what a short_batch fault keeps back."""
        return self.amount - self.short_by

    def summary(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "governorate_code": self.governorate_code,
            "business_date": self.business_date.isoformat(),
            "value_date": self.value_date.isoformat(),
            "credit_at": iso(self.credit_at),
            "publish_at": iso(self.publish_at) if self.publish_at else None,
            "status": self.status,
            "late_by": self.late_by,
            "credit_late_by": self.credit_late_by,
            "mode": self.mode,
            "iban": self.iban,
            "count": len(self.lines),
            "gross_amount": format_amount(self.gross),
            "collection_fees": format_amount(self.collection_fees),
            "amount": format_amount(self.amount),
            "currency": "EGP",
            "credited_amount": format_amount(self.credited_amount) if self.credited_at else None,
            "short_by": format_amount(self.short_by),
            "credited_at": iso(self.credited_at) if self.credited_at else None,
            "statement_entry_id": self.statement_entry_id,
            "file_id": self.file_id,
            "withheld_from_file": self.withheld,
            "faults": list(self.faults),
            "notice": self.notice.to_dict() if self.notice else None,
            "by_settlement_account": _by_account(self.lines),
        }

    def to_dict(self) -> dict[str, Any]:
        return dict(self.summary(), lines=[line.to_dict() for line in self.lines])


class SettlementModel:
    """Lines keyed by collection id, batches keyed by batch id, the bank statement; one lock.

    Also the scheduler's poller: :meth:`next_due` is the earliest of the next file run, credit and
    statement; :meth:`run_due` does every one due, in time order, so a clock moved days ahead publishes,
    credits and states each day as it would have happened.
    """

    def __init__(self, component: Component) -> None:
        self.component = component
        self._lock = threading.RLock()
        self._lines: dict[str, Line] = {}
        self._answers: dict[str, tuple[str, dict[str, Any]]] = {}  # collection_id -> (fingerprint, answer)
        self._batches: dict[str, Batch] = {}
        self._open: dict[tuple[str, date], str] = {}  # (governorate, business date) -> open batch id
        self._statement: list[dict[str, Any]] = []  # bank statement entries (st-bank-statement's shape)
        self._entry_day: dict[str, date] = {}  # entry id -> the statement that carries it
        self._statements_due: dict[date, datetime] = {}  # statements with entries, not yet made
        retry = component.own.get("notice_retry_seconds", DEFAULT_RETRY_SECONDS)
        self.courier = Courier(component, retry)  # credit notices: retried on the clock, then given up
        self.publication = Publication(component, self._lock, retry)
        self.credit_time = parse_hhmm(str(component.own.get("credit_time", "10:00")))
        component.faults.declare(faults.KINDS, faults.make_validator(
            self._banked_governorates, lambda day: self.component.calendar.is_business_day(day)))

    # --- settings -----------------------------------------------------------------------------
    def _cutoff(self) -> time | None:
        text = str(self.component.own.get("cutoff", "24:00"))
        return None if text == "24:00" else parse_hhmm(text)

    def _governorates(self) -> dict[str, Any]:
        return (self.component.settings.get("catalog") or {}).get("governorates") or {}

    def _banked_governorates(self) -> set[str]:
        return {code for code, gov in self._governorates().items() if (gov or {}).get("iban")}

    def _iban(self, governorate_code: str) -> str:
        iban = (self._governorates().get(governorate_code) or {}).get("iban")
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
            self._entry_day.clear()
            self._statements_due.clear()
            self.publication.reset()

    # --- faults -------------------------------------------------------------------------------
    def _take(self, kind: str, **attrs: Any) -> Fault | None:
        """Ask for one kind at its point (one kind per question: a hit never uses up another's count)."""
        return self.component.faults.take("domain", faults.POINTS[kind], kinds=(kind,), **attrs)

    def _hit(self, fault: Fault, **effect: Any) -> dict[str, Any]:
        return {"fault_id": fault.id, "kind": fault.kind, "at": iso(self.component.clock.now()), **effect}

    # --- intake -------------------------------------------------------------------------------
    def add_collection(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Put a collection in its batch; the same id and body again replays the first answer.

        ``body`` has passed ``st-collection.schema.json``. Every check runs before anything is
        written, so a refused collection leaves no trace but the journal. The collection faults are
        asked only for a new, accepted line: ``missing_transaction`` (accepted, in no batch),
        ``wrong_governorate`` (settled in another governorate's batch), ``settled_twice`` (in its batch
        twice); the answer is the usual one, as e-finance would not tell.
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
            sign = -1 if is_reversal else 1
            line = Line(
                collection_id=collection_id, type=body["type"], channel=body["channel"],
                source=body["source"], governorate_code=gov, service_code=body.get("service_code"),
                bill_reference=body["bill_reference"], amount=sign * amount, collection_fee=sign * fee,
                currency=body["currency"], collected_at=collected_at,
                transaction_number=body["transaction_number"], reverses=body.get("reverses"),
                business_date=business_date, batch_id=None,
                settlement_account_code=body.get("settlement_account_code"),
                reconciliation_date=date.fromisoformat(body["reconciliation_date"])
                if body.get("reconciliation_date") else None,
                payment_request_number=body.get("payment_request_number"),
                sender_request_number=body.get("sender_request_number"), mechanism=body.get("mechanism"),
            )
            batch_id, value_date = self._settle(line, iban)
            self._lines[collection_id] = line
            if is_reversal:
                original = self._lines[body["reverses"]]
                original.reversed_by.append(collection_id)
                original.reversed_amount += amount
            answer = {"collection_id": collection_id, "status": "ACCEPTED", "batch_id": batch_id,
                      "business_date": business_date.isoformat(), "value_date": value_date.isoformat()}
            self._answers[collection_id] = (fingerprint, answer)
            return dict(answer), True

    def _settle(self, line: Line, iban: str) -> tuple[str, date]:
        """Put a new line in its batch as the collection faults say; returns the batch id and value
        date the sender is told (for a line left out: those of the batch it should have joined)."""
        attrs = {"governorate_code": line.governorate_code, "bill_reference": line.bill_reference,
                 "transaction_number": line.transaction_number, "channel": line.channel}
        missing = self._take(faults.MISSING_TRANSACTION, **attrs)
        if missing is not None:
            line.faults.append(self._hit(missing, effect="left out of every batch"))
            return self._would_be_batch(line.governorate_code, line.business_date)
        gov = line.governorate_code
        moved = self._take(faults.WRONG_GOVERNORATE, **attrs)
        if moved is not None:
            gov = str(moved.params["governorate_code"])
            iban = self._iban(gov)
            line.faults.append(self._hit(moved, effect=f"settled in governorate {gov}'s batch", governorate_code=gov))
        batch = self._batch_for(gov, line.business_date, iban)
        line.batch_id = batch.batch_id
        batch.lines.append(line)
        twice = self._take(faults.SETTLED_TWICE, **attrs)
        if twice is not None:
            batch.lines.append(line)
            line.faults.append(self._hit(twice, effect="in its batch twice"))
        return batch.batch_id, batch.value_date

    def _would_be_batch(self, gov: str, business_date: date) -> tuple[str, date]:
        open_id = self._open.get((gov, business_date))
        if open_id is not None:
            return open_id, self._batches[open_id].value_date
        value_date = self.component.calendar.add_business_days(
            business_date, int(self.component.own.get("value_days", 2)))
        return self._next_batch_id(gov, business_date), value_date

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

    def _next_batch_id(self, gov: str, business_date: date) -> str:
        base = f"B-{gov}-{business_date:%Y%m%d}"
        batch_id, n = base, 1
        while batch_id in self._batches:
            n += 1
            batch_id = f"{base}-{n}"
        return batch_id

    def _batch_for(self, gov: str, business_date: date, iban: str) -> Batch:
        """The open batch of (governorate, business date), opened on first use.

        A new batch asks for a ``late_batch`` domain fault, which pushes its value date further by
        ``params.business_days``. A collection that arrives after its batch was closed (published)
        or credited opens a supplementary batch (``-2``, ``-3``…), published by the next file run,
        instead of changing a published file or money already paid out.
        """
        batch_id = self._open.get((gov, business_date))
        if batch_id is not None:
            return self._batches[batch_id]
        batch_id = self._next_batch_id(gov, business_date)
        own = self.component.own
        late_by = 0
        fault = self._take(faults.LATE_BATCH, governorate_code=gov, business_date=business_date.isoformat())
        if fault is not None:
            late_by = faults.business_days(fault.params)
        value_date = self.component.calendar.add_business_days(
            business_date, int(own.get("value_days", 2)) + late_by)
        now = self.component.clock.now()
        credit_at = max(cairo_datetime(value_date, self.credit_time), now)
        batch = Batch(batch_id=batch_id, governorate_code=gov, business_date=business_date,
                      value_date=value_date, credit_at=credit_at, iban=iban,
                      mode=str(own.get("mode", "gross")), created_at=now,
                      publish_at=self.publication.file_run_at(business_date, now), late_by=late_by)
        if fault is not None:
            batch.faults.append(self._hit(fault, business_days=late_by))
        self._batches[batch_id] = batch
        self._open[(gov, business_date)] = batch_id
        return batch

    def _close(self, batch: Batch) -> None:
        """No line joins ``batch`` any more (published or credited): the next one opens a supplementary batch."""
        key = (batch.governorate_code, batch.business_date)
        if self._open.get(key) == batch.batch_id:
            del self._open[key]

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

    def collection(self, collection_id: str) -> dict[str, Any]:
        """One fed line as settlement holds it: its batch (``null`` when a fault left it out) and the
        faults that bent it."""
        with self._lock:
            line = self._lines.get(collection_id)
            if line is None:
                raise CollectionNotFound(f"no collection {collection_id} was received", field="collection_id")
            return dict(line.to_dict(), governorate_code=line.governorate_code,
                        business_date=line.business_date.isoformat(), batch_id=line.batch_id)

    def file_rows(self, business_date: date, governorate_code: str | None = None) -> list[dict[str, str]]:
        """The detailed settlement file of a business date as downloaded (E5): every line of every
        batch of that date, whatever was published when (faults on a delivered file never touch it)."""
        with self._lock:
            return file_rows(self.batches(business_date, governorate_code))

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

    # --- poller: the clock publishes files, credits batches and sends statements ------------------
    def _next_event(self) -> tuple[datetime, int, Any] | None:
        """The earliest pending (instant, FILE_RUN | CREDIT | STATEMENT, business date | batch id | day)."""
        best: tuple[datetime, int, Any] | None = None
        for batch in self._batches.values():
            if batch.file_id is None and batch.publish_at is not None:
                candidate: tuple[datetime, int, Any] = (batch.publish_at, FILE_RUN, batch.business_date)
                best = candidate if best is None or candidate < best else best
            if batch.status != CREDITED:
                candidate = (batch.credit_at, CREDIT, batch.batch_id)
                best = candidate if best is None or candidate < best else best
        for day, at in self._statements_due.items():
            candidate = (at, STATEMENT, day)
            best = candidate if best is None or candidate < best else best
        return best

    def next_due(self) -> datetime | None:
        with self._lock:
            event = self._next_event()
        return event[0] if event else None

    def run_due(self, now: datetime) -> int:
        """Do every file run, credit and statement due by ``now``, in time order; returns how many.

        Each is dated at its own instant (a file's ``generated_at``, a credit's ``credited_at``), not at
        ``now``; what it sends is queued for a first attempt now, in the same order, once the lock is
        released (this already runs off the request thread; failures are retried by scheduled tasks).
        """
        outgoing: list[tuple[Courier, Delivery]] = []
        done = 0
        with self._lock:
            while (event := self._next_event()) is not None and event[0] <= now:
                at, kind, key = event
                if kind == FILE_RUN:
                    due = [b for b in self.batches(key) if b.file_id is None and b.publish_at == at]
                    for batch in due:
                        self._close(batch)
                        if batch.status == OPEN:
                            batch.status = CLOSED
                    sent = self.publication.publish(key, due, at)
                    outgoing.extend((self.publication.courier, d) for d in sent)
                elif kind == CREDIT:
                    notice = self._credit(self._batches[key], at)
                    if notice is not None:
                        outgoing.append((self.courier, notice))
                else:
                    del self._statements_due[key]
                    entries = [e for e in self._statement if self._entry_day[e["entry_id"]] == key]
                    outgoing.extend((self.publication.courier, d)
                                    for d in self.publication.statement(key, entries, at))
                done += 1
        for courier, delivery in outgoing:
            courier.send(delivery)
        return done

    def _credit(self, batch: Batch, at: datetime) -> Delivery | None:
        """The bank credit of ``batch`` at ``at``: a statement entry and the credit notice (returned).

        When its credit first falls due the batch asks for ``short_batch`` (the bank credits
        ``params.amount`` less) and ``credit_late`` (the credit, and so its notice, moves
        ``params.business_days`` business days later; the file keeps the value date): then nothing is
        credited now and ``None`` is returned.
        """
        if not batch.credit_faults_asked:
            batch.credit_faults_asked = True
            attrs = {"governorate_code": batch.governorate_code, "business_date": batch.business_date.isoformat(),
                     "batch_id": batch.batch_id}
            short = self._take(faults.SHORT_BATCH, **attrs)
            if short is not None:
                batch.short_asked = parse_amount(short.params["amount"], "params.amount")
                batch.faults.append(self._hit(short, amount=format_amount(batch.short_asked)))
            late = self._take(faults.CREDIT_LATE, **attrs)
            if late is not None:
                batch.credit_late_by = faults.business_days(late.params)
                day = self.component.calendar.add_business_days(cairo(batch.credit_at).date(), batch.credit_late_by)
                batch.credit_at = max(cairo_datetime(day, self.credit_time), at)
                batch.faults.append(self._hit(late, business_days=batch.credit_late_by,
                                              credit_at=iso(batch.credit_at)))
                if batch.credit_at > at:
                    return None
        if batch.short_asked:
            self._cap_shortfall(batch)
        self._close(batch)
        batch.status = CREDITED
        batch.credited_at = at
        entry_id = f"BS-{len(self._statement) + 1:08d}"
        batch.statement_entry_id = entry_id
        self._statement.append({
            "entry_id": entry_id,
            "iban": batch.iban,
            "governorate_code": batch.governorate_code,
            "value_date": cairo(at).date().isoformat(),
            "amount": format_amount(batch.credited_amount),
            "currency": "EGP",
            "reference": batch.batch_id,
            "credited_at": iso(at),
        })
        day = self.publication.statement_date(at)
        self._entry_day[entry_id] = day
        self._statements_due[day] = self.publication.statement_at(day)
        body = {
            "notice_id": f"N-{batch.batch_id}",
            "batch_id": batch.batch_id,
            "governorate_code": batch.governorate_code,
            "business_date": batch.business_date.isoformat(),
            "value_date": batch.value_date.isoformat(),
            "credited_at": iso(at),
            "iban": batch.iban,
            "amount": format_amount(batch.credited_amount),
            "collection_fees": format_amount(batch.collection_fees),
            "currency": "EGP",
            "mode": batch.mode,
            "transactions": [line.to_dict(with_faults=False) for line in batch.lines],
            "file_url": f"{self.component.url_of('settlement')}/api/settlement-files/"
                        f"{batch.business_date.isoformat()}",
        }
        notice = Delivery(delivery_id=body["notice_id"], kind="credit_notice",
                          url=f"{self.component.url_of('reference')}/settlement/notices", target="reference",
                          secret_name="settlement_notice", body=body)
        batch.notice = notice
        return notice

    @staticmethod
    def _cap_shortfall(batch: Batch) -> None:
        """A short credit never goes below zero: the bank keeps back at most the batch's ``amount`` as
        it stands when it is credited (nothing from a debit batch); ``short_by`` and the fault's hit
        say what was actually withheld (``asked``: the fault's amount, when it was more)."""
        batch.short_by = min(batch.short_asked, max(batch.amount, 0))
        for hit in batch.faults:
            if hit["kind"] == faults.SHORT_BATCH:
                hit["amount"] = format_amount(batch.short_by)
                if batch.short_by != batch.short_asked:
                    hit["asked"] = format_amount(batch.short_asked)


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
