"""The hosted page by payment mechanism (issue 3): Card, Meeza, MobileWallet, Channel and NotSet.

The e-finance request's ``PaymentMechanism`` (docs/domain-facts.md: Card, Meeza, MobileWallet,
Channel — cash at a Khales outlet —, NotSet — the citizen picks) decides what the page shows. The
sender is the FACTS-only one of ``test_efinance_initiation.py``; only the mechanism elements of its
XML are changed here. In-process client (no socket needed: no delivery is awaited here); the
silent calls are checked over loopback in ``test_mechanisms_confirmation.py``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from simulators.common.contracts import load_contract

from .test_efinance_initiation import PAGE_PATH, PASSWORD, Sender, request_xml, srn_of

NOT_SET_XML = "<Type>NotSet</Type><MechanismType>NotSet</MechanismType>"
VISA, MEEZA_APPROVED, MEEZA_ENROLLED = "4111111111111111", "5078031234567890", "5078080000000008"
WALLET_APPROVED, WALLET_NO_BALANCE, WALLET_UNLISTED = "01000000001", "01100000002", "01298765432"
OTP = "123456"  # card_gateway.wallet.otp (published, assumed default)


def mechanism_xml(sender: Sender, srn: str, type_: str, mechanism_type: str | None = None, **xml: Any) -> str:
    """The FACTS sender's request with ``PaymentMechanism.Type`` / ``MechanismType`` set."""
    text = request_xml(srn, password_b64=sender.rsa(PASSWORD.encode()), **xml)
    assert NOT_SET_XML in text
    return text.replace(NOT_SET_XML, f"<Type>{type_}</Type><MechanismType>{mechanism_type or type_}</MechanismType>")


@pytest.fixture
def sender(client: Any) -> Sender:
    return Sender(client.get("/_admin/certificate").data)


@pytest.fixture
def initiate(client: Any, sender: Sender, app: Any) -> Any:
    """Open the page of a new request with a mechanism: (response, session id, PaymentRequestNumber)."""
    counter = iter(range(0x100, 0x10000))

    def open_page(type_: str, mechanism_type: str | None = None, lang: str | None = None) -> tuple[Any, str, str]:
        srn = srn_of(next(counter))
        fields = sender.fields(srn, xml=mechanism_xml(sender, srn, type_, mechanism_type))
        if lang:
            fields["LanguageId"] = lang
        page = client.post(PAGE_PATH, data=fields)
        assert page.status_code == 200, page.get_data(as_text=True)
        number = page.headers["X-Payment-Request-Number"]
        return page, app.extensions["card_gateway_efinance"].by_payment_request_number(number).session_id, number

    return open_page


def session_of(app: Any, session_id: str) -> Any:
    return app.extensions["card_gateway_efinance"].model.get_session(session_id)


def text(response: Any) -> str:
    return response.get_data(as_text=True)


# --- each mechanism's page, in Arabic and English ---------------------------------------------------
@pytest.mark.parametrize(("lang", "marker"), [(None, 'dir="rtl"'), ("en", 'dir="ltr"')])
def test_card_request_shows_the_card_form_only(initiate, lang, marker):
    page, session_id, _ = initiate("Card", lang=lang)
    html = text(page)
    assert marker in html and 'data-mechanism="Card"' in html
    assert 'id="card-form"' in html and 'name="card_number"' in html and f'action="/pay/{session_id}' in html
    assert 'id="mechanism-choice"' not in html and 'id="wallet-form"' not in html
    assert 'id="channel-reference"' not in html and 'id="meeza-only"' not in html


@pytest.mark.parametrize(("lang", "words"), [(None, "ميزة"), ("en", "Only Meeza cards")])
def test_meeza_request_shows_the_card_form_for_meeza_cards(initiate, lang, words):
    page, _, _ = initiate("Meeza", lang=lang)
    html = text(page)
    assert 'data-mechanism="Meeza"' in html and 'id="meeza-only"' in html and words in html
    assert 'name="card_number"' in html


@pytest.mark.parametrize(("lang", "label"), [(None, "رقم المحفظة"), ("en", "Wallet number")])
def test_wallet_request_shows_the_mobile_number_form(initiate, lang, label):
    page, session_id, _ = initiate("MobileWallet", lang=lang)
    html = text(page)
    assert 'data-mechanism="MobileWallet"' in html and 'id="wallet-form"' in html and label in html
    assert f'action="/pay/{session_id}/wallet' in html and 'name="mobile"' in html
    assert 'name="card_number"' not in html


