"""Settlement files and bank statements delivered to the collection service on the simulated clock (E5).

The file of business date D goes out at ``file_time`` (01:00 Cairo) on the day after D and closes D's
open batches; later lines for D make a supplementary batch and file. The bank statement of each day
with credits goes out at ``statement_time`` (18:00 Cairo). Nothing sleeps: moving ``/_admin/clock``
triggers them.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from simulators.common.clock import parse_instant
from simulators.common.config import load_settings
from simulators.common.contracts import validate
from simulators.common.errors import BadSignature, ValidationFailed
from simulators.common.signing import verify

FILES, STATEMENTS, NOTICES = "/settlement/files", "/settlement/bank-statements", "/settlement/notices"
EFINANCE = {"payment_request_number": "123456789012", "sender_request_number": "0123456789ABCDEF",
            "mechanism": "Card", "settlement_account_code": "0101001", "reconciliation_date": "2026-12-03"}


def bodies(receiver: Any, path: str) -> list[dict[str, Any]]:
    return [json.loads(r["body"]) for r in receiver.on(path)]


def csv_rows(content: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content)))


def feed_thursday(feed: Any, collection: Any) -> None:
    """Cairo 1250.50 by card through e-finance and 49.50 (+0.50 fee) cash at Khales; Giza 10.00."""
    feed.send(collection(1, **EFINANCE))
    feed.send(collection(2, amount="49.50", collection_fee="0.50", channel="cash", source="khales",
                         service_code="TUC", collected_at="2026-12-03T09:00:00Z"))
    feed.send(collection(3, governorate_code="21", amount="10.00", collected_at="2026-12-03T11:00:00Z"))


def test_the_file_of_a_date_is_delivered_at_file_time_the_next_day_signed_and_on_contract(
        live_settlement, receiver, collection):
    feed_thursday(live_settlement.feed, collection)

    live_settlement.admin("clock", {"set": "2026-12-04T00:59:59+02:00"})
    assert receiver.on(FILES) == []
    moved = live_settlement.admin("clock", {"advance": "1s"})  # Friday 01:00 Cairo

    [sent] = receiver.on(FILES)
    verify(live_settlement.component.secret("settlement_notice"), sent["headers"], sent["body"],
           parse_instant(moved["now"]))
    body = json.loads(sent["body"])
    validate("st-settlement-file-delivery.schema.json", body)
    assert {k: v for k, v in body.items() if k not in ("content", "batches")} == {
        "file_id": "SF-20261203-1", "business_date": "2026-12-03", "sequence": 1,
        "generated_at": "2026-12-03T23:00:00.000Z", "format": "csv", "line_count": 3,
        "gross_amount": "1310.00", "collection_fees": "0.50", "net_amount": "1309.50"}
    assert body["batches"] == [
        {"batch_id": "B-01-20261203", "governorate_code": "01", "business_date": "2026-12-03",
         "value_date": "2026-12-07", "line_count": 2, "gross_amount": "1300.00", "collection_fees": "0.50",
         "amount": "1300.00", "mode": "gross", "iban": "EG470019000100000000010000001"},
        {"batch_id": "B-21-20261203", "governorate_code": "21", "business_date": "2026-12-03",
         "value_date": "2026-12-07", "line_count": 1, "gross_amount": "10.00", "collection_fees": "0.00",
         "amount": "10.00", "mode": "gross", "iban": body["batches"][1]["iban"]}]
    # The content is the download of that date, byte for byte (no byte-order mark).
    assert body["content"] == live_settlement.http.get(f"{live_settlement.url}/api/settlement-files/2026-12-03").text
    rows = csv_rows(body["content"])
    assert [(r["collection_id"], r["payment_request_number"], r["sender_request_number"], r["mechanism"],
             r["reconciliation_date"], r["line_type"]) for r in rows] == [
        ("card:TX000000000002", "", "", "", "", "payment"),  # Khales: no e-finance fields
        ("card:TX000000000001", "123456789012", "0123456789ABCDEF", "Card", "2026-12-03", "payment"),
        ("card:TX000000000003", "", "", "", "", "payment")]
    batch = live_settlement.get("/api/batches/B-01-20261203")
    assert (batch["status"], batch["file_id"]) == ("CLOSED", "SF-20261203-1")
    [listed] = live_settlement.get("/api/settlement-files")["files"]
    assert {k: listed[k] for k in ("file_id", "business_date", "sequence", "generated_at", "line_count",
                                   "net_amount", "batches")} == {
        "file_id": "SF-20261203-1", "business_date": "2026-12-03", "sequence": 1,
        "generated_at": "2026-12-03T23:00:00.000Z", "line_count": 3, "net_amount": "1309.50",
        "batches": ["B-01-20261203", "B-21-20261203"]}
    assert (listed["delivery"]["state"], listed["copies"], listed["faults"]) == ("delivered", [], [])


def test_a_late_line_goes_to_a_supplementary_batch_and_file_published_by_the_next_file_run(
        live_settlement, receiver, collection):
    live_settlement.feed.send(collection(1))
    live_settlement.admin("clock", {"set": "2026-12-04T05:00:00+02:00"})  # Friday: Thursday's file is out
    # A Thursday collection whose feed only now got through (a retry) cannot change the published file.
    late = live_settlement.feed.send(collection(2, amount="20.00", collected_at="2026-12-03T20:00:00Z")).json()

    assert late["batch_id"] == "B-01-20261203-2"
    supplementary = live_settlement.get("/api/batches/B-01-20261203-2")
    assert (supplementary["status"], supplementary["publish_at"]) == ("OPEN", "2026-12-04T23:00:00.000Z")
    live_settlement.admin("clock", {"set": "2026-12-05T00:59:59+02:00"})
    assert len(receiver.on(FILES)) == 1
    live_settlement.admin("clock", {"advance": "1s"})  # Saturday 01:00: the next file run

    first, second = bodies(receiver, FILES)
    assert (first["file_id"], first["sequence"], first["line_count"]) == ("SF-20261203-1", 1, 1)
    assert (second["file_id"], second["business_date"], second["sequence"], second["generated_at"]) == (
        "SF-20261203-2", "2026-12-03", 2, "2026-12-04T23:00:00.000Z")
    assert [b["batch_id"] for b in second["batches"]] == ["B-01-20261203-2"]
    assert [(r["batch_id"], r["collection_id"], r["amount"]) for r in csv_rows(second["content"])] == [
        ("B-01-20261203-2", "card:TX000000000002", "20.00")]
    assert (second["line_count"], second["net_amount"]) == (1, "20.00")
    assert live_settlement.get("/api/batches/B-01-20261203-2")["status"] == "CLOSED"
    # The download of the date still lists every line of every batch.
    download = live_settlement.http.get(f"{live_settlement.url}/api/settlement-files/2026-12-03").text
    assert [r["batch_id"] for r in csv_rows(download)] == ["B-01-20261203", "B-01-20261203-2"]
    assert [f["file_id"] for f in live_settlement.get("/api/settlement-files?business_date=2026-12-03")["files"]] == [
        "SF-20261203-1", "SF-20261203-2"]


def test_the_bank_statement_of_a_day_with_credits_is_delivered_at_statement_time_signed_with_its_own_secret(
        live_settlement, receiver, collection):
    feed_thursday(live_settlement.feed, collection)

    live_settlement.admin("clock", {"set": "2026-12-07T17:59:59+02:00"})  # Monday: credited at 10:00
    assert len(receiver.on(NOTICES)) == 2 and receiver.on(STATEMENTS) == []
    moved = live_settlement.admin("clock", {"advance": "1s"})

    [sent] = receiver.on(STATEMENTS)
    now = parse_instant(moved["now"])
    verify(live_settlement.component.secret("bank_statement"), sent["headers"], sent["body"], now)
    with pytest.raises(BadSignature):
        verify(live_settlement.component.secret("settlement_notice"), sent["headers"], sent["body"], now)
    body = json.loads(sent["body"])
    validate("st-bank-statement.schema.json", body)
    assert (body["statement_id"], body["statement_date"], body["generated_at"]) == (
        "BS-20261207", "2026-12-07", "2026-12-07T16:00:00.000Z")
    assert [(e["reference"], e["governorate_code"], e["amount"], e["value_date"], e["credited_at"])
            for e in body["entries"]] == [
        ("B-01-20261203", "01", "1300.00", "2026-12-07", "2026-12-07T08:00:00.000Z"),
        ("B-21-20261203", "21", "10.00", "2026-12-07", "2026-12-07T08:00:00.000Z")]
    assert body["entries"] == live_settlement.get("/api/bank-statements")["entries"]
    # Tuesday and Wednesday have no credits: no statement.
    live_settlement.admin("clock", {"set": "2026-12-10T12:00:00+02:00"})
    assert len(receiver.on(STATEMENTS)) == 1
    [listed] = live_settlement.get("/api/bank-statement-deliveries")["statements"]
    assert {k: listed[k] for k in ("statement_id", "statement_date", "entry_count")} == {
        "statement_id": "BS-20261207", "statement_date": "2026-12-07", "entry_count": 2}
    assert listed["delivery"]["state"] == "delivered"


def test_a_clock_moved_days_ahead_publishes_credits_and_states_each_day_in_time_order(
        live_settlement, receiver, collection):
    live_settlement.feed.send(collection(1))  # Thursday: file Friday 01:00, credit Monday
    live_settlement.feed.send(collection(2, amount="5.00", collected_at="2026-12-06T08:00:00Z"))  # Sunday

    live_settlement.admin("clock", {"set": "2026-12-09T20:00:00+02:00"})  # Wednesday evening

    sent = [(r["path"], json.loads(r["body"])) for r in receiver.received]
    assert [(path, body.get("file_id") or body.get("notice_id") or body.get("statement_id"))
            for path, body in sent] == [
        (FILES, "SF-20261203-1"), (FILES, "SF-20261206-1"),
        (NOTICES, "N-B-01-20261203"), (STATEMENTS, "BS-20261207"),
        (NOTICES, "N-B-01-20261206"), (STATEMENTS, "BS-20261208")]
    assert [body["generated_at"] for path, body in sent if path == FILES] == [
        "2026-12-03T23:00:00.000Z", "2026-12-06T23:00:00.000Z"]
    # Friday and Saturday had no lines: nothing was published for them.
    assert live_settlement.get("/api/settlement-files?business_date=2026-12-04")["files"] == []


def test_file_time_and_statement_time_come_from_the_settings(live_settlement_of, receiver, collection):
    live = live_settlement_of(file_time="03:30", statement_time="09:00")
    live.feed.send(collection(1))

    live.admin("clock", {"set": "2026-12-04T03:29:59+02:00"})
    assert receiver.on(FILES) == []
    live.admin("clock", {"advance": "1s"})
    assert [b["generated_at"] for b in bodies(receiver, FILES)] == ["2026-12-04T01:30:00.000Z"]

    # Monday's credit (10:00) comes after Monday's statement time (09:00): it is on Tuesday's statement.
    live.admin("clock", {"set": "2026-12-08T08:59:59+02:00"})
    assert len(receiver.on(NOTICES)) == 1 and receiver.on(STATEMENTS) == []
    live.admin("clock", {"advance": "1s"})
    [statement] = bodies(receiver, STATEMENTS)
    assert (statement["statement_id"], statement["generated_at"]) == ("BS-20261208", "2026-12-08T07:00:00.000Z")
    assert [e["credited_at"] for e in statement["entries"]] == ["2026-12-07T08:00:00.000Z"]


@pytest.mark.parametrize(("override", "field"), [
    ({"settlement": {"file_time": "25:00"}}, "settlement.file_time"),
    ({"settlement": {"file_time": "24:00"}}, "settlement.file_time"),
    ({"settlement": {"file_time": "1:00"}}, "settlement.file_time"),
    ({"settlement": {"statement_time": "18:60"}}, "settlement.statement_time"),
    ({"settlement": {"statement_time": 18}}, "settlement.statement_time"),
    ({"settlement": {"notice_retry_seconds": []}}, "settlement.notice_retry_seconds"),
    ({"secrets": {"bank_statement": "too-short"}}, "secrets.bank_statement"),
])
def test_bad_publication_settings_are_refused_naming_the_field(override, field):
    with pytest.raises(ValidationFailed) as refused:
        load_settings(overrides=override)
    assert refused.value.field == field


def test_the_shipped_settings_have_the_times_and_the_bank_statement_secret():
    settings = load_settings()
    assert (settings["settlement"]["file_time"], settings["settlement"]["statement_time"]) == ("01:00", "18:00")
    assert settings["secrets"]["bank_statement"] != settings["secrets"]["settlement_notice"]


def test_a_body_off_its_contract_is_never_sent_and_is_reported(live_settlement, receiver, collection, monkeypatch):
    from simulators.settlement import publication

    monkeypatch.setattr(publication, "FILE_CONTRACT", "st-bank-statement.schema.json")  # a contract it breaks
    live_settlement.feed.send(collection(1))

    live_settlement.admin("clock", {"set": "2026-12-04T02:00:00+02:00"})

    assert receiver.on(FILES) == []
    [listed] = live_settlement.get("/api/settlement-files")["files"]
    assert listed["delivery"] is None and listed["error"].startswith("not sent: off contract")
    assert any("SF-20261203-1" in e for e in live_settlement.http.get(f"{live_settlement.url}/_admin/health")
               .json()["errors"])


def test_reset_forgets_published_files_and_statements(live_settlement, receiver, collection):
    live_settlement.feed.send(collection(1))
    live_settlement.admin("clock", {"set": "2026-12-08T12:00:00+02:00"})
    assert live_settlement.get("/api/settlement-files")["files"] != []
    assert live_settlement.get("/api/bank-statement-deliveries")["statements"] != []

    live_settlement.admin("reset")

    assert live_settlement.get("/api/settlement-files") == {"files": []}
    assert live_settlement.get("/api/bank-statement-deliveries") == {"statements": []}
    assert live_settlement.admin("tick")["next_due"] is None
