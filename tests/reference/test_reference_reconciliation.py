"""Three-way reconciliation (issue 5): ledger ↔ settlement file ↔ bank statement, one test per exception
kind naming the exact kind and amount, later files and credits that clear them (with history),
idempotent intake, signatures, broken lines, duplicate files, and the reports.

The ledger's day is Monday 2026-12-07 in Cairo: building-permit renewals of 855.00 paid in cash at
Khales (transaction ids ``KH-TXN-<n>``). Settlement's file of the day comes at 01:00 the next day, the
bank credits the batch on Wednesday 2026-12-09 at 10:00 and its statement comes at 18:00.
"""

from __future__ import annotations

import csv
import io

import pytest

from reference.app import create_app
from reference.store import Store
from simulators.common.contracts import problems

FILE_AT = "2026-12-08T01:00:00+02:00"
STATEMENT_AT = "2026-12-09T18:00:00+02:00"


@pytest.fixture
def pay(ref, citizen_services, service_request):
    """``pay(n)``: n paid orders of Cairo on Monday (KH-TXN-1 … KH-TXN-n); returns their payments."""
    def paid(count: int = 1) -> list[dict]:
        payments = []
        for n in range(1, count + 1):
            number = f"SR-01-{n:08d}"
            citizen_services.requests.setdefault(number, service_request(number))
            order = ref.create_order(number)
            response = ref.khales_payment(order, txn=f"KH-TXN-{n}")
            assert response.status_code == 200, response.get_json()
            payments.append(response.get_json())
        return payments
    return paid


def deliver(ref, lines=None, *, at=FILE_AT, status=201, **options):
    ref.set_clock(at)
    body = ref.settlement_file(lines if lines is not None else [ref.file_line()], **options)
    response = ref.post_file(body)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def bank(ref, *entries, at=STATEMENT_AT):
    ref.set_clock(at)
    response = ref.post_statement(ref.statement(*(entries or (ref.credit(),)), statement_date=at[:10]))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def opened(ref, **query):
    """Open exceptions as (kind, amount) pairs, sorted."""
    return sorted((e["kind"], e["amount"]) for e in ref.exceptions(status="OPEN", **query))


def damaged(ref, lines, number, damage):
    """The CSV of ``lines`` with data line ``number`` damaged as settlement's file_broken_line fault does,
    with a byte-order mark and \\r\\n line ends (both tolerated)."""
    columns = list(ref.file_line())
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for n, line in enumerate(lines, start=1):
        values = [line[c] for c in columns]
        if n == number and damage == "truncate":
            values = values[:columns.index("transaction_number") + 1]
        elif n == number:
            values[columns.index("amount")] = "GARBLED"
        writer.writerow(values)
    return "\ufeff" + out.getvalue().replace("GARBLED", "12,50")


# --- the day that agrees -----------------------------------------------------------------------------
def test_three_sources_that_agree_reconcile_the_day(ref, pay):
    pay(1)

    answer = deliver(ref)

    assert answer["status"] == "ACCEPTED" and answer["readable_lines"] == 1 and answer["broken_lines"] == 0
    assert answer["totals_match"] is True and problems("ref-settlement-file-result.schema.json", answer) == []
    pending = ref.reconciliation()
    assert pending["status"] == "PENDING"  # declared, not yet credited
    [cairo] = pending["governorates"]
    assert cairo["ledger"] == {"count": 1, "amount": "855.00"}
    assert cairo["file"]["count"] == 1 and cairo["file"]["amount"] == "855.00"
    assert cairo["declared"]["amount"] == "855.00" and cairo["bank"]["count"] == 0

    statement = bank(ref)

    assert statement["new_entries"] == 1 and problems("ref-bank-statement-result.schema.json", statement) == []
    report = ref.reconciliation()
    assert problems("ref-reconciliation.schema.json", report) == []
    [cairo] = report["governorates"]
    assert report["status"] == cairo["status"] == "RECONCILED"
    assert cairo["bank"]["amount"] == "855.00" and cairo["declared"]["batches"][0]["credited_amount"] == "855.00"
    assert cairo["exceptions"] == [] and ref.exceptions() == []
    assert cairo["reconciled_at"] == ref.at(STATEMENT_AT)


