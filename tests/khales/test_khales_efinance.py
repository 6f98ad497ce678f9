"""Khales paying e-finance Channel payment requests (``biller: efinance``; assumed API): the outlet's
conversation is the biller's (inquiry, payment retried with the same transaction id, reversal of an
unknown outcome), sent to ``urls.card_gateway`` + ``/api/channel/*`` signed ``efinance_channel``,
and nothing is fed to settlement (e-finance settles those). Against a fake e-finance on loopback;
the real gateway is ``tests/card_gateway/test_channel_khales.py``."""

from __future__ import annotations

from typing import Any

import pytest

from simulators.common.contracts import validate

from .conftest import CHANNEL_REQUEST

PAY = "/api/outlet-payments"


@pytest.fixture
def khales_efinance(khales_factory: Any, fake_biller: Any, fake_efinance: Any, fake_settlement: Any) -> Any:
    """Khales with the fake biller, the fake e-finance and the fake settlement, clocks together."""
    return khales_factory({"urls": {"reference": fake_biller.url, "card_gateway": fake_efinance.url,
                                    "settlement": fake_settlement.url},
                           "khales": {"biller_timeout_seconds": 2}})


def test_a_channel_request_is_inquired_and_paid_at_efinance_and_not_fed_to_settlement(
        khales_efinance, fake_biller, fake_efinance, fake_settlement):
    response = khales_efinance.post(PAY, json={"bill_reference": CHANNEL_REQUEST, "biller": "efinance",
                                               "outlet_id": "KH-01-0001"})
    assert response.status_code == 201
    tx = response.get_json()
    assert (tx["status"], tx["biller"], tx["amount"], tx["attempts"]) == ("PAID", "efinance", "240.50", 1)
    assert tx["settlement_feed"] is None
    [inquiry] = fake_efinance.inquiries
    assert inquiry["payment_request_number"] == CHANNEL_REQUEST and inquiry["outlet_id"] == "KH-01-0001"
    validate("cg-channel-inquiry.schema.json", inquiry)
    [payment] = fake_efinance.payments
    assert (payment["payment_request_number"], payment["khales_transaction_id"], payment["amount"]) == (
        CHANNEL_REQUEST, tx["transaction_id"], "240.50")
    assert fake_biller.inquiries == [] and fake_biller.payments == []  # the collection service is not asked
    assert khales_efinance.post("/_admin/clock", json={"advance": "1h"}).status_code == 200
    assert fake_settlement.collections == []  # e-finance settles its Channel payments


def test_a_lost_answer_is_retried_with_the_same_body_and_pays_once(khales_efinance, fake_efinance, fault):
    fault(khales_efinance, direction="out", kind="drop_response", target="card_gateway",
          endpoint="/api/channel/payments", count=1)
    tx = khales_efinance.post(PAY, json={"bill_reference": CHANNEL_REQUEST, "biller": "efinance"}).get_json()
    assert (tx["status"], tx["attempts"]) == ("PAID", 2)
    first, second = fake_efinance.payments
    assert first == second and len(fake_efinance.accepted) == 1


def test_an_outcome_never_learned_is_reversed_at_efinance(khales_efinance, fake_efinance, fault):
    fault(khales_efinance, direction="out", kind="drop_response", target="card_gateway",
          endpoint="/api/channel/payments", count=3)
    tx = khales_efinance.post(PAY, json={"bill_reference": CHANNEL_REQUEST, "biller": "efinance"}).get_json()
    assert (tx["status"], tx["attempts"]) == ("REVERSED", 3)
    [reversal] = fake_efinance.reversals
    assert (reversal["khales_transaction_id"], reversal["payment_request_number"], reversal["reason"]) == (
        tx["transaction_id"], CHANNEL_REQUEST, "NO_ANSWER")
    assert tx["reversal"]["answer"]["status"] == "REVERSED"
    assert fake_efinance.requests[CHANNEL_REQUEST]["status"] == "REFUNDED"


def test_an_unanswered_reversal_at_efinance_is_retried_on_the_clock(khales_efinance, fake_efinance, fault):
    # The three payment attempts and the first reversal get no answer (nothing reaches e-finance).
    fault(khales_efinance, direction="out", kind="timeout", target="card_gateway", endpoint="/api/channel/payments",
          count=3)
    fault(khales_efinance, direction="out", kind="timeout", target="card_gateway", endpoint="/api/channel/reversals",
          count=1)
    tx = khales_efinance.post(PAY, json={"bill_reference": CHANNEL_REQUEST, "biller": "efinance"}).get_json()
    assert tx["status"] == "REVERSAL_PENDING"
    assert fake_efinance.payments == [] and fake_efinance.reversals == []
    assert khales_efinance.post("/_admin/clock", json={"advance": "60s"}).status_code == 200
    done = khales_efinance.get(f"/api/transactions/{tx['transaction_id']}").get_json()
    assert done["status"] == "REVERSED" and done["reversal"]["answer"]["status"] == "NOT_FOUND"


def test_refusals_of_efinance_are_refusals_of_the_transaction(khales_efinance, fake_efinance):
    unknown = khales_efinance.post(PAY, json={"bill_reference": "700000000027", "biller": "efinance"}).get_json()
    assert (unknown["status"], unknown["error"]["code"]) == ("REFUSED", "PAYMENT_REQUEST_NOT_FOUND")
    fake_efinance.requests[CHANNEL_REQUEST]["status"] = "CANCELLED"
    cancelled = khales_efinance.post(PAY, json={"bill_reference": CHANNEL_REQUEST, "biller": "efinance"}).get_json()
    assert (cancelled["status"], cancelled["error"]["code"]) == ("REFUSED", "CANCELLED")
    assert fake_efinance.payments == []


def test_the_biller_defaults_to_the_collection_service_and_a_replay_does_not_conflict(khales, bills, fake_biller):
    body = {"bill_reference": bills.unpaid, "transaction_id": "KHT000000000123"}
    first = khales.post(PAY, json=body)
    assert first.status_code == 201 and first.get_json()["biller"] == "collection_service"
    explicit = khales.post(PAY, json=dict(body, biller="collection_service"))
    assert explicit.status_code == 200 and explicit.get_json() == first.get_json()
    other = khales.post(PAY, json=dict(body, biller="efinance"))
    assert other.status_code == 409 and other.get_json()["error"]["field"] == "transaction_id"
    assert len(fake_biller.payments) == 1


def test_an_unknown_biller_is_422_naming_it_and_nothing_is_created(khales, bills, fake_biller):
    response = khales.post(PAY, json={"bill_reference": bills.unpaid, "biller": "fawry"})
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "biller"
    assert khales.get("/api/transactions").get_json()["transactions"] == []
    assert fake_biller.inquiries == []
