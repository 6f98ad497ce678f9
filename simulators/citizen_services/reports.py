"""The performance report of the citizen services (obligation P4): per governorate and service, over
a range of Cairo dates, how many requests were submitted, how many are paid, the success rate and
the time from submission to the payment's confirmation. JSON (``contracts/cs-performance-report``)
and CSV (UTF-8, Arabic names, a byte-order mark on request for spreadsheet programs).

The cohort is the requests *submitted* on the dates of the range (Cairo), in the state they are in
now: a request submitted on the last day and paid a day later counts as paid. No float anywhere:
rates are integer arithmetic, rounded half-up to a hundredth of a percent; times are whole seconds.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from simulators.common.clock import cairo, iso

if TYPE_CHECKING:
    from .models import ServiceRequest

PAID_STATUSES = ("PAID", "IN_PROGRESS", "COMPLETED")
COUNTED = (("awaiting_payment", "ASSESSED"), ("in_progress", "IN_PROGRESS"), ("completed", "COMPLETED"),
           ("cancelled", "CANCELLED"), ("expired", "EXPIRED"))
CSV_COLUMNS = ["governorate_code", "governorate_name_ar", "governorate_name_en", "service_code", "service_name_ar",
               "service_name_en", "requests", "paid", "awaiting_payment", "in_progress", "completed", "cancelled",
               "expired", "success_rate_percent", "time_to_pay_median_seconds", "time_to_pay_average_seconds"]
TOTAL_AR, TOTAL_EN = "الإجمالي", "Total"


def performance(requests: Iterable[ServiceRequest], *, start: date, end: date, governorate_code: str | None,
                now: datetime) -> dict[str, Any]:
    """The report over the requests submitted from ``start`` to ``end`` (Cairo dates, both included)."""
    groups: dict[tuple[str, str], list[ServiceRequest]] = {}
    for request in requests:
        if governorate_code is not None and request.governorate_code != governorate_code:
            continue
        if start <= cairo(request.created).date() <= end:
            groups.setdefault((request.governorate_code, request.service_code), []).append(request)
    rows = []
    for (gov, service), members in sorted(groups.items()):
        first = members[0]
        rows.append({"governorate_code": gov, "governorate_name_ar": first.governorate_name_ar,
                     "governorate_name_en": first.governorate_name_en, "service_code": service,
                     "service_name_ar": first.service_name_ar, "service_name_en": first.service_name_en,
                     **_figures(members)})
    everyone = [r for members in groups.values() for r in members]
    return {"from": start.isoformat(), "to": end.isoformat(), "governorate_code": governorate_code,
            "generated_at": iso(now), "time_zone": "Africa/Cairo", "rows": rows, "totals": _figures(everyone)}


def _figures(members: list[ServiceRequest]) -> dict[str, Any]:
    paid = [r for r in members if r.status in PAID_STATUSES]
    out: dict[str, Any] = {"requests": len(members), "paid": len(paid)}
    for name, status in COUNTED:
        out[name] = sum(1 for r in members if r.status == status)
    out["success_rate_percent"] = _percent(len(paid), len(members))
    millis = sorted(_millis(r.confirmed - r.created) for r in paid if r.confirmed is not None)
    if millis:
        middle = len(millis) // 2
        median = millis[middle] if len(millis) % 2 else (millis[middle - 1] + millis[middle]) // 2
        out["time_to_pay_seconds"] = {"median": _seconds(median), "average": _seconds(sum(millis) // len(millis))}
    else:
        out["time_to_pay_seconds"] = {"median": None, "average": None}
    return out


def _percent(part: int, whole: int) -> str | None:
    """``part / whole`` as a percentage with two decimals, half-up (``"66.67"``); ``None`` for no requests."""
    if whole == 0:
        return None
    hundredths = (part * 10_000 * 2 + whole) // (2 * whole)
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def _millis(delta: Any) -> int:
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def _seconds(millis: int) -> int:
    return (millis + 500) // 1000


def to_csv(report: dict[str, Any], *, bom: bool = False) -> bytes:
    """One line per governorate and service, then a total line; UTF-8, CRLF, a BOM when asked."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in report["rows"]:
        writer.writerow(_flat(row))
    writer.writerow(_flat({"governorate_code": "", "governorate_name_ar": TOTAL_AR, "governorate_name_en": TOTAL_EN,
                           "service_code": "", "service_name_ar": "", "service_name_en": "", **report["totals"]}))
    return (b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8")


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "time_to_pay_seconds"}
    times = row.get("time_to_pay_seconds") or {}
    out["time_to_pay_median_seconds"] = times.get("median")
    out["time_to_pay_average_seconds"] = times.get("average")
    return {k: "" if out.get(k) is None else out[k] for k in CSV_COLUMNS}