def test_reconciliation_report_as_arabic_csv_with_and_without_bom(ref, pay):
    pay(1)
    deliver(ref)
    bank(ref)

    plain = ref.client.get("/api/reconciliation/2026-12-07?format=csv")
    excel = ref.client.get("/api/reconciliation/2026-12-07?format=csv&bom=1")

    assert plain.status_code == excel.status_code == 200
    assert plain.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert excel.data.startswith(b"\xef\xbb\xbf") and not plain.data.startswith(b"\xef\xbb\xbf")
    assert excel.data[3:] == plain.data
    rows = list(csv.reader(io.StringIO(excel.data.decode("utf-8-sig"))))
    assert rows[0][:4] == ["كود المحافظة", "المحافظة", "تاريخ العمل", "البند"]
    ledger = next(r for r in rows if r[3] == "الدفتر (المتوقع تسويته)")
    assert ledger[0] == "01" and ledger[6] == "855.00"
    status = next(r for r in rows if r[3] == "حالة المطابقة")
    assert status[4] == "RECONCILED" and status[8] == "مطابقة"
    assert ref.client.get("/api/reconciliation/2026-02-30").status_code == 400
    assert ref.client.get("/api/reconciliation/2026-12-07?format=xml").get_json()["error"]["field"] == "format"


# --- one test per exception kind ---------------------------------------------------------------------
def test_missing_in_file_names_the_payment_and_a_supplementary_file_clears_it(ref, pay):
    _, second = pay(2)

    deliver(ref, [ref.file_line("KH-TXN-1")])

    [missing] = ref.exceptions(status="OPEN")
    assert missing["kind"] == "MISSING_IN_FILE" and missing["amount"] == "855.00"
    assert missing["payment_id"] == second["payment_id"] and missing["transaction_number"] == "KH-TXN-2"
    assert ref.reconciliation()["governorates"][0]["status"] == "EXCEPTIONS"

    deliver(ref, [ref.file_line("KH-TXN-2", batch_id="B-01-20261207-2")], at="2026-12-09T01:00:00+02:00",
            sequence=2)

    assert ref.exceptions(status="OPEN") == []
    [resolved] = ref.exceptions(kind="MISSING_IN_FILE")
    assert resolved["status"] == "RESOLVED" and resolved["resolved_at"] == ref.at("2026-12-09T01:00:00+02:00")
    assert "now in a settlement file" in resolved["resolution"] and "SF-20261207-2" in resolved["resolution"]
    assert [(h["event"], h["at"], h["amount"]) for h in resolved["history"]] == [
        ("OPENED", ref.at(FILE_AT), "855.00"), ("RESOLVED", ref.at("2026-12-09T01:00:00+02:00"), "855.00")]


def test_a_card_payment_split_over_settlement_accounts_is_found_whole(ref, pay):
    """One line per SettlementAmounts line, all with the TransactionNumber: summed, each collection once."""
    pay(1)
    lines = [ref.file_line("KH-TXN-1", amount, collection_id=f"card:KH-TXN-1:{i}", channel="card")
             for i, amount in enumerate(("500.00", "250.00", "105.00"), start=1)]

    deliver(ref, lines)

    assert ref.exceptions() == []


def test_too_little_in_the_file_is_missing_in_file_for_the_difference(ref, pay):
    pay(1)

    deliver(ref, [ref.file_line("KH-TXN-1", "500.00", collection_id="card:KH-TXN-1:1", channel="card")])

    assert opened(ref) == [("MISSING_IN_FILE", "355.00")]


