"""The reference service's storage: SQLite, and the only module that speaks SQL.

Why SQLite with one connection behind one lock: the reference service is embedded (``tahseel run``
starts it on loopback with nothing else to install), and a single writer makes every
``with store.transaction():`` block serialisable without retry loops. Rules kept here:

- every state change happens inside ``transaction()`` (``BEGIN IMMEDIATE`` … ``COMMIT``; any
  exception rolls the whole block back, so bad input never leaves a half-written record);
- uniqueness is a ``UNIQUE`` constraint plus ``INSERT … ON CONFLICT``, never check-then-insert;
- money is ``INTEGER`` piasters and instants are ISO 8601 UTC strings from ``clock.iso`` (fixed
  width, so they compare as text).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    bill_reference   TEXT PRIMARY KEY,
    request_number   TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('UNPAID', 'PAID', 'EXPIRED', 'CANCELLED', 'REFUNDED')),
    amount           INTEGER NOT NULL CHECK (amount > 0),
    currency         TEXT NOT NULL,
    governorate_code TEXT NOT NULL,
    service_code     TEXT NOT NULL,
    payer_name       TEXT NOT NULL,
    fee_lines        TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    paid_at          TEXT
);
-- One open (unpaid or paid) order per service request: the idempotency of POST /api/orders.
-- A REFUNDED order is closed: the request may get a new order.
CREATE UNIQUE INDEX IF NOT EXISTS orders_one_open_per_request
    ON orders (request_number) WHERE status IN ('UNPAID', 'PAID');

-- One e-finance payment request per row, keyed by our SenderRequestNumber. The AES key and IV are
-- kept here, written in the same transaction as the row and before anything is sent: the silent
-- call comes back under them, possibly after a restart.
CREATE TABLE IF NOT EXISTS card_attempts (
    sender_request_number  TEXT PRIMARY KEY,
    bill_reference         TEXT NOT NULL REFERENCES orders (bill_reference),
    sender_id              TEXT NOT NULL,
    amount                 INTEGER NOT NULL CHECK (amount > 0),
    mechanism              TEXT NOT NULL,
    language               TEXT NOT NULL,
    secret_key             TEXT NOT NULL,
    secret_iv              TEXT NOT NULL,
    initiation             TEXT NOT NULL,
    payment_request_number TEXT,
    status                 TEXT NOT NULL CHECK (status IN ('OPEN', 'APPROVED', 'DECLINED', 'FAILED')),
    last_error             TEXT,
    -- the status watch: when the gateway is next asked about this request (NULL: no more), how often so far
    next_check_at          TEXT,
    checks                 INTEGER NOT NULL DEFAULT 0,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS card_attempts_next_check ON card_attempts (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS card_attempts_by_order ON card_attempts (bill_reference);
CREATE INDEX IF NOT EXISTS card_attempts_by_number ON card_attempts (payment_request_number);

CREATE TABLE IF NOT EXISTS payments (
    payment_id             TEXT PRIMARY KEY,
    bill_reference         TEXT NOT NULL REFERENCES orders (bill_reference),
    channel                TEXT NOT NULL CHECK (channel IN ('card', 'cash')),
    external_id            TEXT NOT NULL,
    amount                 INTEGER NOT NULL CHECK (amount > 0),
    status                 TEXT NOT NULL CHECK (status IN ('CAPTURED', 'REVERSED', 'REFUNDED')),
    excess                 INTEGER NOT NULL DEFAULT 0,
    excess_reason          TEXT,
    governorate_code       TEXT NOT NULL,
    service_code           TEXT NOT NULL,
    paid_at                TEXT NOT NULL,
    business_date          TEXT NOT NULL,
    received_at            TEXT NOT NULL,
    receipt_number         TEXT,
    outlet_id              TEXT,
    auth_code              TEXT,
    sender_request_number  TEXT,
    payment_request_number TEXT,
    mechanism              TEXT,
    institution            TEXT,
    reconciliation_date    TEXT,
    refunded_amount        INTEGER NOT NULL DEFAULT 0,
    reversal_id            TEXT,
    reversed_at            TEXT,
    UNIQUE (channel, external_id)   -- a card transaction or Khales transaction is credited once
);
-- covering for a day's expected settlement and reconciliation (a million payments a day)
CREATE INDEX IF NOT EXISTS payments_by_day ON payments (governorate_code, business_date, status, amount);
CREATE INDEX IF NOT EXISTS payments_by_order ON payments (bill_reference);
-- Reconciliation finds a settled line's payment by its transaction number alone (any channel); covering,
-- so that matching a million lines never reads the payments themselves.
CREATE INDEX IF NOT EXISTS payments_by_external ON payments (external_id, governorate_code, business_date, status,
                                                             amount);
-- An e-finance payment request is paid once, whatever channel its mechanism reports it under.
CREATE UNIQUE INDEX IF NOT EXISTS payments_one_per_request_number ON payments (payment_request_number)
    WHERE payment_request_number IS NOT NULL;

-- Refunds the gateway notified, once per RefundNumber; a refund belongs to the business date it
-- was made on (settlement debits it there), not to its payment's.
CREATE TABLE IF NOT EXISTS card_refunds (
    refund_number         TEXT PRIMARY KEY,
    payment_id            TEXT NOT NULL REFERENCES payments (payment_id),
    refund_request_number TEXT,
    amount                INTEGER NOT NULL CHECK (amount > 0),
    governorate_code      TEXT NOT NULL,
    refunded_at           TEXT NOT NULL,
    business_date         TEXT NOT NULL,
    received_at           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS card_refunds_by_day ON card_refunds (governorate_code, business_date);

CREATE TABLE IF NOT EXISTS idempotency (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    response     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL CHECK (kind IN ('confirmation', 'cancellation')),
    payment_id      TEXT NOT NULL,
    path            TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'CANCELLED')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT,
    last_status     INTEGER,
    last_error      TEXT,
    UNIQUE (kind, payment_id)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);

-- The simulated clock, when a scenario set one: a worker restarted after a crash comes back on it
-- (reset keeps it, as it keeps the clock).
CREATE TABLE IF NOT EXISTS clock_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    simulated_now TEXT
);

-- One row per (governorate, business date) with money or settlement data: the E2 deadline, what the
-- bank credited (derived from bank_credits by each reconciliation run), the credit notices heard
-- (advice only), and the reconciliation's bookkeeping: ``dirty_since`` is set (in the same transaction)
-- by anything that changes the day after it was reconciled, and cleared by the next run;
-- ``credits_dirty_since`` likewise when only the bank's side changed (a statement: a cheaper run).
CREATE TABLE IF NOT EXISTS settlement_days (
    governorate_code    TEXT NOT NULL,
    business_date       TEXT NOT NULL,
    expected_value_date TEXT NOT NULL,
    deadline_date       TEXT NOT NULL,
    due_at              TEXT NOT NULL,
    credited_amount     INTEGER NOT NULL DEFAULT 0,
    credited_at         TEXT,
    overdue_at          TEXT,
    notices             INTEGER NOT NULL DEFAULT 0,
    advised_amount      INTEGER NOT NULL DEFAULT 0,
    dirty_since         TEXT,
    credits_dirty_since TEXT,
    reconciled_at       TEXT,
    PRIMARY KEY (governorate_code, business_date)
);
CREATE INDEX IF NOT EXISTS settlement_days_due ON settlement_days (credited_at, overdue_at, due_at);
CREATE INDEX IF NOT EXISTS settlement_days_dirty ON settlement_days (dirty_since) WHERE dirty_since IS NOT NULL;
CREATE INDEX IF NOT EXISTS settlement_days_credits_dirty ON settlement_days (credits_dirty_since)
    WHERE credits_dirty_since IS NOT NULL;
CREATE INDEX IF NOT EXISTS settlement_days_by_date ON settlement_days (business_date);

-- e-finance's credit notices (E4): recorded once per notice_id and shown as advice; money counts as
-- arrived only from the bank statement.
CREATE TABLE IF NOT EXISTS settlement_notices (
    notice_id        TEXT PRIMARY KEY,
    request_hash     TEXT NOT NULL,
    batch_id         TEXT NOT NULL,
    governorate_code TEXT NOT NULL,
    business_date    TEXT NOT NULL,
    value_date       TEXT NOT NULL,
    credited_at      TEXT NOT NULL,
    amount           INTEGER NOT NULL,
    collection_fees  INTEGER NOT NULL,
    mode             TEXT NOT NULL,
    iban             TEXT NOT NULL,
    transactions     TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    response         TEXT NOT NULL DEFAULT '{}'
);

-- Detailed settlement files (E5), once per file_id (same body: the stored answer; another: 409).
-- A DUPLICATE file (every line already in an accepted file under another id) keeps only this row.
CREATE TABLE IF NOT EXISTS settlement_files (
    file_id             TEXT PRIMARY KEY,
    request_hash        TEXT NOT NULL,
    business_date       TEXT NOT NULL,
    sequence            INTEGER NOT NULL,
    generated_at        TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('RECEIVING', 'ACCEPTED', 'DUPLICATE')),
    duplicate_of        TEXT,
    declared_line_count INTEGER NOT NULL,
    gross_amount        INTEGER NOT NULL,
    collection_fees     INTEGER NOT NULL,
    net_amount          INTEGER NOT NULL,
    lines_read          INTEGER NOT NULL DEFAULT 0,
    lines_broken        INTEGER NOT NULL DEFAULT 0,
    received_at         TEXT NOT NULL,
    response            TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS settlement_files_by_date ON settlement_files (business_date);

-- Every readable line of the accepted files, a million a day being the design load: clustered by day
-- (WITHOUT ROWID, primary key first by governorate and business date) so that a file's batches are
-- appended in order and a day's reconciliation reads its lines in one range; one secondary index, by
-- transaction number and collection id (every line of a collection has the same transaction number:
-- card:<tx>:<n>, khales:<tx>). ``repeat`` numbers the lines of one collection (0: the first, the
-- money that counts; 1, 2…: SETTLED_TWICE): the UNIQUE index finds a repeat at insert time, for free.
-- Kept: what reconciliation compares and the reports show (the file itself is e-finance's to keep).
CREATE TABLE IF NOT EXISTS settlement_lines (
    governorate_code   TEXT NOT NULL,
    business_date      TEXT NOT NULL,
    file_id            TEXT NOT NULL,
    line_number        INTEGER NOT NULL,
    batch_id           TEXT NOT NULL,
    collection_id      TEXT NOT NULL,
    transaction_number TEXT NOT NULL,
    amount             INTEGER NOT NULL,
    collection_fee     INTEGER NOT NULL,
    line_type          TEXT NOT NULL CHECK (line_type IN ('payment', 'reversal')),
    reverses           TEXT,
    bill_reference     TEXT NOT NULL,
    repeat             INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (governorate_code, business_date, file_id, line_number)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS settlement_lines_by_transaction
    ON settlement_lines (transaction_number, collection_id, repeat);
CREATE INDEX IF NOT EXISTS settlement_lines_repeats ON settlement_lines (transaction_number, collection_id)
    WHERE repeat > 0;

-- Lines that could not be read, with what survived of them (fallback_amount: declared - readable).
CREATE TABLE IF NOT EXISTS settlement_broken_lines (
    file_id            TEXT NOT NULL,
    line_number        INTEGER NOT NULL,
    reason             TEXT NOT NULL,
    text               TEXT NOT NULL,
    batch_id           TEXT,
    governorate_code   TEXT,
    business_date      TEXT,
    collection_id      TEXT,
    transaction_number TEXT,
    fallback_amount    INTEGER,
    PRIMARY KEY (file_id, line_number)
);
CREATE INDEX IF NOT EXISTS settlement_broken_by_transaction ON settlement_broken_lines (transaction_number);
CREATE INDEX IF NOT EXISTS settlement_broken_by_day ON settlement_broken_lines (governorate_code, business_date);

-- The control totals e-finance declares per batch in each accepted file; due_at = Cairo midnight at
-- the end of the declared value date (FILE_WITHOUT_CREDIT when no credit by then).
CREATE TABLE IF NOT EXISTS settlement_batches (
    file_id          TEXT NOT NULL,
    batch_id         TEXT NOT NULL,
    governorate_code TEXT NOT NULL,
    business_date    TEXT NOT NULL,
    value_date       TEXT NOT NULL,
    line_count       INTEGER NOT NULL,
    gross_amount     INTEGER NOT NULL,
    collection_fees  INTEGER NOT NULL,
    amount           INTEGER NOT NULL,
    mode             TEXT NOT NULL,
    iban             TEXT NOT NULL,
    due_at           TEXT NOT NULL,
    due_checked      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (file_id, batch_id)
);
CREATE INDEX IF NOT EXISTS settlement_batches_by_batch ON settlement_batches (batch_id);
CREATE INDEX IF NOT EXISTS settlement_batches_by_day ON settlement_batches (governorate_code, business_date);
CREATE INDEX IF NOT EXISTS settlement_batches_due ON settlement_batches (due_at) WHERE due_checked = 0;

-- The governorates' bank: statements once per statement_id, credits once per entry_id. day_* is the
-- (governorate, business date) the batch id names, for a credit no file declares.
CREATE TABLE IF NOT EXISTS bank_statements (
    statement_id   TEXT PRIMARY KEY,
    request_hash   TEXT NOT NULL,
    statement_date TEXT NOT NULL,
    generated_at   TEXT NOT NULL,
    entries        INTEGER NOT NULL,
    received_at    TEXT NOT NULL,
    response       TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS bank_credits (
    entry_id             TEXT PRIMARY KEY,
    statement_id         TEXT NOT NULL,
    iban                 TEXT NOT NULL,
    governorate_code     TEXT NOT NULL,
    value_date           TEXT NOT NULL,
    amount               INTEGER NOT NULL,
    currency             TEXT NOT NULL,
    reference            TEXT NOT NULL,
    credited_at          TEXT NOT NULL,
    received_at          TEXT NOT NULL,
    day_governorate_code TEXT NOT NULL,
    day_business_date    TEXT NOT NULL
);
-- Credits paid to an account that is not their governorate's (catalog IBAN) or naming a batch of another
-- governorate: WRONG_ACCOUNT, never counted for a batch (a table of its own: older files gain it as is).
CREATE TABLE IF NOT EXISTS wrong_account_credits (
    entry_id TEXT PRIMARY KEY,
    reason   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bank_credits_by_reference ON bank_credits (reference);
CREATE INDEX IF NOT EXISTS bank_credits_by_day ON bank_credits (day_governorate_code, day_business_date);
CREATE INDEX IF NOT EXISTS bank_credits_by_statement ON bank_credits (statement_id);

CREATE TABLE IF NOT EXISTS exceptions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    exception_key      TEXT NOT NULL UNIQUE,
    kind               TEXT NOT NULL,
    governorate_code   TEXT,
    business_date      TEXT,
    bill_reference     TEXT,
    payment_id         TEXT,
    amount             INTEGER,
    detail             TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('OPEN', 'RESOLVED')),
    opened_at          TEXT NOT NULL,
    resolved_at        TEXT,
    resolution         TEXT,
    file_id            TEXT,
    batch_id           TEXT,
    collection_id      TEXT,
    transaction_number TEXT,
    entry_id           TEXT,
    line_number        INTEGER
);
CREATE INDEX IF NOT EXISTS exceptions_by_day ON exceptions (governorate_code, business_date, status);
CREATE INDEX IF NOT EXISTS exceptions_by_status ON exceptions (status, kind);

-- Every open / re-open / change of amount / resolution of an exception, with the instant and why.
CREATE TABLE IF NOT EXISTS exception_history (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    exception_key TEXT NOT NULL,
    event         TEXT NOT NULL CHECK (event IN ('OPENED', 'REOPENED', 'AMOUNT_CHANGED', 'RESOLVED')),
    at            TEXT NOT NULL,
    amount        INTEGER,
    reason        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS exception_history_by_key ON exception_history (exception_key, id);
"""

