"""The citizen's pages (HTML): the order, the hand-over to e-finance, the return, errors.

Arabic (``dir="rtl"``) by default, English with ``?lang=en``. Every value shown is escaped; ids are
stable (``#order-status``, ``#pay-by-card``, ``#pay-button``, ``#efinance-initiation``,
``#continue-button``, ``#bill-reference``, ``#paid-amount``, ``#receipt``) because browser tests
drive these pages. No page trusts its query for money: the views decide what to show.
"""

from __future__ import annotations

from html import escape
from typing import Any

LANGUAGES = ("ar", "en")

TEXTS: dict[str, dict[str, str]] = {
    "ar": {
        "title_order": "أمر دفع", "title_return": "نتيجة الدفع", "title_redirect": "التحويل إلى بوابة الدفع",
        "title_error": "تعذر إتمام الطلب", "title_channel": "الدفع نقدًا",
        "bill_reference": "الرقم المرجعي", "governorate": "المحافظة", "service": "الخدمة",
        "fee_lines": "بنود الرسوم", "fee_line": "البند", "amount": "المبلغ", "status": "الحالة",
        "paid_amount": "المبلغ المدفوع", "receipt": "رقم الإيصال", "expires_at": "صالح حتى",
        "currency": "جنيه مصري", "pay": "متابعة إلى الدفع", "mechanism": "وسيلة الدفع",
        "redirecting": "جارٍ تحويلك إلى صفحة الدفع الآمنة لبوابة الدفع الإلكتروني (e-finance)…",
        "continue": "متابعة إلى بوابة الدفع", "noscript": "اضغط «متابعة» إذا لم يتم التحويل تلقائيًا.",
        "back": "العودة إلى أمر الدفع", "other_language": "English",
        "not_found": "لم نعثر على أمر الدفع أو عملية الدفع هذه.",
        "declined": "لم تتم عملية الدفع. يمكنك المحاولة مرة أخرى بنفس البطاقة أو ببطاقة أخرى.",
        "pending": "لم تؤكد بوابة الدفع عملية الدفع بعد. ستظهر النتيجة هنا عند تأكيدها.",
        "channel": "ادفع هذا المبلغ نقدًا في أي منفذ «خالص» باستخدام الرقم المرجعي للدفع:",
        "payment_request_number": "الرقم المرجعي للدفع",
        "error_code": "رمز الخطأ",
    },
    "en": {
        "title_order": "Payment order", "title_return": "Payment result", "title_redirect": "To the payment gateway",
        "title_error": "The request could not be completed", "title_channel": "Pay in cash",
        "bill_reference": "Bill reference", "governorate": "Governorate", "service": "Service",
        "fee_lines": "Fee lines", "fee_line": "Line", "amount": "Amount", "status": "Status",
        "paid_amount": "Paid amount", "receipt": "Receipt number", "expires_at": "Valid until",
        "currency": "EGP", "pay": "Continue to payment", "mechanism": "Payment method",
        "redirecting": "Taking you to the secure payment page of the e-finance gateway…",
        "continue": "Continue to the payment gateway", "noscript": "Press “Continue” if nothing happens.",
        "back": "Back to the payment order", "other_language": "العربية",
        "not_found": "We could not find this payment order or payment.",
        "declined": "The payment did not go through. You can try again with the same card or another one.",
        "pending": "The gateway has not confirmed the payment yet. The result shows here once it does.",
        "channel": "Pay this amount in cash at any Khales outlet with the payment reference:",
        "payment_request_number": "Payment reference",
        "error_code": "Error code",
    },
}
STATUS_TEXT = {
    "PAID": ("تم السداد بنجاح", "Paid"), "UNPAID": ("لم يتم السداد بعد", "Not paid yet"),
    "EXPIRED": ("انتهت صلاحية أمر الدفع", "The payment order expired"),
    "CANCELLED": ("أمر الدفع ملغى", "The payment order is cancelled"),
    "REFUNDED": ("تم رد المبلغ المدفوع", "The payment was refunded"),
}
MECHANISM_TEXT = {
    "Card": ("بطاقة بنكية", "Bank card"), "Meeza": ("بطاقة ميزة", "Meeza card"),
    "MobileWallet": ("محفظة الهاتف المحمول", "Mobile wallet"),
    "NotSet": ("أختار على صفحة الدفع", "Choose on the payment page"),
    "Channel": ("نقدًا في أي منفذ خالص (رقم مرجعي للدفع)", "Cash at any Khales outlet (a payment reference)"),
}
ERROR_TEXT = {
    "ALREADY_PAID": ("أمر الدفع مسدد بالفعل.", "This payment order is already paid."),
    "BILL_EXPIRED": ("انتهت صلاحية أمر الدفع.", "This payment order has expired."),
    "BILL_REFUNDED": ("تم رد مبلغ أمر الدفع هذا؛ اطلب أمر دفع جديدًا.", "This order was refunded; ask for a new one."),
    "UPSTREAM_UNAVAILABLE": ("بوابة الدفع غير متاحة الآن. حاول مرة أخرى بعد قليل.",
                             "The payment gateway is not available now. Try again in a moment."),
    "UPSTREAM_REJECTED": ("رفضت بوابة الدفع الطلب.", "The payment gateway refused the request."),
    "CARD_PAYMENTS_UNAVAILABLE": ("الدفع بالبطاقة غير متاح لهذه المحافظة.",
                                  "Card payments are not available for this governorate."),
    "TOO_MANY_ATTEMPTS": ("تجاوزت عدد محاولات الدفع المسموح بها لأمر الدفع هذا.",
                          "Too many payment attempts for this payment order."),
}


