"""e-finance initiation messages: the ``PaymentRequestInitiationReq`` XML in, the response XML out.

Field names and shapes are docs/domain-facts.md's. Parsing is strict: every refusal is a
:class:`Rejection` carrying a ResponseCode from ``contracts/efinance-response-codes.yaml``.

XML safety: the standard library's ``xml.etree.ElementTree`` (expat) never resolves external
entities, and Python 3.11's expat refuses entity-expansion bombs; on top of that any document with a
DOCTYPE is refused outright (a payment request has no use for one).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from simulators.common.contracts import load_contract
from simulators.common.errors import ApiError
from simulators.common.money import CURRENCY_NUMERIC, format_amount

RESPONSE_CODES_CONTRACT = "efinance-response-codes.yaml"
ROOT = "PaymentRequestInitiationReq"
LATEST_EXPIRY = date(2999, 12, 30)
RESPONSE_ROOT = "PaymentRequestInitiationRes"
MECHANISM_TYPES = ("Card", "Meeza", "MobileWallet", "Channel", "NotSet")
MAX_AMOUNT = 10**14 - 1  # piasters: 12 integer digits, as simulators.common.money allows

_HEX16 = re.compile(r"[0-9A-Fa-f]{16}", re.ASCII)
_HEX32 = re.compile(r"[0-9A-Fa-f]{32}", re.ASCII)
_UUID8 = re.compile(r"[0-9A-Za-z]{8}", re.ASCII)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_CODE = re.compile(r"[0-9A-Za-z_-]{1,32}", re.ASCII)
_URL = re.compile(r"https?://[^\s<>\"]{1,2000}", re.ASCII)
# Assumed (FACTS is silent on the amount's text): digits with no or one/two decimals ("100",
# "100.5", "100.50"); no sign, exponent, grouping, spaces or non-ASCII digits; at most 12 integer digits.
_XML_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,11})(?:\.([0-9]{1,2}))?", re.ASCII)
_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>", re.ASCII)


# --- response codes -------------------------------------------------------------------------------
@cache
def response_codes() -> dict[str, dict[str, Any]]:
    """The published table, by symbolic name."""
    table = load_contract(RESPONSE_CODES_CONTRACT)
    return {str(row["name"]): dict(row, code=str(row["code"])) for row in table["codes"]}


def response_message(name: str, lang: str) -> str:
    row = response_codes()[name]
    return str(row["message_ar"] if lang == "ar" else row["message_en"])


class Rejection(ApiError):
    """A refused initiation: ``name`` is the table's symbolic name, ``code`` its ResponseCode."""

    def __init__(self, name: str, detail: str, *, field: str | None = None) -> None:
        row = response_codes()[name]
        super().__init__(detail, field=field, code=row["code"], status=int(row["status"]))
        self.name = name


# --- the request ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SettlementLine:
    account_code: str
    description: str
    amount: int  # piasters


@dataclass(frozen=True)
class InitiationRequest:
    sender_id: str
    sender_name: str
    random_value: str
    password_encrypted: str
    settlement_lines: tuple[SettlementLine, ...]
    sender_request_number: str
    sender_invoice_number: str
    service_code: str
    description: str
    currency: str
    ip: str
    mechanism_type: str
    mechanism_mechanism_type: str
    mechanism_channel: str
    expiry_date: date
    confirmation_url: str
    redirect_url: str
    user_unique_identifier: str

    @property
    def amount(self) -> int:
        return sum(line.amount for line in self.settlement_lines)

    def fingerprint(self) -> tuple[Any, ...]:
        """What makes two requests "the same": everything but the per-attempt values (the random
        value, the freshly RSA-encrypted password and the browser's IP)."""
        return (self.sender_id, self.settlement_lines, self.sender_request_number, self.sender_invoice_number,
                self.service_code, self.description, self.currency, self.mechanism_type,
                self.mechanism_mechanism_type, self.mechanism_channel, self.expiry_date, self.confirmation_url,
                self.redirect_url, self.user_unique_identifier)


