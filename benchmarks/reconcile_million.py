"""Benchmark: three-way reconciliation of one million transactions (issue 5, obligations E5 and L3).

    python -m benchmarks.reconcile_million [--transactions 1000000] [--repeat 3] [--workdir DIR]

What is measured, and why this way:

- **Prepared once, outside the measure**: a ledger of N captured cash payments of one Cairo business
  day (Monday 2026-12-07) spread over the 27 governorates, imported into the reference service's
  SQLite file with ``Store.import_ledger`` (no business rules: this is data, not the thing measured);
  e-finance's detailed settlement file of that day written to disk as CSV (one line per transaction);
  the bank's statement of the value date (Wednesday 2026-12-09), one credit per governorate.
- **Planted faults**, so the run proves correctness at scale, not only speed: some payments left out of
  the file (MISSING_IN_FILE), some lines the ledger never saw (ORPHAN_COLLECTION), some lines listed
  twice (SETTLED_TWICE), one credit short by 1.00 (SHORT_SETTLEMENT). The measured child must report
  exactly those exceptions, with exactly those amounts, or the benchmark fails.
- **Measured, in a fresh child process per repetition** (so peak memory is the reconciliation's own):
  a copy of the prepared ledger is opened by ``reference.app.create_app``; the file is streamed from
  disk through ``Reconciliation.ingest_file`` (read once, line by line), the statement goes through
  ``ingest_statement``, then ``reconcile_all``. Wall time of those three calls, and the child's peak
  resident memory (``ru_maxrss``), which includes the interpreter, Flask and the app.

The issue's target: under 30 s and under 1 GiB on the project's 2-core machine. The figures go into
the README with this command.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reference.app import create_app
from simulators.common.catalog import load_catalog
from simulators.common.clock import parse_instant
from simulators.common.config import load_settings
from simulators.common.money import format_amount

BUSINESS_DATE = "2026-12-07"  # a Monday, Cairo
VALUE_DATE = "2026-12-09"  # T+2 business days
NOW = "2026-12-09T20:00:00+02:00"  # the evening of the value date: statement in, nothing late yet
FILE_ID = "SF-20261207-1"
COLUMNS = ("batch_id", "governorate_code", "business_date", "value_date", "collection_id", "channel",
           "bill_reference", "service_code", "transaction_number", "amount", "collection_fee", "collected_at",
           "settlement_account_code", "payment_request_number", "sender_request_number", "mechanism",
           "reconciliation_date", "line_type", "reverses")
SERVICES = ("BPR", "UTC", "CTC", "LIC", "RNT")


def _settings(database: Path) -> dict[str, Any]:
    return load_settings({"reference": {"database": str(database), "ticker": False}})


def _amount(i: int) -> int:
    """Piasters of payment ``i``: varied, never zero (5.00 to 1,504.99 EGP)."""
    return 500 + (i * 7919) % 150000


def _plan(n: int) -> dict[str, Any]:
    """Which payments the planted faults touch (deterministic, spread over the day)."""
    step = max(n // 100, 1)
    missing = set(range(3, n, step * 10)) if n >= 1000 else {1}
    twice = set(range(5, n, step * 10)) - missing if n >= 1000 else {2}
    orphans = max(len(missing), 1)
    return {"missing": missing, "twice": twice, "orphans": orphans, "short_gov_index": 0, "short_by": 100}


def prepare(workdir: Path, n: int) -> dict[str, Any]:
    """Build the ledger file, the settlement CSV, the delivery header and the statement; return the
    exceptions the reconciliation must find."""
    catalog = load_catalog("config/catalog.yaml")
    governorates = [catalog["governorates"][code] for code in sorted(catalog["governorates"])]
    codes = [g["code"] for g in governorates]
    iban = {g["code"]: g["iban"] for g in governorates}
    plan = _plan(n)
    database = workdir / "ledger.sqlite3"
    for leftover in workdir.glob("ledger.sqlite3*"):
        leftover.unlink()
    app = create_app(_settings(database))
    ext = app.extensions["reference"]
    store, rec = ext["store"], ext["reconciliation"]
    rec.component.clock.set(parse_instant("2026-12-07T10:00:00+02:00"))

    def payment(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
        gov = codes[i % len(codes)]
        bill = f"{i:012d}"
        paid_at = f"2026-12-07T{6 + (i % 14):02d}:{i % 60:02d}:00.000Z"
        service = SERVICES[i % len(SERVICES)]
        order = {"bill_reference": bill, "request_number": f"SR-{gov}-{i % 100000000:08d}", "status": "PAID",
                 "amount": _amount(i), "currency": "EGP", "governorate_code": gov, "service_code": service,
                 "payer_name": "مواطن", "fee_lines": [], "expires_at": "2026-12-10T10:00:00.000Z",
                 "created_at": paid_at, "paid_at": paid_at}
        pay = {"payment_id": f"P{i:010d}", "bill_reference": bill, "channel": "cash", "external_id": f"KH{i:012d}",
               "amount": _amount(i), "status": "CAPTURED", "governorate_code": gov, "service_code": service,
               "paid_at": paid_at, "business_date": BUSINESS_DATE, "received_at": paid_at}
        return order, pay

    chunk = 50_000
    for start in range(0, n, chunk):
        rows = [payment(i) for i in range(start, min(n, start + chunk))]
        with store.transaction():
            store.import_ledger((o for o, _ in rows), (p for _, p in rows))
    rec.prepare_days()
    store.close()

    # The settlement file (what e-finance says it settled) and its control totals per batch.
    totals: dict[str, list[int]] = {gov: [0, 0] for gov in codes}  # gov -> [lines, piasters]
    missing_amount = twice_amount = orphan_amount = 0
    csv_path = workdir / f"{FILE_ID}.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(COLUMNS) + "\r\n")

        def line(i: int, gov: str, tx: str, bill: str, amount: int, service: str) -> str:
            return ",".join((f"B-{gov}-20261207", gov, BUSINESS_DATE, VALUE_DATE, f"khales:{tx}", "cash", bill, service,
                             tx, format_amount(amount), "0.00", f"2026-12-07T{6 + (i % 14):02d}:{i % 60:02d}:00.000Z",
                             "", "", "", "", "", "payment", "")) + "\r\n"

        for i in range(n):
            gov, amount = codes[i % len(codes)], _amount(i)
            if i in plan["missing"]:
                missing_amount += amount
                continue
            copies = 2 if i in plan["twice"] else 1
            twice_amount += amount * (copies - 1)
            for _ in range(copies):
                out.write(line(i, gov, f"KH{i:012d}", f"{i:012d}", amount, SERVICES[i % len(SERVICES)]))
                totals[gov][0] += 1
                totals[gov][1] += amount
        for k in range(plan["orphans"]):
            gov, amount = codes[k % len(codes)], 1234
            orphan_amount += amount
            out.write(line(k, gov, f"KX{k:012d}", f"9{k:011d}", amount, "LIC"))
            totals[gov][0] += 1
            totals[gov][1] += amount
    lines = sum(count for count, _ in totals.values())
    gross = sum(amount for _, amount in totals.values())
    header = {"file_id": FILE_ID, "business_date": BUSINESS_DATE, "sequence": 1,
              "generated_at": "2026-12-07T23:00:00.000Z", "format": "csv", "line_count": lines,
              "gross_amount": format_amount(gross), "collection_fees": "0.00", "net_amount": format_amount(gross),
              "batches": [{"batch_id": f"B-{gov}-20261207", "governorate_code": gov, "business_date": BUSINESS_DATE,
                           "value_date": VALUE_DATE, "line_count": count, "gross_amount": format_amount(amount),
                           "collection_fees": "0.00", "amount": format_amount(amount), "mode": "gross",
                           "iban": iban[gov]} for gov, (count, amount) in totals.items()]}
    short_gov = codes[plan["short_gov_index"]]
    statement = {"statement_id": "BS-20261209", "statement_date": VALUE_DATE,
                 "generated_at": "2026-12-09T16:00:00.000Z",
                 "entries": [{"entry_id": f"BS-{k + 1:08d}", "iban": iban[gov], "governorate_code": gov,
                              "value_date": VALUE_DATE,
                              "amount": format_amount(amount - (plan["short_by"] if gov == short_gov else 0)),
                              "currency": "EGP", "reference": f"B-{gov}-20261207",
                              "credited_at": "2026-12-09T08:00:00.000Z"}
                             for k, (gov, (_, amount)) in enumerate(totals.items())]}
    (workdir / "header.json").write_text(json.dumps(header))
    (workdir / "statement.json").write_text(json.dumps(statement))
    expected = {
        "MISSING_IN_FILE": [len(plan["missing"]), missing_amount],
        "SETTLED_TWICE": [len(plan["twice"]), twice_amount],
        "ORPHAN_COLLECTION": [plan["orphans"], orphan_amount],
        "SHORT_SETTLEMENT": [1, plan["short_by"]],
    }
    (workdir / "expected.json").write_text(json.dumps(expected))
    with sqlite3.connect(database) as db:  # one self-contained file to copy per repetition
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"lines": lines, "expected": expected}


def measure(workdir: Path, database: Path) -> dict[str, Any]:
    """One repetition, in this (fresh) process: ingest the file and the statement, reconcile."""
    app = create_app(_settings(database))
    ext = app.extensions["reference"]
    rec, store = ext["reconciliation"], ext["store"]
    component = rec.component
    component.clock.set(parse_instant(NOW))
    header = json.loads((workdir / "header.json").read_text())
    statement = json.loads((workdir / "statement.json").read_text())
    started = time.perf_counter()
    with (workdir / f"{FILE_ID}.csv").open(encoding="utf-8", newline="") as lines:
        rec.ingest_file(header, lines, reconcile=False)
    ingested = time.perf_counter()
    rec.ingest_statement(statement, reconcile=False)
    rec.reconcile_all()
    finished = time.perf_counter()
    found: dict[str, list[int]] = {}
    for exc in store.exceptions(status="OPEN"):
        entry = found.setdefault(exc["kind"], [0, 0])
        entry[0] += 1
        entry[1] += int(exc["amount"] or 0)
    store.close()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return {"seconds": finished - started, "ingest_seconds": ingested - started,
            "peak_mib": peak_kib / 1024, "exceptions": found}


def _runs(workdir: Path, repeat: int) -> Iterator[dict[str, Any]]:
    for k in range(repeat):
        copy = workdir / f"run-{k}.sqlite3"
        shutil.copyfile(workdir / "ledger.sqlite3", copy)
        try:
            out = subprocess.run([sys.executable, "-m", "benchmarks.reconcile_million", "--measure", str(workdir),
                                  str(copy)], check=True, capture_output=True, text=True)
            yield json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            for leftover in workdir.glob(f"run-{k}.sqlite3*"):
                leftover.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the generated data here (default: a temp dir)")
    parser.add_argument("--measure", nargs=2, metavar=("WORKDIR", "DATABASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), Path(args.measure[1]))))
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tahseel-reconcile-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        began = time.perf_counter()
        prepared = prepare(workdir, args.transactions)
        size_mib = (workdir / f"{FILE_ID}.csv").stat().st_size / 2**20
        print(f"prepared {args.transactions:,} payments, a file of {prepared['lines']:,} lines"
              f" ({size_mib:.0f} MiB) in {time.perf_counter() - began:.1f} s")
        results = list(_runs(workdir, args.repeat))
        expected = prepared["expected"]
        for result in results:
            if result["exceptions"] != expected:
                print(f"WRONG: found {result['exceptions']}, planted {expected}")
                return 1
        seconds = [r["seconds"] for r in results]
        peaks = [r["peak_mib"] for r in results]
        print(f"exceptions found exactly as planted: {json.dumps(expected)}")
        print(f"reconcile {args.transactions:,} transactions: median {statistics.median(seconds):.1f} s"
              f" (min {min(seconds):.1f}, max {max(seconds):.1f}; ingest median"
              f" {statistics.median(r['ingest_seconds'] for r in results):.1f} s), peak memory median"
              f" {statistics.median(peaks):.0f} MiB (max {max(peaks):.0f}),"
              f" {len(results)} runs, {os.cpu_count()} cores")
        ok = max(seconds) < 30 and max(peaks) < 1024
        print("target (< 30 s, < 1 GiB):", "met" if ok else "NOT met")
        return 0 if ok else 1
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
