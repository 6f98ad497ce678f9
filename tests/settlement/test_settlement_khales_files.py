"""Khales' end-of-day files at settlement: signed intake, idempotency, reading line by line, the
comparison with the collections Khales fed (missing / extra / different), corrupted lines flagged
(never a crash), and the due time (pending, missing, late). Clocks are simulated; nobody sleeps."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from simulators.common.clock import parse_instant
from simulators.common.files import csv_text
from simulators.common.http import encode_json
from simulators.common.money import format_amount, parse_signed_amount
from simulators.common.signing import sign_headers
from simulators.settlement.khales_files import COLUMNS

DAY = "2026-12-03"  # Thursday; the fixtures' clock is 12:00 Cairo that day
VIEW = f"/api/khales-files/{DAY}"


def row(n: int, tx: str, amount: str = "27.00", **changes: str) -> dict[str, str]:
    base = {"line": str(n), "business_date": DAY, "record_type": "payment", "transaction_id": tx, "visit_id": "",
            "biller": "collection_service", "bill_reference": f"{100200300400 + n}", "status": "PAID",
            "bill_status": "PAID", "amount": amount, "collection_fee": "0.00", "cash_amount": amount,
            "currency": "EGP", "outlet_id": "KH-01-0001", "outlet_name_ar": "صيدلية الشفاء", "terminal_id": "T01000001",
            "outlet_governorate_code": "01", "governorate_code": "01", "service_code": "CTC",
            "payer_name": "منى علي حسن", "time_cairo": "2026-12-03T11:00:00+02:00", "reversal_id": "",
            "receipt_number": f"R{n}", "collection_id": f"khales:{tx}"}
    base.update(changes)
    return base


def envelope(rows: list[dict[str, str]], *, content: str | None = None, **changes) -> dict:
    body = {"file_id": "KH-EOD-20261203", "network": "khales", "business_date": DAY,
            "generated_at": "2026-12-03T22:15:00.000Z", "format": "csv", "line_count": len(rows),
            "net_amount": format_amount(sum(parse_signed_amount(r["amount"]) for r in rows)),
            "content": content if content is not None else csv_text(COLUMNS, rows)}
    body.update(changes)
    return body


def send_file(client, app, body: dict, secret: str = "collections_feed"):
    """Deliver a file as Khales does: once its day is over (at 00:30 Cairo the next day, unless the
    test's clock is later already)."""
    raw = encode_json(body)
    component = app.extensions["tahseel"]
    day_over = parse_instant(f"{date.fromisoformat(body['business_date']) + timedelta(days=1)}T00:30:00+02:00") \
        if isinstance(body.get("business_date"), str) and _is_date(body["business_date"]) else None
    if day_over is not None and component.clock.now() < day_over:
        component.clock.set(day_over)
    headers = sign_headers(component.secret(secret), raw, component.clock.now())
    headers["Content-Type"] = "application/json"
    return client.post("/api/khales-files", data=raw, headers=headers)


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def fed(feed, collection, n: int, tx: str, amount: str = "27.00", **changes):
    body = collection(n, collection_id=f"khales:{tx}", transaction_number=tx, channel="cash", source="khales",
                      service_code="CTC", bill_reference=f"{100200300400 + n}", amount=amount,
                      collected_at="2026-12-03T09:00:00Z", **changes)
    assert feed.send(body).status_code == 201


def test_a_file_that_matches_the_feed(feed, client, app, collection):
    fed(feed, collection, 1, "KHT1")
    fed(feed, collection, 2, "KHT2", "922.00")
    rows = [row(1, "KHT1"), row(2, "KHT2", "922.00", visit_id="KHV1"),
            row(3, "KHT3", "10.00", status="REVERSED", bill_status="", receipt_number="", collection_id=""),
            row(4, "KHT3", "-10.00", record_type="reversal", status="REVERSED", bill_status="", receipt_number="",
                collection_id="", reversal_id="KHR1"),
            row(5, "KHT5", "240.50", biller="efinance", collection_id="")]  # e-finance settles it itself
    response = send_file(client, app, envelope(rows))
    assert response.status_code == 201
    assert response.get_json() == {"file_id": "KH-EOD-20261203", "business_date": DAY, "status": "RECEIVED",
                                   "received_at": "2026-12-03T22:30:00.000Z", "late": False, "lines": 5,
                                   "corrupted": 0}
    view = client.get(VIEW).get_json()
    assert (view["status"], view["result"], view["matched"], view["lines"], view["late"]) == (
        "RECEIVED", "MATCHED", 2, 5, False)
    assert view["mismatches"] == {"missing": [], "extra": [], "different": [], "duplicate": [], "corrupted": [],
                                  "totals": []}
    assert view["file_lines"][0]["outlet_name_ar"] == "صيدلية الشفاء"
    assert view["fed_collections"] == 2
    # Kept exactly as it arrived.
    content = client.get(VIEW + "/content")
    assert content.status_code == 200 and content.get_data() == envelope(rows)["content"].encode("utf-8")
    assert client.get("/api/khales-files").get_json()["files"][0]["result"] == "MATCHED"


def test_missing_extra_and_different_lines_are_named(feed, client, app, collection):
    fed(feed, collection, 1, "KHT1")
    fed(feed, collection, 2, "KHT2", "50.00")       # the file says 55.00
    fed(feed, collection, 4, "KHT4")                # the file does not list it
    rows = [row(1, "KHT1"), row(2, "KHT2", "55.00"), row(3, "KHT3")]  # KHT3 was never fed
    assert send_file(client, app, envelope(rows)).status_code == 201
    view = client.get(VIEW).get_json()
    assert (view["result"], view["matched"]) == ("MISMATCHED", 1)
    assert view["mismatches"]["missing"] == [{"line": 3, "collection_id": "khales:KHT3", "transaction_id": "KHT3",
                                              "amount": "27.00"}]
    assert [e["collection_id"] for e in view["mismatches"]["extra"]] == ["khales:KHT4"]
    assert view["mismatches"]["different"] == [{"line": 2, "collection_id": "khales:KHT2", "fields": [
        {"field": "amount", "file": "55.00", "settlement": "50.00"}]}]
    # A feed retried after the file arrived is counted once it is in.
    fed(feed, collection, 3, "KHT3")
    assert client.get(VIEW).get_json()["mismatches"]["missing"] == []


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda line: ",".join(line.split(",")[:9]), "9 fields, not 24"),
    (lambda line: line.replace(",27.00,0.00,27.00,", ",27.0O,0.00,27.00,"), "amount"),
    (lambda line: line.replace(",27.00,0.00,27.00,", ",27.00,0.00,28.00,"), "cash_amount"),
    (lambda line: line.replace(f"1,{DAY},", "1,2026-12-04,"), "business_date"),
    (lambda line: line.replace(",payment,", ",refund,"), "record_type"),
    (lambda line: line.replace(",KHT1,", ',"KHT1,'), "fields"),
])
def test_a_corrupted_line_is_flagged_by_number_and_the_rest_is_read(feed, client, app, collection, damage, reason):
    fed(feed, collection, 1, "KHT1")
    fed(feed, collection, 2, "KHT2")
    text = csv_text(COLUMNS, [row(1, "KHT1"), row(2, "KHT2")])
    lines = text.split("\r\n")
    lines[1] = damage(lines[1])
    response = send_file(client, app, envelope([row(1, "KHT1"), row(2, "KHT2")], content="\r\n".join(lines)))
    assert response.status_code == 201 and response.get_json()["corrupted"] == 1
    view = client.get(VIEW).get_json()
    [corrupted] = view["mismatches"]["corrupted"]
    assert corrupted["line"] == 1 and reason in corrupted["reason"], corrupted
    assert (view["result"], view["lines"], view["matched"]) == ("MISMATCHED", 1, 1)
    assert view["mismatches"]["missing"] == []
    # The corrupted line still names its transaction when the id survived: no false "extra".
    if corrupted.get("transaction_id") == "KHT1":
        assert view["mismatches"]["extra"] == []