def test_orphan_collection_is_the_line_amount(ref, pay):
    pay(1)

    deliver(ref, [ref.file_line("KH-TXN-1"), ref.file_line("KH-GHOST", "100.00")])

    [orphan] = ref.exceptions(status="OPEN")
    assert (orphan["kind"], orphan["amount"]) == ("ORPHAN_COLLECTION", "100.00")
    assert orphan["collection_id"] == "khales:KH-GHOST" and orphan["line_number"] == 2
    assert orphan["file_id"] == "SF-20261207-1" and orphan["batch_id"] == "B-01-20261207"


def test_settled_twice_is_the_extra_line(ref, pay):
    pay(1)

    deliver(ref, [ref.file_line("KH-TXN-1"), ref.file_line("KH-TXN-1")])

    [twice] = ref.exceptions(status="OPEN")
    assert (twice["kind"], twice["amount"]) == ("SETTLED_TWICE", "855.00")
    assert twice["collection_id"] == "khales:KH-TXN-1" and "2 lines" in twice["detail"]


def test_wrong_governorate_is_the_payment_amount_on_its_own_day(ref, pay):
    pay(2)

    answer = deliver(ref, [ref.file_line("KH-TXN-1"), ref.file_line("KH-TXN-2", governorate="02")])

    assert {"governorate_code": "01", "business_date": "2026-12-07"} in answer["days"]
    [wrong] = ref.exceptions(status="OPEN")
    assert (wrong["kind"], wrong["amount"]) == ("WRONG_GOVERNORATE", "855.00")
    assert wrong["governorate_code"] == "01" and wrong["transaction_number"] == "KH-TXN-2"
    assert "governorate 02" in wrong["detail"]
    assert ref.exceptions(governorate_code="02") == []  # the ledger knows it: no orphan in Alexandria


@pytest.mark.parametrize(("credited", "kind", "amount"), [("800.00", "SHORT_SETTLEMENT", "55.00"),
                                                          ("900.00", "OVER_SETTLEMENT", "45.00")])
def test_a_credit_that_is_not_the_declared_amount(ref, pay, credited, kind, amount):
    pay(1)
    deliver(ref)

    bank(ref, ref.credit(credited))

    [exc] = ref.exceptions(status="OPEN")
    assert (exc["kind"], exc["amount"], exc["batch_id"]) == (kind, amount, "B-01-20261207")


def test_short_settlement_cleared_by_a_top_up_credit(ref, pay):
    pay(1)
    deliver(ref)
    bank(ref, ref.credit("800.00"))

    bank(ref, ref.credit("55.00", entry_id="BS-TOPUP", credited_at="2026-12-10T10:00:00+02:00",
                         value_date="2026-12-10"), at="2026-12-10T18:00:00+02:00")

    [short] = ref.exceptions(kind="SHORT_SETTLEMENT")
    assert short["status"] == "RESOLVED" and "BS-20261210" in short["resolution"]
    assert opened(ref) == []


def test_credit_without_file_is_the_credit_and_the_late_file_clears_it(ref, pay):
    pay(1)

    bank(ref)  # the bank credits a batch no file declared

    [orphan_credit] = ref.exceptions(status="OPEN")
    assert (orphan_credit["kind"], orphan_credit["amount"]) == ("CREDIT_WITHOUT_FILE", "855.00")
    assert orphan_credit["entry_id"] == "BS-B-01-20261207" and orphan_credit["business_date"] == "2026-12-07"
    assert ref.reconciliation()["governorates"][0]["status"] == "EXCEPTIONS"

    deliver(ref, at="2026-12-10T01:00:00+02:00")

    [cleared] = ref.exceptions(kind="CREDIT_WITHOUT_FILE")
    assert cleared["status"] == "RESOLVED" and "now declares the batch" in cleared["resolution"]
    assert [h["event"] for h in cleared["history"]] == ["OPENED", "RESOLVED"]
    assert ref.reconciliation()["governorates"][0]["status"] == "RECONCILED"


