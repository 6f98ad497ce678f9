"""The daily report: collections by channel, service, revenue pool and budget chapter (L2, L3, E5)."""

from __future__ import annotations

import pytest


@pytest.fixture
def two_payments(ref, citizen_services, card_gateway, service_request):
    """Two building-permit renewals on Monday 2026-12-07: one in cash, one by card (e-finance)."""
    citizen_services.requests["SR-01-00000002"] = service_request("SR-01-00000002")
    cash = ref.create_order()
    ref.khales_payment(cash)
    card = ref.create_order("SR-01-00000002")
    opened = ref.open_card(card)
    card_gateway.approve(opened, "TX000000000009")
    answer = ref.silent_call(card_gateway.silent_call_form(opened, TransactionNumber="TX000000000009"))
    assert answer.headers["Response_Code"] == "000", answer.get_json()
    return cash, card


def test_daily_report_sums_by_revenue_pool_and_budget_chapter(ref, two_payments):
    report = ref.client.get("/api/reports/daily?date=2026-12-07").get_json()

    assert report["total"] == {"count": 2, "amount": "1710.00"}
    [cairo] = report["governorates"]
    assert cairo["governorate_code"] == "01" and cairo["governorate_name_ar"] == "القاهرة"
    collections = cairo["collections"]
    assert {k: v["amount"] for k, v in collections["by_channel"].items()} == {"card": "855.00", "cash": "855.00"}
    assert collections["by_service"]["BPR"]["count"] == 2
    assert {k: (v["count"], v["amount"]) for k, v in collections["by_revenue_pool"].items()} == {
        "BLD": (4, "1500.00"), "VAT": (2, "210.00")}  # two BLD lines per payment
    assert collections["by_revenue_pool"]["VAT"]["name_ar"] == "ضريبة القيمة المضافة"
    assert {k: v["amount"] for k, v in collections["by_budget_chapter"].items()} == {"1": "210.00",
                                                                                    "3": "1500.00"}
    assert cairo["settlement"]["status"] == "PENDING"
    assert cairo["settlement"]["expected_value_date"] == "2026-12-09"


def test_daily_report_as_csv_with_arabic_labels(ref, two_payments):
    plain = ref.client.get("/api/reports/daily?date=2026-12-07&format=csv")
    with_bom = ref.client.get("/api/reports/daily?date=2026-12-07&format=csv&bom=1")

    assert plain.status_code == 200 and plain.content_type.startswith("text/csv")
    text = plain.get_data().decode("utf-8")
    assert text.startswith("كود المحافظة,المحافظة")
    assert "حسب وعاء الإيراد,BLD,رسوم التراخيص والبناء,4,1500.00" in text
    assert with_bom.get_data().startswith("\ufeff".encode())


def test_report_needs_a_valid_date(ref):
    for query in ("", "?date=07-12-2026", "?date=2026-02-30"):
        response = ref.client.get(f"/api/reports/daily{query}")
        assert response.status_code == 400 and response.get_json()["error"]["field"] == "date"


def test_report_for_one_governorate_without_collections(ref):
    report = ref.client.get("/api/reports/daily?date=2026-12-07&governorate_code=02").get_json()

    [alexandria] = report["governorates"]
    assert alexandria["collections"]["count"] == 0 and alexandria["settlement"]["status"] == "PENDING"


def test_a_governorate_outside_the_catalog_or_a_bad_bom_flag_is_refused(ref):
    # A breaker's cases: governorate 99 got a made-up report; bom=2 was silently ignored.
    unknown = ref.client.get("/api/reports/daily?date=2026-12-07&governorate_code=99")
    bad_bom = ref.client.get("/api/reports/daily?date=2026-12-07&format=csv&bom=2")
    assert (unknown.status_code, unknown.get_json()["error"]["field"]) == (400, "governorate_code")
    assert (bad_bom.status_code, bad_bom.get_json()["error"]["field"]) == (400, "bom")
    assert ref.client.get("/api/reports/daily?date=2026-12-07&governorate_code=31").status_code == 200