def test_a_wrong_header_or_line_count_is_flagged_not_fatal(client, app):
    bad_header = envelope([row(1, "KHT1")], content="line;business_date\r\n1;2026-12-03\r\n")
    assert send_file(client, app, bad_header).status_code == 201
    [corrupted] = client.get(VIEW).get_json()["mismatches"]["corrupted"]
    assert corrupted["line"] == 0 and "header" in corrupted["reason"]

    short = envelope([row(1, "KHT1")], business_date="2026-12-02", line_count=3,
                     content=csv_text(COLUMNS, [row(1, "KHT1", business_date="2026-12-02")]))
    assert send_file(client, app, dict(short, file_id="KH-EOD-20261202")).status_code == 201
    [count] = client.get("/api/khales-files/2026-12-02").get_json()["mismatches"]["corrupted"]
    assert count["line"] is None and "declares 3 lines and 1 arrived" in count["reason"]

    bom = envelope([row(1, "KHT1")], business_date="2026-12-01", file_id="KH-EOD-20261201",
                   content="\ufeff" + csv_text(COLUMNS, [row(1, "KHT1", business_date="2026-12-01")]))
    assert send_file(client, app, bom).get_json()["corrupted"] == 0  # a byte-order mark is tolerated


def test_the_same_file_again_is_the_same_answer_and_another_is_a_conflict(client, app):
    body = envelope([row(1, "KHT1")])
    first = send_file(client, app, body)
    again = send_file(client, app, body)
    other = send_file(client, app, envelope([row(1, "KHT1", "28.00", cash_amount="28.00")]))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    assert (other.status_code, other.get_json()["error"]["code"]) == (409, "IDEMPOTENCY_CONFLICT")
    assert client.get(VIEW).get_json()["file_lines"][0]["amount"] == "27.00"