def test_file_without_credit_at_the_end_of_the_value_date_then_a_late_credit(ref, pay):
    pay(1)
    deliver(ref)

    ref.set_clock("2026-12-10T00:00:00+02:00")  # Wednesday, the declared value date, is over

    assert opened(ref) == [("FILE_WITHOUT_CREDIT", "855.00"), ("LATE_SETTLEMENT", "855.00")]

    bank(ref, ref.credit(credited_at="2026-12-13T10:00:00+02:00", value_date="2026-12-13"),
         at="2026-12-13T18:00:00+02:00")

    assert opened(ref) == []
    fwc = ref.exceptions(kind="FILE_WITHOUT_CREDIT")[0]
    assert "2 business day(s) after the declared value date 2026-12-09" in fwc["resolution"]
    late = ref.exceptions(kind="LATE_SETTLEMENT")[0]
    assert "2 business day(s) late" in late["resolution"]


@pytest.mark.parametrize("damage", ["truncate", "garble_amount"])
def test_broken_line_is_the_named_payment_and_the_rest_is_read(ref, pay, damage):
    pay(2)
    lines = [ref.file_line("KH-TXN-1"), ref.file_line("KH-TXN-2")]
    body = ref.settlement_file(lines)
    body["content"] = damaged(ref, lines, 1, damage)
    ref.set_clock(FILE_AT)

    response = ref.post_file(body)

    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    assert answer["status"] == "ACCEPTED" and answer["readable_lines"] == 1 and answer["broken_lines"] == 1
    assert answer["broken"][0]["line"] == 1 and answer["broken"][0]["transaction_number"] == "KH-TXN-1"
    assert answer["totals_match"] is False
    [broken] = ref.exceptions(status="OPEN")  # not also MISSING_IN_FILE for KH-TXN-1
    assert (broken["kind"], broken["amount"]) == ("BROKEN_FILE_LINE", "855.00")
    assert broken["line_number"] == 1 and broken["file_id"] == "SF-20261207-1"
    assert broken["governorate_code"] == "01" and broken["business_date"] == "2026-12-07"


def test_a_broken_line_naming_no_payment_is_what_the_batch_declared_beyond_the_rest(ref, pay):
    pay(1)
    lines = [ref.file_line("KH-TXN-1"), ref.file_line("KH-GHOST", "100.00")]
    body = ref.settlement_file(lines)
    body["content"] = damaged(ref, lines, 2, "garble_amount")
    ref.set_clock(FILE_AT)

    assert ref.post_file(body).status_code == 201

    assert opened(ref) == [("BROKEN_FILE_LINE", "100.00")]


def test_a_file_whose_header_cannot_be_read_is_one_broken_line_of_the_file(ref, pay):
    pay(1)
    body = ref.settlement_file([ref.file_line()], content="nothing,like,a,header\r\n1,2,3,4\r\n")
    ref.set_clock(FILE_AT)

    response = ref.post_file(body)

    assert response.status_code == 201 and response.get_json()["broken_lines"] == 1
    [broken] = ref.exceptions(status="OPEN")
    assert broken["kind"] == "BROKEN_FILE_LINE" and broken["line_number"] == 0 and broken["amount"] == "855.00"
    assert broken["governorate_code"] is None
    assert ref.reconciliation()["file_exceptions"][0]["kind"] == "BROKEN_FILE_LINE"


def test_duplicate_file_under_another_id_counts_for_nothing(ref, pay):
    pay(1)
    first = deliver(ref)

    copy = deliver(ref, file_id="SF-20261207-1-R")

    assert copy["status"] == "DUPLICATE" and copy["duplicate_of"] == first["file_id"] and copy["days"] == []
    [dup] = ref.exceptions(status="OPEN")
    assert (dup["kind"], dup["amount"], dup["file_id"]) == ("DUPLICATE_FILE", "855.00", "SF-20261207-1-R")
    report = ref.reconciliation()
    assert report["governorates"][0]["file"]["count"] == 1  # not settled twice
    assert [f["status"] for f in report["files"]] == ["ACCEPTED", "DUPLICATE"]
    assert report["status"] == "EXCEPTIONS"


