"""HTTP face of the card gateway: the signed merchant API and the citizen's hosted payment page.

Views only parse, call :class:`~simulators.card_gateway.models.CardGatewayModel` and serialise.
The merchant API answers JSON errors (through the component's handler); the hosted page answers
HTML even when it refuses, because a browser is on the other end.

The page shows the session's payment mechanism (``?mechanism=`` picks one on a NotSet request):
the card form posts to ``/pay/<id>``, the wallet form to ``/pay/<id>/wallet`` (then the OTP, on the
3-D Secure challenge's route), and Channel shows the PaymentRequestNumber to pay at a Khales outlet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, jsonify, make_response, redirect, request, url_for

from simulators.common.component import read_json
from simulators.common.errors import ApiError
from simulators.common.signing import verify

from .errors import ChallengeExpired, InvalidCardInput, InvalidWalletInput, UnknownMerchant
from .models import CHANNEL, WALLET
from .pages import (
    page_language,
    render_challenge_page,
    render_message_page,
    render_payment_page,
    render_test_cards_page,
)

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .models import CardGatewayModel, Session

MERCHANT_HEADER = "X-Merchant-Id"


def make_blueprint(component: Component, model: CardGatewayModel) -> Blueprint:
    bp = Blueprint("card_gateway", __name__, template_folder="templates")

    def authenticate_merchant() -> None:
        """The merchant id, then the signature over the raw body, before the body is parsed."""
        if request.headers.get(MERCHANT_HEADER, "") != model.merchant_id or not model.merchant_id:
            raise UnknownMerchant(f"{MERCHANT_HEADER} is missing or not a known merchant",
                                  field=MERCHANT_HEADER)
        verify(component.secret("card_gateway_merchant"), request.headers, request.get_data(cache=True),
               component.clock.now(), int(component.settings.get("signature_window_seconds", 300)))

    # --- merchant API -------------------------------------------------------------------------
    @bp.post("/api/sessions")
    def create_session() -> tuple[Response, int]:
        authenticate_merchant()
        body = read_json("cg-session-create.schema.json")
        session, created = model.create_session(body)
        return jsonify(model.session_dict(session)), 201 if created else 200

    @bp.get("/api/sessions/<session_id>")
    def get_session(session_id: str) -> Response:
        authenticate_merchant()
        return jsonify(model.session_dict(model.get_session(session_id)))

    @bp.get("/api/sessions/<session_id>/webhooks")
    def list_webhooks(session_id: str) -> Response:
        authenticate_merchant()
        return jsonify(model.delivery_log(session_id))

    # --- hosted payment page ------------------------------------------------------------------
    def action_url(session_id: str) -> str:
        lang = request.args.get("lang")
        return url_for("card_gateway.payment_page", session_id=session_id,
                       **({"lang": lang} if lang else {}))

    def refusal(error: ApiError, session_id: str) -> Response:
        try:
            session = model.get_session(session_id)
        except ApiError:
            session = None
        lang = page_language(request.args.get("lang"), session)
        return _html(render_message_page(error, lang), error.status)

    @bp.get("/pay/<session_id>")
    def payment_page(session_id: str) -> Response:
        try:
            session = model.payable_session(session_id)
            mechanism = model.page_mechanism(session, request.args.get("mechanism") or None)
            if mechanism == CHANNEL:
                # Showing the reference is what makes a NotSet request payable at an outlet (idempotent).
                session = model.choose_channel(session_id)
        except ApiError as exc:
            return refusal(exc, session_id)
        lang = page_language(request.args.get("lang"), session)
        return _html(render_payment_page(session, lang, action=action_url(session_id), mechanism=mechanism,
                                         catalog=component.settings.get("catalog") or {}), 200)

    @bp.post("/pay/<session_id>")
    def pay(session_id: str) -> Response:
        # Read the raw body first so the journal keeps the form (redacted: PAN masked, CVV starred);
        # once Flask parses a form it no longer has the bytes.
        request.get_data(cache=True)
        leaked = sorted(set(request.args) & CARD_FIELDS)
        if leaked:
            # Card data in a URL ends up in logs and browser history: refuse it, never use it.
            raise InvalidCardInput(f"card data must be posted in the form body, never in the URL ({leaked[0]})",
                                   field=leaked[0])
        form = request.form
        try:
            session = model.pay(session_id, form.get("card_number", ""), form.get("expiry", ""),
                                form.get("cvv", ""), mechanism=form.get("mechanism") or None)
        except InvalidCardInput as exc:
            # Malformed card, or not a Meeza card on a Meeza page: the same form again, naming the field.
            session = model.get_session(session_id)
            lang = page_language(request.args.get("lang"), session)
            kept = {"expiry": form.get("expiry", ""), "cardholder": form.get("cardholder", "")}
            shown = model.page_mechanism(session, (form.get("mechanism") or "").strip() or None)
            page = render_payment_page(session, lang, action=action_url(session_id), error=exc, form=kept,
                                       mechanism=shown, catalog=component.settings.get("catalog") or {})
            return _html(page, exc.status)
        except ApiError as exc:
            return refusal(exc, session_id)
        challenge = model.pending_challenge(session_id)
        if challenge is not None:
            # 3-D Secure enrolled card: the outcome waits for the OTP (challenge page, not a redirect).
            lang = page_language(request.args.get("lang"), session)
            return _html(render_challenge_page(session, challenge, lang, action=challenge_url(session_id)), 200)
        return after_attempt(session)

    @bp.post("/pay/<session_id>/wallet")
    def pay_wallet(session_id: str) -> Response:
        """The wallet's mobile number (form ``mobile``): answered with the OTP page (the wallet's
        challenge), or the wallet form again with 422 naming ``mobile``."""
        request.get_data(cache=True)
        form = request.form
        try:
            challenge = model.pay_wallet(session_id, form.get("mobile", ""))
        except InvalidWalletInput as exc:
            session = model.get_session(session_id)
            lang = page_language(request.args.get("lang"), session)
            page = render_payment_page(session, lang, action=action_url(session_id), error=exc,
                                       form={"mobile": form.get("mobile", "")[:20]}, mechanism=WALLET,
                                       catalog=component.settings.get("catalog") or {})
            return _html(page, exc.status)
        except ApiError as exc:
            return refusal(exc, session_id)
        session = model.get_session(session_id)
        lang = page_language(request.args.get("lang"), session)
        return _html(render_challenge_page(session, challenge, lang, action=challenge_url(session_id)), 200)

    def challenge_url(session_id: str) -> str:
        lang = request.args.get("lang")
        return url_for("card_gateway.answer_challenge", session_id=session_id,
                       **({"lang": lang} if lang else {}))

    def after_attempt(session: Session) -> Response:
        """The browser's way back to the merchant once an attempt is decided (303)."""
        if session.protocol == "efinance":
            # Assumed (FACTS names only the URL): the request and the attempt's outcome in the query.
            # merchant_request_id is efinance:<SenderID>:<SenderRequestNumber> (merchant_reference is the
            # bill as the citizen knows it, the invoice number when the sender gave one)
            sender_request_number = session.merchant_request_id.rsplit(":", 1)[-1]
            target = _with_query(session.return_url, SenderRequestNumber=sender_request_number,
                                 PaymentRequestNumber=session.payment_request_number or "",
                                 IsConfirmed="true" if session.status == "APPROVED" else "false",
                                 session_id=session.session_id, status=session.status)
        else:
            target = _with_query(session.return_url, session_id=session.session_id, status=session.status)
        return redirect(target, code=303)

    @bp.post("/pay/<session_id>/challenge")
    def answer_challenge(session_id: str) -> Response:
        """The OTP of a 3-D Secure or wallet challenge (form: ``otp``, ``challenge_id``); the journal
        stars the OTP."""
        request.get_data(cache=True)
        if "otp" in request.args:
            raise InvalidCardInput("the OTP must be posted in the form body, never in the URL", field="otp")
        form = request.form
        try:
            result, session, challenge = model.answer_challenge(
                session_id, form.get("challenge_id", ""), form.get("otp", ""))
        except ChallengeExpired as exc:
            session = model.get_session(session_id)
            lang = page_language(request.args.get("lang"), session)
            return _html(render_challenge_page(session, None, lang, action=action_url(session_id),
                                               expired=exc), exc.status)
        except ApiError as exc:
            return refusal(exc, session_id)
        if result == "retry":
            lang = page_language(request.args.get("lang"), session)
            return _html(render_challenge_page(session, challenge, lang, action=challenge_url(session_id),
                                               wrong=True), 422)
        return after_attempt(session)

    @bp.get("/test-cards")
    def test_cards() -> Response:
        """The published test cards and wallets (contracts/test-cards.yaml), Arabic by default, ?lang=en."""
        lang = page_language(request.args.get("lang"))
        return _html(render_test_cards_page(model.test_cards, lang, otp=model.test_otp, wallet_otp=model.wallet_otp,
                                            providers=model.wallet_providers), 200)

    return bp


CARD_FIELDS = {"card_number", "cvv", "expiry", "cardholder"}


def _html(body: str, status: int) -> Response:
    response = make_response(body, status)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Cache-Control"] = "no-store"
    return response


def _with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` set in the query it already carries (replacing names it had: a receiver
    that reads the first ``status`` must never see a stale ``APPROVED`` before the real ``DECLINED``)."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query = kept + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))