def test_bad_deliveries_are_refused_and_change_nothing(client, app):
    forged = send_file(client, app, envelope([row(1, "KHT1")]), secret="settlement_notice")
    assert (forged.status_code, forged.get_json()["error"]["code"]) == (401, "BAD_SIGNATURE")
    for body, field in ((dict(envelope([]), format="xlsx"), "format"),
                        (dict(envelope([]), line_count=-1), "line_count"),
                        (dict(envelope([]), business_date="2026-02-30"), "business_date"),
                        ({k: v for k, v in envelope([]).items() if k != "content"}, "content")):
        response = send_file(client, app, body)
        assert (response.status_code, response.get_json()["error"]["field"]) == (422, field), body
    view = client.get(VIEW).get_json()
    assert (view["status"], view["received"]) == ("PENDING", False)
    assert client.get(VIEW + "/content").status_code == 404
    assert client.get("/api/khales-files/2026-13-01").get_json()["error"]["field"] == "date"


def test_pending_then_missing_then_received_late(client, app):
    clock = app.extensions["tahseel"].clock
    assert client.get(VIEW).get_json()["status"] == "PENDING"
    assert client.post("/_admin/clock", json={"set": "2026-12-04T02:00:00+02:00"}).status_code == 200
    missing = client.get(VIEW).get_json()
    assert (missing["status"], missing["due_at"]) == ("MISSING", "2026-12-04T00:00:00.000Z")
    client.post("/_admin/clock", json={"set": "2026-12-04T03:15:00+02:00"})
    answer = send_file(client, app, envelope([])).get_json()
    assert answer["late"] is True
    view = client.get(VIEW).get_json()
    assert (view["status"], view["late"], view["late_by_seconds"], view["result"]) == (
        "RECEIVED", True, 4500, "MATCHED")
    assert clock.now().isoformat().startswith("2026-12-04T01:15")


def test_the_due_time_is_a_setting(make_app, feed_for):
    app = make_app(khales_file_due="06:30")
    view = app.test_client().get(VIEW).get_json()
    assert view["due_at"] == "2026-12-04T04:30:00.000Z"



def test_a_payment_listed_twice_or_a_wrong_declared_total_is_never_matched(feed, client, app, collection):
    # A breaker's case: a file repeating a payment line (and declaring 99999.00) came back MATCHED.
    fed(feed, collection, 1, "KHT1")
    rows = [row(1, "KHT1"), row(2, "KHT1")]
    body = envelope(rows, net_amount="99999.00")
    assert send_file(client, app, body).status_code == 201
    view = client.get(VIEW).get_json()
    assert view["result"] == "MISMATCHED" and view["matched"] == 1
    assert [d["line"] for d in view["mismatches"]["duplicate"]] == [2]
    assert view["mismatches"]["totals"] == [{"field": "net_amount", "file": "99999.00", "lines": "54.00"}]


def test_lines_that_cannot_be_true_are_corrupted(client, app):
    rows = [row(1, "KHT1", collection_id=""),  # paid to the collection service, but no feed id
            row(2, "KHT2", "-27.00", cash_amount="-27.00", record_type="reversal")]  # a PAID reversal
    assert send_file(client, app, envelope(rows)).status_code == 201
    corrupted = client.get(VIEW).get_json()["mismatches"]["corrupted"]
    assert [c["line"] for c in corrupted] == [1, 2]


def test_a_file_for_a_day_not_over_or_under_another_id_is_refused(client, app):
    component = app.extensions["tahseel"]
    raw = encode_json(envelope([row(1, "KHT1")]))
    headers = sign_headers(component.secret("collections_feed"), raw, component.clock.now())
    early = client.post("/api/khales-files", data=raw, headers=dict(headers, **{"Content-Type": "application/json"}))
    assert (early.status_code, early.get_json()["error"]["field"]) == (422, "business_date")
    renamed = send_file(client, app, envelope([row(1, "KHT1")], file_id="KH-EOD-20261204"))
    assert (renamed.status_code, renamed.get_json()["error"]["field"]) == (422, "file_id")
    assert client.get(VIEW).get_json()["received"] is False
