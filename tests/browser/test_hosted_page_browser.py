"""The citizen's path through the card gateway in a real browser (headless Debian chromium).

A tiny governorate portal (a Flask app on loopback) hands the browser an auto-submitting form of the
e-finance initiation fields, built by the sender of ``tests/card_gateway/test_efinance_initiation.py``
(written from docs/domain-facts.md alone), to the gateway's ``/CardPaymentRequestIntiation/index``.
The browser then does what a citizen does: reads the hosted page, types a card, answers the 3-D Secure
challenge (a wrong OTP first), and comes back to the portal's ``/return``. The silent call goes to a
recording receiver that acknowledges with ``Response_Code: 000``. Nothing sleeps: Playwright waits for
what the test expects; the gateway's clock is simulated and its due work runs on ``POST /_admin/tick``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask, render_template_string, request

from simulators.card_gateway.app import create_app
from simulators.common.config import load_settings
from simulators.common.server import ServerThread

from ..card_gateway.test_efinance_confirmation import decrypt
from ..card_gateway.test_efinance_initiation import PAGE_PATH, START, Sender, srn_of

REFUSING_URL = "http://127.0.0.1:9"
CONFIRM_PATH = "/efinance/confirm"
ENROLLED_CARD = "5123450000000008"  # contracts/test-cards.yaml: Mastercard, 3-D Secure enrolled, approved
DECLINED_CARD = "4000000000000002"  # Visa, declined: INSUFFICIENT_FUNDS
TEST_OTP, WRONG_OTP = "123456", "654321"
SRNS = itertools.count(0xB0B0)

# What the citizen reads, in each language (written here, not taken from the gateway's code).
SEES: dict[str, dict[str, str]] = {
    "ar": {"dir": "rtl", "title": "الدفع الإلكتروني — بوابة إي فاينانس", "governorate": "المحافظة",
           "governorate_name": "القاهرة", "fee_lines": "بنود الرسوم", "amount": "المبلغ", "total": "الإجمالي",
           "currency": "جنيه", "card_number": "رقم البطاقة", "expiry": "تاريخ الانتهاء (شهر/سنة)",
           "cvv": "رمز التحقق (CVV)", "cardholder": "اسم حامل البطاقة", "pay": "ادفع",
           "challenge": "التحقق الآمن (3-D Secure)", "otp": "كلمة المرور لمرة واحدة (OTP)", "confirm": "تأكيد",
           "tries_left": "المحاولات المتبقية", "wrong_otp": "كلمة المرور لمرة واحدة غير صحيحة",
           "holder": "منى علي"},
    "en": {"dir": "ltr", "title": "Online payment — e-finance gateway", "governorate": "Governorate",
           "governorate_name": "Cairo", "fee_lines": "Fee lines", "amount": "Amount", "total": "Total",
           "currency": "EGP", "card_number": "Card number", "expiry": "Expiry (MM/YY)", "cvv": "CVV",
           "cardholder": "Cardholder name", "pay": "Pay", "challenge": "Secure verification (3-D Secure)",
           "otp": "One-time password (OTP)", "confirm": "Confirm", "tries_left": "Tries left",
           "wrong_otp": "Wrong one-time password", "holder": "Mona Ali"},
}

CHECKOUT = """<!doctype html>
<html lang="ar" dir="rtl"><head><meta charset="utf-8"><title>بوابة المحافظة — الدفع</title></head>
<body onload="document.getElementById('efinance').submit()">
<p>جارٍ تحويلك إلى بوابة الدفع…</p>
<form id="efinance" method="post" action="{{ action }}">
{% for name, value in fields.items() %}<input type="hidden" name="{{ name }}" value="{{ value }}">
{% endfor %}<noscript><button type="submit">متابعة</button></noscript>
</form></body></html>"""

RETURN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Governorate portal — payment result</title></head>
<body><h1>Payment result</h1>
<p id="payment-status" data-status="{{ status }}" data-confirmed="{{ confirmed }}">Payment {{ status }}
 (IsConfirmed={{ confirmed }})</p>
<p>Request <span id="sender-request-number">{{ srn }}</span>,
 e-finance number <span id="payment-request-number">{{ number }}</span></p></body></html>"""


