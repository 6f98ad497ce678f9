"""What settlement publishes to the collection service: detailed settlement files and bank statements.

No Flask here, and no decision about *when*: :class:`~simulators.settlement.models.SettlementModel`
(the scheduler's poller) calls :meth:`Publication.publish` at a file run and
:meth:`Publication.statement` at a statement time, under its lock, and hands the deliveries returned
to :meth:`Publication.send` once the lock is released.

- **Settlement file** (E5; assumed shape, ``contracts/st-settlement-file-delivery.schema.json``): the
  batches of one business date that a file run publishes, as the CSV of ``GET /api/settlement-files``
  plus the control totals e-finance declares per batch; ``file_id`` ``SF-<YYYYMMDD>-<sequence>``,
  POSTed to ``<reference>/settlement/files`` signed with ``settlement_notice``. A file is signed at
  each attempt by this module (not by the Courier's fixed secret) because ``file_bad_signature`` is
  asked at every attempt: clearing the fault lets the next retry through.
- **Bank statement** (``contracts/st-bank-statement.schema.json``): the credits of one statement
  period, POSTed to ``<reference>/settlement/bank-statements`` signed with ``bank_statement``.

Every body is validated against its contract before it is sent: the simulator never sends off
contract (a body that would be is kept, not sent, and reported in ``/_admin/health``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from simulators.common import files
from simulators.common.calendar import cairo_datetime, parse_hhmm
from simulators.common.clock import cairo, iso
from simulators.common.contracts import validate
from simulators.common.delivery import Courier, Delivery
from simulators.common.errors import ValidationFailed
from simulators.common.http import encode_json
from simulators.common.money import format_amount
from simulators.common.signing import sign_headers

from .faults import CREDIT_WITHOUT_FILE, FILE_BAD_SIGNATURE, FILE_BROKEN_LINE, FILE_DUPLICATED, FILE_POINT

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .models import Batch, Line

FILE_COLUMNS = ("batch_id", "governorate_code", "business_date", "value_date", "collection_id", "channel",
                "bill_reference", "service_code", "transaction_number", "amount", "collection_fee",
                "collected_at", "settlement_account_code", "payment_request_number", "sender_request_number",
                "mechanism", "reconciliation_date", "line_type", "reverses")
TRUNCATED_COLUMNS = FILE_COLUMNS[:FILE_COLUMNS.index("transaction_number") + 1]
GARBLED_AMOUNT = "12,50"  # a decimal comma, unquoted: one field too many, and not an amount
_AMOUNT_MARK = "AMOUNTTOBEGARBLED"
FILE_CONTRACT, STATEMENT_CONTRACT = "st-settlement-file-delivery.schema.json", "st-bank-statement.schema.json"
FILE_SECRET, STATEMENT_SECRET = "settlement_notice", "bank_statement"
WRONG_KEY_PREFIX = "not-the-key:"  # file_bad_signature signs with the right key behind this prefix


# --- the file's rows and text ---------------------------------------------------------------------
def file_row(batch: Batch, line: Line) -> dict[str, str]:
    """One line of the detailed file. ``governorate_code`` is the batch's (a line moved by
    ``wrong_governorate`` says the governorate it was settled to); e-finance's own fields are empty
    on lines that do not come from e-finance (Khales')."""
    reconciliation = line.reconciliation_date or (line.business_date if line.payment_request_number else None)
    return {
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
        "payment_request_number": line.payment_request_number or "",
        "sender_request_number": line.sender_request_number or "",
        "mechanism": line.mechanism or "",
        "reconciliation_date": reconciliation.isoformat() if reconciliation else "",
        "line_type": line.type,
        "reverses": line.reverses or "",
    }


def file_rows(batches: Iterable[Batch]) -> list[dict[str, str]]:
    """Batch by batch (in the order given), each batch's lines by collection instant then id; a line
    settled twice is listed twice."""
    return [file_row(batch, line) for batch in batches
            for line in sorted(batch.lines, key=lambda x: (x.collected_at, x.collection_id))]


def _data_line(columns: Sequence[str], row: dict[str, str]) -> str:
    """The CSV text of one data row (``\\r\\n`` included), written exactly as the whole file writes it."""
    return files.csv_text(columns, [row])[len(files.csv_text(columns, [])):]


def damaged_line(row: dict[str, str], damage: str) -> str:
    """``truncate``: the line cut right after its ``transaction_number`` field; ``garble_amount``: the
    amount field replaced by ``12,50`` (unquoted, so the line has one field too many)."""
    if damage == "truncate":
        return _data_line(TRUNCATED_COLUMNS, {name: row[name] for name in TRUNCATED_COLUMNS})
    return _data_line(FILE_COLUMNS, dict(row, amount=_AMOUNT_MARK)).replace(_AMOUNT_MARK, GARBLED_AMOUNT)


def content_of(rows: list[dict[str, str]], broken: tuple[int, str] | None = None) -> str:
    """The file's CSV text (UTF-8 text, no byte-order mark); ``broken`` = (data line from 1, damage)."""
    if broken is None or not 1 <= broken[0] <= len(rows):
        return files.csv_text(FILE_COLUMNS, rows)
    number, damage = broken
    lines = [damaged_line(row, damage) if n == number else _data_line(FILE_COLUMNS, row)
             for n, row in enumerate(rows, start=1)]
    return files.csv_text(FILE_COLUMNS, []) + "".join(lines)


# --- deliveries ---------------------------------------------------------------------------------------
@dataclass
class SignedDelivery(Delivery):
    """A JSON delivery that signs itself at each attempt (``secret_name`` stays ``None`` so the Courier
    does not): ``signer(delivery, raw)`` returns the signature headers for this attempt's bytes."""

    signer: Callable[[Delivery, bytes], dict[str, str]] | None = None

    def payload(self) -> dict[str, Any]:
        raw = encode_json(self.body)
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.signer is not None:
            headers.update(self.signer(self, raw))
        return {"data": raw, "headers": headers}


@dataclass
class PublishedFile:
    """One file run's file of one business date, and what became of its delivery."""

    file_id: str
    business_date: date
    sequence: int
    generated_at: datetime
    batch_ids: list[str]
    line_count: int
    gross: int
    fees: int
    deliveries: list[Delivery] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # the body broke its contract: kept here, never sent

    def to_dict(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id, "business_date": self.business_date.isoformat(), "sequence": self.sequence,
            "generated_at": iso(self.generated_at), "line_count": self.line_count,
            "gross_amount": format_amount(self.gross), "collection_fees": format_amount(self.fees),
            "net_amount": format_amount(self.gross - self.fees), "batches": list(self.batch_ids),
            "delivery": self.deliveries[0].to_dict() if self.deliveries else None,
            "copies": [d.to_dict() for d in self.deliveries[1:]],
            "faults": list(self.faults), "error": self.error,
        }


@dataclass
class DeliveredStatement:
    """The bank statement of one day, as sent."""

    statement_id: str
    statement_date: date
    generated_at: datetime
    entries: list[dict[str, Any]]
    delivery: Delivery | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "statement_id": self.statement_id, "statement_date": self.statement_date.isoformat(),
            "generated_at": iso(self.generated_at), "entry_count": len(self.entries),
            "entries": [e["entry_id"] for e in self.entries],
            "delivery": self.delivery.to_dict() if self.delivery else None, "error": self.error,
        }


