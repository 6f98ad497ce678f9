"""e-finance's payment request protocol, the sender's side: the cryptography and the XML.

Written from the contract only (docs/domain-facts.md, "e-finance card / payment gateway", and the
card gateway's README for what the simulator assumes where FACTS is silent), so that pointing
``urls.card_gateway`` at the real gateway is all an integrator changes. Nothing here knows HTTP,
SQL or the ledger: it builds and reads messages.

The cryptography, exactly as the published integrations do it:

- a fresh 32-byte AES key and 16-byte IV per request (the sender keeps them: the silent call comes
  back encrypted under the same pair);
- ``RequestObject`` = base64(AES-256-CBC, PKCS#7, of the XML bytes);
- ``RandomSecret`` = base64(RSA PKCS#1 v1.5, under the gateway certificate's key, of the **base64
  text** of key‖IV);
- ``HashedRequestObject`` = lowercase hex SHA-256 of the ``RequestObject`` text;
- ``Sender.Password`` (and the status inquiry's ``SenderPassword``) = base64(RSA PKCS#1 v1.5 of the
  password).

Reading XML: the standard library's ElementTree never resolves external entities; on top of that a
document with a DOCTYPE or an ENTITY declaration is refused, so is a repeated or nested field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import string
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from simulators.common.clock import CAIRO
from simulators.common.money import CURRENCY_NUMERIC, format_amount

KEY_BYTES, IV_BYTES = 32, 16
INITIATION_ROOT = "PaymentRequestInitiationReq"
INITIATION_RESPONSE_ROOT = "PaymentRequestInitiationRes"
CONFIRMATION_ROOT = "PaymentConfirmationRequest"
STATUS_ROOT = "PaymentRequestStatusRes"
CANCEL_ROOT = "PaymentRequestCancelRes"
MECHANISMS = ("Card", "Meeza", "MobileWallet", "NotSet", "Channel")
SUCCESS = "000"
# FACTS' confirmation fields, in FACTS' order ("AuthoriztionDateTime" sic).
CONFIRMATION_FIELDS = (
    "SenderRequestNumber", "PaymentRequestNumber", "PaymentRequestTotalAmount", "CollectionFeesAmount",
    "CustomerAuthorizationAmount", "AuthorizationCode", "TransactionNumber", "AuthorizingMechanism",
    "AuthorizingInstitution", "AuthoriztionDateTime", "ReconciliationDate", "IsConfirmed",
)
REFUND_FIELDS = ("RefundRequestNumber", "RefundNumber", "RefundAmount", "RefundedAmount", "RefundDateTime",
                 "Status")
# Fawry has two status vocabularies (FACTS); a robust client reads both as one.
STATUS_WORDS = {"UNPAID": "UNPAID", "NEW": "UNPAID", "PAID": "PAID", "CANCELLED": "CANCELLED",
                "CANCELED": "CANCELLED", "REFUNDED": "REFUNDED", "PARTIAL_REFUNDED": "PARTIAL_REFUNDED",
                "EXPIRED": "EXPIRED", "FAILED": "FAILED"}
_XML_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,11})(?:\.([0-9]{1,2}))?", re.ASCII)
_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>", re.ASCII)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}", re.ASCII)
_HEX16 = re.compile(r"[0-9A-Fa-f]{16}", re.ASCII)


class MessageError(ValueError):
    """Raised when a message cannot be read: ``reason`` is undecryptable | malformed | missing | invalid."""

    def __init__(self, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason, self.message, self.field = reason, message, field


# --- numbers the sender makes up ------------------------------------------------------------------
def new_sender_request_number() -> str:
    """FACTS: 16 hex characters, unique per request of this sender."""
    return secrets.token_hex(8).upper()


def new_random_value() -> str:
    """FACTS: ``Sender.RandomValue``, 32 hex characters, fresh per attempt."""
    return secrets.token_hex(16).upper()


def user_unique_identifier(seed: str) -> str:
    """FACTS: 8 characters; assumed letters/digits. Derived from ``seed`` so one citizen request keeps one."""
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    alphabet = string.ascii_uppercase + string.digits
    return "".join(alphabet[b % len(alphabet)] for b in digest[:8])


def is_sender_request_number(value: str) -> bool:
    return bool(_HEX16.fullmatch(value))


# --- symmetric part -------------------------------------------------------------------------------
def new_secret() -> tuple[bytes, bytes]:
    """A fresh (32-byte key, 16-byte IV) pair from the OS's CSPRNG."""
    return secrets.token_bytes(KEY_BYTES), secrets.token_bytes(IV_BYTES)