class Portal:
    """The sender's web site: an auto-submitting checkout per request, and the page the gateway sends back to."""

    def __init__(self, gateway_url: str, sender: Sender) -> None:
        self.gateway_url = gateway_url
        self.sender = sender
        self.forms: dict[str, dict[str, str]] = {}
        app = Flask("browser_test_portal")

        @app.get("/checkout/<srn>")
        def checkout(srn: str) -> str:
            return render_template_string(CHECKOUT, action=gateway_url + PAGE_PATH, fields=self.forms[srn])

        @app.get("/return")
        def back() -> str:
            args = request.args
            return render_template_string(RETURN, status=args.get("status", "?"),
                                          confirmed=args.get("IsConfirmed", "?"),
                                          srn=args.get("SenderRequestNumber", ""),
                                          number=args.get("PaymentRequestNumber", ""))

        self.server = ServerThread(app)

    @property
    def url(self) -> str:
        return self.server.url

    def checkout(self, confirmation_url: str, lang: str, amounts: tuple[str, ...]) -> tuple[str, str]:
        """A new request's checkout URL and its SenderRequestNumber."""
        srn = srn_of(next(SRNS))
        fields = self.sender.fields(srn, amounts=amounts, confirmation_url=confirmation_url,
                                    redirect_url=f"{self.url}/return")
        if lang == "en":
            fields["LanguageId"] = "en"
        self.forms[srn] = fields
        return f"{self.url}/checkout/{srn}", srn


class Bench:
    def __init__(self, gateway: ServerThread, portal: Portal, http: requests.Session) -> None:
        self.gateway, self.portal, self.http = gateway, portal, http

    def tick(self) -> None:
        self.http.post(f"{self.gateway.url}/_admin/tick", json={}).raise_for_status()


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    """The card gateway (clock at Thursday 2026-12-03 12:00 Cairo) and the portal, both on loopback."""
    settings = load_settings(overrides={
        "urls": {"reference": REFUSING_URL, "settlement": REFUSING_URL},
        "card_gateway": {"data_dir": str(tmp_path_factory.mktemp("gateway")), "webhook_retry_seconds": [60],
                         "webhook_timeout_seconds": 2},
    })
    http = requests.Session()
    http.trust_env = False
    gateway = ServerThread(create_app(settings)).start()
    portal: Portal | None = None
    try:
        http.post(f"{gateway.url}/_admin/clock", json={"set": START}).raise_for_status()
        certificate = http.get(f"{gateway.url}/_admin/certificate")
        certificate.raise_for_status()
        portal = Portal(gateway.url, Sender(certificate.content))
        portal.server.start()
        yield Bench(gateway, portal, http)
    finally:
        if portal is not None:
            portal.server.stop()
        gateway.stop()
        http.close()


@pytest.fixture
def acknowledging(receiver: Any) -> Any:
    """The sender's confirmation endpoint: acknowledges every silent call with ``Response_Code: 000``."""
    receiver.answer_headers({"Response_Code": "000"})
    return receiver


def silent_calls(receiver: Any, bench: Bench, srn: str) -> list[dict[str, str]]:
    """The silent calls received for ``srn``, decrypted with the key and IV the sender chose."""
    key, iv = bench.portal.sender.secrets[srn]
    found = []
    for call in receiver.on(CONFIRM_PATH):
        form = {name: values[0] for name, values in parse_qs(call["body"].decode()).items()}
        if form.get("SenderRequestNumber") == srn:
            found.append(decrypt(form["RequestObject"], key, iv))
    return found


def type_card(page: Any, sees: dict[str, str], number: str) -> None:
    page.get_by_label(sees["card_number"], exact=True).fill(number)
    page.get_by_label(sees["expiry"], exact=True).fill("12/30")
    page.get_by_label(sees["cvv"], exact=True).fill("123")
    page.get_by_label(sees["cardholder"], exact=True).fill(sees["holder"])


