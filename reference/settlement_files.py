"""Reading what settlement sends: the detailed settlement file (E5) and the bank statement. No SQL, no Flask.

Why a reader of its own: the file is the second source of truth of the three-way reconciliation, and
one damaged line must not cost the governorate the rest of its day. So the CSV is read **line by
line** from any iterable of text lines (a request's ``content``, an open file, a generator), each line
on its own: a line that cannot be read (wrong number of fields, an amount that is not one, a date
that is not a date…) is kept as a :class:`BrokenLine` with what survived of it (the fields before
``amount``: batch, governorate, business date, collection id, transaction number), and reading goes
on. A quote inside a line is honoured for that line only, so an unbalanced quote can never swallow
the lines after it. A UTF-8 byte-order mark and ``\\r\\n`` line ends are tolerated.

Columns (``docs``: issue 5 spec; the first 13 are the file published before it): the header names
them, in any order; the 13 first ones are required, the e-finance ones (``payment_request_number``,
``sender_request_number``, ``mechanism``, ``reconciliation_date``) and ``line_type`` / ``reverses``
may be absent (a Khales line leaves them empty; ``line_type`` then follows the sign of ``amount``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from simulators.common.errors import ApiError, ValidationFailed
from simulators.common.money import parse_signed_amount
from simulators.common.wire import is_date, parse_date, parse_instant_field

CORE_COLUMNS = ("batch_id", "governorate_code", "business_date", "value_date", "collection_id", "channel",
                "bill_reference", "service_code", "transaction_number", "amount", "collection_fee",
                "collected_at", "settlement_account_code")
EXTRA_COLUMNS = ("payment_request_number", "sender_request_number", "mechanism", "reconciliation_date",
                 "line_type", "reverses")
FILE_COLUMNS = CORE_COLUMNS + EXTRA_COLUMNS
# What a broken line may still tell: the fields before ``amount`` (a cut line keeps its start).
SURVIVING = ("batch_id", "governorate_code", "business_date", "collection_id", "transaction_number")
LINE_TYPES = ("payment", "reversal")
CHANNELS = ("card", "cash")
MAX_TEXT = 200  # characters of a broken line kept for the exception's detail
MAX_ID = 128

# The dates a settlement record may carry, around the simulated clock's today. Why: a schema-valid date
# such as 9999-12-31 makes every deadline computed from it (T + value days, Cairo midnight after it)
# overflow ``datetime`` and puts the day's report, and the poller that reconciles it, out of action; a
# date before e-payment existed or years ahead is a sender's error, never a business date. Anything
# taken at intake outside [EARLIEST_DATE, today + HORIZON] is a 422 naming the field (a file line
# outside it is a broken line).
EARLIEST_DATE = date(2000, 1, 1)
HORIZON = timedelta(days=2 * 366)


def date_window(today: date) -> tuple[date, date]:
    """The accepted [first, last] dates for records received on ``today`` (the simulated clock)."""
    return EARLIEST_DATE, today + HORIZON


def check_date(value: date, field: str, window: tuple[date, date]) -> date:
    """``value`` if it lies in ``window``, else a 422 naming ``field``."""
    if not window[0] <= value <= window[1]:
        raise ValidationFailed(f"{field} {value.isoformat()} is outside the accepted dates"
                               f" {window[0].isoformat()}..{window[1].isoformat()}", field=field)
    return value


def check_instant(value: datetime, field: str, window: tuple[date, date]) -> datetime:
    """``value`` if its (UTC) date lies in ``window``, else a 422 naming ``field``."""
    check_date(value.date(), field, window)
    return value


_GOVERNORATE = re.compile(r"[0-9]{2}", re.ASCII)
_BATCH_DAY = re.compile(r"B-([0-9]{2})-([0-9]{4})([0-9]{2})([0-9]{2})(?:-[0-9]+)?", re.ASCII)


class LineError(ValueError):
    """Why one line of a file cannot be read (becomes a ``BROKEN_FILE_LINE``, never an error answer)."""


@dataclass(slots=True)
class BrokenLine:
    """A data line that cannot be read; ``line_number`` 1 is the first line after the header, 0 the header."""

    line_number: int
    reason: str
    text: str
    batch_id: str | None = None
    governorate_code: str | None = None
    business_date: str | None = None
    collection_id: str | None = None
    transaction_number: str | None = None


@dataclass
class FileTally:
    """What reading a file found, kept while streaming (a few numbers per batch, never the lines)."""

    lines: int = 0  # data lines seen (readable + broken)
    readable: int = 0
    broken: int = 0
    readable_amount: int = 0
    by_batch: dict[str, int] = field(default_factory=dict)  # readable amount per batch id
    fees_by_batch: dict[str, int] = field(default_factory=dict)  # readable collection fees per batch id
    count_by_batch: dict[str, int] = field(default_factory=dict)  # readable lines per batch id
    broken_batches: set[str] = field(default_factory=set)  # batch ids broken lines still name
    broken_unbatched: int = 0  # broken lines whose batch id did not survive
    days: set[tuple[str, str]] = field(default_factory=set)  # (governorate, business date) of every line


def _valid_date(text: str, cache: set[str], window: tuple[date, date] | None = None) -> bool:
    """A date written YYYY-MM-DD (and inside ``window`` when given); valid ones are remembered."""
    if text in cache:
        return True
    if not is_date(text):
        return False
    if window is not None and not window[0] <= date.fromisoformat(text) <= window[1]:
        return False
    cache.add(text)
    return True


def _split(text: str) -> list[str]:
    """One line's fields: a plain split unless the line quotes (then the csv module, for this line only)."""
    if '"' not in text:
        return text.split(",")
    return next(csv.reader([text]), [])