def test_the_same_file_again_is_a_replay_and_another_body_conflicts(ref, pay):
    pay(1)
    ref.set_clock(FILE_AT)
    body = ref.settlement_file([ref.file_line()])

    first = ref.post_file(body)
    again = ref.post_file(body)
    other = ref.post_file(dict(body, content=body["content"].replace("855.00", "854.00")))

    assert first.status_code == 201 and again.status_code == 200
    assert again.get_json() == first.get_json()
    assert other.status_code == 409 and other.get_json()["error"] == {
        "code": "CONFLICT", "message": "file SF-20261207-1 was already received with another body",
        "field": "file_id"}
    assert ref.exceptions() == [] and ref.reconciliation()["governorates"][0]["file"]["count"] == 1


def test_the_same_statement_again_is_a_replay_and_another_body_conflicts(ref, pay):
    pay(1)
    deliver(ref)
    ref.set_clock(STATEMENT_AT)
    body = ref.statement(ref.credit())

    first = ref.post_statement(body)
    again = ref.post_statement(body)
    other = ref.post_statement(dict(body, entries=[ref.credit("1.00")]))

    assert first.status_code == 201 and again.status_code == 200 and again.get_json() == first.get_json()
    assert other.status_code == 409 and other.get_json()["error"]["field"] == "statement_id"
    assert ref.reconciliation()["governorates"][0]["bank"]["amount"] == "855.00"
    # an entry a later statement lists again is not credited twice
    repeat = ref.post_statement(ref.statement(ref.credit(), statement_id="BS-20261209-B")).get_json()
    assert repeat["new_entries"] == 0 and repeat["repeated_entries"] == 1
    assert ref.reconciliation()["governorates"][0]["bank"]["amount"] == "855.00"


def test_a_bad_signature_is_refused_and_nothing_is_stored(ref, pay):
    pay(1)
    ref.set_clock(FILE_AT)
    body = ref.settlement_file([ref.file_line()])

    forged_file = ref.post_file(body, secret="khales_biller")
    forged_statement = ref.post_statement(ref.statement(ref.credit()), secret="settlement_notice")
    unsigned = ref.client.post("/settlement/files", json=body)

    assert forged_file.status_code == forged_statement.status_code == unsigned.status_code == 401
    assert forged_file.get_json()["error"]["code"] == "BAD_SIGNATURE"
    report = ref.reconciliation()
    assert report["files"] == [] and report["governorates"][0]["bank"]["count"] == 0
    assert ref.exceptions() == []
    assert ref.post_file(body).status_code == 201  # the courier's retry, signed right, goes through


def test_bad_values_are_refused_naming_the_field_and_nothing_is_stored(ref, pay):
    pay(1)
    ref.set_clock(FILE_AT)
    body = ref.settlement_file([ref.file_line()])

    bad_date = ref.post_file(dict(body, business_date="2026-02-30"))
    bad_amount = ref.post_file(dict(body, gross_amount="855.5"))
    bad_entry = ref.post_statement(ref.statement(dict(ref.credit(), value_date="2026-13-01")))

    assert bad_date.status_code == 422 and bad_date.get_json()["error"]["field"] == "business_date"
    assert bad_amount.status_code == 422 and bad_amount.get_json()["error"]["field"] == "gross_amount"
    assert bad_entry.status_code == 422 and bad_entry.get_json()["error"]["field"] == "entries.0.value_date"
    assert ref.reconciliation()["files"] == [] and ref.exceptions() == []