def aes_encrypt(plaintext: bytes, key: bytes, iv: bytes) -> str:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def aes_decrypt(ciphertext: str, key: bytes, iv: bytes) -> bytes:
    """The plaintext of a base64 AES-256-CBC/PKCS#7 text; :class:`MessageError` ``undecryptable`` if not."""
    try:
        data = base64.b64decode(ciphertext.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise MessageError("undecryptable", "RequestObject is not base64", "RequestObject") from None
    if not data or len(data) % 16:
        raise MessageError("undecryptable", "RequestObject is not a whole number of AES blocks", "RequestObject")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise MessageError("undecryptable", "RequestObject does not decrypt under this request's key",
                           "RequestObject") from None


def sha256_hex(text: str) -> str:
    """Lowercase hex SHA-256 of a text (``HashedRequestObject``; the default ``Signature``)."""
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


# --- the gateway certificate ----------------------------------------------------------------------
class GatewayCertificate:
    """The gateway's public key, from its X.509 certificate (PEM): what a sender encrypts for."""

    def __init__(self, pem: bytes) -> None:
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise ValueError(f"not a PEM X.509 certificate: {exc}") from None
        key = certificate.public_key()
        if not isinstance(key, RSAPublicKey):
            raise ValueError("the gateway certificate does not hold an RSA key")
        self.key = key
        self.fingerprint = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()

    def encrypt(self, data: bytes) -> str:
        """base64(RSA PKCS#1 v1.5): FACTS' scheme for the random secret and the password."""
        return base64.b64encode(self.key.encrypt(data, PKCS1v15())).decode("ascii")

    def random_secret(self, key: bytes, iv: bytes) -> str:
        """RSA of the **base64 text** of key‖IV, not of the 48 raw bytes (FACTS)."""
        return self.encrypt(base64.b64encode(key + iv))

    def password(self, password: str) -> str:
        return self.encrypt(password.encode("utf-8"))


# --- the initiation request -----------------------------------------------------------------------
@dataclass(frozen=True)
class SettlementLine:
    account_code: str
    description: str
    amount: int  # piasters


@dataclass(frozen=True)
class Initiation:
    """What ``PaymentRequestInitiationReq`` carries (FACTS' field list)."""

    sender_id: str
    sender_name: str
    encrypted_password: str
    lines: tuple[SettlementLine, ...]
    sender_request_number: str
    sender_invoice_number: str
    service_code: str
    description: str
    ip: str
    mechanism: str
    expiry_date: date
    confirmation_url: str
    redirect_url: str
    user_unique_identifier: str
    random_value: str = ""


def initiation_xml(request: Initiation) -> bytes:
    """The request document. The declaration says ``utf-16`` over UTF-8 bytes, as the published
    integrations send it (FACTS: a quirk the real gateway accepts), so the real gateway sees what it
    sees from them. Settlement lines use the .NET array shape (``SettlementAmounts`` in
    ``SettlementAmounts``)."""
    root = ET.Element(INITIATION_ROOT)
    sender = ET.SubElement(root, "Sender")
    for name, value in (("Id", request.sender_id), ("Name", request.sender_name),
                        ("RandomValue", request.random_value or new_random_value()),
                        ("Password", request.encrypted_password)):
        ET.SubElement(sender, name).text = value
    lines = ET.SubElement(root, "SettlementAmounts")
    for line in request.lines:
        item = ET.SubElement(lines, "SettlementAmounts")
        ET.SubElement(item, "SettlementAccountCode").text = line.account_code
        ET.SubElement(item, "SettlementAmountsDescription").text = line.description
        ET.SubElement(item, "Amount").text = format_amount(line.amount)
    for name, value in (("SenderRequestNumber", request.sender_request_number),
                        ("SenderInvoiceNumber", request.sender_invoice_number),
                        ("ServiceCode", request.service_code),
                        ("RequestInitiationDescription", request.description),
                        ("Currency", CURRENCY_NUMERIC), ("IP", request.ip)):
        ET.SubElement(root, name).text = value
    mechanism = ET.SubElement(root, "PaymentMechanism")
    ET.SubElement(mechanism, "Type").text = request.mechanism
    ET.SubElement(mechanism, "MechanismType").text = request.mechanism
    ET.SubElement(mechanism, "Channel").text = ""
    for name, value in (("ExpiryDate", request.expiry_date.isoformat()),
                        ("PaymentConfirmationUrl", request.confirmation_url),
                        ("PaymentConfirmationRedirectUrl", request.redirect_url),
                        ("UserUniqueIdentifier", request.user_unique_identifier)):
        ET.SubElement(root, name).text = value
    return b'<?xml version="1.0" encoding="utf-16"?>' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


@dataclass(frozen=True)
class Sealed:
    """An encrypted initiation: the form fields to post, and the key/IV to keep for the silent call."""

    fields: dict[str, str]
    key: bytes
    iv: bytes


def seal_initiation(certificate: GatewayCertificate, request: Initiation, language: str) -> Sealed:
    """Encrypt one request exactly as FACTS says, under a fresh key and IV."""
    key, iv = new_secret()
    request_object = aes_encrypt(initiation_xml(request), key, iv)
    fields = {
        "SenderID": request.sender_id,
        "RandomSecret": certificate.random_secret(key, iv),
        "RequestObject": request_object,
        "HashedRequestObject": sha256_hex(request_object),
        "LanguageId": "en" if language == "en" else "ar",
    }
    return Sealed(fields, key, iv)


# --- reading XML ------------------------------------------------------------------------------------
def _text_of(document: bytes | str) -> str:
    """Decrypted or received bytes as text, without the declaration (which may lie about utf-16)."""
    if isinstance(document, str):
        text = document
    else:
        try:
            if document.startswith((b"\xff\xfe", b"\xfe\xff")):
                text = document.decode("utf-16")
            else:
                text = document.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise MessageError("malformed", "the document is neither UTF-8 nor UTF-16 text") from None
    if "\x00" in text:  # not XML; UTF-16 without a BOM would otherwise slip past the DOCTYPE check
        raise MessageError("malformed", "the document holds NUL characters (UTF-16 needs a byte-order mark)")
    return _DECLARATION.sub("", text, count=1)


def parse_flat(document: bytes | str, root_name: str) -> dict[str, str]:
    """A flat XML document (one level of text elements under ``root_name``) as a dict.

    :class:`MessageError` ``malformed`` for anything else: not XML, another root, a DOCTYPE or
    entity, a field that repeats or holds elements.
    """
    text = _text_of(document)
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise MessageError("malformed", "a DOCTYPE or entity declaration is not allowed")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise MessageError("malformed", f"not well-formed XML ({exc})") from None
    if root.tag != root_name:
        raise MessageError("malformed", f"the root element is {str(root.tag)[:80]!r}, not {root_name}")
    out: dict[str, str] = {}
    for child in root:
        name = str(child.tag)
        if len(child):
            raise MessageError("malformed", f"{name[:60]} must hold text, not elements", name[:60])
        if name in out:
            raise MessageError("malformed", f"{name[:60]} appears more than once", name[:60])
        out[name] = (child.text or "").strip()
    return out


def parse_amount(text: str, field: str) -> int:
    """Piasters from an XML amount ("100", "100.5", "100.50"); never a float."""
    match = _XML_AMOUNT.fullmatch(text or "")
    if not match:
        raise MessageError("invalid", f"{field} {text[:20]!r} is not an amount", field)
    return int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))


