"""The ``tahseel`` command: serve, run, certify, load, clock."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import click
from tabulate import tabulate

from .loader import ScenarioFileError, discover, load_file
from .reports import table, write
from .results import ERROR, FAILED, PASSED, SKIPPED
from .serve import DEFAULT_PORTS, PARTY_ORDER, serve

REPO_ROOT = Path(__file__).resolve().parents[1]


@click.group()
@click.version_option(package_name="tahseel")
def main() -> None:
    """Tahseel: simulators and a test harness for the e-collection of Egyptian governorates' fees."""


def _port_option(name: str):  # type: ignore[no-untyped-def]
    flag = "--" + name.replace("_", "-") + "-port"
    return click.option(flag, f"{name}_port", type=click.IntRange(1, 65535), default=DEFAULT_PORTS[name],
                        envvar=f"TAHSEEL_PORT_{name.upper()}", show_default=True, show_envvar=True,
                        help=f"Port of {name.replace('_', ' ')}.")


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to bind.")
@_port_option("reference")
@_port_option("citizen_services")
@_port_option("card_gateway")
@_port_option("khales")
@_port_option("settlement")
@click.option("--data-dir", default=".tahseel", show_default=True, envvar="TAHSEEL_DATA_DIR",
              help="Where the reference service keeps its SQLite ledger.")
@click.option("--threads", default=16, show_default=True, help="Threads per component (gunicorn gthread).")
@click.option("--keep-data", is_flag=True,
              help="Keep the reference ledger of an earlier run (the simulators always start empty).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object {name: url} once all are healthy.")
def serve_cmd(host: str, data_dir: str, threads: int, keep_data: bool, as_json: bool, **ports: int) -> None:
    """Start the four simulators and the reference service until Ctrl-C / SIGTERM."""
    port_map = {name: ports[f"{name}_port"] for name in PARTY_ORDER}
    sys.exit(serve(host, port_map, data_dir, as_json, threads, keep_data))


def _load_scenarios(paths: tuple[str, ...], tags: str | None, skip_tags: str | None) -> list:  # type: ignore[type-arg]
    files = discover(list(paths) or [str(REPO_ROOT / "scenarios") if not Path("scenarios").is_dir() else "scenarios"])
    scenarios = [load_file(f) for f in files]
    wanted = {t for t in (tags or "").split(",") if t}
    unwanted = {t for t in (skip_tags or "").split(",") if t}
    return [s for s in scenarios if (not wanted or wanted & set(s.tags)) and not (unwanted & set(s.tags))]


def _execute(paths: tuple[str, ...], target: str | None, tags: str | None, skip_tags: str | None,
             verbose: bool):  # type: ignore[no-untyped-def]
    from .runner import Runner
    from .stack import Stack

    try:
        scenarios = _load_scenarios(paths, tags, skip_tags)
    except ScenarioFileError as exc:
        click.echo(f"tahseel: {exc}", err=True)
        sys.exit(2)
    if not scenarios:
        click.echo("tahseel: no scenario matched", err=True)
        sys.exit(2)
    # The embedded parties log what they refuse (a forged silent call, say); in a scenario run that is
    # evidence for the journal, not news for the terminal, so only errors reach stderr unless -v.
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Against a target, the simulators listen where the target was told they are: the serve ports
    # (8001-8004), or TAHSEEL_PORT_<PARTY> when those are taken.
    ports = {n: int(os.environ.get(f"TAHSEEL_PORT_{n.upper()}", DEFAULT_PORTS[n]))
             for n in PARTY_ORDER if n != "reference"} if target else None
    with Stack(target=target, ports=ports) as stack:
        if target:
            click.echo("simulators for the target: " + json.dumps(
                {k: v for k, v in stack.urls.items() if k != "reference"}), err=True)
        runner = Runner(stack.urls, stack.settings, target=target, verbose=verbose)
        try:
            return runner.run(scenarios)
        finally:
            runner.close()


@main.command("run")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--target", help="URL of another collection service to test instead of the embedded reference.")
@click.option("--junit", "junit_path", type=click.Path(), help="Write a JUnit XML report here.")
@click.option("--json", "json_path", type=click.Path(), help="Write the JSON result here.")
@click.option("--tags", help="Only scenarios with one of these tags (comma-separated).")
@click.option("--skip-tags", help="Leave out scenarios with one of these tags.")
@click.option("-v", "--verbose", is_flag=True, help="Keep each step's request and response in the results.")
def run_cmd(paths: tuple[str, ...], target: str | None, junit_path: str | None, json_path: str | None,
            tags: str | None, skip_tags: str | None, verbose: bool) -> None:
    """Start everything on free loopback ports, run the scenarios, print the table.

    PATHS are scenario files or folders (searched for *.yaml, skipping stages/); default scenarios/.
    With --target, the simulators listen on 8001-8004 (or TAHSEEL_PORT_<PARTY>) for that service.
    Exits 0 only if every scenario passed, 1 if any failed, 2 if a scenario file is invalid.
    """
    result = _execute(paths, target, tags, skip_tags, verbose)
    click.echo(table(result))
    write(result, junit_path=junit_path, json_path=json_path)
    sys.exit(0 if result.ok else 1)


@main.command("certify")
@click.option("--target", required=True, help="URL of the collection service to certify.")
@click.option("--report-dir", default="reports/certification", show_default=True, type=click.Path(),
              help="Where junit.xml and result.json are written.")
