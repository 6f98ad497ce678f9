"""The performance report (P4): per governorate and service, over Cairo dates, JSON and CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from simulators.common.contracts import validate

from .test_citizen_services_api import CONFIRM, confirmation_for

REPORT = "/api/reports/performance"


def _request(client: Any, governorate: str, service: str) -> dict[str, Any]:
    response = client.post("/api/service-requests", json={"governorate_code": governorate, "service_code": service})
    assert response.status_code == 201
    return response.get_json()


def _advance(client: Any, by: str) -> None:
    assert client.post("/_admin/clock", json={"advance": by}).status_code == 200


@pytest.fixture
def activity(cs_client, signed_post) -> dict[str, Any]:
    """Sunday 1 March 2026 (Cairo): three CTC in Luxor (paid after 1 h and 3 h, one cancelled), one TUC in
    Alexandria paid after 30 min; Monday 2 March: one CTC in Luxor left unpaid."""
    luxor = [_request(cs_client, "29", "CTC") for _ in range(3)]
    alexandria = _request(cs_client, "02", "TUC")
    _advance(cs_client, "30m")
    assert signed_post(CONFIRM, confirmation_for(alexandria, "PAY-A")).status_code == 201
    _advance(cs_client, "30m")
    assert signed_post(CONFIRM, confirmation_for(luxor[0], "PAY-L0")).status_code == 201
    _advance(cs_client, "2h")
    assert signed_post(CONFIRM, confirmation_for(luxor[1], "PAY-L1")).status_code == 201
    assert cs_client.post(f"/api/service-requests/{luxor[2]['request_number']}/cancel", json={}).status_code == 200
    _advance(cs_client, "1d")
    monday = _request(cs_client, "29", "CTC")
    return {"luxor": luxor, "alexandria": alexandria, "monday": monday}


def test_the_report_counts_per_governorate_and_service(cs_client, activity):
    response = cs_client.get(f"{REPORT}?from=2026-03-01&to=2026-03-01")
    assert response.status_code == 200
    report = response.get_json()
    validate("cs-performance-report.schema.json", report)
    assert (report["from"], report["to"], report["governorate_code"]) == ("2026-03-01", "2026-03-01", None)
    alexandria, luxor = report["rows"]
    assert (alexandria["governorate_code"], alexandria["service_code"]) == ("02", "TUC")
    assert (alexandria["governorate_name_ar"], alexandria["service_name_ar"]) == ("الإسكندرية", "توصيل المرافق المؤقت")
    assert (alexandria["requests"], alexandria["paid"], alexandria["success_rate_percent"]) == (1, 1, "100.00")
    assert alexandria["time_to_pay_seconds"] == {"median": 1800, "average": 1800}
    assert (luxor["governorate_code"], luxor["service_code"], luxor["governorate_name_en"]) == ("29", "CTC", "Luxor")
    assert {k: luxor[k] for k in ("requests", "paid", "awaiting_payment", "cancelled", "expired", "completed")} == {
        "requests": 3, "paid": 2, "awaiting_payment": 0, "cancelled": 1, "expired": 0, "completed": 0}
    assert luxor["success_rate_percent"] == "66.67"
    assert luxor["time_to_pay_seconds"] == {"median": 7200, "average": 7200}  # 1 h and 3 h
    totals = report["totals"]
    assert (totals["requests"], totals["paid"], totals["success_rate_percent"]) == (4, 3, "75.00")
    assert totals["time_to_pay_seconds"] == {"median": 3600, "average": 5400}
    both_days = cs_client.get(f"{REPORT}?from=2026-03-01&to=2026-03-02&governorate_code=29").get_json()
    validate("cs-performance-report.schema.json", both_days)
    [luxor_both] = both_days["rows"]
    assert (luxor_both["requests"], luxor_both["awaiting_payment"], luxor_both["success_rate_percent"]) == (
        4, 1, "50.00")
    empty = cs_client.get(f"{REPORT}?from=2026-02-01&to=2026-02-28").get_json()
    assert empty["rows"] == [] and empty["totals"]["success_rate_percent"] is None
    assert empty["totals"]["time_to_pay_seconds"] == {"median": None, "average": None}


def test_the_report_as_csv_with_arabic_names_and_an_optional_bom(cs_client, activity):
    plain = cs_client.get(f"{REPORT}?from=2026-03-01&to=2026-03-02&format=csv")
    assert plain.status_code == 200
    assert plain.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "citizen-services-performance-2026-03-01-2026-03-02.csv" in plain.headers["Content-Disposition"]
    assert not plain.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(plain.data.decode("utf-8"), newline="")))
    assert [(r["governorate_code"], r["service_code"], r["requests"], r["paid"]) for r in rows] == [
        ("02", "TUC", "1", "1"), ("29", "CTC", "4", "2"), ("", "", "5", "3")]
    assert rows[1]["governorate_name_ar"] == "الأقصر" and rows[1]["service_name_ar"] == "صورة طبق الأصل من ترخيص"
    assert rows[2]["governorate_name_ar"] == "الإجمالي" and rows[2]["success_rate_percent"] == "60.00"
    assert rows[1]["time_to_pay_median_seconds"] == "7200"
    with_bom = cs_client.get(f"{REPORT}?from=2026-03-01&to=2026-03-02&format=csv&bom=1")
    assert with_bom.data == b"\xef\xbb\xbf" + plain.data
    assert b"\r\n" in plain.data


@pytest.mark.parametrize(("query", "status", "field"), [
    ("to=2026-03-01", 400, "from"),
    ("from=2026-03-01", 400, "to"),
    ("from=2026-3-1&to=2026-03-01", 400, "from"),
    ("from=2026-02-30&to=2026-03-01", 400, "from"),
    ("from=2026-03-01&to=2026-02-28", 422, "to"),
    ("from=2025-01-01&to=2026-03-01", 422, "to"),
    ("from=2026-03-01&to=2026-03-01&format=xml", 400, "format"),
    ("from=2026-03-01&to=2026-03-01&format=csv&bom=yes", 400, "bom"),
    ("from=2026-03-01&to=2026-03-01&governorate_code=1", 400, "governorate_code"),
    ("from=2026-03-01&to=2026-03-01&governorate_code=99", 422, "governorate_code"),
])
def test_bad_report_queries_name_the_field(cs_client, query, status, field):
    response = cs_client.get(f"{REPORT}?{query}")
    assert response.status_code == status
    assert response.get_json()["error"]["field"] == field
