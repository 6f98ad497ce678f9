"""The citizen's pages: the order, the hand-over to e-finance, the return that asks the gateway."""

from __future__ import annotations

import html
import re


def element(page: str, element_id: str) -> str | None:
    """The text of the element with ``id`` (no nesting inside it in these pages)."""
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', page)
    return html.unescape(found.group(1)) if found else None


def hidden_fields(page: str) -> dict[str, str]:
    return {html.unescape(n): html.unescape(v)
            for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)}


def text(response) -> str:
    assert response.content_type.startswith("text/html"), response.content_type
    return response.get_data(as_text=True)


def test_the_order_page_in_arabic_and_english(ref):
    order = ref.create_order()

    arabic = text(ref.client.get(f"/portal/orders/{order['bill_reference']}"))
    english = text(ref.client.get(f"/portal/orders/{order['bill_reference']}?lang=en"))

    assert '<html lang="ar" dir="rtl">' in arabic and '<html lang="en" dir="ltr">' in english
    assert element(arabic, "order-status") == "UNPAID" == element(english, "order-status")
    assert element(arabic, "order-status-text") == "لم يتم السداد بعد"
    assert element(english, "order-status-text") == "Not paid yet"
    assert element(arabic, "governorate") == "القاهرة" and element(english, "governorate") == "Cairo"
    assert element(arabic, "service") == "تجديد ترخيص البناء"
    assert element(english, "service") == "Renewal of a building permit"
    assert element(arabic, "bill-reference") == order["bill_reference"] and element(english, "amount") == "855.00"
    assert "رسم BASE" in arabic and "VAT fee" in english  # the fee lines, named in each language
    assert f'<form id="pay-by-card" method="post" action="/portal/orders/{order["bill_reference"]}/card">' in arabic
    assert hidden_fields(arabic) == {"lang": "ar"} and hidden_fields(english) == {"lang": "en"}
    assert element(arabic, "pay-button") == "متابعة إلى الدفع"
    assert element(english, "pay-button") == "Continue to payment"


def test_unknown_orders_and_payments_are_404_pages(ref):
    for url in ("/portal/orders/999999999999", "/portal/orders/abc", "/portal/card-payments/0123456789ABCDEF",
                "/portal/card-payments/x", "/payments/return?SenderRequestNumber=0123456789ABCDEF",
                "/payments/return", "/payments/return?session_id=CS1&status=APPROVED&lang=en"):
        response = ref.client.get(url)
        assert response.status_code == 404 and element(text(response), "error-code") == "NOT_FOUND", url
    posted = ref.client.post("/portal/orders/999999999999/card", data={"lang": "en"})
    assert posted.status_code == 404 and "could not find" in text(posted)


def test_paying_hands_the_sealed_fields_to_the_gateway_by_an_auto_posted_form(ref, card_gateway):
    order = ref.create_order()

    page = text(ref.client.post(f"/portal/orders/{order['bill_reference']}/card", data={"lang": "en"}))

    assert (f'<form id="efinance-initiation" method="post" action="{card_gateway.url}'
            '/CardPaymentRequestIntiation/index">') in page
    fields = hidden_fields(page)
    assert set(fields) == {"SenderID", "RandomSecret", "RequestObject", "HashedRequestObject", "LanguageId"}
    assert fields["LanguageId"] == "en"
    sealed = card_gateway.unseal(fields)  # the gateway can read it
    assert element(page, "continue-button") == "Continue to the payment gateway"
    assert 'document.getElementById("efinance-initiation").submit()' in page and "<noscript>" in page
    [attempt] = ref.order(order["bill_reference"])["card_attempts"]
    assert sealed["xml"].findtext("SenderRequestNumber") == attempt["sender_request_number"]

    again = text(ref.client.get(f"/portal/card-payments/{attempt['sender_request_number']}?lang=en"))
    assert hidden_fields(again) == fields  # payment_url serves the same fields: same key and IV


