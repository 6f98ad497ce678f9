"""Settlement's domain faults, each with its exact effect on the file, the credit, the notice, the statement.

Every test feeds Thursday 2026-12-03 (file run Friday 01:00 Cairo, credit Monday 10:00, statement
Monday 18:00) and asserts which line, which amount, which file or statement body the fault changed.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from simulators.common.clock import parse_instant
from simulators.common.errors import BadSignature
from simulators.common.signing import verify

FILES, STATEMENTS, NOTICES = "/settlement/files", "/settlement/bank-statements", "/settlement/notices"
FRIDAY_FILE_RUN = "2026-12-04T01:00:00+02:00"
MONDAY_EVENING = "2026-12-07T20:00:00+02:00"
TX = "card:TX0000000000{:02d}".format


def bodies(receiver: Any, path: str) -> list[dict[str, Any]]:
    return [json.loads(r["body"]) for r in receiver.on(path)]


def csv_rows(content: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content)))


def declare(live: Any, kind: str, **spec: Any) -> dict[str, Any]:
    response = live.post("/_admin/faults", {"direction": "domain", "kind": kind, **spec})
    assert response.status_code == 201, response.text
    return response.json()


def feed_thursday(live: Any, collection: Any) -> None:
    """Cairo: 100.00 (TX01) + 20.00 (TX02) + 3.00 (TX03); Giza: 7.00 (TX04)."""
    live.feed.send(collection(1, amount="100.00"))
    live.feed.send(collection(2, amount="20.00", collected_at="2026-12-03T10:01:00Z"))
    live.feed.send(collection(3, amount="3.00", collected_at="2026-12-03T10:02:00Z"))
    live.feed.send(collection(4, amount="7.00", governorate_code="21"))


# --- batch and credit --------------------------------------------------------------------------------
def test_late_batch_moves_the_value_date_in_the_file_and_the_credit(live_settlement, receiver, collection):
    declare(live_settlement, "late_batch", match={"governorate_code": "01"}, params={"business_days": 1})
    feed_thursday(live_settlement, collection)

    live_settlement.admin("clock", {"set": "2026-12-08T20:00:00+02:00"})

    [file] = bodies(receiver, FILES)
    assert [(b["batch_id"], b["value_date"]) for b in file["batches"]] == [
        ("B-01-20261203", "2026-12-08"), ("B-21-20261203", "2026-12-07")]
    assert {r["value_date"] for r in csv_rows(file["content"]) if r["governorate_code"] == "01"} == {"2026-12-08"}
    assert [(s["statement_id"], [e["reference"] for e in s["entries"]]) for s in bodies(receiver, STATEMENTS)] == [
        ("BS-20261207", ["B-21-20261203"]), ("BS-20261208", ["B-01-20261203"])]


def test_short_batch_credits_exactly_the_amount_less_and_leaves_the_file_complete(
        live_settlement, receiver, collection):
    declare(live_settlement, "short_batch", endpoint="credit", match={"governorate_code": "01"},
            params={"amount": "20.50"})
    feed_thursday(live_settlement, collection)

    live_settlement.admin("clock", {"set": MONDAY_EVENING})

    [file] = bodies(receiver, FILES)
    assert [(b["batch_id"], b["line_count"], b["amount"]) for b in file["batches"]] == [
        ("B-01-20261203", 3, "123.00"), ("B-21-20261203", 1, "7.00")]
    notices = {n["batch_id"]: n for n in bodies(receiver, NOTICES)}
    assert (notices["B-01-20261203"]["amount"], notices["B-21-20261203"]["amount"]) == ("102.50", "7.00")
    assert len(notices["B-01-20261203"]["transactions"]) == 3
    [statement] = bodies(receiver, STATEMENTS)
    assert [(e["reference"], e["amount"]) for e in statement["entries"]] == [
        ("B-01-20261203", "102.50"), ("B-21-20261203", "7.00")]
    batch = live_settlement.get("/api/batches/B-01-20261203")
    assert (batch["amount"], batch["credited_amount"], batch["short_by"]) == ("123.00", "102.50", "20.50")


def test_short_batch_larger_than_the_batch_credits_zero_never_a_debit(live_settlement, receiver, collection):
    declare(live_settlement, "short_batch", match={"governorate_code": "01"}, params={"amount": "3000.00"})
    feed_thursday(live_settlement, collection)

    live_settlement.admin("clock", {"set": MONDAY_EVENING})

    notices = {n["batch_id"]: n for n in bodies(receiver, NOTICES)}
    assert (notices["B-01-20261203"]["amount"], notices["B-21-20261203"]["amount"]) == ("0.00", "7.00")
    [statement] = bodies(receiver, STATEMENTS)
    assert [(e["reference"], e["amount"]) for e in statement["entries"]] == [
        ("B-01-20261203", "0.00"), ("B-21-20261203", "7.00")]
    batch = live_settlement.get("/api/batches/B-01-20261203")
    assert (batch["amount"], batch["credited_amount"], batch["short_by"]) == ("123.00", "0.00", "123.00")
    [hit] = batch["faults"]
    assert (hit["kind"], hit["amount"], hit["asked"]) == ("short_batch", "123.00", "3000.00")


@pytest.mark.parametrize(("amount", "status"), [("1000000000.00", 201), ("1000000000.01", 422),
                                                ("999999999999.99", 422)])
def test_short_batch_amount_is_bounded_at_declaration(client, amount, status):
    response = client.post("/_admin/faults", json={"direction": "domain", "kind": "short_batch",
                                                   "params": {"amount": amount}})

    assert response.status_code == status, response.get_json()
    if status == 422:
        assert response.get_json()["error"]["field"] == "params.amount"


def test_credit_late_keeps_the_files_value_date_but_credits_n_business_days_later(
        live_settlement, receiver, collection):
    declare(live_settlement, "credit_late", match={"batch_id": "B-01-20261203"}, params={"business_days": 2})
    feed_thursday(live_settlement, collection)

    live_settlement.admin("clock", {"set": MONDAY_EVENING})
    assert [n["batch_id"] for n in bodies(receiver, NOTICES)] == ["B-21-20261203"]
    live_settlement.admin("clock", {"set": "2026-12-09T09:59:59+02:00"})
    assert len(receiver.on(NOTICES)) == 1
    live_settlement.admin("clock", {"set": "2026-12-09T20:00:00+02:00"})  # Wednesday

    [file] = bodies(receiver, FILES)
    assert file["batches"][0]["value_date"] == "2026-12-07"  # the file says T+2
    late = bodies(receiver, NOTICES)[1]
    assert (late["batch_id"], late["value_date"], late["credited_at"], late["amount"]) == (
        "B-01-20261203", "2026-12-07", "2026-12-09T08:00:00.000Z", "123.00")
    assert [(s["statement_id"], [(e["reference"], e["value_date"]) for e in s["entries"]])
            for s in bodies(receiver, STATEMENTS)] == [
        ("BS-20261207", [("B-21-20261203", "2026-12-07")]), ("BS-20261209", [("B-01-20261203", "2026-12-09")])]
    assert live_settlement.get("/api/batches/B-01-20261203")["credit_late_by"] == 2


# --- collections ---------------------------------------------------------------------------------------
def test_missing_transaction_is_accepted_but_in_no_file_and_no_credit(live_settlement, receiver, collection):
    declare(live_settlement, "missing_transaction", endpoint="collection",
            match={"transaction_number": "TX000000000002"})
    first = live_settlement.feed.send(collection(2, amount="20.00"))
    again = live_settlement.feed.send(collection(2, amount="20.00"))
    feed_thursday(live_settlement, collection)  # TX02 again: a replay

    assert (first.status_code, again.status_code, again.json()) == (201, 200, first.json())
    assert first.json()["batch_id"] == "B-01-20261203"
    live_settlement.admin("clock", {"set": MONDAY_EVENING})

    [file] = bodies(receiver, FILES)
    assert TX(2) not in {r["collection_id"] for r in csv_rows(file["content"])}
    assert [(b["batch_id"], b["line_count"], b["amount"]) for b in file["batches"]] == [
        ("B-01-20261203", 2, "103.00"), ("B-21-20261203", 1, "7.00")]
    notice = next(n for n in bodies(receiver, NOTICES) if n["batch_id"] == "B-01-20261203")
    assert (notice["amount"], [t["collection_id"] for t in notice["transactions"]]) == ("103.00", [TX(1), TX(3)])
    assert bodies(receiver, STATEMENTS)[0]["entries"][0]["amount"] == "103.00"
    held = live_settlement.get(f"/api/collections/{TX(2)}")
    assert (held["batch_id"], held["faults"][0]["kind"]) == (None, "missing_transaction")


def test_settled_twice_lists_the_line_twice_and_credits_it_twice(live_settlement, receiver, collection):
    declare(live_settlement, "settled_twice", match={"transaction_number": "TX000000000003"}, count=1)
    feed_thursday(live_settlement, collection)

    live_settlement.admin("clock", {"set": MONDAY_EVENING})

    [file] = bodies(receiver, FILES)
    rows = [r for r in csv_rows(file["content"]) if r["collection_id"] == TX(3)]
    assert [(r["batch_id"], r["amount"]) for r in rows] == [("B-01-20261203", "3.00"), ("B-01-20261203", "3.00")]
    assert (file["line_count"], file["gross_amount"]) == (5, "133.00")
    assert (file["batches"][0]["line_count"], file["batches"][0]["amount"]) == (4, "126.00")
    notice = next(n for n in bodies(receiver, NOTICES) if n["batch_id"] == "B-01-20261203")
    assert notice["amount"] == "126.00"
    assert [t["collection_id"] for t in notice["transactions"]].count(TX(3)) == 2
    assert all("faults" not in t for t in notice["transactions"])  # never tells which fault bent a line
    assert bodies(receiver, STATEMENTS)[0]["entries"][0]["amount"] == "126.00"


def test_wrong_governorate_settles_the_line_in_the_other_governorates_batch_and_credit(
        live_settlement, receiver, collection):
    declare(live_settlement, "wrong_governorate", params={"governorate_code": "21"},
            match={"governorate_code": "01", "transaction_number": "TX000000000002"})
    feed_thursday(live_settlement, collection)

    live_settlement.admin("clock", {"set": MONDAY_EVENING})

    [file] = bodies(receiver, FILES)
    [row] = [r for r in csv_rows(file["content"]) if r["collection_id"] == TX(2)]
    assert (row["batch_id"], row["governorate_code"], row["amount"]) == ("B-21-20261203", "21", "20.00")
    assert [(b["batch_id"], b["line_count"], b["amount"]) for b in file["batches"]] == [
        ("B-01-20261203", 2, "103.00"), ("B-21-20261203", 2, "27.00")]
    giza = live_settlement.get("/api/batches/B-21-20261203")
    [statement] = bodies(receiver, STATEMENTS)
    assert [(e["reference"], e["iban"], e["amount"]) for e in statement["entries"]] == [
        ("B-01-20261203", "EG470019000100000000010000001", "103.00"), ("B-21-20261203", giza["iban"], "27.00")]
    assert live_settlement.get(f"/api/collections/{TX(2)}")["governorate_code"] == "01"  # as fed


# --- files ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("params", "copy_id"), [({}, "SF-20261203-1"), ({"same_id": False}, "SF-20261203-1-R")])
def test_file_duplicated_delivers_the_file_twice(live_settlement, receiver, collection, params, copy_id):
    declare(live_settlement, "file_duplicated", match={"business_date": "2026-12-03"}, params=params)
    feed_thursday(live_settlement, collection)

    live_settlement.admin("clock", {"set": FRIDAY_FILE_RUN})

    original, copy = bodies(receiver, FILES)
    assert (original["file_id"], copy["file_id"]) == ("SF-20261203-1", copy_id)
    assert dict(copy, file_id=original["file_id"]) == original  # same lines, totals, batches, content
    [listed] = live_settlement.get("/api/settlement-files")["files"]
    assert [c["state"] for c in listed["copies"]] == ["delivered"]


def test_file_bad_signature_signs_every_attempt_wrongly_until_the_fault_is_cleared(
        live_settlement, receiver, collection):
    fault = declare(live_settlement, "file_bad_signature", match={"business_date": "2026-12-03"})
    feed_thursday(live_settlement, collection)
    receiver.answer_next(401, 401)  # the collection service refuses a bad signature
    secret = live_settlement.component.secret("settlement_notice")

    first = live_settlement.admin("clock", {"set": FRIDAY_FILE_RUN})
    second = live_settlement.admin("clock", {"advance": "60s"})  # the Courier's retry: still wrong
    live_settlement.http.delete(f"{live_settlement.url}/_admin/faults/{fault['id']}")
    third = live_settlement.admin("clock", {"advance": "300s"})  # the next retry goes through

    attempts = receiver.on(FILES)
    assert len(attempts) == 3 and attempts[0]["body"] == attempts[1]["body"] == attempts[2]["body"]
    for attempt, moved in zip(attempts[:2], (first, second), strict=True):
        with pytest.raises(BadSignature):
            verify(secret, attempt["headers"], attempt["body"], parse_instant(moved["now"]))
    verify(secret, attempts[2]["headers"], attempts[2]["body"], parse_instant(third["now"]))
    [listed] = live_settlement.get("/api/settlement-files")["files"]
    assert [(a["status"], a["outcome"]) for a in listed["delivery"]["attempts"]] == [
        (401, "http_401"), (401, "http_401"), (200, "delivered")]
    assert [(f["kind"], f["attempt"]) for f in listed["faults"]] == [
        ("file_bad_signature", 1), ("file_bad_signature", 2)]


def test_file_broken_line_truncates_the_delivered_line_after_its_transaction_number(
        live_settlement, receiver, collection):
    declare(live_settlement, "file_broken_line", match={"business_date": "2026-12-03"})  # line 1, truncate
    feed_thursday(live_settlement, collection)

    live_settlement.admin("clock", {"set": FRIDAY_FILE_RUN})

    [file] = bodies(receiver, FILES)
    download = live_settlement.http.get(f"{live_settlement.url}/api/settlement-files/2026-12-03").text
    sent_lines, true_lines = file["content"].split("\r\n"), download.split("\r\n")
    assert sent_lines[1] == ("B-01-20261203,01,2026-12-03,2026-12-07,card:TX000000000001,card,100200300401,"
                             "BPR,TX000000000001")
    assert sent_lines[0] == true_lines[0] and sent_lines[2:] == true_lines[2:]
    assert (file["line_count"], file["gross_amount"], file["net_amount"]) == (4, "130.00", "130.00")  # true totals
    assert len(csv_rows(download)) == 4  # the download stays correct


def test_file_broken_line_can_garble_the_amount_of_a_given_line(live_settlement, receiver, collection):
    declare(live_settlement, "file_broken_line", params={"line": 2, "damage": "garble_amount"})
    feed_thursday(live_settlement, collection)

    live_settlement.admin("clock", {"set": FRIDAY_FILE_RUN})

    [file] = bodies(receiver, FILES)
    sent_lines = file["content"].split("\r\n")
    true_fields = next(csv.reader([sent_lines[1]]))  # line 1 untouched
    broken = next(csv.reader([sent_lines[2]]))
    assert len(true_fields) == 19 and len(broken) == 20
    assert broken[4] == TX(2) and broken[9:11] == ["12", "50"]
    assert ",12,50," in sent_lines[2] and "20.00" not in sent_lines[2]


def test_file_broken_line_beyond_the_file_says_nothing_was_damaged_and_is_not_used_up(
        live_settlement, receiver, collection):
    fault = declare(live_settlement, "file_broken_line", params={"line": 9}, count=1)
    feed_thursday(live_settlement, collection)

    live_settlement.admin("clock", {"set": FRIDAY_FILE_RUN})

    [file] = bodies(receiver, FILES)
    download = live_settlement.http.get(f"{live_settlement.url}/api/settlement-files/2026-12-03").text
    assert file["content"] == download  # nothing damaged
    [listed] = live_settlement.get("/api/settlement-files")["files"]
    [hit] = listed["faults"]
    assert (hit["kind"], hit["line"], hit["applied"]) == ("file_broken_line", 9, False)
    assert hit["error"].startswith("line 9 of a 4-line file: nothing damaged")
    assert listed["error"] is None  # the file itself was sent
    [held] = live_settlement.get("/_admin/faults")["faults"]
    assert (held["id"], held["remaining"], held["hits"], held["active"]) == (fault["id"], 1, 0, True)


def test_credit_without_file_withholds_the_governorates_batch_but_credits_it(live_settlement, receiver, collection):
    declare(live_settlement, "credit_without_file", match={"governorate_code": "01", "business_date": "2026-12-03"})
    feed_thursday(live_settlement, collection)

    live_settlement.admin("clock", {"set": "2026-12-14T20:00:00+02:00"})  # a week later: never published

    [file] = bodies(receiver, FILES)
    assert [b["batch_id"] for b in file["batches"]] == ["B-21-20261203"]
    assert {r["governorate_code"] for r in csv_rows(file["content"])} == {"21"}
    assert (file["line_count"], file["net_amount"]) == (1, "7.00")
    [statement] = bodies(receiver, STATEMENTS)
    assert [(e["reference"], e["amount"]) for e in statement["entries"]] == [
        ("B-01-20261203", "123.00"), ("B-21-20261203", "7.00")]
    assert {n["batch_id"] for n in bodies(receiver, NOTICES)} == {"B-01-20261203", "B-21-20261203"}
    batch = live_settlement.get("/api/batches/B-01-20261203")
    assert (batch["status"], batch["file_id"], batch["withheld_from_file"]["release_at"]) == ("CREDITED", None, None)


def test_credit_without_file_with_a_late_file_delivers_it_as_the_next_sequence(live_settlement, receiver, collection):
    declare(live_settlement, "credit_without_file", match={"governorate_code": "01"},
            params={"file_late_business_days": 2})
    feed_thursday(live_settlement, collection)

    # The file run of Friday 4 withholds it; 2 business days after Friday is Monday 7 (Sunday is one).
    live_settlement.admin("clock", {"set": "2026-12-07T00:59:59+02:00"})
    assert len(receiver.on(FILES)) == 1
    live_settlement.admin("clock", {"advance": "1s"})

    first, second = bodies(receiver, FILES)
    assert [b["batch_id"] for b in first["batches"]] == ["B-21-20261203"]
    assert (second["file_id"], second["sequence"], second["generated_at"]) == (
        "SF-20261203-2", 2, "2026-12-06T23:00:00.000Z")
    assert [b["batch_id"] for b in second["batches"]] == ["B-01-20261203"]
    assert [r["collection_id"] for r in csv_rows(second["content"])] == [TX(1), TX(2), TX(3)]


# --- declaring: bad specs are refused naming the field, and change nothing -------------------------------
@pytest.mark.parametrize(("spec", "field"), [
    ({"kind": "short_batch"}, "params.amount"),
    ({"kind": "short_batch", "params": {"amount": "0.00"}}, "params.amount"),
    ({"kind": "short_batch", "params": {"amount": 20.5}}, "params.amount"),
    ({"kind": "short_batch", "params": {"amount": "1.00"}, "match": {"transaction_number": "TX1"}},
     "match.transaction_number"),
    ({"kind": "credit_late", "params": {"business_days": 0}}, "params.business_days"),
    ({"kind": "credit_late", "params": {"business_days": "2"}}, "params.business_days"),
    ({"kind": "late_batch", "params": {"business_days": 31}}, "params.business_days"),
    ({"kind": "late_batch", "params": {"days": 1}}, "params.days"),
    ({"kind": "wrong_governorate"}, "params.governorate_code"),
    ({"kind": "wrong_governorate", "params": {"governorate_code": "99"}}, "params.governorate_code"),
    ({"kind": "wrong_governorate", "params": {"governorate_code": "01"}, "match": {"governorate_code": "01"}},
     "params.governorate_code"),
    ({"kind": "missing_transaction", "match": {"channel": "cheque"}}, "match.channel"),
    ({"kind": "missing_transaction", "match": {"business_date": "2026-12-03"}}, "match.business_date"),
    ({"kind": "settled_twice", "endpoint": "credit"}, "endpoint"),
    ({"kind": "settled_twice", "target": "reference"}, "target"),
    ({"kind": "file_duplicated", "params": {"same_id": "no"}}, "params.same_id"),
    ({"kind": "file_broken_line", "params": {"line": 0}}, "params.line"),
    ({"kind": "file_broken_line", "params": {"damage": "shred"}}, "params.damage"),
    ({"kind": "file_bad_signature", "match": {"business_date": "2026-02-30"}}, "match.business_date"),
    ({"kind": "file_bad_signature", "match": {"governorate_code": "01"}}, "match.governorate_code"),
    ({"kind": "credit_without_file", "match": {"governorate_code": "1"}}, "match.governorate_code"),
    ({"kind": "credit_without_file", "params": {"file_late_business_days": -1}}, "params.file_late_business_days"),
    # match values no batch, line or file can ever have (one shared check for every kind)
    ({"kind": "wrong_governorate", "match": {"governorate_code": "99"}, "params": {"governorate_code": "21"}},
     "match.governorate_code"),
    ({"kind": "late_batch", "match": {"governorate_code": 21}}, "match.governorate_code"),
    ({"kind": "missing_transaction", "match": {"transaction_number": 123}}, "match.transaction_number"),
    ({"kind": "settled_twice", "match": {"bill_reference": 100200300401}}, "match.bill_reference"),
    ({"kind": "settled_twice", "match": {"bill_reference": "BILL-1"}}, "match.bill_reference"),
    ({"kind": "settled_twice", "match": {"transaction_number": ""}}, "match.transaction_number"),
    ({"kind": "file_duplicated", "match": {"business_date": "2026-12-04"}}, "match.business_date"),  # a Friday
    ({"kind": "short_batch", "params": {"amount": "1.00"}, "match": {"batch_id": "batch-1"}}, "match.batch_id"),
    ({"kind": "short_batch", "params": {"amount": "1.00"}, "match": {"batch_id": "B-99-20261203"}},
     "match.batch_id"),
    ({"kind": "credit_late", "match": {"batch_id": "B-21-20261203", "governorate_code": "01"}}, "match.batch_id"),
    ({"kind": "credit_late", "match": {"batch_id": "B-01-20261203", "business_date": "2026-12-07"}},
     "match.batch_id"),
])
def test_a_fault_the_settlement_could_not_apply_is_refused_naming_the_field(client, spec, field):
    response = client.post("/_admin/faults", json={"direction": "domain", **spec})

    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert client.get("/_admin/faults").get_json()["faults"] == []


@pytest.mark.parametrize("match", [
    {"governorate_code": "01", "business_date": "2026-12-03", "batch_id": "B-01-20261203"},
    {"batch_id": "B-21-20261203-2"},
])
def test_a_match_that_can_hit_is_stored(client, match):
    response = client.post("/_admin/faults", json={"direction": "domain", "kind": "credit_late", "match": match})

    assert response.status_code == 201, response.get_json()


def test_every_settlement_fault_kind_is_declared(client):
    assert set(client.get("/_admin/faults").get_json()["domain_kinds"]) >= {
        "late_batch", "short_batch", "credit_late", "missing_transaction", "settled_twice", "wrong_governorate",
        "file_duplicated", "file_bad_signature", "file_broken_line", "credit_without_file"}