def xml_text(plaintext: bytes) -> str:
    """The decrypted bytes as text, without the XML declaration.

    Published senders declare ``encoding="utf-16"`` over UTF-8 bytes: the declaration is dropped and
    the bytes are decoded by what they are (a UTF-16 BOM means UTF-16, else UTF-8).
    """
    try:
        if plaintext.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = plaintext.decode("utf-16")
        else:
            text = plaintext.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Rejection("MALFORMED_XML", "the request is neither UTF-8 nor UTF-16 text",
                        field="RequestObject") from None
    if "\x00" in text:
        # NUL is not XML; UTF-16 without a BOM decodes "as UTF-8" into NUL-spaced text that slips past
        # the DOCTYPE check while expat, guessing UTF-16 from the bytes, reads the DTD (a breaker's case).
        raise Rejection("MALFORMED_XML", "the request holds NUL characters (UTF-16 needs a byte-order mark)",
                        field="RequestObject")
    return _DECLARATION.sub("", text, count=1)


def parse_initiation(plaintext: bytes) -> InitiationRequest:
    """A ``PaymentRequestInitiationReq`` from decrypted bytes; :class:`Rejection` when it is not one."""
    text = xml_text(plaintext)
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise Rejection("MALFORMED_XML", "a DOCTYPE or entity declaration is not allowed", field="RequestObject")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise Rejection("MALFORMED_XML", f"the request is not well-formed XML ({exc})", field="RequestObject") from None
    if root.tag != ROOT:  # no namespace either: the published integrations send the bare element
        raise Rejection("MALFORMED_XML", f"the root element is {str(root.tag)[:80]!r}, not {ROOT}",
                        field="RequestObject")

    sender = _element(root, "Sender", "Sender")
    mechanism = _element(root, "PaymentMechanism", "PaymentMechanism")
    currency = _required(root, "Currency")
    if currency != CURRENCY_NUMERIC:
        raise Rejection("CURRENCY_NOT_SUPPORTED", f"Currency {currency[:10]!r} is not {CURRENCY_NUMERIC}",
                        field="Currency")
    srn = _required(root, "SenderRequestNumber")
    _check(_HEX16, srn, "SenderRequestNumber", "16 hexadecimal characters")
    random_value = _required(sender, "RandomValue", "Sender.RandomValue")
    _check(_HEX32, random_value, "Sender.RandomValue", "32 hexadecimal characters")
    uui = _required(root, "UserUniqueIdentifier")
    _check(_UUID8, uui, "UserUniqueIdentifier", "8 letters or digits")
    service_code = _required(root, "ServiceCode")
    _check(_CODE, service_code, "ServiceCode", "a code of letters and digits")
    kinds = []
    for name in ("Type", "MechanismType"):
        value = _required(mechanism, name, f"PaymentMechanism.{name}")
        if value not in MECHANISM_TYPES:
            raise Rejection("INVALID_FIELD", f"PaymentMechanism.{name} must be one of {', '.join(MECHANISM_TYPES)}",
                            field=f"PaymentMechanism.{name}")
        kinds.append(value)
    expiry_text = _required(root, "ExpiryDate")
    try:
        if not _DATE.fullmatch(expiry_text):
            raise ValueError
        expiry = date.fromisoformat(expiry_text)
        if expiry > LATEST_EXPIRY:  # the simulated clock ends in 2999; a date past it cannot be held
            raise ValueError
    except ValueError:
        raise Rejection("INVALID_FIELD", f"ExpiryDate must be a Y-m-d date such as 2026-12-04, "
                        f"at the latest {LATEST_EXPIRY.isoformat()}", field="ExpiryDate") from None
    urls = {}
    for name in ("PaymentConfirmationUrl", "PaymentConfirmationRedirectUrl"):
        urls[name] = _required(root, name)
        _check(_URL, urls[name], name, "an http(s) URL")
    return InitiationRequest(
        sender_id=_required(sender, "Id", "Sender.Id"),
        sender_name=_optional(sender, "Name", "Sender.Name"),
        random_value=random_value,
        password_encrypted=_required(sender, "Password", "Sender.Password"),
        settlement_lines=_settlement_lines(root),
        sender_request_number=srn,
        sender_invoice_number=_optional(root, "SenderInvoiceNumber"),
        service_code=service_code,
        description=_optional(root, "RequestInitiationDescription"),
        currency=currency,
        ip=_optional(root, "IP"),
        mechanism_type=kinds[0],
        mechanism_mechanism_type=kinds[1],
        mechanism_channel=_optional(mechanism, "Channel", "PaymentMechanism.Channel"),
        expiry_date=expiry,
        confirmation_url=urls["PaymentConfirmationUrl"],
        redirect_url=urls["PaymentConfirmationRedirectUrl"],
        user_unique_identifier=uui,
    )


