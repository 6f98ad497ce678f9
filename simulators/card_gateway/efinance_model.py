"""State of e-finance's payment request initiation: senders, requests by SenderRequestNumber, keys.

No Flask here. :meth:`EfinanceGateway.initiate` takes the four form fields, checks everything in a
fixed order (each failure a :class:`~.efinance_messages.Rejection` with its ResponseCode, before
any state changes), then opens a hosted-page session in :class:`~.models.CardGatewayModel` and
remembers the request under ``(SenderID, SenderRequestNumber)`` with the sender's AES key and IV
(the later confirmation silent call encrypts with that same key and IV).
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from simulators.common.clock import CAIRO, cairo
from simulators.common.money import format_amount

from .efinance_crypto import CryptoFailure, GatewayIdentity, aes_decrypt, decode_secret, load_identity, sha256_hex
from .efinance_messages import InitiationRequest, Rejection, parse_initiation

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .models import CardGatewayModel, Session

FORM_FIELDS = ("SenderID", "RandomSecret", "RequestObject", "HashedRequestObject")
# One published PHP integration spells the hash field "HasedRequestObject": accepted as an alias.
HASH_ALIASES = ("HashedRequestObject", "HasedRequestObject")


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


class EfinanceGateway:
    """The initiation protocol's state; one lock. ``reset()`` forgets every request."""

    def __init__(self, component: Component, model: CardGatewayModel) -> None:
        self.component = component
        self.model = model
        own = component.own
        self.identity: GatewayIdentity = load_identity(own, component.clock.now())
        self.senders = {s.sender_id: s for s in (Sender.from_settings(r) for r in own.get("senders") or [])}
        self._lock = threading.RLock()
        self._requests: dict[tuple[str, str], EfinanceRequest] = {}
        self._numbers: set[str] = set()

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._numbers.clear()

    def get_request(self, sender_id: str, sender_request_number: str) -> EfinanceRequest | None:
        with self._lock:
            return self._requests.get((sender_id, sender_request_number))

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
            session = self.model.open_efinance_session(
                merchant_request_id=f"efinance:{sender.sender_id}:{request.sender_request_number}",
                merchant_reference=request.sender_request_number,
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
            )
            number = self._payment_request_number()
            record = EfinanceRequest(sender.sender_id, request.sender_request_number, number, session.session_id,
                                     request, key, iv)
            self._requests[index] = record
            self._numbers.add(number)
            return record, session, True

    def _payment_request_number(self) -> str:
        """Assumed format: 12 digits, unique in this gateway's memory."""
        while True:
            candidate = f"{secrets.randbelow(9 * 10**11) + 10**11}"
            if candidate not in self._numbers:
                return candidate


def _end_of_cairo_day(day: Any) -> datetime:
    """A request may be paid through the whole of its ExpiryDate (Cairo time)."""
    return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=CAIRO)

