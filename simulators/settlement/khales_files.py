"""Khales' end-of-day files at settlement: taken in, read line by line, compared with the feed.

Assumed (no public specification): Khales sends the file of each Cairo day
(``contracts/kh-end-of-day-delivery.schema.json``, the CSV itself in ``content``) after the end of
that day; settlement keeps it and compares it with the collection lines Khales fed during the day:
a PAID payment line of the file that names a ``collection_id`` must be a collection Khales fed
(``missing`` if not), with the same amount, fee, bill and governorate (``different``); a payment
Khales fed for that day that no line names is ``extra``. A line that cannot be read (wrong number of
fields, an amount that is not one, another day…) is flagged under ``corrupted`` with its line number
and never stops the rest of the file from being read. The comparison is made when asked, so a feed
retried after the file arrived is counted once it is in.

A file is due by ``settlement.khales_file_due`` (Cairo) the next day: one received later is
``late``; none by then is ``MISSING``.
"""

from __future__ import annotations

import csv
import json
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from simulators.common.calendar import cairo_datetime, parse_hhmm
from simulators.common.clock import iso
from simulators.common.contracts import load_contract, problems
from simulators.common.errors import ApiError, ValidationFailed
from simulators.common.money import format_amount, parse_signed_amount
from simulators.common.wire import parse_date

from .errors import CollectionConflict

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .models import SettlementModel

COLUMNS: tuple[str, ...] = tuple(load_contract("kh-end-of-day-file.schema.json")["properties"]["columns"]["const"])
COMPARED = ("amount", "collection_fee", "bill_reference", "governorate_code")
MAX_TEXT = 200  # how much of a corrupted line is quoted back
MAX_LISTED = 100  # corrupted lines listed one by one; the rest are counted (a file of blank lines stays small)


@dataclass
class ReceivedFile:
    file_id: str
    business_date: date
    received_at: datetime
    generated_at: str
    declared_line_count: int
    declared_net_amount: str
    fingerprint: str
    content: str
    lines: list[dict[str, Any]] = field(default_factory=list)
    corrupted: list[dict[str, Any]] = field(default_factory=list)
    answer: dict[str, Any] = field(default_factory=dict)