class SettlementFileReader:
    """Streams a settlement file's lines into rows ready for ``executemany`` and :class:`BrokenLine`s.

    ``rows(lines)`` yields either a tuple ``(governorate_code, business_date, file_id, line_number,
    batch_id, collection_id, transaction_number, amount, collection_fee, line_type, reverses,
    bill_reference)`` (amounts in integer piasters; every column is checked, only these are kept) or a
    :class:`BrokenLine`. ``tally`` holds the totals.
    Built for a million lines: one split, one tuple unpacking and a few set look-ups a line (dates,
    governorates and amounts repeat, so their checked forms are remembered).
    """

    def __init__(self, file_id: str, window: tuple[date, date] | None = None,
                 batches: dict[str, tuple[str, str]] | None = None) -> None:
        self.file_id = file_id
        # (governorate, business date) of each declared batch: a line of another one is broken
        self.batches = batches or {}
        self.window = window  # the accepted dates (``date_window``); a line dated outside it is broken
        self.tally = FileTally()
        self.header_problem: str | None = None
        self._index: dict[str, int] = {}
        self._order: tuple[int, ...] | None = None  # None: the header is FILE_COLUMNS in order
        self._width = 0
        self._dates: set[str] = set()
        self._governorates: set[str] = set()
        self._amounts: dict[str, int] = {}

    def rows(self, lines: Iterable[str]) -> Iterator[tuple[Any, ...] | BrokenLine]:
        iterator = iter(lines)
        header = next(iterator, None)
        if header is None:
            return
        header_text = header.lstrip("\ufeff").rstrip("\r\n")
        problem = self._read_header(header_text)
        if problem:
            # Without the header nothing can be told apart: the file is one broken line 0.
            self.header_problem = problem
            self.tally.broken += 1
            yield BrokenLine(0, problem, header_text[:MAX_TEXT])
            return
        tally = self.tally
        by_batch = tally.by_batch
        days = tally.days
        number = 0
        for raw in iterator:
            text = raw.rstrip("\r\n")
            if not text or text.isspace():
                continue  # a blank line (the final line end, a trailing newline) is no line
            number += 1
            fields = text.split(",") if '"' not in text else _split(text)
            try:
                row = self._row(number, fields)
            except LineError as exc:
                tally.broken += 1
                broken = self._broken(number, str(exc), text, fields)
                if broken.batch_id:
                    tally.broken_batches.add(broken.batch_id)
                else:
                    tally.broken_unbatched += 1
                yield broken
                continue
            tally.readable += 1
            amount = row[7]
            tally.readable_amount += amount
            batch = row[4]
            by_batch[batch] = by_batch.get(batch, 0) + amount
            tally.fees_by_batch[batch] = tally.fees_by_batch.get(batch, 0) + row[8]
            tally.count_by_batch[batch] = tally.count_by_batch.get(batch, 0) + 1
            days.add((row[0], row[1]))
            yield row
        tally.lines = number

    def _read_header(self, text: str) -> str | None:
        names = [name.strip() for name in _split(text)]
        missing = [name for name in CORE_COLUMNS if name not in names]
        if missing:
            return f"the header lacks the column(s) {', '.join(missing)}"
        if len(set(names)) != len(names):
            return "the header names a column twice"
        self._index = {name: i for i, name in enumerate(names)}
        self._width = len(names)
        if tuple(names) != FILE_COLUMNS:
            self._order = tuple(self._index.get(name, -1) for name in FILE_COLUMNS)
        return None

    def _amount(self, text: str, name: str) -> int:
        known = self._amounts.get(text)
        if known is not None:
            return known
        try:
            value = parse_signed_amount(text, name)
        except ApiError as exc:
            raise LineError(exc.message) from None
        if len(self._amounts) < 200_000:
            self._amounts[text] = value
        return value

    def _date(self, text: str, name: str) -> None:
        if not _valid_date(text, self._dates, self.window):
            if is_date(text):
                raise LineError(f"{name} {text} is outside the accepted dates")
            raise LineError(f"{name} {text[:20]!r} is not a date written YYYY-MM-DD")

    def _row(self, number: int, fields: list[str]) -> tuple[Any, ...]:
        if len(fields) != self._width:
            raise LineError(f"{len(fields)} fields where the header has {self._width}")
        if self._order is not None:
            fields = [fields[i] if i >= 0 else "" for i in self._order]
        (batch_id, governorate, business_date, value_date, collection_id, channel, bill_reference, service_code,
         transaction_number, amount_text, fee_text, collected_at, account, request_number, sender_number,
         mechanism, reconciliation_date, line_type, reverses) = fields
        if not (0 < len(batch_id) <= MAX_ID and 0 < len(collection_id) <= MAX_ID
                and 0 < len(transaction_number) <= MAX_ID):
            for name, value in (("batch_id", batch_id), ("collection_id", collection_id),
                                ("transaction_number", transaction_number)):
                if not 0 < len(value) <= MAX_ID:
                    raise LineError(f"{name} is empty or longer than {MAX_ID} characters")
        for name, value in (("bill_reference", bill_reference), ("service_code", service_code),
                            ("collected_at", collected_at), ("settlement_account_code", account),
                            ("payment_request_number", request_number), ("sender_request_number", sender_number),
                            ("mechanism", mechanism), ("reverses", reverses)):
            if len(value) > MAX_ID:
                raise LineError(f"{name} is longer than {MAX_ID} characters")
        if governorate not in self._governorates:
            if not _GOVERNORATE.fullmatch(governorate):
                raise LineError(f"governorate_code {governorate[:20]!r} is not two digits")
            self._governorates.add(governorate)
        if business_date not in self._dates:
            self._date(business_date, "business_date")
        if value_date not in self._dates:
            self._date(value_date, "value_date")
        if reconciliation_date and reconciliation_date not in self._dates:
            self._date(reconciliation_date, "reconciliation_date")
        declared = self.batches.get(batch_id)
        if declared is not None and declared != (governorate, business_date):
            raise LineError(f"governorate {governorate} / business date {business_date} is not its batch's"
                            f" ({declared[0]} / {declared[1]})")
        if channel not in CHANNELS:
            raise LineError(f"channel {channel[:20]!r} is neither card nor cash")
        amount = self._amount(amount_text, "amount")
        fee = self._amount(fee_text, "collection_fee")
        if not line_type:
            line_type = "reversal" if amount < 0 else "payment"
        elif line_type not in LINE_TYPES:
            raise LineError(f"line_type {line_type[:20]!r} is neither payment nor reversal")
        if (amount < 0) if line_type == "payment" else (amount >= 0):
            raise LineError(f"a {line_type} line cannot have the amount {amount_text}")
        if not collected_at:
            raise LineError("collected_at is empty")
        return (governorate, business_date, self.file_id, number, batch_id, collection_id, transaction_number,
                amount, fee, line_type, reverses or None, bill_reference)

    def _broken(self, number: int, reason: str, text: str, fields: list[str]) -> BrokenLine:
        """Keep the fields that stand before ``amount`` and look like themselves."""
        limit = min(len(fields), self._index["amount"])
        survived: dict[str, str | None] = {}
        for name in SURVIVING:
            i = self._index[name]
            survived[name] = fields[i] if i < limit and fields[i] and len(fields[i]) <= MAX_ID else None
        if survived["governorate_code"] and not _GOVERNORATE.fullmatch(survived["governorate_code"]):
            survived["governorate_code"] = None
        if survived["business_date"] and not _valid_date(survived["business_date"], self._dates, self.window):
            survived["business_date"] = None
        if not (survived["governorate_code"] and survived["business_date"]):
            survived["governorate_code"] = survived["business_date"] = None  # a day is both or nothing
        return BrokenLine(number, reason, text[:MAX_TEXT], **survived)