def parse_xml_amount(text: str, field: str) -> int:
    """Piasters from an XML amount ("100", "100.5", "100.50"); never a float. Zero is allowed here:
    the caller refuses non-positive lines with AMOUNTS_DO_NOT_ADD_UP."""
    match = _XML_AMOUNT.fullmatch(text)
    if not match:
        raise Rejection("INVALID_AMOUNT", f"{field} {text[:20]!r} is not a decimal amount with at most two decimals",
                        field=field)
    return int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))


def _settlement_lines(root: ET.Element) -> tuple[SettlementLine, ...]:
    """``<SettlementAmounts><SettlementAmounts>…</SettlementAmounts>…</SettlementAmounts>`` (the
    .NET array shape): one or more lines, each positive; the request's amount is their sum."""
    wrapper = _element(root, "SettlementAmounts", "SettlementAmounts")
    items = [child for child in wrapper if _local(child.tag) == "SettlementAmounts"]
    if not items:
        raise Rejection("MISSING_FIELD", "SettlementAmounts holds no settlement line: each line is a"
                        " <SettlementAmounts> element inside <SettlementAmounts> (the .NET array shape)",
                        field="SettlementAmounts")
    lines = []
    for i, item in enumerate(items):
        where = f"SettlementAmounts.{i}"
        account = _required(item, "SettlementAccountCode", f"{where}.SettlementAccountCode")
        amount = parse_xml_amount(_required(item, "Amount", f"{where}.Amount"), f"{where}.Amount")
        if amount <= 0:
            raise Rejection("AMOUNTS_DO_NOT_ADD_UP", f"{where}.Amount must be greater than zero",
                            field=f"{where}.Amount")
        lines.append(SettlementLine(account, _optional(item, "SettlementAmountsDescription",
                                                       f"{where}.SettlementAmountsDescription"), amount))
    total = sum(line.amount for line in lines)
    if total > MAX_AMOUNT:
        raise Rejection("AMOUNTS_DO_NOT_ADD_UP", f"the settlement amounts add up to more than "
                        f"{format_amount(MAX_AMOUNT)}", field="SettlementAmounts")
    return tuple(lines)


def _local(tag: Any) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _children(parent: ET.Element, name: str, label: str) -> list[ET.Element]:
    found = [child for child in parent if _local(child.tag) == name]
    if len(found) > 1:
        raise Rejection("MALFORMED_XML", f"{label} appears {len(found)} times", field=label)
    return found


def _element(parent: ET.Element, name: str, label: str) -> ET.Element:
    found = _children(parent, name, label)
    if not found:
        raise Rejection("MISSING_FIELD", f"{label} is missing", field=label)
    return found[0]


def _required(parent: ET.Element, name: str, label: str | None = None) -> str:
    label = label or name
    element = _element(parent, name, label)
    if len(element):
        raise Rejection("MALFORMED_XML", f"{label} must hold text, not elements", field=label)
    text = element.text or ""
    if not text:
        raise Rejection("MISSING_FIELD", f"{label} is empty", field=label)
    return text


def _optional(parent: ET.Element, name: str, label: str | None = None) -> str:
    """An element that may be absent or empty (``<SenderInvoiceNumber />`` in published samples)."""
    label = label or name
    found = _children(parent, name, label)
    if not found:
        return ""
    if len(found[0]):
        raise Rejection("MALFORMED_XML", f"{label} must hold text, not elements", field=label)
    return found[0].text or ""