@pytest.mark.parametrize(("lang", "marker", "words"), [(None, 'dir="rtl"', "منافذ خالص"),
                                                       ("en", 'dir="ltr"', "Khales outlet")])
def test_channel_request_shows_the_reference_to_pay_at_khales_and_no_card_form(initiate, lang, marker, words):
    page, _, number = initiate("Channel", lang=lang)
    html = text(page)
    assert marker in html and words in html and 'data-mechanism="Channel"' in html
    assert f'id="channel-reference" data-payment-request-number="{number}"' in html
    assert f'id="payment-request-number" dir="ltr">{number}<' in html
    assert 'id="channel-amount">150.00' in html and 'id="channel-expires">' in html
    assert 'name="card_number"' not in html and 'id="mechanism-choice"' not in html


@pytest.mark.parametrize("lang", [None, "en"])
def test_not_set_lets_the_citizen_pick_and_shows_the_card_form_until_then(initiate, client, app, lang):
    page, session_id, number = initiate("NotSet", lang=lang)
    html = text(page)
    assert 'id="mechanism-choice"' in html and 'data-mechanism="Card"' in html and 'name="card_number"' in html
    links = dict(re.findall(r'id="choose-(\w+)"[^>]*href="([^"]+)"', html))
    assert set(links) == {"Card", "Meeza", "MobileWallet", "Channel"}
    assert all(f"/pay/{session_id}?" in url and f"mechanism={m}" in url for m, url in links.items())

    wallet = client.get(links["MobileWallet"].replace("&amp;", "&"))
    assert wallet.status_code == 200 and 'id="wallet-form"' in text(wallet)
    assert 'aria-current="page">' in text(wallet) and 'id="mechanism-choice"' in text(wallet)
    assert session_of(app, session_id).channel_chosen_at is None  # looking at a form changes nothing

    channel = client.get(links["Channel"].replace("&amp;", "&"))
    assert channel.status_code == 200 and f'data-payment-request-number="{number}"' in text(channel)
    assert session_of(app, session_id).channel_offered  # picking cash makes it payable at an outlet

    meeza = client.get(links["Meeza"].replace("&amp;", "&"))
    assert 'id="meeza-only"' in text(meeza) and 'name="mechanism" value="Meeza"' in text(meeza)


def test_card_and_meeza_in_type_and_mechanism_type_mean_meeza(initiate, app):
    _, session_id, _ = initiate("Card", "Meeza")
    assert session_of(app, session_id).mechanism == "Meeza"


# --- Meeza ------------------------------------------------------------------------------------------
def test_meeza_refuses_a_visa_card_naming_the_card_number_and_nothing_changes(initiate, client, app):
    _, session_id, _ = initiate("Meeza")
    refused = client.post(f"/pay/{session_id}", data={"card_number": VISA, "expiry": "12/30", "cvv": "123"})
    assert refused.status_code == 422
    html = text(refused)
    assert 'data-field="card_number" data-code="MECHANISM_MISMATCH"' in html and 'id="meeza-only"' in html
    session = session_of(app, session_id)
    assert (session.status, session.attempts, session.card) == ("OPEN", 0, None)
    paid = client.post(f"/pay/{session_id}", data={"card_number": MEEZA_APPROVED, "expiry": "12/30", "cvv": "123"})
    assert paid.status_code == 303 and "IsConfirmed=true" in paid.headers["Location"]
    assert session_of(app, session_id).last_mechanism == "Meeza"


def test_not_set_with_meeza_picked_refuses_a_visa_too(initiate, client, app):
    _, session_id, _ = initiate("NotSet")
    refused = client.post(f"/pay/{session_id}", data={"card_number": VISA, "expiry": "12/30", "cvv": "123",
                                                      "mechanism": "Meeza"})
    assert refused.status_code == 422 and 'data-code="MECHANISM_MISMATCH"' in text(refused)
    assert session_of(app, session_id).attempts == 0
    # The card form without a pick is the Card mechanism: any card.
    paid = client.post(f"/pay/{session_id}", data={"card_number": VISA, "expiry": "12/30", "cvv": "123"})
    assert paid.status_code == 303


def test_a_meeza_card_enrolled_in_3ds_gets_the_challenge_on_a_meeza_page(initiate, client):
    _, session_id, _ = initiate("Meeza")
    challenge = client.post(f"/pay/{session_id}", data={"card_number": MEEZA_ENROLLED, "expiry": "12/30",
                                                        "cvv": "123"})
    assert challenge.status_code == 200 and 'data-kind="three_ds"' in text(challenge)


