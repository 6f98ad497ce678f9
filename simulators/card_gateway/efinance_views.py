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
  (``?state=pending|delivered|gave_up``): the test bench's view of the confirmation silent calls
  and their attempts (not e-finance's API).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify, render_template, request, url_for

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
from .errors import SessionAlreadyPaid, SessionCancelled, SessionExpired
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
                                           response_message=response_message(exc.name, lang))
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

    bp.add_url_rule(str(paths.get("status_inquiry_path") or STATUS_INQUIRY_PATH), "status_inquiry", status_inquiry,
                    methods=["POST"])
    bp.add_url_rule(str(paths.get("refund_path") or REFUND_PATH), "refund", refund, methods=["POST"])
    bp.add_url_rule(str(paths.get("cancel_path") or CANCEL_PATH), "cancel", cancel, methods=["POST"])
    bp.add_url_rule(str(paths.get("initiation_path") or INITIATION_PATH), "initiation_page", initiation_page,
                    methods=["GET", "POST"])
    bp.add_url_rule(str(paths.get("server_to_server_path") or SERVER_TO_SERVER_PATH), "server_to_server",
                    server_to_server, methods=["POST"])
    def request_log(payment_request_number: str) -> Response:
        return jsonify(gateway.request_log(payment_request_number))

    def confirmation_log() -> Response:
        return jsonify(gateway.confirmation_log(request.args.get("state") or None))

    bp.add_url_rule("/_admin/certificate", "certificate", certificate, methods=["GET"])
    bp.add_url_rule("/api/efinance/requests/<payment_request_number>", "request_log", request_log, methods=["GET"])
    bp.add_url_rule("/api/efinance/confirmations", "confirmation_log", confirmation_log, methods=["GET"])
    return bp


def _xml(body: bytes, status: int) -> Response:
    response = Response(body, status=status, mimetype="application/xml")
    response.headers["Content-Type"] = "application/xml; charset=utf-8"
    response.headers["Cache-Control"] = "no-store"
    return response

