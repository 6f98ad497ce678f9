"""e-finance's side of a Channel payment: the cash network pays a PaymentRequestNumber at an outlet.

docs/domain-facts.md says only that with mechanism ``Channel`` "the gateway returns a payment
reference that the citizen pays at a Khales outlet". How the cash network asks e-finance is not
public; this desk is ASSUMED, shaped like the biller conversation Khales already has (inquiry,
payment idempotent by the outlet's transaction id, reversal of an unknown outcome), in JSON signed
with the ``efinance_channel`` secret (``channel_views.py``):

- **inquiry**: what is due on a request (settlement lines' sum + collection fee), its status and expiry;
- **payment**: pays the request through the model's one completion path (status PAID, the silent call
  with ``AuthorizingMechanism`` ``Channel``, settlement lines with ``channel`` ``cash``); the same
  ``khales_transaction_id`` with the same body answers the same, with another body 409;
- **reversal**: idempotent by ``reversal_id``; a paid request is fully refunded through the gateway's
  refund path (the reversal lines to settlement and the refund notice are that path's), an unknown
  transaction answers ``NOT_FOUND``, and a payment that comes after its reversal is refused.

No Flask here; one lock, taken before the model's and the gateway's (never inside them).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulators.common.clock import iso
from simulators.common.egypt import GOVERNORATES
from simulators.common.money import CURRENCY, format_amount, parse_amount

from .efinance_messages import Rejection
from .errors import (
    AmountMismatch,
    ChannelAlreadyPaid,
    ChannelNotOffered,
    ChannelRequestCancelled,
    ChannelRequestExpired,
    ChannelReversalMismatch,
    PaymentRequestNotFound,
    RequestIdConflict,
    SessionAlreadyPaid,
    SessionCancelled,
    SessionExpired,
    TransactionReversed,
)
from .models import APPROVED, CANCELLED, EXPIRED

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .efinance_model import EfinanceGateway, EfinanceRequest
    from .models import CardGatewayModel, Session

SECRET = "efinance_channel"
PAID, UNPAID, REFUNDED = "PAID", "UNPAID", "REFUNDED"


@dataclass
class ChannelPayment:
    """One accepted cash payment, kept by the outlet's transaction id for replays and reversals."""

    khales_transaction_id: str
    payment_request_number: str
    fingerprint: str  # the payment body, canonical: a replay must be the same body
    answer: dict[str, Any]
    reversal: dict[str, Any] | None = None  # the reversal's answer once reversed