def batch_day(reference: str) -> tuple[str, str] | None:
    """(governorate, business date) a batch id names, if it follows settlement's ``B-<gov>-<YYYYMMDD>[-n]``.

    Why: a bank credit whose batch no file declared (``CREDIT_WITHOUT_FILE``) still belongs to a day
    of the reconciliation report; the batch id is the only place that says which (assumed naming).
    """
    match = _BATCH_DAY.fullmatch(reference)
    if not match:
        return None
    try:
        day = date(int(match.group(2)), int(match.group(3)), int(match.group(4)))
    except ValueError:
        return None
    return match.group(1), day.isoformat()


def delivery_fields(body: dict[str, Any], window: tuple[date, date] | None = None) -> dict[str, Any]:
    """The checked header of a ``st-settlement-file-delivery`` (everything but ``content``), amounts in
    piasters; a bad value, or a date outside ``window`` (``date_window``), is a 422 naming the field
    (nothing is stored)."""
    window = window or (date.min, date.max)
    business_date = check_date(parse_date(body["business_date"], "business_date"), "business_date", window)
    file_id = body["file_id"]
    generated_at = check_instant(parse_instant_field(body["generated_at"], "generated_at"), "generated_at", window)
    batches = []
    seen: set[str] = set()
    for i, batch in enumerate(body.get("batches") or []):
        where = f"batches.{i}"
        if batch["batch_id"] in seen:
            raise ValidationFailed(f"batch {batch['batch_id']} is declared twice", field=f"{where}.batch_id")
        seen.add(batch["batch_id"])
        batches.append({
            "batch_id": batch["batch_id"], "governorate_code": batch["governorate_code"],
            "business_date": check_date(parse_date(batch["business_date"], f"{where}.business_date"),
                                        f"{where}.business_date", window).isoformat(),
            "value_date": check_date(parse_date(batch["value_date"], f"{where}.value_date"),
                                     f"{where}.value_date", window).isoformat(),
            "line_count": int(batch["line_count"]),
            "gross_amount": parse_signed_amount(batch["gross_amount"], f"{where}.gross_amount"),
            "collection_fees": parse_signed_amount(batch["collection_fees"], f"{where}.collection_fees"),
            "amount": parse_signed_amount(batch["amount"], f"{where}.amount"),
            "mode": batch["mode"], "iban": batch["iban"]})
    return {
        "file_id": file_id, "business_date": business_date.isoformat(), "sequence": int(body["sequence"]),
        "generated_at": generated_at, "line_count": int(body["line_count"]),
        "gross_amount": parse_signed_amount(body["gross_amount"], "gross_amount"),
        "collection_fees": parse_signed_amount(body["collection_fees"], "collection_fees"),
        "net_amount": parse_signed_amount(body["net_amount"], "net_amount"),
        "batches": batches,
    }