# --- the ledger changes after the day was reconciled -----------------------------------------------
def test_a_payment_recorded_after_the_day_was_reconciled_re_runs_the_day(ref):
    """The money reached settlement before the ledger heard of it (the biller's answer was late):
    an orphan at first, cleared when the payment is recorded (its transaction marks the day dirty)."""
    order = ref.create_order()
    deliver(ref)
    assert opened(ref) == [("ORPHAN_COLLECTION", "855.00")]

    response = ref.khales_payment(order, paid_at=ref.at("2026-12-07T10:00:00+02:00"))
    assert response.status_code == 200, response.get_json()
    ref.tick()

    [orphan] = ref.exceptions(kind="ORPHAN_COLLECTION")
    assert orphan["status"] == "RESOLVED" and "the ledger now knows the transaction" in orphan["resolution"]
    assert "the ledger changed after the day was reconciled" in orphan["resolution"]


def test_a_reversal_after_the_day_was_reconciled_resolves_its_missing_line(ref, pay):
    payments = pay(2)
    deliver(ref, [ref.file_line("KH-TXN-1")])
    assert opened(ref) == [("MISSING_IN_FILE", "855.00")]

    reversal = {"reversal_id": "REV-1", "khales_transaction_id": "KH-TXN-2",
                "bill_reference": payments[1]["bill_reference"]}
    assert ref.signed("/khales/reversals", reversal, "khales_biller").get_json()["status"] == "REVERSED"
    ref.tick()

    [missing] = ref.exceptions(kind="MISSING_IN_FILE")
    assert missing["status"] == "RESOLVED" and "the payment was reversed" in missing["resolution"]


# --- the exceptions report -------------------------------------------------------------------------
def test_outstanding_exceptions_with_age_in_business_days_and_history(ref, pay):
    pay(1)
    deliver(ref, [ref.file_line("KH-TXN-1"), ref.file_line("KH-GHOST", "100.00")])  # Tuesday 01:00

    ref.set_clock("2026-12-10T09:00:00+02:00")  # Thursday
    thursday = ref.client.get("/api/exceptions?status=OPEN").get_json()
    ref.set_clock("2026-12-13T09:00:00+02:00")  # Sunday: Friday and Saturday are the weekend
    sunday = ref.client.get("/api/exceptions?status=OPEN").get_json()

    assert problems("ref-exceptions.schema.json", sunday) == []
    orphan = next(e for e in thursday["exceptions"] if e["kind"] == "ORPHAN_COLLECTION")
    assert orphan["age_business_days"] == 2
    orphan = next(e for e in sunday["exceptions"] if e["kind"] == "ORPHAN_COLLECTION")
    assert orphan["age_business_days"] == 3
    assert orphan["history"] == [{"event": "OPENED", "at": ref.at(FILE_AT), "amount": "100.00",
                                  "reason": orphan["detail"] + " (file SF-20261207-1 received)"}]
    # the old path answers the same listing
    assert ref.client.get("/api/reconciliation/exceptions?status=OPEN").get_json()["exceptions"] == sunday["exceptions"]


def test_outstanding_exceptions_as_arabic_csv_for_excel(ref, pay):
    pay(1)
    deliver(ref, [ref.file_line("KH-TXN-1"), ref.file_line("KH-GHOST", "100.00")])

    response = ref.client.get("/api/exceptions?status=OPEN&format=csv&bom=1")

    assert response.status_code == 200 and response.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert [(r["النوع"], r["المبلغ"], r["الحالة"], r["العمر بأيام العمل"]) for r in rows] == [
        ("ORPHAN_COLLECTION", "100.00", "مفتوح", "0")]
    assert rows[0]["وصف النوع"] == "تحصيل في الملف غير معروف بالدفتر" and rows[0]["المحافظة"] == "القاهرة"
    assert ref.client.get("/api/exceptions?status=OPEN&bom=2").get_json()["error"]["field"] == "bom"
    assert ref.client.get("/api/exceptions?status=MAYBE").get_json()["error"]["field"] == "status"