def parse_local_time(text: str, field: str) -> datetime | None:
    """A Cairo wall-clock ``YYYY-MM-DD HH:MM:SS`` (the gateway's format) as an aware instant; None if empty."""
    if not text:
        return None
    if not _DATETIME.fullmatch(text):
        raise MessageError("invalid", f"{field} {text[:30]!r} is not YYYY-MM-DD HH:MM:SS", field)
    try:
        return datetime.fromisoformat(text.replace("T", " ")).replace(tzinfo=CAIRO)
    except ValueError:
        raise MessageError("invalid", f"{field} {text[:30]!r} is not a real time", field) from None


def parse_day(text: str, field: str) -> date | None:
    if not text:
        return None
    try:
        if not _DATE.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise MessageError("invalid", f"{field} {text[:30]!r} is not YYYY-MM-DD", field) from None


# --- the confirmation (silent call) -------------------------------------------------------------------
@dataclass(frozen=True)
class Confirmation:
    """A decrypted silent call: a payment notice, or (OperationType Refund) a refund notice."""

    operation: str  # Payment | Refund
    sender_request_number: str
    payment_request_number: str
    total_amount: int  # PaymentRequestTotalAmount: the settlement lines, i.e. our order
    collection_fee: int
    authorized_amount: int  # CustomerAuthorizationAmount = total + fee
    authorization_code: str
    transaction_number: str
    mechanism: str
    institution: str
    authorized_at: datetime | None
    reconciliation_date: date | None
    is_confirmed: bool
    refund_request_number: str = ""
    refund_number: str = ""
    refund_amount: int = 0
    refunded_amount: int = 0
    refunded_at: datetime | None = None
    status: str = ""


