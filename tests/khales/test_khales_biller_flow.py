"""Khales against a fake biller and a fake settlement on loopback: inquiry, payment, retries,
reversals, refusals and the collections feed. Time moves only through the simulated clock."""

from __future__ import annotations

import requests

from simulators.common.clock import parse_instant
from simulators.common.config import load_settings
from simulators.common.contracts import validate
from simulators.common.server import ServerThread
from simulators.khales.app import create_app

PAY = "/api/outlet-payments"


def pending_work(khales):
    """Scheduled work other than the end-of-day file (which every day with a payment posted has)."""
    return [t for t in khales.get("/_admin/scheduled").get_json()["tasks"] if "end-of-day" not in t["name"]]


def test_a_cash_payment_is_inquired_paid_and_receipted(bills, khales, fake_biller):
    response = khales.post(PAY, json={"bill_reference": bills.unpaid, "outlet_id": "KH-21-0002"})
    assert response.status_code == 201
    tx = response.get_json()
    assert tx["status"] == "PAID"
    assert (tx["amount"], tx["collection_fee"], tx["cash_collected"]) == ("360.00", "0.00", "360.00")
    assert tx["attempts"] == 1
    assert tx["error"] is None
    assert tx["paid_at"] == "2026-03-01T08:00:00.000Z"
    assert tx["inquiry"]["total_due"] == "360.00"
    assert tx["receipt"]["status"] == "ACCEPTED"
    assert tx["receipt"]["khales_transaction_id"] == tx["transaction_id"]

    outlet = khales.get("/api/outlets?governorate_code=21").get_json()["outlets"][1]
    [inquiry] = fake_biller.inquiries
    assert inquiry == {"inquiry_id": inquiry["inquiry_id"], "bill_reference": bills.unpaid,
                       "outlet_id": "KH-21-0002", "terminal_id": outlet["terminal_id"]}
    [payment] = fake_biller.payments
    assert payment == {"khales_transaction_id": tx["transaction_id"], "inquiry_id": inquiry["inquiry_id"],
                       "bill_reference": bills.unpaid, "amount": "360.00", "currency": "EGP",
                       "outlet_id": "KH-21-0002", "paid_at": "2026-03-01T08:00:00.000Z"}
    assert khales.get(f"/api/transactions/{tx['transaction_id']}").get_json() == tx


def test_the_same_transaction_is_not_paid_twice(bills, khales, fake_biller):
    body = {"bill_reference": bills.unpaid, "transaction_id": "KHT000000000042"}
    first = khales.post(PAY, json=body)
    replay = khales.post(PAY, json=body)
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.get_json() == first.get_json()
    assert (len(fake_biller.inquiries), len(fake_biller.payments)) == (1, 1)
    other = khales.post(PAY, json=dict(body, outlet_id="KH-02-0001"))
    assert (other.status_code, other.get_json()["error"]["field"]) == (409, "transaction_id")
    assert (len(fake_biller.inquiries), len(fake_biller.payments)) == (1, 1)


def test_a_timed_out_payment_is_retried_with_the_same_transaction_id(bills, khales_factory, fake_biller,
                                                                      fake_settlement):
    khales = khales_factory({"urls": {"reference": fake_biller.url, "settlement": fake_settlement.url},
                             "khales": {"biller_timeout_seconds": 0.3}})
    fake_biller.hold_payment_answers = 1  # the biller does the work but answers too late
    tx = khales.post(PAY, json={"bill_reference": bills.unpaid}).get_json()
    assert tx["status"] == "PAID"
    assert tx["attempts"] == 2
    first, second = fake_biller.payments
    assert first == second  # the same transaction id, the very same body
    assert first["khales_transaction_id"] == tx["transaction_id"]
    assert tx["receipt"]["khales_transaction_id"] == tx["transaction_id"]
    assert [e["outcome"] for e in tx["events"] if e["step"] == "payment"] == ["timeout", "HTTP 200"]
    assert fake_biller.reversals == []


def test_a_payment_whose_answer_is_always_lost_is_reversed(bills, khales, fake_biller, fake_settlement, fault):
    fault(khales, kind="drop_response", direction="out", target="reference", endpoint="/khales/payments")
    tx = khales.post(PAY, json={"bill_reference": bills.unpaid}).get_json()
    assert tx["status"] == "REVERSED"
    assert tx["attempts"] == 3  # the first try and payment_retries (2) more, all with one id
    assert {p["khales_transaction_id"] for p in fake_biller.payments} == {tx["transaction_id"]}
    assert len(fake_biller.payments) == 3
    [reversal] = fake_biller.reversals
    assert reversal == {"reversal_id": tx["reversal"]["reversal_id"], "khales_transaction_id": tx["transaction_id"],
                        "bill_reference": bills.unpaid, "reason": "NO_ANSWER"}
    assert tx["reversal"]["answer"]["status"] == "REVERSED"
    assert tx["error"]["code"] == "NO_ANSWER"
    assert tx["receipt"] is None
    # A reversed payment never reaches settlement.
    khales.post("/_admin/tick")
    assert pending_work(khales) == []
    assert fake_settlement.collections == []
    assert fake_biller.bills[bills.unpaid]["status"] == "UNPAID"


