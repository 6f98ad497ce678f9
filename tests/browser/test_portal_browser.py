"""The whole card path in a real browser, through every party of the stack on loopback.

Citizen services assesses a service request and the reference service opens its payment order (both
over their HTTP APIs, as a governorate's front office would); then the citizen's browser does the
rest: the reference's order page → "pay by card" → the hand-over page that posts the sealed e-finance
initiation fields → the gateway's hosted page → 3-D Secure → back at the reference's return page,
which shows the order PAID with a receipt. In Arabic with JavaScript (the hand-over submits itself)
and in English without it (the citizen presses "Continue").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from harness.stack import Stack

NOW = "2026-12-07T10:00:00+02:00"  # Monday, Cairo
ENROLLED_CARD = "5123450000000008"  # contracts/test-cards.yaml: 3-D Secure enrolled, approved
TEST_OTP = "123456"
INITIATION_PATH = "/CardPaymentRequestIntiation/index"

SEES: dict[str, dict[str, str]] = {
    "ar": {"dir": "rtl", "governorate_name": "القاهرة", "currency": "جنيه", "card_number": "رقم البطاقة",
           "expiry": "تاريخ الانتهاء (شهر/سنة)", "cvv": "رمز التحقق (CVV)", "pay": "ادفع",
           "challenge": "التحقق الآمن (3-D Secure)", "otp": "كلمة المرور لمرة واحدة (OTP)", "confirm": "تأكيد"},
    "en": {"dir": "ltr", "governorate_name": "Cairo", "currency": "EGP", "card_number": "Card number",
           "expiry": "Expiry (MM/YY)", "cvv": "CVV", "pay": "Pay", "challenge": "Secure verification (3-D Secure)",
           "otp": "One-time password (OTP)", "confirm": "Confirm"},
}


@pytest.fixture
def world(stack: Stack) -> Iterator[dict[str, Any]]:
    """Every party reset at a fixed simulated time, and one assessed service request with its order."""
    reference = stack.servers["reference"].app
    if not any(rule.rule.startswith("/portal/") for rule in reference.url_map.iter_rules()):
        pytest.skip("reference portal not built yet")
    http = requests.Session()
    http.trust_env = False
    try:
        for url in stack.urls.values():
            http.post(f"{url}/_admin/reset").raise_for_status()
            http.post(f"{url}/_admin/clock", json={"set": NOW}).raise_for_status()
        created = http.post(f"{stack.urls['citizen_services']}/api/service-requests",
                            json={"governorate_code": "01", "service_code": "BPR"})
        assert created.status_code == 201, created.text
        opened = http.post(f"{stack.urls['reference']}/api/orders",
                           json={"request_number": created.json()["request_number"]})
        assert opened.status_code == 201, opened.text
        yield {"http": http, "urls": stack.urls, "order": opened.json()}
    finally:
        http.close()


@pytest.mark.parametrize("lang", ["ar", "en"])
def test_citizen_pays_an_order_from_the_reference_portal_and_sees_it_paid(new_page, world, lang):
    from playwright.sync_api import expect

    sees = SEES[lang]
    urls, order = world["urls"], world["order"]
    bill, amount = order["bill_reference"], order["amount"]
    reference, gateway = urls["reference"], urls["card_gateway"]
    with_script = lang == "ar"
    page = new_page(locale="ar-EG" if lang == "ar" else "en-US", java_script_enabled=with_script)

    # The reference's order page.
    page.goto(f"{reference}/portal/orders/{bill}" + ("?lang=en" if lang == "en" else ""))
    expect(page.locator("html")).to_have_attribute("dir", sees["dir"])
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("#bill-reference")).to_have_text(bill)
    expect(page.locator("#amount")).to_have_text(amount)
    expect(page.locator("#order-status")).to_have_text("UNPAID")
    expect(page.locator("#pay-by-card")).to_be_visible()
    page.locator("#pay-button").click()

    # The hand-over to e-finance: by itself with JavaScript, by the citizen's press without.
    if not with_script:
        expect(page.locator("#efinance-initiation")).to_be_attached()
        page.locator("#continue-button").click()
    page.wait_for_url(gateway + INITIATION_PATH)

    # The gateway's hosted page, in the language the citizen chose at the portal.
    expect(page.locator("html")).to_have_attribute("dir", sees["dir"])
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("#amount")).to_have_text(f"{amount} {sees['currency']}")
    expect(page.get_by_role("cell", name=sees["governorate_name"], exact=False)).to_be_visible()
    page.get_by_label(sees["card_number"], exact=True).fill(ENROLLED_CARD)
    page.get_by_label(sees["expiry"], exact=True).fill("12/30")
    page.get_by_label(sees["cvv"], exact=True).fill("123")
    page.get_by_role("button", name=sees["pay"]).click()

    expect(page.get_by_role("heading", name=sees["challenge"])).to_be_visible()
    page.get_by_label(sees["otp"]).fill(TEST_OTP)
    page.get_by_role("button", name=sees["confirm"]).click()

    # Back at the reference: what its ledger says after asking the gateway, not what the redirect claimed.
    page.wait_for_url(lambda url: url.startswith(f"{reference}/payments/return"))
    expect(page.locator("html")).to_have_attribute("dir", sees["dir"])
    expect(page.locator("#order-status")).to_have_text("PAID")
    expect(page.locator("#bill-reference")).to_have_text(bill)
    expect(page.locator("#paid-amount")).to_have_text(amount)
    expect(page.locator("#receipt")).not_to_be_empty()
    receipt = page.locator("#receipt").inner_text()

    # The same, over the API: paid once, the receipt the page showed.
    seen = world["http"].get(f"{reference}/api/orders/{bill}")
    assert seen.status_code == 200, seen.text
    body = seen.json()
    assert (body["status"], body["paid_amount"]) == ("PAID", amount)
    assert receipt in [p.get("receipt_number") for p in body["payments"]]
