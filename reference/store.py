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
from collections.abc import Iterator
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
CREATE INDEX IF NOT EXISTS payments_by_day ON payments (governorate_code, business_date);
CREATE INDEX IF NOT EXISTS payments_by_order ON payments (bill_reference);
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

CREATE TABLE IF NOT EXISTS settlement_days (
    governorate_code    TEXT NOT NULL,
    business_date       TEXT NOT NULL,
    expected_value_date TEXT NOT NULL,
    deadline_date       TEXT NOT NULL,
    due_at              TEXT NOT NULL,
    credited_amount     INTEGER NOT NULL DEFAULT 0,
    collection_fees     INTEGER NOT NULL DEFAULT 0,
    notices             INTEGER NOT NULL DEFAULT 0,
    credited_at         TEXT,
    overdue_at          TEXT,
    PRIMARY KEY (governorate_code, business_date)
);
CREATE INDEX IF NOT EXISTS settlement_days_due ON settlement_days (credited_at, overdue_at, due_at);

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

CREATE TABLE IF NOT EXISTS exceptions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    exception_key    TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL,
    governorate_code TEXT,
    business_date    TEXT,
    bill_reference   TEXT,
    payment_id       TEXT,
    amount           INTEGER,
    detail           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('OPEN', 'RESOLVED')),
    opened_at        TEXT NOT NULL,
    resolved_at      TEXT,
    resolution       TEXT
);
"""

TABLES = ("exceptions", "settlement_notices", "settlement_days", "outbox", "idempotency", "card_refunds",
          "payments", "card_attempts", "orders")
_JSON_COLUMNS = {"fee_lines", "body", "transactions", "response", "initiation"}
SCHEMA_VERSION = 3  # 2: e-finance card attempts and refunds (issue 3); 3: their status watch; an older file is refused


def _row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (name, *_), value in zip(cursor.description, row, strict=True):
        out[name] = json.loads(value) if name in _JSON_COLUMNS and isinstance(value, str) else value
    return out


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Store:
    """All persistent state of the reference service, one method per query."""

    def __init__(self, database: str) -> None:
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        self._db = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
        self._db.row_factory = _row
        with self._lock:
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
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

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

    def _run(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> int:
        """Execute a write; returns the number of rows changed (0 when ON CONFLICT did nothing)."""
        with self._lock:
            if not self._depth:
                raise RuntimeError("writes happen inside store.transaction()")
            return self._db.execute(sql, params).rowcount

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

    def has_settled_payment(self, channel: str, reference: str) -> bool:
        """Does a settled line's reference name money we took? Our bill reference for our own
        channels' lines, or e-finance's PaymentRequestNumber (which its card lines carry)."""
        return self._one("SELECT 1 AS hit FROM payments WHERE status IN ('CAPTURED', 'REFUNDED')"
                         " AND ((channel = ? AND bill_reference = ?) OR payment_request_number = ?)",
                         (channel, reference, reference)) is not None

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

    # --- settlement ---------------------------------------------------------------------------
    def ensure_settlement_day(self, day: dict[str, Any]) -> None:
        self._run("INSERT INTO settlement_days (governorate_code, business_date, expected_value_date,"
                  " deadline_date, due_at) VALUES (:governorate_code, :business_date, :expected_value_date,"
                  " :deadline_date, :due_at) ON CONFLICT (governorate_code, business_date) DO NOTHING", day)

    def settlement_day(self, governorate_code: str, business_date: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM settlement_days WHERE governorate_code = ? AND business_date = ?",
                         (governorate_code, business_date))

    def settlement_days_on(self, business_date: str) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM settlement_days WHERE business_date = ? ORDER BY governorate_code",
                         (business_date,))

    def add_credit(self, governorate_code: str, business_date: str, amount: int, fees: int,
                   credited_at: str) -> None:
        self._run("UPDATE settlement_days SET credited_amount = credited_amount + ?,"
                  " collection_fees = collection_fees + ?, notices = notices + 1,"
                  " credited_at = MAX(COALESCE(credited_at, ''), ?)"
                  " WHERE governorate_code = ? AND business_date = ?",
                  (amount, fees, credited_at, governorate_code, business_date))

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

    # --- exceptions ---------------------------------------------------------------------------
    def open_exception(self, exc: dict[str, Any]) -> None:
        """Open (or re-open with fresh detail) the exception named by ``exception_key``."""
        values = {name: exc.get(name) for name in ("exception_key", "kind", "governorate_code",
                                                   "business_date", "bill_reference", "payment_id",
                                                   "amount", "detail", "opened_at")}
        self._run("INSERT INTO exceptions (exception_key, kind, governorate_code, business_date, bill_reference,"
                  " payment_id, amount, detail, status, opened_at) VALUES (:exception_key, :kind,"
                  " :governorate_code, :business_date, :bill_reference, :payment_id, :amount, :detail, 'OPEN',"
                  " :opened_at) ON CONFLICT (exception_key) DO UPDATE SET amount = excluded.amount,"
                  " detail = excluded.detail, status = 'OPEN', resolved_at = NULL, resolution = NULL", values)

    def resolve_exception(self, exception_key: str, now: str, resolution: str) -> bool:
        return bool(self._run("UPDATE exceptions SET status = 'RESOLVED', resolved_at = ?, resolution = ?"
                              " WHERE exception_key = ? AND status = 'OPEN'", (now, resolution, exception_key)))

    def exceptions(self, *, status: str | None = None, governorate_code: str | None = None,
                   business_date: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        clauses, params = [], []
        for column, value in (("status", status), ("governorate_code", governorate_code),
                              ("business_date", business_date), ("kind", kind)):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._all(f"SELECT * FROM exceptions{where} ORDER BY id", tuple(params))  # noqa: S608
