"""State of the e-finance card gateway: payment sessions, card attempts and outbound deliveries.

No Flask here. The views parse requests and call one method per operation; everything that leaves
the gateway afterwards (the signed webhook to the merchant, the collection line to settlement) is a
:class:`Delivery` attempted by the component's scheduler and retried on the simulated clock, so a
request thread never waits on another party.

Card data rule (DESIGN.md): the full card number and the CVV are used to pick the outcome and are
then dropped; a session keeps only BIN, last four and scheme.
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
    InvalidCardInput,
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
    challenge: Challenge | None = None  # the latest 3-D Secure challenge (pending or how it ended)

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
    scheme: str
    decline_reason: str | None


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
                              expires_at: datetime, payment_request_number: str) -> Session:
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
                payment_request_number=payment_request_number,
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

    def pay(self, session_id: str, card_number: str, expiry: str, cvv: str) -> Session:
        """Try a card on a session: approve or decline it, then queue the webhook (and settlement);
        for an e-finance session, hand the outcome to ``efinance_outcome`` (the silent call) instead.

        Malformed card input raises :class:`InvalidCardInput` before anything changes. The card
        number and CVV are not kept: only BIN, last four and scheme survive this call.
        """
        self.payable_session(session_id)  # 404 / 409 / 410 come before any complaint about the card
        number = re.sub(r"[ -]", "", card_number or "")  # "4111 1111-1111 1111" as people type it
        if not ascii_digits(number, length=(12, 19)):
            raise InvalidCardInput("the card number must be 12 to 19 digits", field="card_number")
        if not luhn_valid(number):
            raise InvalidCardInput("the card number fails the Luhn check", field="card_number")
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
        path of a non-enrolled card, a passed 3-D Secure challenge and a failed one."""
        with self._lock:
            session = self.payable_session(session_id)
            now = self.component.clock.now()
            if session.challenge is not None and session.challenge.state == PENDING:
                session.challenge.state = ABANDONED  # a new card attempt replaces the challenge
            session.attempts += 1
            session.card = dict(card)
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
                                    scheme=card["scheme"], decline_reason=session.decline_reason)
        if self.efinance_outcome is not None:
            self.efinance_outcome(session, result)
        return session

    # --- 3-D Secure ---------------------------------------------------------------------------
    def _three_ds(self) -> dict[str, Any]:
        return dict(self.component.own.get("three_ds") or {})

    @property
    def test_otp(self) -> str:
        """The published test OTP of every enrolled card (``card_gateway.three_ds.otp``)."""
        return str(self._three_ds().get("otp", DEFAULT_OTP))

    def _start_challenge(self, session_id: str, card: dict[str, str], outcome: CardOutcome) -> Challenge:
        """Keep a pending challenge on the session (replacing any earlier one) and schedule its time
        limit on the component's scheduler (simulated clock: it runs when the clock is moved)."""
        settings = self._three_ds()
        seconds = float(settings.get("challenge_seconds", DEFAULT_CHALLENGE_SECONDS))
        tries = int(settings.get("otp_tries", DEFAULT_OTP_TRIES))
        with self._lock:
            session = self.payable_session(session_id)
            now = self.component.clock.now()
            challenge = Challenge(challenge_id="3DS" + secrets.token_hex(8).upper(), card=dict(card),
                                  outcome=outcome, started_at=now,
                                  expires_at=now + timedelta(seconds=seconds), tries_left=tries)
            if session.challenge is not None and session.challenge.state == PENDING:
                session.challenge.state = ABANDONED
            session.challenge = challenge
        self.component.scheduler.schedule(
            challenge.expires_at, f"card_gateway.three_ds_timeout:{session_id}:{challenge.challenge_id}",
            lambda: self._challenge_timeout(session_id, challenge.challenge_id))
        return challenge

    def pending_challenge(self, session_id: str) -> Challenge | None:
        """The session's challenge if it is still waiting for an OTP."""
        session = self.get_session(session_id)
        with self._lock:
            challenge = session.challenge
            return challenge if challenge is not None and challenge.state == PENDING else None

    def _challenge_timeout(self, session_id: str, challenge_id: str) -> bool:
        """The time limit of a challenge: if it is still pending, the attempt fails (THREE_DS_TIMEOUT).
        Returns whether it failed the attempt now."""
        with self._lock:
            session = self._sessions.get(session_id)
            challenge = session.challenge if session is not None else None
            if (challenge is None or challenge.challenge_id != challenge_id or challenge.state != PENDING
                    or self.component.clock.now() < challenge.expires_at):
                return False
            challenge.state = TIMED_OUT
            card = dict(challenge.card)
        try:
            self._complete(session_id, card, CardOutcome(DECLINED, THREE_DS_TIMEOUT, card["scheme"]))
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
            raise ChallengeExpired(f"the 3-D Secure challenge expired at {iso(challenge.expires_at)}",
                                   field="otp")
        expected = self.test_otp
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
                outcome = CardOutcome(DECLINED, THREE_DS_FAILED, challenge.card["scheme"])
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


def scheme_of(number: str) -> str:
    """The card scheme from the BIN (Meeza's national BINs first: they start with 5 too)."""
    if number.startswith(("507803", "507808")):
        return "Meeza"
    if number.startswith("4"):
        return "Visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or 2221 <= int(number[:4]) <= 2720:
        return "Mastercard"
    return "Unknown"