@click.argument("paths", nargs=-1, type=click.Path())
def certify_cmd(target: str, report_dir: str, paths: tuple[str, ...]) -> None:
    """Run the scenario suite against TARGET and report per protocol obligation.

    The simulators listen on 8001-8004 (or TAHSEEL_PORT_<PARTY>) with the shipped test secrets;
    point the target at them first. PATHS as for `run` (default scenarios/). Exits 0 only when
    every obligation passed.
    """
    result = _execute(paths, target, None, None, False)
    per: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for s in result.scenarios:
        for ob in s.obligations:
            per[ob][s.status].append(s.name)
    rows = []
    for ob in sorted(per):
        statuses = per[ob]
        verdict = ("FAILED" if statuses[FAILED] or statuses[ERROR] else
                   "PASSED" if statuses[PASSED] else "SKIPPED")
        failing = "; ".join(statuses[FAILED] + statuses[ERROR])
        rows.append([ob, verdict, len(statuses[PASSED]), len(statuses[FAILED]) + len(statuses[ERROR]),
                     len(statuses[SKIPPED]), failing])
    click.echo(table(result))
    click.echo("\n" + tabulate(rows, headers=["obligation", "verdict", "passed", "failed", "skipped", "failing"],
                               tablefmt="github"))
    verdict = "CERTIFIED" if result.ok else "NOT CERTIFIED"
    click.echo(f"\nverdict: {verdict} ({target})")
    out = Path(report_dir)
    write(result, junit_path=str(out / "junit.xml"), json_path=str(out / "result.json"))
    sys.exit(0 if result.ok else 1)


@main.command("load")
@click.option("--users", default=20, show_default=True, help="Concurrent simulated outlets.")
@click.option("--spawn-rate", default=10, show_default=True, help="Users started per second.")
@click.option("--run-time", default="30s", show_default=True, help="How long the load runs (Locust syntax: 30s, 2m).")
@click.option("--locustfile", default=None, help="Locustfile to run [default: loadtests/locustfile_cash.py].")
@click.option("--no-serve", is_flag=True,
              help="Use parties already running at TAHSEEL_URL_<PARTY> (default http://127.0.0.1:800x).")
def load_cmd(users: int, spawn_rate: int, run_time: str, locustfile: str | None, no_serve: bool) -> None:
    """Load-test the cash path headless with Locust against `tahseel serve` (started and stopped here)."""
    locustfile = locustfile or str(REPO_ROOT / "loadtests" / "locustfile_cash.py")
    serve_proc = None
    env = dict(os.environ)
    if not no_serve:
        serve_proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "serve", "--json",
                                       "--data-dir", ".tahseel/load"], stdout=subprocess.PIPE, text=True)
        line = serve_proc.stdout.readline() if serve_proc.stdout else ""
        if not line.strip().startswith("{"):
            serve_proc.terminate()
            click.echo("tahseel load: serve did not start", err=True)
            sys.exit(1)
        urls = json.loads(line)
        env.update({f"TAHSEEL_URL_{k.upper()}": v for k, v in urls.items()})
    host = env.get("TAHSEEL_URL_REFERENCE", "http://127.0.0.1:8000")
    try:
        code = subprocess.call([sys.executable, "-m", "locust", "-f", locustfile, "--headless", "-u", str(users),
                                "-r", str(spawn_rate), "--run-time", run_time, "--host", host,
                                "--only-summary"], env=env)
    finally:
        if serve_proc is not None:
            serve_proc.send_signal(signal.SIGTERM)
            serve_proc.wait(timeout=30)
    sys.exit(code)


@main.command("clock")
@click.argument("action", type=click.Choice(["show", "set", "advance"]), default="show")
@click.argument("when", required=False)
def clock_cmd(action: str, when: str | None) -> None:
    """Show or move the ONE simulated clock of parties started by `tahseel serve`.

    Every party keeps its own clock, and signed calls between them are checked against a 5-minute
    window: moving one party's clock alone makes its messages look expired to the others. This moves
    them all together, running due work in time order on the way (as scenarios do):
    `tahseel clock set 2026-12-07T10:00:00+02:00`, `tahseel clock advance "2 business days"`,
    `tahseel clock advance 2026-12-09T18:30:00+02:00`, `tahseel clock advance 2h`. The parties are
    found at TAHSEEL_URL_<PARTY> (default http://127.0.0.1:800x, as `serve` starts them).
    """
    from simulators.common.calendar import BusinessCalendar
    from simulators.common.clock import parse_instant
    from simulators.common.config import load_settings

    from .parties import Parties, PartyError, SharedClock

    settings = load_settings()
    urls = {party: str(settings["urls"][party]) for party in PARTY_ORDER if party in settings.get("urls", {})}
    parties = Parties(urls)
    clock = SharedClock(parties, list(urls), BusinessCalendar.from_config(settings.get("calendar")))
    try:
        if action != "show":
            if not when:
                raise click.UsageError(f"tahseel clock {action} needs WHEN (an ISO time, '2h', '2 business days')")
            try:
                target = parse_instant(when) if action == "set" else clock.target_for(when)
            except ValueError as exc:
                raise click.UsageError(f"WHEN {when!r}: {exc}") from None
            if action == "set":
                clock.set(target)
            else:
                clock.advance_to(target)
        rows = []
        for party in urls:
            state = parties.admin(party, "GET", "/clock")
            rows.append([party, state.get("now"), state.get("simulated"), state.get("next_due")])
        click.echo(tabulate(rows, headers=["party", "now", "simulated", "next due"]))
    except (PartyError, ValueError) as exc:
        click.echo(f"tahseel clock: {exc}", err=True)
        sys.exit(1)
    finally:
        parties.close()


if __name__ == "__main__":
    main()
