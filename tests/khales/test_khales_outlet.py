"""Khales simulator without a biller: outlets, input checks, the transaction log."""

from __future__ import annotations

import re

from simulators.common.config import load_settings
from simulators.common.egypt import GOVERNORATES


def test_outlets_are_generated_per_governorate_and_reproducibly(khales_factory):
    client = khales_factory()
    outlets = client.get("/api/outlets").get_json()["outlets"]
    catalog = load_settings()["catalog"]["governorates"]
    assert len(outlets) == 3 * len(catalog)  # three outlets in each of the catalog's governorates
    assert [o["outlet_id"] for o in outlets[:3]] == ["KH-01-0001", "KH-01-0002", "KH-01-0003"]
    for outlet in outlets:
        assert re.fullmatch(r"KH-\d{2}-\d{4}", outlet["outlet_id"])
        assert re.fullmatch(r"T\d{8}", outlet["terminal_id"])
        assert re.search(r"[\u0600-\u06FF]", outlet["name_ar"])
        assert outlet["outlet_id"][3:5] == outlet["governorate_code"]
        assert set(outlet["opening_hours"]) == {"opens", "closes"}
    giza = client.get("/api/outlets?governorate_code=21").get_json()["outlets"]
    assert [o["governorate_code"] for o in giza] == ["21"] * 3
    assert {o["local_unit"] for o in giza} <= {u["code"] for u in catalog["21"].get("local_units") or []} | {None}
    assert khales_factory().get("/api/outlets").get_json()["outlets"] == outlets
    assert client.post("/_admin/reset").status_code == 200
    assert client.get("/api/outlets").get_json()["outlets"] == outlets
    without = sorted(set(GOVERNORATES) - set(catalog))  # a governorate the catalog has no fees for
    if without:
        assert client.get(f"/api/outlets?governorate_code={without[0]}").get_json()["outlets"] == []
    unknown = client.get("/api/outlets?governorate_code=99")
    assert (unknown.status_code, unknown.get_json()["error"]["field"]) == (422, "governorate_code")


def test_outlet_count_and_seed_are_configuration(khales_factory):
    five = khales_factory({"khales": {"outlets_per_governorate": 5}})
    assert len(five.get("/api/outlets?governorate_code=02").get_json()["outlets"]) == 5
    default = khales_factory().get("/api/outlets").get_json()["outlets"]
    reseeded = khales_factory({"khales": {"seed": 7}}).get("/api/outlets").get_json()["outlets"]
    assert [o["outlet_id"] for o in reseeded] == [o["outlet_id"] for o in default]
    assert [o["terminal_id"] for o in reseeded] != [o["terminal_id"] for o in default]


def test_bad_outlet_payments_are_refused_and_create_nothing(khales_factory):
    client = khales_factory()
    cases = [
        ({}, 422, "VALIDATION_FAILED", "bill_reference"),
        ({"bill_reference": "123"}, 422, "VALIDATION_FAILED", "bill_reference"),
        ({"bill_reference": "100000000017", "amount": "-1.00"}, 422, "VALIDATION_FAILED", "amount"),
        ({"bill_reference": "100000000017", "amount": 360}, 422, "VALIDATION_FAILED", "amount"),
        ({"bill_reference": "100000000017", "amount": "0.00"}, 422, "INVALID_AMOUNT", "amount"),
        ({"bill_reference": "100000000017", "outlet_id": "KH-99-0001"}, 404, "UNKNOWN_OUTLET", "outlet_id"),
        ({"bill_reference": "100000000017", "tip": "1.00"}, 422, "VALIDATION_FAILED", "tip"),
    ]
    for body, status, code, field in cases:
        response = client.post("/api/outlet-payments", json=body)
        assert response.status_code == status, body
        assert response.get_json()["error"]["code"] == code, body
        assert response.get_json()["error"]["field"] == field, body
    malformed = client.post("/api/outlet-payments", data=b"[1,", content_type="application/json")
    assert (malformed.status_code, malformed.get_json()["error"]["code"]) == (400, "MALFORMED_BODY")
    assert client.get("/api/transactions").get_json()["transactions"] == []
    assert client.get("/_admin/journal?direction=out").get_json()["entries"] == []


def test_biller_down_fails_the_transaction_without_paying(khales_factory, fault):
    client = khales_factory()
    fault(client, kind="down", direction="out", target="reference")
    response = client.post("/api/outlet-payments", json={"bill_reference": "100000000017"})
    assert response.status_code == 201
    tx = response.get_json()
    assert tx["status"] == "FAILED"
    assert tx["error"]["code"] == "BILLER_UNREACHABLE"
    assert (tx["attempts"], tx["amount"], tx["receipt"]) == (0, None, None)
    assert tx["outlet_id"] == "KH-01-0001"  # the first outlet when none is named
    assert re.fullmatch(r"KHT\d{12}", tx["transaction_id"])
    assert client.get("/_admin/scheduled").get_json()["tasks"] == []


def test_transaction_lookups(khales_factory, fault):
    client = khales_factory()
    fault(client, kind="down", direction="out", target="reference")
    tx = client.post("/api/outlet-payments", json={"bill_reference": "100000000017",
                                                   "transaction_id": "KHT000000000001"}).get_json()
    assert client.get("/api/transactions/KHT000000000001").get_json() == tx
    missing = client.get("/api/transactions/KHT999999999999")
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "UNKNOWN_TRANSACTION")
    # 10:00 Cairo on 1 March is the Cairo business date 2026-03-01.
    assert tx["business_date"] == "2026-03-01"
    listed = client.get("/api/transactions?business_date=2026-03-01").get_json()["transactions"]
    assert [t["transaction_id"] for t in listed] == ["KHT000000000001"]
    assert client.get("/api/transactions?business_date=2026-03-02").get_json()["transactions"] == []
    bad = client.get("/api/transactions?business_date=1-3-2026")
    assert (bad.status_code, bad.get_json()["error"]["field"]) == (422, "business_date")


def test_business_date_is_the_cairo_date(khales_factory, fault):
    client = khales_factory()
    # 23:30 UTC on 1 March is already 01:30 on 2 March in Cairo (UTC+2 in winter).
    client.post("/_admin/clock", json={"set": "2026-03-01T23:30:00Z"})
    fault(client, kind="down", direction="out", target="reference")
    tx = client.post("/api/outlet-payments", json={"bill_reference": "100000000017"}).get_json()
    assert tx["business_date"] == "2026-03-02"
