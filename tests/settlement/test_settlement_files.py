"""The detailed settlement file (CSV, CSV with BOM, JSON), the daily report and bad dates (E5)."""

from __future__ import annotations

import csv
import io

from simulators.common.signing import verify

HEADER = ("batch_id,governorate_code,business_date,value_date,collection_id,channel,bill_reference,"
          "service_code,transaction_number,amount,collection_fee,collected_at,settlement_account_code,"
          "payment_request_number,sender_request_number,mechanism,reconciliation_date,line_type,reverses")


def feed_a_day(feed, collection):
    feed.send(collection(1, collected_at="2026-12-03T10:00:00Z"))
    feed.send(collection(2, amount="49.50", collection_fee="0.50", channel="cash", source="khales",
                         service_code="TUC", collected_at="2026-12-03T09:00:00Z"))
    feed.send(collection(3, governorate_code="21", amount="10.00", collected_at="2026-12-03T11:00:00Z"))
    feed.send(collection(4, type="reversal", reverses="card:TX000000000001", collected_at="2026-12-03T12:00:00Z"))
    feed.send(collection(5, collected_at="2026-12-06T08:00:00Z"))  # another business date


def test_csv_file_has_the_header_and_one_signed_row_per_line(feed, client, app, collection):
    feed_a_day(feed, collection)

    response = client.get("/api/settlement-files/2026-12-03")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    raw = response.get_data()
    verify(app.extensions["tahseel"].secret("settlement_notice"), response.headers, raw,
           app.extensions["tahseel"].clock.now())
    text = raw.decode("utf-8")
    assert text.split("\r\n")[0] == HEADER
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["batch_id"], r["collection_id"], r["amount"]) for r in rows] == [
        ("B-01-20261203", "card:TX000000000002", "49.50"),
        ("B-01-20261203", "card:TX000000000001", "1250.50"),
        ("B-01-20261203", "card:TX000000000004", "-1250.50"),
        ("B-21-20261203", "card:TX000000000003", "10.00"),
    ]
    assert rows[0] == {
        "batch_id": "B-01-20261203", "governorate_code": "01", "business_date": "2026-12-03",
        "value_date": "2026-12-07", "collection_id": "card:TX000000000002", "channel": "cash",
        "bill_reference": "100200300402", "service_code": "TUC", "transaction_number": "TX000000000002",
        "amount": "49.50", "collection_fee": "0.50", "collected_at": "2026-12-03T09:00:00.000Z",
        "settlement_account_code": "", "payment_request_number": "", "sender_request_number": "", "mechanism": "",
        "reconciliation_date": "", "line_type": "payment", "reverses": ""}
    assert (rows[2]["line_type"], rows[2]["reverses"]) == ("reversal", "card:TX000000000001")


def test_bom_variant_is_the_same_file_behind_a_utf8_byte_order_mark(feed, client, collection):
    feed_a_day(feed, collection)

    plain = client.get("/api/settlement-files/2026-12-03").get_data()
    with_bom = client.get("/api/settlement-files/2026-12-03?bom=1").get_data()

    assert not plain.startswith(b"\xef\xbb\xbf")
    assert with_bom == b"\xef\xbb\xbf" + plain


def test_json_variant_and_governorate_filter(feed, client, collection):
    feed_a_day(feed, collection)

    body = client.get("/api/settlement-files/2026-12-03?format=json&governorate_code=21").get_json()

    assert body["business_date"] == "2026-12-03"
    assert body["columns"] == HEADER.split(",")
    assert [line["collection_id"] for line in body["lines"]] == ["card:TX000000000003"]


def test_empty_day_is_a_header_only_file(client):
    assert client.get("/api/settlement-files/2026-12-10").get_data(as_text=True) == HEADER + "\r\n"


def test_unparseable_dates_and_formats_are_400_naming_the_field(client):
    for bad in ("20261203", "2026-02-30", "yesterday"):
        response = client.get(f"/api/settlement-files/{bad}")
        assert (response.status_code, response.get_json()["error"]["field"]) == (400, "date"), bad
    wrong_format = client.get("/api/settlement-files/2026-12-03?format=xlsx")
    assert (wrong_format.status_code, wrong_format.get_json()["error"]["field"]) == (400, "format")
    assert client.get("/api/daily-reports/2026-13-01").status_code == 400


def test_daily_report_totals_per_governorate_channel_and_service(feed, client, collection):
    feed_a_day(feed, collection)

    report = client.get("/api/daily-reports/2026-12-03").get_json()

    assert report["totals"] == {"count": 4, "amount": "59.50", "collection_fees": "0.50"}
    assert [(g["governorate_code"], g["count"], g["amount"], g["settled_amount"])
            for g in report["by_governorate"]] == [("01", 3, "49.50", "49.50"), ("21", 1, "10.00", "10.00")]
    assert report["by_governorate"][0]["batches"] == [
        {"batch_id": "B-01-20261203", "value_date": "2026-12-07", "status": "OPEN"}]
    assert report["by_channel"] == [
        {"channel": "card", "count": 3, "amount": "10.00", "collection_fees": "0.00"},
        {"channel": "cash", "count": 1, "amount": "49.50", "collection_fees": "0.50"}]
    assert [(s["service_code"], s["amount"]) for s in report["by_service"]] == [("BPR", "10.00"), ("TUC", "49.50")]


def test_reset_forgets_every_batch_and_statement(feed, client, collection):
    feed_a_day(feed, collection)

    client.post("/_admin/reset")

    assert client.get("/api/batches").get_json() == {"batches": []}
    assert client.get("/api/bank-statements").get_json() == {"entries": []}
    assert feed.send(collection(1)).status_code == 201  # the idempotency index is gone too


def test_efinance_fields_of_a_line_reach_the_file_and_bad_ones_are_refused_naming_the_field(feed, client, collection):
    efinance = {"payment_request_number": "123456789012", "sender_request_number": "0123456789ABCDEF"}
    wrong_mechanism = feed.send(collection(1, mechanism="Cash", **efinance))
    wrong_number = feed.send(collection(1, mechanism="Meeza", payment_request_number="12 34"))
    assert (wrong_mechanism.status_code, wrong_mechanism.get_json()["error"]["field"]) == (422, "mechanism")
    assert (wrong_number.status_code, wrong_number.get_json()["error"]["field"]) == (422, "payment_request_number")
    assert client.get("/api/batches").get_json() == {"batches": []}

    assert feed.send(collection(1, mechanism="Meeza", **efinance)).status_code == 201
    [row] = csv.DictReader(io.StringIO(client.get("/api/settlement-files/2026-12-03").get_data(as_text=True)))
    assert (row["payment_request_number"], row["sender_request_number"], row["mechanism"],
            row["reconciliation_date"]) == ("123456789012", "0123456789ABCDEF", "Meeza", "2026-12-03")
    held = client.get("/api/collections/card:TX000000000001").get_json()
    assert (held["batch_id"], held["mechanism"]) == ("B-01-20261203", "Meeza")


def test_listings_refuse_bad_queries_naming_the_field(client):
    bad_date = client.get("/api/settlement-files?business_date=2026-12-32")
    unknown = client.get("/api/collections/card:TX404")

    assert (bad_date.status_code, bad_date.get_json()["error"]["field"]) == (400, "business_date")
    assert (unknown.status_code, unknown.get_json()["error"]["code"]) == (404, "COLLECTION_NOT_FOUND")
    assert client.get("/api/settlement-files").get_json() == {"files": []}
    assert client.get("/api/bank-statement-deliveries").get_json() == {"statements": []}
