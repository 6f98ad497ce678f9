"""The hosted payment page: its Arabic and English texts and how a session is rendered as HTML.

Kept apart from the blueprint so that the later initiation protocol (encrypted XML form posts)
can reuse the same page without touching the merchant API.
"""

from __future__ import annotations

from typing import Any

from flask import render_template

from simulators.common.clock import cairo
from simulators.common.egypt import GOVERNORATES
from simulators.common.errors import ApiError
from simulators.common.money import format_amount

from .models import Challenge, Session

TEXTS: dict[str, dict[str, str]] = {
    "ar": {
        "title": "الدفع الإلكتروني — بوابة إي فاينانس",
        "simulator": "محاكي لأغراض الاختبار: لا تستخدم بطاقة حقيقية.",
        "reference": "رقم الفاتورة",
        "governorate": "المحافظة",
        "service": "الخدمة",
        "description": "البيان",
        "fee_lines": "بنود الرسوم",
        "amount": "المبلغ",
        "collection_fee": "رسوم التحصيل",
        "total": "الإجمالي",
        "currency": "جنيه",
        "expires": "تنتهي صلاحية جلسة الدفع في",
        "declined_before": "رُفضت المحاولة السابقة، يمكنك المحاولة ببطاقة أخرى",
        "invalid": "بيانات غير صحيحة",
        "card_number": "رقم البطاقة",
        "expiry": "تاريخ الانتهاء (شهر/سنة)",
        "cvv": "رمز التحقق (CVV)",
        "cardholder": "اسم حامل البطاقة",
        "pay": "ادفع",
        "SESSION_NOT_FOUND": "جلسة الدفع غير موجودة.",
        "SESSION_EXPIRED": "انتهت صلاحية جلسة الدفع.",
        "SESSION_ALREADY_PAID": "تم سداد هذه الجلسة بالفعل.",
        "SESSION_CANCELLED": "تم إلغاء طلب الدفع هذا من جهة الإرسال.",
        "response_code": "رمز الاستجابة",
        "test_cards": "بطاقات الاختبار",
        "test_cards_note": "أي رقم صحيح حسابيًا (Luhn) غير مدرج يُقبل ما لم تحدد قاعدة تاريخ الانتهاء غير ذلك.",
        "number": "رقم البطاقة",
        "scheme": "الشبكة",
        "outcome": "النتيجة",
        "reason": "سبب الرفض",
        "three_ds": "3-D Secure",
        "enrolled": "مسجلة",
        "not_enrolled": "غير مسجلة",
        "label": "الوصف",
        "expiry_rules": "النتيجة حسب تاريخ الانتهاء (للبطاقات غير المدرجة)",
        "cvv_rules": "النتيجة حسب رمز التحقق (لأي بطاقة)",
        "response_message": "رسالة الاستجابة",
        "challenge_title": "التحقق الآمن (3-D Secure)",
        "challenge_intro": "أدخل كلمة المرور لمرة واحدة (OTP) المرسلة من البنك المصدر لبطاقتك",
        "card": "البطاقة",
        "otp": "كلمة المرور لمرة واحدة (OTP)",
        "confirm": "تأكيد",
        "tries_left": "المحاولات المتبقية",
        "challenge_expires": "تنتهي مهلة التحقق في",
        "wrong_otp": "كلمة المرور لمرة واحدة غير صحيحة",
        "test_otp_note": "رمز OTP للاختبار موجود في صفحة بطاقات الاختبار.",
        "test_otp": "رمز OTP للاختبار (لبطاقات 3-D Secure المسجلة)",
        "THREE_DS_CHALLENGE_EXPIRED": ("انتهت مهلة التحقق الآمن وفشلت المحاولة. "
                                       "يمكنك المحاولة مرة أخرى قبل انتهاء صلاحية جلسة الدفع."),
        "THREE_DS_NO_CHALLENGE": "لا يوجد تحقق آمن قيد الانتظار لهذه الجلسة.",
        "try_again": "المحاولة مرة أخرى",
    },
    "en": {
        "title": "Online payment — e-finance gateway",
        "simulator": "Test simulator: never use a real card.",
        "reference": "Bill reference",
        "governorate": "Governorate",
        "service": "Service",
        "description": "Description",
        "fee_lines": "Fee lines",
        "amount": "Amount",
        "collection_fee": "Collection fee",
        "total": "Total",
        "currency": "EGP",
        "expires": "This payment session expires at",
        "declined_before": "The previous attempt was declined; you may try another card",
        "invalid": "Invalid input",
        "card_number": "Card number",
        "expiry": "Expiry (MM/YY)",
        "cvv": "CVV",
        "cardholder": "Cardholder name",
        "pay": "Pay",
        "SESSION_NOT_FOUND": "This payment session does not exist.",
        "SESSION_EXPIRED": "This payment session has expired.",
        "SESSION_ALREADY_PAID": "This payment session is already paid.",
        "SESSION_CANCELLED": "This payment request was cancelled by its sender.",
        "response_code": "Response code",
        "test_cards": "Test cards",
        "test_cards_note": "Any Luhn-valid number not listed is approved unless its expiry rule says otherwise.",
        "number": "Card number",
        "scheme": "Scheme",
        "outcome": "Outcome",
        "reason": "Decline reason",
        "three_ds": "3-D Secure",
        "enrolled": "enrolled",
        "not_enrolled": "not enrolled",
        "label": "Description",
        "expiry_rules": "Outcome by expiry date (unlisted cards)",
        "cvv_rules": "Outcome by CVV (any card)",
        "response_message": "Response message",
        "challenge_title": "Secure verification (3-D Secure)",
        "challenge_intro": "Enter the one-time password (OTP) sent by your card's issuing bank",
        "card": "Card",
        "otp": "One-time password (OTP)",
        "confirm": "Confirm",
        "tries_left": "Tries left",
        "challenge_expires": "The verification times out at",
        "wrong_otp": "Wrong one-time password",
        "test_otp_note": "The test OTP is on the test cards page.",
        "test_otp": "Test OTP (3-D Secure enrolled cards)",
        "THREE_DS_CHALLENGE_EXPIRED": ("The secure verification timed out and the attempt failed. "
                                       "You may try again before the payment session expires."),
        "THREE_DS_NO_CHALLENGE": "There is no secure verification waiting for this session.",
        "try_again": "Try again",
    },
}