class Publication:
    """Files and statements made so far, their courier (retried on the clock, never given up: a file
    or a statement must arrive), and the Cairo times of the file runs and statements."""

    def __init__(self, component: Component, lock: threading.RLock, retry: Sequence[float]) -> None:
        self.component = component
        self._lock = lock  # the settlement model's: batches and publication change together
        own = component.own
        self.file_time = parse_hhmm(str(own.get("file_time", "01:00")))
        self.statement_time = parse_hhmm(str(own.get("statement_time", "18:00")))
        self.courier = Courier(component, retry, give_up=False)
        self._files: list[PublishedFile] = []
        self._sequences: dict[date, int] = {}
        self._statements: dict[date, DeliveredStatement] = {}

    def reset(self) -> None:
        with self._lock:
            self._files.clear()
            self._sequences.clear()
            self._statements.clear()

    # --- when -------------------------------------------------------------------------------------
    def file_run_at(self, business_date: date, opened_at: datetime) -> datetime:
        """The file run that publishes a batch of ``business_date`` opened at ``opened_at``:
        ``file_time`` Cairo on the day after the business date, or, for a batch opened after that
        (a supplementary batch), the next file run."""
        day = max(business_date + timedelta(days=1), cairo(opened_at).date())
        at = cairo_datetime(day, self.file_time)
        return at if at >= opened_at else cairo_datetime(day + timedelta(days=1), self.file_time)

    def statement_date(self, credited_at: datetime) -> date:
        """The statement a credit goes on: that Cairo day's when it is before the day's statement time,
        else the next day's (a statement covers the credits since the previous statement)."""
        local = cairo(credited_at)
        day = local.date() if local.time() < self.statement_time else local.date() + timedelta(days=1)
        while day in self._statements:  # already sent: the credit goes on the next one
            day += timedelta(days=1)
        return day

    def statement_at(self, day: date) -> datetime:
        return cairo_datetime(day, self.statement_time)

    # --- settlement files -------------------------------------------------------------------------
    def publish(self, business_date: date, batches: list[Batch], at: datetime) -> list[Delivery]:
        """The file run at ``at`` for the batches of ``business_date`` due then (caller holds the lock).

        ``credit_without_file`` is asked per governorate (batches released from an earlier one are not
        asked again); ``file_broken_line`` and ``file_duplicated`` once per file. Returns the
        deliveries to send (none when every batch was withheld).
        """
        day = business_date.isoformat()
        for gov in sorted({b.governorate_code for b in batches if b.withheld is None}):
            fault = self.component.faults.take("domain", FILE_POINT, kinds=(CREDIT_WITHOUT_FILE,),
                                               governorate_code=gov, business_date=day)
            if fault is None:
                continue
            late = fault.params.get("file_late_business_days")
            release = (cairo_datetime(self.component.calendar.add_business_days(cairo(at).date(), int(late)),
                                      self.file_time) if late else None)
            for batch in batches:
                if batch.governorate_code == gov and batch.withheld is None:
                    batch.withheld = {"fault_id": fault.id, "kind": fault.kind, "at": iso(at),
                                      "release_at": iso(release) if release else None}
                    batch.publish_at = release
        in_file = [b for b in batches if b.publish_at == at]
        if not in_file:
            return []
        sequence = self._sequences.get(business_date, 0) + 1
        self._sequences[business_date] = sequence
        file_id = f"SF-{business_date:%Y%m%d}-{sequence}"
        rows = file_rows(in_file)
        lines = [line for b in in_file for line in b.lines]
        record = PublishedFile(file_id=file_id, business_date=business_date, sequence=sequence, generated_at=at,
                               batch_ids=[b.batch_id for b in in_file], line_count=len(rows),
                               gross=sum(x.amount for x in lines), fees=sum(x.collection_fee for x in lines))
        for batch in in_file:
            batch.file_id = file_id
        self._files.append(record)
        broken: tuple[int, str] | None = None
        fault = self.component.faults.take("domain", FILE_POINT, kinds=(FILE_BROKEN_LINE,), business_date=day)
        if fault is not None:
            line, damage = int(fault.params.get("line", 1)), str(fault.params.get("damage", "truncate"))
            hit = {"fault_id": fault.id, "kind": fault.kind, "line": line, "damage": damage,
                   "applied": line <= len(rows)}
            if line <= len(rows):
                broken = (line, damage)
            else:  # nothing damaged: said on the file, and the fault is not used up
                self.component.faults.give_back(fault)
                hit["error"] = (f"line {line} of a {len(rows)}-line file: nothing damaged "
                                f"(the fault is not counted as hit and stays for the next file)")
            record.faults.append(hit)
        body = {
            "file_id": file_id, "business_date": day, "sequence": sequence, "generated_at": iso(at),
            "format": "csv", "line_count": len(rows), "gross_amount": format_amount(record.gross),
            "collection_fees": format_amount(record.fees), "net_amount": format_amount(record.gross - record.fees),
            "batches": [_control_totals(b) for b in in_file], "content": content_of(rows, broken),
        }
        if not self._on_contract(record, FILE_CONTRACT, body):
            return []
        deliveries = [self._file_delivery(record, file_id, body)]
        fault = self.component.faults.take("domain", FILE_POINT, kinds=(FILE_DUPLICATED,), business_date=day)
        if fault is not None:
            same_id = bool(fault.params.get("same_id", True))
            copy_id = file_id if same_id else f"{file_id}-R"
            deliveries.append(self._file_delivery(record, f"{file_id}#copy" if same_id else copy_id,
                                                  dict(body, file_id=copy_id)))
            record.faults.append({"fault_id": fault.id, "kind": fault.kind, "copy_file_id": copy_id})
        record.deliveries = deliveries
        return deliveries

    def _file_delivery(self, record: PublishedFile, delivery_id: str, body: dict[str, Any]) -> Delivery:
        def signer(delivery: Delivery, raw: bytes) -> dict[str, str]:
            """``file_bad_signature`` is asked at every attempt of every delivery of the file."""
            now = self.component.clock.now()
            key = self.component.secret(FILE_SECRET)
            fault = self.component.faults.take("domain", FILE_POINT, kinds=(FILE_BAD_SIGNATURE,),
                                               business_date=record.business_date.isoformat())
            if fault is not None:
                key = WRONG_KEY_PREFIX + key
                with self._lock:
                    record.faults.append({"fault_id": fault.id, "kind": fault.kind, "delivery": delivery.delivery_id,
                                          "attempt": len(delivery.attempts) + 1, "at": iso(now)})
            return sign_headers(key, raw, now)

        return SignedDelivery(delivery_id=delivery_id, kind="settlement_file",
                              url=f"{self.component.url_of('reference')}/settlement/files", target="reference",
                              secret_name=None, body=body, signer=signer)

    # --- bank statements ----------------------------------------------------------------------------
    def statement(self, day: date, entries: list[dict[str, Any]], at: datetime) -> list[Delivery]:
        """The statement of ``day`` with ``entries`` (caller holds the lock); sent once."""
        statement_id = f"BS-{day:%Y%m%d}"
        record = DeliveredStatement(statement_id=statement_id, statement_date=day, generated_at=at,
                                    entries=[dict(e) for e in entries])
        self._statements[day] = record
        body = {"statement_id": statement_id, "statement_date": day.isoformat(), "generated_at": iso(at),
                "entries": record.entries}
        if not self._on_contract(record, STATEMENT_CONTRACT, body):
            return []
        record.delivery = Delivery(delivery_id=statement_id, kind="bank_statement",
                                   url=f"{self.component.url_of('reference')}/settlement/bank-statements",
                                   target="reference", secret_name=STATEMENT_SECRET, body=body)
        return [record.delivery]

    def _on_contract(self, record: PublishedFile | DeliveredStatement, contract: str, body: dict[str, Any]) -> bool:
        try:
            validate(contract, body)
        except ValidationFailed as exc:
            record.error = f"not sent: off contract {contract}: {exc.message}"
            name = body.get("file_id") or body.get("statement_id")
            self.component.scheduler.errors.append(f"{type(record).__name__} {name}: {record.error}")
            return False
        return True

    # --- sending and listing --------------------------------------------------------------------------
    def send(self, deliveries: Iterable[Delivery]) -> None:
        """Queue first attempts now, in order (call without the lock held)."""
        for delivery in deliveries:
            self.courier.send(delivery)

    def files(self, business_date: date | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._files if business_date is None or f.business_date == business_date]

    def statements(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.to_dict() for _, s in sorted(self._statements.items())]


def _control_totals(batch: Batch) -> dict[str, Any]:
    """A batch as e-finance declares it in the file (``batches[]``): what the bank should credit."""
    return {"batch_id": batch.batch_id, "governorate_code": batch.governorate_code,
            "business_date": batch.business_date.isoformat(), "value_date": batch.value_date.isoformat(),
            "line_count": len(batch.lines), "gross_amount": format_amount(batch.gross),
            "collection_fees": format_amount(batch.collection_fees), "amount": format_amount(batch.amount),
            "mode": batch.mode, "iban": batch.iban}
