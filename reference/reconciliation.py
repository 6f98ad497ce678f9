"""Three-way reconciliation: ledger ↔ detailed settlement file ↔ bank statement (E2, E4, E5, L3).

Three sources of truth, per (governorate, Cairo business date):

1. the **ledger** (payments captured that day, refunded ones too, less the card refunds made that day);
2. the **settlement file** e-finance pushes (``POST /settlement/files``): one line per collection and the
   control totals it declares per batch;
3. the **bank statement** (``POST /settlement/bank-statements``): what reached the governorate's account.
   Money counts as arrived only from here; e-finance's credit notices (``POST /settlement/notices``) are
   recorded and shown as advice.

``reconcile_day`` re-derives, in a few set-based SQL statements (``reference/store.py``), every exception
that should be open for the day and compares that with what is open: new ones open, those that hold
again re-open, those that no longer hold are resolved, and each step writes a row of the exception
history (instant and reason). So any later file or credit, and any payment recorded after the day was
reconciled (the payment's transaction marks the day dirty; the poller re-runs it), simply re-runs the
day. Exception kinds, keys and amounts: reference/README.md, "Reconciliation".

Without HTTP (a benchmark, a batch job)::

    app = create_app(settings)                 # reference.database = a file, reference.ticker = false
    rec = app.extensions["reference"]["reconciliation"]
    store = app.extensions["reference"]["store"]
    with store.transaction():
        store.import_ledger(orders, payments)  # executemany, no business rules
    rec.prepare_days()                         # a settlement day per (governorate, date) of the ledger
    with open("SF-20261207-1.csv", encoding="utf-8", newline="") as lines:
        answer, status = rec.ingest_file(header, lines, reconcile=False)  # header: the delivery without content
    rec.ingest_statement(statement, reconcile=False)                    # st-bank-statement
    rec.reconcile_all()                        # every day once; or rec.reconcile_day("01", "2026-12-07")

``ingest_file`` streams the lines (any iterable of text lines, read once) into SQLite with
``executemany`` in chunks; with ``reconcile=True`` (HTTP) it reconciles the days the file touches
right away, with ``False`` they stay marked dirty for ``reconcile_all`` (or the poller).

Why a poller too: "late" must show up even when nothing ever comes. ``next_due`` is the earliest of: a
deadline end (Cairo midnight after T + ``settlement.value_days`` (+ grace) business days) still
uncredited, a declared value date ending without a credit, a day marked dirty.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from simulators.common.calendar import cairo_datetime, parse_hhmm
from simulators.common.clock import cairo, iso, parse_instant
from simulators.common.errors import Conflict
from simulators.common.money import format_amount, parse_signed_amount
from simulators.common.wire import parse_date, parse_instant_field

from .settlement_files import (
    BrokenLine,
    SettlementFileReader,
    batch_day,
    check_date,
    check_instant,
    date_window,
    delivery_fields,
    statement_fields,
)

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .store import Store

# Exceptions a reconciliation run of one (governorate, business date) owns: it opens and resolves them.
DAY_KINDS = ("MISSING_IN_FILE", "ORPHAN_COLLECTION", "SETTLED_TWICE", "WRONG_GOVERNORATE", "SHORT_SETTLEMENT",
             "OVER_SETTLEMENT", "CREDIT_WITHOUT_FILE", "FILE_WITHOUT_CREDIT", "LATE_SETTLEMENT", "BROKEN_FILE_LINE",
             "WRONG_ACCOUNT")
# ...those a change of the bank's side only (a statement, a value date ending) can change: a run of
# these alone leaves the payments and lines (the expensive part of a million-line day) as they were.
CREDIT_KINDS = ("SHORT_SETTLEMENT", "OVER_SETTLEMENT", "CREDIT_WITHOUT_FILE", "FILE_WITHOUT_CREDIT", "LATE_SETTLEMENT",
                "WRONG_ACCOUNT")
# ...and those that are about a whole file (opened at intake; a duplicate stays a duplicate).
RECONCILIATION_KINDS = DAY_KINDS + ("DUPLICATE_FILE", "FILE_TOTALS_MISMATCH")
log = logging.getLogger(__name__)
CHUNK = 20_000  # lines per executemany: bounded memory whatever the file's size
BROKEN_LISTED = 100  # broken lines named one by one in the intake's answer (all are exceptions)


def body_hash(body: Any) -> str:
    """A stable fingerprint of a request body for idempotency (same id + other body = conflict)."""
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_hash(delivery: dict[str, Any], content_digest: str | None = None) -> str:
    """A file delivery's fingerprint: its header plus the SHA-256 of its content (hashing the content
    once as bytes, not inside a JSON dump of a 30 MB string)."""
    header = {key: value for key, value in delivery.items() if key != "content"}
    digest = content_digest or hashlib.sha256(str(delivery.get("content", "")).encode("utf-8")).hexdigest()
    return body_hash({"header": header, "content_sha256": digest})


class Reconciliation:
    """The reconciliation of each (governorate, business date), the intake of files, statements and
    notices, and the poller of what falls due on the clock."""

    def __init__(self, component: Component, store: Store) -> None:
        self.component = component
        self.store = store
        settlement = component.settings.get("settlement") or {}
        cutoff = str(settlement.get("cutoff", "24:00"))
        self.cutoff: time | None = None if cutoff == "24:00" else parse_hhmm(cutoff)
        self.value_days = int(settlement.get("value_days", 2))
        self.grace = int(component.own.get("settlement_grace_business_days", 0))

    # --- the calendar of one business date ----------------------------------------------------
    def window(self) -> tuple[date, date]:
        """The dates accepted at intake today (``settlement_files.date_window``)."""
        return date_window(cairo(self.component.clock.now()).date())

    def business_date(self, instant: datetime) -> date:
        return self.component.calendar.business_date(instant, self.cutoff)

    def expected_value_date(self, business_date: date) -> date:
        return self.component.calendar.add_business_days(business_date, self.value_days)

    def deadline_date(self, business_date: date) -> date:
        return self.component.calendar.add_business_days(business_date, self.value_days + self.grace)

    def deadline_end(self, business_date: date) -> datetime:
        """Cairo midnight at the end of the deadline: a credit at or after it is late."""
        return cairo_datetime(self.deadline_date(business_date) + timedelta(days=1), time(0))

    def _day_row(self, governorate_code: str, business_date: date) -> dict[str, Any]:
        return {"governorate_code": governorate_code, "business_date": business_date.isoformat(),
                "expected_value_date": self.expected_value_date(business_date).isoformat(),
                "deadline_date": self.deadline_date(business_date).isoformat(),
                "due_at": iso(self.deadline_end(business_date))}

    def ensure_day(self, governorate_code: str, business_date: date) -> None:
        """Called in the payment's (or refund's) transaction: the day expects a credit from now on, and
        if it was reconciled already it is marked dirty so the poller reconciles it again."""
        self.store.ensure_settlement_day(self._day_row(governorate_code, business_date))
        self.store.mark_day_dirty(governorate_code, business_date.isoformat(), iso(self.component.clock.now()))

    def touch(self, governorate_code: str, business_date: str) -> None:
        """Something of a reconciled day changed (a Khales reversal): reconcile it again."""
        self.store.mark_day_dirty(governorate_code, business_date, iso(self.component.clock.now()))

    def prepare_days(self) -> int:
        """A settlement day for every (governorate, date) of the ledger: after ``Store.import_ledger``."""
        days = self.store.ledger_days()
        with self.store.transaction():
            for row in days:
                self.store.ensure_settlement_day(self._day_row(row["governorate_code"],
                                                               date.fromisoformat(row["business_date"])))
        return len(days)

    def _days_late(self, deadline: date, day: date) -> int:
        """Business days past the deadline; a credit on a weekend counts from the next business day."""
        effective = self.component.calendar.next_business_day(day, include_today=True)
        return max(1, self.component.calendar.business_days_between(deadline, effective))

    # --- the settlement block of the daily report ------------------------------------------------
    def status(self, governorate_code: str, business_date: date, now: datetime) -> dict[str, Any]:
        """PENDING | ON_TIME | LATE | OVERDUE | SHORT | OVER of a day, against the bank's credits.

        "Credited" = bank credits naming a batch of the day (or, for a batch no file declares, whose
        batch id names the day). A day whose ledger nets to zero and whose declared batches are all
        zero has nothing to credit: ON_TIME at 0.00 once the file said so.
        """
        day = business_date.isoformat()
        count, expected = self.store.expected_settlement(governorate_code, day)
        credits = self.store.day_credit_totals(governorate_code, day)
        batches = self.store.day_batches(governorate_code, day)
        row = self.store.settlement_day(governorate_code, day)
        deadline = self.deadline_date(business_date)
        out: dict[str, Any] = {
            "governorate_code": governorate_code, "business_date": day,
            "expected_value_date": self.expected_value_date(business_date).isoformat(),
            "deadline": deadline.isoformat(), "expected_amount": format_amount(expected),
            "expected_count": count, "credited_amount": None, "collection_fees": None, "credited_at": None,
            "difference": None, "days_late": 0, "credits": int(credits["count"]),
            "notices": int(row["notices"]) if row else 0,
            "advised_amount": format_amount(int(row["advised_amount"]) if row else 0),
        }
        nothing_to_credit = expected == 0 and batches and all(int(b["amount"]) == 0 for b in batches)
        if not credits["count"] and nothing_to_credit:
            out.update(status="ON_TIME", credited_amount="0.00", collection_fees="0.00", difference="0.00")
            return out
        if not credits["count"]:
            overdue = now >= self.deadline_end(business_date) and expected != 0
            out["status"] = "OVERDUE" if overdue else "PENDING"
            if overdue:
                out["days_late"] = self._days_late(deadline, cairo(now).date())
            return out
        credited = int(credits["amount"])
        # A net credit had the collection fees deducted (the batch says so): compare the gross it stands for.
        fees = sum(int(b["collection_fees"]) for b in batches if b["mode"] == "net")
        credited_at = parse_instant(credits["last_at"])
        difference = credited + fees - expected
        late = credited_at >= self.deadline_end(business_date)
        out.update(credited_amount=format_amount(credited), collection_fees=format_amount(fees),
                   credited_at=credits["last_at"], difference=format_amount(difference),
                   days_late=self._days_late(deadline, cairo(credited_at).date()) if late else 0)
        if difference < 0:
            out["status"] = "SHORT"
        elif difference > 0:
            out["status"] = "OVER"
        else:
            out["status"] = "LATE" if late else "ON_TIME"
        return out

    # --- POST /settlement/notices (advice) --------------------------------------------------------
    def record_notice(self, body: dict[str, Any]) -> dict[str, Any]:
        """Record a credit notice once (idempotent by ``notice_id``). It is e-finance's word that it paid
        a batch: kept and shown (``notices``, ``advised_amount``), but the credit is the bank's."""
        now = self.component.clock.now()
        fingerprint = body_hash(body)
        amount = parse_signed_amount(body["amount"], "amount")
        fees = parse_signed_amount(body.get("collection_fees", "0.00"), "collection_fees")
        window = self.window()
        business_date = check_date(parse_date(body["business_date"], "business_date"), "business_date", window)
        check_date(parse_date(body["value_date"], "value_date"), "value_date", window)
        credited_at = iso(check_instant(parse_instant_field(body["credited_at"], "credited_at"), "credited_at",
                                        window))
        named = batch_day(str(body["batch_id"]))
        if named:
            check_date(date.fromisoformat(named[1]), "batch_id", window)
        for i, tx in enumerate(body["transactions"]):
            parse_signed_amount(tx["amount"], f"transactions.{i}.amount")
        gov = body["governorate_code"]
        with self.store.transaction():
            known = self.store.settlement_notice(body["notice_id"])
            if known is not None:
                if known["request_hash"] != fingerprint:
                    raise Conflict(f"notice {body['notice_id']} was already received with another body",
                                   field="notice_id")
                return dict(known["response"])
            self.store.insert_settlement_notice({
                "notice_id": body["notice_id"], "request_hash": fingerprint, "batch_id": body["batch_id"],
                "governorate_code": gov, "business_date": business_date.isoformat(),
                "value_date": body["value_date"], "credited_at": credited_at, "amount": amount,
                "collection_fees": fees, "mode": body.get("mode", "gross"), "iban": body["iban"],
                "transactions": body["transactions"], "received_at": iso(now)})
            self.store.ensure_settlement_day(self._day_row(gov, business_date))
            self.store.add_notice_advice(gov, business_date.isoformat(), amount)
            response = {"notice_id": body["notice_id"], "status": "RECORDED",
                        "note": "advice: money counts as credited only from the bank statement",
                        "reconciliation": self.status(gov, business_date, now),
                        "unmatched_transactions": self.store.unmatched_notice_lines(body["notice_id"])}
            self.store.set_notice_response(body["notice_id"], response)
        return response

    # --- POST /settlement/files -------------------------------------------------------------------
    def ingest_file(self, delivery: dict[str, Any], lines: Iterable[str] | None = None, *,
                    request_hash: str | None = None, reconcile: bool = True) -> tuple[dict[str, Any], int]:
        """Take one detailed settlement file; ``(answer, 201)`` the first time, ``(same answer, 200)`` for
        the same file_id and body again; another body under a known file_id is 409 ``CONFLICT``.

        ``delivery`` is a ``st-settlement-file-delivery`` (its ``content`` is read unless ``lines`` is
        given: any iterable of the CSV's text lines, header first). The whole intake is one transaction:
        lines stream into SQLite in chunks, a broken line is kept as such and reading goes on, a file
        whose every line is already in an accepted file is a ``DUPLICATE_FILE`` and counts for nothing.
        The days it touches are marked dirty in that transaction and reconciled right after it (with
        ``reconcile=False`` they are left to the poller or ``reconcile_all``: a bulk load).
        """
        window = self.window()
        fields = delivery_fields(delivery, window)
        file_id = fields["file_id"]
        source = lines if lines is not None else io.StringIO(str(delivery.get("content", "")))
        fingerprint = request_hash or file_hash(delivery)
        now = self.component.clock.now()
        stamp = iso(now)
        with self.store.transaction():
            if not self.store.insert_settlement_file({
                    "file_id": file_id, "request_hash": fingerprint, "business_date": fields["business_date"],
                    "sequence": fields["sequence"], "generated_at": iso(fields["generated_at"]),
                    "declared_line_count": fields["line_count"], "gross_amount": fields["gross_amount"],
                    "collection_fees": fields["collection_fees"], "net_amount": fields["net_amount"],
                    "received_at": stamp}):
                known = self.store.settlement_file(file_id)
                if known is None or known["request_hash"] != fingerprint:
                    raise Conflict(f"file {file_id} was already received with another body", field="file_id")
                return dict(known["response"]), 200
            reader = SettlementFileReader(file_id, window, {
                b["batch_id"]: (b["governorate_code"], b["business_date"]) for b in fields["batches"]})
            broken = self._stream(reader, source)
            tally = reader.tally
            duplicate_of = self._duplicate_of(file_id, tally.days, tally.readable)
            days: set[tuple[str, str]] = set()
            if duplicate_of:
                self.store.drop_file_lines(file_id, tally.days)
                self.store.open_exception({
                    "exception_key": f"DUPLICATE_FILE:{file_id}", "kind": "DUPLICATE_FILE",
                    "business_date": fields["business_date"], "file_id": file_id, "amount": fields["net_amount"],
                    "detail": f"every line of {file_id} is already in {duplicate_of}: nothing of it is counted",
                    "opened_at": stamp})
            else:
                # A file whose header cannot be read declares nothing we can check: its control totals are
                # not kept (its credits stay without file until a readable file comes).
                self._accept_batches(file_id, [] if reader.header_problem else fields["batches"], fields,
                                     tally.by_batch, tally.readable_amount)
                if not reader.header_problem:
                    self._totals_mismatches(file_id, fields, tally, stamp)
                self._file_level_broken_lines(file_id, fields["business_date"], stamp)
                days = set(tally.days)
                dates = sorted({day for _, day in days} | {b["business_date"] for b in fields["batches"]})
                touched = self.store.days_of_file(file_id, dates)
                days |= {(row["governorate_code"], row["business_date"]) for row in touched}
                for gov, day in days:
                    self.store.ensure_settlement_day(self._day_row(gov, date.fromisoformat(day)))
                    self.store.mark_day_dirty(gov, day, stamp, force=True)
            answer = {
                "file_id": file_id, "business_date": fields["business_date"], "sequence": fields["sequence"],
                "status": "DUPLICATE" if duplicate_of else "ACCEPTED", "duplicate_of": duplicate_of,
                "received_at": stamp, "declared_line_count": fields["line_count"], "lines": tally.lines,
                "readable_lines": tally.readable, "broken_lines": tally.broken, "broken": broken,
                "batches": len(fields["batches"]),
                "totals_match": not tally.broken and tally.lines == fields["line_count"]
                and tally.readable_amount == fields["gross_amount"],
                "days": [{"governorate_code": g, "business_date": d} for g, d in sorted(days)],
            }
            self.store.finish_settlement_file(file_id, status=answer["status"], duplicate_of=duplicate_of,
                                              lines_read=tally.readable, lines_broken=tally.broken, response=answer)
        for gov, day in sorted(days) if reconcile else ():
            self.reconcile_day(gov, day, trigger=f"file {file_id} received", now=now)
        return answer, 201

    def _duplicate_of(self, file_id: str, days: set[tuple[str, str]], readable: int) -> str | None:
        """The accepted file that already holds every line of ``file_id`` with the same governorate, batch
        and amount, if one does (a file with no readable line, one line or broken line found nowhere
        else, or a line held elsewhere under another governorate / batch / amount, is a file of its own)."""
        if not readable or self.store.file_has_new_broken_line(file_id):
            return None
        if any(self.store.file_has_new_line(file_id, gov, day) for gov, day in sorted(days)):
            return None
        if any(self.store.file_has_changed_line(file_id, gov, day) for gov, day in sorted(days)):
            return None  # a line moved to another governorate / batch or with another amount: a correction
        gov, day = min(days)
        return self.store.holder_of(file_id, gov, day)

    def _stream(self, reader: SettlementFileReader, lines: Iterable[str]) -> list[dict[str, Any]]:
        """Read every line into the store, ``CHUNK`` rows per ``executemany``; the first broken lines
        are returned for the answer (all of them are stored)."""
        good: list[tuple[Any, ...]] = []
        bad: list[tuple[Any, ...]] = []
        listed: list[dict[str, Any]] = []
        for item in reader.rows(lines):
            if isinstance(item, BrokenLine):
                bad.append((reader.file_id, item.line_number, item.reason, item.text, item.batch_id,
                            item.governorate_code, item.business_date, item.collection_id, item.transaction_number))
                if len(listed) < BROKEN_LISTED:
                    listed.append({"line": item.line_number, "reason": item.reason,
                                   "transaction_number": item.transaction_number})
                if len(bad) >= CHUNK:
                    self.store.insert_broken_lines(bad)
                    bad.clear()
                continue
            good.append(item)
            if len(good) >= CHUNK:
                self.store.insert_file_lines(good)
                good.clear()
        if good:
            self.store.insert_file_lines(good)
        if bad:
            self.store.insert_broken_lines(bad)
        return listed

    def _accept_batches(self, file_id: str, batches: list[dict[str, Any]], fields: dict[str, Any],
                        readable_by_batch: dict[str, int], readable_amount: int) -> None:
        """Store the declared batches (due at the end of their value date) and what each broken line
        stands for when no payment names it: declared − readable, per batch, else for the file."""
        rows = []
        for batch in batches:
            value_date = date.fromisoformat(batch["value_date"])
            rows.append(dict(batch, file_id=file_id,
                             due_at=iso(cairo_datetime(value_date + timedelta(days=1), time(0)))))
        self.store.insert_file_batches(rows)
        self.store.set_broken_fallbacks(
            file_id, [(b["gross_amount"] - readable_by_batch.get(b["batch_id"], 0), b["batch_id"])
                      for b in fields["batches"]], fields["gross_amount"] - readable_amount)

    def _totals_mismatches(self, file_id: str, fields: dict[str, Any], tally: Any, stamp: str) -> None:
        """FILE_TOTALS_MISMATCH (opened at intake, a file never changes): a declared batch whose own
        figures disagree (``amount`` ≠ ``gross_amount`` − the fees a net batch deducts), or whose readable
        lines do not add up to its ``gross_amount`` / net ``collection_fees`` when no broken line can
        stand for the difference; the file's own ``gross_amount`` likewise. Amount: |the difference|
        (the money the bank would be asked for, or credit, wrongly)."""
        unbatched = tally.broken_unbatched > 0
        for batch in fields["batches"]:
            batch_id = batch["batch_id"]
            net = batch["mode"] == "net"
            declared_fees = batch["collection_fees"] if net else 0
            problems: list[tuple[str, int]] = []
            own = batch["amount"] - (batch["gross_amount"] - declared_fees)
            if own:
                problems.append((f"its amount {format_amount(batch['amount'])} is not gross"
                                 f" {format_amount(batch['gross_amount'])}"
                                 + (f" less fees {format_amount(declared_fees)}" if net else ""), own))
            if not unbatched and batch_id not in tally.broken_batches:
                lines_gross = tally.by_batch.get(batch_id, 0)
                lines_fees = tally.fees_by_batch.get(batch_id, 0)
                if lines_gross != batch["gross_amount"]:
                    problems.append((f"its readable lines add up to {format_amount(lines_gross)}, it declares"
                                     f" gross {format_amount(batch['gross_amount'])}",
                                     batch["gross_amount"] - lines_gross))
                if net and lines_fees != batch["collection_fees"]:
                    problems.append((f"its readable lines carry fees of {format_amount(lines_fees)}, it deducts"
                                     f" {format_amount(batch['collection_fees'])}",
                                     lines_fees - batch["collection_fees"]))
            if not problems:
                continue
            self.store.open_exception({
                "exception_key": f"FILE_TOTALS_MISMATCH:{file_id}:{batch_id}", "kind": "FILE_TOTALS_MISMATCH",
                "governorate_code": batch["governorate_code"], "business_date": batch["business_date"],
                "file_id": file_id, "batch_id": batch_id, "amount": abs(problems[0][1]),
                "detail": f"batch {batch_id} of {file_id} does not add up: " + "; ".join(p for p, _ in problems),
                "opened_at": stamp})
        if not tally.broken and tally.readable_amount != fields["gross_amount"]:
            difference = fields["gross_amount"] - tally.readable_amount
            self.store.open_exception({
                "exception_key": f"FILE_TOTALS_MISMATCH:{file_id}", "kind": "FILE_TOTALS_MISMATCH",
                "business_date": fields["business_date"], "file_id": file_id, "amount": abs(difference),
                "detail": f"the lines of {file_id} add up to {format_amount(tally.readable_amount)}, the file"
                          f" declares gross {format_amount(fields['gross_amount'])}",
                "opened_at": stamp})

    def _file_level_broken_lines(self, file_id: str, business_date: str, stamp: str) -> None:
        """A broken line whose governorate and date did not survive belongs to no day: an exception of
        the file (the header, a line cut before its second field)."""
        for row in self.store.broken_lines_without_day(file_id):
            amount = row["payment_amount"] if row["payment_amount"] is not None else row["fallback_amount"]
            self.store.open_exception({
                "exception_key": f"BROKEN_FILE_LINE:{file_id}:{row['line_number']}", "kind": "BROKEN_FILE_LINE",
                "business_date": business_date, "file_id": file_id, "line_number": row["line_number"],
                "transaction_number": row["transaction_number"], "amount": amount,
                "detail": f"line {row['line_number']} of {file_id} cannot be read: {row['reason']}",
                "opened_at": stamp})

    # --- POST /settlement/bank-statements ---------------------------------------------------------
    def ingest_statement(self, body: dict[str, Any], *, request_hash: str | None = None,
                         reconcile: bool = True) -> tuple[dict[str, Any], int]:
        """Take one bank statement; ``(answer, 201)``, the same again ``(answer, 200)``, another body
        under a known statement_id 409. Each entry is a credit once (by entry_id, whatever statement
        lists it); the days of its batches are reconciled."""
        fields = statement_fields(body, self.window())
        statement_id = fields["statement_id"]
        fingerprint = request_hash or body_hash(body)
        now = self.component.clock.now()
        stamp = iso(now)
        with self.store.transaction():
            if not self.store.insert_bank_statement({
                    "statement_id": statement_id, "request_hash": fingerprint,
                    "statement_date": fields["statement_date"], "generated_at": iso(fields["generated_at"]),
                    "entries": len(fields["entries"]), "received_at": stamp}):
                known = self.store.bank_statement(statement_id)
                if known is None or known["request_hash"] != fingerprint:
                    raise Conflict(f"statement {statement_id} was already received with another body",
                                   field="statement_id")
                return dict(known["response"]), 200
            self._same_entries(fields["entries"])
            rows = []
            for entry in fields["entries"]:
                gov, day = batch_day(entry["reference"]) or (entry["governorate_code"], entry["value_date"])
                rows.append(dict(entry, statement_id=statement_id, credited_at=iso(entry["credited_at"]),
                                 received_at=stamp, day_governorate_code=gov, day_business_date=day))
            new = self.store.insert_bank_credits(rows)
            self.store.flag_wrong_accounts([(row["entry_id"], why) for row in rows
                                            if (why := self._wrong_account(row)) is not None])
            days = {(r["governorate_code"], r["business_date"]) for r in self.store.days_of_statement(statement_id)}
            for gov, day in days:
                self.store.ensure_settlement_day(self._day_row(gov, date.fromisoformat(day)))
                self.store.mark_day_dirty(gov, day, stamp, force=True, credits_only=True)
            answer = {"statement_id": statement_id, "statement_date": fields["statement_date"], "status": "RECORDED",
                      "received_at": stamp, "entries": len(rows), "new_entries": new,
                      "repeated_entries": len(rows) - new,
                      "days": [{"governorate_code": g, "business_date": d} for g, d in sorted(days)]}
            self.store.set_statement_response(statement_id, answer)
        for gov, day in sorted(days) if reconcile else ():
            self.reconcile_day(gov, day, trigger=f"bank statement {statement_id} received", now=now,
                               kinds=CREDIT_KINDS)
        return answer, 201

    def _wrong_account(self, entry: dict[str, Any]) -> str | None:
        """Why a credit went to the wrong account, if it did: its IBAN is not the catalog IBAN of its
        ``governorate_code``, or its batch id ``B-<gov>-…`` names another governorate (a declared batch
        of another governorate is found at reconciliation)."""
        governorates = (self.component.settings.get("catalog") or {}).get("governorates") or {}
        expected = (governorates.get(entry["governorate_code"]) or {}).get("iban")
        if expected != entry["iban"]:
            return (f"{entry['iban']} is not the account of governorate {entry['governorate_code']}"
                    f" ({expected or 'no such governorate'})")
        named = batch_day(entry["reference"])
        if named and named[0] != entry["governorate_code"]:
            return f"its batch {entry['reference']} is of governorate {named[0]}"
        return None

    def _same_entries(self, entries: list[dict[str, Any]]) -> None:
        """An entry id already credited must come back with the same content (then it is a no-op);
        another amount, reference, IBAN… under it is 409 ``CONFLICT`` naming ``entries.<i>.entry_id``."""
        known = self.store.known_bank_credits([entry["entry_id"] for entry in entries])
        for i, entry in enumerate(entries):
            held = known.get(entry["entry_id"])
            if held is None:
                continue
            differs = [name for name in ("iban", "governorate_code", "value_date", "amount", "currency", "reference")
                       if held[name] != entry[name]]
            if held["credited_at"] != iso(entry["credited_at"]):
                differs.append("credited_at")
            if differs:
                raise Conflict(f"bank entry {entry['entry_id']} was already credited with another"
                               f" {', '.join(differs)} (statement {held['statement_id']})",
                               field=f"entries.{i}.entry_id")

    # --- one day --------------------------------------------------------------------------------------
    def reconcile_day(self, governorate_code: str, business_date: date | str, *,
                      trigger: str = "reconciliation re-run", now: datetime | None = None,
                      kinds: tuple[str, ...] = DAY_KINDS) -> dict[str, Any]:
        """Reconcile one (governorate, business date) in one transaction and say what changed.

        Set-based: the payment, line and broken-line exceptions are computed by SQL straight into the
        run's "desired" table; batches and credits (a handful a day) are looked at here; the store then
        opens, re-opens, updates and resolves by comparing tables. Safe to re-run at any time.
        ``kinds=CREDIT_KINDS``: only the bank's side changed, the lines and payments are not looked at.
        """
        full = kinds == DAY_KINDS
        now = now or self.component.clock.now()
        day = business_date if isinstance(business_date, str) else business_date.isoformat()
        bdate = date.fromisoformat(day)
        stamp = iso(now)
        gov = governorate_code
        with self.store.transaction():
            self.store.ensure_settlement_day(self._day_row(gov, bdate))
            self.store.begin_desired()
            if full:
                self.store.desire_payment_exceptions(gov, day, self.store.day_has_section(gov, day))
                self.store.desire_line_exceptions(gov, day)
                self.store.desire_broken_line_exceptions(gov, day)
            desired: list[dict[str, Any]] = []
            reasons: dict[str, str] = {}
            base = {"governorate_code": gov, "business_date": day, "opened_at": stamp}
            for batch in self.store.day_batches(gov, day):
                self._batch_exceptions(batch, base, now, desired, reasons)
            for credit in self.store.day_credits(gov, day):
                if credit["wrong"]:
                    why = credit["wrong_reason"] or f"it names batch {credit['reference']} of another governorate"
                    desired.append(dict(
                        base, exception_key=f"WRONG_ACCOUNT:{credit['entry_id']}", kind="WRONG_ACCOUNT",
                        entry_id=credit["entry_id"], batch_id=credit["reference"], amount=int(credit["amount"]),
                        detail=f"bank credit {credit['entry_id']} of {format_amount(int(credit['amount']))} to"
                               f" {credit['iban']} (governorate {credit['governorate_code']}) is not counted: {why}"))
                elif not credit["declared"]:
                    desired.append(dict(
                        base, exception_key=f"CREDIT_WITHOUT_FILE:{credit['entry_id']}", kind="CREDIT_WITHOUT_FILE",
                        entry_id=credit["entry_id"], batch_id=credit["reference"], amount=int(credit["amount"]),
                        detail=f"bank credit {credit['entry_id']} of {format_amount(int(credit['amount']))} on"
                               f" {credit['value_date']} names batch {credit['reference']}, which no settlement"
                               " file declares"))
            credits = self.store.day_credit_totals(gov, day)
            self._late_settlement(gov, bdate, credits, base, now, desired, reasons)
            self.store.add_desired(desired)
            self._day_settlement(gov, bdate, kinds, base, now)
            self.store.add_resolution_reasons(reasons)
            opened, resolved = self.store.sync_exceptions(gov, day, kinds, stamp, trigger)
            self.store.finish_day(gov, day, stamp, int(credits["amount"]), credits["last_at"], full=full)
        return {"governorate_code": gov, "business_date": day, "opened": opened, "resolved": resolved}

    def reconcile_all(self, *, trigger: str = "reconciliation of every day", now: datetime | None = None) -> int:
        """Reconcile every day that has money or settlement data; returns how many days."""
        days = self.store.all_settlement_days()
        for row in days:
            self.reconcile_day(row["governorate_code"], row["business_date"], trigger=trigger, now=now)
        return len(days)

    def _batch_exceptions(self, batch: dict[str, Any], base: dict[str, Any], now: datetime,
                          desired: list[dict[str, Any]], reasons: dict[str, str]) -> None:
        """SHORT / OVER (credits ≠ declared amount) and FILE_WITHOUT_CREDIT (no credit by the end of the
        declared value date) of one declared batch. A credit that came after that end opens and resolves
        FILE_WITHOUT_CREDIT at once ("N business day(s) after the declared value date")."""
        batch_id, declared = batch["batch_id"], int(batch["amount"])
        ids = dict(base, batch_id=batch_id, file_id=batch["file_id"])
        key = f"FILE_WITHOUT_CREDIT:{batch_id}"
        due = parse_instant(batch["due_at"])
        missing = dict(ids, exception_key=key, kind="FILE_WITHOUT_CREDIT", amount=declared,
                       detail=f"batch {batch_id} ({format_amount(declared)}, file {batch['file_id']}) has no bank"
                              f" credit by the end of its declared value date {batch['value_date']}")
        if declared != 0 and now >= due:
            if not batch["credits"]:
                desired.append(missing)
            else:
                first = parse_instant(batch["first_credit_at"])
                if first >= due:
                    self.store.open_exception_once(missing)
                    late = self._days_late(date.fromisoformat(batch["value_date"]), cairo(first).date())
                    reasons[key] = (f"credited at {batch['first_credit_at']}, {late} business day(s) after the"
                                    f" declared value date {batch['value_date']}")
                else:
                    reasons[key] = f"credited at {batch['first_credit_at']}"
        if batch["credits"]:
            difference = int(batch["credited"]) - declared
            if difference:
                kind = "SHORT_SETTLEMENT" if difference < 0 else "OVER_SETTLEMENT"
                desired.append(dict(
                    ids, exception_key=f"{kind}:{batch_id}", kind=kind, amount=abs(difference),
                    detail=f"the bank credited {format_amount(int(batch['credited']))} for batch {batch_id},"
                           f" which file {batch['file_id']} declares at {format_amount(declared)}"))

    def _day_settlement(self, gov: str, business_date: date, kinds: tuple[str, ...], base: dict[str, Any],
                        now: datetime) -> None:
        """SHORT / OVER of the whole day: once credits are in, the ledger's expected amount differs from
        what the bank credited (gross-equivalent, as ``status`` computes) and no other exception of the
        day explains it (none desired by this run, none open of a kind this run does not own). Keeps
        "RECONCILED" from standing next to a settlement block that says SHORT or OVER."""
        status = self.status(gov, business_date, now)
        if status["status"] not in ("SHORT", "OVER") or status["difference"] is None:
            return
        day = business_date.isoformat()
        if self.store.day_has_other_exceptions(gov, day, kinds):
            return
        kind = "SHORT_SETTLEMENT" if status["status"] == "SHORT" else "OVER_SETTLEMENT"
        difference = abs(parse_signed_amount(status["difference"], "difference"))
        self.store.add_desired([dict(
            base, exception_key=f"{kind}:DAY:{gov}:{day}", kind=kind, amount=difference,
            detail=f"the ledger expects {status['expected_amount']} for {gov} on {day}; the bank credited"
                   f" {status['credited_amount']} (+ {status['collection_fees']} of fees deducted)")])

    def _late_settlement(self, gov: str, business_date: date, credits: dict[str, Any], base: dict[str, Any],
                         now: datetime, desired: list[dict[str, Any]], reasons: dict[str, str]) -> None:
        """LATE_SETTLEMENT (E2): the ledger expects money and no bank credit by the deadline's end (OVERDUE,
        open); a credit after it resolves it "N business day(s) late" (opening it first if nobody saw
        it overdue)."""
        day = business_date.isoformat()
        _, expected = self.store.expected_settlement(gov, day)
        key = f"LATE_SETTLEMENT:{gov}:{day}"
        deadline = self.deadline_date(business_date)
        late = dict(base, exception_key=key, kind="LATE_SETTLEMENT", amount=expected,
                    detail=f"no bank credit for business date {day} by the end of {deadline.isoformat()}"
                           f" (expected value date {self.expected_value_date(business_date).isoformat()})")
        if not credits["count"]:
            if expected != 0 and now >= self.deadline_end(business_date):
                desired.append(late)
            return
        credited_at = parse_instant(credits["last_at"])
        if expected != 0 and credited_at >= self.deadline_end(business_date):
            self.store.open_exception_once(late)
            days = self._days_late(deadline, cairo(credited_at).date())
            reasons[key] = f"credited at {credits['last_at']}, {days} business day(s) late"
        else:
            reasons[key] = f"credited at {credits['last_at']}"

    # --- the poller -------------------------------------------------------------------------------
    def next_due(self) -> datetime | None:
        candidates = [due for due in (self.store.next_overdue_due(), self.store.next_batch_due(),
                                      self.store.first_dirty_since()) if due]
        return parse_instant(min(candidates)) if candidates else None

    def run_due(self, now: datetime) -> int:
        """Reconcile each day whose deadline or declared value date just ended, and each dirty day;
        the mark and the run are one transaction per day (a crash leaves the mark undone). A day whose
        run fails is logged with its day and left as it was (rolled back); the other days go on, so one
        bad day never blocks the rest."""
        stamp = iso(now)
        done = 0
        for row in self.store.overdue_days(stamp):
            def overdue(row: dict[str, Any] = row) -> bool:
                with self.store.transaction():
                    if not self.store.mark_overdue(row["governorate_code"], row["business_date"], stamp):
                        return False
                    self.reconcile_day(row["governorate_code"], row["business_date"],
                                       trigger="the settlement deadline passed", now=now, kinds=CREDIT_KINDS)
                    return True
            done += self._guarded(row, overdue)
        for row in self.store.due_batches(stamp):
            def batch_due(row: dict[str, Any] = row) -> bool:
                with self.store.transaction():
                    if not self.store.mark_batch_checked(row["file_id"], row["batch_id"]):
                        return False
                    self.reconcile_day(row["governorate_code"], row["business_date"], now=now, kinds=CREDIT_KINDS,
                                       trigger=f"the declared value date of {row['batch_id']} ended")
                    return True
            done += self._guarded(row, batch_due)
        for row in self.store.dirty_days():
            def dirty(row: dict[str, Any] = row) -> bool:
                if row["full"]:
                    self.reconcile_day(row["governorate_code"], row["business_date"],
                                       trigger="the ledger changed after the day was reconciled", now=now)
                else:
                    self.reconcile_day(row["governorate_code"], row["business_date"], now=now, kinds=CREDIT_KINDS,
                                       trigger="the bank's credits changed")
                return True
            done += self._guarded(row, dirty)
        return done

    def _guarded(self, row: dict[str, Any], run: Any) -> int:
        """1 if ``run()`` reconciled the day, 0 if not or if it failed (logged with the day)."""
        try:
            return 1 if run() else 0
        except Exception:  # one bad day must not stop the poller for the others
            log.exception("reconciliation of %s %s failed; the other days go on",
                          row.get("governorate_code"), row.get("business_date"))
            return 0
