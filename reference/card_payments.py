"""Card payments through e-finance's payment request protocol: open, hear back, credit once, refund.

What it owns: card attempts (one e-finance payment request per attempt, keyed by our
``SenderRequestNumber``, with the AES key and IV the gateway answers under), and the handling of the
gateway's "silent call" (payment, decline and refund notices) and of the browser's return.
It credits through :meth:`Ledger.capture`, so card money follows the same rules as cash.

What it trusts, and why (docs/domain-facts.md: "a careful receiver does not trust the silent call
alone"):

- the **redirect** is the citizen's browser: its query is never believed; the return page asks the
  gateway's status inquiry and credits only what that answer says;
- a **silent call** is believed to come from the gateway only if its ``RequestObject`` decrypts under
  the key and IV we chose for that very request (only we and the gateway know them) and its
  ``Signature`` matches; even then it is a claim: its numbers must match our attempt, and before any
  money moves the status inquiry must say the same (paid, same transaction, same amount; for a
  refund, refunded at least as much);
- **idempotency** is by UNIQUE keys, never by a prior look-up alone: one payment per (channel,
  TransactionNumber) and per PaymentRequestNumber, one refund per RefundNumber. A notice that finds
  its money recorded already is a duplicate and is acknowledged (``000``), so the gateway stops.
"""

from __future__ import annotations

import base64
import hmac
import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from simulators.common.clock import cairo, iso, parse_instant
from simulators.common.errors import ApiError, Conflict
from simulators.common.money import CURRENCY, format_amount, parse_amount

from .efinance import (
    Confirmation,
    Initiation,
    MessageError,
    RequestStatus,
    SettlementLine,
    aes_decrypt,
    new_sender_request_number,
    parse_confirmation,
    seal_initiation,
    sha256_hex,
    user_unique_identifier,
)
from .errors import (
    CardPaymentsUnavailable,
    SilentCallRefused,
    TooManyCardAttempts,
    UnknownCardPayment,
    UpstreamRejected,
    UpstreamUnavailable,
)
from .ledger import new_id
from .status_watch import first_check_at

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .ledger import Ledger
    from .store import Store
    from .upstream import EfinanceClient, Sender

log = logging.getLogger(__name__)
CONFIRMATION_PATH = "/efinance/confirmations"
RETURN_PATH = "/payments/return"


def channel_of(mechanism: str) -> str:
    """The report's channel: e-finance's Channel mechanism is cash paid at an outlet, the rest is card."""
    return "cash" if mechanism == "Channel" else "card"


