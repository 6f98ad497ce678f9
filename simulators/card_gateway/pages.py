"""The hosted payment page: its Arabic and English texts and how a session is rendered as HTML.

Kept apart from the blueprint so that the initiation protocol (encrypted XML form posts) reuses
the same page without touching the merchant API. The page shows the session's payment mechanism:
the card form (Card, Meeza), the wallet form (MobileWallet), the reference to pay in cash at a
Khales outlet (Channel), or for NotSet a choice of the four above the one picked (the card form
until the citizen picks another).
"""

from __future__ import annotations

from typing import Any

from flask import render_template, url_for

from simulators.common.clock import cairo
from simulators.common.egypt import GOVERNORATES
from simulators.common.errors import ApiError
from simulators.common.money import format_amount

from .models import CARD, CHANNEL, MEEZA, NOT_SET, PAYABLE_MECHANISMS, THREE_DS, WALLET, WALLET_OTP, Challenge, Session

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
        "cairo_time": " بتوقيت القاهرة",
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
        # payment mechanisms
        "choose_mechanism": "اختر وسيلة الدفع",
        "mechanism_Card": "بطاقة بنكية",
        "mechanism_Meeza": "بطاقة ميزة",
        "mechanism_MobileWallet": "محفظة الهاتف المحمول",
        "mechanism_Channel": "نقدًا في أحد منافذ خالص",
        "meeza_only": "تُقبل بطاقات ميزة فقط (تبدأ بـ 507803 أو 507808).",
        "mechanism": "وسيلة الدفع",
        "MECHANISM_NOT_OFFERED": "وسيلة الدفع هذه غير متاحة لطلب الدفع هذا.",
        "mobile": "رقم المحفظة (الهاتف المحمول)",
        "wallet_note": "أدخل رقم الهاتف المحمول المسجل في المحفظة (010 أو 011 أو 012 أو 015)؛ "
                       "ستصلك كلمة مرور لمرة واحدة في رسالة نصية.",
        "continue": "متابعة",
        "wallet": "المحفظة",
        "wallet_challenge_title": "تأكيد الدفع من المحفظة",
        "wallet_challenge_intro": "أدخل كلمة المرور لمرة واحدة (OTP) المرسلة في رسالة نصية إلى رقم المحفظة",
        "wallet_test_otp_note": "رمز OTP للاختبار موجود في صفحة بطاقات الاختبار.",
        "WALLET_OTP_EXPIRED": ("انتهت مهلة تأكيد الدفع من المحفظة وفشلت المحاولة. "
                               "يمكنك المحاولة مرة أخرى قبل انتهاء صلاحية جلسة الدفع."),
        "channel_intro": "ادفع نقدًا في أي منفذ من منافذ خالص باستخدام رقم طلب الدفع التالي:",
        "payment_request_number": "رقم طلب الدفع",
        "channel_amount": "المبلغ المطلوب سداده",
        "channel_expires": "آخر موعد للسداد",
        "channel_note": "يمكنك أيضًا اختيار وسيلة دفع أخرى قبل السداد.",
        "test_wallets": "محافظ الاختبار",
        "provider": "مزود المحفظة",
        "wallets_note": "أي رقم محمول مصري صحيح غير مدرج (010 أو 011 أو 012 أو 015 ثم ثمانية أرقام) يُقبل.",
        "wallet_providers": "مزود المحفظة حسب بادئة الرقم (افتراض)",
        "prefix": "البادئة",
        "test_wallet_otp": "رمز OTP للاختبار (للمحافظ)",
        "channel_test_note": ("طلبات الدفع بوسيلة Channel تُسدد نقدًا في منافذ خالص برقم طلب الدفع "
                              "(واجهة خالص: POST /api/outlet-payments مع biller = efinance)."),
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
        "cairo_time": " (Cairo time)",
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
        # payment mechanisms
        "choose_mechanism": "Choose how to pay",
        "mechanism_Card": "Bank card",
        "mechanism_Meeza": "Meeza card",
        "mechanism_MobileWallet": "Mobile wallet",
        "mechanism_Channel": "Cash at a Khales outlet",
        "meeza_only": "Only Meeza cards are accepted (starting 507803 or 507808).",
        "mechanism": "Payment method",
        "MECHANISM_NOT_OFFERED": "This payment method is not offered for this payment request.",
        "mobile": "Wallet number (mobile)",
        "wallet_note": "Enter the mobile number of your wallet (010, 011, 012 or 015); "
                       "you will receive a one-time password by SMS.",
        "continue": "Continue",
        "wallet": "Wallet",
        "wallet_challenge_title": "Wallet payment confirmation",
        "wallet_challenge_intro": "Enter the one-time password (OTP) sent by SMS to the wallet number",
        "wallet_test_otp_note": "The test OTP is on the test cards page.",
        "WALLET_OTP_EXPIRED": ("The wallet confirmation timed out and the attempt failed. "
                               "You may try again before the payment session expires."),
        "channel_intro": "Pay in cash at any Khales outlet with this payment request number:",
        "payment_request_number": "Payment request number",
        "channel_amount": "Amount to pay",
        "channel_expires": "Pay before",
        "channel_note": "You may still choose another way to pay before you pay.",
        "test_wallets": "Test wallets",
        "provider": "Wallet provider",
        "wallets_note": "Any other valid Egyptian mobile number (010, 011, 012 or 015 and eight digits) is approved.",
        "wallet_providers": "Wallet provider by prefix (assumed)",
        "prefix": "Prefix",
        "test_wallet_otp": "Test OTP (mobile wallets)",
        "channel_test_note": ("Channel payment requests are paid in cash at Khales outlets by their payment request "
                              "number (Khales: POST /api/outlet-payments with biller = efinance)."),
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
                        error: ApiError | None = None, form: dict[str, str] | None = None,
                        mechanism: str | None = None) -> str:
    """The page of a payable session for ``mechanism`` (default: the session's own; NotSet shows the
    card form until the citizen picks); ``error`` names the field the citizen must correct.
    ``action`` is where the card form posts (the wallet form posts to ``/pay/<id>/wallet``)."""
    t = TEXTS[lang]
    shown = mechanism or (session.mechanism if session.mechanism != NOT_SET else CARD)
    choices = []
    if session.mechanism == NOT_SET:
        # JSON-API sessions are never NotSet, so Channel is always an e-finance request here.
        choices = [{"mechanism": m, "label": t[f"mechanism_{m}"], "current": m == shown,
                    "url": url_for("card_gateway.payment_page", session_id=session.session_id, lang=lang,
                                   mechanism=m)}
                   for m in PAYABLE_MECHANISMS]
    name_key = "name_ar" if lang == "ar" else "name_en"
    gov = GOVERNORATES.get(session.governorate_code)
    service = next((s for s in catalog.get("services", []) if s.get("code") == session.service_code), None)
    fee_lines = [{"name": line.get(name_key) or line.get("code"), "amount": line["amount"]}
                 for line in session.fee_lines]
    error_view = None
    if error is not None:
        field = error.field or "body"
        error_view = {"field": field, "field_label": t.get(field, field), "message": error.message,
                      "code": error.code}
    return render_template(
        "card_gateway/pay.html", lang=lang, t=t, session=session,
        governorate_name=(gov[1] if lang == "ar" else gov[0]) if gov else None,
        # a catalog service by its name; an e-finance ServiceCode is the sender's, so its description names it
        service_name=service.get(name_key) if service else session.description,
        fee_lines=fee_lines,
        amount=format_amount(session.amount), collection_fee=format_amount(session.collection_fee),
        total=format_amount(session.total),
        expires_local=cairo(session.expires_at).strftime("%Y-%m-%d %H:%M") + t["cairo_time"],
        declined_reason=session.decline_reason if session.status == "DECLINED" else None,
        error=error_view, form=form or {"expiry": "", "cardholder": "", "mobile": ""}, action=action,
        mechanism=shown, choices=choices, card_mechanisms=(CARD, MEEZA), wallet_mechanism=WALLET,
        channel_mechanism=CHANNEL, payment_request_number=session.payment_request_number or "",
        wallet_action=url_for("card_gateway.pay_wallet", session_id=session.session_id, lang=lang),
    )