# Per connection, never written to disk: what one reconciliation run finds should be open, and the
# reasons it already knows for what it resolves. Compared with ``exceptions`` in SQL (set-based).
TEMP_SCHEMA = """
CREATE TEMP TABLE IF NOT EXISTS desired_exceptions (
    exception_key      TEXT PRIMARY KEY,
    kind               TEXT NOT NULL,
    governorate_code   TEXT,
    business_date      TEXT,
    bill_reference     TEXT,
    payment_id         TEXT,
    amount             INTEGER,
    detail             TEXT NOT NULL,
    file_id            TEXT,
    batch_id           TEXT,
    collection_id      TEXT,
    transaction_number TEXT,
    entry_id           TEXT,
    line_number        INTEGER
);
CREATE TEMP TABLE IF NOT EXISTS resolution_reasons (
    exception_key TEXT PRIMARY KEY,
    reason        TEXT NOT NULL
);
CREATE TEMP TABLE IF NOT EXISTS day_own (
    payment_rowid INTEGER PRIMARY KEY,
    own           INTEGER NOT NULL
);
"""

TABLES = ("exception_history", "exceptions", "wrong_account_credits", "bank_credits", "bank_statements",
          "settlement_batches", "settlement_broken_lines", "settlement_lines", "settlement_files",
          "settlement_notices", "settlement_days", "outbox", "idempotency", "card_refunds", "payments",
          "card_attempts", "orders")
_JSON_COLUMNS = {"fee_lines", "body", "transactions", "response", "initiation"}
# 2: e-finance card attempts and refunds (issue 3); 3: their status watch; 4: settlement files, bank
# statements, three-way reconciliation and the exception history (issue 5). An older file is refused.
SCHEMA_VERSION = 4


def _row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (name, *_), value in zip(cursor.description, row, strict=True):
        out[name] = json.loads(value) if name in _JSON_COLUMNS and isinstance(value, str) else value
    return out


