"""Khales' end-of-day file: its lines, CSV read back byte for byte (Arabic names, with and without a
byte-order mark), JSON, the signed delivery to settlement on the simulated clock, and its faults.

Khales talks to the fake biller; "settlement" is a recording receiver on loopback, so what was
delivered can be compared with what is served, byte for byte.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from simulators.common.clock import parse_instant
from simulators.common.config import load_settings
from simulators.common.contracts import problems
from simulators.common.signing import verify

DAY = "2026-03-01"  # Sunday, the fixtures' day (clock 10:00 Cairo = 08:00Z)
FILE = f"/api/end-of-day/{DAY}"
HEADER = ("line,business_date,record_type,transaction_id,visit_id,biller,bill_reference,status,bill_status,amount,"
          "collection_fee,cash_amount,currency,outlet_id,outlet_name_ar,terminal_id,outlet_governorate_code,"
          "governorate_code,service_code,payer_name,time_cairo,reversal_id,receipt_number,collection_id")
PAYER = "منى علي حسن"  # the fake biller's payer


@pytest.fixture
def eod(khales_factory, fake_biller, receiver):
    """Khales with the fake biller and a recording receiver as settlement."""
    return khales_factory({"urls": {"reference": fake_biller.url, "settlement": receiver.url},
                           "khales": {"biller_timeout_seconds": 2}})


def secret() -> str:
    return load_settings()["secrets"]["collections_feed"]


def a_day_of_payments(client, bills, fault):
    """A payment, a visit, and a payment whose answer is always lost (so it is reversed)."""
    single = client.post("/api/outlet-payments", json={"bill_reference": bills.unpaid,
                                                        "outlet_id": "KH-21-0002"}).get_json()
    visit = client.post("/api/outlet-visits", json={"outlet_id": "KH-01-0003", "visit_id": "KHV-EOD",
                                                    "bills": [{"bill_reference": bills.big}]}).get_json()
    fault(client, kind="drop_response", direction="out", target="reference", endpoint="/khales/payments", count=3)
    reversed_ = client.post("/api/outlet-payments", json={"bill_reference": bills.parts, "amount": "100.00",
                                                          "outlet_id": "KH-21-0002"}).get_json()
    assert (single["status"], visit["status"], reversed_["status"]) == ("PAID", "COMPLETED", "REVERSED")
    return single, visit["transactions"][0], reversed_


def outlet(client, outlet_id):
    return next(o for o in client.get("/api/outlets").get_json()["outlets"] if o["outlet_id"] == outlet_id)


def test_the_file_reads_back_byte_for_byte_with_arabic_names_with_and_without_a_bom(eod, bills, fault, receiver):
    single, in_visit, reversed_ = a_day_of_payments(eod, bills, fault)
    shop, kiosk = outlet(eod, "KH-21-0002"), outlet(eod, "KH-01-0003")
    assert eod.get(FILE).headers["X-Khales-File-State"] == "preview"
    assert eod.post("/_admin/clock", json={"set": "2026-03-02T00:15:00+02:00"}).status_code == 200  # file made
    plain = eod.get(FILE)
    excel = eod.get(FILE + "?excel=1")

    def line(n, tx, shop_, record, status, bill_status, amount, reversal="", receipt="", collection=""):
        return ",".join([str(n), DAY, record, tx["transaction_id"], tx["visit_id"] or "", "collection_service",
                         tx["bill_reference"], status, bill_status, amount, "0.00", amount, "EGP",
                         shop_["outlet_id"], shop_["name_ar"],
                         shop_["terminal_id"], shop_["governorate_code"], tx["inquiry"]["governorate_code"],
                         tx["inquiry"]["service_code"], PAYER, "2026-03-01T10:00:00+02:00", reversal, receipt,
                         collection])

    expected = "\r\n".join([
        HEADER,
        line(1, single, shop, "payment", "PAID", "PAID", "360.00", receipt=single["receipt"]["receipt_number"],
             collection=f"khales:{single['transaction_id']}"),
        line(2, in_visit, kiosk, "payment", "PAID", "PAID", "922.00", receipt=in_visit["receipt"]["receipt_number"],
             collection=f"khales:{in_visit['transaction_id']}"),
        line(3, reversed_, shop, "payment", "REVERSED", "", "100.00"),
        line(4, reversed_, shop, "reversal", "REVERSED", "", "-100.00", reversal=reversed_["reversal"]["reversal_id"]),
    ]) + "\r\n"
    assert plain.status_code == 200 and plain.headers["X-Khales-File-State"] == "final"
    assert plain.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert plain.headers["Content-Disposition"] == f'attachment; filename="khales-end-of-day-{DAY}.csv"'
    assert plain.data == expected.encode("utf-8")  # byte for byte, Arabic as UTF-8, \r\n line ends
    assert excel.data == b"\xef\xbb\xbf" + plain.data  # the same bytes behind a byte-order mark
    assert excel.data.decode("utf-8-sig") == plain.data.decode("utf-8") == expected
    for response in (plain, excel):  # each download is signed over exactly its own bytes
        verify(secret(), response.headers, response.data, parse_instant("2026-03-02T00:15:00+02:00"))
    rows = list(csv.DictReader(io.StringIO(excel.data.decode("utf-8-sig"), newline="")))
    assert [r["outlet_name_ar"] for r in rows] == [shop["name_ar"], kiosk["name_ar"], shop["name_ar"], shop["name_ar"]]
    assert {r["payer_name"] for r in rows} == {PAYER}
    # What settlement received is the very same file.
    [delivered] = receiver.on("/api/khales-files")
    verify(secret(), delivered["headers"], delivered["body"], parse_instant("2026-03-02T00:15:00+02:00"))
    body = json.loads(delivered["body"])
    assert problems("kh-end-of-day-delivery.schema.json", body) == []
    assert body["content"].encode("utf-8") == plain.data
    assert (body["file_id"], body["business_date"], body["line_count"], body["net_amount"]) == (
        "KH-EOD-20260301", DAY, 4, "1282.00")


def test_the_json_form_keeps_its_contract(eod, bills, fault):
    a_day_of_payments(eod, bills, fault)
    preview = eod.get(FILE + "?format=json").get_json()
    assert problems("kh-end-of-day-file.schema.json", preview) == []
    assert (preview["state"], preview["line_count"], preview["net_amount"]) == ("preview", 4, "1282.00")
    assert [(r["record_type"], r["amount"], r["status"]) for r in preview["lines"]] == [
        ("payment", "360.00", "PAID"), ("payment", "922.00", "PAID"), ("payment", "100.00", "REVERSED"),
        ("reversal", "-100.00", "REVERSED")]
    assert preview["lines"][1]["visit_id"] == "KHV-EOD"


def test_the_file_of_a_day_is_fixed_when_made(eod, bills, receiver, fake_biller):
    eod.post("/api/outlet-payments", json={"bill_reference": bills.unpaid})
    eod.post("/_admin/clock", json={"set": "2026-03-02T00:15:00+02:00"})
    made = eod.get(FILE).data
    fake_biller.component.clock.set(parse_instant("2026-03-02T00:15:00+02:00"))  # its signature window
    monday = eod.post("/api/outlet-payments", json={"bill_reference": bills.big}).get_json()
    assert monday["status"] == "PAID"  # Monday's: not in Sunday's file
    assert eod.get(FILE).data == made
    assert len(eod.get("/api/end-of-day/2026-03-02?format=json").get_json()["lines"]) == 1
    [summary] = eod.get("/api/end-of-day").get_json()["files"]
    assert (summary["business_date"], summary["line_count"], summary["delivery"]["state"]) == (DAY, 1, "delivered")
    assert len(receiver.on("/api/khales-files")) == 1


def test_a_day_without_cash_moved_has_no_file(eod, bills, receiver):
    refused = eod.post("/api/outlet-payments", json={"bill_reference": bills.paid}).get_json()
    assert refused["status"] == "REFUSED"
    eod.post("/_admin/clock", json={"set": "2026-03-03T00:00:00+02:00"})
    assert receiver.on("/api/khales-files") == []
    assert eod.get("/api/end-of-day").get_json()["files"] == []
    assert eod.get(FILE + "?format=json").get_json()["lines"] == []


def test_the_delivery_is_retried_with_the_same_body_until_settlement_takes_it(eod, bills, receiver):
    eod.post("/api/outlet-payments", json={"bill_reference": bills.unpaid})
    eod.post("/_admin/tick")  # the collections feed goes first
    assert len(receiver.on("/api/collections")) == 1
    receiver.answer_next(503, 500)
    eod.post("/_admin/clock", json={"set": "2026-03-02T00:15:00+02:00"})
    eod.post("/_admin/clock", json={"advance": "60s"})
    [summary] = eod.get("/api/end-of-day").get_json()["files"]
    assert summary["delivery"]["state"] == "pending"
    assert summary["delivery"]["next_attempt_at"] == "2026-03-01T22:21:00.000Z"  # then 300 s
    eod.post("/_admin/clock", json={"advance": "300s"})
    attempts = receiver.on("/api/khales-files")
    assert len(attempts) == 3 and len({json.loads(a["body"])["content"] for a in attempts}) == 1
    [summary] = eod.get("/api/end-of-day").get_json()["files"]
    assert [a["outcome"] for a in summary["delivery"]["attempts"]] == ["http_503", "http_500", "delivered"]


def test_late_missing_and_corrupted_files(eod, bills, fault, receiver, fake_biller):
    fault(eod, kind="end_of_day_late", direction="domain", match={"business_date": DAY}, params={"after": "2h"})
    eod.post("/api/outlet-payments", json={"bill_reference": bills.unpaid})
    eod.post("/_admin/clock", json={"set": "2026-03-02T02:14:59+02:00"})
    assert receiver.on("/api/khales-files") == []
    eod.post("/_admin/clock", json={"set": "2026-03-02T02:15:00+02:00"})
    assert len(receiver.on("/api/khales-files")) == 1

    fault(eod, kind="end_of_day_missing", direction="domain", match={"business_date": "2026-03-02"})
    fake_biller.component.clock.set(parse_instant("2026-03-02T10:00:00+02:00"))
    eod.post("/_admin/clock", json={"set": "2026-03-02T10:00:00+02:00"})
    assert eod.post("/api/outlet-payments", json={"bill_reference": bills.big}).get_json()["status"] == "PAID"
    eod.post("/_admin/clock", json={"set": "2026-03-04T00:00:00+02:00"})
    assert len(receiver.on("/api/khales-files")) == 1  # Monday's never went
    monday = eod.get("/api/end-of-day").get_json()["files"][1]
    assert (monday["business_date"], monday["delivery"], monday["faults"][0]["kind"]) == (
        "2026-03-02", None, "end_of_day_missing")

    fault(eod, kind="end_of_day_corrupted", direction="domain", params={"line": 2})
    fake_biller.component.clock.set(parse_instant("2026-03-04T10:00:00+02:00"))
    eod.post("/_admin/clock", json={"set": "2026-03-04T10:00:00+02:00"})
    for amount in ("10.00", "20.00"):
        part = eod.post("/api/outlet-payments", json={"bill_reference": bills.parts, "amount": amount}).get_json()
        assert part["bill_status"] == "PARTIALLY_PAID"
    eod.post("/_admin/clock", json={"set": "2026-03-05T00:15:00+02:00"})
    delivered = json.loads(receiver.on("/api/khales-files")[-1]["body"])
    served = eod.get("/api/end-of-day/2026-03-04").data.decode("utf-8")
    sent_lines, served_lines = delivered["content"].split("\r\n"), served.split("\r\n")
    assert sent_lines[0] == served_lines[0] and sent_lines[1] == served_lines[1]  # header and line 1 whole
    assert sent_lines[2] != served_lines[2] and served_lines[2].startswith(sent_lines[2])  # line 2 cut short
    assert delivered["line_count"] == 2


@pytest.mark.parametrize(("spec", "field"), [
    ({"kind": "end_of_day_late"}, "params.after"),
    ({"kind": "end_of_day_late", "params": {"after": "0s"}}, "params.after"),
    ({"kind": "end_of_day_late", "params": {"after": "soon"}}, "params.after"),
    ({"kind": "end_of_day_missing", "params": {"after": "1h"}}, "params.after"),
    ({"kind": "end_of_day_corrupted", "params": {"line": 0}}, "params.line"),
    ({"kind": "end_of_day_corrupted", "match": {"outlet_id": "KH-01-0001"}}, "match.outlet_id"),
    ({"kind": "end_of_day_missing", "match": {"business_date": "2026-02-30"}}, "match.business_date"),
    ({"kind": "end_of_day_missing", "endpoint": "/api/khales-files"}, "endpoint"),
    ({"kind": "duplicate_payment", "params": {"same_moment": "yes"}}, "params.same_moment"),
    ({"kind": "duplicate_payment", "params": {"after": "1h"}}, "params.after"),
    ({"kind": "reversal_before_payment", "target": "reference"}, "target"),
    ({"kind": "reversal_before_payment", "match": {"business_date": DAY}}, "match.business_date"),
])
def test_a_fault_khales_could_not_apply_is_refused_naming_the_field(khales_factory, spec, field):
    client = khales_factory()
    response = client.post("/_admin/faults", json=dict(spec, direction="domain"))
    assert (response.status_code, response.get_json()["error"]["field"]) == (422, field)
    assert client.get("/_admin/faults").get_json()["faults"] == []


def test_bad_file_queries_are_refused_naming_the_parameter(khales_factory):
    client = khales_factory()
    for path, status, field in (("/api/end-of-day/2026-3-01", 422, "date"), ("/api/end-of-day/2026-02-30", 422, "date"),
                                (FILE + "?format=xml", 400, "format"), (FILE + "?excel=2", 400, "excel"),
                                (FILE + "?bom=yes", 400, "bom")):
        response = client.get(path)
        assert (response.status_code, response.get_json()["error"]["field"]) == (status, field), path
    assert "end_of_day_late" in client.get("/_admin/faults").get_json()["domain_kinds"]