def parse_confirmation(plaintext: bytes) -> Confirmation:
    """``PaymentConfirmationRequest``: FACTS' twelve fields, plus the refund fields when
    ``OperationType`` is ``Refund`` (absent = ``Payment``)."""
    values = parse_flat(plaintext, CONFIRMATION_ROOT)
    for name in ("SenderRequestNumber", "PaymentRequestNumber", "PaymentRequestTotalAmount",
                 "CustomerAuthorizationAmount", "IsConfirmed"):
        if not values.get(name):
            raise MessageError("missing", f"{name} is missing or empty", name)
    confirmed = values["IsConfirmed"].lower()
    if confirmed not in ("true", "false"):
        raise MessageError("invalid", "IsConfirmed is true or false", "IsConfirmed")
    operation = values.get("OperationType") or "Payment"
    if operation not in ("Payment", "Refund"):
        raise MessageError("invalid", f"OperationType {operation[:20]!r} is Payment or Refund", "OperationType")
    extra: dict[str, Any] = {}
    if operation == "Refund":
        for name in REFUND_FIELDS:
            if name != "RefundRequestNumber" and not values.get(name):
                raise MessageError("missing", f"{name} is missing or empty on a refund notice", name)
        extra = {
            "refund_request_number": values.get("RefundRequestNumber", ""),
            "refund_number": values["RefundNumber"],
            "refund_amount": parse_amount(values["RefundAmount"], "RefundAmount"),
            "refunded_amount": parse_amount(values["RefundedAmount"], "RefundedAmount"),
            "refunded_at": parse_local_time(values["RefundDateTime"], "RefundDateTime"),
            "status": status_word(values["Status"]),
        }
    if confirmed == "true" and not values.get("TransactionNumber"):
        raise MessageError("missing", "a confirmed payment carries a TransactionNumber", "TransactionNumber")
    return Confirmation(
        operation=operation,
        sender_request_number=values["SenderRequestNumber"],
        payment_request_number=values["PaymentRequestNumber"],
        total_amount=parse_amount(values["PaymentRequestTotalAmount"], "PaymentRequestTotalAmount"),
        collection_fee=parse_amount(values.get("CollectionFeesAmount") or "0", "CollectionFeesAmount"),
        authorized_amount=parse_amount(values["CustomerAuthorizationAmount"], "CustomerAuthorizationAmount"),
        authorization_code=values.get("AuthorizationCode", ""),
        transaction_number=values.get("TransactionNumber", ""),
        mechanism=values.get("AuthorizingMechanism", ""),
        institution=values.get("AuthorizingInstitution", ""),
        authorized_at=parse_local_time(values.get("AuthoriztionDateTime", ""), "AuthoriztionDateTime"),
        reconciliation_date=parse_day(values.get("ReconciliationDate", ""), "ReconciliationDate"),
        is_confirmed=confirmed == "true",
        **extra,
    )


def status_word(value: str) -> str:
    """One vocabulary out of two (UNPAID/NEW, CANCELLED/CANCELED); an unknown word is kept as is."""
    return STATUS_WORDS.get(value.strip().upper(), value.strip().upper())


# --- answers of the server-to-server calls ---------------------------------------------------------
@dataclass(frozen=True)
class GatewayAnswer:
    """A flat XML answer with its ResponseCode; ``ok`` only for ``000``."""

    fields: dict[str, str]

    @property
    def code(self) -> str:
        return self.fields.get("ResponseCode", "")

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS

    def describe(self) -> str:
        detail = self.fields.get("Detail") or self.fields.get("ResponseMessage") or ""
        return f"ResponseCode {self.code or '(none)'}{': ' + detail[:200] if detail else ''}"


@dataclass(frozen=True)
class RequestStatus:
    """The status inquiry's answer, normalised (amounts in piasters, one status vocabulary)."""

    sender_request_number: str
    payment_request_number: str
    status: str
    total_amount: int
    collection_fee: int
    authorized_amount: int
    paid_amount: int
    refunded_amount: int
    transaction_number: str
    authorization_code: str
    authorized_at: datetime | None
    reconciliation_date: date | None
    mechanism: str = ""  # AuthorizingMechanism when the gateway says it (the simulator does)

    @property
    def captured(self) -> bool:
        """Money was taken (it may have gone back since: refunds do not undo the capture)."""
        return self.status in ("PAID", "REFUNDED", "PARTIAL_REFUNDED")


def read_status(fields: dict[str, str]) -> RequestStatus:
    def amount(name: str) -> int:
        return parse_amount(fields.get(name) or "0", name)

    return RequestStatus(
        sender_request_number=fields.get("SenderRequestNumber", ""),
        payment_request_number=fields.get("PaymentRequestNumber", ""),
        status=status_word(fields.get("Status", "")),
        total_amount=amount("PaymentRequestTotalAmount"),
        collection_fee=amount("CollectionFeesAmount"),
        authorized_amount=amount("CustomerAuthorizationAmount"),
        paid_amount=amount("PaidAmount"),
        refunded_amount=amount("RefundedAmount"),
        transaction_number=fields.get("TransactionNumber", ""),
        authorization_code=fields.get("AuthorizationCode", ""),
        authorized_at=parse_local_time(fields.get("AuthoriztionDateTime", ""), "AuthoriztionDateTime"),
        reconciliation_date=parse_day(fields.get("ReconciliationDate", ""), "ReconciliationDate"),
        mechanism=fields.get("AuthorizingMechanism", ""),
    )