def _statements(script: str) -> list[str]:
    """The statements of a schema script (no statement here holds a semicolon inside a string)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def database_path(url: str) -> str:
    """The SQLite file ``reference.database`` names: a path, ``:memory:``, or ``sqlite:///path``
    (``sqlite:////absolute/path``, ``sqlite:///:memory:``).

    Why refuse everything else at start: SQL lives in this module only, so a server database
    (``postgresql://…``) is a later change of this module, not of a setting; a URL it cannot honour
    must stop the service with that message, not fail on the first payment.
    """
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    if scheme.lower() != "sqlite":
        raise ValueError(f"reference.database: {scheme}:// databases are not supported (yet): give a SQLite"
                         " path, ':memory:' or sqlite:///path; a server database is a later change of"
                         " reference/store.py")
    if not rest.startswith("/"):
        raise ValueError("reference.database: a sqlite URL has no host: sqlite:///relative/path or"
                         " sqlite:////absolute/path")
    path = rest[1:]
    return ":memory:" if path in ("", ":memory:") else path


def _amount_text(piasters: int | None) -> str:
    """SQL function ``amount_text``: piasters as the wire writes them, for exception details."""
    if piasters is None:
        return ""
    sign = "-" if piasters < 0 else ""
    whole, frac = divmod(abs(int(piasters)), 100)
    return f"{sign}{whole}.{frac:02d}"


class Store:
    """All persistent state of the reference service, one method per query."""

    def __init__(self, database: str, busy_timeout_ms: int = 5000) -> None:
        database = database_path(database)
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        # busy_timeout: several worker processes on one file wait for each other's write instead of
        # failing with "database is locked" (each transaction is short; BEGIN IMMEDIATE queues them).
        self._db = sqlite3.connect(database, check_same_thread=False, isolation_level=None,
                                   timeout=busy_timeout_ms / 1000)
        self._db.row_factory = _row
        self._db.create_function("amount_text", 1, _amount_text, deterministic=True)
        with self._lock:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            # a day of a million settlement lines: keep its pages and the run's temporary tables in memory
            self._db.execute("PRAGMA cache_size = -262144")
            self._db.execute("PRAGMA temp_store = MEMORY")
            if database != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()["user_version"]
            tables = self._db.execute("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table'").fetchone()["n"]
            if tables and version != SCHEMA_VERSION:
                # CREATE TABLE IF NOT EXISTS would keep an old table's shape and fail later, mid-payment.
                self._db.close()
                raise RuntimeError(f"{database} holds a ledger of schema version {version}, not {SCHEMA_VERSION}:"
                                   " start the reference service on an empty data folder")
            self._db.execute("BEGIN IMMEDIATE")  # two workers starting on one new file create it once
            try:
                for statement in _statements(SCHEMA):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._db.executescript(TEMP_SCHEMA)

    # --- plumbing -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """One atomic unit of work; nested blocks join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def _all(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._db.execute(sql, params).fetchall())

    def _one(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> dict[str, Any] | None:
        with self._lock:
            return self._db.execute(sql, params).fetchone()

    def _column(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """The first column of every row, without building a dict per row (bulk look-ups)."""
        with self._lock:
            cursor = self._db.cursor()
            cursor.row_factory = None
            return [row[0] for row in cursor.execute(sql, params)]

    def _run(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> int:
        """Execute a write; returns the number of rows changed (0 when ON CONFLICT did nothing)."""
        with self._lock:
            if not self._depth:
                raise RuntimeError("writes happen inside store.transaction()")
            return self._db.execute(sql, params).rowcount

    def _many(self, sql: str, rows: Iterable[tuple[Any, ...]] | Iterable[dict[str, Any]]) -> int:
        """``executemany`` of a write (streams ``rows``); the number of rows changed."""
        with self._lock:
            if not self._depth:
                raise RuntimeError("writes happen inside store.transaction()")
            return self._db.executemany(sql, rows).rowcount

    def _insert(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> int | None:
        with self._lock:
            if not self._depth:
                raise RuntimeError("writes happen inside store.transaction()")
            cursor = self._db.execute(sql, params)
            return cursor.lastrowid if cursor.rowcount else None

    def wipe(self) -> None:
        """Delete every row (the admin plane's reset)."""
        with self.transaction():
            for table in TABLES:
                self._run(f"DELETE FROM {table}")  # noqa: S608 - fixed table names

    def saved_clock(self) -> str | None:
        row = self._one("SELECT simulated_now FROM clock_state WHERE id = 1")
        return row["simulated_now"] if row else None

    def save_clock(self, simulated_now: str | None) -> None:
        self._run("INSERT INTO clock_state (id, simulated_now) VALUES (1, ?)"
                  " ON CONFLICT (id) DO UPDATE SET simulated_now = excluded.simulated_now", (simulated_now,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- orders -------------------------------------------------------------------------------
    def expire_orders_of_request(self, request_number: str, now: str) -> int:
        return self._run("UPDATE orders SET status = 'EXPIRED' WHERE request_number = ? AND status = 'UNPAID'"
                         " AND expires_at <= ?", (request_number, now))

    def insert_order(self, order: dict[str, Any]) -> bool:
        """False when the bill reference is taken or the request already has an open order."""
        return bool(self._run(
            "INSERT INTO orders (bill_reference, request_number, status, amount, currency, governorate_code,"
            " service_code, payer_name, fee_lines, expires_at, created_at)"
            " VALUES (:bill_reference, :request_number, 'UNPAID', :amount, :currency, :governorate_code,"
            " :service_code, :payer_name, :fee_lines, :expires_at, :created_at) ON CONFLICT DO NOTHING",
            dict(order, fee_lines=_json(order["fee_lines"]))))

    def open_order_for_request(self, request_number: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM orders WHERE request_number = ? AND status IN ('UNPAID', 'PAID')",
                         (request_number,))

    def order(self, bill_reference: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM orders WHERE bill_reference = ?", (bill_reference,))

    def set_order_status(self, bill_reference: str, status: str, paid_at: str | None) -> None:
        self._run("UPDATE orders SET status = ?, paid_at = ? WHERE bill_reference = ?",
                  (status, paid_at, bill_reference))

    # --- card attempts (e-finance payment requests) --------------------------------------------
    def insert_card_attempt(self, attempt: dict[str, Any]) -> bool:
        """False when the SenderRequestNumber is taken (16 random hex: a clash is retried by the caller)."""
        return bool(self._run(
            "INSERT INTO card_attempts (sender_request_number, bill_reference, sender_id, amount, mechanism,"
            " language, secret_key, secret_iv, initiation, payment_request_number, status, next_check_at,"
            " created_at, updated_at)"
            " VALUES (:sender_request_number, :bill_reference, :sender_id, :amount, :mechanism, :language,"
            " :secret_key, :secret_iv, :initiation, :payment_request_number, 'OPEN', :next_check_at,"
            " :created_at, :created_at) ON CONFLICT DO NOTHING",
            dict(attempt, initiation=_json(attempt["initiation"]),
                 payment_request_number=attempt.get("payment_request_number"),
                 next_check_at=attempt.get("next_check_at"))))

    def update_card_attempt(self, sender_request_number: str, now: str, **fields: Any) -> None:
        allowed = {"payment_request_number", "status", "last_error"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"card attempt fields are {sorted(allowed)}")
        assignments = ", ".join(f"{name} = :{name}" for name in fields)
        self._run(f"UPDATE card_attempts SET {assignments}, updated_at = :now"  # noqa: S608
                  " WHERE sender_request_number = :sender_request_number",
                  dict(fields, now=now, sender_request_number=sender_request_number))

    def next_status_check(self) -> str | None:
        row = self._one("SELECT MIN(next_check_at) AS due FROM card_attempts WHERE next_check_at IS NOT NULL")
        return row["due"] if row else None

    def first_status_check_due(self, now: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM card_attempts WHERE next_check_at IS NOT NULL AND next_check_at <= ?"
                         " ORDER BY next_check_at, rowid LIMIT 1", (now,))

    def schedule_status_check(self, sender_request_number: str, next_check_at: str | None, now: str) -> None:
        """Count one check and set the next (None: the request needs no more watching)."""
        self._run("UPDATE card_attempts SET next_check_at = ?, checks = checks + 1, updated_at = ?"
                  " WHERE sender_request_number = ?", (next_check_at, now, sender_request_number))

    def decline_card_attempt(self, sender_request_number: str, now: str) -> bool:
        """A declined attempt; an approval already recorded is never undone by a late decline."""
        return bool(self._run("UPDATE card_attempts SET status = 'DECLINED', updated_at = ?"
                              " WHERE sender_request_number = ? AND status IN ('OPEN', 'DECLINED')",
                              (now, sender_request_number)))

    def card_attempt(self, sender_request_number: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM card_attempts WHERE sender_request_number = ?", (sender_request_number,))

    def card_attempt_by_number(self, payment_request_number: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM card_attempts WHERE payment_request_number = ?", (payment_request_number,))

    def card_attempts_of(self, bill_reference: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM card_attempts WHERE bill_reference = ? ORDER BY created_at, rowid",
                         (bill_reference,))

    # --- payments -----------------------------------------------------------------------------
    def insert_payment(self, payment: dict[str, Any]) -> bool:
        """False when this channel's transaction (UNIQUE(channel, external_id)) or this e-finance
        request (UNIQUE(payment_request_number)) was already credited."""
        columns = ("payment_id", "bill_reference", "channel", "external_id", "amount", "status", "excess",
                   "excess_reason", "governorate_code", "service_code", "paid_at", "business_date",
                   "received_at", "receipt_number", "outlet_id", "auth_code", "sender_request_number",
                   "payment_request_number", "mechanism", "institution", "reconciliation_date", "refunded_amount")
        values = {name: payment.get(name) for name in columns}
        values["refunded_amount"] = int(values["refunded_amount"] or 0)
        return bool(self._run(
            f"INSERT INTO payments ({', '.join(columns)})"  # noqa: S608 - fixed column names
            f" VALUES ({', '.join(':' + c for c in columns)})"
            " ON CONFLICT DO NOTHING", values))

    def payment(self, payment_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM payments WHERE payment_id = ?", (payment_id,))

    def payment_by_external(self, channel: str, external_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM payments WHERE channel = ? AND external_id = ?", (channel, external_id))

    def payments_of(self, bill_reference: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM payments WHERE bill_reference = ? ORDER BY received_at, payment_id",
                         (bill_reference,))

    def efinance_payment(self, payment_request_number: str, transaction_number: str) -> dict[str, Any] | None:
        """The payment of an e-finance request, found by its request number or its transaction."""
        return self._one("SELECT * FROM payments WHERE (payment_request_number = ? AND ? != '')"
                         " OR (external_id = ? AND sender_request_number IS NOT NULL) ORDER BY received_at LIMIT 1",
                         (payment_request_number, payment_request_number, transaction_number))

    def fill_card_details(self, payment_id: str, mechanism: str | None, institution: str | None) -> None:
        """Details only the silent call carries, for a payment first credited from the status inquiry."""
        self._run("UPDATE payments SET mechanism = COALESCE(NULLIF(?, ''), mechanism),"
                  " institution = COALESCE(institution, NULLIF(?, '')) WHERE payment_id = ?",
                  (mechanism, institution, payment_id))

    def reverse_payment(self, payment_id: str, reversal_id: str, now: str) -> bool:
        return bool(self._run("UPDATE payments SET status = 'REVERSED', reversal_id = ?, reversed_at = ?"
                              " WHERE payment_id = ? AND status = 'CAPTURED'", (reversal_id, now, payment_id)))

    def set_refunded(self, payment_id: str, refunded_amount: int, status: str, now: str) -> None:
        self._run("UPDATE payments SET refunded_amount = ?, status = ?,"
                  " reversed_at = CASE WHEN ? = 'REFUNDED' THEN COALESCE(reversed_at, ?) ELSE reversed_at END"
                  " WHERE payment_id = ?", (refunded_amount, status, status, now, payment_id))

    def clear_excess(self, payment_id: str) -> None:
        self._run("UPDATE payments SET excess = 0, excess_reason = NULL WHERE payment_id = ?", (payment_id,))

    def captured_payments_on(self, business_date: str, governorate_code: str | None = None
                             ) -> list[dict[str, Any]]:
        """Captured (not reversed, not wholly refunded) payments of a business date, with their order's fee lines."""
        sql = ("SELECT p.*, o.fee_lines AS fee_lines, o.amount AS order_amount FROM payments p"
               " JOIN orders o ON o.bill_reference = p.bill_reference"
               " WHERE p.status = 'CAPTURED' AND p.business_date = ?")
        params: tuple[Any, ...] = (business_date,)
        if governorate_code:
            sql += " AND p.governorate_code = ?"
            params += (governorate_code,)
        return self._all(sql + " ORDER BY p.paid_at, p.payment_id", params)

    def reversed_payments_on(self, business_date: str, governorate_code: str | None = None
                             ) -> list[dict[str, Any]]:
        """Payments of a business date that were reversed (Khales) or wholly refunded (card)."""
        sql = "SELECT * FROM payments WHERE status IN ('REVERSED', 'REFUNDED') AND business_date = ?"
        params: tuple[Any, ...] = (business_date,)
        if governorate_code:
            sql += " AND governorate_code = ?"
            params += (governorate_code,)
        return self._all(sql, params)

    def expected_settlement(self, governorate_code: str, business_date: str) -> tuple[int, int]:
        """(lines, net piasters) settlement should credit for a day: the payments captured that day
        (refunded ones too: the money did come in) less the refunds made that day. Khales reversals
        undo a payment before it settles, so a reversed payment counts nowhere."""
        paid = self._one("SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS total FROM payments"
                         " WHERE status IN ('CAPTURED', 'REFUNDED') AND governorate_code = ? AND business_date = ?",
                         (governorate_code, business_date))
        refunded = self._one("SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS total FROM card_refunds"
                             " WHERE governorate_code = ? AND business_date = ?", (governorate_code, business_date))
        count = int(paid["n"] if paid else 0) + int(refunded["n"] if refunded else 0)
        total = int(paid["total"] if paid else 0) - int(refunded["total"] if refunded else 0)
        return count, total

    # --- card refunds -------------------------------------------------------------------------
    def insert_refund(self, refund: dict[str, Any]) -> bool:
        """False when this RefundNumber was recorded already."""
        return bool(self._run(
            "INSERT INTO card_refunds (refund_number, payment_id, refund_request_number, amount, governorate_code,"
            " refunded_at, business_date, received_at) VALUES (:refund_number, :payment_id, :refund_request_number,"
            " :amount, :governorate_code, :refunded_at, :business_date, :received_at)"
            " ON CONFLICT (refund_number) DO NOTHING", refund))

    def refund(self, refund_number: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM card_refunds WHERE refund_number = ?", (refund_number,))

    def refunds_of(self, payment_id: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM card_refunds WHERE payment_id = ? ORDER BY refunded_at, refund_number",
                         (payment_id,))

    def refunds_on(self, business_date: str, governorate_code: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM card_refunds WHERE business_date = ?"
        params: tuple[Any, ...] = (business_date,)
        if governorate_code:
            sql += " AND governorate_code = ?"
            params += (governorate_code,)
        return self._all(sql + " ORDER BY refunded_at, refund_number", params)

    # --- idempotency --------------------------------------------------------------------------
    def idempotent_answer(self, scope: str, key: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM idempotency WHERE scope = ? AND key = ?", (scope, key))

    def save_answer(self, scope: str, key: str, request_hash: str, status: int, response: Any,
                    now: str) -> bool:
        return bool(self._run("INSERT INTO idempotency (scope, key, request_hash, status, response, created_at)"
                              " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope, key) DO NOTHING",
                              (scope, key, request_hash, status, _json(response), now)))

    # --- outbox -------------------------------------------------------------------------------
    def enqueue(self, kind: str, payment_id: str, path: str, body: dict[str, Any], now: str) -> bool:
        return bool(self._run("INSERT INTO outbox (kind, payment_id, path, body, status, next_attempt_at,"
                              " created_at) VALUES (?, ?, ?, ?, 'PENDING', ?, ?)"
                              " ON CONFLICT (kind, payment_id) DO NOTHING",
                              (kind, payment_id, path, _json(body), now, now)))

    def outbox_row(self, kind: str, payment_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM outbox WHERE kind = ? AND payment_id = ?", (kind, payment_id))

    def outbox_rows(self, status: str | None = None) -> list[dict[str, Any]]:
        if status:
            return self._all("SELECT * FROM outbox WHERE status = ? ORDER BY id", (status,))
        return self._all("SELECT * FROM outbox ORDER BY id")

    def outbox_next_due(self) -> str | None:
        row = self._one("SELECT MIN(next_attempt_at) AS due FROM outbox WHERE status = 'PENDING'")
        return row["due"] if row else None

    def outbox_first_due(self, now: str) -> dict[str, Any] | None:
        """The oldest pending row due at ``now``; a cancellation waits while its confirmation is pending."""
        return self._one(
            "SELECT o.* FROM outbox o WHERE o.status = 'PENDING' AND o.next_attempt_at <= ?"
            " AND NOT (o.kind = 'cancellation' AND EXISTS (SELECT 1 FROM outbox c WHERE c.kind = 'confirmation'"
            "          AND c.payment_id = o.payment_id AND c.status = 'PENDING'))"
            " ORDER BY o.next_attempt_at, o.id LIMIT 1", (now,))

    def outbox_start_attempt(self, row_id: int) -> bool:
        return bool(self._run("UPDATE outbox SET attempts = attempts + 1 WHERE id = ? AND status = 'PENDING'",
                              (row_id,)))

    def outbox_finish(self, row_id: int, *, status: str, next_attempt_at: str | None = None,
                      delivered_at: str | None = None, last_status: int | None = None,
                      last_error: str | None = None) -> bool:
        """Record an attempt's outcome unless the row was cancelled meanwhile."""
        return bool(self._run(
            "UPDATE outbox SET status = ?, next_attempt_at = COALESCE(?, next_attempt_at),"
            " delivered_at = ?, last_status = ?, last_error = ? WHERE id = ? AND status = 'PENDING'",
            (status, next_attempt_at, delivered_at, last_status, last_error, row_id)))

    def outbox_cancel(self, row_id: int, reason: str) -> bool:
        return bool(self._run("UPDATE outbox SET status = 'CANCELLED', last_error = ? WHERE id = ?"
                              " AND status IN ('PENDING', 'FAILED')", (reason, row_id)))

    # --- settlement days ------------------------------------------------------------------------
    def ensure_settlement_day(self, day: dict[str, Any]) -> None:
        self._run("INSERT INTO settlement_days (governorate_code, business_date, expected_value_date,"
                  " deadline_date, due_at) VALUES (:governorate_code, :business_date, :expected_value_date,"
                  " :deadline_date, :due_at) ON CONFLICT (governorate_code, business_date) DO NOTHING", day)

    def mark_day_dirty(self, governorate_code: str, business_date: str, now: str, *, force: bool = False,
                       credits_only: bool = False) -> None:
        """The day must be reconciled again (by the poller): always with ``force``, else only if it
        was reconciled before (a day never reconciled has nothing to take back). ``credits_only``: only
        the bank's side changed."""
        column = "credits_dirty_since" if credits_only else "dirty_since"
        self._run(f"UPDATE settlement_days SET {column} = COALESCE({column}, ?)"  # noqa: S608 - fixed names
                  " WHERE governorate_code = ? AND business_date = ? AND (? OR reconciled_at IS NOT NULL)",
                  (now, governorate_code, business_date, int(force)))

    def first_dirty_since(self) -> str | None:
        row = self._one("SELECT MIN(due) AS due FROM (SELECT MIN(dirty_since) AS due FROM settlement_days"
                        " WHERE dirty_since IS NOT NULL UNION ALL SELECT MIN(credits_dirty_since)"
                        " FROM settlement_days WHERE credits_dirty_since IS NOT NULL)")
        return row["due"] if row else None

    def dirty_days(self) -> list[dict[str, Any]]:
        """Days to reconcile again; ``full`` 0 when only their credits changed."""
        return self._all("SELECT governorate_code, business_date, dirty_since IS NOT NULL AS full FROM settlement_days"
                         " WHERE dirty_since IS NOT NULL OR credits_dirty_since IS NOT NULL"
                         " ORDER BY business_date, governorate_code")

    def all_settlement_days(self) -> list[dict[str, Any]]:
        return self._all("SELECT governorate_code, business_date FROM settlement_days"
                         " ORDER BY business_date, governorate_code")

    def finish_day(self, governorate_code: str, business_date: str, now: str, credited_amount: int,
                   credited_at: str | None, *, full: bool = True) -> None:
        """A reconciliation run is done: the day is clean (its credits only, after a run of the credits),
        with what the bank credited for it."""
        self._run("UPDATE settlement_days SET dirty_since = CASE WHEN ? THEN NULL ELSE dirty_since END,"
                  " credits_dirty_since = NULL, reconciled_at = ?, credited_amount = ?, credited_at = ?"
                  " WHERE governorate_code = ? AND business_date = ?",
                  (int(full), now, credited_amount, credited_at, governorate_code, business_date))

    def settlement_day(self, governorate_code: str, business_date: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM settlement_days WHERE governorate_code = ? AND business_date = ?",
                         (governorate_code, business_date))

    def settlement_days_on(self, business_date: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM settlement_days WHERE business_date = ? ORDER BY governorate_code",
                         (business_date,))

    def next_overdue_due(self) -> str | None:
        row = self._one("SELECT MIN(due_at) AS due FROM settlement_days"
                        " WHERE credited_at IS NULL AND overdue_at IS NULL")
        return row["due"] if row else None

    def overdue_days(self, now: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM settlement_days WHERE credited_at IS NULL AND overdue_at IS NULL"
                         " AND due_at <= ? ORDER BY due_at, governorate_code", (now,))

    def mark_overdue(self, governorate_code: str, business_date: str, now: str) -> bool:
        return bool(self._run("UPDATE settlement_days SET overdue_at = ? WHERE governorate_code = ?"
                              " AND business_date = ? AND overdue_at IS NULL AND credited_at IS NULL",
                              (now, governorate_code, business_date)))

    # --- credit notices (advice) ------------------------------------------------------------------
    def settlement_notice(self, notice_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM settlement_notices WHERE notice_id = ?", (notice_id,))

    def insert_settlement_notice(self, notice: dict[str, Any]) -> bool:
        return bool(self._run(
            "INSERT INTO settlement_notices (notice_id, request_hash, batch_id, governorate_code, business_date,"
            " value_date, credited_at, amount, collection_fees, mode, iban, transactions, received_at)"
            " VALUES (:notice_id, :request_hash, :batch_id, :governorate_code, :business_date, :value_date,"
            " :credited_at, :amount, :collection_fees, :mode, :iban, :transactions, :received_at)"
            " ON CONFLICT (notice_id) DO NOTHING", dict(notice, transactions=_json(notice["transactions"]))))

    def set_notice_response(self, notice_id: str, response: dict[str, Any]) -> None:
        self._run("UPDATE settlement_notices SET response = ? WHERE notice_id = ?", (_json(response), notice_id))

    def add_notice_advice(self, governorate_code: str, business_date: str, amount: int) -> None:
        self._run("UPDATE settlement_days SET notices = notices + 1, advised_amount = advised_amount + ?"
                  " WHERE governorate_code = ? AND business_date = ?", (amount, governorate_code, business_date))

    def unmatched_notice_lines(self, notice_id: str) -> int:
        """How many lines of a recorded notice name money the ledger does not hold (by transaction
        number, e-finance request number, or our bill reference and channel): advice, one query."""
        row = self._one(
            "SELECT COUNT(*) AS n FROM settlement_notices s, json_each(s.transactions) j WHERE s.notice_id = ?"
            " AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.status IN ('CAPTURED', 'REFUNDED') AND"
            " (p.external_id = json_extract(j.value, '$.transaction_number')"
            "  OR p.payment_request_number = json_extract(j.value, '$.bill_reference')"
            "  OR (p.bill_reference = json_extract(j.value, '$.bill_reference')"
            "      AND p.channel = json_extract(j.value, '$.channel'))))"
            " AND NOT EXISTS (SELECT 1 FROM card_refunds r WHERE r.refund_number ="
            "  json_extract(j.value, '$.transaction_number'))", (notice_id,))
        return int(row["n"]) if row else 0

    # --- settlement files ---------------------------------------------------------------------------
    def insert_settlement_file(self, row: dict[str, Any]) -> bool:
        """False when this file_id was received already (the UNIQUE key decides, under the write lock)."""
        return bool(self._run(
            "INSERT INTO settlement_files (file_id, request_hash, business_date, sequence, generated_at, status,"
            " declared_line_count, gross_amount, collection_fees, net_amount, received_at)"
            " VALUES (:file_id, :request_hash, :business_date, :sequence, :generated_at, 'RECEIVING',"
            " :declared_line_count, :gross_amount, :collection_fees, :net_amount, :received_at)"
            " ON CONFLICT (file_id) DO NOTHING", row))

    def settlement_file(self, file_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM settlement_files WHERE file_id = ?", (file_id,))

    def settlement_files_on(self, business_date: str) -> list[dict[str, Any]]:
        return self._all("SELECT file_id, business_date, sequence, status, duplicate_of, lines_read, lines_broken,"
                         " received_at FROM settlement_files WHERE business_date = ? ORDER BY sequence, file_id",
                         (business_date,))

    _LINE_COLUMNS = ("governorate_code, business_date, file_id, line_number, batch_id, collection_id,"
                     " transaction_number, amount, collection_fee, line_type, reverses, bill_reference")

    def insert_file_lines(self, rows: list[tuple[Any, ...]]) -> None:
        """Readable lines as ``SettlementFileReader`` yields them. A line whose collection an earlier line
        has (this file's or an accepted one's) is refused by the UNIQUE index; only then (a chunk that
        lost rows: rare) are its rows looked at again and stored as repeats, numbered 1, 2…"""
        inserted = self._many(
            f"INSERT INTO settlement_lines ({self._LINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
            " ON CONFLICT (transaction_number, collection_id, repeat) DO NOTHING", rows)
        if inserted == len(rows):
            return
        # Find the refused rows with one range look-up per day of the chunk (its primary key), not one
        # statement per row: a chunk with a single repeated line must not cost CHUNK statements.
        kept: set[tuple[str, str, int]] = set()
        days: dict[tuple[str, str], list[int]] = {}
        for row in rows:
            days.setdefault((row[0], row[1]), []).append(row[3])
        file_id = rows[0][2]
        for (gov, day), numbers in days.items():
            kept.update((gov, day, number) for number in self._column(
                "SELECT line_number FROM settlement_lines WHERE governorate_code = ? AND business_date = ?"
                " AND file_id = ? AND line_number BETWEEN ? AND ?", (gov, day, file_id, min(numbers), max(numbers))))
        for row in rows:  # in file order, so the repeats are numbered in it
            if (row[0], row[1], row[3]) in kept:
                continue
            self._run(
                f"INSERT INTO settlement_lines ({self._LINE_COLUMNS}, repeat)"  # noqa: S608
                " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT MAX(o.repeat) + 1 FROM settlement_lines o"
                "  WHERE o.transaction_number = ? AND o.collection_id = ?)",
                (*row[:12], row[6], row[5]))

    def insert_broken_lines(self, rows: Iterable[tuple[Any, ...]]) -> int:
        return self._many(
            "INSERT INTO settlement_broken_lines (file_id, line_number, reason, text, batch_id, governorate_code,"
            " business_date, collection_id, transaction_number) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (file_id, line_number) DO NOTHING", rows)

    def file_has_new_line(self, file_id: str, governorate_code: str, business_date: str) -> bool:
        """Has the file a line of this day that is the first of its collection (``repeat`` 0)? Stops at
        the first: a new file costs one look-up."""
        return self._one("SELECT 1 AS hit FROM settlement_lines WHERE governorate_code = ? AND business_date = ?"
                         " AND file_id = ? AND repeat = 0 LIMIT 1",
                         (governorate_code, business_date, file_id)) is not None

    def file_has_changed_line(self, file_id: str, governorate_code: str, business_date: str) -> bool:
        """Has the file a line of this day whose collection is held elsewhere with another governorate,
        batch or amount (a correction, not a duplicate)? Stops at the first."""
        return self._one(
            "SELECT 1 AS hit FROM settlement_lines l WHERE l.governorate_code = ? AND l.business_date = ?"
            " AND l.file_id = ? AND NOT EXISTS (SELECT 1 FROM settlement_lines o WHERE o.transaction_number ="
            " l.transaction_number AND o.collection_id = l.collection_id AND o.file_id != l.file_id"
            " AND o.governorate_code = l.governorate_code AND o.batch_id = l.batch_id AND o.amount = l.amount)"
            " LIMIT 1", (governorate_code, business_date, file_id)) is not None

    def file_has_new_broken_line(self, file_id: str) -> bool:
        """A broken line whose collection no readable line of another file holds."""
        return self._one(
            "SELECT 1 AS hit FROM settlement_broken_lines b WHERE b.file_id = ? AND (b.collection_id IS NULL"
            " OR b.transaction_number IS NULL OR NOT EXISTS (SELECT 1 FROM settlement_lines o"
            " WHERE o.transaction_number = b.transaction_number AND o.collection_id = b.collection_id"
            " AND o.file_id != b.file_id)) LIMIT 1", (file_id,)) is not None

    def holder_of(self, file_id: str, governorate_code: str, business_date: str) -> str | None:
        """The file holding (same governorate, batch and amount) the collection of this day's first line
        of ``file_id``."""
        row = self._one(
            "SELECT o.file_id FROM settlement_lines l JOIN settlement_lines o ON o.transaction_number ="
            " l.transaction_number AND o.collection_id = l.collection_id AND o.file_id != l.file_id"
            " AND o.governorate_code = l.governorate_code AND o.batch_id = l.batch_id AND o.amount = l.amount"
            " WHERE l.governorate_code = ? AND l.business_date = ? AND l.file_id = ? ORDER BY o.repeat LIMIT 1",
            (governorate_code, business_date, file_id))
        return str(row["file_id"]) if row else None

    def drop_file_lines(self, file_id: str, days: Iterable[tuple[str, str]]) -> None:
        """A duplicate file counts for nothing: its lines go (the file row stays, DUPLICATE)."""
        self._many("DELETE FROM settlement_lines WHERE governorate_code = ? AND business_date = ? AND file_id = ?",
                   [(gov, day, file_id) for gov, day in days])
        self._run("DELETE FROM settlement_broken_lines WHERE file_id = ?", (file_id,))

    def insert_file_batches(self, rows: Iterable[dict[str, Any]]) -> int:
        return self._many(
            "INSERT INTO settlement_batches (file_id, batch_id, governorate_code, business_date, value_date,"
            " line_count, gross_amount, collection_fees, amount, mode, iban, due_at) VALUES (:file_id, :batch_id,"
            " :governorate_code, :business_date, :value_date, :line_count, :gross_amount, :collection_fees,"
            " :amount, :mode, :iban, :due_at) ON CONFLICT (file_id, batch_id) DO NOTHING", rows)

    def set_broken_fallbacks(self, file_id: str, by_batch: list[tuple[int, str]], otherwise: int) -> None:
        """What a broken line stands for when no payment names it: declared − readable, per batch, else
        for the file."""
        self._many("UPDATE settlement_broken_lines SET fallback_amount = ? WHERE file_id = ? AND batch_id = ?",
                   [(amount, file_id, batch_id) for amount, batch_id in by_batch])
        self._run("UPDATE settlement_broken_lines SET fallback_amount = ? WHERE file_id = ?"
                  " AND fallback_amount IS NULL", (otherwise, file_id))

    def broken_lines_without_day(self, file_id: str) -> list[dict[str, Any]]:
        """Broken lines of a file whose governorate and date did not survive (an exception of the file)."""
        return self._all(
            "SELECT b.*, (SELECT p.amount FROM payments p WHERE p.external_id = b.transaction_number"
            " ORDER BY p.received_at LIMIT 1) AS payment_amount FROM settlement_broken_lines b"
            " WHERE b.file_id = ? AND b.governorate_code IS NULL ORDER BY b.line_number", (file_id,))

    def finish_settlement_file(self, file_id: str, *, status: str, duplicate_of: str | None, lines_read: int,
                               lines_broken: int, response: dict[str, Any]) -> None:
        self._run("UPDATE settlement_files SET status = ?, duplicate_of = ?, lines_read = ?, lines_broken = ?,"
                  " response = ? WHERE file_id = ?",
                  (status, duplicate_of, lines_read, lines_broken, _json(response), file_id))

    def days_of_file(self, file_id: str, business_dates: list[str]) -> list[dict[str, Any]]:
        """Every (governorate, business date) a new file touches beyond its own lines' days: the ledger's
        days of the file's dates (a payment whose line sits in another governorate's batch), the days of
        the credits that name its batches (a credit without file finds its file), its batches' days."""
        marks = ", ".join("?" for _ in business_dates) or "NULL"
        return self._all(
            f"SELECT governorate_code, business_date FROM settlement_days WHERE business_date IN ({marks})"  # noqa: S608
            " UNION SELECT DISTINCT c.day_governorate_code, c.day_business_date FROM settlement_batches b"
            " JOIN bank_credits c ON c.reference = b.batch_id WHERE b.file_id = ?"
            " UNION SELECT DISTINCT governorate_code, business_date FROM settlement_batches WHERE file_id = ?"
            " UNION SELECT DISTINCT governorate_code, business_date FROM settlement_broken_lines"
            "   WHERE file_id = ? AND governorate_code IS NOT NULL",
            (*business_dates, file_id, file_id, file_id))

    def next_batch_due(self) -> str | None:
        row = self._one("SELECT MIN(due_at) AS due FROM settlement_batches WHERE due_checked = 0")
        return row["due"] if row else None

    def due_batches(self, now: str) -> list[dict[str, Any]]:
        """Declared batches whose value date ended and that the poller has not looked at yet."""
        return self._all("SELECT file_id, batch_id, governorate_code, business_date FROM settlement_batches"
                         " WHERE due_checked = 0 AND due_at <= ? ORDER BY due_at, batch_id", (now,))

    def mark_batch_checked(self, file_id: str, batch_id: str) -> bool:
        return bool(self._run("UPDATE settlement_batches SET due_checked = 1 WHERE file_id = ? AND batch_id = ?"
                              " AND due_checked = 0", (file_id, batch_id)))

    # --- bank statements ----------------------------------------------------------------------------
    def insert_bank_statement(self, row: dict[str, Any]) -> bool:
        return bool(self._run(
            "INSERT INTO bank_statements (statement_id, request_hash, statement_date, generated_at, entries,"
            " received_at) VALUES (:statement_id, :request_hash, :statement_date, :generated_at, :entries,"
            " :received_at) ON CONFLICT (statement_id) DO NOTHING", row))

    def bank_statement(self, statement_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM bank_statements WHERE statement_id = ?", (statement_id,))

    def set_statement_response(self, statement_id: str, response: dict[str, Any]) -> None:
        self._run("UPDATE bank_statements SET response = ? WHERE statement_id = ?", (_json(response), statement_id))

    def insert_bank_credits(self, rows: Iterable[dict[str, Any]]) -> int:
        """Credits once per entry_id (an entry a later statement lists again is not credited twice)."""
        return self._many(
            "INSERT INTO bank_credits (entry_id, statement_id, iban, governorate_code, value_date, amount, currency,"
            " reference, credited_at, received_at, day_governorate_code, day_business_date) VALUES (:entry_id,"
            " :statement_id, :iban, :governorate_code, :value_date, :amount, :currency, :reference, :credited_at,"
            " :received_at, :day_governorate_code, :day_business_date) ON CONFLICT (entry_id) DO NOTHING", rows)

    def known_bank_credits(self, entry_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored credits among ``entry_ids``, by entry id (looked up 500 at a time)."""
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(entry_ids), 500):
            chunk = entry_ids[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in self._all(f"SELECT * FROM bank_credits WHERE entry_id IN ({marks})",  # noqa: S608 - placeholders
                                 tuple(chunk)):
                out[row["entry_id"]] = row
        return out

    def days_of_statement(self, statement_id: str) -> list[dict[str, Any]]:
        """The days a statement's credits belong to: their batch's, else the day the batch id names."""
        return self._all(
            "SELECT DISTINCT COALESCE(b.governorate_code, c.day_governorate_code) AS governorate_code,"
            " COALESCE(b.business_date, c.day_business_date) AS business_date FROM bank_credits c"
            " LEFT JOIN settlement_batches b ON b.batch_id = c.reference WHERE c.statement_id = ?", (statement_id,))

    # --- one day's three sources ----------------------------------------------------------------------
    _DAY_CREDITS = (
        "FROM bank_credits c WHERE (c.reference IN (SELECT b.batch_id FROM settlement_batches b"
        " WHERE b.governorate_code = :g AND b.business_date = :d) OR (c.day_governorate_code = :g"
        " AND c.day_business_date = :d AND NOT EXISTS (SELECT 1 FROM settlement_batches b"
        " WHERE b.batch_id = c.reference)))")
    # A credit to the wrong account: flagged at intake (IBAN, batch id of another governorate) or naming a
    # declared batch of another governorate.
    _WRONG = ("(EXISTS (SELECT 1 FROM wrong_account_credits w WHERE w.entry_id = c.entry_id) OR EXISTS"
              " (SELECT 1 FROM settlement_batches x WHERE x.batch_id = c.reference"
              " AND x.governorate_code <> c.governorate_code))")

    def day_credit_totals(self, governorate_code: str, business_date: str) -> dict[str, Any]:
        """The bank's credits for a day: those naming one of its declared batches, and those naming a
        batch no file declares whose id names this day."""
        row = self._one("SELECT COUNT(*) AS count, COALESCE(SUM(c.amount), 0) AS amount,"  # noqa: S608
                        f" MIN(c.credited_at) AS first_at, MAX(c.credited_at) AS last_at {self._DAY_CREDITS}"
                        f" AND NOT {self._WRONG}",
                        {"g": governorate_code, "d": business_date})
        return dict(row) if row else {"count": 0, "amount": 0, "first_at": None, "last_at": None}

    def day_credits(self, governorate_code: str, business_date: str) -> list[dict[str, Any]]:
        return self._all(f"SELECT c.*, EXISTS (SELECT 1 FROM settlement_batches b WHERE b.batch_id = c.reference)"  # noqa: S608
                         f" AS declared, {self._WRONG} AS wrong, (SELECT w.reason FROM wrong_account_credits w"
                         f" WHERE w.entry_id = c.entry_id) AS wrong_reason {self._DAY_CREDITS}"
                         " ORDER BY c.credited_at, c.entry_id",
                         {"g": governorate_code, "d": business_date})

    # A credit counts for batch b: it names it, was paid to b's governorate and is not flagged wrong.
    _COUNTED = ("c.reference = b.batch_id AND c.governorate_code = b.governorate_code AND NOT EXISTS"
                " (SELECT 1 FROM wrong_account_credits w WHERE w.entry_id = c.entry_id)")

    def flag_wrong_accounts(self, rows: list[tuple[str, str]]) -> None:
        """(entry_id, reason) of credits paid to an account not their governorate's."""
        self._many("INSERT INTO wrong_account_credits (entry_id, reason) VALUES (?, ?)"
                   " ON CONFLICT (entry_id) DO NOTHING", rows)

    def day_batches(self, governorate_code: str, business_date: str) -> list[dict[str, Any]]:
        """Declared batches of a day (the first accepted file that declared each), with their credits."""
        return self._all(
            f"SELECT b.*, (SELECT COUNT(*) FROM bank_credits c WHERE {self._COUNTED}) AS credits,"
            f" (SELECT COALESCE(SUM(c.amount), 0) FROM bank_credits c WHERE {self._COUNTED}) AS credited,"
            f" (SELECT MIN(c.credited_at) FROM bank_credits c WHERE {self._COUNTED}) AS first_credit_at,"
            f" (SELECT MAX(c.credited_at) FROM bank_credits c WHERE {self._COUNTED}) AS last_credit_at"
            " FROM settlement_batches b WHERE b.governorate_code = ? AND b.business_date = ?"
            " AND b.rowid = (SELECT MIN(x.rowid) FROM settlement_batches x WHERE x.batch_id = b.batch_id)"
            " ORDER BY b.batch_id", (governorate_code, business_date))

    def day_file_totals(self, governorate_code: str, business_date: str) -> dict[str, Any]:
        row = self._one("SELECT COUNT(*) AS count, COALESCE(SUM(amount), 0) AS amount,"
                        " COALESCE(SUM(collection_fee), 0) AS fees, GROUP_CONCAT(DISTINCT file_id) AS files"
                        " FROM settlement_lines WHERE governorate_code = ? AND business_date = ?",
                        (governorate_code, business_date))
        broken = self._one("SELECT COUNT(*) AS n FROM settlement_broken_lines WHERE governorate_code = ?"
                           " AND business_date = ?", (governorate_code, business_date))
        out = dict(row) if row else {"count": 0, "amount": 0, "fees": 0, "files": None}
        out["broken"] = int(broken["n"]) if broken else 0
        return out

    def day_has_section(self, governorate_code: str, business_date: str) -> bool:
        """Has any accepted file brought a batch or a line of this day?"""
        return self._one(
            "SELECT 1 AS hit WHERE EXISTS (SELECT 1 FROM settlement_batches WHERE governorate_code = :g"
            " AND business_date = :d) OR EXISTS (SELECT 1 FROM settlement_lines WHERE governorate_code = :g"
            " AND business_date = :d)", {"g": governorate_code, "d": business_date}) is not None

    def reconciliation_governorates(self, business_date: str) -> list[str]:
        """Governorates with anything to reconcile on a business date (ledger, file, batch, credit, exception)."""
        rows = self._all(
            "SELECT governorate_code FROM settlement_days WHERE business_date = :d"
            " UNION SELECT governorate_code FROM settlement_batches WHERE business_date = :d"
            " UNION SELECT day_governorate_code FROM bank_credits WHERE day_business_date = :d"
            " UNION SELECT governorate_code FROM exceptions WHERE business_date = :d AND governorate_code IS NOT NULL"
            " ORDER BY 1", {"d": business_date})
        return [str(row["governorate_code"]) for row in rows]

    # --- reconciliation: what should be open, compared with what is (set-based) ---------------------
    def begin_desired(self) -> None:
        self._run("DELETE FROM desired_exceptions")
        self._run("DELETE FROM resolution_reasons")

    def desire_payment_exceptions(self, governorate_code: str, business_date: str, section: bool) -> int:
        """MISSING_IN_FILE / WRONG_GOVERNORATE for the day's payments (CAPTURED or REFUNDED).

        A payment's file money is the sum of the payment lines naming its transaction number, each
        collection once (a card payment is one line per settlement account; ``repeat`` lines are
        SETTLED_TWICE's): lines of its own governorate (``own``) and of others (``other``). Less than the
        payment in its own governorate: WRONG_GOVERNORATE (the payment's amount) when other governorates
        hold it, else MISSING_IN_FILE (what is missing), but only once a file section of the day arrived
        and no broken line names it.

        Two steps, so that a million lines cost one look-up each: the day's lines are matched to the
        day's payments (``day_own``); only the payments that come out short are looked up in every file
        (``+l.governorate_code``: by transaction number, never by scanning a governorate's day).
        """
        params = {"g": governorate_code, "d": business_date, "section": int(section)}
        self._run("DELETE FROM day_own")
        # CROSS JOIN keeps the day's lines outside (one range of the clustered table) and each payment a
        # look-up in the covering index by transaction number.
        self._run("INSERT INTO day_own (payment_rowid, own) SELECT p.rowid, SUM(l.amount) FROM settlement_lines l"
                  " CROSS JOIN payments p ON p.external_id = l.transaction_number AND p.governorate_code = :g"
                  " AND p.business_date = :d WHERE l.governorate_code = :g AND l.business_date = :d"
                  " AND l.repeat = 0 AND l.line_type = 'payment' GROUP BY p.rowid", params)
        lines_of = ("SELECT COALESCE(SUM(l.amount), 0) FROM settlement_lines l"
                    " WHERE l.transaction_number = s.external_id AND l.line_type = 'payment' AND l.repeat = 0"
                    " AND +l.governorate_code {op} s.governorate_code")
        return self._run(
            "WITH short AS MATERIALIZED (SELECT p.payment_id, p.bill_reference, p.external_id, p.channel, p.amount,"
            "  p.governorate_code FROM payments p LEFT JOIN day_own o ON o.payment_rowid = p.rowid"
            "  WHERE p.governorate_code = :g AND p.business_date = :d AND p.status IN ('CAPTURED', 'REFUNDED')"
            "  AND COALESCE(o.own, 0) < p.amount),"
            " m AS MATERIALIZED (SELECT s.*,"
            f"  ({lines_of.format(op='=')}) AS own, ({lines_of.format(op='!=')}) AS other,"
            "  (SELECT MIN(l.governorate_code) FROM settlement_lines l WHERE l.transaction_number = s.external_id"
            "   AND l.line_type = 'payment' AND +l.governorate_code != s.governorate_code) AS other_gov FROM short s)"
            " INSERT INTO desired_exceptions (exception_key, kind, governorate_code, business_date, bill_reference,"
            " payment_id, transaction_number, amount, detail)"
            " SELECT CASE WHEN m.other > 0 THEN 'WRONG_GOVERNORATE:' ELSE 'MISSING_IN_FILE:' END || m.payment_id,"
            " CASE WHEN m.other > 0 THEN 'WRONG_GOVERNORATE' ELSE 'MISSING_IN_FILE' END, :g, :d, m.bill_reference,"
            " m.payment_id, m.external_id, CASE WHEN m.other > 0 THEN m.amount ELSE m.amount - m.own END,"
            " CASE WHEN m.other > 0 THEN m.channel || ' payment ' || m.external_id || ' of ' || amount_text(m.amount)"
            "   || ' is settled in the batch of governorate ' || m.other_gov || ', not ' || :g"
            "   ELSE m.channel || ' payment ' || m.external_id || ' of ' || amount_text(m.amount) || ': '"
            "   || amount_text(m.own) || ' in the settlement files' END"
            " FROM m WHERE m.own < m.amount AND (m.other > 0 OR (:section AND NOT EXISTS (SELECT 1"
            "  FROM settlement_broken_lines b WHERE b.transaction_number = m.external_id)))"
            " ON CONFLICT (exception_key) DO NOTHING", params)

    # The transaction a reversal line's ``reverses`` names: collection ids are <source>:<tx>[:<n>…].
    _REVERSED_TX = ("CASE WHEN instr(substr(l.reverses, instr(l.reverses, ':') + 1), ':') > 0"
                    " THEN substr(substr(l.reverses, instr(l.reverses, ':') + 1), 1,"
                    "  instr(substr(l.reverses, instr(l.reverses, ':') + 1), ':') - 1)"
                    " ELSE substr(l.reverses, instr(l.reverses, ':') + 1) END")

    def desire_line_exceptions(self, governorate_code: str, business_date: str) -> int:
        """ORPHAN_COLLECTION (a line whose transaction the ledger does not know: a payment line, a card
        refund line whose RefundNumber is no recorded refund, or another reversal that reverses no payment
        of ours) and SETTLED_TWICE (a collection in more than one line: the repeats' amount), on the day of
        the collection's first line."""
        params = {"g": governorate_code, "d": business_date}
        orphans = self._run(
            "INSERT INTO desired_exceptions (exception_key, kind, governorate_code, business_date, bill_reference,"
            " transaction_number, collection_id, file_id, batch_id, line_number, amount, detail)"
            " SELECT 'ORPHAN_COLLECTION:' || l.collection_id, 'ORPHAN_COLLECTION', :g, :d, l.bill_reference,"
            " l.transaction_number, l.collection_id, l.file_id, l.batch_id, l.line_number, l.amount,"
            " l.line_type || ' line ' || l.collection_id || ' (line ' || l.line_number || ' of ' || l.file_id"
            " || ', batch ' || l.batch_id || '): the ledger knows no transaction ' || l.transaction_number"
            " FROM settlement_lines l WHERE l.governorate_code = :g AND l.business_date = :d AND l.repeat = 0"
            " AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.external_id = l.transaction_number)"
            " AND (l.line_type = 'payment' OR (NOT EXISTS (SELECT 1 FROM card_refunds r"
            "      WHERE r.refund_number = l.transaction_number)"
            "  AND (l.reverses IS NULL OR l.reverses LIKE 'card:%'"
            f"   OR NOT EXISTS (SELECT 1 FROM payments p WHERE p.external_id = {self._REVERSED_TX}))))"
            " ON CONFLICT (exception_key) DO NOTHING", params)
        twice = self._run(
            "INSERT INTO desired_exceptions (exception_key, kind, governorate_code, business_date, bill_reference,"
            " transaction_number, collection_id, file_id, batch_id, line_number, amount, detail)"
            " SELECT 'SETTLED_TWICE:' || f.collection_id, 'SETTLED_TWICE', :g, :d, f.bill_reference,"
            " f.transaction_number, f.collection_id, f.file_id, f.batch_id, f.line_number, SUM(r.amount),"
            " 'collection ' || f.collection_id || ' is settled in ' || (COUNT(*) + 1) || ' lines: ' || f.file_id"
            " || ':' || f.line_number || ', ' || GROUP_CONCAT(r.file_id || ':' || r.line_number, ', ')"
            " FROM settlement_lines r INDEXED BY settlement_lines_repeats"
            " JOIN settlement_lines f ON f.transaction_number = r.transaction_number"
            " AND f.collection_id = r.collection_id AND f.repeat = 0"
            " WHERE r.repeat > 0 AND f.governorate_code = :g AND f.business_date = :d"
            " GROUP BY f.transaction_number, f.collection_id ON CONFLICT (exception_key) DO NOTHING", params)
        return orphans + twice

    BROKEN_ONE_BY_ONE = 100  # broken lines of a file (per day) named one by one; the rest: one summary exception

    def desire_broken_line_exceptions(self, governorate_code: str, business_date: str) -> int:
        """BROKEN_FILE_LINE for the day's unreadable lines: the amount of the payment its surviving
        transaction number names, else what the batch (or file) declared beyond its readable lines.
        The first ``BROKEN_ONE_BY_ONE`` lines of each file are one exception each; the others share one
        (``BROKEN_FILE_LINE:<file>:REST:<gov>:<date>``: their payments plus the shortfall once), so a file
        of 200 000 broken lines cannot open 200 000 exceptions."""
        lines = (
            "WITH r AS MATERIALIZED (SELECT b.*, p.payment_id, p.bill_reference, p.amount AS payment_amount,"
            " ROW_NUMBER() OVER (PARTITION BY b.file_id ORDER BY b.line_number) AS n"
            " FROM settlement_broken_lines b LEFT JOIN payments p ON p.payment_id = (SELECT q.payment_id"
            "  FROM payments q WHERE q.external_id = b.transaction_number ORDER BY q.received_at LIMIT 1)"
            " WHERE b.governorate_code = :g AND b.business_date = :d)")
        params = {"g": governorate_code, "d": business_date, "cap": self.BROKEN_ONE_BY_ONE}
        count = self._run(
            lines + " INSERT INTO desired_exceptions (exception_key, kind, governorate_code, business_date, file_id,"
            " batch_id, collection_id, transaction_number, line_number, payment_id, bill_reference, amount, detail)"
            " SELECT 'BROKEN_FILE_LINE:' || r.file_id || ':' || r.line_number, 'BROKEN_FILE_LINE', :g, :d, r.file_id,"
            " r.batch_id, r.collection_id, r.transaction_number, r.line_number, r.payment_id, r.bill_reference,"
            " COALESCE(r.payment_amount, r.fallback_amount), 'line ' || r.line_number || ' of ' || r.file_id"
            " || ' cannot be read: ' || r.reason FROM r WHERE r.n <= :cap"
            " ON CONFLICT (exception_key) DO NOTHING", params)
        return count + self._run(
            lines + " INSERT INTO desired_exceptions (exception_key, kind, governorate_code, business_date, file_id,"
            " amount, detail)"
            " SELECT 'BROKEN_FILE_LINE:' || r.file_id || ':REST:' || :g || ':' || :d, 'BROKEN_FILE_LINE', :g, :d,"
            " r.file_id, COALESCE(SUM(r.payment_amount), 0) + COALESCE(MAX(CASE WHEN r.payment_amount IS NULL"
            " THEN r.fallback_amount END), 0), COUNT(*) || ' more lines of ' || r.file_id || ' cannot be read'"
            " || ' (from line ' || MIN(r.line_number) || ')' FROM r WHERE r.n > :cap GROUP BY r.file_id"
            " ON CONFLICT (exception_key) DO NOTHING", params)

    def add_desired(self, rows: list[dict[str, Any]]) -> None:
        columns = ("exception_key", "kind", "governorate_code", "business_date", "bill_reference", "payment_id",
                   "amount", "detail", "file_id", "batch_id", "collection_id", "transaction_number", "entry_id",
                   "line_number")
        self._many(f"INSERT INTO desired_exceptions ({', '.join(columns)})"  # noqa: S608 - fixed column names
                   f" VALUES ({', '.join(':' + c for c in columns)}) ON CONFLICT (exception_key) DO NOTHING",
                   [{c: row.get(c) for c in columns} for row in rows])

    def day_has_other_exceptions(self, governorate_code: str, business_date: str, kinds: tuple[str, ...]) -> bool:
        """Whether this run desires any exception, or the day has an open one of a kind outside ``kinds``
        (those the run does not re-derive: payments and lines on a credits-only run, intake kinds)."""
        if self._one("SELECT EXISTS (SELECT 1 FROM desired_exceptions) AS x")["x"]:
            return True
        marks = ", ".join("?" for _ in kinds)
        # A payment of another governorate settled into this day's batch (WRONG_GOVERNORATE, opened on
        # the payment's own day) explains this day's surplus: the same piasters are not reported twice.
        row = self._one(f"SELECT EXISTS (SELECT 1 FROM exceptions WHERE governorate_code = ?"  # noqa: S608 - placeholders
                        f" AND business_date = ? AND status = 'OPEN' AND kind NOT IN ({marks}))"
                        " OR EXISTS (SELECT 1 FROM exceptions e JOIN settlement_lines l"
                        "  ON l.transaction_number = e.transaction_number WHERE e.kind = 'WRONG_GOVERNORATE'"
                        "  AND e.status = 'OPEN' AND l.governorate_code = ? AND l.business_date = ?) AS x",
                        (governorate_code, business_date, *kinds, governorate_code, business_date))
        return bool(row["x"])

    def add_resolution_reasons(self, reasons: dict[str, str]) -> None:
        self._many("INSERT INTO resolution_reasons (exception_key, reason) VALUES (?, ?)"
                   " ON CONFLICT (exception_key) DO UPDATE SET reason = excluded.reason", list(reasons.items()))

    def sync_exceptions(self, governorate_code: str, business_date: str, kinds: tuple[str, ...], now: str,
                        trigger: str) -> tuple[int, int]:
        """Make the day's exceptions of ``kinds`` what ``desired_exceptions`` says: open the new ones,
        re-open those that hold again, update amounts, resolve those that no longer hold; each step a
        history row. Returns (opened or re-opened, resolved)."""
        kind_list = ", ".join(f"'{k}'" for k in kinds)  # fixed names from the caller's constant
        params = {"g": governorate_code, "d": business_date, "now": now, "trigger": trigger}
        opened = self._run(
            "INSERT INTO exception_history (exception_key, event, at, amount, reason)"
            " SELECT d.exception_key, CASE WHEN e.exception_key IS NULL THEN 'OPENED'"
            "  WHEN e.status = 'RESOLVED' THEN 'REOPENED' ELSE 'AMOUNT_CHANGED' END, :now, d.amount,"
            "  d.detail || ' (' || :trigger || ')'"
            " FROM desired_exceptions d LEFT JOIN exceptions e ON e.exception_key = d.exception_key"
            " WHERE e.exception_key IS NULL OR e.status = 'RESOLVED' OR e.amount IS NOT d.amount", params)
        self._run(
            "INSERT INTO exceptions (exception_key, kind, governorate_code, business_date, bill_reference, payment_id,"
            " amount, detail, status, opened_at, file_id, batch_id, collection_id, transaction_number, entry_id,"
            " line_number) SELECT exception_key, kind, governorate_code, business_date, bill_reference, payment_id,"
            " amount, detail, 'OPEN', :now, file_id, batch_id, collection_id, transaction_number, entry_id, line_number"
            " FROM desired_exceptions WHERE true ON CONFLICT (exception_key) DO UPDATE SET amount = excluded.amount,"
            " detail = excluded.detail, opened_at = CASE WHEN exceptions.status = 'RESOLVED' THEN excluded.opened_at"
            " ELSE exceptions.opened_at END, status = 'OPEN', resolved_at = NULL, resolution = NULL"
            " WHERE exceptions.status = 'RESOLVED' OR exceptions.amount IS NOT excluded.amount"
            " OR exceptions.detail IS NOT excluded.detail", params)
        stale = (f" FROM exceptions e WHERE e.governorate_code = :g AND e.business_date = :d AND e.status = 'OPEN'"
                 f" AND e.kind IN ({kind_list}) AND NOT EXISTS (SELECT 1 FROM desired_exceptions d"
                 f" WHERE d.exception_key = e.exception_key)")
        self._run(
            "INSERT INTO exception_history (exception_key, event, at, amount, reason)"  # noqa: S608
            " SELECT e.exception_key, 'RESOLVED', :now, e.amount, COALESCE((SELECT r.reason FROM resolution_reasons r"
            " WHERE r.exception_key = e.exception_key), CASE e.kind"
            "  WHEN 'MISSING_IN_FILE' THEN CASE WHEN (SELECT p.status FROM payments p"
            "   WHERE p.payment_id = e.payment_id) = 'REVERSED' THEN 'the payment was reversed: nothing to settle'"
            "   ELSE 'the payment is now in a settlement file' END"
            "  WHEN 'WRONG_GOVERNORATE' THEN 'the payment is no longer settled in another governorate''s batch'"
            "  WHEN 'ORPHAN_COLLECTION' THEN 'the ledger now knows the transaction'"
            "  WHEN 'SETTLED_TWICE' THEN 'the collection is now settled once'"
            "  WHEN 'SHORT_SETTLEMENT' THEN 'the credits now match the declared amount'"
            "  WHEN 'OVER_SETTLEMENT' THEN 'the credits now match the declared amount'"
            "  WHEN 'CREDIT_WITHOUT_FILE' THEN 'a settlement file now declares the batch'"
            "  WHEN 'FILE_WITHOUT_CREDIT' THEN 'the batch is credited'"
            "  WHEN 'LATE_SETTLEMENT' THEN 'nothing is left to settle for the day'"
            "  ELSE 'no longer holds' END) || ' (' || :trigger || ')'" + stale, params)
        resolved = self._run(
            "UPDATE exceptions SET status = 'RESOLVED', resolved_at = :now, resolution = (SELECT h.reason"  # noqa: S608
            " FROM exception_history h WHERE h.exception_key = exceptions.exception_key ORDER BY h.id DESC LIMIT 1)"
            " WHERE exception_key IN (SELECT e.exception_key" + stale + ")", params)
        return opened, resolved

    # --- exceptions -----------------------------------------------------------------------------
    _EXCEPTION_COLUMNS = ("exception_key", "kind", "governorate_code", "business_date", "bill_reference",
                          "payment_id", "amount", "detail", "opened_at", "file_id", "batch_id", "collection_id",
                          "transaction_number", "entry_id", "line_number")

    def open_exception(self, exc: dict[str, Any]) -> None:
        """Open (or re-open with fresh detail) the exception named by ``exception_key``; the history
        says OPENED, REOPENED or AMOUNT_CHANGED (nothing when it is open already with that amount)."""
        values = {name: exc.get(name) for name in self._EXCEPTION_COLUMNS}
        self._run("INSERT INTO exception_history (exception_key, event, at, amount, reason)"
                  " SELECT :exception_key, CASE WHEN e.exception_key IS NULL THEN 'OPENED'"
                  " WHEN e.status = 'RESOLVED' THEN 'REOPENED' ELSE 'AMOUNT_CHANGED' END, :opened_at, :amount, :detail"
                  " FROM (SELECT 1) LEFT JOIN exceptions e ON e.exception_key = :exception_key"
                  " WHERE e.exception_key IS NULL OR e.status = 'RESOLVED' OR e.amount IS NOT :amount", values)
        self._run("INSERT INTO exceptions (exception_key, kind, governorate_code, business_date, bill_reference,"
                  " payment_id, amount, detail, status, opened_at, file_id, batch_id, collection_id,"
                  " transaction_number, entry_id, line_number) VALUES (:exception_key, :kind, :governorate_code,"
                  " :business_date, :bill_reference, :payment_id, :amount, :detail, 'OPEN', :opened_at, :file_id,"
                  " :batch_id, :collection_id, :transaction_number, :entry_id, :line_number)"
                  " ON CONFLICT (exception_key) DO UPDATE SET amount = excluded.amount, detail = excluded.detail,"
                  " opened_at = CASE WHEN exceptions.status = 'RESOLVED' THEN excluded.opened_at"
                  " ELSE exceptions.opened_at END, status = 'OPEN', resolved_at = NULL, resolution = NULL", values)

    def open_exception_once(self, exc: dict[str, Any]) -> bool:
        """Open an exception that never existed (history OPENED); one that exists is left as it is.
        For what opens and resolves at once (a credit that came late)."""
        values = {name: exc.get(name) for name in self._EXCEPTION_COLUMNS}
        if not self._run("INSERT INTO exceptions (exception_key, kind, governorate_code, business_date,"
                         " bill_reference, payment_id, amount, detail, status, opened_at, file_id, batch_id,"
                         " collection_id, transaction_number, entry_id, line_number) VALUES (:exception_key, :kind,"
                         " :governorate_code, :business_date, :bill_reference, :payment_id, :amount, :detail, 'OPEN',"
                         " :opened_at, :file_id, :batch_id, :collection_id, :transaction_number, :entry_id,"
                         " :line_number) ON CONFLICT (exception_key) DO NOTHING", values):
            return False
        self._run("INSERT INTO exception_history (exception_key, event, at, amount, reason)"
                  " VALUES (:exception_key, 'OPENED', :opened_at, :amount, :detail)", values)
        return True

    def resolve_exception(self, exception_key: str, now: str, resolution: str) -> bool:
        self._run("INSERT INTO exception_history (exception_key, event, at, amount, reason)"
                  " SELECT exception_key, 'RESOLVED', ?, amount, ? FROM exceptions WHERE exception_key = ?"
                  " AND status = 'OPEN'", (now, resolution, exception_key))
        return bool(self._run("UPDATE exceptions SET status = 'RESOLVED', resolved_at = ?, resolution = ?"
                              " WHERE exception_key = ? AND status = 'OPEN'", (now, resolution, exception_key)))

    def exception(self, exception_key: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM exceptions WHERE exception_key = ?", (exception_key,))

    def _exception_filter(self, status: str | None, governorate_code: str | None, business_date: str | None,
                          kind: str | None) -> tuple[str, tuple[Any, ...]]:
        clauses, params = [], []
        for column, value in (("status", status), ("governorate_code", governorate_code),
                              ("business_date", business_date), ("kind", kind)):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), tuple(params)

    def exceptions(self, *, status: str | None = None, governorate_code: str | None = None,
                   business_date: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        where, params = self._exception_filter(status, governorate_code, business_date, kind)
        return self._all(f"SELECT * FROM exceptions{where} ORDER BY id", params)  # noqa: S608

    def exception_history(self, *, status: str | None = None, governorate_code: str | None = None,
                          business_date: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """The history rows of the exceptions the same filter lists, oldest first."""
        where, params = self._exception_filter(status, governorate_code, business_date, kind)
        return self._all("SELECT h.* FROM exception_history h WHERE h.exception_key IN"  # noqa: S608
                         f" (SELECT exception_key FROM exceptions{where}) ORDER BY h.id", params)

    # --- bulk loading (benchmarks, migrations) ------------------------------------------------------
    def import_ledger(self, orders: Iterable[dict[str, Any]], payments: Iterable[dict[str, Any]]) -> None:
        """Orders and payments as they are, with ``executemany`` and no business rule (no confirmation,
        no settlement day: call ``Reconciliation.ensure_days``). For a benchmark's ledger of a million
        payments or a migration, inside ``transaction()``; the UNIQUE keys still refuse a double."""
        self._many("INSERT INTO orders (bill_reference, request_number, status, amount, currency, governorate_code,"
                   " service_code, payer_name, fee_lines, expires_at, created_at, paid_at) VALUES (:bill_reference,"
                   " :request_number, :status, :amount, :currency, :governorate_code, :service_code, :payer_name,"
                   " :fee_lines, :expires_at, :created_at, :paid_at)",
                   (dict(o, fee_lines=_json(o.get("fee_lines") or []), paid_at=o.get("paid_at")) for o in orders))
        columns = ("payment_id", "bill_reference", "channel", "external_id", "amount", "status", "governorate_code",
                   "service_code", "paid_at", "business_date", "received_at")
        self._many(f"INSERT INTO payments ({', '.join(columns)})"  # noqa: S608 - fixed column names
                   f" VALUES ({', '.join(':' + c for c in columns)})", payments)

    def ledger_days(self) -> list[dict[str, Any]]:
        return self._all("SELECT DISTINCT governorate_code, business_date FROM payments"
                         " UNION SELECT DISTINCT governorate_code, business_date FROM card_refunds")