def test_an_unanswered_reversal_is_retried_on_the_simulated_clock(bills, khales, fake_biller, fault):
    fault(khales, kind="drop_response", direction="out", target="reference", endpoint="/khales/payments")
    fault(khales, kind="timeout", direction="out", target="reference", endpoint="/khales/reversals", count=2)
    tx = khales.post(PAY, json={"bill_reference": bills.unpaid}).get_json()
    assert tx["status"] == "REVERSAL_PENDING"
    assert tx["reversal"]["attempts"] == 1
    assert tx["reversal"]["next_attempt_at"] == "2026-03-01T08:01:00.000Z"  # 60 s later
    tx_url = f"/api/transactions/{tx['transaction_id']}"

    khales.post("/_admin/clock", json={"advance": "59s"})
    assert khales.get(tx_url).get_json()["reversal"]["attempts"] == 1
    khales.post("/_admin/clock", json={"advance": "1s"})
    pending = khales.get(tx_url).get_json()
    assert (pending["status"], pending["reversal"]["attempts"]) == ("REVERSAL_PENDING", 2)
    assert pending["reversal"]["next_attempt_at"] == "2026-03-01T08:06:00.000Z"  # then 300 s
    assert fake_biller.reversals == []  # both timeouts were injected before sending

    fake_biller.component.clock.set(parse_instant("2026-03-01T08:06:00Z"))  # keep the signing window
    khales.post("/_admin/clock", json={"advance": "5m"})
    done = khales.get(tx_url).get_json()
    assert (done["status"], done["reversal"]["attempts"]) == ("REVERSED", 3)
    assert [r["reversal_id"] for r in fake_biller.reversals] == [tx["reversal"]["reversal_id"]]
    assert pending_work(khales) == []


def test_an_unknown_bill_is_refused_with_the_billers_code(khales, fake_biller):
    tx = khales.post(PAY, json={"bill_reference": "999999999999"}).get_json()
    assert tx["status"] == "REFUSED"
    assert tx["error"]["code"] == "UNKNOWN_BILL"
    assert tx["inquiry"] is None
    assert fake_biller.payments == []


def test_a_bill_already_paid_or_expired_is_refused(bills, khales, fake_biller):
    paid = khales.post(PAY, json={"bill_reference": bills.paid}).get_json()
    assert (paid["status"], paid["error"]["code"]) == ("REFUSED", "ALREADY_PAID")
    assert paid["inquiry"]["status"] == "PAID"
    expired = khales.post(PAY, json={"bill_reference": bills.expired}).get_json()
    assert (expired["status"], expired["error"]["code"]) == ("REFUSED", "EXPIRED")
    # A bill paid at one outlet is refused at the next one.
    assert khales.post(PAY, json={"bill_reference": bills.unpaid}).get_json()["status"] == "PAID"
    again = khales.post(PAY, json={"bill_reference": bills.unpaid, "outlet_id": "KH-02-0003"}).get_json()
    assert (again["status"], again["error"]["code"]) == ("REFUSED", "ALREADY_PAID")
    assert len(fake_biller.payments) == 1


def test_the_biller_refusing_the_amount_is_a_refusal(bills, khales, fake_biller):
    tx = khales.post(PAY, json={"bill_reference": bills.unpaid, "amount": "300.00"}).get_json()
    assert (tx["status"], tx["error"]["code"], tx["amount"]) == ("REFUSED", "AMOUNT_MISMATCH", "300.00")
    assert fake_biller.payments[0]["amount"] == "300.00"
    assert fake_biller.reversals == []


def test_a_non_conforming_inquiry_answer_fails_the_transaction(bills, khales, fake_biller):
    tx = khales.post(PAY, json={"bill_reference": bills.broken}).get_json()
    assert tx["status"] == "FAILED"
    assert tx["error"]["code"] == "INVALID_BILLER_ANSWER"
    assert any(d.startswith("amount_due:") for d in tx["error"]["details"])
    assert tx["inquiry"]["amount_due"] == 360  # kept as evidence
    assert fake_biller.payments == []