def test_daily_report_settlement_follows_the_bank(ref, pay):
    pay(1)
    deliver(ref)
    bank(ref)

    report = ref.client.get("/api/reports/daily?date=2026-12-07").get_json()

    assert problems("ref-daily-report.schema.json", report) == []
    [cairo] = report["governorates"]
    assert cairo["settlement"]["status"] == "ON_TIME" and cairo["settlement"]["credited_amount"] == "855.00"
    assert {k: v["amount"] for k, v in cairo["collections"]["by_revenue_pool"].items()} == {"BLD": "750.00",
                                                                                            "VAT": "105.00"}


# --- without HTTP: the entry point a benchmark uses ------------------------------------------------
def test_ingest_a_file_from_an_iterable_of_lines_without_http(ref, pay):
    pay(1)
    app = ref.app
    reconciliation = app.extensions["reference"]["reconciliation"]
    ref.set_clock(FILE_AT)
    body = ref.settlement_file([ref.file_line()])
    header = {key: value for key, value in body.items() if key != "content"}

    def lines():
        yield from io.StringIO(body["content"])

    answer, status = reconciliation.ingest_file(header, lines())

    assert status == 201 and answer["readable_lines"] == 1
    assert reconciliation.reconcile_all() == 1
    assert reconciliation.reconcile_day("01", "2026-12-07") == {
        "governorate_code": "01", "business_date": "2026-12-07", "opened": 0, "resolved": 0}


# --- the database setting --------------------------------------------------------------------------
def test_database_url_forms_and_busy_timeout(tmp_path, settings):
    for url in (":memory:", f"sqlite:///{tmp_path}/a.sqlite3", str(tmp_path / "b.sqlite3"), "sqlite:///:memory:"):
        store = Store(url)
        try:
            assert store._one("PRAGMA busy_timeout")["timeout"] == 5000
        finally:
            store.close()
    assert (tmp_path / "a.sqlite3").exists()
    with pytest.raises(ValueError, match=r"postgresql:// databases are not supported"):
        Store("postgresql://tahseel@127.0.0.1/ledger")
    with pytest.raises(ValueError, match="reference.database"):
        create_app(dict(settings, reference=dict(settings["reference"], database="postgresql://db/ledger")))


def test_a_file_of_several_megabytes_is_taken_and_quotes_stay_inside_their_line(ref, pay):
    """A busy day's file is far over the 1 MiB a message may be; a quoted field keeps its comma."""
    pay(1)
    lines = [ref.file_line("KH-TXN-1", bill_reference="ref, with a comma")]
    lines += [ref.file_line("KH-TXN-1", "1.00", collection_id=f"card:KH-TXN-1:{n}", bill_reference="x" * 100)
              for n in range(12_000)]
    body = ref.settlement_file(lines)
    assert len(body["content"]) > 2_000_000
    ref.set_clock(FILE_AT)

    response = ref.post_file(body)

    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    assert answer["readable_lines"] == 12_001 and answer["broken_lines"] == 0 and answer["totals_match"] is True
    day = ref.reconciliation()["governorates"][0]
    assert day["file"] == {"count": 12_001, "amount": "12855.00", "collection_fees": "0.00", "broken_lines": 0,
                           "files": ["SF-20261207-1"]}
    assert ref.exceptions() == []  # the payment is there (and more: the batch says what the bank owes)


def test_a_refund_line_the_ledger_never_heard_of_is_an_orphan_and_a_khales_reversal_is_not(ref, pay):
    pay(1)
    lines = [ref.file_line("KH-TXN-1"),
             ref.file_line("RN-UNKNOWN", "-100.00", collection_id="card:KH-TXN-1:1:refund:RN-UNKNOWN",
                           line_type="reversal", reverses="card:KH-TXN-1:1"),
             ref.file_line("KH-REV-1", "-855.00", collection_id="khales:KH-REV-1", line_type="reversal",
                           reverses="khales:KH-TXN-1")]

    deliver(ref, lines)

    [orphan] = ref.exceptions(status="OPEN")
    assert (orphan["kind"], orphan["amount"]) == ("ORPHAN_COLLECTION", "-100.00")
    assert orphan["transaction_number"] == "RN-UNKNOWN"
