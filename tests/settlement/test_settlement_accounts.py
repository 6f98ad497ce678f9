"""e-finance settlement accounts and reconciliation dates on collection lines (issue 3, E2/E5).

An e-finance request splits its money over several settlement accounts (one collection line per
SettlementAmounts line) and the gateway decides each approval's ReconciliationDate: settlement
totals by account and batches by that date, and refuses what would put money in the wrong place.
"""

from __future__ import annotations

import csv
import io


def test_lines_carry_their_account_and_the_batch_and_report_total_by_account(feed, client, collection):
    feed.send(collection(1, amount="100.00", settlement_account_code="0101001"))
    feed.send(collection(2, amount="14.00", settlement_account_code="0108001"))
    feed.send(collection(3, amount="5.00", settlement_account_code="0101001"))
    feed.send(collection(4, amount="7.00"))  # a Khales-style line without an account

    batch = client.get("/api/batches/B-01-20261203").get_json()
    report = client.get("/api/daily-reports/2026-12-03").get_json()
    rows = list(csv.DictReader(io.StringIO(client.get("/api/settlement-files/2026-12-03").get_data(as_text=True))))

    expected = [{"settlement_account_code": "0101001", "count": 2, "amount": "105.00", "collection_fees": "0.00"},
                {"settlement_account_code": "0108001", "count": 1, "amount": "14.00", "collection_fees": "0.00"}]
    assert batch["by_settlement_account"] == expected
    assert report["by_settlement_account"] == expected
    assert batch["lines"][0]["settlement_account_code"] == "0101001"
    assert "settlement_account_code" not in batch["lines"][3]
    assert [r["settlement_account_code"] for r in rows] == ["0101001", "0108001", "0101001", ""]


def test_a_reversal_must_name_the_account_of_the_payment_it_reverses(feed, client, collection):
    feed.send(collection(1, amount="100.00", settlement_account_code="0101001"))

    wrong = feed.send(collection(2, type="reversal", reverses="card:TX000000000001", amount="40.00",
                                 settlement_account_code="0102001"))
    missing = feed.send(collection(3, type="reversal", reverses="card:TX000000000001", amount="40.00"))
    right = feed.send(collection(4, type="reversal", reverses="card:TX000000000001", amount="40.00",
                                 settlement_account_code="0101001"))

    assert wrong.status_code == 422 and wrong.get_json()["error"]["field"] == "settlement_account_code"
    assert missing.status_code == 422 and missing.get_json()["error"]["field"] == "settlement_account_code"
    assert right.status_code == 201
    batch = client.get("/api/batches/B-01-20261203").get_json()
    assert batch["by_settlement_account"] == [
        {"settlement_account_code": "0101001", "count": 2, "amount": "60.00", "collection_fees": "0.00"}]


def test_the_senders_reconciliation_date_picks_the_batch(feed, client, collection):
    # Thursday 23:30 Cairo: by the collected_at it is Thursday's; the gateway reconciles it on Sunday.
    answer = feed.send(collection(1, collected_at="2026-12-03T21:30:00Z", reconciliation_date="2026-12-06"))

    assert answer.status_code == 201
    assert answer.get_json()["batch_id"] == "B-01-20261206"
    assert answer.get_json()["business_date"] == "2026-12-06"
    assert client.get("/api/batches/B-01-20261203").status_code == 404


def test_a_reconciliation_date_on_a_weekend_or_before_the_collection_is_refused_and_changes_nothing(
        feed, client, collection):
    weekend = feed.send(collection(1, reconciliation_date="2026-12-04"))  # a Friday
    earlier = feed.send(collection(2, reconciliation_date="2026-12-02"))  # before Thursday's collection
    not_a_date = feed.send(collection(3, reconciliation_date="2026-13-01"))

    for answer in (weekend, earlier, not_a_date):
        assert answer.status_code == 422
        assert answer.get_json()["error"]["field"] == "reconciliation_date"
    assert client.get("/api/batches").get_json()["batches"] == []
