"""State of the e-finance card gateway: payment sessions, card attempts and outbound deliveries.

No Flask here. The views parse requests and call one method per operation; everything that leaves
the gateway afterwards (the signed webhook to the merchant, the collection line to settlement) is a
:class:`Delivery` attempted by the component's scheduler and retried on the simulated clock, so a
request thread never waits on another party.

Card data rule (DESIGN.md): the full card number and the CVV are used to pick the outcome and are
then dropped; a session keeps only BIN, last four and scheme.

Payment mechanisms (docs/domain-facts.md: e-finance's ``PaymentMechanism`` types): a session offers
``Card``, ``Meeza`` (Meeza cards only), ``MobileWallet`` (mobile number, then an OTP), ``Channel``
(cash at a Khales outlet against the PaymentRequestNumber, see ``channel.py``) or ``NotSet`` (the
citizen picks). Every decided attempt, whatever paid, goes through :meth:`CardGatewayModel._complete`,
so the webhook / e-finance silent call and the settlement lines have one path. A wallet keeps only
its masked number (``010****1234``) and provider; the OTP is never kept.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from simulators.common.clock import iso, parse_duration
from simulators.common.contracts import load_contract
from simulators.common.delivery import Courier, Delivery
from simulators.common.egypt import luhn_valid
from simulators.common.money import format_amount, parse_amount, parse_currency
from simulators.common.wire import ascii_digits, parse_instant_field

from .errors import (
    AmountMismatch,
    ChallengeExpired,
    ChallengeNotPending,
    ChannelNotOffered,
    InvalidCardInput,
    InvalidWalletInput,
    MechanismMismatch,
    MechanismNotOffered,
    RequestIdConflict,
    SessionAlreadyPaid,
    SessionCancelled,
    SessionExpired,
    SessionNotFound,
)

if TYPE_CHECKING:
    from simulators.common.component import Component

OPEN, APPROVED, DECLINED, EXPIRED = "OPEN", "APPROVED", "DECLINED", "EXPIRED"
CANCELLED = "CANCELLED"  # an unpaid e-finance request cancelled by its sender (efinance_model.py)
DEFAULT_RETRY_SECONDS = (60, 300, 900, 3600, 10800, 21600, 43200)
_EXPIRY = re.compile(r"(0[1-9]|1[0-2])/([0-9]{2})", re.ASCII)  # whole string: fullmatch
_CVV = re.compile(r"[0-9]{3}", re.ASCII)
# 3-D Secure (issue 3): assumed defaults of card_gateway.three_ds (the test OTP is published).
DEFAULT_OTP = "123456"
DEFAULT_CHALLENGE_SECONDS = 300
DEFAULT_OTP_TRIES = 3
THREE_DS_FAILED, THREE_DS_TIMEOUT = "THREE_DS_FAILED", "THREE_DS_TIMEOUT"
PENDING, PASSED, FAILED, TIMED_OUT, ABANDONED = "pending", "passed", "failed", "timed_out", "abandoned"
# Payment mechanisms (docs/domain-facts.md). NotSet is not a way to pay: the citizen picks one of the others.
CARD, MEEZA, WALLET, CHANNEL, NOT_SET = "Card", "Meeza", "MobileWallet", "Channel", "NotSet"
PAYABLE_MECHANISMS = (CARD, MEEZA, WALLET, CHANNEL)
MEEZA_BINS = ("507803", "507808")  # the national scheme (docs/domain-facts.md; simulators.common.egypt)
CHANNEL_INSTITUTION = "Khales"  # AuthorizingInstitution of a cash payment at an outlet (assumed)
# Challenge kinds: a 3-D Secure OTP for an enrolled card, a wallet's OTP (assumed: same rules, own settings).
THREE_DS, WALLET_OTP = "three_ds", "wallet"
WALLET_OTP_FAILED, WALLET_OTP_TIMEOUT = "WALLET_OTP_FAILED", "WALLET_OTP_TIMEOUT"
_FAILED_REASON = {THREE_DS: THREE_DS_FAILED, WALLET_OTP: WALLET_OTP_FAILED}
_TIMEOUT_REASON = {THREE_DS: THREE_DS_TIMEOUT, WALLET_OTP: WALLET_OTP_TIMEOUT}
_EXPIRED_CODE = {THREE_DS: "THREE_DS_CHALLENGE_EXPIRED", WALLET_OTP: "WALLET_OTP_EXPIRED"}
_TIMEOUT_TASK = {THREE_DS: "card_gateway.three_ds_timeout", WALLET_OTP: "card_gateway.wallet_otp_timeout"}
# An Egyptian mobile number (docs/domain-facts.md): 010, 011, 012 or 015 and eight digits.
_MOBILE = re.compile(r"01[0125][0-9]{8}", re.ASCII)
# Assumed wallet providers by prefix (shipped in contracts/test-cards.yaml ``wallet_providers``).
DEFAULT_WALLET_PROVIDERS = {"010": "Vodafone Cash", "011": "e& cash", "012": "Orange Cash", "015": "WE Pay"}


@dataclass(frozen=True)
class CardOutcome:
    status: str  # APPROVED | DECLINED
    decline_reason: str | None
    scheme: str


@dataclass
class Challenge:
    """A 3-D Secure challenge waiting for the citizen's OTP. Keeps what the attempt needs to be
    completed later (BIN, last four, scheme and the outcome the card would get), never the full
    number, the CVV or the OTP."""

    challenge_id: str
    card: dict[str, str]
    outcome: CardOutcome
    started_at: datetime
    expires_at: datetime
    tries_left: int
    state: str = PENDING  # pending | passed | failed | timed_out | abandoned
    kind: str = THREE_DS  # three_ds (an enrolled card) | wallet (a mobile wallet's OTP)


@dataclass
class Session:
    """A payment session opened by the merchant (the collection service) for one bill reference."""

    session_id: str
    merchant_request_id: str
    merchant_reference: str
    amount: int
    collection_fee: int
    currency: str
    governorate_code: str
    service_code: str
    return_url: str
    webhook_url: str
    payment_url: str
    language: str
    description: str | None
    fee_lines: list[dict[str, Any]]
    created_at: datetime
    expires_at: datetime
    status: str = OPEN
    attempts: int = 0
    transaction_id: str | None = None
    auth_code: str | None = None
    card: dict[str, str] | None = None
    decline_reason: str | None = None
    approved_at: datetime | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    protocol: str = "json"  # "json" (merchant API) | "efinance" (encrypted initiation, efinance_model.py)
    payment_request_number: str | None = None  # e-finance sessions: the gateway's PaymentRequestNumber
    cancelled_at: datetime | None = None
    challenge: Challenge | None = None  # the latest OTP challenge, 3-D Secure or wallet (pending or how it ended)
    mechanism: str = CARD  # what the request offers: Card, Meeza, MobileWallet, Channel or NotSet (citizen picks)
    last_mechanism: str | None = None  # what made the latest decided attempt (Card, Meeza, MobileWallet, Channel)
    wallet: dict[str, str] | None = None  # the latest wallet attempt: masked mobile and provider, never the number
    channel_chosen_at: datetime | None = None  # NotSet: when the citizen picked cash at Khales on the page
    channel_payment: dict[str, str] | None = None  # the Khales payment that paid it (outlet, transaction id)

    @property
    def settlement_channel(self) -> str:
        """The settlement feed's ``channel`` of this session's money: cash when Khales collected it."""
        return "cash" if self.last_mechanism == CHANNEL else "card"

    @property
    def channel_offered(self) -> bool:
        """May a Khales outlet take cash for it: a Channel request, or NotSet once the citizen picked Channel."""
        return self.protocol == "efinance" and (
            self.mechanism == CHANNEL or (self.mechanism == NOT_SET and self.channel_chosen_at is not None))

    @property
    def total(self) -> int:
        return self.amount + self.collection_fee

    def status_at(self, now: datetime) -> str:
        """The status as seen at ``now``: an unpaid session past its expiry reads EXPIRED (lazily)."""
        if self.status in (OPEN, DECLINED) and now >= self.expires_at:
            return EXPIRED
        return self.status

    def webhook_state(self) -> str | None:
        hooks = [d for d in self.deliveries if d.kind == "webhook"]
        return hooks[-1].state if hooks else None

    def to_dict(self, now: datetime) -> dict[str, Any]:
        """The ``cg-session.schema.json`` shape."""
        feed = [d for d in self.deliveries if d.kind == "collection"]
        return {
            "session_id": self.session_id,
            "merchant_request_id": self.merchant_request_id,
            "merchant_reference": self.merchant_reference,
            "status": self.status_at(now),
            "amount": format_amount(self.amount),
            "collection_fee": format_amount(self.collection_fee),
            "total": format_amount(self.total),
            "currency": self.currency,
            "payment_url": self.payment_url,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "governorate_code": self.governorate_code,
            "service_code": self.service_code,
            "description": self.description,
            "language": self.language,
            "fee_lines": [dict(line) for line in self.fee_lines],
            "transaction_id": self.transaction_id,
            "auth_code": self.auth_code,
            "card": dict(self.card) if self.card else None,
            "decline_reason": self.decline_reason,
            "attempts": self.attempts,
            "approved_at": iso(self.approved_at) if self.approved_at else None,
            "webhook_state": self.webhook_state(),
            "settlement_feed_state": feed[-1].state if feed else None,
        }


@dataclass(frozen=True)
class AttemptOutcome:
    """What one card attempt on a session decided, as it stood at the time (for the e-finance
    confirmation, built outside the model's lock)."""

    attempt: int
    status: str  # APPROVED | DECLINED
    at: datetime
    transaction_id: str | None
    auth_code: str | None
    scheme: str  # the card scheme, the wallet provider, or Khales: the AuthorizingInstitution
    decline_reason: str | None
    mechanism: str = CARD  # the AuthorizingMechanism: Card, Meeza, MobileWallet or Channel

    @property
    def institution(self) -> str:
        """The silent call's AuthorizingInstitution: the scheme field already names whoever authorised."""
        return self.scheme

    @property
    def channel(self) -> str:
        """The settlement feed's ``channel`` (st-collection): cash for a payment at a Khales outlet."""
        return "cash" if self.mechanism == CHANNEL else "card"


class CardGatewayModel:
    """Sessions keyed by id, plus the merchant's idempotency index; one lock guards both."""

    def __init__(self, component: Component) -> None:
        self.component = component
        self._lock = threading.RLock()
        self._sessions: dict[str, Session] = {}
        self._by_request: dict[str, tuple[str, str]] = {}  # merchant_request_id -> (fingerprint, id)
        own = component.own
        retry = own.get("webhook_retry_seconds", DEFAULT_RETRY_SECONDS)
        # Webhooks and the settlement feed both retry on the webhook schedule, then give up.
        self.courier = Courier(component, retry, timeout=float(own.get("webhook_timeout_seconds", 5)))
        self._transactions: set[str] = set()
        cards = load_contract("test-cards.yaml")
        self._test_cards = {str(c["number"]): c for c in cards.get("cards", [])}
        self._expiry_rules = {str(k): str(v) for k, v in (cards.get("expiry_rules") or {}).items()}
        self._cvv_rules = {str(k): str(v) for k, v in (cards.get("cvv_rules") or {}).items()}
        self._wallets = {str(w["mobile"]): w for w in cards.get("wallets") or []}
        self.wallet_providers = {str(k): str(v) for k, v in
                                 (cards.get("wallet_providers") or DEFAULT_WALLET_PROVIDERS).items()}
        self.test_cards = cards  # the published table (GET /test-cards)
        # Set by efinance_model.EfinanceGateway: called after each card attempt on an e-finance
        # session, outside this model's lock (the gateway's lock is taken before this one elsewhere).
        self.efinance_outcome: Callable[[Session, AttemptOutcome], None] | None = None

    # --- settings -----------------------------------------------------------------------------
    @property
    def merchant_id(self) -> str:
        return str(self.component.own.get("merchant_id", ""))

    # --- lifecycle ----------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._sessions.clear()
            self._by_request.clear()
            self._transactions.clear()

    # --- merchant API -------------------------------------------------------------------------
    def create_session(self, body: dict[str, Any]) -> tuple[Session, bool]:
        """Open a session, or return the one already opened for the same request (``created`` False).

        ``body`` has passed ``cg-session-create.schema.json``; amounts are re-parsed here because
        the schema cannot say that the fee lines add up to the amount.
        """
        amount = parse_amount(body["amount"], "amount")
        parse_currency(body["currency"])
        fee_lines = list(body.get("fee_lines") or [])
        if fee_lines:
            lines_total = sum(parse_amount(line["amount"], f"fee_lines.{i}.amount", allow_zero=True)
                              for i, line in enumerate(fee_lines))
            if lines_total != amount:
                raise AmountMismatch(
                    f"fee lines add up to {format_amount(lines_total)}, not the amount "
                    f"{format_amount(amount)}", field="fee_lines")
        own = self.component.own
        fee = parse_amount(str(own.get("collection_fee", "0.00")), "card_gateway.collection_fee",
                           allow_zero=True)
        ttl = parse_duration(own.get("session_ttl", "24h"))
        bill_expiry = parse_instant_field(body["expires_at"], "expires_at") if body.get("expires_at") else None
        fingerprint = json.dumps(body, sort_keys=True, ensure_ascii=False)
        request_id = body["merchant_request_id"]
        with self._lock:
            known = self._by_request.get(request_id)
            if known is not None:
                if known[0] != fingerprint:
                    raise RequestIdConflict(
                        f"merchant_request_id {request_id} was already used for another session body",
                        field="merchant_request_id")
                return self._sessions[known[1]], False
            session_id = self._new_id("CS", lambda: secrets.token_hex(8).upper(), self._sessions)
            now = self.component.clock.now()
            session = Session(
                session_id=session_id,
                merchant_request_id=request_id,
                merchant_reference=body["merchant_reference"],
                amount=amount,
                collection_fee=fee,
                currency=body["currency"],
                governorate_code=body["governorate_code"],
                service_code=body["service_code"],
                return_url=body["return_url"],
                webhook_url=body["webhook_url"],
                payment_url=f"{self.component.url_of('card_gateway')}/pay/{session_id}",
                language=body.get("language", "ar"),
                description=body.get("description"),
                fee_lines=[dict(line) for line in fee_lines],
                created_at=now,
                expires_at=min(now + ttl, bill_expiry) if bill_expiry else now + ttl,
            )
            self._sessions[session_id] = session
            self._by_request[request_id] = (fingerprint, session_id)
            return session, True

    def open_efinance_session(self, *, merchant_request_id: str, merchant_reference: str, amount: int,
                              governorate_code: str, service_code: str, return_url: str, webhook_url: str,
                              language: str, description: str | None, fee_lines: list[dict[str, Any]],
                              expires_at: datetime, payment_request_number: str, mechanism: str = NOT_SET) -> Session:
        """A session for an e-finance initiation request (``efinance_model.py`` checked it and keeps
        its own idempotency index; the merchant API's ``merchant_request_id`` index is not used)."""
        own = self.component.own
        fee = parse_amount(str(own.get("collection_fee", "0.00")), "card_gateway.collection_fee",
                           allow_zero=True)
        ttl = parse_duration(own.get("session_ttl", "24h"))
        with self._lock:
            session_id = self._new_id("CS", lambda: secrets.token_hex(8).upper(), self._sessions)
            now = self.component.clock.now()
            session = Session(
                session_id=session_id, merchant_request_id=merchant_request_id,
                merchant_reference=merchant_reference, amount=amount, collection_fee=fee, currency="EGP",
                governorate_code=governorate_code, service_code=service_code, return_url=return_url,
                webhook_url=webhook_url,
                payment_url=f"{self.component.url_of('card_gateway')}/pay/{session_id}",
                language=language, description=description, fee_lines=[dict(line) for line in fee_lines],
                created_at=now, expires_at=min(now + ttl, expires_at), protocol="efinance",
                payment_request_number=payment_request_number, mechanism=mechanism,
            )
            self._sessions[session_id] = session
            return session

    def get_session(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(f"no session {session_id}", field="session_id")
        return session

    def session_dict(self, session: Session) -> dict[str, Any]:
        with self._lock:
            return session.to_dict(self.component.clock.now())

    def delivery_log(self, session_id: str) -> dict[str, Any]:
        """Every webhook event of a session with each delivery attempt (time, status, outcome)."""
        session = self.get_session(session_id)
        with self._lock:
            hooks = [d for d in session.deliveries if d.kind == "webhook"]
            return {
                "session_id": session.session_id,
                "webhook_url": session.webhook_url,
                "events": [dict(d.to_dict(), event_type=d.body.get("event_type")) for d in hooks],
                "attempts": [dict(a, event_id=d.delivery_id) for d in hooks for a in d.attempts],
            }

    # --- hosted page --------------------------------------------------------------------------
    def payable_session(self, session_id: str) -> Session:
        """The session if a card may still be tried on it (OPEN, or DECLINED and not yet expired)."""
        session = self.get_session(session_id)
        with self._lock:
            status = session.status_at(self.component.clock.now())
        if status == APPROVED:
            raise SessionAlreadyPaid(f"session {session_id} is already paid", field="session_id")
        if status == EXPIRED:
            raise SessionExpired(f"session {session_id} expired at {iso(session.expires_at)}",
                                 field="session_id")
        if status == CANCELLED:
            raise SessionCancelled(f"session {session_id} was cancelled by its sender", field="session_id")
        return session

    def cancel_session(self, session_id: str) -> tuple[str, Session]:
        """Cancel an unpaid, unexpired session (e-finance's cancel). Returns the status it had when
        it could not be cancelled (APPROVED, EXPIRED, CANCELLED) or ``OPEN``/``DECLINED`` when it was."""
        session = self.get_session(session_id)
        with self._lock:
            now = self.component.clock.now()
            status = session.status_at(now)
            if status in (OPEN, DECLINED):
                session.status = CANCELLED
                session.cancelled_at = now
            return status, session

    # --- payment mechanisms ---------------------------------------------------------------------
    def page_mechanism(self, session: Session, requested: str | None) -> str:
        """The mechanism the page shows: the request's own, or for NotSet the citizen's pick
        (``?mechanism=``, the card form until they pick). A value the request does not offer raises
        :class:`MechanismNotOffered` (the page answers 422 naming ``mechanism``)."""
        if not requested:
            return session.mechanism if session.mechanism != NOT_SET else CARD
        if requested not in PAYABLE_MECHANISMS:
            raise MechanismNotOffered(f"mechanism must be one of {', '.join(PAYABLE_MECHANISMS)}",
                                      field="mechanism")
        if session.mechanism not in (NOT_SET, requested):
            raise MechanismNotOffered(f"this payment is paid by {session.mechanism}, not by {requested}",
                                      field="mechanism")
        return requested

    def _card_mechanism(self, session: Session, requested: str | None) -> str:
        """Card or Meeza: what a posted card form pays with (NotSet: the form's ``mechanism``, Card
        by default); a session that is not paid by card refuses the form."""
        mechanism = self.page_mechanism(session, (requested or "").strip() or None)
        if mechanism not in (CARD, MEEZA):
            raise MechanismNotOffered(f"this payment is paid by {mechanism}, not by card", field="mechanism")
        return mechanism

    def choose_channel(self, session_id: str) -> Session:
        """The citizen picked cash at a Khales outlet (or the request asked for it): from now on the
        PaymentRequestNumber is payable at an outlet. Showing it again changes nothing more."""
        with self._lock:
            session = self.payable_session(session_id)
            if session.protocol != "efinance" or session.mechanism not in (CHANNEL, NOT_SET):
                raise MechanismNotOffered("this payment cannot be paid in cash at a Khales outlet",
                                          field="mechanism")
            if session.mechanism == NOT_SET and session.channel_chosen_at is None:
                session.channel_chosen_at = self.component.clock.now()
            return session

    def pay_channel(self, session_id: str, payment: dict[str, str]) -> Session:
        """Cash taken at a Khales outlet (``channel.py`` checked the amount and keeps the cash
        network's idempotency): approved through the one completion path of every attempt."""
        session = self.payable_session(session_id)
        if not session.channel_offered:
            raise ChannelNotOffered(f"payment request {session.payment_request_number} is not payable at an "
                                    "outlet", field="payment_request_number")
        return self._complete(session_id, {"mechanism": CHANNEL, **payment},
                              CardOutcome(APPROVED, None, CHANNEL_INSTITUTION))

    def pay_wallet(self, session_id: str, mobile: str) -> Challenge:
        """A mobile wallet's number: the outcome comes from the published test wallets and waits for
        the wallet's OTP (the 3-D Secure machinery, kind ``wallet``). Only the masked number is kept."""
        session = self.payable_session(session_id)
        if session.mechanism not in (WALLET, NOT_SET):
            raise MechanismNotOffered(f"this payment is paid by {session.mechanism}, not by a mobile wallet",
                                      field="mechanism")
        number = normalise_mobile(mobile)
        if not _MOBILE.fullmatch(number):
            raise InvalidWalletInput("the wallet number must be an Egyptian mobile number: 010, 011, 012 or 015 "
                                     "and eight digits", field="mobile")
        listed = self._wallets.get(number) or {}
        provider = str(listed.get("provider") or self.wallet_providers.get(number[:3], "Unknown"))
        status = str(listed.get("outcome", APPROVED))
        reason = listed.get("decline_reason") or (None if status == APPROVED else "DECLINED")
        wallet = {"mechanism": WALLET, "mobile": mask_mobile(number), "provider": provider}
        del number, mobile  # only the masked number goes further
        return self._start_challenge(session_id, wallet, CardOutcome(status, reason, provider), kind=WALLET_OTP)

    def pay(self, session_id: str, card_number: str, expiry: str, cvv: str, mechanism: str | None = None) -> Session:
        """Try a card on a session: approve or decline it, then queue the webhook (and settlement);
        for an e-finance session, hand the outcome to ``efinance_outcome`` (the silent call) instead.

        Malformed card input raises :class:`InvalidCardInput` before anything changes; a session
        that asks for Meeza refuses another scheme's card (:class:`MechanismMismatch`). The card
        number and CVV are not kept: only BIN, last four and scheme survive this call.
        """
        session = self.payable_session(session_id)  # 404 / 409 / 410 come before any complaint about the card
        paying_with = self._card_mechanism(session, mechanism)
        number = re.sub(r"[ -]", "", card_number or "")  # "4111 1111-1111 1111" as people type it
        if not ascii_digits(number, length=(12, 19)):
            raise InvalidCardInput("the card number must be 12 to 19 digits", field="card_number")
        if not luhn_valid(number):
            raise InvalidCardInput("the card number fails the Luhn check", field="card_number")
        if paying_with == MEEZA and not number.startswith(MEEZA_BINS):
            raise MechanismMismatch("only Meeza cards (BIN 507803 or 507808) pay this request", field="card_number")
        expiry = (expiry or "").strip()
        if not _EXPIRY.fullmatch(expiry):
            raise InvalidCardInput("the expiry date must be MM/YY", field="expiry")
        if not _CVV.fullmatch((cvv or "").strip()):
            raise InvalidCardInput("the CVV must be 3 digits", field="cvv")
        outcome = self._outcome(number, expiry, cvv.strip())
        card = {"bin": number[:6], "last4": number[-4:], "scheme": outcome.scheme}
        enrolled = bool((self._test_cards.get(number) or {}).get("three_ds"))
        cvv_declined = outcome.decline_reason is not None and outcome.decline_reason == self._cvv_rules.get(cvv.strip())
        del number, card_number, cvv  # nothing below may see the full card number or the CVV
        if enrolled and not cvv_declined:
            # 3-D Secure: the outcome waits for the OTP (a CVV mismatch is answered before, at once).
            self._start_challenge(session_id, card, outcome)
            return self.get_session(session_id)
        return self._complete(session_id, card, outcome)

    def _complete(self, session_id: str, card: dict[str, str], outcome: CardOutcome) -> Session:
        """Decide a card attempt: record the outcome, then queue the webhook (and settlement), or for
        an e-finance session hand it to ``efinance_outcome`` (the silent call). The one completion
        path of a non-enrolled card, a passed 3-D Secure challenge and a failed one, a wallet's OTP
        and a cash payment at a Khales outlet (``card`` is then the wallet or the outlet payment,
        with its ``mechanism``)."""
        mechanism = card.get("mechanism") or (MEEZA if outcome.scheme == "Meeza" else CARD)
        with self._lock:
            session = self.payable_session(session_id)
            now = self.component.clock.now()
            if session.challenge is not None and session.challenge.state == PENDING:
                session.challenge.state = ABANDONED  # a new card attempt replaces the challenge
            session.attempts += 1
            session.last_mechanism = mechanism
            instrument = {k: v for k, v in card.items() if k != "mechanism"}
            if mechanism == WALLET:
                session.wallet = instrument
            elif mechanism == CHANNEL:
                session.channel_payment = instrument
            else:
                session.card = instrument
            if outcome.status == APPROVED:
                session.status = APPROVED
                session.decline_reason = None
                session.transaction_id = self._new_id(
                    "TX", lambda: f"{secrets.randbelow(10**12):012d}", self._transactions)
                self._transactions.add(session.transaction_id)
                session.auth_code = f"{secrets.randbelow(10**6):06d}"
                session.approved_at = now
            else:
                session.status = DECLINED
                session.decline_reason = outcome.decline_reason
            if session.protocol != "efinance":
                self._queue(session, self._webhook_delivery(session, now), now)
                if session.status == APPROVED:
                    self._queue(session, self._collection_delivery(session, now), now)
                return session
            # e-finance: the silent call and the settlement lines are the gateway's (efinance_model.py)
            result = AttemptOutcome(attempt=session.attempts, status=session.status, at=now,
                                    transaction_id=session.transaction_id, auth_code=session.auth_code,
                                    scheme=outcome.scheme, decline_reason=session.decline_reason,
                                    mechanism=mechanism)
        if self.efinance_outcome is not None:
            self.efinance_outcome(session, result)
        return session

    # --- OTP challenges: 3-D Secure and mobile wallets ----------------------------------------
    def _challenge_settings(self, kind: str) -> dict[str, Any]:
        """``card_gateway.three_ds`` or ``card_gateway.wallet`` (otp, otp_tries, challenge_seconds)."""
        return dict(self.component.own.get("three_ds" if kind == THREE_DS else "wallet") or {})

    def otp_of(self, kind: str) -> str:
        return str(self._challenge_settings(kind).get("otp", DEFAULT_OTP))

    @property
    def test_otp(self) -> str:
        """The published test OTP of every enrolled card (``card_gateway.three_ds.otp``)."""
        return self.otp_of(THREE_DS)

    @property
    def wallet_otp(self) -> str:
        """The published test OTP of every wallet (``card_gateway.wallet.otp``)."""
        return self.otp_of(WALLET_OTP)

    def _start_challenge(self, session_id: str, card: dict[str, str], outcome: CardOutcome,
                         kind: str = THREE_DS) -> Challenge:
        """Keep a pending challenge on the session (replacing any earlier one) and schedule its time
        limit on the component's scheduler (simulated clock: it runs when the clock is moved)."""
        settings = self._challenge_settings(kind)
        seconds = float(settings.get("challenge_seconds", DEFAULT_CHALLENGE_SECONDS))
        tries = int(settings.get("otp_tries", DEFAULT_OTP_TRIES))
        prefix = "3DS" if kind == THREE_DS else "OTP"
        with self._lock:
            session = self.payable_session(session_id)
            now = self.component.clock.now()
            challenge = Challenge(challenge_id=prefix + secrets.token_hex(8).upper(), card=dict(card),
                                  outcome=outcome, started_at=now,
                                  expires_at=now + timedelta(seconds=seconds), tries_left=tries, kind=kind)
            if session.challenge is not None and session.challenge.state == PENDING:
                session.challenge.state = ABANDONED
            session.challenge = challenge
        self.component.scheduler.schedule(
            challenge.expires_at, f"{_TIMEOUT_TASK[kind]}:{session_id}:{challenge.challenge_id}",
            lambda: self._challenge_timeout(session_id, challenge.challenge_id))
        return challenge

    def pending_challenge(self, session_id: str) -> Challenge | None:
        """The session's challenge if it is still waiting for an OTP."""
        session = self.get_session(session_id)
        with self._lock:
            challenge = session.challenge
            return challenge if challenge is not None and challenge.state == PENDING else None

    def _challenge_timeout(self, session_id: str, challenge_id: str) -> bool:
        """The time limit of a challenge: if it is still pending, the attempt fails (THREE_DS_TIMEOUT,
        or WALLET_OTP_TIMEOUT for a wallet). Returns whether it failed the attempt now."""
        with self._lock:
            session = self._sessions.get(session_id)
            challenge = session.challenge if session is not None else None
            if (challenge is None or challenge.challenge_id != challenge_id or challenge.state != PENDING
                    or self.component.clock.now() < challenge.expires_at):
                return False
            challenge.state = TIMED_OUT
            card = dict(challenge.card)
            reason, scheme = _TIMEOUT_REASON[challenge.kind], challenge.outcome.scheme
        try:
            self._complete(session_id, card, CardOutcome(DECLINED, reason, scheme))
        except (SessionAlreadyPaid, SessionExpired, SessionCancelled):
            return False  # the session ended meanwhile: nothing left to fail
        return True

    def answer_challenge(self, session_id: str, challenge_id: str, otp: str) -> tuple[str, Session, Challenge]:
        """The citizen's OTP for the pending challenge. Returns ``("completed", …)`` when the attempt
        was decided (the right OTP: the card's outcome; the last wrong try: THREE_DS_FAILED) or
        ``("retry", …)`` after a wrong OTP with tries left. An OTP after the time limit raises
        :class:`ChallengeExpired` (failing the attempt first if the scheduler has not yet);
        no pending challenge raises :class:`ChallengeNotPending`."""
        session = self.payable_session(session_id)
        with self._lock:
            challenge = session.challenge
            if challenge is None or not challenge_id or challenge.challenge_id != challenge_id:
                raise ChallengeNotPending(f"session {session_id} has no such 3-D Secure challenge",
                                          field="challenge_id")
            expired = challenge.state == TIMED_OUT or (
                challenge.state == PENDING and self.component.clock.now() >= challenge.expires_at)
            if not expired and challenge.state != PENDING:
                raise ChallengeNotPending(f"the 3-D Secure challenge of session {session_id} is {challenge.state}",
                                          field="challenge_id")
        if expired:
            self._challenge_timeout(session_id, challenge.challenge_id)
            what = "3-D Secure challenge" if challenge.kind == THREE_DS else "wallet OTP"
            raise ChallengeExpired(f"the {what} expired at {iso(challenge.expires_at)}", field="otp",
                                   code=_EXPIRED_CODE[challenge.kind])
        expected = self.otp_of(challenge.kind)
        right = secrets.compare_digest((otp or "").strip().encode(), expected.encode())
        with self._lock:
            if challenge.state != PENDING:  # answered meanwhile by another request
                raise ChallengeNotPending(f"the 3-D Secure challenge of session {session_id} is {challenge.state}",
                                          field="challenge_id")
            if right:
                challenge.state = PASSED
                outcome = challenge.outcome
            else:
                challenge.tries_left -= 1
                if challenge.tries_left > 0:
                    return "retry", session, challenge
                challenge.state = FAILED
                outcome = CardOutcome(DECLINED, _FAILED_REASON[challenge.kind], challenge.outcome.scheme)
            card = dict(challenge.card)
        return "completed", self._complete(session_id, card, outcome), challenge

    def _outcome(self, number: str, expiry: str, cvv: str = "") -> CardOutcome:
        """Outcome from ``contracts/test-cards.yaml``: the CVV rule first (a CVV mismatch is answered
        before the authorisation), then a listed number, then the expiry rules, else approved."""
        cvv_rule = self._cvv_rules.get(cvv)
        if cvv_rule is not None and cvv_rule != APPROVED:
            listed = self._test_cards.get(number) or {}
            return CardOutcome(DECLINED, cvv_rule, str(listed.get("scheme") or scheme_of(number)))
        listed = self._test_cards.get(number)
        if listed is not None:
            status = str(listed.get("outcome", APPROVED))
            reason = listed.get("decline_reason") or (None if status == APPROVED else "DECLINED")
            return CardOutcome(status, reason, str(listed.get("scheme") or scheme_of(number)))
        rule = self._expiry_rules.get(expiry, APPROVED)
        if rule == APPROVED:
            return CardOutcome(APPROVED, None, scheme_of(number))
        # DECLINED, EXPIRED_CARD, TIMED_OUT...: the issuer's answer is a decline with that reason.
        return CardOutcome(DECLINED, rule, scheme_of(number))

    # --- outbound deliveries ------------------------------------------------------------------
    def _webhook_delivery(self, session: Session, now: datetime) -> Delivery:
        approved = session.status == APPROVED
        body = {
            "event_id": self._new_id("EV", lambda: secrets.token_hex(8).upper(), self.courier),
            "event_type": "payment.approved" if approved else "payment.declined",
            "session_id": session.session_id,
            "merchant_request_id": session.merchant_request_id,
            "merchant_reference": session.merchant_reference,
            "status": session.status,
            "transaction_id": session.transaction_id if approved else None,
            "auth_code": session.auth_code if approved else None,
            "amount": format_amount(session.amount),
            "collection_fee": format_amount(session.collection_fee),
            "total": format_amount(session.total),
            "currency": session.currency,
            "card": dict(session.card or {}),
            "decline_reason": session.decline_reason,
            "governorate_code": session.governorate_code,
            "service_code": session.service_code,
            "occurred_at": iso(now),
        }
        return Delivery(delivery_id=body["event_id"], kind="webhook", url=session.webhook_url,
                        target="reference", secret_name="card_gateway_webhook", body=body)

    def _collection_delivery(self, session: Session, now: datetime) -> Delivery:
        """The approved payment as a line of the settlement feed (``st-collection.schema.json``)."""
        body = {
            "collection_id": f"card:{session.transaction_id}",
            "type": "payment",
            "channel": "card",
            "source": "card_gateway",
            "governorate_code": session.governorate_code,
            "service_code": session.service_code,
            "bill_reference": session.merchant_reference,
            "amount": format_amount(session.amount),
            "collection_fee": format_amount(session.collection_fee),
            "currency": session.currency,
            "collected_at": iso(now),
            "transaction_number": session.transaction_id,
        }
        return Delivery(delivery_id=body["collection_id"], kind="collection",
                        url=f"{self.component.url_of('settlement')}/api/collections",
                        target="settlement", secret_name="collections_feed", body=body)

    def _queue(self, session: Session, delivery: Delivery, at: datetime) -> None:
        session.deliveries.append(delivery)
        self.courier.send(delivery, at)

    def queue_delivery(self, session: Session, delivery: Delivery, at: datetime) -> None:
        """Queue a delivery of ``session`` on the webhook/feed courier (e-finance's settlement lines)."""
        with self._lock:
            self._queue(session, delivery, at)

    def collection_deliveries(self, session: Session) -> list[Delivery]:
        with self._lock:
            return [d for d in session.deliveries if d.kind == "collection"]

    @staticmethod
    def _new_id(prefix: str, draw: Any, taken: Any) -> str:
        while True:
            candidate = prefix + draw()
            if candidate not in taken:
                return candidate


def mechanism_of(type_: str, mechanism_type: str) -> str:
    """The mechanism a request offers from ``PaymentMechanism.Type`` and ``.MechanismType`` (FACTS
    names both, not how they combine; assumed): equal → that; one NotSet → the other; Card with
    Meeza → Meeza (a Meeza card is a card); any other disagreement → ``Type`` wins."""
    if type_ == mechanism_type or mechanism_type == NOT_SET:
        return type_
    if type_ == NOT_SET:
        return mechanism_type
    if {type_, mechanism_type} == {CARD, MEEZA}:
        return MEEZA
    return type_


def normalise_mobile(text: str) -> str:
    """A mobile number as people type it (spaces, dashes, +20 / 0020 in front) → ``01XXXXXXXXX``."""
    number = re.sub(r"[ -]", "", text or "")
    for prefix in ("+20", "0020"):
        if number.startswith(prefix + "1"):
            return "0" + number[len(prefix):]
    return number


def mask_mobile(number: str) -> str:
    """``010****1234``: the prefix (the provider) and the last four, as receipts print it."""
    return f"{number[:3]}****{number[-4:]}"


def scheme_of(number: str) -> str:
    """The card scheme from the BIN (Meeza's national BINs first: they start with 5 too)."""
    if number.startswith(MEEZA_BINS):
        return "Meeza"
    if number.startswith("4"):
        return "Visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or 2221 <= int(number[:4]) <= 2720:
        return "Mastercard"
    return "Unknown"