def test_paying_a_paid_order_or_with_a_bad_mechanism_is_an_error_page_that_changes_nothing(ref):
    order = ref.create_order()
    bad = ref.client.post(f"/portal/orders/{order['bill_reference']}/card", data={"mechanism": "Bitcoin"})
    ref.khales_payment(order)
    paid = ref.client.post(f"/portal/orders/{order['bill_reference']}/card", data={"lang": "ar"})

    assert bad.status_code == 422 and element(text(bad), "error-code") == "VALIDATION_FAILED"
    assert paid.status_code == 409 and element(text(paid), "error-code") == "ALREADY_PAID"
    assert element(text(paid), "error-message") == "أمر الدفع مسدد بالفعل."
    assert ref.order(order["bill_reference"])["card_attempts"] == []
    page = text(ref.client.get(f"/portal/orders/{order['bill_reference']}"))
    assert element(page, "order-status") == "PAID" and "pay-by-card" not in page


def test_the_return_page_asks_the_gateway_and_credits_what_it_says(ref, card_gateway, citizen_services):
    order = ref.create_order()
    opened = ref.open_card(order)
    number = opened["sender_request_number"]
    claim = (f"/payments/return?SenderRequestNumber={number}&PaymentRequestNumber=400000000001"
             "&IsConfirmed=true&session_id=CS1&status=APPROVED")

    lying = text(ref.client.get(claim))  # the redirect says APPROVED; the gateway does not know it
    card_gateway.approve(opened)
    paid = text(ref.client.get(claim))
    english = text(ref.client.get(claim + "&lang=en"))
    notice = ref.silent_call(card_gateway.silent_call_form(opened))  # the silent call after the return
    ref.tick()

    assert element(lying, "order-status") == "UNPAID" and element(lying, "paid-amount") == "0.00"
    assert element(lying, "receipt") is None and element(lying, "payment-note")
    assert element(paid, "order-status") == "PAID" and element(paid, "paid-amount") == "855.00"
    assert element(paid, "bill-reference") == order["bill_reference"]
    view = ref.order(order["bill_reference"])
    [payment] = view["payments"]
    assert element(paid, "receipt") == payment["receipt_number"] == element(english, "receipt")
    assert element(paid, "order-status-text") == "تم السداد بنجاح" and element(english, "order-status-text") == "Paid"
    assert 'dir="rtl"' in paid and 'dir="ltr"' in english
    assert notice.headers["Response_Code"] == "000" and notice.get_json()["status"] == "duplicate"
    assert payment["mechanism"] == "Card" and payment["institution"] == "Visa"  # the silent call filled them in
    assert len(citizen_services.delivered()) == 1


def test_the_return_page_never_fails_when_the_gateway_is_down(ref, card_gateway):
    order = ref.create_order()
    opened = ref.open_card(order)
    card_gateway.down = True

    response = ref.client.get(f"/payments/return?SenderRequestNumber={opened['sender_request_number']}&status=APPROVED")

    assert response.status_code == 200 and element(text(response), "order-status") == "UNPAID"
    assert ref.order(order["bill_reference"])["payments"] == []


def test_a_decided_attempt_sends_the_browser_to_the_order(ref, card_gateway):
    order = ref.create_order()
    opened = ref.open_card(order)
    card_gateway.approve(opened)
    ref.silent_call(card_gateway.silent_call_form(opened))

    response = ref.client.get(f"/portal/card-payments/{opened['sender_request_number']}?lang=en")

    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/portal/orders/{order['bill_reference']}?lang=en")


def test_mechanism_channel_from_the_portal_shows_the_payment_reference(ref, card_gateway):
    order = ref.create_order()

    page = text(ref.client.post(f"/portal/orders/{order['bill_reference']}/card",
                                data={"lang": "en", "mechanism": "Channel"}))

    assert element(page, "payment-request-number") == "100000000001"
    assert "Khales" in page