def language(value: str | None) -> str:
    return value if value in LANGUAGES else "ar"


def _page(lang: str, title: str, body: str, switch_url: str | None = None) -> str:
    direction = "rtl" if lang == "ar" else "ltr"
    other = "en" if lang == "ar" else "ar"
    switch = (f'<p class="language"><a id="language-link" lang="{other}" href="{escape(switch_url)}">'
              f'{TEXTS[lang]["other_language"]}</a></p>') if switch_url else ""
    return (f'<!doctype html><html lang="{lang}" dir="{direction}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)} — تحصيل Tahseel</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem}"
            "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem;"
            "text-align:start}.status{font-weight:bold}button{font-size:1.1rem;padding:.5rem 1.5rem}</style>"
            f"</head><body>{switch}<h1>{escape(title)}</h1>{body}</body></html>")


def _names(catalog: dict[str, Any], order: dict[str, Any], lang: str) -> tuple[str, str]:
    gov = (catalog.get("governorates") or {}).get(order["governorate_code"]) or {}
    service = next((s for s in catalog.get("services") or [] if s.get("code") == order["service_code"]), {})
    key = "name_ar" if lang == "ar" else "name_en"
    return str(gov.get(key) or order["governorate_code"]), str(service.get(key) or order["service_code"])


def _status(order: dict[str, Any], lang: str) -> str:
    arabic, english = STATUS_TEXT.get(order["status"], (order["status"], order["status"]))
    text = arabic if lang == "ar" else english
    return (f'<p><span>{TEXTS[lang]["status"]}:</span> <span id="order-status" class="status" dir="ltr">'
            f'{escape(order["status"])}</span> — <span id="order-status-text">{escape(text)}</span></p>')


def _summary(order: dict[str, Any], catalog: dict[str, Any], lang: str) -> str:
    t = TEXTS[lang]
    governorate, service = _names(catalog, order, lang)
    key = "name_ar" if lang == "ar" else "name_en"
    rows = "".join(f'<tr><td>{escape(str(line.get(key) or line["code"]))}</td>'
                   f'<td dir="ltr">{escape(line["amount"])}</td></tr>' for line in order["fee_lines"])
    return (f'<p>{t["bill_reference"]}: <strong id="bill-reference" dir="ltr">{escape(order["bill_reference"])}'
            f'</strong></p><p>{t["governorate"]}: <span id="governorate">{escape(governorate)}</span></p>'
            f'<p>{t["service"]}: <span id="service">{escape(service)}</span></p>'
            f'<table id="fee-lines"><caption>{t["fee_lines"]}</caption><tr><th>{t["fee_line"]}</th>'
            f'<th>{t["amount"]} ({t["currency"]})</th></tr>{rows}</table>'
            f'<p>{t["amount"]}: <strong id="amount" dir="ltr">{escape(order["amount"])}</strong> {t["currency"]}</p>'
            + _status(order, lang))


