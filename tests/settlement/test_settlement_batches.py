"""Settlement intake and batches: business dates, value dates on the Egyptian calendar (E2), faults."""

from __future__ import annotations

from datetime import date, timedelta

import holidays

from simulators.common.clock import parse_instant


def test_thursday_collection_settles_on_monday_after_the_friday_saturday_weekend(feed, client, collection):
    eg = holidays.country_holidays("EG", years=2026, categories=("public", "government"))
    assert date(2026, 12, 3).strftime("%A") == "Thursday"
    assert date(2026, 12, 6) not in eg and date(2026, 12, 7) not in eg  # T+1 Sunday, T+2 Monday

    response = feed.send(collection())

    assert response.status_code == 201
    assert response.get_json() == {"collection_id": "card:TX000000000001", "status": "ACCEPTED",
                                   "batch_id": "B-01-20261203", "business_date": "2026-12-03",
                                   "value_date": "2026-12-07"}
    batch = client.get("/api/batches/B-01-20261203").get_json()
    assert batch["credit_at"] == "2026-12-07T08:00:00.000Z"  # 10:00 Cairo (UTC+2 in December)
    assert (batch["status"], batch["amount"], batch["count"]) == ("OPEN", "1250.50", 1)
    assert batch["iban"] == "EG470019000100000000010000001"
    assert batch["lines"][0]["collection_id"] == "card:TX000000000001"


def test_collection_the_day_before_a_public_holiday_skips_the_holiday(feed, collection):
    eg = holidays.country_holidays("EG", years=2026, categories=("public", "government"))
    assert "Christmas" in eg[date(2026, 1, 7)]  # Coptic Christmas, a Wednesday

    answer = feed.send(collection(collected_at="2026-01-06T09:00:00Z")).get_json()

    # Tue 6 Jan; Wed 7 holiday; Thu 8 = T+1; Fri-Sat weekend; Sun 11 = T+2.
    assert (answer["business_date"], answer["value_date"]) == ("2026-01-06", "2026-01-11")


def test_friday_collection_belongs_to_sunday_and_settles_tuesday(feed, collection):
    answer = feed.send(collection(collected_at="2026-12-04T10:00:00Z")).get_json()

    assert (answer["batch_id"], answer["business_date"], answer["value_date"]) == (
        "B-01-20261206", "2026-12-06", "2026-12-08")


def test_collection_after_the_cutoff_belongs_to_the_next_business_day(make_app, feed_for, collection):
    feed = feed_for(make_app(cutoff="16:00"))
    before = feed.send(collection(1, collected_at="2026-12-03T13:59:00Z")).get_json()  # 15:59 Cairo
    after = feed.send(collection(2, collected_at="2026-12-03T14:00:00Z")).get_json()  # 16:00 Cairo

    assert (before["business_date"], before["value_date"]) == ("2026-12-03", "2026-12-07")
    assert (after["business_date"], after["value_date"]) == ("2026-12-06", "2026-12-08")


def test_intake_is_idempotent_by_collection_id(feed, client, collection):
    first = feed.send(collection())
    again = feed.send(collection())
    other = feed.send(collection(amount="1.00"))

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.get_json() == first.get_json()
    assert other.get_json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    assert client.get("/api/batches/B-01-20261203").get_json()["count"] == 1


def test_bad_signature_is_refused_and_creates_nothing(feed, client, collection):
    response = feed.send(collection(), secret="not-the-feed-secret")

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "BAD_SIGNATURE"
    assert client.get("/api/batches").get_json() == {"batches": []}


def test_unknown_governorate_and_contract_breaks_are_refused(feed_for, collection):
    from simulators.common.config import load_settings
    from simulators.settlement.app import create_app

    settings = load_settings(overrides={"urls": {"reference": "http://127.0.0.1:9"}})
    settings["catalog"]["governorates"].pop("03", None)  # a governorate without a bank account
    app = create_app(settings)
    try:
        feed, client = feed_for(app), app.test_client()
        unknown = feed.send(collection(governorate_code="03"))
        float_amount = feed.send(collection(amount=12.5))

        assert (unknown.status_code, unknown.get_json()["error"]["field"]) == (422, "governorate_code")
        assert (float_amount.status_code, float_amount.get_json()["error"]["field"]) == (422, "amount")
        assert client.get("/api/batches").get_json() == {"batches": []}
    finally:
        app.extensions["tahseel"].stop()


def test_reversal_is_a_negative_line_in_its_own_batch(feed, client, collection):
    feed.send(collection(1))
    reversal = collection(2, type="reversal", reverses="card:TX000000000001",
                          collected_at="2026-12-06T08:00:00Z")  # Sunday

    answer = feed.send(reversal).get_json()

    assert answer["batch_id"] == "B-01-20261206"
    batch = client.get("/api/batches/B-01-20261206").get_json()
    assert (batch["amount"], batch["lines"][0]["amount"], batch["lines"][0]["type"]) == (
        "-1250.50", "-1250.50", "reversal")
    assert client.get("/api/batches/B-01-20261203").get_json()["amount"] == "1250.50"
    twice = feed.send(collection(3, type="reversal", reverses="card:TX000000000001"))
    unknown = feed.send(collection(4, type="reversal", reverses="card:TX999999999999"))
    assert (twice.status_code, twice.get_json()["error"]["code"]) == (409, "ALREADY_REVERSED")
    assert (unknown.status_code, unknown.get_json()["error"]["field"]) == (422, "reverses")


