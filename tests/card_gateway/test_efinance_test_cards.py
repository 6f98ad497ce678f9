"""The published test-card table (contracts/test-cards.yaml): Luhn-valid, served as a page in Arabic
and English, and the hosted page does what the table says (by number, by expiry date, by CVV)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from simulators.common.contracts import load_contract
from simulators.common.egypt import luhn_valid

TABLE = load_contract("test-cards.yaml")
CARDS = TABLE["cards"]
UNLISTED = "4242424242424242"
BY_NUMBER = {str(card["number"]): card for card in CARDS}


def pay(client, merchant, session_body, n: int, card: str, expiry: str = "12/30", cvv: str = "123"):
    created = merchant.create(session_body(merchant_request_id=f"CARD-{n:04d}"))
    assert created.status_code == 201, created.get_json()
    session_id = created.get_json()["session_id"]
    answer = client.post(f"/pay/{session_id}", data={"card_number": card, "expiry": expiry, "cvv": cvv,
                                                     "cardholder": "Mona Ali"})
    if (BY_NUMBER.get(card) or {}).get("three_ds") and answer.status_code == 200:
        # 3-D Secure enrolled: the challenge page first, answered with the published test OTP.
        page = answer.get_data(as_text=True)
        assert 'name="otp"' in page
        challenge_id = re.search(r'name="challenge_id" value="([^"]+)"', page).group(1)
        answer = client.post(f"/pay/{session_id}/challenge", data={"otp": "123456", "challenge_id": challenge_id})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    status = parse_qs(urlsplit(answer.headers["Location"]).query)["status"][0]
    return status, merchant.get(session_id).get_json()


def test_every_listed_card_is_luhn_valid_and_the_table_covers_the_published_outcomes():
    numbers = [str(card["number"]) for card in CARDS]
    assert len(set(numbers)) == len(numbers)
    assert all(luhn_valid(number) for number in numbers)
    reasons = {card.get("decline_reason") for card in CARDS}
    assert {"INSUFFICIENT_FUNDS", "EXPIRED_CARD", "TIMED_OUT", "SYSTEM_ERROR", "DO_NOT_HONOUR"} <= reasons
    assert any(card["outcome"] == "APPROVED" for card in CARDS)
    assert {card.get("three_ds") for card in CARDS} == {True, False}  # enrolled and not
    assert any(n.startswith("507803") for n in numbers) and any(n.startswith("507808") for n in numbers)
    assert "CVV_MISMATCH" in TABLE["cvv_rules"].values()
    # Scenarios depend on these two.
    by_number = {str(card["number"]): card for card in CARDS}
    assert by_number["4111111111111111"]["outcome"] == "APPROVED"
    assert by_number["4000000000000002"]["outcome"] == "DECLINED"


@pytest.mark.parametrize("card", CARDS, ids=lambda card: str(card["number"]))
def test_the_hosted_page_does_what_the_table_publishes_for_each_card(client, merchant, session_body, card):
    status, session = pay(client, merchant, session_body, 1, str(card["number"]))
    assert status == card["outcome"]
    assert session["status"] == card["outcome"]
    assert session["decline_reason"] == card.get("decline_reason")
    assert session["card"]["scheme"] == card["scheme"]


@pytest.mark.parametrize(("expiry", "rule"), sorted(TABLE["expiry_rules"].items()))
def test_the_expiry_date_picks_the_outcome_of_an_unlisted_card(client, merchant, session_body, expiry, rule):
    status, session = pay(client, merchant, session_body, 2, UNLISTED, expiry=expiry)
    if rule == "APPROVED":
        assert (status, session["decline_reason"]) == ("APPROVED", None)
    else:
        assert (status, session["decline_reason"]) == ("DECLINED", rule)


@pytest.mark.parametrize("card", [UNLISTED, "4111111111111111"])
def test_the_published_cvv_forces_a_cvv_mismatch(client, merchant, session_body, card):
    [(cvv, reason)] = TABLE["cvv_rules"].items()
    status, session = pay(client, merchant, session_body, 3, card, cvv=cvv)
    assert (status, session["decline_reason"]) == ("DECLINED", reason)
    # The same card with another CVV is unaffected.
    assert pay(client, merchant, session_body, 4, card, cvv="123")[0] == "APPROVED"


@pytest.mark.parametrize(("lang", "marker"), [(None, 'dir="rtl"'), ("en", 'dir="ltr"')])
def test_the_table_is_served_as_a_page_in_arabic_and_english(client, lang, marker):
    page = client.get("/test-cards" + (f"?lang={lang}" if lang else ""))
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert marker in text
    assert ("بطاقات الاختبار" if lang is None else "Test cards") in text
    rows = re.findall(r'data-number="([0-9]+)" data-outcome="([A-Z_]+)" data-reason="([A-Z_]*)"', text)
    assert rows == [(str(c["number"]), c["outcome"], c.get("decline_reason") or "") for c in CARDS]
    for expiry, rule in TABLE["expiry_rules"].items():
        assert f'data-expiry="{expiry}" data-outcome="{rule}"' in text
