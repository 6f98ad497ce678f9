"""Settlement against the ledger on the Egyptian business calendar (E2: within T+2).

Since issue 5 money counts as arrived only from the bank statement (``POST /settlement/bank-statements``);
e-finance's credit notices are recorded as advice. The day's file comes at 01:00 Cairo the next day.
"""

from __future__ import annotations

import copy
from datetime import date

from reference.app import create_app


def notice(ref, *, notice_id="NTC-1", business_date="2026-12-07", value_date="2026-12-09",
           credited_at="2026-12-09T10:00:00+02:00", amount="855.00", bill_reference=None, governorate="01"):
    transactions = []
    if bill_reference:
        transactions.append({"collection_id": "COL-1", "channel": "cash", "bill_reference": bill_reference,
                             "amount": amount, "collection_fee": "0.00", "transaction_number": "KH-TXN-1",
                             "collected_at": ref.at("2026-12-07T10:00:00+02:00"), "service_code": "BPR"})
    return {"notice_id": notice_id, "batch_id": f"B-{governorate}-{business_date}",
            "governorate_code": governorate, "business_date": business_date, "value_date": value_date,
            "credited_at": ref.at(credited_at), "iban": "EG380019000500000000263180002", "amount": amount,
            "collection_fees": "0.00", "currency": "EGP", "mode": "gross", "transactions": transactions}


def send(ref, body):
    return ref.signed("/settlement/notices", body, "settlement_notice")


def settlement(ref, day="2026-12-07"):
    report = ref.client.get(f"/api/reports/daily?date={day}&governorate_code=01").get_json()
    return report["governorates"][0]["settlement"]


def exceptions(ref, **query):
    text = "&".join(f"{k}={v}" for k, v in query.items())
    return ref.client.get(f"/api/reconciliation/exceptions?{text}").get_json()["exceptions"]


def paid_order(ref):
    order = ref.create_order()
    assert ref.khales_payment(order).status_code == 200
    return order


def deliver_file(ref, at="2026-12-08T01:00:00+02:00"):
    """Settlement's file of Monday 2026-12-07 (Cairo's batch: the one 855.00 cash payment)."""
    ref.set_clock(at)
    response = ref.post_file(ref.settlement_file([ref.file_line()]))
    assert response.status_code == 201, response.get_json()


def credit(ref, *, amount="855.00", credited_at="2026-12-09T10:00:00+02:00", value_date="2026-12-09"):
    """The bank's statement of the credit's Cairo day, delivered that evening."""
    day = credited_at[:10]
    ref.set_clock(f"{day}T18:00:00+02:00")
    response = ref.post_statement(ref.statement(ref.credit(amount, credited_at=credited_at, value_date=value_date),
                                                statement_date=day))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_credit_on_the_value_date_is_on_time(ref):
    order = paid_order(ref)  # Monday 2026-12-07 10:00 Cairo
    assert settlement(ref)["status"] == "PENDING"
    assert settlement(ref)["expected_value_date"] == "2026-12-09"  # Wednesday, T+2
    deliver_file(ref)

    ref.set_clock("2026-12-09T10:05:00+02:00")
    response = send(ref, notice(ref, bill_reference=order["bill_reference"]))

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["unmatched_transactions"] == 0
    # a notice is e-finance's advice: the day is credited when the bank says so
    assert response.get_json()["reconciliation"]["status"] == "PENDING"
    assert settlement(ref)["credited_amount"] is None

    answer = credit(ref)

    assert answer["days"] == [{"governorate_code": "01", "business_date": "2026-12-07"}]
    result = settlement(ref)
    assert result["status"] == "ON_TIME" and result["difference"] == "0.00" and result["days_late"] == 0
    assert result["credited_amount"] == "855.00" and result["credited_at"] == ref.at("2026-12-09T10:00:00+02:00")
    assert exceptions(ref) == []
    assert ref.reconciliation()["governorates"][0]["status"] == "RECONCILED"


def test_credit_the_next_day_is_late_by_one_business_day(ref):
    paid_order(ref)
    deliver_file(ref)
    ref.set_clock("2026-12-10T10:05:00+02:00")

    credit(ref, credited_at="2026-12-10T10:00:00+02:00", value_date="2026-12-10")

    result = settlement(ref)
    assert result["status"] == "LATE" and result["days_late"] == 1
    [late] = exceptions(ref, kind="LATE_SETTLEMENT")
    assert late["status"] == "RESOLVED" and "1 business day(s) late" in late["resolution"]
    assert late["amount"] == "855.00"


