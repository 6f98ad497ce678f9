"""HTTP face of e-finance's payment request initiation (docs/domain-facts.md).

- ``GET|POST /CardPaymentRequestIntiation/index`` (sic; ``card_gateway.efinance.initiation_path``):
  the browser's form post (or query string). Accepted → the hosted payment page; refused → an HTML
  page with ResponseCode and ResponseMessage and a 4xx status.
- ``POST /CardPaymentRequestIntiation/ServerToServer`` (assumed; ``server_to_server_path``): the same
  fields, answered with the ``PaymentRequestInitiationRes`` XML.
- ``GET /_admin/certificate``: the gateway certificate (PEM) a sender encrypts for.
- ``POST /CardPaymentRequestIntiation/StatusInquiry``, ``/Refund``, ``/Cancel`` (assumed;
  ``status_inquiry_path``, ``refund_path``, ``cancel_path``): server-to-server form posts
  authenticated by ``SenderID`` + ``SenderPassword`` (RSA under the certificate), answered with XML.
- ``GET /api/efinance/requests/<PaymentRequestNumber>`` and ``GET /api/efinance/confirmations``
  (``?state=pending|delivered|gave_up|held|suppressed``): the test bench's view of the confirmation
  silent calls (payments and refund notices), their attempts and the faults that hit them (not
  e-finance's API).
- ``POST /api/efinance/requests/<PaymentRequestNumber>/refunds`` (JSON, test bench, unauthenticated
  like the inspection): a back-office refund, e-finance refunding at the bank's request.

A wrong method (405) or a body over 1 MiB (413) on the protocol's paths is answered in the
protocol's shape (XML with a ResponseCode, or the refusal page on the initiation page), never the
common JSON error a sender's XML parser could not read.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from simulators.common.component import http_error_response, read_json
from simulators.common.money import parse_amount

from .efinance_messages import (
    CANCEL_ROOT,
    REFUND_ROOT,
    STATUS_ROOT,
    Rejection,
    initiation_response_xml,
    response_codes,
    response_message,
    response_xml,
)
from .errors import BackOfficeRefundRefused, SessionAlreadyPaid, SessionCancelled, SessionExpired
from .pages import TEXTS, render_payment_page
from .views import _html

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .efinance_model import EfinanceGateway
    from .models import CardGatewayModel

INITIATION_PATH = "/CardPaymentRequestIntiation/index"
SERVER_TO_SERVER_PATH = "/CardPaymentRequestIntiation/ServerToServer"
STATUS_INQUIRY_PATH = "/CardPaymentRequestIntiation/StatusInquiry"  # assumed
REFUND_PATH = "/CardPaymentRequestIntiation/Refund"  # assumed
CANCEL_PATH = "/CardPaymentRequestIntiation/Cancel"  # assumed
ENGLISH_IDS = {"en", "en-us", "en-gb", "english", "2"}  # assumed LanguageId values; anything else: Arabic
# HTTP errors answered in the protocol's shape on its paths (codes assumed, contracts/efinance-response-codes.yaml).
HTTP_REFUSALS = {405: "METHOD_NOT_ALLOWED", 413: "BODY_TOO_LARGE"}
# The back-office refund answers in JSON: a refusal names the JSON field, not the XML one.
JSON_FIELDS = {"Amount": "amount", "RefundRequestNumber": "refund_request_number",
               "PaymentRequestNumber": "payment_request_number"}


def language_of(value: str | None) -> str:
    """Assumed: ``LanguageId`` ``en``/``en-US``/``2`` → English; absent, ``ar``, ``1`` or other → Arabic."""
    return "en" if (value or "").strip().lower() in ENGLISH_IDS else "ar"


def make_efinance_blueprint(component: Component, model: CardGatewayModel, gateway: EfinanceGateway) -> Blueprint:
    bp = Blueprint("card_gateway_efinance", __name__)
    paths = dict(component.own.get("efinance") or {})

    def fields() -> dict[str, str]:
        # Form body or query string (request.values merges both; the form wins on a clash).
        return {name: request.values.get(name, "") for name in
                ("SenderID", "RandomSecret", "RequestObject", "HashedRequestObject", "HasedRequestObject")}

    def rejection_page(error: Rejection, lang: str) -> Response:
        page = render_template("card_gateway/efinance_rejection.html", lang=lang, t=TEXTS[lang],
                               response_code=error.code, response_message=response_message(error.name, lang),
                               detail=error.message, field=error.field)
        return _html(page, error.status)

    def initiation_page() -> Response:
        lang = language_of(request.values.get("LanguageId"))
        try:
            record, session, _ = gateway.initiate(fields(), lang)
            try:
                session = model.payable_session(session.session_id)
            except SessionAlreadyPaid as exc:
                raise Rejection("ALREADY_PAID", exc.message, field="SenderRequestNumber") from None
            except SessionExpired as exc:
                raise Rejection("REQUEST_EXPIRED", exc.message, field="SenderRequestNumber") from None
            except SessionCancelled as exc:
                raise Rejection("ALREADY_CANCELLED", exc.message, field="SenderRequestNumber") from None
        except Rejection as exc:
            return rejection_page(exc, lang)
        page = render_payment_page(session, lang, catalog=component.settings.get("catalog") or {},
                                   action=url_for("card_gateway.payment_page", session_id=session.session_id,
                                                  lang=lang))
        response = _html(page, 200)
        response.headers["X-Payment-Request-Number"] = record.payment_request_number
        return response

    def server_to_server() -> Response:
        lang = language_of(request.values.get("LanguageId"))
        try:
            record, session, _ = gateway.initiate(fields(), lang)
        except Rejection as exc:
            # A refusal may come before the (encrypted) SenderRequestNumber is read: it is left empty.
            body = initiation_response_xml(sender_request_number="", payment_request_number="", amount=None,
                                           collection_fee=None, response_code=exc.code,
                                           response_message=response_message(exc.name, lang), detail=exc.message)
            return _xml(body, exc.status)
        ok = response_codes()["SUCCESS"]
        body = initiation_response_xml(sender_request_number=record.sender_request_number,
                                       payment_request_number=record.payment_request_number,
                                       amount=session.amount, collection_fee=session.collection_fee,
                                       response_code=ok["code"], response_message=response_message("SUCCESS", lang))
        return _xml(body, 200)

    def certificate() -> Response:
        response = Response(gateway.identity.certificate_pem(), status=200, mimetype="application/x-pem-file")
        response.headers["Content-Disposition"] = 'inline; filename="card-gateway-certificate.pem"'
        return response

    # --- status inquiry, refund, cancel: form in (SenderID, SenderPassword, SenderRequestNumber or
    # PaymentRequestNumber, ...), flat XML out with ResponseCode/ResponseMessage (assumed shapes) ---
    def after_payment(root: str, action: str) -> Response:
        lang = language_of(request.values.get("LanguageId"))
        form = {name: request.form.get(name, "") for name in (
            "SenderID", "SenderPassword", "SenderRequestNumber", "PaymentRequestNumber", "RefundRequestNumber",
            "Amount")}
        status = 200
        try:
            sender = gateway.authenticate(form)
            record = gateway.find(sender, form)
            if action == "status":
                fields = gateway.status_fields(record)
            elif action == "refund":
                fields, _ = gateway.refund(sender, record, form)  # a repeat: the same answer, same status
            else:
                fields = gateway.cancel(record)
            fields = fields + [("ResponseCode", gateway.success_code()),
                               ("ResponseMessage", response_message("SUCCESS", lang))]
        except Rejection as exc:
            fields = [("SenderRequestNumber", form["SenderRequestNumber"]),
                      ("PaymentRequestNumber", form["PaymentRequestNumber"])]
            if action == "refund":
                fields.append(("RefundRequestNumber", form["RefundRequestNumber"]))
            fields += [("ResponseCode", exc.code), ("ResponseMessage", response_message(exc.name, lang)),
                       ("Detail", exc.message)]
            status = exc.status
        return _xml(response_xml(root, fields), status)

    def status_inquiry() -> Response:
        return after_payment(STATUS_ROOT, "status")

    def refund() -> Response:
        return after_payment(REFUND_ROOT, "refund")

    def cancel() -> Response:
        return after_payment(CANCEL_ROOT, "cancel")

    page_path = str(paths.get("initiation_path") or INITIATION_PATH)
    s2s_path = str(paths.get("server_to_server_path") or SERVER_TO_SERVER_PATH)
    after_payment_roots = {str(paths.get("status_inquiry_path") or STATUS_INQUIRY_PATH): STATUS_ROOT,
                           str(paths.get("refund_path") or REFUND_PATH): REFUND_ROOT,
                           str(paths.get("cancel_path") or CANCEL_PATH): CANCEL_ROOT}
    status_path, refund_path, cancel_path = after_payment_roots
    bp.add_url_rule(status_path, "status_inquiry", status_inquiry, methods=["POST"])
    bp.add_url_rule(refund_path, "refund", refund, methods=["POST"])
    bp.add_url_rule(cancel_path, "cancel", cancel, methods=["POST"])
    bp.add_url_rule(page_path, "initiation_page", initiation_page, methods=["GET", "POST"])
    bp.add_url_rule(s2s_path, "server_to_server", server_to_server, methods=["POST"])

    def protocol_http_error(exc: HTTPException) -> Any:
        """405 / 413 on a protocol path: a sender's client parses XML (or a browser shows the refusal
        page), so they get the ResponseCode of ``HTTP_REFUSALS`` in the path's own shape, with the
        HTTP status (and ``Allow``) kept. Every other path keeps the common JSON error."""
        path = request.path
        if exc.code not in HTTP_REFUSALS or path not in (page_path, s2s_path, *after_payment_roots):
            return http_error_response(exc)
        lang = language_of(request.args.get("LanguageId"))  # never the body: it may be what is refused
        detail = (f"{request.method} is not allowed here" if exc.code == 405
                  else f"the body is over {current_app.config.get('MAX_CONTENT_LENGTH')} bytes")
        error = Rejection(HTTP_REFUSALS[exc.code], detail, field="method" if exc.code == 405 else "body")
        message = response_message(error.name, lang)
        if path == page_path:
            response = rejection_page(error, lang)
        elif path == s2s_path:
            response = _xml(initiation_response_xml(sender_request_number="", payment_request_number="", amount=None,
                                                    collection_fee=None, response_code=error.code,
                                                    response_message=message), error.status)
        else:
            response = _xml(response_xml(after_payment_roots[path], [
                ("SenderRequestNumber", ""), ("PaymentRequestNumber", ""), ("ResponseCode", error.code),
                ("ResponseMessage", message), ("Detail", error.message)]), error.status)
        for name, value in exc.get_headers():
            if name.lower() == "allow":
                response.headers["Allow"] = value
        if exc.code == 413:  # the body was never read: the connection cannot carry another request
            response.headers["Connection"] = "close"
        return response

    for code in HTTP_REFUSALS:
        bp.app_errorhandler(code)(protocol_http_error)

    def inbound_fault_attrs() -> dict[str, str]:
        """Request numbers for an inbound fault's ``match`` (``payment_request_number``,
        ``sender_request_number``, ``sender_id``) on the calls that name a request in plain text (status
        inquiry, refund, cancel) and on the hosted page ``/pay/<session>...``. The initiation's numbers
        are encrypted: an inbound fault there is scoped by endpoint only."""
        if request.path in after_payment_roots and request.method == "POST":
            form = request.form
            return gateway.inbound_fault_attrs(sender_id=form.get("SenderID", ""),
                                               sender_request_number=form.get("SenderRequestNumber", ""),
                                               payment_request_number=form.get("PaymentRequestNumber", ""))
        if request.path.startswith("/pay/"):
            return gateway.inbound_fault_attrs(session_id=request.path.split("/")[2])
        return {}

    component.add_inbound_attrs(inbound_fault_attrs)

    def back_office_refund(payment_request_number: str) -> tuple[Response, int]:
        """e-finance refunding at the bank's request (test bench): the sender's refund rules, in JSON."""
        body = read_json("cg-efinance-refund.schema.json")
        amount = parse_amount(body["amount"], "amount") if "amount" in body else None
        try:
            fields, created = gateway.back_office_refund(payment_request_number, amount,
                                                         body.get("refund_request_number"))
        except Rejection as exc:
            raise BackOfficeRefundRefused(exc.message, code=exc.name, status=exc.status,
                                          field=JSON_FIELDS.get(exc.field or "", exc.field),
                                          details={"response_code": exc.code}) from None
        return jsonify({_snake(name): value for name, value in fields}), 201 if created else 200

    bp.add_url_rule("/api/efinance/requests/<payment_request_number>/refunds", "back_office_refund",
                    back_office_refund, methods=["POST"])
    def request_log(payment_request_number: str) -> Response:
        return jsonify(gateway.request_log(payment_request_number))

    def confirmation_log() -> Response:
        return jsonify(gateway.confirmation_log(request.args.get("state") or None))

    bp.add_url_rule("/_admin/certificate", "certificate", certificate, methods=["GET"])
    bp.add_url_rule("/api/efinance/requests/<payment_request_number>", "request_log", request_log, methods=["GET"])
    bp.add_url_rule("/api/efinance/confirmations", "confirmation_log", confirmation_log, methods=["GET"])
    return bp


def _snake(name: str) -> str:
    """``RefundDateTime`` → ``refund_date_time``: the back-office answer names the XML answer's fields
    in the JSON API's snake_case."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _xml(body: bytes, status: int) -> Response:
    response = Response(body, status=status, mimetype="application/xml")
    response.headers["Content-Type"] = "application/xml; charset=utf-8"
    response.headers["Cache-Control"] = "no-store"
    return response