def render_challenge_page(session: Session, challenge: Challenge | None, lang: str, *, action: str,
                          wrong: bool = False, expired: ApiError | None = None) -> str:
    """The OTP form of a pending challenge (3-D Secure for an enrolled card, or a wallet's OTP); with
    ``expired``, the page that says the challenge timed out, with the way back to the payment page
    (``action``)."""
    t = TEXTS[lang]
    if challenge is not None:
        kind = challenge.kind
    else:
        kind = WALLET_OTP if expired is not None and expired.code == "WALLET_OTP_EXPIRED" else THREE_DS
    return render_template(
        "card_gateway/challenge.html", lang=lang, t=t, session=session, challenge=challenge,
        wallet=kind == WALLET_OTP,
        total=format_amount(session.total), action=action, wrong=wrong,
        expired_code=expired.code if expired is not None else None,
        expires_local=cairo(challenge.expires_at).strftime("%Y-%m-%d %H:%M:%S") if challenge else None,
    )


def render_message_page(error: ApiError, lang: str) -> str:
    """A page that says why the session cannot be paid (unknown, expired, already paid) or why the
    page cannot be shown as asked (a mechanism the request does not offer: ``data-field``)."""
    t = TEXTS[lang]
    return render_template("card_gateway/message.html", lang=lang, t=t, code=error.code,
                           message=t.get(error.code, error.message), field=error.field, detail=error.message)


def render_test_cards_page(table: dict[str, Any], lang: str, otp: str = "", wallet_otp: str = "",
                           providers: dict[str, str] | None = None) -> str:
    """The published test cards and test wallets (``contracts/test-cards.yaml``) as a page."""
    t = TEXTS[lang]
    providers = providers or {}
    wallets = [{"mobile": str(w["mobile"]), "outcome": w.get("outcome", "APPROVED"),
                "reason": w.get("decline_reason") or "",
                "provider": w.get("provider") or providers.get(str(w["mobile"])[:3], ""),
                "label": w.get("label_ar" if lang == "ar" else "label_en") or ""}
               for w in table.get("wallets") or []]
    cards = [{"number": str(c["number"]), "scheme": c.get("scheme", ""), "outcome": c.get("outcome", "APPROVED"),
              "reason": c.get("decline_reason") or "", "three_ds": bool(c.get("three_ds")),
              "label": c.get("label_ar" if lang == "ar" else "label_en") or ""}
             for c in table.get("cards", [])]
    return render_template("card_gateway/test_cards.html", lang=lang, t=t, cards=cards, otp=otp,
                           wallets=wallets, wallet_otp=wallet_otp, providers=sorted(providers.items()),
                           expiry_rules=sorted((str(k), str(v)) for k, v in (table.get("expiry_rules") or {}).items()),
                           cvv_rules=sorted((str(k), str(v)) for k, v in (table.get("cvv_rules") or {}).items()))