def test_missing_credit_is_overdue_at_cairo_midnight_then_late_when_it_comes(ref):
    paid_order(ref)
    deliver_file(ref)

    ref.set_clock("2026-12-09T23:59:59+02:00")
    assert exceptions(ref) == [] and settlement(ref)["status"] == "PENDING"
    ref.set_clock("2026-12-10T00:00:00+02:00")  # end of Wednesday, the expected value date
    [overdue] = exceptions(ref, status="OPEN", kind="LATE_SETTLEMENT")
    assert overdue["business_date"] == "2026-12-07" and overdue["amount"] == "855.00"
    assert settlement(ref)["status"] == "OVERDUE"

    ref.set_clock("2026-12-13T10:05:00+02:00")  # Sunday: Thursday and Sunday are business days late
    credit(ref, credited_at="2026-12-13T10:00:00+02:00", value_date="2026-12-13")

    assert settlement(ref)["status"] == "LATE" and settlement(ref)["days_late"] == 2
    [resolved] = exceptions(ref, kind="LATE_SETTLEMENT")
    assert resolved["id"] == overdue["id"] and resolved["status"] == "RESOLVED"
    assert resolved["resolved_at"] == ref.at("2026-12-13T18:00:00+02:00")  # when the statement told us
    assert "2 business day(s) late" in resolved["resolution"]
    assert [h["event"] for h in resolved["history"]] == ["OPENED", "RESOLVED"]


def test_thursday_and_weekend_collections_settle_after_the_weekend(ref, citizen_services, service_request):
    citizen_services.requests["SR-01-00000002"] = service_request("SR-01-00000002")
    ref.set_clock("2026-12-10T15:00:00+02:00")  # Thursday
    paid_order(ref)
    ref.set_clock("2026-12-11T12:00:00+02:00")  # Friday: belongs to Sunday's business date
    order = ref.create_order("SR-01-00000002")
    ref.khales_payment(order, txn="KH-TXN-FRI")

    assert settlement(ref, "2026-12-10")["expected_value_date"] == "2026-12-14"  # Sun, Mon
    assert ref.order(order["bill_reference"])["payments"][0]["business_date"] == "2026-12-13"
    assert settlement(ref, "2026-12-13")["expected_value_date"] == "2026-12-15"


def test_public_holidays_move_the_value_date(ref, settings):
    # Coptic Christmas, Thursday 2027-01-07: Wednesday's collections are due Monday 2027-01-11.
    ref.set_clock("2027-01-06T10:00:00+02:00")
    paid_order(ref)
    assert settlement(ref, "2027-01-06")["expected_value_date"] == "2027-01-11"
    # A holiday added by decree in the configuration counts too.
    moved = copy.deepcopy(settings)
    moved["calendar"]["extra_holidays"] = ["2026-12-08"]
    app = create_app(moved)
    try:
        reconciliation = app.extensions["reference"]["reconciliation"]
        assert reconciliation.expected_value_date(date(2026, 12, 7)).isoformat() == "2026-12-10"
    finally:
        app.extensions["tahseel"].stop()


def test_short_credit_is_an_exception(ref):
    paid_order(ref)
    deliver_file(ref)

    credit(ref, amount="800.00")

    result = settlement(ref)
    assert result["status"] == "SHORT" and result["difference"] == "-55.00"
    [short] = exceptions(ref, status="OPEN")
    assert short["kind"] == "SHORT_SETTLEMENT" and short["amount"] == "55.00"


def test_notice_is_idempotent_and_signed(ref):
    paid_order(ref)
    ref.set_clock("2026-12-09T10:05:00+02:00")
    body = notice(ref)

    first = send(ref, body)
    again = send(ref, body)
    other = send(ref, dict(body, amount="1.00"))
    forged = ref.signed("/settlement/notices", body, "khales_biller")

    assert first.status_code == 200 and first.get_json()["status"] == "RECORDED"
    assert again.status_code == 200 and again.get_json() == first.get_json()
    assert other.status_code == 409 and other.get_json()["error"]["field"] == "notice_id"
    assert forged.status_code == 401
    assert settlement(ref)["credited_amount"] is None  # advice, not money
    assert ref.reconciliation()["governorates"][0]["notices"] == {"count": 1, "amount": "855.00"}


def test_orphan_collection_is_reported_from_the_file(ref):
    """A notice's unknown lines are counted (advice); the exception comes from the settlement file."""
    ref.set_clock("2026-12-09T10:05:00+02:00")

    answer = send(ref, notice(ref, bill_reference="123456789012")).get_json()

    assert answer["unmatched_transactions"] == 1
    assert exceptions(ref, status="OPEN") == []
    response = ref.post_file(ref.settlement_file([ref.file_line("KH-UNKNOWN", bill_reference="123456789012")]))
    assert response.status_code == 201
    [orphan] = exceptions(ref, status="OPEN")
    assert orphan["kind"] == "ORPHAN_COLLECTION" and orphan["amount"] == "855.00"


def test_notice_with_a_reversal_line_is_accepted(ref):
    """A batch can hold a negative (reversal) line; the notice must not be refused for it."""
    order = paid_order(ref)
    ref.set_clock("2026-12-09T10:05:00+02:00")
    body = notice(ref, bill_reference=order["bill_reference"], amount="855.00")
    reversal = dict(body["transactions"][0], collection_id="COL-R", amount="-10.00", transaction_number="KH-REV-1")
    body["transactions"].append(reversal)
    body["amount"] = "845.00"
    response = send(ref, body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "RECORDED"
