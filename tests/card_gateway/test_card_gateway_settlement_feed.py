"""An approved card payment reaches the real settlement simulator as a signed collection line."""

from __future__ import annotations

import pytest

from simulators.common.config import load_settings
from simulators.common.server import ServerThread
from simulators.settlement.app import create_app as create_settlement


@pytest.fixture
def settlement_url(receiver, http):
    server = ServerThread(create_settlement(load_settings(overrides={"urls": {"reference": receiver.url}})))
    server.start()
    http.post(f"{server.url}/_admin/clock", json={"set": "2026-12-03T12:00:00+02:00"}).raise_for_status()
    yield server.url
    server.stop()


def session_for(gateway, receiver):
    return gateway.create({
        "merchant_request_id": "REQ-E2E-1", "merchant_reference": "555000111222", "amount": "740.25",
        "currency": "EGP", "return_url": "https://portal.example/back",
        "webhook_url": receiver.url + "/webhooks/card", "governorate_code": "02", "service_code": "OLR",
    })["session_id"]


def test_approved_payment_lands_in_the_settlement_batch_of_its_business_date(
        start_gateway, receiver, settlement_url, http):
    gateway = start_gateway(reference=receiver.url, settlement=settlement_url)
    session_id = session_for(gateway, receiver)

    gateway.pay(session_id, "5123450000000008")  # 3-D Secure enrolled: answer the challenge
    http.post(f"{gateway.url}/pay/{session_id}/challenge",
              data={"otp": "123456", "challenge_id": gateway.last_challenge_id}, allow_redirects=False)
    gateway.admin("tick")

    session = gateway.signed_get(f"/api/sessions/{session_id}")
    assert session["settlement_feed_state"] == "delivered"
    batch = http.get(f"{settlement_url}/api/batches/B-02-20261203").json()
    assert (batch["value_date"], batch["amount"]) == ("2026-12-07", "740.25")
    [line] = batch["lines"]
    assert (line["collection_id"], line["channel"], line["bill_reference"], line["service_code"]) == (
        f"card:{session['transaction_id']}", "card", "555000111222", "OLR")


def test_settlement_feed_is_retried_with_the_same_line_until_settlement_answers(
        start_gateway, receiver, http):
    gateway = start_gateway(reference=receiver.url, settlement=receiver.url)
    session_id = session_for(gateway, receiver)
    gateway.admin("faults", {"direction": "out", "kind": "down", "target": "settlement", "count": 1})

    gateway.pay(session_id, "4111111111111111")
    gateway.admin("tick")
    assert receiver.on("/api/collections") == []
    assert gateway.signed_get(f"/api/sessions/{session_id}")["settlement_feed_state"] == "pending"

    gateway.admin("clock", {"advance": "60s"})

    [line] = receiver.on("/api/collections")
    assert gateway.signed_get(f"/api/sessions/{session_id}")["settlement_feed_state"] == "delivered"
    assert len(receiver.on("/webhooks/card")) == 1  # the webhook was not held back by the feed
    assert b'"amount":"740.25"' in line["body"]