def page_language(requested: str | None, session: Session | None = None) -> str:
    """``?lang=`` wins; otherwise the session's language; Arabic by default."""
    if requested in TEXTS:
        return str(requested)
    if session is not None and session.language in TEXTS:
        return session.language
    return "ar"


def render_payment_page(session: Session, lang: str, *, action: str, catalog: dict[str, Any],
                        error: ApiError | None = None, form: dict[str, str] | None = None) -> str:
    """The form page of a payable session; ``error`` names the field the citizen must correct."""
    t = TEXTS[lang]
    name_key = "name_ar" if lang == "ar" else "name_en"
    gov = GOVERNORATES.get(session.governorate_code)
    service = next((s for s in catalog.get("services", []) if s.get("code") == session.service_code), None)
    fee_lines = [{"name": line.get(name_key) or line.get("code"), "amount": line["amount"]}
                 for line in session.fee_lines]
    error_view = None
    if error is not None:
        field = error.field or "body"
        error_view = {"field": field, "field_label": t.get(field, field), "message": error.message}
    return render_template(
        "card_gateway/pay.html", lang=lang, t=t, session=session,
        governorate_name=(gov[1] if lang == "ar" else gov[0]) if gov else None,
        service_name=service.get(name_key) if service else None,
        fee_lines=fee_lines,
        amount=format_amount(session.amount), collection_fee=format_amount(session.collection_fee),
        total=format_amount(session.total),
        expires_local=cairo(session.expires_at).strftime("%Y-%m-%d %H:%M"),
        declined_reason=session.decline_reason if session.status == "DECLINED" else None,
        error=error_view, form=form or {"expiry": "", "cardholder": ""}, action=action,
    )


def render_challenge_page(session: Session, challenge: Challenge | None, lang: str, *, action: str,
                          wrong: bool = False, expired: ApiError | None = None) -> str:
    """The 3-D Secure challenge (OTP form) of a pending challenge; with ``expired``, the page that says
    the challenge timed out, with the way back to the payment page (``action``)."""
    t = TEXTS[lang]
    return render_template(
        "card_gateway/challenge.html", lang=lang, t=t, session=session, challenge=challenge,
        total=format_amount(session.total), action=action, wrong=wrong,
        expired_code=expired.code if expired is not None else None,
        expires_local=cairo(challenge.expires_at).strftime("%Y-%m-%d %H:%M:%S") if challenge else None,
    )


def render_message_page(error: ApiError, lang: str) -> str:
    """A page that says why the session cannot be paid (unknown, expired, already paid)."""
    t = TEXTS[lang]
    return render_template("card_gateway/message.html", lang=lang, t=t, code=error.code,
                           message=t.get(error.code, error.message))


def render_test_cards_page(table: dict[str, Any], lang: str, otp: str = "") -> str:
    """The published test cards (``contracts/test-cards.yaml``) as a page."""
    t = TEXTS[lang]
    cards = [{"number": str(c["number"]), "scheme": c.get("scheme", ""), "outcome": c.get("outcome", "APPROVED"),
              "reason": c.get("decline_reason") or "", "three_ds": bool(c.get("three_ds")),
              "label": c.get("label_ar" if lang == "ar" else "label_en") or ""}
             for c in table.get("cards", [])]
    return render_template("card_gateway/test_cards.html", lang=lang, t=t, cards=cards, otp=otp,
                           expiry_rules=sorted((str(k), str(v)) for k, v in (table.get("expiry_rules") or {}).items()),
                           cvv_rules=sorted((str(k), str(v)) for k, v in (table.get("cvv_rules") or {}).items()))