# --- what a request does not offer ----------------------------------------------------------------
@pytest.mark.parametrize(("type_", "path", "form"), [
    ("Channel", "", {"card_number": VISA, "expiry": "12/30", "cvv": "123"}),
    ("MobileWallet", "", {"card_number": VISA, "expiry": "12/30", "cvv": "123"}),
    ("Card", "/wallet", {"mobile": WALLET_APPROVED}),
    ("Channel", "/wallet", {"mobile": WALLET_APPROVED}),
])
def test_a_form_for_a_mechanism_the_request_does_not_offer_is_refused(initiate, client, app, type_, path, form):
    _, session_id, _ = initiate(type_)
    refused = client.post(f"/pay/{session_id}{path}", data=form)
    assert refused.status_code == 422
    assert 'data-code="MECHANISM_NOT_OFFERED" data-field="mechanism"' in text(refused)
    session = session_of(app, session_id)
    assert (session.status, session.attempts, session.challenge) == ("OPEN", 0, None)


@pytest.mark.parametrize(("type_", "asked"), [("NotSet", "Bitcoin"), ("Card", "Channel"), ("Channel", "Card")])
def test_a_page_asked_for_another_or_an_unknown_mechanism_is_422_naming_it(initiate, client, app, type_, asked):
    _, session_id, _ = initiate(type_)
    page = client.get(f"/pay/{session_id}?mechanism={asked}&lang=en")
    assert page.status_code == 422
    assert 'data-code="MECHANISM_NOT_OFFERED" data-field="mechanism"' in text(page)
    assert session_of(app, session_id).channel_chosen_at is None


def test_a_json_api_session_is_card_only(client, merchant, session_body):
    session_id = merchant.create(session_body()).get_json()["session_id"]
    page = client.get(f"/pay/{session_id}")
    assert 'data-mechanism="Card"' in text(page) and 'id="mechanism-choice"' not in text(page)
    assert client.get(f"/pay/{session_id}?mechanism=MobileWallet").status_code == 422
    assert client.get(f"/pay/{session_id}?mechanism=Channel").status_code == 422
    assert client.post(f"/pay/{session_id}/wallet", data={"mobile": WALLET_APPROVED}).status_code == 422


# --- mobile wallet ------------------------------------------------------------------------------------
def wallet_challenge(client: Any, session_id: str, mobile: str, lang: str | None = None) -> tuple[Any, str]:
    suffix = f"?lang={lang}" if lang else ""
    page = client.post(f"/pay/{session_id}/wallet{suffix}", data={"mobile": mobile})
    assert page.status_code == 200, text(page)
    return page, re.search(r'name="challenge_id" value="([^"]+)"', text(page)).group(1)


def answer(client: Any, session_id: str, challenge_id: str, otp: str) -> Any:
    return client.post(f"/pay/{session_id}/challenge", data={"otp": otp, "challenge_id": challenge_id})


@pytest.mark.parametrize(("lang", "marker", "words"), [(None, 'dir="rtl"', "تأكيد الدفع من المحفظة"),
                                                       ("en", 'dir="ltr"', "Wallet payment confirmation")])
def test_wallet_number_then_the_right_otp_approves(initiate, client, app, lang, marker, words):
    _, session_id, _ = initiate("MobileWallet")
    page, challenge_id = wallet_challenge(client, session_id, "010 0000 0001", lang=lang)
    html = text(page)
    assert marker in html and words in html and 'data-kind="wallet"' in html
    assert "010****0001" in html and 'data-provider="Vodafone Cash"' in html
    assert WALLET_APPROVED not in html and 'data-tries-left="3"' in html and OTP not in html
    assert session_of(app, session_id).attempts == 0  # nothing decided before the OTP

    done = answer(client, session_id, challenge_id, OTP)
    assert done.status_code == 303 and "IsConfirmed=true" in done.headers["Location"]
    session = session_of(app, session_id)
    assert (session.status, session.last_mechanism) == ("APPROVED", "MobileWallet")
    assert session.wallet == {"mobile": "010****0001", "provider": "Vodafone Cash"}  # never the number
    assert session.card is None


def test_wrong_otps_count_down_and_the_last_declines_the_attempt(initiate, client, app):
    _, session_id, _ = initiate("MobileWallet")
    _, challenge_id = wallet_challenge(client, session_id, WALLET_UNLISTED)
    first = answer(client, session_id, challenge_id, "000000")
    assert first.status_code == 422 and 'data-tries-left="2"' in text(first) and 'data-field="otp"' in text(first)
    assert answer(client, session_id, challenge_id, "111111").status_code == 422
    last = answer(client, session_id, challenge_id, "222222")
    assert last.status_code == 303 and "status=DECLINED" in last.headers["Location"]
    session = session_of(app, session_id)
    assert (session.status, session.decline_reason, session.attempts) == ("DECLINED", "WALLET_OTP_FAILED", 1)
    assert session.wallet == {"mobile": "012****5432", "provider": "Orange Cash"}
    # The request stays payable: a new wallet attempt.
    _, again = wallet_challenge(client, session_id, WALLET_APPROVED)
    assert answer(client, session_id, again, OTP).status_code == 303
    assert session_of(app, session_id).status == "APPROVED"


