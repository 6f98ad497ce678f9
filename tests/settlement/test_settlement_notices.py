"""Credit notices over real sockets: sent when the clock passes the credit instant, signed, retried."""

from __future__ import annotations

import json

from simulators.common.clock import parse_instant
from simulators.common.contracts import validate
from simulators.common.signing import verify

NOTICES = "/settlement/notices"


def test_notice_is_sent_when_the_clock_passes_the_credit_instant_and_not_before(
        live_settlement, receiver, collection):
    live_settlement.feed.send(collection(1))
    live_settlement.feed.send(collection(2, amount="49.50", collection_fee="0.50"))

    assert live_settlement.admin("tick")["next_due"] == "2026-12-03T23:00:00.000Z"  # Friday 01:00: the file run
    assert live_settlement.admin("clock", {"set": "2026-12-04T01:00:00+02:00"})["next_due"] == (
        "2026-12-07T08:00:00.000Z")  # Monday 10:00 Cairo: the credit
    live_settlement.admin("clock", {"set": "2026-12-07T09:59:59+02:00"})
    assert receiver.on(NOTICES) == []

    moved = live_settlement.admin("clock", {"advance": "1s"})

    [notice] = receiver.on(NOTICES)
    verify(live_settlement.component.secret("settlement_notice"), notice["headers"], notice["body"],
           parse_instant(moved["now"]))
    body = json.loads(notice["body"])
    validate("st-credit-notice.schema.json", body)
    assert (body["batch_id"], body["business_date"], body["value_date"]) == (
        "B-01-20261203", "2026-12-03", "2026-12-07")
    assert (body["amount"], body["collection_fees"], body["credited_at"]) == (
        "1300.00", "0.50", "2026-12-07T08:00:00.000Z")
    assert [t["collection_id"] for t in body["transactions"]] == ["card:TX000000000001", "card:TX000000000002"]
    assert body["file_url"].endswith("/api/settlement-files/2026-12-03")


def test_jumping_days_ahead_credits_every_due_batch_in_order(live_settlement, receiver, collection):
    live_settlement.feed.send(collection(1, collected_at="2026-12-06T08:00:00Z"))  # Sunday: value Tue 8
    live_settlement.feed.send(collection(2))  # Thursday: value Mon 7

    live_settlement.admin("clock", {"set": "2026-12-10T12:00:00+02:00"})

    assert [json.loads(n["body"])["batch_id"] for n in receiver.on(NOTICES)] == [
        "B-01-20261203", "B-01-20261206"]
    entries = live_settlement.get("/api/bank-statements")["entries"]
    assert [(e["reference"], e["credited_at"]) for e in entries] == [
        ("B-01-20261203", "2026-12-07T08:00:00.000Z"), ("B-01-20261206", "2026-12-08T08:00:00.000Z")]


def test_failed_notice_is_retried_after_the_backoff_and_never_duplicated(live_settlement, receiver, collection):
    live_settlement.feed.send(collection(1))
    live_settlement.admin("clock", {"set": "2026-12-04T01:00:00+02:00"})  # the file run goes first
    receiver.answer_next(500)

    live_settlement.admin("clock", {"set": "2026-12-07T10:00:00+02:00"})
    assert len(receiver.on(NOTICES)) == 1
    live_settlement.admin("clock", {"advance": "59s"})
    assert len(receiver.on(NOTICES)) == 1
    live_settlement.admin("clock", {"advance": "1s"})
    live_settlement.admin("clock", {"advance": "2d"})

    first, second = receiver.on(NOTICES)
    assert first["body"] == second["body"]
    notice = live_settlement.get("/api/batches/B-01-20261203")["notice"]
    assert notice["state"] == "delivered"
    assert [(a["status"], a["outcome"]) for a in notice["attempts"]] == [(500, "http_500"), (200, "delivered")]


def test_late_batch_fault_sends_the_notice_exactly_one_business_day_later(live_settlement, receiver, collection):
    live_settlement.admin("faults", {"direction": "domain", "kind": "late_batch", "endpoint": "batch",
                                     "params": {"business_days": 1}, "count": 1})
    live_settlement.feed.send(collection(1))

    live_settlement.admin("clock", {"set": "2026-12-07T10:00:00+02:00"})
    assert receiver.on(NOTICES) == []
    live_settlement.admin("clock", {"set": "2026-12-08T09:59:59+02:00"})
    assert receiver.on(NOTICES) == []
    live_settlement.admin("clock", {"advance": "1s"})

    [notice] = receiver.on(NOTICES)
    body = json.loads(notice["body"])
    assert (body["value_date"], body["credited_at"]) == ("2026-12-08", "2026-12-08T08:00:00.000Z")
    assert live_settlement.get("/api/batches/B-01-20261203")["late_by"] == 1
