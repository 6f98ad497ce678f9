"""HTTP for the reference service: parse, call the ledger, serialise. No business rule lives here.

Signed endpoints (the Khales biller, settlement notices and files, bank statements) verify the signature
over the raw bytes *before* parsing, so an unsigned or tampered body is refused without being read. e-finance's silent
call is not HMAC-signed: :mod:`reference.card_payments` checks its Signature and decrypts it; this
module only turns the outcome into the ``Response_Code`` header e-finance reads.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, redirect, request
from werkzeug.exceptions import HTTPException

from simulators.common import signing
from simulators.common.component import http_error_response, read_json
from simulators.common.errors import ApiError, BadSignature, ValidationFailed
from simulators.common.files import flag_arg
from simulators.common.wire import parse_date

from . import pages
from .efinance import MECHANISMS, is_sender_request_number
from .errors import PROCESSED, InvalidQuery, SilentCallRefused, UnknownBill, UnknownCardPayment

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .card_payments import CardPayments
    from .ledger import Ledger
    from .outbox import Outbox
    from .reconciliation import Reconciliation
    from .reports import Reports
    from .store import Store

BILL_REFERENCE = re.compile(r"[0-9]{12}", re.ASCII)
OUTBOX_STATUSES = ("PENDING", "DELIVERED", "FAILED", "CANCELLED")
SILENT_CALL_FIELDS = ("SenderID", "SenderRequestNumber", "RequestObject", "Signature")
HTML = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
log = logging.getLogger(__name__)
EXCEPTION_STATUSES = ("OPEN", "RESOLVED")
MAX_SETTLEMENT_BODY = 32 * 1024 * 1024  # st-settlement-file-delivery allows 30 MB of CSV content


def make_blueprint(component: Component, store: Store, ledger: Ledger, cards: CardPayments, outbox: Outbox,
                   reconciliation: Reconciliation, reports: Reports) -> Blueprint:
    bp = Blueprint("reference", __name__)
    catalog = component.settings.get("catalog") or {}

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
        # Every field is optional: an empty body means "defaults" (Card, Arabic).
        body = read_json("ref-card-payment-create.schema.json") if request.get_data(cache=True) else {}
        return jsonify(cards.open(bill(bill_reference), body, request.remote_addr)), 201

    # --- e-finance's silent call ------------------------------------------------------------------
    @bp.post("/efinance/confirmations")
    def efinance_confirmation() -> tuple[Response, int, dict[str, str]]:
        """Acknowledged only by ``Response_Code: 000`` (FACTS); any other code makes the gateway retry."""
        form = {name: request.form.get(name, "") for name in SILENT_CALL_FIELDS}
        try:
            result = cards.confirmation(form)
        except SilentCallRefused as exc:
            # %r: the values are the caller's; a newline in them must not forge a log line
            log.warning("silent call for %r refused: %s %r", form["SenderRequestNumber"][:20], exc.code, exc.message)
            return (jsonify(dict(exc.to_dict(), response_code=exc.response_code)), exc.status,
                    {"Response_Code": exc.response_code})
        except ApiError as exc:  # not one of ours: still never a 000, and never a 500
            code = "190" if exc.status >= 500 else "113"
            return jsonify(dict(exc.to_dict(), response_code=code)), exc.status, {"Response_Code": code}
        return jsonify(dict(result, response_code=PROCESSED)), 200, {"Response_Code": PROCESSED}

    def silent_call_http_error(exc: HTTPException) -> Any:
        """405 / 413 on the silent call's path still answer a ``Response_Code`` (never 000): the gateway
        reads only that header. Every other path keeps the common JSON error."""
        if request.path != "/efinance/confirmations":
            return http_error_response(exc)
        response, status = http_error_response(exc)
        code = "114" if exc.code == 413 else "113"
        body = dict(response.get_json() or {}, response_code=code)
        answer = jsonify(body)
        answer.headers["Response_Code"] = code
        for name, value in exc.get_headers():
            if name.lower() in ("allow", "connection"):
                answer.headers[name] = value
        if exc.code == 413:
            answer.headers["Connection"] = "close"
        return answer, status

    for http_code in (405, 413):
        bp.app_errorhandler(http_code)(silent_call_http_error)

    # --- the citizen's pages ----------------------------------------------------------------------
    def lang() -> str:
        return pages.language(request.values.get("lang"))

    def page(text: str, status: int = 200) -> tuple[str, int, dict[str, str]]:
        return text, status, dict(HTML)

    @bp.get("/portal/orders/<bill_reference>")
    def portal_order(bill_reference: str) -> tuple[str, int, dict[str, str]]:
        if not BILL_REFERENCE.fullmatch(bill_reference) or store.order(bill_reference) is None:
            return page(pages.not_found_page(lang()), 404)
        return page(pages.order_page(ledger.get_order(bill_reference), catalog, lang()))

    @bp.post("/portal/orders/<bill_reference>/card")
    def portal_pay(bill_reference: str) -> Any:
        language = lang()
        if not BILL_REFERENCE.fullmatch(bill_reference) or store.order(bill_reference) is None:
            return page(pages.not_found_page(language), 404)
        back = f"/portal/orders/{bill_reference}?lang={language}"
        mechanism = request.form.get("mechanism") or "Card"
        try:
            if mechanism not in MECHANISMS:
                raise ValidationFailed(f"mechanism is one of {', '.join(MECHANISMS)}", field="mechanism")
            opened = cards.open(bill_reference, {"language": language, "mechanism": mechanism}, request.remote_addr)
        except ApiError as exc:
            return page(pages.error_page(exc.code, exc.message, language, back), exc.status)
        if mechanism == "Channel":
            return page(pages.channel_page(ledger.get_order(bill_reference), opened["payment_request_number"],
                                           catalog, language))
        return page(pages.redirect_page(opened["initiation"]["fields"], opened["initiation"]["url"], language))

    @bp.get("/portal/card-payments/<sender_request_number>")
    def portal_card_payment(sender_request_number: str) -> Any:
        """``payment_url``: the same sealed fields again (same key and IV), while the attempt is open."""
        language = lang()
        try:
            ready = cards.initiation(sender_request_number)
        except UnknownCardPayment:
            return page(pages.not_found_page(language), 404)
        if ready is None:
            attempt = cards.attempt(sender_request_number)
            return redirect(f"/portal/orders/{attempt['bill_reference']}?lang={language}", code=303)
        fields, action = ready
        return page(pages.redirect_page(fields, action, language))

    @bp.get("/payments/return")
    def payment_return() -> tuple[str, int, dict[str, str]]:
        """PaymentConfirmationRedirectUrl. The query is the browser's word: only the SenderRequestNumber
        is used, to find the attempt; what the page says comes from the ledger and the gateway."""
        language = lang()
        number = request.args.get("SenderRequestNumber", "")
        if not is_sender_request_number(number):
            return page(pages.not_found_page(language), 404)
        try:
            order = cards.on_return(number)
        except UnknownCardPayment:
            return page(pages.not_found_page(language), 404)
        attempt = cards.attempt(number)
        query = {k: v for k, v in request.args.items() if k != "lang"}
        switch = "/payments/return?" + urlencode(dict(query, lang="en" if language == "ar" else "ar"))
        return page(pages.return_page(order, attempt["status"], catalog, language, switch))

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

    @bp.post("/settlement/files")
    def settlement_file() -> tuple[Response, int]:
        """e-finance's detailed settlement file (E5): signed like the notices, verified before parsing."""
        request.max_content_length = MAX_SETTLEMENT_BODY  # a busy day's file is larger than a message
        verified("settlement_notice")
        answer, status = reconciliation.ingest_file(read_json("st-settlement-file-delivery.schema.json"))
        return jsonify(answer), status

    @bp.post("/settlement/bank-statements")
    def bank_statement() -> tuple[Response, int]:
        """The governorates' bank: the only source that says money arrived."""
        request.max_content_length = MAX_SETTLEMENT_BODY
        if "bank_statement" not in (component.settings.get("secrets") or {}):
            raise BadSignature("no bank_statement secret is configured (secrets.bank_statement):"
                               " bank statements cannot be verified", field="X-Tahseel-Signature")
        verified("bank_statement")
        answer, status = reconciliation.ingest_statement(read_json("st-bank-statement.schema.json"))
        return jsonify(answer), status

    def exception_query() -> dict[str, str | None]:
        raw_day = request.args.get("business_date")
        day = parse_date(raw_day, "business_date", InvalidQuery).isoformat() if raw_day else None
        governorate = request.args.get("governorate_code") or None
        if governorate is not None and not re.fullmatch(r"[0-9]{2}", governorate, re.ASCII):
            raise InvalidQuery("governorate_code is two digits", field="governorate_code")
        kind = request.args.get("kind") or None
        if kind is not None and not re.fullmatch(r"[A-Z_]{1,40}", kind, re.ASCII):
            raise InvalidQuery("kind is an exception kind such as LATE_SETTLEMENT", field="kind")
        return {"status": _choice("status", EXCEPTION_STATUSES), "governorate_code": governorate,
                "business_date": day, "kind": kind}

    @bp.get("/api/exceptions")
    @bp.get("/api/reconciliation/exceptions")
    def exceptions() -> Response:
        """Outstanding (or all) exceptions with age in business days and history; JSON or Arabic CSV."""
        query = exception_query()
        fmt, bom = _format()
        listing = reports.exceptions(**query)
        if fmt == "json":
            return jsonify(listing)
        suffix = "-".join(v for v in (query["status"], query["governorate_code"], query["business_date"]) if v)
        return _csv(reports.exceptions_csv(listing, bom=bom), f"tahseel-exceptions{'-' + suffix if suffix else ''}.csv")

    @bp.get("/api/reconciliation/<day>")
    def reconciliation_day(day: str) -> Response:
        """The three sources of one business date per governorate, with status and open exceptions."""
        business_date = parse_date(day, "date", InvalidQuery)
        governorate = known_governorate()
        fmt, bom = _format()
        report = reports.reconciliation_report(business_date, governorate)
        if fmt == "json":
            return jsonify(report)
        name = f"tahseel-reconciliation-{business_date.isoformat()}{'-' + governorate if governorate else ''}.csv"
        return _csv(reports.reconciliation_csv(report, bom=bom), name)

    def known_governorate() -> str | None:
        governorate = request.args.get("governorate_code") or None
        if governorate is not None and not re.fullmatch(r"[0-9]{2}", governorate, re.ASCII):
            raise InvalidQuery("governorate_code is two digits", field="governorate_code")
        known = (component.settings.get("catalog") or {}).get("governorates") or {}
        if governorate is not None and known and governorate not in known:
            raise InvalidQuery(f"governorate_code {governorate} is none of the catalog's governorates",
                               field="governorate_code")
        return governorate

    @bp.get("/api/reports/daily")
    def daily_report() -> Response:
        day = parse_date(request.args.get("date"), "date", InvalidQuery)
        governorate = known_governorate()
        fmt, bom = _format()
        report = reports.daily(day, governorate)
        if fmt == "json":
            return jsonify(report)
        text = reports.to_csv(report, bom=bom)
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


def _format() -> tuple[str, bool]:
    """``?format=json|csv`` and the ``bom`` flag (the Excel variant of the CSV)."""
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        raise InvalidQuery("format is json or csv", field="format")
    return fmt, flag_arg("bom", InvalidQuery)


def _csv(raw: bytes, filename: str) -> Response:
    return Response(raw, mimetype="text/csv", headers={"Content-Type": "text/csv; charset=utf-8",
                                                       "Content-Disposition": f'attachment; filename="{filename}"'})