def test_no_otp_within_the_time_limit_declines_on_the_simulated_clock(initiate, client, app):
    _, session_id, _ = initiate("MobileWallet")
    _, challenge_id = wallet_challenge(client, session_id, WALLET_APPROVED)
    tasks = str(client.get("/_admin/scheduled").get_json()["tasks"])
    assert f"card_gateway.wallet_otp_timeout:{session_id}:{challenge_id}" in tasks
    client.post("/_admin/clock", json={"advance": "299s"})
    assert session_of(app, session_id).attempts == 0
    client.post("/_admin/clock", json={"advance": "1s"})
    session = session_of(app, session_id)
    assert (session.status, session.decline_reason) == ("DECLINED", "WALLET_OTP_TIMEOUT")
    late = answer(client, session_id, challenge_id, OTP)
    assert late.status_code == 410 and 'data-code="WALLET_OTP_EXPIRED"' in text(late)
    assert session_of(app, session_id).attempts == 1  # failed once only


def test_the_published_test_wallets_pick_the_outcome_after_the_right_otp(initiate, client, app):
    _, session_id, _ = initiate("MobileWallet")
    _, challenge_id = wallet_challenge(client, session_id, WALLET_NO_BALANCE)
    done = answer(client, session_id, challenge_id, OTP)
    assert "status=DECLINED" in done.headers["Location"]
    session = session_of(app, session_id)
    assert (session.decline_reason, session.wallet["provider"]) == ("INSUFFICIENT_BALANCE", "e& cash")


@pytest.mark.parametrize("mobile", ["", "0101234567", "013123456789", "01312345678", "٠١٠١٢٣٤٥٦٧٨", "+2001012345678"])
def test_a_bad_wallet_number_is_422_naming_mobile_and_nothing_changes(initiate, client, app, mobile):
    _, session_id, _ = initiate("MobileWallet")
    refused = client.post(f"/pay/{session_id}/wallet", data={"mobile": mobile})
    assert refused.status_code == 422
    html = text(refused)
    assert 'data-field="mobile" data-code="INVALID_WALLET_INPUT"' in html and 'id="wallet-form"' in html
    session = session_of(app, session_id)
    assert (session.status, session.attempts, session.challenge, session.wallet) == ("OPEN", 0, None, None)


def test_a_wallet_number_with_the_country_code_is_accepted(initiate, client, app):
    _, session_id, _ = initiate("NotSet")
    _, challenge_id = wallet_challenge(client, session_id, "+201000000001")
    assert answer(client, session_id, challenge_id, OTP).status_code == 303
    assert session_of(app, session_id).wallet == {"mobile": "010****0001", "provider": "Vodafone Cash"}


# --- the published table ---------------------------------------------------------------------------
def test_the_wallet_table_is_published_and_valid():
    table = load_contract("test-cards.yaml")
    wallets = table["wallets"]
    assert all(re.fullmatch(r"01[0125][0-9]{8}", str(w["mobile"])) for w in wallets)
    assert {w["outcome"] for w in wallets} == {"APPROVED", "DECLINED"}
    assert "INSUFFICIENT_BALANCE" in {w.get("decline_reason") for w in wallets}
    assert set(table["wallet_providers"]) == {"010", "011", "012", "015"}


@pytest.mark.parametrize(("lang", "words"), [(None, "محافظ الاختبار"), ("en", "Test wallets")])
def test_the_test_cards_page_lists_the_wallets_the_providers_and_the_wallet_otp(client, lang, words):
    page = client.get("/test-cards" + (f"?lang={lang}" if lang else ""))
    html = text(page)
    assert page.status_code == 200 and words in html
    for wallet in load_contract("test-cards.yaml")["wallets"]:
        assert f'data-mobile="{wallet["mobile"]}"' in html
    assert 'data-mobile="01100000002" data-provider="e&amp; cash" data-outcome="DECLINED"' in html
    assert 'id="test-wallet-otp"' in html and f'data-otp="{OTP}"' in html
    assert 'data-prefix="015" data-provider="WE Pay"' in html and 'id="channel-note"' in html