def _receipt(order: dict[str, Any], lang: str) -> str:
    t = TEXTS[lang]
    out = (f'<p>{t["paid_amount"]}: <strong id="paid-amount" dir="ltr">{escape(order["paid_amount"])}</strong>'
           f' {t["currency"]}</p>')
    if order["status"] == "PAID":
        paying = next((p for p in order["payments"] if p["status"] == "CAPTURED" and not p["excess"]), None)
        if paying is not None and paying.get("receipt_number"):
            out += (f'<p>{t["receipt"]}: <strong id="receipt" dir="ltr">{escape(paying["receipt_number"])}'
                    "</strong></p>")
    return out


def order_page(order: dict[str, Any], catalog: dict[str, Any], lang: str) -> str:
    """The order as the citizen sees it, with the card form while it can be paid."""
    t = TEXTS[lang]
    body = _summary(order, catalog, lang) + _receipt(order, lang)
    if order["status"] == "UNPAID":
        options = "".join(f'<option value="{m}"{" selected" if m == "Card" else ""}>'
                          f'{escape(names[0] if lang == "ar" else names[1])}</option>'
                          for m, names in MECHANISM_TEXT.items())
        body += (f'<form id="pay-by-card" method="post" action="/portal/orders/{escape(order["bill_reference"])}/card">'
                 f'<input type="hidden" name="lang" value="{lang}">'
                 f'<p><label for="mechanism">{t["mechanism"]}</label> <select id="mechanism" name="mechanism">'
                 f'{options}</select></p><button id="pay-button" type="submit">{t["pay"]}</button></form>')
    other = "en" if lang == "ar" else "ar"
    return _page(lang, t["title_order"], body, f'/portal/orders/{order["bill_reference"]}?lang={other}')


def redirect_page(fields: dict[str, str], action: str, lang: str) -> str:
    """The browser's hand-over: a form of hidden fields posted to e-finance's initiation page (FACTS:
    the portal's page posts the fields), submitted by a one-line script, with a button without it."""
    t = TEXTS[lang]
    hidden = "".join(f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
                     for name, value in fields.items())
    body = (f'<p id="redirecting">{t["redirecting"]}</p>'
            f'<form id="efinance-initiation" method="post" action="{escape(action)}">{hidden}'
            f'<button id="continue-button" type="submit">{t["continue"]}</button></form>'
            f'<noscript><p>{t["noscript"]}</p></noscript>'
            '<script>document.getElementById("efinance-initiation").submit();</script>')
    return _page(lang, t["title_redirect"], body)


def channel_page(order: dict[str, Any], payment_request_number: str, catalog: dict[str, Any], lang: str) -> str:
    t = TEXTS[lang]
    body = (f'<p>{t["channel"]}</p><p>{t["payment_request_number"]}: <strong id="payment-request-number" dir="ltr">'
            f'{escape(payment_request_number)}</strong></p>' + _summary(order, catalog, lang))
    return _page(lang, t["title_channel"], body)


def return_page(order: dict[str, Any], attempt_status: str, catalog: dict[str, Any], lang: str,
                switch_url: str) -> str:
    """After the gateway: the order as the ledger has it now (never what the redirect claimed)."""
    t = TEXTS[lang]
    note = ""
    if order["status"] == "UNPAID":
        note = (f'<p id="payment-note">{t["declined"] if attempt_status == "DECLINED" else t["pending"]}</p>'
                f'<p><a id="order-link" href="/portal/orders/{escape(order["bill_reference"])}?lang={lang}">'
                f'{t["back"]}</a></p>')
    body = _summary(order, catalog, lang) + _receipt(order, lang) + note
    return _page(lang, t["title_return"], body, switch_url)


def error_page(code: str, message: str, lang: str, back: str | None = None) -> str:
    t = TEXTS[lang]
    known = ERROR_TEXT.get(code)
    text = (known[0] if lang == "ar" else known[1]) if known else message
    link = f'<p><a id="order-link" href="{escape(back)}">{t["back"]}</a></p>' if back else ""
    body = (f'<p id="error-message">{escape(text)}</p><p>{t["error_code"]}: <code id="error-code">{escape(code)}'
            f"</code></p>{link}")
    return _page(lang, t["title_error"], body)


def not_found_page(lang: str) -> str:
    return _page(lang, TEXTS[lang]["title_error"], f'<p id="error-message">{TEXTS[lang]["not_found"]}</p>'
                 '<p><code id="error-code">NOT_FOUND</code></p>')