def test_late_batch_fault_delays_the_value_date_by_exactly_one_business_day(feed, client, collection):
    fault = {"direction": "domain", "kind": "late_batch", "endpoint": "batch",
             "match": {"governorate_code": "01"}, "params": {"business_days": 1}, "count": 1}
    assert client.post("/_admin/faults", json=fault).status_code == 201

    late = feed.send(collection(1)).get_json()
    other_governorate = feed.send(collection(2, governorate_code="21")).get_json()

    assert late["value_date"] == "2026-12-08"  # Monday 7 + one business day
    assert other_governorate["value_date"] == "2026-12-07"
    assert client.get("/api/batches/B-01-20261203").get_json()["late_by"] == 1
    assert client.get("/api/batches/B-21-20261203").get_json()["late_by"] == 0


def test_batch_is_credited_when_the_clock_passes_the_credit_instant_and_not_before(
        feed, client, app, collection):
    feed.send(collection(1))
    feed.send(collection(2, amount="49.50", channel="cash", source="khales"))
    clock = app.extensions["tahseel"].clock

    clock.set(parse_instant("2026-12-07T09:59:59+02:00"))
    client.post("/_admin/tick")
    # Friday 01:00's file run published and closed it; the bank has not credited it yet.
    assert client.get("/api/batches/B-01-20261203").get_json()["status"] == "CLOSED"
    assert client.get("/api/bank-statements").get_json() == {"entries": []}

    clock.advance(timedelta(seconds=1))
    client.post("/_admin/tick")

    batch = client.get("/api/batches/B-01-20261203").get_json()
    assert (batch["status"], batch["credited_at"]) == ("CREDITED", "2026-12-07T08:00:00.000Z")
    [entry] = client.get("/api/bank-statements?governorate_code=01").get_json()["entries"]
    assert entry == {"entry_id": batch["statement_entry_id"], "governorate_code": "01",
                     "iban": "EG470019000100000000010000001", "value_date": "2026-12-07",
                     "amount": "1300.00", "currency": "EGP", "reference": "B-01-20261203",
                     "credited_at": "2026-12-07T08:00:00.000Z"}
    assert client.get("/api/bank-statements?governorate_code=02").get_json() == {"entries": []}
    # A collection for the same day arriving after the credit opens a supplementary batch.
    late = feed.send(collection(3)).get_json()
    assert late["batch_id"] == "B-01-20261203-2"


def test_net_mode_credits_the_amount_minus_collection_fees(make_app, feed_for, collection):
    app = make_app(mode="net")
    client = app.test_client()
    feed = feed_for(app)
    feed.send(collection(1, amount="100.00", collection_fee="1.50"))
    feed.send(collection(2, amount="50.00", collection_fee="0.75"))

    batch = client.get("/api/batches/B-01-20261203").get_json()
    assert (batch["gross_amount"], batch["collection_fees"], batch["amount"]) == ("150.00", "2.25", "147.75")


def test_batches_can_be_listed_by_business_date_and_governorate(feed, client, collection):
    feed.send(collection(1))
    feed.send(collection(2, governorate_code="02"))
    feed.send(collection(3, collected_at="2026-12-06T08:00:00Z"))

    by_date = client.get("/api/batches?business_date=2026-12-03").get_json()["batches"]
    by_both = client.get("/api/batches?business_date=2026-12-03&governorate_code=02").get_json()["batches"]
    bad = client.get("/api/batches?business_date=03-12-2026")

    assert [b["batch_id"] for b in by_date] == ["B-01-20261203", "B-02-20261203"]
    assert [b["batch_id"] for b in by_both] == ["B-02-20261203"]
    assert (bad.status_code, bad.get_json()["error"]["field"]) == (400, "business_date")
    assert client.get("/api/batches/B-09-20261203").status_code == 404


def test_a_payment_can_be_reversed_in_parts_but_never_beyond_its_amount(feed, client, collection):
    feed.send(collection(1))  # 1250.50
    part = {"type": "reversal", "reverses": "card:TX000000000001"}
    assert feed.send(collection(2, amount="250.50", **part)).status_code == 201
    assert feed.send(collection(3, amount="1000.00", **part)).status_code == 201
    more = feed.send(collection(4, amount="0.01", **part))
    assert (more.status_code, more.get_json()["error"]["code"]) == (409, "ALREADY_REVERSED")
    assert client.get("/api/batches/B-01-20261203").get_json()["amount"] == "0.00"


def test_a_part_larger_than_what_is_left_is_refused(feed, client, collection):
    feed.send(collection(1))
    part = {"type": "reversal", "reverses": "card:TX000000000001"}
    assert feed.send(collection(2, amount="1000.00", **part)).status_code == 201
    over = feed.send(collection(3, amount="250.51", **part))
    assert (over.status_code, over.get_json()["error"]["field"]) == (422, "amount")
    assert client.get("/api/batches/B-01-20261203").get_json()["amount"] == "250.50"
