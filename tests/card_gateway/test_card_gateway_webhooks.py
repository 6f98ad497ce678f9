"""Webhooks and the settlement feed over real sockets: signed, retried on the simulated clock."""

from __future__ import annotations

import json

from simulators.common.clock import parse_instant
from simulators.common.contracts import validate
from simulators.common.signing import verify

WEBHOOK_PATH = "/webhooks/card"


def open_session(gateway, receiver, **changes):
    body = {
        "merchant_request_id": changes.pop("merchant_request_id", "REQ-LIVE-1"),
        "merchant_reference": "100200300400",
        "amount": "300.00",
        "currency": "EGP",
        "return_url": "https://portal.example/return",
        "webhook_url": receiver.url + WEBHOOK_PATH,
        "governorate_code": "21",
        "service_code": "TUC",
        **changes,
    }
    return gateway.create(body)["session_id"]


def test_approved_payment_sends_a_signed_webhook_and_a_settlement_line(live_gateway, receiver):
    session_id = open_session(live_gateway, receiver)

    paid = live_gateway.pay(session_id, "4111111111111111")
    tick = live_gateway.admin("tick")

    assert paid.status_code == 303
    [hook] = receiver.on(WEBHOOK_PATH)
    now = parse_instant(tick["now"])
    verify(live_gateway.component.secret("card_gateway_webhook"), hook["headers"], hook["body"], now)
    event = json.loads(hook["body"])
    validate("cg-webhook.schema.json", event)
    session = live_gateway.signed_get(f"/api/sessions/{session_id}")
    assert event["event_type"] == "payment.approved"
    assert (event["session_id"], event["status"], event["transaction_id"]) == (
        session_id, "APPROVED", session["transaction_id"])
    assert (event["amount"], event["total"], event["card"]["last4"]) == ("300.00", "300.00", "1111")

    [line] = receiver.on("/api/collections")
    verify(live_gateway.component.secret("collections_feed"), line["headers"], line["body"], now)
    collection = json.loads(line["body"])
    validate("st-collection.schema.json", collection)
    assert collection["collection_id"] == f"card:{session['transaction_id']}"
    assert (collection["channel"], collection["source"], collection["bill_reference"]) == (
        "card", "card_gateway", "100200300400")
    assert collection["transaction_number"] == session["transaction_id"]
    assert session["webhook_state"] == "delivered"


def test_declined_payment_sends_a_declined_webhook_and_nothing_to_settlement(live_gateway, receiver):
    session_id = open_session(live_gateway, receiver)

    live_gateway.pay(session_id, "5078081234567895")
    live_gateway.admin("tick")

    [hook] = receiver.on(WEBHOOK_PATH)
    event = json.loads(hook["body"])
    validate("cg-webhook.schema.json", event)
    assert (event["event_type"], event["status"], event["decline_reason"]) == (
        "payment.declined", "DECLINED", "INSUFFICIENT_FUNDS")
    assert event["transaction_id"] is None
    assert receiver.on("/api/collections") == []


def test_webhook_answered_500_is_retried_after_the_first_backoff_with_the_same_body(live_gateway, receiver):
    session_id = open_session(live_gateway, receiver)
    receiver.answer_next(500)

    live_gateway.pay(session_id, "4111111111111111")
    live_gateway.admin("tick")
    assert len(receiver.on(WEBHOOK_PATH)) == 1

    live_gateway.admin("clock", {"advance": "59s"})
    assert len(receiver.on(WEBHOOK_PATH)) == 1  # not before the backoff (60 s in these settings)
    live_gateway.admin("clock", {"advance": "1s"})

    first, second = receiver.on(WEBHOOK_PATH)
    assert first["body"] == second["body"]
    assert first["headers"]["X-Tahseel-Timestamp"] != second["headers"]["X-Tahseel-Timestamp"]
    log = live_gateway.signed_get(f"/api/sessions/{session_id}/webhooks")
    assert [(a["status"], a["outcome"]) for a in log["attempts"]] == [(500, "http_500"), (200, "delivered")]
    assert [a["at"] for a in log["attempts"]] == ["2026-12-03T10:00:00.000Z", "2026-12-03T10:01:00.000Z"]
    assert log["events"][0]["state"] == "delivered"


def test_webhook_gives_up_after_the_backoff_list_is_exhausted(live_gateway, receiver):
    session_id = open_session(live_gateway, receiver)
    receiver.answer_next(503, 503, 503)

    live_gateway.pay(session_id, "5078081234567895")  # declined: only the webhook is sent
    live_gateway.admin("tick")
    live_gateway.admin("clock", {"advance": "60s"})
    live_gateway.admin("clock", {"advance": "300s"})
    live_gateway.admin("clock", {"advance": "1d"})

    assert len(receiver.on(WEBHOOK_PATH)) == 3  # first attempt + the two retries of the settings
    session = live_gateway.signed_get(f"/api/sessions/{session_id}")
    log = live_gateway.signed_get(f"/api/sessions/{session_id}/webhooks")
    assert session["webhook_state"] == "gave_up"
    assert log["events"][0]["gave_up_at"] == "2026-12-03T10:06:00.000Z"


def test_unreachable_webhook_url_is_retried_like_an_error(live_gateway, receiver):
    session_id = open_session(live_gateway, receiver, webhook_url="http://127.0.0.1:9/hook")

    live_gateway.pay(session_id, "5078081234567895")
    live_gateway.admin("tick")

    log = live_gateway.signed_get(f"/api/sessions/{session_id}/webhooks")
    assert [(a["status"], a["outcome"]) for a in log["attempts"]] == [(None, "connection")]
    assert log["events"][0]["next_attempt_at"] == "2026-12-03T10:01:00.000Z"


def test_duplicate_out_fault_delivers_the_webhook_twice_with_identical_bodies(live_gateway, receiver):
    live_gateway.admin("faults", {"direction": "out", "kind": "duplicate", "target": "reference", "count": 1})
    session_id = open_session(live_gateway, receiver)

    live_gateway.pay(session_id, "4111111111111111")
    live_gateway.admin("tick")

    first, second = receiver.on(WEBHOOK_PATH)
    assert first["body"] == second["body"]
    assert len(receiver.on("/api/collections")) == 1  # the fault targets the collection service only
