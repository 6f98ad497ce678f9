"""The `tahseel` command as a user runs it: serve answers, run exits non-zero on a failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from simulators.common.server import reserve_socket

ROOT = Path(__file__).resolve().parents[2]
PARTIES = ("reference", "citizen_services", "card_gateway", "khales", "settlement")


def free_ports(count: int) -> list[int]:
    sockets = [reserve_socket() for _ in range(count)]
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_serve_json_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    ports = free_ports(5)
    (tmp_path / "reference.sqlite3").write_bytes(b"an old ledger of another run")  # serve starts fresh
    env = dict(os.environ, **{f"TAHSEEL_PORT_{p.upper()}": str(port) for p, port in zip(PARTIES, ports, strict=True)})
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "serve", "--json", "--data-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        urls = json.loads(line)
        assert set(urls) == set(PARTIES)
        assert urls["khales"] == f"http://127.0.0.1:{ports[3]}"
        for name, url in urls.items():
            health = requests.get(url + "/_admin/health", timeout=5)
            assert health.status_code == 200 and health.json()["component"] == name
        # a real multi-threaded server: a request while another is held open still answers
        requests.post(urls["citizen_services"] + "/_admin/faults",
                      json={"kind": "delay", "endpoint": "/api/services", "params": {"seconds": 2}, "count": 1})
        with requests.Session() as slow:
            import threading

            t = threading.Thread(target=lambda: slow.get(urls["citizen_services"] + "/api/services", timeout=10))
            t.start()
            assert requests.get(urls["citizen_services"] + "/_admin/health", timeout=1).status_code == 200
            t.join()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0
    for port in ports:  # every component is gone
        try:
            requests.get(f"http://127.0.0.1:{port}/_admin/health", timeout=1)
            raise AssertionError(f"port {port} still answers after SIGTERM")
        except requests.ConnectionError:
            pass


def test_serve_refuses_ports_in_use_before_announcing_anything(tmp_path: Path) -> None:
    # A newcomer's case: with another serve on the ports, ours answered the health checks through it,
    # printed its URLs as ours, then failed to bind.
    ports = free_ports(5)
    held = reserve_socket(port=ports[1])  # someone listens on citizen services' port
    env = dict(os.environ, **{f"TAHSEEL_PORT_{p.upper()}": str(port) for p, port in zip(PARTIES, ports, strict=True)})
    try:
        done = subprocess.run([sys.executable, "-m", "harness.cli", "serve", "--data-dir", str(tmp_path)],
                              capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    finally:
        held.close()
    assert done.returncode == 1 and done.stdout == ""
    assert f"citizen_services (127.0.0.1:{ports[1]})" in done.stderr and "port in use" in done.stderr


def test_run_exits_nonzero_and_names_the_step_and_difference(tmp_path: Path) -> None:
    text = (ROOT / "scenarios/happy/cash_payment.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "wrong_total.yaml"
    broken.write_text(text.replace('expect: {status: 201, json: {total: "27.00"}}',
                                   'expect: {status: 201, json: {total: "54.00"}}'), encoding="utf-8")
    junit_path, json_path = tmp_path / "junit.xml", tmp_path / "result.json"
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(broken), "--junit", str(junit_path),
                           "--json", str(json_path)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED" in done.stdout
    assert "step 1 'the citizen asks for a certified copy of a licence'" in done.stdout
    assert "total: expected '54.00', got '27.00'" in done.stdout
    result = json.loads(json_path.read_text(encoding="utf-8"))
    assert result["ok"] is False and result["counts"]["failed"] == 1
    assert 'failures="1"' in junit_path.read_text(encoding="utf-8")


def test_run_refuses_an_invalid_scenario_before_starting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: no steps here\nobligations: [E1]\nsteps: []\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(bad)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 2
    assert f"{bad}:3" in done.stderr and "steps" in done.stderr


def test_run_and_certify_against_another_collection_service(tmp_path: Path) -> None:
    """The reference, started apart like an integrator's service, is tested through --target."""
    from harness.stack import create_component_app
    from simulators.common.config import load_settings
    from simulators.common.server import ServerThread

    ports = dict(zip(PARTIES[1:], free_ports(4), strict=True))
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    target_socket = reserve_socket()
    urls["reference"] = f"http://127.0.0.1:{target_socket.getsockname()[1]}"
    settings = load_settings({"urls": urls, "reference": {"database": str(tmp_path / "target.sqlite3")}})
    target = ServerThread(create_component_app("reference", settings), sock=target_socket).start()
    env = dict(os.environ, **{f"TAHSEEL_PORT_{name.upper()}": str(port) for name, port in ports.items()})
    try:
        done = subprocess.run([sys.executable, "-m", "harness.cli", "certify", "--target", target.url,
                               "--report-dir", str(tmp_path / "cert")], capture_output=True, text=True,
                              cwd=ROOT, env=env, timeout=300)
    finally:
        target.stop()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "verdict: CERTIFIED" in done.stdout
    assert "| P5 " in done.stdout and "| E2 " in done.stdout  # per obligation
    result = json.loads((tmp_path / "cert" / "result.json").read_text(encoding="utf-8"))
    assert result["ok"] is True and result["target"] == target.url


def test_clock_moves_every_served_party_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """`tahseel clock` sets and advances the one simulated clock of running parties (never one alone:
    their signed calls would look expired to each other) and runs due work on the way."""
    from click.testing import CliRunner

    from harness.cli import main
    from harness.stack import Stack

    with Stack() as stack:
        for party, url in stack.urls.items():
            monkeypatch.setenv(f"TAHSEEL_URL_{party.upper()}", url)
        runner = CliRunner()
        done = runner.invoke(main, ["clock", "set", "2026-12-03T15:00:00+02:00"])  # a Thursday
        assert done.exit_code == 0, done.output
        done = runner.invoke(main, ["clock", "advance", "2 business days"])
        assert done.exit_code == 0, done.output
        nows = {party: requests.get(f"{url}/_admin/clock", timeout=5).json()["now"]
                for party, url in stack.urls.items()}
        assert set(nows.values()) == {"2026-12-07T13:00:00.000Z"}, nows  # Monday 15:00 Cairo, every party
        assert "2026-12-07T13:00:00.000Z" in done.output
        bad = runner.invoke(main, ["clock", "advance", "soon"])
        assert bad.exit_code != 0 and "soon" in bad.output
