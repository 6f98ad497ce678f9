"""HTTP for the reference service: parse, call the ledger, serialise. No business rule lives here.

Signed endpoints (card webhooks, the Khales biller, settlement notices) verify the signature over
the raw bytes *before* parsing, so an unsigned or tampered body is refused without being read.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request

from simulators.common import signing
from simulators.common.component import read_json
from simulators.common.money import format_amount
from simulators.common.wire import parse_date

from .errors import InvalidQuery, UnknownBill

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .ledger import Ledger
    from .outbox import Outbox
    from .reconciliation import Reconciliation
    from .reports import Reports
    from .store import Store

BILL_REFERENCE = re.compile(r"[0-9]{12}", re.ASCII)
OUTBOX_STATUSES = ("PENDING", "DELIVERED", "FAILED", "CANCELLED")
EXCEPTION_STATUSES = ("OPEN", "RESOLVED")


def make_blueprint(component: Component, store: Store, ledger: Ledger, outbox: Outbox,
                   reconciliation: Reconciliation, reports: Reports) -> Blueprint:
    bp = Blueprint("reference", __name__)

    def verified(secret_name: str) -> None:
        signing.verify(component.secret(secret_name), request.headers, request.get_data(cache=True),
                       component.clock.now(), int(component.settings.get("signature_window_seconds", 300)))

    def bill(value: str) -> str:
        if not BILL_REFERENCE.fullmatch(value):
            raise UnknownBill(f"{value!r} is not a bill reference (12 digits)", field="bill_reference")
        return value

    # --- orders (the portal's side) -----------------------------------------------------------
    @bp.post("/api/orders")
    def create_order() -> tuple[Response, int]:
        body = read_json("ref-order-create.schema.json")
        order, created = ledger.create_order(body["request_number"])
        return jsonify(order), 201 if created else 200

    @bp.get("/api/orders/<bill_reference>")
    def get_order(bill_reference: str) -> Response:
        return jsonify(ledger.get_order(bill(bill_reference)))

    @bp.post("/api/orders/<bill_reference>/card-payments")
    def open_card_payment(bill_reference: str) -> tuple[Response, int]:
        # Every field is optional: an empty body means "defaults".
        body = read_json("ref-card-payment-create.schema.json") if request.get_data(cache=True) else {}
        return jsonify(ledger.open_card_payment(bill(bill_reference), body)), 201

    @bp.get("/payments/return")
    def payment_return() -> tuple[str, int, dict[str, str]]:
        order = ledger.return_page_order(request.args.get("session_id"), request.args.get("merchant_request_id"))
        return _return_page(order), 200 if order else 404, {"Content-Type": "text/html; charset=utf-8"}

    # --- card gateway ---------------------------------------------------------------------------
    @bp.post("/webhooks/card-gateway")
    def card_webhook() -> Response:
        verified("card_gateway_webhook")
        return jsonify(ledger.card_webhook(read_json("cg-webhook.schema.json")))

    # --- Khales biller --------------------------------------------------------------------------
    @bp.post("/khales/inquiry")
    def khales_inquiry() -> Response:
        verified("khales_biller")
        return jsonify(ledger.khales_inquiry(read_json("kh-inquiry.schema.json")))

    @bp.post("/khales/payments")
    def khales_payment() -> Response:
        verified("khales_biller")
        return jsonify(ledger.khales_payment(read_json("kh-payment.schema.json")))

    @bp.post("/khales/reversals")
    def khales_reversal() -> Response:
        verified("khales_biller")
        return jsonify(ledger.khales_reversal(read_json("kh-reversal.schema.json")))

    # --- confirmations (P5) -------------------------------------------------------------------
    @bp.get("/api/confirmations")
    def confirmations() -> Response:
        status = _choice("status", OUTBOX_STATUSES)
        return jsonify(confirmations=outbox.rows(status))

    # --- settlement -----------------------------------------------------------------------------
    @bp.post("/settlement/notices")
    def settlement_notice() -> Response:
        verified("settlement_notice")
        return jsonify(reconciliation.record_notice(read_json("st-credit-notice.schema.json")))

    @bp.get("/api/reconciliation/exceptions")
    def exceptions() -> Response:
        status = _choice("status", EXCEPTION_STATUSES)
        raw_day = request.args.get("business_date")
        day = parse_date(raw_day, "business_date", InvalidQuery).isoformat() if raw_day else None
        governorate = request.args.get("governorate_code") or None
        if governorate is not None and not re.fullmatch(r"[0-9]{2}", governorate, re.ASCII):
            raise InvalidQuery("governorate_code is two digits", field="governorate_code")
        kind = request.args.get("kind") or None
        if kind is not None and not re.fullmatch(r"[A-Z_]{1,40}", kind, re.ASCII):
            raise InvalidQuery("kind is an exception kind such as LATE_SETTLEMENT", field="kind")
        rows = store.exceptions(status=status, governorate_code=governorate, business_date=day, kind=kind)
        return jsonify(exceptions=[_exception(row) for row in rows])

    @bp.get("/api/reports/daily")
    def daily_report() -> Response:
        day = parse_date(request.args.get("date"), "date", InvalidQuery)
        governorate = request.args.get("governorate_code") or None
        if governorate is not None and not re.fullmatch(r"[0-9]{2}", governorate, re.ASCII):
            raise InvalidQuery("governorate_code is two digits", field="governorate_code")
        fmt = request.args.get("format", "json")
        if fmt not in ("json", "csv"):
            raise InvalidQuery("format is json or csv", field="format")
        report = reports.daily(day, governorate)
        if fmt == "json":
            return jsonify(report)
        text = reports.to_csv(report, bom=request.args.get("bom") in ("1", "true"))
        name = f"tahseel-daily-{day.isoformat()}{'-' + governorate if governorate else ''}.csv"
        return Response(text.encode("utf-8"), mimetype="text/csv",
                        headers={"Content-Type": "text/csv; charset=utf-8",
                                 "Content-Disposition": f'attachment; filename="{name}"'})

    return bp


def _choice(name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.args.get(name) or None
    if value is not None and value not in allowed:
        raise InvalidQuery(f"{name} is one of {', '.join(allowed)}", field=name)
    return value


def _exception(row: dict[str, Any]) -> dict[str, Any]:
    out = {key: row[key] for key in ("id", "kind", "status", "governorate_code", "business_date",
                                     "bill_reference", "payment_id", "detail", "opened_at", "resolved_at",
                                     "resolution")}
    out["amount"] = format_amount(row["amount"]) if row["amount"] is not None else None
    return out


_STATUS_TEXT = {
    "PAID": ("تم السداد بنجاح", "Paid"), "UNPAID": ("لم يتم السداد بعد", "Not paid yet"),
    "EXPIRED": ("انتهت صلاحية أمر الدفع", "The payment order expired"),
    "CANCELLED": ("أمر الدفع ملغى", "The payment order is cancelled"),
}


def _return_page(order: dict[str, Any] | None) -> str:
    """The page the citizen's browser lands on after the gateway: Arabic first (rtl), English below."""
    if order is None:
        body = ("<p>لم نعثر على عملية الدفع هذه.</p>"
                '<p lang="en" dir="ltr">We could not find this payment.</p>')
    else:
        arabic, english = _STATUS_TEXT[order["status"]]
        ref, amount = html.escape(order["bill_reference"]), html.escape(order["amount"])
        body = (f'<p class="status status-{order["status"].lower()}">{arabic}</p>'
                f"<p>الرقم المرجعي: {ref} — المبلغ: {amount} جنيه مصري</p>"
                f'<p lang="en" dir="ltr">{english}. Bill reference {ref}, amount EGP {amount}.</p>')
    return ('<!doctype html><html lang="ar" dir="rtl"><head><meta charset="utf-8">'
            "<title>تحصيل — نتيجة الدفع</title></head><body>"
            f"<h1>نتيجة الدفع <small lang=\"en\">Payment result</small></h1>{body}</body></html>")