class ChannelDesk:
    """The cash network's desk at e-finance: payments by Khales transaction id, reversals by id."""

    def __init__(self, component: Component, model: CardGatewayModel, gateway: EfinanceGateway) -> None:
        self.component = component
        self.model = model
        self.gateway = gateway
        self._lock = threading.RLock()
        self._payments: dict[str, ChannelPayment] = {}
        self._reversals: dict[str, tuple[str, dict[str, Any]]] = {}  # reversal_id -> (fingerprint, answer)
        self._voided: set[str] = set()  # khales transaction ids a reversal reached before any payment

    def reset(self) -> None:
        with self._lock:
            self._payments.clear()
            self._reversals.clear()
            self._voided.clear()

    # --- lookups ------------------------------------------------------------------------------------
    def _request(self, number: str) -> tuple[EfinanceRequest, Session]:
        record = self.gateway.by_payment_request_number(number)
        if record is None:
            raise PaymentRequestNotFound(f"no payment request {number}", field="payment_request_number")
        session = self.model.get_session(record.session_id)
        if not session.channel_offered:
            raise ChannelNotOffered(f"payment request {number} is not payable at an outlet: its mechanism is "
                                    f"{session.mechanism}", field="payment_request_number")
        return record, session

    def _status(self, record: EfinanceRequest, session: Session) -> str:
        """UNPAID, PAID, REFUNDED (all of it refunded), EXPIRED or CANCELLED, at the gateway's now."""
        status = self.model.session_dict(session)["status"]
        if status == APPROVED:
            refunded = sum(refund.amount for refund in record.refunds)
            return REFUNDED if refunded >= session.amount else PAID
        if status in (EXPIRED, CANCELLED):
            return status
        return UNPAID  # OPEN, or DECLINED (another attempt failed): still payable

    # --- the operations -----------------------------------------------------------------------------
    def inquiry(self, body: dict[str, Any]) -> dict[str, Any]:
        """What is due on a PaymentRequestNumber (``cg-channel-inquiry-result``). A request that is
        not payable in cash is refused (409); a paid, expired or cancelled one answers its status."""
        record, session = self._request(body["payment_request_number"])
        gov = GOVERNORATES.get(session.governorate_code)
        sender = self.gateway.senders.get(record.sender_id)
        answer: dict[str, Any] = {
            "inquiry_id": body["inquiry_id"],
            "payment_request_number": record.payment_request_number,
            "status": self._status(record, session),
            "amount_due": format_amount(session.amount),
            "collection_fee": format_amount(session.collection_fee),
            "total_due": format_amount(session.total),
            "currency": CURRENCY,
            "expires_at": iso(session.expires_at),
            "governorate_code": session.governorate_code,
            "governorate_name_ar": gov[1] if gov else "",
            "governorate_name_en": gov[0] if gov else "",
            "sender_id": record.sender_id,
            "sender_name": sender.name if sender is not None else "",
            "sender_request_number": record.sender_request_number,
        }
        if session.description:
            answer["description"] = session.description
        return answer

    def pay(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Take the cash for a request (``created`` False for a replay). Every check runs before
        anything changes: 409 idempotency conflict, 409 reversed transaction, 404 unknown request,
        409 not payable in cash, 409 paid, 410 expired / cancelled, 422 not the total due."""
        tx_id = body["khales_transaction_id"]
        fingerprint = json.dumps(body, sort_keys=True, ensure_ascii=False)
        amount = parse_amount(body["amount"], "amount")
        with self._lock:
            known = self._payments.get(tx_id)
            if known is not None:
                if known.fingerprint != fingerprint:
                    raise RequestIdConflict(f"khales_transaction_id {tx_id} was already used for another payment",
                                            field="khales_transaction_id")
                if known.reversal is not None:
                    raise TransactionReversed(f"Khales transaction {tx_id} was reversed", field="khales_transaction_id")
                return dict(known.answer), False
            if tx_id in self._voided:
                raise TransactionReversed(f"Khales transaction {tx_id} was reversed before it reached e-finance",
                                          field="khales_transaction_id")
            record, session = self._request(body["payment_request_number"])
            status = self._status(record, session)
            if status in (PAID, REFUNDED):
                raise ChannelAlreadyPaid(f"payment request {record.payment_request_number} is already paid",
                                         field="payment_request_number")
            if status == EXPIRED:
                raise ChannelRequestExpired(f"payment request {record.payment_request_number} expired at "
                                            f"{iso(session.expires_at)}", field="payment_request_number")
            if status == CANCELLED:
                raise ChannelRequestCancelled(f"payment request {record.payment_request_number} was cancelled by "
                                              "its sender", field="payment_request_number")
            if amount != session.total:
                raise AmountMismatch(f"amount {format_amount(amount)} is not the total due "
                                     f"{format_amount(session.total)}", field="amount")
            try:
                session = self.model.pay_channel(session.session_id, {
                    "khales_transaction_id": tx_id, "outlet_id": body["outlet_id"]})
            except SessionAlreadyPaid as exc:  # a card got there first, between the checks and now
                raise ChannelAlreadyPaid(exc.message, field="payment_request_number") from None
            except SessionExpired as exc:
                raise ChannelRequestExpired(exc.message, field="payment_request_number") from None
            except SessionCancelled as exc:
                raise ChannelRequestCancelled(exc.message, field="payment_request_number") from None
            answer = {
                "khales_transaction_id": tx_id,
                "payment_id": session.transaction_id,
                "payment_request_number": record.payment_request_number,
                "status": "ACCEPTED",
                "amount": format_amount(amount),
                "currency": CURRENCY,
                "transaction_number": session.transaction_id,
                "authorization_code": session.auth_code,
                "receipt_number": session.transaction_id,
                "paid_at": iso(session.approved_at or self.component.clock.now()),
            }
            self._payments[tx_id] = ChannelPayment(tx_id, record.payment_request_number, fingerprint, answer)
            return dict(answer), True

    def reverse(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Undo a cash payment whose outcome the outlet never learned: the request is refunded in full
        through the gateway's refund path (refund id ``CH-<TransactionNumber>``, so a second reversal
        of the same payment refunds nothing more). Unknown transaction → ``NOT_FOUND`` (and a payment
        arriving later under that id is refused). Same ``reversal_id`` + same body → same answer."""
        reversal_id, tx_id = body["reversal_id"], body["khales_transaction_id"]
        fingerprint = json.dumps(body, sort_keys=True, ensure_ascii=False)
        with self._lock:
            known = self._reversals.get(reversal_id)
            if known is not None:
                if known[0] != fingerprint:
                    raise RequestIdConflict(f"reversal_id {reversal_id} was already used for another reversal",
                                            field="reversal_id")
                return dict(known[1]), False
            payment = self._payments.get(tx_id)
            named = body.get("payment_request_number")
            if payment is not None and named and named != payment.payment_request_number:
                raise ChannelReversalMismatch(f"transaction {tx_id} paid request {payment.payment_request_number},"
                                              f" not {named}", field="payment_request_number")
            if payment is None:
                self._voided.add(tx_id)
                answer = {"reversal_id": reversal_id, "khales_transaction_id": tx_id, "status": "NOT_FOUND"}
            elif payment.reversal is not None:
                answer = dict(payment.reversal, reversal_id=reversal_id)
            else:
                # The gateway's refund path: reversal lines to settlement, refund notice to the sender.
                try:
                    fields, _ = self.gateway.back_office_refund(payment.payment_request_number, None,
                                                                f"CH-{payment.answer['transaction_number']}")
                except Rejection as exc:
                    if exc.name != "REFUND_EXCEEDS_PAYMENT":
                        raise
                    fields = []  # the sender had refunded all of it already: nothing is left to give back
                refund = dict(fields)
                answer = {"reversal_id": reversal_id, "khales_transaction_id": tx_id, "status": "REVERSED",
                          "payment_request_number": payment.payment_request_number,
                          "refund_number": refund.get("RefundNumber", ""),
                          "refunded_amount": refund.get("RefundAmount", format_amount(0))}
                payment.reversal = answer
            self._reversals[reversal_id] = (fingerprint, answer)
            return dict(answer), True

    # --- inspection (the test bench's, unauthenticated like the admin plane) ---------------------------
    def payment_log(self, khales_transaction_id: str) -> dict[str, Any]:
        with self._lock:
            payment = self._payments.get(khales_transaction_id)
            if payment is None:
                raise PaymentRequestNotFound(f"no cash payment under Khales transaction {khales_transaction_id}",
                                             field="khales_transaction_id", code="CHANNEL_PAYMENT_NOT_FOUND")
            return {"khales_transaction_id": khales_transaction_id,
                    "payment_request_number": payment.payment_request_number,
                    "answer": dict(payment.answer), "reversal": dict(payment.reversal) if payment.reversal else None}