@pytest.mark.parametrize("lang", ["ar", "en"])
def test_citizen_pays_with_3ds_from_the_portal_and_is_sent_back_confirmed(new_page, bench, acknowledging, lang):
    from playwright.sync_api import expect

    sees = SEES[lang]
    money = f"125.75 {sees['currency']}"
    checkout, srn = bench.portal.checkout(f"{acknowledging.url}{CONFIRM_PATH}", lang, amounts=("100.00", "25.75"))
    page = new_page(locale="ar-EG" if lang == "ar" else "en-US")

    # The portal's form posts itself to the gateway: the hosted page, in the citizen's language.
    page.goto(checkout)
    page.wait_for_url(bench.gateway.url + PAGE_PATH)
    expect(page).to_have_title(sees["title"])
    expect(page.locator("html")).to_have_attribute("dir", sees["dir"])
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.get_by_role("row").filter(has_text=sees["governorate"])).to_contain_text(sees["governorate_name"])
    expect(page.get_by_role("heading", name=sees["fee_lines"])).to_be_visible()
    fee_lines = page.locator("table.fee-lines tr")
    expect(fee_lines).to_have_count(2)
    expect(fee_lines.nth(0)).to_contain_text(f"100.00 {sees['currency']}")
    expect(fee_lines.nth(1)).to_contain_text(f"25.75 {sees['currency']}")
    expect(page.get_by_role("row").filter(has_text=sees["amount"]).first).to_contain_text(money)
    expect(page.locator("#amount")).to_have_text(money)
    expect(page.locator("#total")).to_have_text(money)  # no collection fee on government dues (assumed)

    # An enrolled card: the 3-D Secure challenge, three tries.
    type_card(page, sees, ENROLLED_CARD)
    page.get_by_role("button", name=f"{sees['pay']} {money}").click()
    expect(page.get_by_role("heading", name=sees["challenge"])).to_be_visible()
    expect(page.locator("html")).to_have_attribute("dir", sees["dir"])
    expect(page.locator("#card")).to_have_text("Mastercard •••• 0008")
    expect(page.locator("#tries-left")).to_have_text(f"{sees['tries_left']}: 3")

    # A wrong OTP: told so, one try fewer, still on the challenge.
    page.get_by_label(sees["otp"]).fill(WRONG_OTP)
    page.get_by_role("button", name=sees["confirm"]).click()
    expect(page.locator("#error")).to_have_text(sees["wrong_otp"])
    expect(page.locator("#tries-left")).to_have_text(f"{sees['tries_left']}: 2")
    assert ENROLLED_CARD not in page.content()  # the card number is never shown back

    # The right OTP: back at the portal, confirmed.
    page.get_by_label(sees["otp"]).fill(TEST_OTP)
    page.get_by_role("button", name=sees["confirm"]).click()
    page.wait_for_url(lambda url: url.startswith(f"{bench.portal.url}/return?"))
    query = parse_qs(urlsplit(page.url).query)
    assert query["IsConfirmed"] == ["true"] and query["status"] == ["APPROVED"]
    assert query["SenderRequestNumber"] == [srn]
    number = query["PaymentRequestNumber"][0]
    assert number.isdigit()
    expect(page.locator("#payment-status")).to_have_attribute("data-status", "APPROVED")
    expect(page.locator("#payment-status")).to_contain_text("Payment APPROVED (IsConfirmed=true)")
    expect(page.locator("#payment-request-number")).to_have_text(number)

    # The silent call follows on the gateway's clock: one, confirmed, for the whole amount.
    assert silent_calls(acknowledging, bench, srn) == []
    bench.tick()
    [confirmation] = silent_calls(acknowledging, bench, srn)
    assert confirmation["IsConfirmed"] == "true"
    assert confirmation["PaymentRequestNumber"] == number
    assert confirmation["CustomerAuthorizationAmount"] == "125.75"
    assert confirmation["AuthorizingInstitution"] == "Mastercard"


def test_a_declined_card_is_shown_back_at_the_portal_and_notified_unconfirmed(new_page, bench, acknowledging):
    from playwright.sync_api import expect

    sees = SEES["ar"]
    checkout, srn = bench.portal.checkout(f"{acknowledging.url}{CONFIRM_PATH}", "ar", amounts=("80.00",))
    page = new_page()
    page.goto(checkout)
    page.wait_for_url(bench.gateway.url + PAGE_PATH)
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.locator("#amount")).to_have_text("80.00 جنيه")

    type_card(page, sees, DECLINED_CARD)
    page.get_by_role("button", name=f"{sees['pay']} 80.00 جنيه").click()
    page.wait_for_url(lambda url: url.startswith(f"{bench.portal.url}/return?"))
    query = parse_qs(urlsplit(page.url).query)
    assert query["IsConfirmed"] == ["false"] and query["status"] == ["DECLINED"]
    assert query["SenderRequestNumber"] == [srn]
    expect(page.locator("#payment-status")).to_have_attribute("data-status", "DECLINED")
    expect(page.locator("#payment-status")).to_contain_text("Payment DECLINED (IsConfirmed=false)")

    bench.tick()
    [notice] = silent_calls(acknowledging, bench, srn)
    assert notice["IsConfirmed"] == "false" and notice["AuthorizationCode"] == ""