class KhalesFiles:
    """The end-of-day files received, one per Cairo day; one lock."""

    def __init__(self, component: Component, model: SettlementModel) -> None:
        self.component = component
        self.model = model
        self.due = parse_hhmm(str(component.own.get("khales_file_due", "02:00")))
        self._lock = threading.Lock()
        self._files: dict[date, ReceivedFile] = {}
        component.on_reset(self.reset)

    def reset(self) -> None:
        with self._lock:
            self._files.clear()

    def due_at(self, day: date) -> datetime:
        return cairo_datetime(day + timedelta(days=1), self.due)

    # --- intake ---------------------------------------------------------------------------------
    def receive(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Keep the file of its day; ``(answer, created)``. The same file again is answered as the
        first time; another file for a day already received is a 409 (a file is never replaced)."""
        day = parse_date(body["business_date"], "business_date")
        fingerprint = json.dumps(body, sort_keys=True, ensure_ascii=False)
        now = self.component.clock.now()
        if now < cairo_datetime(day + timedelta(days=1), time(0, 0)):
            # a day's file is final only once the day is over; taking one early would lock the slot
            raise ValidationFailed(f"the business day {day} is not over yet in Cairo", field="business_date")
        if body["file_id"] != f"KH-EOD-{day:%Y%m%d}":
            raise ValidationFailed(f"the file of {day} is KH-EOD-{day:%Y%m%d}", field="file_id")
        with self._lock:
            known = self._files.get(day)
            if known is not None:
                if known.fingerprint != fingerprint:
                    raise CollectionConflict(f"the end-of-day file of {day} was already received with other content",
                                             field="business_date")
                return dict(known.answer), False
            lines, corrupted = read_file(body["content"], day)
            physical = len(lines) + sum(1 for c in corrupted if c["line"])
            header_read = not any(c["line"] == 0 for c in corrupted)
            if header_read and physical != body["line_count"]:
                corrupted.append({"line": None, "reason": f"the file declares {body['line_count']} lines and"
                                                          f" {physical} arrived", "text": ""})
            received = ReceivedFile(file_id=body["file_id"], business_date=day, received_at=now,
                                    generated_at=body["generated_at"], declared_line_count=body["line_count"],
                                    declared_net_amount=body["net_amount"], fingerprint=fingerprint,
                                    content=body["content"], lines=lines, corrupted=corrupted)
            received.answer = {"file_id": received.file_id, "business_date": day.isoformat(), "status": "RECEIVED",
                               "received_at": iso(now), "late": now > self.due_at(day), "lines": len(lines),
                               "corrupted": len(corrupted)}
            self._files[day] = received
            return dict(received.answer), True

    # --- queries --------------------------------------------------------------------------------
    def content(self, day: date) -> str | None:
        """The file of ``day`` exactly as it arrived (None: not received)."""
        with self._lock:
            received = self._files.get(day)
            return received.content if received is not None else None

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            days = sorted(self._files)
        return [self.view(day, with_lines=False) for day in days]

    def view(self, day: date, *, with_lines: bool = True) -> dict[str, Any]:
        """What settlement knows of Khales' file of ``day``, compared with the feed as it is now."""
        now = self.component.clock.now()
        due = self.due_at(day)
        fed = self.model.collections_on("khales", day)
        with self._lock:
            received = self._files.get(day)
        out: dict[str, Any] = {"business_date": day.isoformat(), "due_at": iso(due), "fed_collections": len(fed)}
        if received is None:
            out.update(status="MISSING" if now >= due else "PENDING", received=False, late=False, file_id=None,
                       received_at=None, result=None, lines=0, matched=0,
                       mismatches={"missing": [], "extra": [], "different": [], "duplicate": [], "corrupted": [],
                                   "totals": []})
            return out
        mismatches, matched = compare(received, fed)
        late = received.received_at > due
        out.update(
            status="RECEIVED", received=True, late=late,
            late_by_seconds=int((received.received_at - due).total_seconds()) if late else 0,
            file_id=received.file_id, received_at=iso(received.received_at), generated_at=received.generated_at,
            declared_line_count=received.declared_line_count, declared_net_amount=received.declared_net_amount,
            size=len(received.content.encode("utf-8")), lines=len(received.lines), matched=matched,
            result="MATCHED" if not any(mismatches.values()) else "MISMATCHED", mismatches=mismatches)
        if with_lines:
            out["file_lines"] = [dict(line) for line in received.lines]
        return out


def read_file(content: str, day: date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(lines, corrupted)``: every readable line as a dict (plus ``line_no``, its data line number
    from 1), and every unreadable one as ``{line, reason, text[, transaction_id]}``. Never raises."""
    text = content.removeprefix("\ufeff")  # a byte-order mark is tolerated
    physical = text.split("\n")
    if physical and physical[-1] == "":
        physical.pop()
    physical = [p.removesuffix("\r") for p in physical]
    if not physical:
        return [], [{"line": 0, "reason": "the file is empty: no header", "text": ""}]
    header = _fields(physical[0])
    if header != list(COLUMNS):
        return [], [{"line": 0, "reason": f"the header is not the {len(COLUMNS)} columns of kh-end-of-day-file",
                     "text": physical[0][:MAX_TEXT]}]
    lines: list[dict[str, Any]] = []
    corrupted: list[dict[str, Any]] = []
    for number, raw in enumerate(physical[1:], start=1):
        fields = _fields(raw)
        found = _line_problems(fields, day)
        if found:
            entry: dict[str, Any] = {"line": number, "reason": "; ".join(found), "text": raw[:MAX_TEXT]}
            if fields is not None and len(fields) > COLUMNS.index("transaction_id"):
                entry["transaction_id"] = fields[COLUMNS.index("transaction_id")]
            corrupted.append(entry)
            continue
        assert fields is not None  # noqa: S101 - _line_problems refuses None
        lines.append(dict(zip(COLUMNS, fields, strict=True), line_no=number))
    return lines, corrupted


def _fields(raw: str) -> list[str] | None:
    try:
        rows = list(csv.reader([raw]))
    except csv.Error:
        return None
    return rows[0] if rows else []


def _line_problems(fields: list[str] | None, day: date) -> list[str]:
    if fields is None:
        return ["not a CSV line"]
    if len(fields) != len(COLUMNS):
        return [f"{len(fields)} fields, not {len(COLUMNS)}"]
    row = dict(zip(COLUMNS, fields, strict=True))
    envelope = {"business_date": day.isoformat(), "network": "khales", "state": "final", "currency": "EGP",
                "columns": list(COLUMNS), "line_count": 1, "net_amount": "0.00", "lines": [row]}
    found = [p.removeprefix("lines.0.") for p in problems("kh-end-of-day-file.schema.json", envelope)]
    if found:
        return found
    if row["business_date"] != day.isoformat():
        return [f"business_date {row['business_date']} is not the file's {day.isoformat()}"]
    amount, fee, cash = (parse_signed_amount(row[k], k) for k in ("amount", "collection_fee", "cash_amount"))
    if amount + fee != cash:
        return [f"cash_amount {row['cash_amount']} is not amount + collection_fee"]
    if (row["record_type"] == "reversal") != (amount < 0):
        return [f"a {row['record_type']} line's amount is {'negative' if amount < 0 else 'not negative'}"]
    if row["record_type"] == "reversal" and row["status"] == "PAID":
        return ["a reversal line cannot be PAID"]
    if (row["record_type"] == "payment" and row["status"] == "PAID" and row["biller"] == "collection_service"
            and not row["collection_id"]):
        return ["a paid payment to the collection service names the collection_id Khales fed for it"]
    return []


def compare(received: ReceivedFile, fed: list[dict[str, Any]]) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """The file's PAID payment lines against the collections Khales fed for the day."""
    by_id = {line["collection_id"]: line for line in fed}
    named = {f"khales:{c['transaction_id']}" for c in received.corrupted if c.get("transaction_id")}
    missing: list[dict[str, Any]] = []
    different: list[dict[str, Any]] = []
    duplicate: list[dict[str, Any]] = []
    matched = 0
    expected: set[str] = set()
    for row in received.lines:
        if row["record_type"] != "payment" or row["status"] != "PAID" or not row["collection_id"]:
            continue
        if row["collection_id"] in expected:  # the same money twice in one file is never a match
            duplicate.append({"line": row["line_no"], "collection_id": row["collection_id"],
                              "transaction_id": row["transaction_id"], "amount": row["amount"]})
            continue
        expected.add(row["collection_id"])
        got = by_id.get(row["collection_id"])
        if got is None:
            missing.append({"line": row["line_no"], "collection_id": row["collection_id"],
                            "transaction_id": row["transaction_id"], "amount": row["amount"]})
            continue
        fields = [{"field": key, "file": row[key], "settlement": str(got.get(key) or "")}
                  for key in COMPARED if row[key] != str(got.get(key) or "")]
        if fields:
            different.append({"line": row["line_no"], "collection_id": row["collection_id"], "fields": fields})
        else:
            matched += 1
    extra = [{"collection_id": line["collection_id"], "transaction_number": line["transaction_number"],
              "amount": line["amount"], "collected_at": line["collected_at"]}
             for line in fed if line["collection_id"] not in expected and line["collection_id"] not in named]
    corrupted = [dict(c) for c in received.corrupted[:MAX_LISTED]]
    if len(received.corrupted) > MAX_LISTED:
        corrupted.append({"line": None, "reason": f"{len(received.corrupted) - MAX_LISTED} more corrupted lines"
                                                  " not listed", "text": ""})
    totals = []
    lines_net = sum(parse_signed_amount(row["amount"], "amount") for row in received.lines)
    try:
        declared = parse_signed_amount(received.declared_net_amount, "net_amount")
    except ApiError:
        declared = None
    if not received.corrupted and declared != lines_net:  # with corrupted lines the sum is unknowable
        totals.append({"field": "net_amount", "file": received.declared_net_amount,
                       "lines": format_amount(lines_net)})
    return {"missing": missing, "extra": extra, "different": different, "duplicate": duplicate,
            "corrupted": corrupted, "totals": totals}, matched

