"""The citizen's hosted payment page: Arabic by default, card validation, outcomes, redirects."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from simulators.common.egypt import luhn_check_digit

UNLISTED_CARD = "424242424242424" + str(luhn_check_digit("424242424242424"))


@pytest.fixture
def session_id(merchant, session_body):
    fee_lines = [{"code": "BASE", "name_ar": "رسم التجديد", "name_en": "Renewal fee", "amount": "1000.00"},
                 {"code": "VAT", "name_ar": "ضريبة القيمة المضافة", "name_en": "VAT", "amount": "250.50"}]
    return merchant.create(session_body(fee_lines=fee_lines)).get_json()["session_id"]


def pay(client, session_id, card_number, expiry="12/30", cvv="123", query=""):
    return client.post(f"/pay/{session_id}{query}", data={"card_number": card_number, "expiry": expiry,
                                                           "cvv": cvv, "cardholder": "منى علي"})


def test_page_is_arabic_right_to_left_by_default_with_codes_lines_and_total(client, session_id):
    response = client.get(f"/pay/{session_id}")
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    assert '<html lang="ar" dir="rtl">' in html
    assert "القاهرة" in html and 'data-code="01"' in html and 'data-code="BPR"' in html
    assert "رسم التجديد" in html and "250.50" in html
    assert '<td id="total">1250.50 جنيه</td>' in html
    assert '<td id="collection-fee">0.00 جنيه</td>' in html
    for field in ("card_number", "expiry", "cvv", "cardholder"):
        assert f'name="{field}"' in html
    assert f'action="/pay/{session_id}"' in html


def test_page_is_english_on_request_or_by_the_session_language(client, merchant, session_id, session_body):
    assert '<html lang="en" dir="ltr">' in client.get(f"/pay/{session_id}?lang=en").get_data(as_text=True)
    english = merchant.create(session_body(merchant_request_id="REQ-EN", language="en")).get_json()
    html = client.get(f"/pay/{english['session_id']}").get_data(as_text=True)
    assert '<html lang="en" dir="ltr">' in html and "Total" in html


def test_unknown_session_is_a_404_html_page(client):
    response = client.get("/pay/CS0000000000000000")

    assert response.status_code == 404
    assert response.content_type.startswith("text/html")
    assert 'data-code="SESSION_NOT_FOUND"' in response.get_data(as_text=True)


def test_expired_session_page_is_410_and_refuses_payment(client, app, session_id):
    app.extensions["tahseel"].clock.advance(timedelta(hours=24, seconds=1))

    assert client.get(f"/pay/{session_id}").status_code == 410
    response = pay(client, session_id, "4111111111111111")
    assert response.status_code == 410
    assert 'data-code="SESSION_EXPIRED"' in response.get_data(as_text=True)


@pytest.mark.parametrize(("card", "expiry", "cvv", "field"), [
    ("4111111111111112", "12/30", "123", "card_number"),   # fails Luhn
    ("4111-1111-11x1-1111", "12/30", "123", "card_number"),
    ("4111111111111111", "13/30", "123", "expiry"),
    ("4111111111111111", "12/2030", "123", "expiry"),
    ("4111111111111111", "12/30", "12", "cvv"),
])
def test_invalid_card_input_rerenders_with_422_naming_the_field_and_changes_nothing(
        client, merchant, session_id, card, expiry, cvv, field):
    response = pay(client, session_id, card, expiry, cvv)
    html = response.get_data(as_text=True)

    assert response.status_code == 422
    assert f'data-field="{field}"' in html
    assert card not in html  # the page never echoes the card number back
    state = merchant.get(session_id).get_json()
    assert (state["status"], state["attempts"], state["card"]) == ("OPEN", 0, None)


def test_approved_card_redirects_303_to_return_url_and_keeps_only_bin_and_last4(client, merchant, session_id):
    response = pay(client, session_id, "4111 1111 1111 1111")

    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", "portal.example", "/return")
    assert parse_qs(location.query) == {"order": ["7"], "session_id": [session_id], "status": ["APPROVED"]}
    session = merchant.get(session_id).get_json()
    assert session["status"] == "APPROVED"
    assert re.fullmatch(r"TX\d{12}", session["transaction_id"])
    assert re.fullmatch(r"\d{6}", session["auth_code"])
    assert session["card"] == {"bin": "411111", "last4": "1111", "scheme": "Visa"}
    assert "4111111111111111" not in json.dumps(session)


def test_approved_session_cannot_be_paid_again(client, session_id):
    pay(client, session_id, "4111111111111111")

    assert client.get(f"/pay/{session_id}").status_code == 409
    again = pay(client, session_id, "5078031234567890")
    assert again.status_code == 409
    assert 'data-code="SESSION_ALREADY_PAID"' in again.get_data(as_text=True)


def test_declined_session_can_be_retried_with_another_card(client, merchant, session_id):
    declined = pay(client, session_id, "4000000000000002")

    assert declined.status_code == 303
    assert parse_qs(urlsplit(declined.headers["Location"]).query)["status"] == ["DECLINED"]
    state = merchant.get(session_id).get_json()
    assert (state["status"], state["decline_reason"], state["attempts"]) == ("DECLINED", "INSUFFICIENT_FUNDS", 1)
    assert client.get(f"/pay/{session_id}").status_code == 200

    approved = pay(client, session_id, "5078031234567890")

    assert parse_qs(urlsplit(approved.headers["Location"]).query)["status"] == ["APPROVED"]
    state = merchant.get(session_id).get_json()
    assert (state["status"], state["decline_reason"], state["attempts"]) == ("APPROVED", None, 2)
    assert state["card"] == {"bin": "507803", "last4": "7890", "scheme": "Meeza"}


@pytest.mark.parametrize(("expiry", "status", "reason"), [
    ("01/39", "APPROVED", None),
    ("05/39", "DECLINED", "DECLINED"),
    ("04/27", "DECLINED", "EXPIRED_CARD"),
    ("08/28", "DECLINED", "TIMED_OUT"),
    ("11/31", "APPROVED", None),  # no rule: approved
])
def test_unlisted_cards_follow_the_published_expiry_rules(client, merchant, session_id, expiry, status, reason):
    pay(client, session_id, UNLISTED_CARD, expiry=expiry)

    state = merchant.get(session_id).get_json()
    assert (state["status"], state["decline_reason"]) == (status, reason)


def test_full_card_number_and_cvv_never_reach_the_journal(client, merchant, session_id):
    pay(client, session_id, "4111111111111112", cvv="987")  # refused input is journaled too
    pay(client, session_id, "4111111111111111", cvv="987")
    client.post("/_admin/tick")

    journal = client.get("/_admin/journal").get_data(as_text=True)
    assert "4111111111111111" not in journal
    assert "4111111111111112" not in journal
    assert "cvv=987" not in journal and "cvv=***" in journal
    assert "411111" in journal  # the BIN is kept, as the DESIGN allows