def test_paid_collections_are_fed_to_settlement_on_tick(bills, khales, fake_settlement):
    tx = khales.post(PAY, json={"bill_reference": bills.unpaid}).get_json()
    # Queued for settlement at once (the ticker may already have sent it; the tick makes sure).
    assert tx["settlement_feed"]["state"] in ("pending", "delivered")
    assert khales.post("/_admin/tick").status_code == 200
    [collection] = fake_settlement.collections
    validate("st-collection.schema.json", collection)
    assert collection == {
        "collection_id": f"khales:{tx['transaction_id']}", "type": "payment", "channel": "cash",
        "source": "khales", "governorate_code": "21", "service_code": "TUC", "bill_reference": bills.unpaid,
        "amount": "360.00", "collection_fee": "0.00", "currency": "EGP",
        "collected_at": "2026-03-01T08:00:00.000Z", "transaction_number": tx["transaction_id"]}
    feed = khales.get(f"/api/transactions/{tx['transaction_id']}").get_json()["settlement_feed"]
    assert (feed["state"], len(feed["attempts"])) == ("delivered", 1)
    khales.post("/_admin/clock", json={"advance": "1h"})
    assert len(fake_settlement.collections) == 1


def test_the_feed_is_retried_with_backoff_until_settlement_answers(bills, khales, fake_settlement):
    fake_settlement.component.faults.add({"kind": "down", "direction": "in", "count": 2})
    tx = khales.post(PAY, json={"bill_reference": bills.unpaid}).get_json()
    tx_url = f"/api/transactions/{tx['transaction_id']}"
    khales.post("/_admin/tick")
    feed = khales.get(tx_url).get_json()["settlement_feed"]
    assert (feed["state"], len(feed["attempts"])) == ("pending", 1)
    assert feed["next_attempt_at"] == "2026-03-01T08:01:00.000Z"
    assert feed["attempts"][-1]["status"] == 503
    khales.post("/_admin/clock", json={"advance": "60s"})
    assert khales.get(tx_url).get_json()["settlement_feed"]["next_attempt_at"] == "2026-03-01T08:06:00.000Z"
    fake_settlement.component.clock.set(parse_instant("2026-03-01T08:06:00Z"))
    khales.post("/_admin/clock", json={"advance": "5m"})
    feed = khales.get(tx_url).get_json()["settlement_feed"]
    assert (feed["state"], len(feed["attempts"])) == ("delivered", 3)
    assert len(fake_settlement.collections) == 1


def test_cash_above_the_threshold_carries_the_configured_surcharge(bills, khales_factory, fake_biller,
                                                                     fake_settlement):
    khales = khales_factory({"urls": {"reference": fake_biller.url, "settlement": fake_settlement.url},
                             "khales": {"surcharge": "5.00", "surcharge_threshold": "500.00"}})
    big = khales.post(PAY, json={"bill_reference": bills.big}).get_json()
    assert (big["status"], big["amount"], big["collection_fee"], big["cash_collected"]) == (
        "PAID", "922.00", "5.00", "927.00")
    assert fake_biller.payments[0]["amount"] == "922.00"  # the biller is paid the bill, not the fee
    small = khales.post(PAY, json={"bill_reference": bills.unpaid}).get_json()
    assert small["collection_fee"] == "0.00"
    khales.post("/_admin/tick")
    fees = {c["bill_reference"]: (c["collection_fee"], c["governorate_code"], c["service_code"])
            for c in fake_settlement.collections}
    assert fees == {bills.big: ("5.00", "01", "BPR"), bills.unpaid: ("0.00", "21", "TUC")}


def test_over_real_sockets(bills, fake_biller, fake_settlement):
    """Khales itself on a loopback server, driven as the harness drives it: admin plane and API."""
    settings = load_settings(overrides={"urls": {"reference": fake_biller.url,
                                                 "settlement": fake_settlement.url}})
    server = ServerThread(create_app(settings)).start()
    try:
        with requests.Session() as http:
            http.trust_env = False
            assert http.post(f"{server.url}/_admin/clock", json={"set": bills.clock_at}, timeout=5).ok
            response = http.post(f"{server.url}{PAY}", json={"bill_reference": bills.unpaid}, timeout=10)
            assert response.status_code == 201
            assert response.json()["status"] == "PAID"
            assert http.post(f"{server.url}/_admin/tick", timeout=10).ok
            assert [c["bill_reference"] for c in fake_settlement.collections] == [bills.unpaid]
            journal = http.get(f"{server.url}/_admin/journal?direction=out", timeout=5).json()["entries"]
            assert [e["path"] for e in journal] == ["/khales/inquiry", "/khales/payments", "/api/collections"]
            assert all("X-Tahseel-Signature" in e["request_headers"] for e in journal)
    finally:
        server.stop()