def _check(pattern: re.Pattern[str], value: str, field: str, what: str) -> None:
    if not pattern.fullmatch(value):
        raise Rejection("INVALID_FIELD", f"{field} must be {what}", field=field)


# --- the response ---------------------------------------------------------------------------------
def initiation_response_xml(*, sender_request_number: str, payment_request_number: str, amount: int | None,
                            collection_fee: int | None, response_code: str, response_message: str,
                            detail: str | None = None) -> bytes:
    """``PaymentRequestInitiationRes`` (UTF-8, declared as such). Amounts use two decimals; on a
    refusal the number and amounts are empty elements and ``Detail`` (assumed, not in FACTS) says
    what exactly was wrong, naming the element, so an integrator is not left guessing."""
    root = ET.Element(RESPONSE_ROOT)
    total = amount + collection_fee if amount is not None and collection_fee is not None else None
    fields = [
        ("OriginalSenderRequestNumber", sender_request_number),
        ("PaymentRequestNumber", payment_request_number),
        ("Currency", CURRENCY_NUMERIC),
        ("OriginalPaymentRequestAmount", format_amount(amount) if amount is not None else ""),
        ("CollectionFeesAmount", format_amount(collection_fee) if collection_fee is not None else ""),
        ("TotalAuthorizationAmount", format_amount(total) if total is not None else ""),
        ("ResponseCode", response_code),
        ("ResponseMessage", response_message),
    ]
    if detail:
        fields.append(("Detail", detail))
    for name, value in fields:
        ET.SubElement(root, name).text = value
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


# --- the confirmation (silent call) ---------------------------------------------------------------
CONFIRMATION_ROOT = "PaymentConfirmationRequest"  # assumed (a class name in one published PHP integration)
CONFIRMATION_FIELDS = (
    "SenderRequestNumber", "PaymentRequestNumber", "PaymentRequestTotalAmount", "CollectionFeesAmount",
    "CustomerAuthorizationAmount", "AuthorizationCode", "TransactionNumber", "AuthorizingMechanism",
    "AuthorizingInstitution", "AuthoriztionDateTime", "ReconciliationDate", "IsConfirmed",
)  # docs/domain-facts.md, in its order ("AuthoriztionDateTime" sic)


# The refund notice (assumed; `card_gateway.efinance.notify_refunds`): the same root and the payment's
# twelve fields, then what the refund was. A receiver that reads only the twelve fields sees the
# payment again (IsConfirmed true): OperationType is what tells the two apart.
REFUND_OPERATION = "Refund"
REFUND_NOTICE_FIELDS = CONFIRMATION_FIELDS + (
    "OperationType", "RefundRequestNumber", "RefundNumber", "RefundAmount", "RefundedAmount", "RefundDateTime",
    "Status",
)


def confirmation_xml(values: dict[str, str], fields: tuple[str, ...] = CONFIRMATION_FIELDS) -> bytes:
    """The confirmation's plaintext: one element per field of ``fields`` (the payment's
    ``CONFIRMATION_FIELDS`` or a refund notice's ``REFUND_NOTICE_FIELDS``), in that order (UTF-8,
    declared as such; an empty value is an empty element)."""
    root = ET.Element(CONFIRMATION_ROOT)
    for name in fields:
        ET.SubElement(root, name).text = values.get(name, "")
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


# --- status inquiry, refund, cancel answers (assumed shapes; README) ------------------------------
STATUS_ROOT = "PaymentRequestStatusRes"
REFUND_ROOT = "PaymentRequestRefundRes"
CANCEL_ROOT = "PaymentRequestCancelRes"


def response_xml(root_name: str, fields: list[tuple[str, str]]) -> bytes:
    """A flat answer document: one element per field, in order (UTF-8, declared as such)."""
    root = ET.Element(root_name)
    for name, value in fields:
        ET.SubElement(root, name).text = value
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="utf-8", xml_declaration=False)
