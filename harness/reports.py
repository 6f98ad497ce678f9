"""Render the one result model: terminal table (tabulate), JUnit XML and JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from tabulate import tabulate

from .results import ERROR, FAILED, SKIPPED, RunResult

SHOWN_JOURNAL_ENTRIES = 12


def table(result: RunResult) -> str:
    rows = []
    for s in result.scenarios:
        rows.append([s.name, ",".join(s.tags), s.status.upper(), len(s.steps), f"{s.duration_ms / 1000:.2f}s",
                     ",".join(s.obligations)])
    text = tabulate(rows, headers=["scenario", "tags", "result", "steps", "time", "obligations"],
                    tablefmt="github")
    failures = []
    for s in result.scenarios:
        if s.status in (FAILED, ERROR):
            failures.append(f"\n✗ {s.name}  ({s.file})\n  {s.message}")
            step = s.failed_step
            if step is not None:
                if step.expected is not None or step.actual is not None:
                    failures.append(f"  expected: {step.expected!r}\n  actual:   {step.actual!r}")
                journal = [ev for ev in step.evidence if "party" in ev and "path" in ev]
                for ev in journal[:SHOWN_JOURNAL_ENTRIES]:
                    failures.append(f"  journal {ev['party']} #{ev['id']} {ev['at']} {ev['direction']} "
                                    f"{ev['method']} {ev['path']} -> {ev['status']} {ev['outcome']}")
                if len(journal) > SHOWN_JOURNAL_ENTRIES:
                    failures.append(f"  … {len(journal) - SHOWN_JOURNAL_ENTRIES} more journal entries in the JSON "
                                    "report (--json)")
        elif s.status == SKIPPED:
            failures.append(f"\n- skipped {s.name}: {s.message}")
    c = result.counts
    summary = (f"\n{c['passed']} passed, {c['failed']} failed, {c['error']} errors, {c['skipped']} skipped "
               f"in {result.duration_ms / 1000:.1f}s against {result.target}")
    return "\n".join([text, *failures, summary])


def junit(result: RunResult) -> str:
    c = result.counts
    suite = ET.Element("testsuite", name="tahseel", tests=str(len(result.scenarios)), failures=str(c[FAILED]),
                       errors=str(c[ERROR]), skipped=str(c[SKIPPED]), time=f"{result.duration_ms / 1000:.3f}",
                       timestamp=result.started_at)
    for s in result.scenarios:
        case = ET.SubElement(suite, "testcase", classname=Path(s.file).parent.name or "scenarios", name=s.name,
                             file=s.file, time=f"{s.duration_ms / 1000:.3f}")
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name="obligations", value=",".join(s.obligations))
        ET.SubElement(props, "property", name="tags", value=",".join(s.tags))
        if s.status in (FAILED, ERROR):
            step = s.failed_step
            element = ET.SubElement(case, "failure" if s.status == FAILED else "error", message=s.message)
            if step is not None:
                element.text = json.dumps({"expected": step.expected, "actual": step.actual,
                                           "evidence": step.evidence}, ensure_ascii=False, indent=2, default=str)
        elif s.status == SKIPPED:
            ET.SubElement(case, "skipped", message=s.message)
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def to_json(result: RunResult) -> str:
    return json.dumps(result.to_dict(), ensure_ascii=False, indent=2, default=str)


def write(result: RunResult, *, junit_path: str | None = None, json_path: str | None = None) -> None:
    for path, render in ((junit_path, junit), (json_path, to_json)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(render(result), encoding="utf-8")
