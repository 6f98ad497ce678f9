"""``tahseel serve``: every simulator and the reference service, each under gunicorn's threaded
worker (one worker process, many threads: the simulators keep their state in memory), all in this
command's process group. SIGINT / SIGTERM stop them all; if one dies, the rest are stopped too.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import requests

PARTY_ORDER = ("reference", "citizen_services", "card_gateway", "khales", "settlement")
DEFAULT_PORTS = {"reference": 8000, "citizen_services": 8001, "card_gateway": 8002, "khales": 8003,
                 "settlement": 8004}


def wait_healthy(urls: dict[str, str], procs: dict[str, subprocess.Popen[bytes]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    pending = dict(urls)
    session = requests.Session()
    session.trust_env = False
    while pending:
        for name, url in list(pending.items()):
            if procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited with code {procs[name].returncode} while starting")
            try:
                if session.get(url + "/_admin/health", timeout=1).status_code == 200:
                    del pending[name]
            except requests.RequestException:
                pass
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"not healthy after {timeout:.0f}s: {', '.join(pending)}")
        if pending:
            time.sleep(0.1)  # waiting for real processes to start, not for simulated time


def fresh_ledger(data_dir: str) -> None:
    """Remove the reference ledger: the simulators keep their state in memory and start empty, so a
    ledger from an earlier run would hold orders for request numbers they are about to reissue."""
    for path in Path(data_dir).glob("reference.sqlite3*"):
        path.unlink()


def ports_in_use(host: str, ports: dict[str, int]) -> list[str]:
    """Parties whose port is taken. Checked before starting: another serve on the same ports would
    answer our health checks itself, and we would announce its URLs as ours."""
    taken = []
    for name in PARTY_ORDER:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn: TIME_WAIT is no owner
            try:
                probe.bind((host, ports[name]))
            except OSError:
                taken.append(f"{name} ({host}:{ports[name]})")
    return taken


def serve(host: str, ports: dict[str, int], data_dir: str, as_json: bool, threads: int = 16,
          keep_data: bool = False) -> int:
    urls = {name: f"http://{host}:{ports[name]}" for name in PARTY_ORDER}
    taken = ports_in_use(host, ports)
    if taken:
        print(f"tahseel serve: port in use for {', '.join(taken)} (another tahseel serve?); choose others with"
              " --<party>-port or TAHSEEL_PORT_<PARTY>", file=sys.stderr)
        return 1
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    if not keep_data:
        fresh_ledger(data_dir)
    env = dict(os.environ, TAHSEEL_DATA_DIR=str(Path(data_dir).resolve()))
    env.update({f"TAHSEEL_URL_{name.upper()}": url for name, url in urls.items()})
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop_all(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 15
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_all()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for name in PARTY_ORDER:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{ports[name]}", "--workers", "1",
                 "--threads", str(threads), "--worker-class", "gthread", "--graceful-timeout", "5",
                 "--limit-request-line", "8190",
                 "--log-level", "warning", "--name", f"tahseel-{name}", f"harness.wsgi:create('{name}')"],
                env=env)
        wait_healthy(urls, procs)
    except (RuntimeError, OSError) as exc:
        stop_all()
        print(f"tahseel serve: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(urls), flush=True)
    else:
        for name, url in urls.items():
            print(f"{name:17} {url}", flush=True)
        print("Ctrl-C stops everything.", flush=True)
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"tahseel serve: {name} exited with code {proc.returncode}; stopping", file=sys.stderr)
                stop_all()
                return 1
        time.sleep(0.5)  # supervising child processes in real time
    return 0