class CardPayments:
    def __init__(self, component: Component, store: Store, ledger: Ledger, client: EfinanceClient) -> None:
        self.component = component
        self.store = store
        self.ledger = ledger
        self.client = client

    @property
    def now(self) -> datetime:
        return self.component.clock.now()

    def service_name(self, service_code: str, language: str) -> str:
        """The service as the citizen knows it, for the gateway's page (RequestInitiationDescription)."""
        services = (self.component.settings.get("catalog") or {}).get("services") or []
        found = next((s for s in services if s.get("code") == service_code), {})
        return str(found.get("name_en" if language == "en" else "name_ar") or service_code)

    # --- opening --------------------------------------------------------------------------------
    def open(self, bill_reference: str, body: dict[str, Any], ip: str | None) -> dict[str, Any]:
        """Seal a ``PaymentRequestInitiationReq`` for the order and keep the attempt (with its key and
        IV) before anything is sent; for mechanism ``Channel`` also initiate it server to server."""
        order = self.ledger.find_order(bill_reference)
        self.ledger.payable(order)
        limit = int((self.component.own.get("efinance") or {}).get("max_attempts_per_order", 20))
        if len(self.store.card_attempts_of(bill_reference)) >= limit:
            raise TooManyCardAttempts(f"order {bill_reference} already has {limit} card attempts"
                                      " (reference.efinance.max_attempts_per_order)", field="bill_reference")
        language = body.get("language") or "ar"
        mechanism = body.get("mechanism") or self.client.default_mechanism
        sender = self.client.sender_for(order["governorate_code"])
        if sender is None:
            raise CardPaymentsUnavailable(f"governorate {order['governorate_code']} has no e-finance sender"
                                          " (reference.efinance.senders)", field="governorate_code")
        certificate = self.client.certificate()
        base = self.component.url_of("reference")
        lines = tuple(
            SettlementLine(str(line["settlement_account"]), str(line["name_en" if language == "en" else "name_ar"]),
                           parse_amount(line["amount"], "fee_lines.amount", allow_zero=True))
            for line in order["fee_lines"])
        lines = tuple(line for line in lines if line.amount > 0)  # a zero line carries no money; e-finance refuses it
        now = self.now
        for _ in range(10):  # 2^64 numbers: a clash is rare, and the primary key decides, not a look-up
            number = new_sender_request_number()
            request = Initiation(
                sender_id=sender.sender_id, sender_name=sender.name,
                encrypted_password=certificate.password(sender.password), lines=lines,
                sender_request_number=number, sender_invoice_number=order["bill_reference"],
                service_code=sender.service_code,
                description=f"{self.service_name(order['service_code'], language)} — {order['request_number']}",
                ip=ip or "127.0.0.1", mechanism=mechanism,
                # the last Cairo day the order can be paid on (an order ending at midnight ends the day before)
                expiry_date=cairo(parse_instant(order["expires_at"]) - timedelta(microseconds=1)).date(),
                confirmation_url=base + CONFIRMATION_PATH,
                redirect_url=base + RETURN_PATH + ("?lang=en" if language == "en" else ""),
                user_unique_identifier=user_unique_identifier(order["request_number"]))
            sealed = seal_initiation(certificate, request, language)
            with self.store.transaction():
                fresh = self.ledger.find_order(bill_reference)
                self.ledger.payable(fresh)  # paid meanwhile (by cash, say): no new attempt
                if self.store.insert_card_attempt({
                        "sender_request_number": number, "bill_reference": bill_reference,
                        "sender_id": sender.sender_id, "amount": order["amount"], "mechanism": mechanism,
                        "language": language, "secret_key": base64.b64encode(sealed.key).decode("ascii"),
                        "secret_iv": base64.b64encode(sealed.iv).decode("ascii"), "initiation": sealed.fields,
                        "next_check_at": first_check_at(self.component, now), "created_at": iso(now)}):
                    break
        else:
            raise Conflict("could not allocate a free SenderRequestNumber; try again", code="NO_FREE_REFERENCE")
        answer: dict[str, Any] = {
            "bill_reference": bill_reference, "sender_request_number": number,
            "payment_url": f"{base}/portal/card-payments/{number}" + ("?lang=en" if language == "en" else ""),
            "initiation": {"url": self.client.url("initiation_path"), "method": "POST", "fields": sealed.fields},
            "amount": format_amount(order["amount"]), "currency": CURRENCY, "expires_at": order["expires_at"],
            "mechanism": mechanism,
        }
        if mechanism == "Channel":
            answer["payment_request_number"] = self._server_to_server(number, sealed.fields)
        return answer

    def _server_to_server(self, number: str, fields: dict[str, str]) -> str:
        """Mechanism Channel: the citizen pays cash at an outlet against the PaymentRequestNumber."""
        try:
            reply = self.client.initiate_server_to_server(fields)
            if not reply.ok:
                raise UpstreamRejected(f"e-finance refused the payment request: {reply.describe()}")
            prn = reply.fields.get("PaymentRequestNumber", "")
            original = reply.fields.get("OriginalSenderRequestNumber", "")
            if not prn or (original and original != number):
                raise UpstreamRejected("e-finance answered without our request's PaymentRequestNumber")
        except (UpstreamUnavailable, UpstreamRejected) as exc:
            with self.store.transaction():
                self.store.update_card_attempt(number, iso(self.now), status="FAILED", last_error=exc.message[:300])
            raise
        with self.store.transaction():
            self.store.update_card_attempt(number, iso(self.now), payment_request_number=prn)
        return prn

    def attempt(self, sender_request_number: str) -> dict[str, Any]:
        found = self.store.card_attempt(sender_request_number)
        if found is None:
            raise UnknownCardPayment(f"no card payment {sender_request_number[:20]!r}", field="sender_request_number")
        return found

    def initiation(self, sender_request_number: str) -> tuple[dict[str, Any], str] | None:
        """The sealed fields and the gateway URL of a browser attempt still worth posting; None when
        the attempt is decided, failed or not a browser flow (the order page says why)."""
        attempt = self.attempt(sender_request_number)
        order = self.ledger.find_order(attempt["bill_reference"])
        if (attempt["status"] in ("APPROVED", "FAILED") or attempt["mechanism"] == "Channel"
                or self.ledger.status_of(order) != "UNPAID"):
            return None
        return attempt["initiation"], self.client.url("initiation_path")

    # --- the silent call --------------------------------------------------------------------------
    def confirmation(self, form: dict[str, str]) -> dict[str, Any]:
        """One silent call; every refusal is a :class:`SilentCallRefused` and changes nothing."""
        for name in ("SenderID", "SenderRequestNumber", "RequestObject"):
            if not form.get(name):
                raise SilentCallRefused("MISSING_FIELD", f"{name} is missing", field=name)
        sender = self.client.sender_by_id(form["SenderID"])
        if sender is None:
            raise SilentCallRefused("UNKNOWN_SENDER", f"SenderID {form['SenderID'][:20]!r} is not ours",
                                    field="SenderID")
        attempt = self.store.card_attempt(form["SenderRequestNumber"])
        if attempt is None or attempt["sender_id"] != sender.sender_id:
            raise SilentCallRefused("UNKNOWN_REQUEST", f"no payment request {form['SenderRequestNumber'][:20]!r}"
                                    f" of sender {sender.sender_id}", field="SenderRequestNumber")
        self._check_signature(form)
        try:
            plaintext = aes_decrypt(form["RequestObject"], base64.b64decode(attempt["secret_key"]),
                                    base64.b64decode(attempt["secret_iv"]))
            notice = parse_confirmation(plaintext)
        except MessageError as exc:
            # One answer for every way a RequestObject can fail (padding, XML, a field): telling them apart
            # is a padding oracle that lets anyone encrypt a notice under the key without knowing it.
            log.info("silent call for %r unreadable: %s %r", form["SenderRequestNumber"][:20], exc.reason, exc.message)
            raise SilentCallRefused("UNDECRYPTABLE", "RequestObject cannot be decrypted and read under this"
                                    " request's key", field="RequestObject") from None
        self._check_numbers(attempt, notice)
        if notice.operation == "Refund":
            return self._refund_notice(sender, attempt, notice)
        if not notice.is_confirmed:
            with self.store.transaction():
                self.store.decline_card_attempt(attempt["sender_request_number"], iso(self.now))
                if not attempt["payment_request_number"]:
                    self.store.update_card_attempt(attempt["sender_request_number"], iso(self.now),
                                                   payment_request_number=notice.payment_request_number)
            return {"status": "declined", "sender_request_number": attempt["sender_request_number"]}
        return self._payment_notice(sender, attempt, notice)

    def _check_signature(self, form: dict[str, str]) -> None:
        """``Signature`` as configured (e-finance does not publish it; the simulator's default is the
        lowercase hex SHA-256 of the RequestObject text). Checked before anything is decrypted."""
        if self.client.signature == "none":
            return
        signature = form.get("Signature", "")
        if not signature:
            raise SilentCallRefused("BAD_SIGNATURE", "Signature is missing", field="Signature")
        if not hmac.compare_digest(signature.encode("utf-8", "replace"),  # exactly lowercase hex, as signed
                                   sha256_hex(form["RequestObject"]).encode("ascii")):
            raise SilentCallRefused("BAD_SIGNATURE", "Signature does not match the RequestObject", field="Signature")

    @staticmethod
    def _check_numbers(attempt: dict[str, Any], notice: Confirmation) -> None:
        if notice.sender_request_number != attempt["sender_request_number"]:
            raise SilentCallRefused("REQUEST_MISMATCH", "the encrypted SenderRequestNumber is not the form's",
                                    field="SenderRequestNumber")
        known = attempt["payment_request_number"]
        if known and notice.payment_request_number != known:
            raise SilentCallRefused("REQUEST_MISMATCH", f"PaymentRequestNumber is not {known}",
                                    field="PaymentRequestNumber")
        if notice.total_amount != attempt["amount"]:
            raise SilentCallRefused("AMOUNT_MISMATCH", f"PaymentRequestTotalAmount {format_amount(notice.total_amount)}"
                                    f" is not the order's {format_amount(attempt['amount'])}",
                                    field="PaymentRequestTotalAmount")
        if notice.authorized_amount != notice.total_amount + notice.collection_fee:
            raise SilentCallRefused("AMOUNT_MISMATCH", "CustomerAuthorizationAmount is not PaymentRequestTotalAmount"
                                    " + CollectionFeesAmount", field="CustomerAuthorizationAmount")

    def _gateway_status(self, sender: Sender, attempt: dict[str, Any], prn: str) -> RequestStatus:
        try:
            status = self.client.status(sender, attempt["sender_request_number"], prn)
        except (UpstreamUnavailable, UpstreamRejected) as exc:
            raise SilentCallRefused("STATUS_UNAVAILABLE", f"the status inquiry failed ({exc.message});"
                                    " nothing recorded, send it again") from None
        if status is None:
            raise SilentCallRefused("NOT_CONFIRMED_BY_GATEWAY", "the gateway does not know this request",
                                    field="SenderRequestNumber")
        return status

    @staticmethod
    def _disagreements(status: RequestStatus, notice: Confirmation) -> list[str]:
        problems = []
        if status.payment_request_number and status.payment_request_number != notice.payment_request_number:
            problems.append(f"PaymentRequestNumber is {status.payment_request_number}")
        if status.transaction_number != notice.transaction_number:
            problems.append(f"TransactionNumber is {status.transaction_number or '(none)'}")
        if status.total_amount != notice.total_amount:
            problems.append(f"PaymentRequestTotalAmount is {format_amount(status.total_amount)}")
        return problems

    def _payment_notice(self, sender: Sender, attempt: dict[str, Any], notice: Confirmation) -> dict[str, Any]:
        mechanism = notice.mechanism or attempt["mechanism"]
        channel = channel_of(mechanism)
        known = self.store.efinance_payment(notice.payment_request_number, notice.transaction_number)
        if known is not None:
            with self.store.transaction():
                self.store.fill_card_details(known["payment_id"], notice.mechanism, notice.institution)
            return {"status": "duplicate", "payment_id": known["payment_id"]}
        status = self._gateway_status(sender, attempt, notice.payment_request_number)
        problems = self._disagreements(status, notice)
        if not status.captured:
            problems.insert(0, f"Status is {status.status or '(none)'}")
        if problems:
            raise SilentCallRefused("NOT_CONFIRMED_BY_GATEWAY", "the status inquiry does not confirm the notice: "
                                    + ", ".join(problems), field="IsConfirmed")
        with self.store.transaction():
            payment = self._capture(attempt, notice, channel=channel, mechanism=mechanism)
            if payment is None:
                existing = self.store.efinance_payment(notice.payment_request_number, notice.transaction_number)
                return {"status": "duplicate", "payment_id": existing["payment_id"] if existing else None}
        return {"status": "excess" if payment["excess"] else "credited", "payment_id": payment["payment_id"]}

    def _capture(self, attempt: dict[str, Any], notice: Confirmation | RequestStatus, *, channel: str,
                 mechanism: str, refunded_amount: int = 0, refunded: bool = False) -> dict[str, Any] | None:
        """Credit an attempt (inside a transaction); None when its money is recorded already."""
        order = self.ledger.find_order(attempt["bill_reference"])
        institution = notice.institution if isinstance(notice, Confirmation) else ""
        reconciliation: date | None = notice.reconciliation_date
        payment = self.ledger.capture(
            order, channel=channel, external_id=notice.transaction_number, amount=attempt["amount"],
            paid_at=notice.authorized_at or self.now, business_date=reconciliation, refunded=refunded,
            receipt_number=new_id("RCPT"), auth_code=notice.authorization_code or None,
            sender_request_number=attempt["sender_request_number"],
            payment_request_number=notice.payment_request_number, mechanism=mechanism,
            institution=institution or None,
            reconciliation_date=reconciliation.isoformat() if reconciliation else None,
            refunded_amount=refunded_amount)
        if payment is not None:
            self.store.update_card_attempt(attempt["sender_request_number"], iso(self.now), status="APPROVED",
                                           payment_request_number=notice.payment_request_number)
        return payment

    # --- refund notices ---------------------------------------------------------------------------
    def _refund_notice(self, sender: Sender, attempt: dict[str, Any], notice: Confirmation) -> dict[str, Any]:
        """Record a refund once (by RefundNumber). A refund heard before its payment records both in
        one transaction: the money came and went, nothing is confirmed to citizen services."""
        if not notice.is_confirmed:
            raise SilentCallRefused("INVALID_FIELD", "a refund is of a confirmed payment", field="IsConfirmed")
        if notice.status not in ("REFUNDED", "PARTIAL_REFUNDED"):
            raise SilentCallRefused("INVALID_FIELD", f"Status {notice.status[:20]!r} is not a refund status",
                                    field="Status")
        if not 0 < notice.refund_amount <= notice.refunded_amount <= notice.total_amount:
            raise SilentCallRefused("AMOUNT_MISMATCH", "RefundAmount must be above zero and within RefundedAmount,"
                                    " itself within PaymentRequestTotalAmount", field="RefundAmount")
        if self.store.refund(notice.refund_number) is not None:
            return {"status": "duplicate", "refund_number": notice.refund_number}
        status = self._gateway_status(sender, attempt, notice.payment_request_number)
        problems = self._disagreements(status, notice)
        if status.status not in ("REFUNDED", "PARTIAL_REFUNDED"):
            problems.insert(0, f"Status is {status.status or '(none)'}")
        if status.refunded_amount < notice.refunded_amount:
            problems.append(f"RefundedAmount is {format_amount(status.refunded_amount)}")
        if problems:
            raise SilentCallRefused("NOT_CONFIRMED_BY_GATEWAY", "the status inquiry does not confirm the refund: "
                                    + ", ".join(problems), field="RefundNumber")
        now = self.now
        refunded_at = notice.refunded_at or now
        mechanism = notice.mechanism or attempt["mechanism"]
        with self.store.transaction():
            if self.store.refund(notice.refund_number) is not None:  # a twin notice got here first
                return {"status": "duplicate", "refund_number": notice.refund_number}
            order = self.ledger.find_order(attempt["bill_reference"])
            payment = self.store.efinance_payment(notice.payment_request_number, notice.transaction_number)
            before = sum(r["amount"] for r in self.store.refunds_of(payment["payment_id"])) if payment else 0
            if before + notice.refund_amount > status.refunded_amount:
                # The gateway's own total bounds what we record: a notice for a refund it never made
                # (forged, say: AES-CBC alone does not prove who wrote it) finds no room here.
                raise SilentCallRefused("NOT_CONFIRMED_BY_GATEWAY", "the status inquiry says "
                                        f"{format_amount(status.refunded_amount)} refunded in all; with this notice we"
                                        f" would record {format_amount(before + notice.refund_amount)}",
                                        field="RefundAmount")
            refunded_total = min(before + notice.refund_amount, attempt["amount"])
            full = refunded_total >= attempt["amount"]
            new = payment is None
            if new:
                payment = self._capture(attempt, notice, channel=channel_of(mechanism), mechanism=mechanism,
                                        refunded_amount=refunded_total, refunded=full)
                if payment is None:  # pragma: no cover - the look-up above ran under the same lock
                    raise SilentCallRefused("STATUS_UNAVAILABLE", "the payment changed meanwhile; send it again")
            business_date = self.ledger.reconciliation.business_date(refunded_at)
            self.store.insert_refund({
                "refund_number": notice.refund_number, "payment_id": payment["payment_id"],
                "refund_request_number": notice.refund_request_number or None, "amount": notice.refund_amount,
                "governorate_code": payment["governorate_code"], "refunded_at": iso(refunded_at),
                "business_date": business_date.isoformat(), "received_at": iso(now)})
            self.ledger.reconciliation.ensure_day(payment["governorate_code"], business_date)
            was = payment["status"]
            self.store.set_refunded(payment["payment_id"], refunded_total, "REFUNDED" if full else was, iso(now))
            if not new and full and was == "CAPTURED":
                self.ledger.after_reversal(payment, order, f"refunded by e-finance ({notice.refund_number})",
                                           closed_status="REFUNDED")
        return {"status": "refunded" if full else "partially_refunded", "refund_number": notice.refund_number,
                "payment_id": payment["payment_id"], "refunded_amount": format_amount(refunded_total)}

    # --- the browser's return -----------------------------------------------------------------------
    def on_return(self, sender_request_number: str) -> dict[str, Any]:
        """The order behind a return, after asking the gateway (the redirect's query is not believed).
        Credits through the same idempotent path as the silent call when the gateway says PAID; a
        gateway that cannot be asked leaves the order as it is (the silent call, or the status watch,
        will settle it)."""
        attempt = self.attempt(sender_request_number)
        if attempt["status"] != "APPROVED":
            try:
                self.check_with_gateway(attempt)
            except ApiError as exc:
                log.warning("return of %s: the gateway was not asked or did not confirm: %r",
                            sender_request_number, exc.message)
        return self.ledger.get_order(attempt["bill_reference"])

    def check_with_gateway(self, attempt: dict[str, Any]) -> RequestStatus | None:
        """Ask the status inquiry about one attempt and credit it when the gateway says it is paid
        with this attempt's amount (the same idempotent capture as the silent call). Returns the
        gateway's answer (None: it does not know the request); raises :class:`ApiError` when it cannot
        be asked or answers off contract."""
        sender = self.client.sender_by_id(attempt["sender_id"])
        if sender is None:
            return None
        status = self.client.status(sender, attempt["sender_request_number"], attempt["payment_request_number"] or "")
        if status is None or status.status != "PAID" or not status.transaction_number:
            return status
        known = attempt["payment_request_number"]
        if status.total_amount != attempt["amount"] or (known and status.payment_request_number != known):
            log.warning("status of %s does not match the attempt: nothing credited", attempt["sender_request_number"])
            return status
        # What paid: the gateway's word when it gives it, else what the attempt asked for (NotSet, when
        # the gateway does not say, is reported as card: the silent call, if it ever comes, says more).
        mechanism = status.mechanism or attempt["mechanism"]
        if self.store.efinance_payment(status.payment_request_number, status.transaction_number) is None:
            with self.store.transaction():
                self._capture(attempt, status, channel=channel_of(mechanism), mechanism=mechanism)
        return status