def statement_fields(body: dict[str, Any], window: tuple[date, date] | None = None) -> dict[str, Any]:
    """The checked ``st-bank-statement``: entries with amounts in piasters; a bad value, or a date
    outside ``window`` (``date_window``; the date a batch reference ``B-<gov>-<YYYYMMDD>`` names too),
    is a 422 naming the field, and an entry id repeated inside one statement is refused (nothing is
    stored)."""
    window = window or (date.min, date.max)
    statement_date = check_date(parse_date(body["statement_date"], "statement_date"), "statement_date", window)
    generated_at = check_instant(parse_instant_field(body["generated_at"], "generated_at"), "generated_at", window)
    entries = []
    seen: set[str] = set()
    for i, entry in enumerate(body["entries"]):
        where = f"entries.{i}"
        if entry["entry_id"] in seen:
            raise ValidationFailed(f"entry {entry['entry_id']} is listed twice", field=f"{where}.entry_id")
        seen.add(entry["entry_id"])
        value_date = check_date(parse_date(entry["value_date"], f"{where}.value_date"), f"{where}.value_date",
                                window).isoformat()
        credited_at = check_instant(parse_instant_field(entry["credited_at"], f"{where}.credited_at"),
                                    f"{where}.credited_at", window)
        named = batch_day(entry["reference"])
        if named:
            check_date(date.fromisoformat(named[1]), f"{where}.reference", window)
        entries.append({
            "entry_id": entry["entry_id"], "iban": entry["iban"], "governorate_code": entry["governorate_code"],
            "value_date": value_date, "amount": parse_signed_amount(entry["amount"], f"{where}.amount"),
            "currency": entry["currency"], "reference": entry["reference"], "credited_at": credited_at})
    return {"statement_id": body["statement_id"], "statement_date": statement_date.isoformat(),
            "generated_at": generated_at, "entries": entries}
