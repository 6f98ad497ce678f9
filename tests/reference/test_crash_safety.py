"""Crash safety (issue 5): ``kill -9`` of the reference service mid-load loses no acknowledged
payment and doubles none; after a restart on the same SQLite file the outbox and reconciliation
resume. Proved by counting, on real processes and real sockets.

The bench: citizen services, the card gateway, Khales and settlement run in this process on free
loopback ports (``harness.stack.Stack`` with ``target``); the reference service runs as a separate OS
process exactly as ``tahseel serve`` starts it (gunicorn's threaded worker on
``harness.wsgi:create('reference')``, ledger ``<TAHSEEL_DATA_DIR>/reference.sqlite3``, the other parties
through ``TAHSEEL_URL_<PARTY>``), with ``reference.ticker: false`` from a copy of the settings file
(``TAHSEEL_CONFIG``). Every party is on one simulated clock (``harness.parties.SharedClock``); the
reference keeps its simulated time in its ledger, so the restarted process comes back on it.

The cash comes two ways, at the same time, from eight threads:

- **through the Khales simulator** (``POST /api/outlet-payments``: inquiry, payment, retries, reversal,
  the collections feed to settlement), some at an outlet whose terminal posts each payment twice at the
  same moment (Khales' ``duplicate_payment`` fault). When the biller does not answer, Khales retries
  the same transaction id at once (``payment_retries``: milliseconds apart, all refused while the
  reference is down) and then **reverses** it, retrying the reversal on its clock until the biller
  answers. It never posts the same transaction id again after the biller is back, so on this path an
  unanswered payment ends REVERSED (or FAILED when even the inquiry got no answer) and the citizen pays
  again, which is a new Khales transaction;
- **by playing the outlet** (signed ``POST /khales/payments`` with the ``khales_biller`` secret, some
  posted twice at the same moment from two threads), because the case issue 5 names — a payment whose
  answer was lost in the crash is posted again with the same transaction id after the restart — is
  not something the Khales simulator does. For these the test is Khales: it retries every unanswered
  payment with the same id and body once the reference is back, and feeds settlement
  (``POST /api/collections``, signed ``collections_feed``, the body Khales sends) after each answer.

The reference is SIGKILLed (master and worker, one process group) once a third of the payments are
acknowledged, while the reference's outbox is being ticked too (so confirmations are delivered before
the kill, and one may be in flight when it comes). Then it is started again on the same file and port.
Before the kill a few biller answers are also cut after the work (an in-memory ``drop_response`` fault
on the reference), so that "credited, the answer never received, posted again after the restart" is
exercised on every run, not only when the kill happens to land between COMMIT and the answer.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest
import requests
import yaml

from harness.parties import Parties, SharedClock
from harness.stack import Stack
from simulators.common.calendar import BusinessCalendar
from simulators.common.clock import iso, parse_instant
from simulators.common.http import encode_json
from simulators.common.money import format_amount, parse_amount
from simulators.common.server import LOOPBACK, reserve_socket
from simulators.common.signing import sign_headers

ROOT = Path(__file__).resolve().parents[2]
LOAD_AT = "2026-12-07T10:00:00+02:00"  # Monday 7 December 2026, a business day in Cairo
BUSINESS_DATE = "2026-12-07"
# Wednesday (T+2) evening: the credit (10:00) and the day's bank statement (18:00) are out, the E2 deadline
# (Cairo midnight) is not past
VALUE_DATE_CREDITED = "2026-12-09T20:00:00+02:00"
ORDERS = 300
THREADS = 8
KILL_AFTER = ORDERS // 3  # acknowledged payments before the SIGKILL
TICK_EVERY = 10  # the reference's outbox is ticked after every 10th acknowledgement (until the kill)
GOVERNORATES = ("01", "02", "21")
SERVICES = ("CTC", "TUC", "CUA")
DROPPED_ANSWERS = 5  # answers of the biller cut after the work, before the kill
DUPLICATE_OUTLET = "KH-01-0002"  # Khales' terminal there posts every payment twice at the same moment


# --- the reference service as a process --------------------------------------------------------
def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    The reference is started again on the same port after the kill (Khales and settlement know it by
    URL). An ephemeral port could meanwhile become the local end of one of the many outgoing
    connections of the load, and the restart would fail to bind it; a port below the range cannot.
    """
    low = 32768
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    draw = random.Random()
    for _ in range(200):
        port = draw.randrange(max(1025, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    sock = reserve_socket()
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def settings_file_with_ticker_off(tmp_path: Path) -> Path:
    """The settings the process reads (``TAHSEEL_CONFIG``): the shipped ones, ``reference.ticker: false``."""
    base = Path(os.environ.get("TAHSEEL_CONFIG") or ROOT / "config" / "tahseel.yaml").resolve()
    raw = yaml.safe_load(base.read_text(encoding="utf-8"))
    catalog = Path(raw.get("catalog_file", "catalog.yaml"))
    raw["catalog_file"] = str(catalog if catalog.is_absolute() else base.parent / catalog)
    raw.setdefault("reference", {})["ticker"] = False
    path = tmp_path / "tahseel.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


class ReferenceProcess:
    """``gunicorn harness.wsgi:create('reference')`` with the flags ``tahseel serve`` uses, in a process
    group of its own so that one SIGKILL takes gunicorn's master and its worker at once."""

    def __init__(self, port: int, env: dict[str, str], log_path: Path) -> None:
        self.port = port
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "the reference is already running"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"{LOOPBACK}:{self.port}", "--workers", "1",
             "--threads", "16", "--worker-class", "gthread", "--graceful-timeout", "5",
             "--limit-request-line", "8190", "--log-level", "warning", "--name", "tahseel-reference",
             "harness.wsgi:create('reference')"],
            env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        with requests.Session() as session:
            session.trust_env = False
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the reference exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if session.get(self.url + "/_admin/health", timeout=1).status_code == 200:
                        return
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the reference did not answer within {timeout:.0f}s:\n{self.log_tail()}")
                time.sleep(0.05)  # a real process starting up: polled with a deadline, not simulated time

    def kill(self) -> None:
        """SIGKILL, master and worker: no atexit handler, no ``finally``, no SQLite close runs."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def answers(self) -> bool:
        try:
            with requests.Session() as session:
                session.trust_env = False
                return session.get(self.url + "/_admin/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode("utf-8", "replace")
        except OSError:
            return ""


# --- the bench ---------------------------------------------------------------------------------
class Bench:
    def __init__(self, stack: Stack, reference: ReferenceProcess, database: Path) -> None:
        self.stack = stack
        self.reference = reference
        self.database = database
        self.urls = dict(stack.urls)
        self.settings = stack.settings  # the same secrets the reference process reads
        self.parties = Parties(self.urls)
        self.clock = SharedClock(self.parties, list(self.urls),
                                 BusinessCalendar.from_config(stack.settings["calendar"]))
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    @property
    def http(self) -> requests.Session:
        """One session per thread (a Session is not meant to be shared between threads)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # loopback only, never a proxy from the environment
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()
        self.parties.close()

    def url(self, party: str, path: str) -> str:
        return self.urls[party] + path

    def get(self, party: str, path: str) -> Any:
        response = self.http.get(self.url(party, path), timeout=30)
        assert response.status_code == 200, f"{party} {path}: {response.status_code} {response.text[:300]}"
        return response.json()

    def now(self) -> datetime:
        return parse_instant(self.get("settlement", "/_admin/clock")["now"])

    def sign(self, body: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
        """The exact bytes and headers of a signed call, signed at the shared simulated now."""
        data = encode_json(body)
        headers = sign_headers(self.settings["secrets"][secret], data, self.now())
        return data, {**headers, "Content-Type": "application/json"}

    def signed_post(self, party: str, path: str, body: dict[str, Any], secret: str) -> requests.Response:
        data, headers = self.sign(body, secret)
        return self.http.post(self.url(party, path), data=data, headers=headers, timeout=30)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    port = free_port()
    data_dir = tmp_path / "reference"
    data_dir.mkdir()
    stack = Stack(target=f"http://{LOOPBACK}:{port}", data_dir=str(tmp_path / "simulators"))
    reference: ReferenceProcess | None = None
    stack.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TAHSEEL_URL_")}
        env.update({f"TAHSEEL_URL_{name.upper()}": url for name, url in stack.urls.items()})
        env.update(TAHSEEL_CONFIG=str(settings_file_with_ticker_off(tmp_path)), TAHSEEL_DATA_DIR=str(data_dir))
        reference = ReferenceProcess(port, env, tmp_path / "reference.log")
        reference.start()
        bench = Bench(stack, reference, data_dir / "reference.sqlite3")
        try:
            yield bench
        finally:
            bench.close()
    finally:
        if reference is not None:
            reference.stop()
        stack.stop()


# --- the load ----------------------------------------------------------------------------------
@dataclass
class Order:
    index: int
    request_number: str
    bill_reference: str
    amount: str
    governorate_code: str
    service_code: str
    via_khales: bool  # paid through the Khales simulator (else the test plays the outlet)
    duplicated: bool  # posted twice at the same moment
    transaction_id: str = ""


@dataclass
class Load:
    """What the outlets saw, recorded from the worker threads."""

    bench: Bench
    lock: threading.Lock = field(default_factory=threading.Lock)
    acks: int = 0
    acked_at_kill: int = 0
    killed: threading.Event = field(default_factory=threading.Event)
    # played outlet: transaction id -> the biller's answer, for every answered payment
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: list[tuple[str, int]] = field(default_factory=list)  # (tx, HTTP status) of every answer
    duplicate_answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unanswered: list[Order] = field(default_factory=list)
    lost_while_up: int = 0  # unanswered while the reference was still running (a cut answer)
    fed: list[str] = field(default_factory=list)  # collection ids this test fed settlement
    # Khales simulator: transaction id -> the transaction as Khales answered it
    khales: dict[str, dict[str, Any]] = field(default_factory=dict)

    def acknowledged(self) -> None:
        with self.lock:
            self.acks += 1
            kill = self.acks == KILL_AFTER and not self.killed.is_set()
            tick = self.acks % TICK_EVERY == 0 and not self.killed.is_set()
            if kill:
                self.bench.reference.kill()
                self.acked_at_kill = self.acks
                self.killed.set()
        if tick and not kill:
            try:  # deliver the confirmations queued so far (one may be in flight when the kill comes)
                self.bench.http.post(self.bench.url("reference", "/_admin/tick"), timeout=30)
            except requests.RequestException:
                pass  # killed meanwhile

    # --- the outlet played by the test (signed biller calls) ------------------------------------
    def payment_body(self, order: Order) -> dict[str, Any]:
        return {"khales_transaction_id": order.transaction_id, "bill_reference": order.bill_reference,
                "amount": order.amount, "currency": "EGP", "outlet_id": f"KH-{order.governorate_code}-0001",
                "paid_at": iso(parse_instant(LOAD_AT))}

    def post_payment(self, data: bytes, headers: dict[str, str]) -> requests.Response | None:
        try:
            return self.bench.http.post(self.bench.url("reference", "/khales/payments"), data=data, headers=headers,
                                        timeout=30)
        except requests.ConnectionError:
            return None  # refused, reset or cut: the outlet never learned the outcome

    def pay_played(self, order: Order) -> None:
        data, headers = self.bench.sign(self.payment_body(order), "khales_biller")
        if order.duplicated:  # the very same request twice, released together from two threads
            results: list[requests.Response | None] = [None, None]
            barrier = threading.Barrier(2)

            def post(slot: int) -> None:
                barrier.wait(timeout=10)
                results[slot] = self.post_payment(data, headers)

            other = threading.Thread(target=post, args=(1,), name=f"duplicate-{order.transaction_id}")
            other.start()
            post(0)
            other.join()
        else:
            results = [self.post_payment(data, headers)]
        answered = [r for r in results if r is not None]
        with self.lock:
            self.statuses.extend((order.transaction_id, r.status_code) for r in answered)
            if order.duplicated:
                self.duplicate_answers[order.transaction_id] = [r.json() for r in answered
                                                                if r.status_code == 200]
            ok = [r.json() for r in answered if r.status_code == 200]
            if not ok:
                self.unanswered.append(order)
                self.lost_while_up += not self.killed.is_set()
                return
            self.answers[order.transaction_id] = ok[0]
        self.feed_settlement(order, ok[0])
        self.acknowledged()

    def feed_settlement(self, order: Order, answer: dict[str, Any]) -> None:
        """What Khales sends settlement for a paid transaction (simulators/khales/models.py)."""
        body = {"collection_id": f"khales:{order.transaction_id}", "type": "payment", "channel": "cash",
                "source": "khales", "governorate_code": order.governorate_code,
                "service_code": order.service_code, "bill_reference": order.bill_reference,
                "amount": answer["amount"], "collection_fee": "0.00", "currency": "EGP",
                "collected_at": iso(parse_instant(LOAD_AT)), "transaction_number": order.transaction_id}
        response = self.bench.signed_post("settlement", "/api/collections", body, "collections_feed")
        assert response.status_code == 201, response.text
        with self.lock:
            self.fed.append(body["collection_id"])

    # --- the Khales simulator ---------------------------------------------------------------------
    def pay_at_outlet(self, order: Order, transaction_id: str, outlet_id: str) -> dict[str, Any]:
        response = self.bench.http.post(self.bench.url("khales", "/api/outlet-payments"), timeout=120, json={
            "bill_reference": order.bill_reference, "outlet_id": outlet_id, "transaction_id": transaction_id})
        assert response.status_code == 201, response.text
        transaction = response.json()
        with self.lock:
            self.khales[transaction_id] = transaction
        if transaction["status"] == "PAID":
            self.acknowledged()
        return transaction

    def pay(self, order: Order) -> None:
        if order.via_khales:
            outlet = DUPLICATE_OUTLET if order.duplicated else f"KH-{order.governorate_code}-0001"
            self.pay_at_outlet(order, order.transaction_id, outlet)
        else:
            self.pay_played(order)


def create_orders(bench: Bench) -> list[Order]:
    def one(index: int) -> Order:
        governorate, service = GOVERNORATES[index % 3], SERVICES[(index // 3) % len(SERVICES)]
        request = bench.http.post(bench.url("citizen_services", "/api/service-requests"), timeout=30,
                                  json={"governorate_code": governorate, "service_code": service})
        assert request.status_code == 201, request.text
        created = bench.http.post(bench.url("reference", "/api/orders"), timeout=30,
                                  json={"request_number": request.json()["request_number"]})
        assert created.status_code == 201, created.text
        order = created.json()
        via_khales = index % 5 == 4  # 60 of 300 through the Khales simulator
        # posted twice at the same moment: 35 of the 240 played, 20 of the 60 at Khales' duplicating outlet
        duplicated = (index % 3 == 0) if via_khales else (index % 7 == 3)
        return Order(index=index, request_number=order["request_number"], bill_reference=order["bill_reference"],
                     amount=order["amount"], governorate_code=governorate, service_code=service,
                     via_khales=via_khales, duplicated=duplicated, transaction_id=f"KHT{index + 1:012d}")

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(ORDERS)))


# --- the test ----------------------------------------------------------------------------------
def test_sigkill_mid_load_loses_no_acknowledged_payment_and_doubles_none(bench: Bench) -> None:
    started = time.monotonic()
    load_at = parse_instant(LOAD_AT)
    bench.clock.set(load_at)
    orders = create_orders(bench)
    by_bill = {o.bill_reference: o for o in orders}
    khales_duplicated = [o for o in orders if o.via_khales and o.duplicated]
    fault = bench.http.post(bench.url("khales", "/_admin/faults"), timeout=30, json={
        "direction": "domain", "kind": "duplicate_payment", "endpoint": "payment",
        "match": {"outlet_id": DUPLICATE_OUTLET}, "params": {"same_moment": True}, "count": len(khales_duplicated)})
    assert fault.status_code == 201, fault.text
    # A few answers of /khales/payments are cut after the work is committed (an in-memory fault: it dies
    # with the process). That is the state a crash between COMMIT and the answer leaves, which the kill
    # itself hits only by chance; these outlets too learn the outcome only after the restart.
    dropped = bench.http.post(bench.url("reference", "/_admin/faults"), timeout=30, json={
        "kind": "drop_response", "endpoint": "/khales/payments", "count": DROPPED_ANSWERS,
        "params": {"rate": 0.1, "seed": 7}})
    assert dropped.status_code == 201, dropped.text

    # 1. The load, and the kill once a third of the payments are acknowledged.
    load = Load(bench)
    shuffled = random.Random(5).sample(orders, len(orders))
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(load.pay, shuffled))
    assert load.killed.is_set(), f"only {load.acks} payments were acknowledged: the kill never came"
    assert not bench.reference.answers()
    acked_before_restart = load.acks
    unanswered_played = list(load.unanswered)
    lost_while_up = load.lost_while_up
    khales_unpaid = [tx for tx, t in load.khales.items() if t["status"] != "PAID"]

    # 2. Restart on the same file and port: back on the simulated clock, nothing lost of what was said.
    bench.reference.start()
    clock = bench.get("reference", "/_admin/clock")
    assert clock["simulated"] is True and parse_instant(clock["now"]) == load_at, clock
    committed_unanswered: dict[str, str] = {}  # unanswered, yet credited before the kill: tx -> payment_id
    for order in unanswered_played:
        payments = bench.get("reference", f"/api/orders/{order.bill_reference}")["payments"]
        mine = [p for p in payments if p["external_id"] == order.transaction_id]
        assert len(mine) <= 1
        if mine:
            committed_unanswered[order.transaction_id] = mine[0]["payment_id"]

    # 3. The played outlet posts every unanswered payment again: same transaction id, same body.
    load.unanswered.clear()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(load.pay_played, unanswered_played))
    assert load.unanswered == [], [o.transaction_id for o in load.unanswered]
    for tx, payment_id in committed_unanswered.items():
        assert load.answers[tx]["payment_id"] == payment_id, "a retried payment was credited again"

    # 4. Khales' reversals of what it never heard about go through once the clock reaches their retry.
    bench.clock.advance_to(load_at + timedelta(minutes=2))
    reversed_at_khales = []
    for tx in khales_unpaid:
        transaction = bench.get("khales", f"/api/transactions/{tx}")
        assert transaction["status"] in ("REVERSED", "FAILED"), transaction
        if transaction["status"] == "REVERSED":
            reversed_at_khales.append(tx)
        elif transaction["error"]["code"] != "BILLER_UNREACHABLE":
            raise AssertionError(f"{tx} failed for another reason than the outage: {transaction['error']}")
    # ... and those citizens pay again: a new Khales transaction each.
    repay = [by_bill[load.khales[tx]["bill_reference"]] for tx in khales_unpaid]
    with ThreadPoolExecutor(THREADS) as pool:
        repaid = list(pool.map(lambda o: load.pay_at_outlet(o, f"KHT{o.index + 1 + 500_000:012d}",
                                                            f"KH-{o.governorate_code}-0001"), repay))
    assert [t["status"] for t in repaid] == ["PAID"] * len(repay), [t["error"] for t in repaid]

    # 5. Let the outbox and the feeds drain, then reach the value date (T+2) so settlement credits.
    bench.clock.advance_to(load_at + timedelta(minutes=4))
    bench.clock.advance_to(parse_instant(VALUE_DATE_CREDITED))

    # --- counting --------------------------------------------------------------------------------
    ledger = {o.bill_reference: bench.get("reference", f"/api/orders/{o.bill_reference}") for o in orders}
    payments = [dict(p, bill_reference=bill, governorate_code=view["governorate_code"])
                for bill, view in ledger.items() for p in view["payments"]]
    captured = [p for p in payments if p["status"] == "CAPTURED"]
    reversed_ = [p for p in payments if p["status"] == "REVERSED"]
    paid_at_khales = {tx for tx, t in load.khales.items() if t["status"] == "PAID"}
    acknowledged = set(load.answers) | paid_at_khales

    # The ledger: every acknowledged transaction exactly once, nothing else captured, nothing doubled.
    assert not [tx for tx, n in Counter(p["external_id"] for p in payments).items() if n > 1]
    assert sorted(p["external_id"] for p in captured) == sorted(acknowledged)
    for p in captured:
        if p["external_id"] in load.answers:
            assert p["payment_id"] == load.answers[p["external_id"]]["payment_id"]
    assert {p["external_id"] for p in reversed_} <= set(reversed_at_khales)
    assert all(v["status"] == "PAID" and v["paid_amount"] == v["amount"] and v["excess_amount"] == "0.00"
               for v in ledger.values()), [v for v in ledger.values() if v["status"] != "PAID"][:3]
    assert Counter(p["bill_reference"] for p in captured) == Counter({o.bill_reference: 1 for o in orders})
    # Both copies of a duplicated payment that were answered carry the same credit.
    for tx, answers in load.duplicate_answers.items():
        assert len({a["payment_id"] for a in answers}) <= 1, (tx, answers)
    assert all(status == 200 for _, status in load.statuses), Counter(s for _, s in load.statuses)
    assert sorted(load.fed) == sorted(f"khales:{tx}" for tx in load.answers)  # the played outlet fed each once

    # Citizen services: one confirmation per captured payment, for the whole amount; none doubled.
    confirmations = bench.get("citizen_services", "/api/payment-confirmations")["confirmations"]
    confirmed = [c for c in confirmations if c["status"] == "CONFIRMED"]
    assert sorted(c["payment_id"] for c in confirmed) == sorted(p["payment_id"] for p in captured)
    assert all(c["amount"] == ledger[c["bill_reference"]]["amount"] for c in confirmed)
    reversed_ids = {p["payment_id"] for p in reversed_}
    assert {c["payment_id"] for c in confirmations if c["status"] != "CONFIRMED"} <= reversed_ids
    assert sorted(c["request_number"] for c in confirmed) == sorted(o.request_number for o in orders)
    # A request confirmed with a second payment (a double credit) would be a recorded conflict there.
    assert bench.get("citizen_services", "/api/confirmation-conflicts")["conflicts"] == []
    outbox = bench.get("reference", "/api/confirmations")["confirmations"]
    assert {r["status"] for r in outbox if r["kind"] == "confirmation"} <= {"DELIVERED", "CANCELLED"}
    journal = bench.get("citizen_services", "/_admin/journal?direction=in&method=POST&path=/api/payment-confirmations")
    posts = [e for e in journal["entries"] if e["path"] == "/api/payment-confirmations"]
    posted_ids = Counter(e["request_json"]["payment_id"] for e in posts)
    # The outbox delivers one row at a time: at most one was in flight when the process died.
    assert sum(posted_ids.values()) - len(posted_ids) <= 1, [pid for pid, n in posted_ids.items() if n > 1]

    # Settlement: exactly the paid Khales transactions, each once, and per governorate the money the
    # restarted reference expects for the day is what settlement holds for it.
    lines = bench.get("settlement", f"/api/settlement-files/{BUSINESS_DATE}?format=json")["lines"]
    collection_ids = [line["collection_id"] for line in lines]
    assert sorted(collection_ids) == sorted(f"khales:{tx}" for tx in acknowledged)
    settled: Counter[str] = Counter()
    for line in lines:
        settled[line["governorate_code"]] += parse_amount(line["amount"])
    held: Counter[str] = Counter()
    for p in captured:
        held[p["governorate_code"]] += parse_amount(p["amount"])
    assert settled == held and set(held) == set(GOVERNORATES)
    report = bench.get("reference", f"/api/reports/daily?date={BUSINESS_DATE}")
    assert {s["governorate_code"] for s in report["governorates"]} == set(GOVERNORATES)
    for section in report["governorates"]:
        code = section["governorate_code"]
        assert section["collections"]["amount"] == format_amount(held[code])
        assert section["collections"]["count"] == sum(p["governorate_code"] == code for p in captured)
        assert section["settlement"]["expected_amount"] == format_amount(settled[code]), section["settlement"]
        # Wednesday's bank statement (18:00) reached the restarted reference: credited on time, in full.
        assert section["settlement"]["status"] == "ON_TIME", section["settlement"]
        assert section["settlement"]["credited_amount"] == format_amount(held[code]), section["settlement"]
    # Reconciliation resumed on the restarted process: three ways (ledger, settlement's file, the bank's
    # statement) every governorate's Monday is reconciled, and nothing is flagged.
    assert bench.get("reference", "/api/reconciliation/exceptions?status=OPEN")["exceptions"] == []
    three_way = bench.get("reference", f"/api/reconciliation/{BUSINESS_DATE}")
    statuses = [(g["governorate_code"], g["status"]) for g in three_way["governorates"]]
    assert three_way["status"] == "RECONCILED", statuses
    assert {g["governorate_code"] for g in three_way["governorates"]} == set(GOVERNORATES)

    bench.reference.stop()
    with sqlite3.connect(f"file:{bench.database}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    print(f"\ncrash test: {len(orders)} orders ({sum(not o.via_khales for o in orders)} played outlet,"
          f" {sum(o.via_khales for o in orders)} via Khales), duplicated at the same moment:"
          f" {sum(o.duplicated and not o.via_khales for o in orders)} played +"
          f" {len(khales_duplicated)} Khales; acknowledged at the kill {load.acked_at_kill},"
          f" before the restart {acked_before_restart}; unanswered and retried with the same id"
          f" {len(unanswered_played)} (lost while it ran {lost_while_up}; already committed"
          f" {len(committed_unanswered)});"
          f" Khales unpaid after the crash {len(khales_unpaid)} (reversed {len(reversed_at_khales)}), paid again"
          f" {len(repay)}; ledger captured {len(captured)}, reversed {len(reversed_)};"
          f" confirmations {len(confirmed)} (POSTs {sum(posted_ids.values())});"
          f" settlement lines {len(collection_ids)}; {time.monotonic() - started:.1f}s")

