"""State of e-finance's payment request initiation: senders, requests by SenderRequestNumber, keys.

No Flask here. :meth:`EfinanceGateway.initiate` takes the four form fields, checks everything in a
fixed order (each failure a :class:`~.efinance_messages.Rejection` with its ResponseCode, before
any state changes), then opens a hosted-page session in :class:`~.models.CardGatewayModel` and
remembers the request under ``(SenderID, SenderRequestNumber)`` with the sender's AES key and IV
(the later confirmation silent call encrypts with that same key and IV).

After each card attempt on such a session (:meth:`EfinanceGateway.on_outcome`, called by the model)
the gateway queues the confirmation "silent call" to ``PaymentConfirmationUrl`` — a form post of
``SenderID``, ``SenderRequestNumber``, ``RequestObject`` (the confirmation XML under the sender's
key and IV) and ``Signature`` — on its own courier, acknowledged only by the answer header
``Response_Code: 000``; an approval also queues one settlement-feed line per settlement account line.

Each refund (the sender's refund call or the test bench's back-office refund, a chargeback) queues a
refund notice on the same courier (assumed; ``card_gateway.efinance.notify_refunds``): the payment's
confirmation fields plus ``OperationType`` ``Refund`` and the refund's numbers and amounts.

Protocol faults (``direction: domain`` kinds declared here, scoped by ``match`` on the request's
numbers): a confirmation delayed, duplicated, held until the next one of its request, never sent or
sent with a wrong Signature, and the browser's answer lost after a payment was taken. Every hit is
kept on the request (``GET /api/efinance/requests/<n>``) with the confirmation it shaped.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from simulators.common.clock import CAIRO, cairo, iso, parse_duration
from simulators.common.delivery import PENDING, Courier, Delivery
from simulators.common.errors import ValidationFailed
from simulators.common.faults import check_point_scope
from simulators.common.http import OutboundResponse
from simulators.common.money import format_amount

from .efinance_crypto import (
    CryptoFailure,
    GatewayIdentity,
    aes_decrypt,
    aes_encrypt,
    decode_secret,
    load_identity,
    sha256_hex,
)
from .efinance_messages import (
    REFUND_NOTICE_FIELDS,
    REFUND_OPERATION,
    InitiationRequest,
    Rejection,
    confirmation_xml,
    parse_initiation,
    parse_xml_amount,
    response_codes,
)
from .errors import PaymentRequestNotFound
from .models import APPROVED, CANCELLED, DECLINED, EXPIRED, OPEN, PAYABLE_MECHANISMS, AttemptOutcome, mechanism_of

if TYPE_CHECKING:
    from simulators.common.component import Component
    from simulators.common.faults import Fault

    from .models import CardGatewayModel, Session

FORM_FIELDS = ("SenderID", "RandomSecret", "RequestObject", "HashedRequestObject")
# One published PHP integration spells the hash field "HasedRequestObject": accepted as an alias.
HASH_ALIASES = ("HashedRequestObject", "HasedRequestObject")
# The confirmation: first attempt at once, then one retry after each wait, then given up (assumed).
DEFAULT_CONFIRMATION_RETRY_SECONDS = (60, 300, 900, 3600, 10800)
SIGNATURE_ALGORITHMS = ("sha256-of-request-object", "none")  # assumed: FACTS says it is not public
# FACTS (Fawry): two status vocabularies exist; both are offered, `card_gateway.efinance.status_vocabulary`
# picks one (default unpaid_cancelled). Keys are the gateway's own states.
STATUS_VOCABULARIES: dict[str, dict[str, str]] = {
    "unpaid_cancelled": {"unpaid": "UNPAID", "paid": "PAID", "cancelled": "CANCELLED", "refunded": "REFUNDED",
                         "partial_refunded": "PARTIAL_REFUNDED", "expired": "EXPIRED", "failed": "FAILED"},
    "new_canceled": {"unpaid": "NEW", "paid": "PAID", "cancelled": "CANCELED", "refunded": "REFUNDED",
                     "partial_refunded": "PARTIAL_REFUNDED", "expired": "EXPIRED", "failed": "FAILED"},
}
_REFUND_ID = re.compile(r"[0-9A-Za-z_-]{1,32}", re.ASCII)
ACK_HEADER, ACK_CODE = "Response_Code", "000"

# Protocol faults (domain kinds of the card gateway; README "Faults it offers"). The confirmation kinds
# act when a silent call (a payment's confirmation or a refund notice) is queued, at the domain point
# "confirmation"; payment_response_lost acts when a card attempt is approved, at the point "payment".
NEVER_SENT, OUT_OF_ORDER = "confirmation_never_sent", "confirmation_out_of_order"
DELAYED, DUPLICATED, BAD_SIGNATURE = "confirmation_delayed", "confirmation_duplicated", "confirmation_bad_signature"
PAYMENT_RESPONSE_LOST = "payment_response_lost"
CONFIRMATION_FAULTS = (NEVER_SENT, OUT_OF_ORDER, DELAYED, DUPLICATED, BAD_SIGNATURE)  # the order they are asked
FAULT_KINDS = CONFIRMATION_FAULTS + (PAYMENT_RESPONSE_LOST,)
CONFIRMATION_POINT, PAYMENT_POINT = "confirmation", "payment"
FAULT_PARAMS = {DELAYED: {"after"}, OUT_OF_ORDER: {"hold"}, DUPLICATED: {"same_moment"}}
FAULT_MATCH_KEYS = ("payment_request_number", "sender_request_number", "sender_id", "operation")
OPERATIONS = ("payment", "refund")  # match.operation: which silent calls a confirmation fault hits
DEFAULT_HOLD = "1h"
SUPPRESSED, HELD = "suppressed", "held"  # confirmation states besides the courier's pending/delivered/gave_up


def acknowledged(response: OutboundResponse) -> bool:
    """FACTS: the receiver acknowledges with the HTTP header ``Response_Code: 000`` (any status)."""
    return any(name.lower() == ACK_HEADER.lower() and value.strip() == ACK_CODE
               for name, value in response.headers.items())


@dataclass(frozen=True)
class Sender:
    """A sender (biller) e-finance knows: ``card_gateway.senders`` in the settings."""

    sender_id: str
    name: str
    password: str
    governorate_code: str
    service_codes: frozenset[str]
    settlement_accounts: frozenset[str]

    @classmethod
    def from_settings(cls, row: dict[str, Any]) -> Sender:
        if not isinstance(row, dict) or not row.get("id") or not row.get("password"):
            raise ValueError("each card_gateway.senders entry needs an id and a password")
        return cls(sender_id=str(row["id"]), name=str(row.get("name", "")), password=str(row["password"]),
                   governorate_code=str(row.get("governorate_code", "")),
                   service_codes=frozenset(str(c) for c in row.get("service_codes") or []),
                   settlement_accounts=frozenset(str(c) for c in row.get("settlement_accounts") or []))


@dataclass
class EfinanceRequest:
    """An accepted initiation request, kept for idempotency and for the confirmation to come."""

    sender_id: str
    sender_request_number: str
    payment_request_number: str
    session_id: str
    request: InitiationRequest
    key: bytes  # the sender's AES key and IV, as last sent for this SenderRequestNumber
    iv: bytes
    confirmations: list[Delivery] = field(default_factory=list)  # one per notified card attempt
    confirmed: dict[str, bool] = field(default_factory=dict)  # delivery id -> IsConfirmed
    transaction_id: str | None = None  # set on approval: the settlement lines are card:<TX>:<n>
    refunds: list[Refund] = field(default_factory=list)
    reversed_per_line: dict[int, int] = field(default_factory=dict)  # settlement line n -> piasters refunded
    payment_values: dict[str, str] | None = None  # the approval's confirmation fields (refund notices repeat them)
    notices: dict[str, dict[str, Any]] = field(default_factory=dict)  # delivery id -> kind, faults, duplicate_of...
    held: list[Delivery] = field(default_factory=list)  # held by confirmation_out_of_order until the next one
    fault_hits: list[dict[str, Any]] = field(default_factory=list)  # every protocol fault that hit this request


@dataclass
class Refund:
    """One accepted refund of a paid request (idempotent by the sender's RefundRequestNumber)."""

    refund_request_number: str
    refund_number: str
    amount: int
    at: datetime
    fingerprint: tuple[str, int]  # (PaymentRequestNumber, amount)
    answer: list[tuple[str, str]]  # the answer's fields as first given (replayed on a repeat)
    lines: list[tuple[int, int]]  # (settlement line n, piasters) the refund reverses
    origin: str = "sender"  # "sender" (the refund call) | "back_office" (the bank's chargeback, test bench)


class EfinanceGateway:
    """The initiation protocol's state; one lock. ``reset()`` forgets every request."""

    def __init__(self, component: Component, model: CardGatewayModel) -> None:
        self.component = component
        self.model = model
        own = component.own
        self.identity: GatewayIdentity = load_identity(own, component.clock.now())
        senders = [Sender.from_settings(row) for row in own.get("senders") or []]
        self.senders = {s.sender_id: s for s in senders}
        if len(self.senders) != len(senders):
            raise ValueError("card_gateway.senders: two senders have the same id")
        self._lock = threading.RLock()
        self._requests: dict[tuple[str, str], EfinanceRequest] = {}
        self._numbers: dict[str, EfinanceRequest] = {}  # by PaymentRequestNumber
        self._by_session: dict[str, EfinanceRequest] = {}
        settings = dict(own.get("efinance") or {})
        self.signature = str(settings.get("signature", SIGNATURE_ALGORITHMS[0]))
        if self.signature not in SIGNATURE_ALGORITHMS:
            raise ValueError(f"card_gateway.efinance.signature is one of {', '.join(SIGNATURE_ALGORITHMS)}")
        self.notify_declines = bool(settings.get("notify_declines", True))
        self.notify_refunds = bool(settings.get("notify_refunds", True))
        vocabulary = str(settings.get("status_vocabulary", "unpaid_cancelled"))
        if vocabulary not in STATUS_VOCABULARIES:
            raise ValueError(f"card_gateway.efinance.status_vocabulary is one of {', '.join(STATUS_VOCABULARIES)}")
        self.vocabulary = STATUS_VOCABULARIES[vocabulary]
        self._refunds: dict[tuple[str, str], tuple[EfinanceRequest, Refund]] = {}  # (SenderID, RefundRequestNumber)
        self._refund_numbers: set[str] = set()
        retry = settings.get("confirmation_retry_seconds", DEFAULT_CONFIRMATION_RETRY_SECONDS)
        self.confirmations = Courier(component, retry, timeout=float(own.get("webhook_timeout_seconds", 5)),
                                     acknowledged=acknowledged)
        model.efinance_outcome = self.on_outcome
        component.faults.declare(FAULT_KINDS, validate_fault)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._numbers.clear()
            self._by_session.clear()
            self._refunds.clear()
            self._refund_numbers.clear()

    def get_request(self, sender_id: str, sender_request_number: str) -> EfinanceRequest | None:
        with self._lock:
            return self._requests.get((sender_id, sender_request_number))

    def by_payment_request_number(self, payment_request_number: str) -> EfinanceRequest | None:
        """The request behind a PaymentRequestNumber (the cash network's Channel API, channel.py)."""
        with self._lock:
            return self._numbers.get(payment_request_number)

    # --- the operation ------------------------------------------------------------------------
    def initiate(self, form: dict[str, str], language: str) -> tuple[EfinanceRequest, Session, bool]:
        """Check and accept one initiation; ``created`` is False for a repeat of a known request."""
        values = dict(form)
        if not values.get("HashedRequestObject") and values.get("HasedRequestObject"):
            values["HashedRequestObject"] = values["HasedRequestObject"]
        for name in FORM_FIELDS:
            if not values.get(name):
                raise Rejection("MISSING_FIELD", f"{name} is missing", field=name)
        sender = self.senders.get(values["SenderID"])
        if sender is None:
            raise Rejection("UNKNOWN_SENDER", f"no sender {values['SenderID'][:20]!r}", field="SenderID")
        request_object = values["RequestObject"]
        if not hmac.compare_digest(sha256_hex(request_object).encode(), values["HashedRequestObject"].encode()):
            raise Rejection("HASH_MISMATCH", "HashedRequestObject is not the lowercase hex SHA-256 of RequestObject",
                            field="HashedRequestObject")
        try:
            key, iv = decode_secret(self.identity.decrypt(values["RandomSecret"]))
        except CryptoFailure as exc:
            raise Rejection("SECRET_UNDECRYPTABLE", f"RandomSecret: {exc}", field="RandomSecret") from None
        try:
            plaintext = aes_decrypt(request_object, key, iv)
        except CryptoFailure as exc:
            raise Rejection("REQUEST_UNDECRYPTABLE", f"RequestObject: {exc}", field="RequestObject") from None
        request = parse_initiation(plaintext)
        self._check(sender, request)
        return self._accept(sender, request, key, iv, language)

    def _check(self, sender: Sender, request: InitiationRequest) -> None:
        if request.sender_id != sender.sender_id:
            raise Rejection("SENDER_MISMATCH", f"Sender.Id {request.sender_id[:20]!r} is not SenderID "
                            f"{sender.sender_id}", field="Sender.Id")
        try:
            password = self.identity.decrypt(request.password_encrypted)
        except CryptoFailure:
            password = b""
        if not hmac.compare_digest(password, sender.password.encode("utf-8")):
            raise Rejection("WRONG_PASSWORD", "Sender.Password does not decrypt to the sender's password",
                            field="Sender.Password")
        if request.service_code not in sender.service_codes:
            raise Rejection("UNKNOWN_SERVICE", f"ServiceCode {request.service_code!r} is not one of the sender's",
                            field="ServiceCode")
        for i, line in enumerate(request.settlement_lines):
            if line.account_code not in sender.settlement_accounts:
                raise Rejection("UNKNOWN_SETTLEMENT_ACCOUNT", f"SettlementAccountCode {line.account_code[:20]!r} is "
                                "not one of the sender's", field=f"SettlementAmounts.{i}.SettlementAccountCode")
        today = cairo(self.component.clock.now()).date()
        if request.expiry_date < today:
            raise Rejection("EXPIRED", f"ExpiryDate {request.expiry_date.isoformat()} is before today "
                            f"({today.isoformat()}, Cairo)", field="ExpiryDate")

    def _accept(self, sender: Sender, request: InitiationRequest, key: bytes, iv: bytes,
                language: str) -> tuple[EfinanceRequest, Session, bool]:
        index = (sender.sender_id, request.sender_request_number)
        with self._lock:
            known = self._requests.get(index)
            if known is not None:
                if known.request.fingerprint() != request.fingerprint():
                    raise Rejection("DUPLICATE_REQUEST_NUMBER", f"SenderRequestNumber {request.sender_request_number} "
                                    "was already used for another request", field="SenderRequestNumber")
                known.key, known.iv = key, iv  # the sender keeps the secret of its latest attempt
                return known, self.model.get_session(known.session_id), False
            number = self._payment_request_number()
            session = self.model.open_efinance_session(
                merchant_request_id=f"efinance:{sender.sender_id}:{request.sender_request_number}",
                # what the citizen knows the bill by: the sender's invoice number (its bill reference), else
                # the request number
                merchant_reference=request.sender_invoice_number or request.sender_request_number,
                amount=request.amount,
                governorate_code=sender.governorate_code,
                service_code=request.service_code,
                return_url=request.redirect_url,
                webhook_url=request.confirmation_url,
                language=language,
                description=request.description or None,
                fee_lines=[{"code": line.account_code, "name_ar": line.description or line.account_code,
                            "name_en": line.description or line.account_code,
                            "amount": format_amount(line.amount)} for line in request.settlement_lines],
                expires_at=_end_of_cairo_day(request.expiry_date),
                payment_request_number=number,
                mechanism=mechanism_of(request.mechanism_type, request.mechanism_mechanism_type),
            )
            record = EfinanceRequest(sender.sender_id, request.sender_request_number, number, session.session_id,
                                     request, key, iv)
            self._requests[index] = record
            self._numbers[number] = record
            self._by_session[session.session_id] = record
            return record, session, True

    def _payment_request_number(self) -> str:
        """Assumed format: 12 digits, unique in this gateway's memory."""
        while True:
            candidate = f"{secrets.randbelow(9 * 10**11) + 10**11}"
            if candidate not in self._numbers:
                return candidate


    # --- after a card attempt: the silent call and the settlement lines --------------------------
    def on_outcome(self, session: Session, outcome: AttemptOutcome) -> None:
        """Queue the confirmation of one card attempt (a decline too, unless ``notify_declines`` is
        off) and, for an approval, the settlement lines. Called by the model outside its lock (in the
        thread answering the card or OTP post, so ``payment_response_lost`` can drop that answer)."""
        with self._lock:
            record = self._by_session.get(session.session_id)
            if record is None:  # forgotten by a reset between the attempt and now
                return
            key, iv = record.key, record.iv
            if outcome.status == APPROVED:
                record.transaction_id = outcome.transaction_id
        approved = outcome.status == APPROVED
        if approved:
            self._lose_browser_answer(record, outcome)
        if approved or self.notify_declines:
            delivery = self._confirmation(record, session, outcome, key, iv)
            self._notify(record, delivery, outcome.at, operation="payment", is_confirmed=approved)
        if approved:
            for delivery in self._collection_lines(record, session, outcome):
                self.model.queue_delivery(session, delivery, outcome.at)

    def confirmation_values(self, record: EfinanceRequest, session: Session, outcome: AttemptOutcome) -> dict[str, str]:
        """The decrypted confirmation's fields (docs/domain-facts.md; formats assumed, README)."""
        approved = outcome.status == APPROVED
        reconciliation = self.component.calendar.business_date(outcome.at) if approved else None
        return {
            "SenderRequestNumber": record.sender_request_number,
            "PaymentRequestNumber": record.payment_request_number,
            "PaymentRequestTotalAmount": format_amount(session.amount),
            "CollectionFeesAmount": format_amount(session.collection_fee),
            "CustomerAuthorizationAmount": format_amount(session.total),
            "AuthorizationCode": (outcome.auth_code or "") if approved else "",
            "TransactionNumber": (outcome.transaction_id or "") if approved else "",
            "AuthorizingMechanism": outcome.mechanism,  # Card, Meeza, MobileWallet or Channel: what paid
            "AuthorizingInstitution": outcome.institution,  # card scheme, wallet provider or Khales
            "AuthoriztionDateTime": cairo(outcome.at).strftime("%Y-%m-%d %H:%M:%S"),
            "ReconciliationDate": reconciliation.isoformat() if reconciliation else "",
            "IsConfirmed": "true" if approved else "false",
        }

    def sign(self, request_object: str) -> str:
        """``Signature`` by ``card_gateway.efinance.signature`` (assumed: FACTS says it is not public)."""
        return sha256_hex(request_object) if self.signature == "sha256-of-request-object" else ""

    def _confirmation(self, record: EfinanceRequest, session: Session, outcome: AttemptOutcome,
                      key: bytes, iv: bytes) -> Delivery:
        values = self.confirmation_values(record, session, outcome)
        if outcome.status == APPROVED:
            with self._lock:
                record.payment_values = dict(values)  # what each refund notice repeats of the payment
        request_object = aes_encrypt(confirmation_xml(values), key, iv)
        body = {"SenderID": record.sender_id, "SenderRequestNumber": record.sender_request_number,
                "RequestObject": request_object, "Signature": self.sign(request_object)}
        return Delivery(delivery_id=f"confirmation:{record.payment_request_number}:{outcome.attempt}",
                        kind="efinance_confirmation", url=record.request.confirmation_url, target="reference",
                        secret_name=None, body=body, encoding="form")

    def inbound_fault_attrs(self, *, session_id: str = "", sender_id: str = "", sender_request_number: str = "",
                            payment_request_number: str = "") -> dict[str, str]:
        """What an inbound fault's ``match`` can name for a call on a request: the hosted page names it
        by its session, the status inquiry / refund / cancel by its numbers. A known request gives
        all three keys; an unknown one only the numbers the call itself carried."""
        with self._lock:
            if session_id:
                record = self._by_session.get(session_id)
            elif payment_request_number:
                record = self._numbers.get(payment_request_number)
            else:
                record = self._requests.get((sender_id, sender_request_number))
        if record is not None:
            return {key: value for key, value in self._fault_attrs(record, "").items() if key != "operation"}
        given = {"sender_request_number": sender_request_number, "payment_request_number": payment_request_number}
        return {key: value for key, value in given.items() if value}

    # --- queuing a silent call, shaped by the protocol faults ----------------------------------------
    @staticmethod
    def _fault_attrs(record: EfinanceRequest, operation: str) -> dict[str, str]:
        """What a fault's ``match`` can name (FAULT_MATCH_KEYS): no match means every request."""
        return {"payment_request_number": record.payment_request_number,
                "sender_request_number": record.sender_request_number, "sender_id": record.sender_id,
                "operation": operation}

    @staticmethod
    def bad_signature(request_object: str) -> str:
        """``confirmation_bad_signature``: the hex SHA-256 of something else than the RequestObject, so
        it is never the right Signature (not even under ``signature: none``, whose right value is empty)."""
        return sha256_hex("not-the-request-object:" + request_object)

    def _notify(self, record: EfinanceRequest, delivery: Delivery, at: datetime, *, operation: str,
                is_confirmed: bool, info: dict[str, Any] | None = None) -> None:
        """Queue one silent call (a payment's confirmation or a refund notice) on the confirmation
        courier, as the confirmation faults declared for this request shape it (each kind asked on its
        own, so one call can be, say, delayed and duplicated): never sent → listed ``suppressed``;
        out of order → ``held`` until the request's next silent call is queued or ``params.hold``
        runs out; delayed → first attempt ``params.after`` later; duplicated → a second delivery of
        the same form (``<id>:duplicate``, acknowledged and retried on its own), both at once from two
        threads with ``params.same_moment``; bad signature → a wrong ``Signature`` on every attempt.
        A silent call that is sent releases the request's held ones right behind it."""
        take, attrs = self.component.faults.take, self._fault_attrs(record, operation)
        hits: list[Fault] = []
        for kind in CONFIRMATION_FAULTS:
            fault = take("domain", CONFIRMATION_POINT, kinds=(kind,), **attrs)
            if fault is not None:
                hits.append(fault)
                if kind == NEVER_SENT:
                    break  # nothing is sent, so nothing else can shape it (the other counts are kept)
        by_kind = {fault.kind: fault for fault in hits}
        if BAD_SIGNATURE in by_kind:
            delivery.body["Signature"] = self.bad_signature(str(delivery.body["RequestObject"]))
        deliveries = [delivery]
        if DUPLICATED in by_kind:
            deliveries.append(Delivery(delivery_id=f"{delivery.delivery_id}:duplicate", kind=delivery.kind,
                                       url=delivery.url, target=delivery.target, secret_name=delivery.secret_name,
                                       body=dict(delivery.body), encoding=delivery.encoding))
        if DELAYED in by_kind:
            at = at + parse_duration(by_kind[DELAYED].params["after"])
        held_until = (at + parse_duration(by_kind[OUT_OF_ORDER].params.get("hold", DEFAULT_HOLD))
                      if OUT_OF_ORDER in by_kind else None)
        shaped_by = [{"id": fault.id, "kind": fault.kind} for fault in hits]
        released: list[Delivery] = []
        with self._lock:
            for item in deliveries:
                record.confirmations.append(item)
                record.confirmed[item.delivery_id] = is_confirmed
                record.notices[item.delivery_id] = dict(
                    info or {}, kind=operation, faults=shaped_by,
                    duplicate_of=delivery.delivery_id if item is not delivery else None)
            record.fault_hits.extend({"fault_id": fault.id, "kind": fault.kind, "at": iso(self.component.clock.now()),
                                      "confirmation_id": delivery.delivery_id} for fault in hits)
            if NEVER_SENT in by_kind:
                for item in deliveries:
                    item.state = SUPPRESSED
                return
            if held_until is not None:
                for item in deliveries:
                    item.state, item.next_attempt_at = HELD, held_until
                record.held.extend(deliveries)
            else:
                released, record.held = list(record.held), []
                for item in released:
                    item.state = PENDING
        if held_until is not None:
            ids = [item.delivery_id for item in deliveries]
            self.component.scheduler.schedule(held_until, f"card_gateway.efinance_hold:{ids[0]}",
                                              lambda: self._release(record, ids))
            return
        if DUPLICATED in by_kind and by_kind[DUPLICATED].params.get("same_moment"):
            self.confirmations.send_together(deliveries, at)
        else:
            for item in deliveries:
                self.confirmations.send(item, at)
        for item in released:  # scheduled after the call just queued, at its instant: it goes right behind
            self.confirmations.send(item, at)

    def _release(self, record: EfinanceRequest, delivery_ids: list[str]) -> None:
        """The hold of an out-of-order silent call ran out with nothing after it: it is sent now."""
        with self._lock:
            if self._numbers.get(record.payment_request_number) is not record:
                return  # forgotten by a reset
            due = [item for item in record.held if item.delivery_id in delivery_ids and item.state == HELD]
            record.held = [item for item in record.held if item not in due]
            for item in due:
                item.state = PENDING
        now = self.component.clock.now()
        for item in due:
            self.confirmations.send(item, now)

    def _lose_browser_answer(self, record: EfinanceRequest, outcome: AttemptOutcome) -> None:
        """``payment_response_lost``: the payment is taken (approved, its silent call and settlement
        lines queued) but the browser that posted the card or the OTP gets no answer (the connection
        is cut after the work, like the inbound ``drop_response`` fault). An approval decided by
        scheduled work has no browser waiting, nor has cash taken at a Khales outlet (the outlet's call is
        not the hosted page): the fault is then not asked (its count is kept)."""
        if not self.component.serving_request() or getattr(outcome, "mechanism", None) == "Channel":
            return
        fault = self.component.faults.take("domain", PAYMENT_POINT, kinds=(PAYMENT_RESPONSE_LOST,),
                                           **self._fault_attrs(record, "payment"))
        if fault is None or not self.component.drop_answer(fault):
            return
        with self._lock:
            record.fault_hits.append({"fault_id": fault.id, "kind": fault.kind, "at": iso(outcome.at),
                                      "confirmation_id": None, "attempt": outcome.attempt})

    def _collection_lines(self, record: EfinanceRequest, session: Session, outcome: AttemptOutcome) -> list[Delivery]:
        """One ``st-collection`` line per settlement account line of the request (the money is split
        over the sender's accounts); the collection fee rides on the first line."""
        deliveries = []
        for i, line in enumerate(record.request.settlement_lines, start=1):
            body = {
                "collection_id": f"card:{outcome.transaction_id}:{i}",
                "type": "payment",
                "channel": outcome.channel,  # cash when a Khales outlet took it (Channel)
                "source": "card_gateway",
                "governorate_code": session.governorate_code,
                "bill_reference": record.payment_request_number,
                "amount": format_amount(line.amount),
                "collection_fee": format_amount(session.collection_fee if i == 1 else 0),
                "currency": session.currency,
                "collected_at": iso(outcome.at),
                "transaction_number": outcome.transaction_id,
                "settlement_account_code": line.account_code,
                # the silent call's ReconciliationDate: e-finance settles the line on that business date
                "reconciliation_date": self.component.calendar.business_date(outcome.at).isoformat(),
                # e-finance's own fields of the detailed settlement file (issue 5)
                "payment_request_number": record.payment_request_number,
                "sender_request_number": record.sender_request_number,
                "mechanism": outcome.mechanism,  # Card, Meeza, MobileWallet, or Channel (cash at Khales)
            }
            deliveries.append(Delivery(delivery_id=body["collection_id"], kind="collection",
                                       url=f"{self.component.url_of('settlement')}/api/collections",
                                       target="settlement", secret_name="collections_feed", body=body))
        return deliveries

    # --- status inquiry, refund, cancel (server to server; assumed shapes, README) -----------------
    def authenticate(self, form: dict[str, str]) -> Sender:
        """``SenderID`` + ``SenderPassword`` (base64 RSA PKCS#1 v1.5 of the password under the gateway
        certificate, like ``Sender.Password`` in the initiation): 114 / 101 / 102."""
        for name in ("SenderID", "SenderPassword"):
            if not form.get(name):
                raise Rejection("MISSING_FIELD", f"{name} is missing", field=name)
        sender = self.senders.get(form["SenderID"])
        if sender is None:
            raise Rejection("UNKNOWN_SENDER", f"no sender {form['SenderID'][:20]!r}", field="SenderID")
        try:
            password = self.identity.decrypt(form["SenderPassword"])
        except CryptoFailure:
            password = b""
        if not hmac.compare_digest(password, sender.password.encode("utf-8")):
            raise Rejection("WRONG_PASSWORD", "SenderPassword does not decrypt to the sender's password",
                            field="SenderPassword")
        return sender

    def find(self, sender: Sender, form: dict[str, str]) -> EfinanceRequest:
        """The sender's request by ``SenderRequestNumber`` or ``PaymentRequestNumber`` (both: they must
        name the same request); another sender's request is unknown (140)."""
        srn, prn = form.get("SenderRequestNumber", ""), form.get("PaymentRequestNumber", "")
        if not srn and not prn:
            raise Rejection("MISSING_FIELD", "SenderRequestNumber or PaymentRequestNumber is required",
                            field="SenderRequestNumber")
        with self._lock:
            record = self._requests.get((sender.sender_id, srn)) if srn else self._numbers.get(prn)
        if (record is None or record.sender_id != sender.sender_id
                or (prn and record.payment_request_number != prn)):
            raise Rejection("PAYMENT_REQUEST_NOT_FOUND", "no such payment request for this sender",
                            field="PaymentRequestNumber" if prn else "SenderRequestNumber")
        return record

    def _state(self, record: EfinanceRequest, session: Session) -> str:
        """The gateway's state of a request: unpaid, failed, paid, partial_refunded, refunded,
        cancelled, expired (the caller holds the lock)."""
        status = self.model.session_dict(session)["status"]
        if status == APPROVED:
            refunded = sum(r.amount for r in record.refunds)
            if refunded == 0:
                return "paid"
            return "refunded" if refunded >= session.amount else "partial_refunded"
        return {OPEN: "unpaid", DECLINED: "failed", EXPIRED: "expired", CANCELLED: "cancelled"}.get(status, "unpaid")

    def status_fields(self, record: EfinanceRequest) -> list[tuple[str, str]]:
        """The status inquiry's answer (without ResponseCode/ResponseMessage)."""
        session = self.model.get_session(record.session_id)
        with self._lock:
            state = self._state(record, session)
            paid = state in ("paid", "partial_refunded", "refunded")
            refunded = sum(r.amount for r in record.refunds)
            approved_at = session.approved_at if paid else None
            reconciliation = self.component.calendar.business_date(approved_at) if approved_at else None
            return [
                ("SenderRequestNumber", record.sender_request_number),
                ("PaymentRequestNumber", record.payment_request_number),
                ("Status", self.vocabulary[state]),
                ("Currency", "818"),
                ("PaymentRequestTotalAmount", format_amount(session.amount)),
                ("CollectionFeesAmount", format_amount(session.collection_fee)),
                ("CustomerAuthorizationAmount", format_amount(session.total)),
                ("PaidAmount", format_amount(session.total if paid else 0)),
                ("RefundedAmount", format_amount(refunded)),
                ("RefundableAmount", format_amount(session.amount - refunded if paid else 0)),
                ("TransactionNumber", (session.transaction_id or "") if paid else ""),
                ("AuthorizationCode", (session.auth_code or "") if paid else ""),
                # assumed: which mechanism paid, so a sender that missed the silent call still knows
                ("AuthorizingMechanism", (session.last_mechanism or "") if paid else ""),
                ("AuthoriztionDateTime", cairo(approved_at).strftime("%Y-%m-%d %H:%M:%S") if approved_at else ""),
                ("ReconciliationDate", reconciliation.isoformat() if reconciliation else ""),
                ("ExpiryDate", record.request.expiry_date.isoformat()),
                ("ExpiresAt", iso(session.expires_at)),
            ]

    def refund(self, sender: Sender, record: EfinanceRequest,
               form: dict[str, str]) -> tuple[list[tuple[str, str]], bool]:
        """Refund part or all of a paid request; the same RefundRequestNumber and body replays the
        first answer (``created`` False). Every check runs before anything changes."""
        refund_id = form.get("RefundRequestNumber", "")
        if not refund_id:
            raise Rejection("MISSING_FIELD", "RefundRequestNumber is missing", field="RefundRequestNumber")
        if not _REFUND_ID.fullmatch(refund_id):
            raise Rejection("INVALID_FIELD", "RefundRequestNumber must be 1 to 32 letters, digits, _ or -",
                            field="RefundRequestNumber")
        if not form.get("Amount"):
            raise Rejection("MISSING_FIELD", "Amount is missing", field="Amount")
        amount = parse_xml_amount(form["Amount"], "Amount")
        if amount <= 0:
            raise Rejection("INVALID_AMOUNT", "Amount must be greater than zero", field="Amount")
        return self._refund(sender.sender_id, record, refund_id, amount, origin="sender")

    def back_office_refund(self, payment_request_number: str, amount: int | None,
                           refund_request_number: str | None) -> tuple[list[tuple[str, str]], bool]:
        """e-finance refunding at the bank's request (a chargeback or dispute; the test bench's
        back-office call): the sender's refund rules and codes, ``amount`` None = all that is still
        refundable, ``refund_request_number`` None = a generated one (``BO-`` + 12 hex). The id shares
        the sender's RefundRequestNumber space, so a repeat replays the first answer."""
        with self._lock:
            record = self._numbers.get(payment_request_number)
            if record is not None and refund_request_number is None:
                while True:
                    refund_request_number = f"BO-{secrets.token_hex(6).upper()}"
                    if (record.sender_id, refund_request_number) not in self._refunds:
                        break
        if record is None or refund_request_number is None:
            raise PaymentRequestNotFound(f"no payment request {payment_request_number}",
                                         field="payment_request_number")
        if amount is not None and amount <= 0:
            raise Rejection("INVALID_AMOUNT", "Amount must be greater than zero", field="Amount")
        return self._refund(record.sender_id, record, refund_request_number, amount, origin="back_office")

    def _refund(self, sender_id: str, record: EfinanceRequest, refund_id: str, amount: int | None,
                origin: str) -> tuple[list[tuple[str, str]], bool]:
        """One refund of ``record`` (``amount`` None: all that is refundable), checked in the README's
        order (idempotency 143, state 144/141, amount 142) before anything changes; then the reversal
        lines to settlement and, with ``notify_refunds``, the refund notice to PaymentConfirmationUrl."""
        session = self.model.get_session(record.session_id)
        deliveries: list[Delivery] = []
        notice: Delivery | None = None
        with self._lock:
            known = self._refunds.get((sender_id, refund_id))
            if known is not None:
                prior = known[1]
                if prior.fingerprint[0] != record.payment_request_number or (amount is not None
                                                                             and prior.amount != amount):
                    raise Rejection("REFUND_ID_CONFLICT", f"RefundRequestNumber {refund_id} was already used for "
                                    "another refund", field="RefundRequestNumber")
                return list(prior.answer), False
            state = self._state(record, session)
            if state == "cancelled":
                raise Rejection("ALREADY_CANCELLED", "a cancelled request cannot be refunded",
                                field="PaymentRequestNumber")
            if state not in ("paid", "partial_refunded", "refunded"):
                raise Rejection("NOT_PAID", f"the request is {self.vocabulary[state]}, not paid",
                                field="PaymentRequestNumber")
            refunded = sum(r.amount for r in record.refunds)
            if amount is None:
                amount = session.amount - refunded
                if amount <= 0:
                    raise Rejection("REFUND_EXCEEDS_PAYMENT", f"nothing is left to refund: all "
                                    f"{format_amount(session.amount)} paid is refunded", field="Amount")
            if refunded + amount > session.amount:
                raise Rejection("REFUND_EXCEEDS_PAYMENT", f"refunds would reach {format_amount(refunded + amount)}, "
                                f"above the {format_amount(session.amount)} paid", field="Amount")
            now = self.component.clock.now()
            number = self._refund_number()
            lines = self._allocate(record, amount)
            for n, part in lines:
                record.reversed_per_line[n] = record.reversed_per_line.get(n, 0) + part
            refund = Refund(refund_id, number, amount, now, (record.payment_request_number, amount), [], lines,
                            origin=origin)
            record.refunds.append(refund)
            self._refunds[(sender_id, refund_id)] = (record, refund)
            self._refund_numbers.add(number)
            total = refunded + amount
            refund.answer = [
                ("RefundRequestNumber", refund_id),
                ("RefundNumber", number),
                ("SenderRequestNumber", record.sender_request_number),
                ("PaymentRequestNumber", record.payment_request_number),
                ("Currency", "818"),
                ("RefundAmount", format_amount(amount)),
                ("RefundedAmount", format_amount(total)),
                ("RefundableAmount", format_amount(session.amount - total)),
                ("Status", self.vocabulary["refunded" if total >= session.amount else "partial_refunded"]),
                ("RefundDateTime", cairo(now).strftime("%Y-%m-%d %H:%M:%S")),
            ]
            deliveries = self._reversal_lines(record, session, refund)
            if self.notify_refunds:
                notice = self._refund_notice(record, session, refund)
        for delivery in deliveries:
            self.model.queue_delivery(session, delivery, refund.at)
        if notice is not None:
            self._notify(record, notice, refund.at, operation="refund", is_confirmed=True,
                         info={"refund_number": refund.refund_number,
                               "refund_request_number": refund.refund_request_number})
        return list(refund.answer), True

    def _payment_values(self, record: EfinanceRequest, session: Session) -> dict[str, str]:
        """The approval's twelve confirmation fields, as its silent call carried them (rebuilt from the
        session if the approval came another way and none were kept). The caller holds the lock."""
        if record.payment_values is not None:
            return dict(record.payment_values)
        approval = AttemptOutcome(attempt=session.attempts, status=APPROVED,
                                  at=session.approved_at or self.component.clock.now(),
                                  transaction_id=session.transaction_id, auth_code=session.auth_code,
                                  scheme=(session.card or {}).get("scheme", ""), decline_reason=None)
        return self.confirmation_values(record, session, approval)

    def _refund_notice(self, record: EfinanceRequest, session: Session, refund: Refund) -> Delivery:
        """The refund notice (assumed shape, README): the confirmation form of the payment (same root,
        same twelve fields: IsConfirmed true, its TransactionNumber, AuthorizationCode,
        ReconciliationDate...) plus OperationType ``Refund`` and the refund, under the sender's key
        and IV. The caller holds the lock (the refund's answer is already built)."""
        answer = dict(refund.answer)
        values = self._payment_values(record, session)
        values.update({
            "OperationType": REFUND_OPERATION,
            "RefundRequestNumber": refund.refund_request_number,
            "RefundNumber": refund.refund_number,
            "RefundAmount": format_amount(refund.amount),
            "RefundedAmount": answer["RefundedAmount"],
            "RefundDateTime": answer["RefundDateTime"],
            "Status": answer["Status"],
        })
        request_object = aes_encrypt(confirmation_xml(values, REFUND_NOTICE_FIELDS), record.key, record.iv)
        body = {"SenderID": record.sender_id, "SenderRequestNumber": record.sender_request_number,
                "RequestObject": request_object, "Signature": self.sign(request_object)}
        return Delivery(delivery_id=f"refund:{record.payment_request_number}:{refund.refund_number}",
                        kind="efinance_refund", url=record.request.confirmation_url, target="reference",
                        secret_name=None, body=body, encoding="form")

    def _allocate(self, record: EfinanceRequest, amount: int) -> list[tuple[int, int]]:
        """Split a refund over the settlement lines from the first line onward (each line up to what
        is left of it): a full refund reverses every line whole."""
        parts, left = [], amount
        for n, line in enumerate(record.request.settlement_lines, start=1):
            room = line.amount - record.reversed_per_line.get(n, 0)
            take = min(room, left)
            if take > 0:
                parts.append((n, take))
                left -= take
            if left == 0:
                break
        return parts

    def _reversal_lines(self, record: EfinanceRequest, session: Session, refund: Refund) -> list[Delivery]:
        """One ``st-collection`` reversal per settlement line the refund touches, reversing that
        line's payment ``card:<TX>:<n>``; the collection fee is not refunded (assumed)."""
        deliveries = []
        for n, part in refund.lines:
            line = record.request.settlement_lines[n - 1]
            original = f"card:{record.transaction_id}:{n}"
            body = {
                "collection_id": f"{original}:refund:{refund.refund_number}",
                "type": "reversal",
                "channel": session.settlement_channel,  # the channel of the payment it reverses
                "source": "card_gateway",
                "governorate_code": session.governorate_code,
                "bill_reference": record.payment_request_number,
                "amount": format_amount(part),
                "collection_fee": format_amount(0),
                "currency": session.currency,
                "collected_at": iso(refund.at),
                "transaction_number": refund.refund_number,
                "reverses": original,
                "settlement_account_code": line.account_code,
                "payment_request_number": record.payment_request_number,
                "sender_request_number": record.sender_request_number,
            }
            if session.last_mechanism in PAYABLE_MECHANISMS:
                body["mechanism"] = session.last_mechanism  # what paid the money this refund gives back
            deliveries.append(Delivery(delivery_id=body["collection_id"], kind="collection",
                                       url=f"{self.component.url_of('settlement')}/api/collections",
                                       target="settlement", secret_name="collections_feed", body=body))
        return deliveries

    def _refund_number(self) -> str:
        """Assumed format: ``RF`` + 12 digits, unique in this gateway's memory."""
        while True:
            candidate = f"RF{secrets.randbelow(10**12):012d}"
            if candidate not in self._refund_numbers:
                return candidate

    def cancel(self, record: EfinanceRequest) -> list[tuple[str, str]]:
        """Cancel an unpaid, unexpired request: paid → 130 (refund it instead), expired → 131,
        cancelled already → 144. Its hosted page refuses payment afterwards."""
        with self._lock:
            before, session = self.model.cancel_session(record.session_id)
            if before == APPROVED:
                raise Rejection("ALREADY_PAID", "a paid request cannot be cancelled, only refunded",
                                field="PaymentRequestNumber")
            if before == EXPIRED:
                raise Rejection("REQUEST_EXPIRED", "the request has expired", field="PaymentRequestNumber")
            if before == CANCELLED:
                raise Rejection("ALREADY_CANCELLED", "the request was already cancelled",
                                field="PaymentRequestNumber")
            return [
                ("SenderRequestNumber", record.sender_request_number),
                ("PaymentRequestNumber", record.payment_request_number),
                ("Status", self.vocabulary["cancelled"]),
                ("CancellationDateTime", cairo(session.cancelled_at or self.component.clock.now())
                 .strftime("%Y-%m-%d %H:%M:%S")),
            ]

    @staticmethod
    def success_code() -> str:
        return str(response_codes()["SUCCESS"]["code"])

    # --- inspection -----------------------------------------------------------------------------
    def request_log(self, payment_request_number: str) -> dict[str, Any]:
        """A request with every confirmation and its attempts (the JSON API's webhook log shape)."""
        with self._lock:
            record = self._numbers.get(payment_request_number)
        if record is None:
            raise PaymentRequestNotFound(f"no payment request {payment_request_number}",
                                         field="PaymentRequestNumber")
        session = self.model.get_session(record.session_id)
        feed = self.model.collection_deliveries(session)
        with self._lock:
            hooks = [self._confirmation_dict(record, d) for d in record.confirmations]
            return {
                "payment_request_number": record.payment_request_number,
                "sender_id": record.sender_id,
                "sender_request_number": record.sender_request_number,
                "session_id": record.session_id,
                "status": self.model.session_dict(session)["status"],
                "refunds": [{"refund_request_number": r.refund_request_number, "refund_number": r.refund_number,
                             "amount": format_amount(r.amount), "at": iso(r.at), "origin": r.origin,
                             "lines": [{"line": n, "amount": format_amount(a)} for n, a in r.lines]}
                            for r in record.refunds],
                "confirmation_url": record.request.confirmation_url,
                "redirect_url": record.request.redirect_url,
                "confirmations": hooks,
                "attempts": [dict(a, confirmation_id=row["id"]) for row in hooks for a in row["attempts"]],
                "faults": [dict(hit) for hit in record.fault_hits],
                "settlement_feed": [dict(d.to_dict(), settlement_account_code=d.body.get("settlement_account_code"))
                                    for d in feed],
            }

    def confirmation_log(self, state: str | None = None) -> dict[str, Any]:
        """Every confirmation of every request (optionally only those in ``state``), oldest first."""
        with self._lock:
            rows = [self._confirmation_dict(r, d) for r in self._numbers.values() for d in r.confirmations
                    if state is None or d.state == state]
        return {"confirmations": rows}

    @staticmethod
    def _confirmation_dict(record: EfinanceRequest, delivery: Delivery) -> dict[str, Any]:
        """One silent call for the inspection: ``kind`` payment | refund, the faults that shaped it
        (``faults``, also on each attempt they acted on), ``duplicate_of`` for a duplicate's copy,
        ``held_until`` while held. The caller holds the lock."""
        notice = record.notices.get(delivery.delivery_id, {})
        faults = list(notice.get("faults") or [])
        row = dict(delivery.to_dict(), payment_request_number=record.payment_request_number,
                   sender_request_number=record.sender_request_number,
                   is_confirmed=record.confirmed.get(delivery.delivery_id, False),
                   kind=notice.get("kind", "payment"), faults=faults, duplicate_of=notice.get("duplicate_of"))
        for name in ("refund_number", "refund_request_number"):
            if notice.get(name):
                row[name] = notice[name]
        if delivery.state == HELD and delivery.next_attempt_at is not None:
            row["held_until"] = iso(delivery.next_attempt_at)
        row["attempts"] = [dict(a, faults=[f for f in faults if f["kind"] == BAD_SIGNATURE or a["attempt"] == 1])
                           for a in row["attempts"]]
        return row


def validate_fault(spec: dict[str, Any]) -> None:
    """Refuse (422 naming the field) a protocol fault the gateway could not apply as written: a
    ``match`` key it does not know (a typo would silently never hit), params another kind takes, a
    bad ``params.after`` / ``params.hold`` duration, a non-boolean ``params.same_moment``, or an
    ``endpoint`` / ``method`` / ``target`` (these faults are scoped by ``match`` only)."""
    kind = str(spec.get("kind"))
    check_point_scope(spec, PAYMENT_POINT if kind == PAYMENT_RESPONSE_LOST else CONFIRMATION_POINT)
    match = spec.get("match") or {}
    keys = FAULT_MATCH_KEYS if kind != PAYMENT_RESPONSE_LOST else FAULT_MATCH_KEYS[:3]
    for key, value in match.items():
        if key not in keys:
            raise ValidationFailed(f"a {kind} fault matches on {', '.join(keys)}, not {str(key)[:40]!r}",
                                   field=f"match.{key}")
        if key == "operation" and value not in OPERATIONS:
            raise ValidationFailed(f"match.operation is one of {', '.join(OPERATIONS)}", field="match.operation")
    params = spec.get("params") or {}
    allowed = FAULT_PARAMS.get(kind, set())
    for name in params:
        if name not in allowed:
            raise ValidationFailed(f"a {kind} fault takes {', '.join(sorted(allowed)) or 'no params'}, "
                                   f"not {str(name)[:40]!r}", field=f"params.{name}")
    if kind == DELAYED and "after" not in params:
        raise ValidationFailed("params.after is required: how much later the first attempt is sent (e.g. '10m')",
                               field="params.after")
    for name in ("after", "hold"):
        if name in params:
            try:
                if parse_duration(params[name]).total_seconds() <= 0:
                    raise ValueError("a duration greater than zero is needed")
            except ValueError as exc:
                raise ValidationFailed(f"params.{name}: {exc}", field=f"params.{name}") from None
    if "same_moment" in params and not isinstance(params["same_moment"], bool):
        raise ValidationFailed("params.same_moment is true or false", field="params.same_moment")


def _end_of_cairo_day(day: Any) -> datetime:
    """A request may be paid through the whole of its ExpiryDate (Cairo time)."""
    return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=CAIRO)

