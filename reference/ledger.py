"""Orders and payments: the business rules of the collection service, with no HTTP framework in sight.

What it owns: payment orders (a bill reference per service request) and payments from both
channels; the e-finance card flow lives in :mod:`reference.card_payments` and credits through
:meth:`Ledger.capture`. Rules it keeps:

- one open order per service request (P6: the amount comes from citizen services in real time);
- a payment is credited exactly once per channel transaction (UNIQUE(channel, external_id));
- money is never lost: a card payment for an order that is already paid is kept, flagged
  ``excess`` and reported for refund (the card was charged; the order stays PAID);
- every credited payment writes its confirmation to the outbox in the same transaction (P5);
- partial payments at Khales outlets follow ``reference.khales_partial_payments``: ``reject`` (the
  default: an amount other than the amount due is refused and changes nothing) or ``accept`` (each
  part is credited, the order stays UNPAID with the rest outstanding until the parts reach its
  amount, and only then is it PAID and confirmed, once, for the whole amount). An amount above
  what is outstanding is always refused.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from simulators.common.clock import iso, parse_duration
from simulators.common.egypt import luhn_check_digit
from simulators.common.errors import Conflict
from simulators.common.money import CURRENCY, format_amount, parse_amount
from simulators.common.wire import parse_instant_field

from .errors import (
    AlreadyPaid,
    AmountMismatch,
    BillExpired,
    BillRefunded,
    RequestNotPayable,
    TransactionReversed,
    UnknownBill,
    UpstreamRejected,
)
from .reconciliation import body_hash

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .outbox import Outbox
    from .reconciliation import Reconciliation
    from .store import Store
    from .upstream import Upstreams

FEE_LINE_FIELDS = ("code", "name_ar", "name_en", "revenue_pool", "budget_chapter", "budget_item",
                   "settlement_account")
PARTIAL_POLICIES = ("reject", "accept")  # reference.khales_partial_payments


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20].upper()}"


def new_bill_reference() -> str:
    """Eleven random digits (no leading zero) and a Luhn check digit: typos at an outlet are caught."""
    partial = str(1 + secrets.randbelow(9)) + f"{secrets.randbelow(10**10):010d}"
    return partial + str(luhn_check_digit(partial))


class Ledger:
    def __init__(self, component: Component, store: Store, outbox: Outbox, reconciliation: Reconciliation,
                 upstreams: Upstreams) -> None:
        self.component = component
        self.store = store
        self.outbox = outbox
        self.reconciliation = reconciliation
        self.upstreams = upstreams
        self.order_ttl = parse_duration(component.own.get("order_ttl", "72h"))
        if str(component.own.get("khales_partial_payments", "reject")) not in PARTIAL_POLICIES:
            raise ValueError(f"reference.khales_partial_payments is one of {', '.join(PARTIAL_POLICIES)}")
        # a test hook like the clock: a scenario may switch the rule (POST /_admin/settings); reset restores it
        component.tunable("khales_partial_payments", PARTIAL_POLICIES)

    @property
    def partial_payments(self) -> str:
        """``reference.khales_partial_payments`` as it is now (read per call: the admin plane may switch it)."""
        return str(self.component.own.get("khales_partial_payments", "reject"))

    @property
    def now(self) -> datetime:
        return self.component.clock.now()

    # --- orders -------------------------------------------------------------------------------
    def create_order(self, request_number: str) -> tuple[dict[str, Any], bool]:
        """The open order for a service request, created if needed; ``(order, created)``."""
        now = self.now
        with self.store.transaction():
            self.store.expire_orders_of_request(request_number, iso(now))
            existing = self.store.open_order_for_request(request_number)
        if existing is not None:
            return self.order_view(existing), False
        request = self.upstreams.service_request(request_number)
        if request["request_number"] != request_number:
            raise UpstreamRejected(f"citizen services answered for {request['request_number']}")
        if request["status"] in ("PAID", "IN_PROGRESS", "COMPLETED"):  # paid, then the office's work
            raise AlreadyPaid(f"service request {request_number} is already paid", field="request_number")
        if request["status"] == "CANCELLED":
            raise RequestNotPayable(f"service request {request_number} is cancelled", field="request_number")
        if request["status"] == "EXPIRED":
            raise RequestNotPayable(f"service request {request_number} expired unpaid", field="request_number",
                                    code="REQUEST_EXPIRED")
        amount = parse_amount(request["total"], "total")
        fee_lines = []
        for line in request["fee_lines"]:
            fee_lines.append({name: line[name] for name in FEE_LINE_FIELDS}
                             | {"amount": format_amount(parse_amount(line["amount"], "fee_lines.amount"))})
        if sum(parse_amount(line["amount"], "fee_lines.amount") for line in fee_lines) != amount:
            raise UpstreamRejected(f"the fee lines of {request_number} do not add up to its total")
        order = {"request_number": request_number, "amount": amount, "currency": CURRENCY,
                 "governorate_code": request["governorate_code"], "service_code": request["service_code"],
                 "payer_name": request["citizen"]["name"], "fee_lines": fee_lines,
                 "expires_at": iso(now + self.order_ttl), "created_at": iso(now)}
        for _ in range(50):  # a clash in 10^11 references is rare; the UNIQUE key decides, not a lookup
            bill_reference = new_bill_reference()
            with self.store.transaction():
                self.store.expire_orders_of_request(request_number, iso(now))
                if self.store.insert_order(dict(order, bill_reference=bill_reference)):
                    return self.order_view(self.store.order(bill_reference)), True  # type: ignore[arg-type]
                existing = self.store.open_order_for_request(request_number)
                if existing is not None:  # a concurrent call created it first
                    return self.order_view(existing), False
        raise Conflict("could not allocate a free bill reference; try again", code="NO_FREE_REFERENCE")

    def status_of(self, order: dict[str, Any]) -> str:
        """The order's status now: an unpaid order past ``expires_at`` is EXPIRED (lazily)."""
        if order["status"] == "UNPAID" and iso(self.now) >= order["expires_at"]:
            return "EXPIRED"
        return str(order["status"])

    def find_order(self, bill_reference: str, field: str = "bill_reference") -> dict[str, Any]:
        order = self.store.order(bill_reference)
        if order is None:
            raise UnknownBill(f"no order with bill reference {bill_reference}", field=field)
        return order

    def get_order(self, bill_reference: str) -> dict[str, Any]:
        return self.order_view(self.find_order(bill_reference))

    def order_view(self, order: dict[str, Any]) -> dict[str, Any]:
        """The ref-order.schema.json shape."""
        payments = self.store.payments_of(order["bill_reference"])
        # paid_amount is what settles the bill; money taken twice is shown apart, owed back to the citizen.
        captured = sum(p["amount"] for p in payments if p["status"] == "CAPTURED" and not p["excess"])
        excess = sum(p["amount"] for p in payments if p["status"] == "CAPTURED" and p["excess"])
        status = self.status_of(order)
        # What a citizen still owes: parts of a partial payment leave the rest outstanding (never PAID).
        outstanding = max(order["amount"] - captured, 0) if status in ("UNPAID", "EXPIRED") else 0
        confirmation = self._order_confirmation(order, payments)
        return {
            "bill_reference": order["bill_reference"], "request_number": order["request_number"],
            "status": status, "amount": format_amount(order["amount"]),
            "paid_amount": format_amount(captured), "excess_amount": format_amount(excess),
            "outstanding_amount": format_amount(outstanding),
            "currency": order["currency"],
            "governorate_code": order["governorate_code"], "service_code": order["service_code"],
            "payer_name": order["payer_name"], "fee_lines": order["fee_lines"],
            "expires_at": order["expires_at"], "created_at": order["created_at"], "paid_at": order["paid_at"],
            "payments": [self.payment_view(p, order["amount"], confirmation) for p in payments],
            "card_attempts": [self.attempt_view(a) for a in self.store.card_attempts_of(order["bill_reference"])],
        }

    @staticmethod
    def attempt_view(attempt: dict[str, Any]) -> dict[str, Any]:
        """A card attempt as the order shows it (never its key, IV or sealed fields)."""
        return {key: attempt[key] for key in ("sender_request_number", "payment_request_number", "status",
                                              "mechanism", "created_at", "updated_at")}

    def _order_confirmation(self, order: dict[str, Any], payments: list[dict[str, Any]]) -> str:
        """The state of the one confirmation of an order paid in parts, carried by the part that
        completed it; PENDING while the rest is outstanding (nothing is sent before), including
        after a part was reversed and its earlier confirmation cancelled."""
        for payment in payments:
            if payment["status"] == "CAPTURED" and not payment["excess"] and payment["amount"] < order["amount"] \
                    and self.store.outbox_row("confirmation", payment["payment_id"]) is not None:
                state = self.outbox.confirmation_state(payment["payment_id"], False)
                if state != "CANCELLED":
                    return state
        return "PENDING"

    def payment_view(self, payment: dict[str, Any], order_amount: int | None = None,
                     order_confirmation: str | None = None) -> dict[str, Any]:
        # A part of a partial payment (less than its order's amount, not excess) is confirmed with
        # the order, once, by the part that completes it: each part shows that one confirmation.
        part = order_amount is not None and not payment["excess"] and payment["amount"] < order_amount
        if part and payment["status"] == "CAPTURED" and order_confirmation is not None:
            confirmation = order_confirmation
        elif part:  # a part undone: nothing to confirm for it (or the cancellation of what it carried)
            confirmation = self.outbox.confirmation_state(payment["payment_id"], True)
        else:
            # an excess payment is refunded, not confirmed; one refunded before we heard of it neither
            confirmation = self.outbox.confirmation_state(payment["payment_id"],
                                                          bool(payment["excess"]) or payment["status"] == "REFUNDED")
        view = {
            "payment_id": payment["payment_id"], "channel": payment["channel"],
            "amount": format_amount(payment["amount"]), "status": payment["status"],
            "external_id": payment["external_id"], "paid_at": payment["paid_at"],
            "business_date": payment["business_date"],
            "confirmation": confirmation,
            "excess": bool(payment["excess"]),
        }
        if part:
            view["partial"] = True
        if payment["excess"]:
            view["excess_reason"] = payment["excess_reason"]
        for name in ("receipt_number", "outlet_id", "auth_code", "sender_request_number", "payment_request_number",
                     "mechanism", "institution", "reconciliation_date", "reversed_at"):
            if payment[name]:
                view[name] = payment[name]
        if payment["refunded_amount"]:
            view["refunded_amount"] = format_amount(payment["refunded_amount"])
            view["refunds"] = [{"refund_number": r["refund_number"], "amount": format_amount(r["amount"]),
                                "refunded_at": r["refunded_at"], "business_date": r["business_date"]}
                               for r in self.store.refunds_of(payment["payment_id"])]
        return view

    def held(self, order: dict[str, Any]) -> int:
        """Piasters captured for the order that count towards its amount (excess payments do not)."""
        return sum(p["amount"] for p in self.store.payments_of(order["bill_reference"])
                   if p["status"] == "CAPTURED" and not p["excess"])

    def payable(self, order: dict[str, Any], *, parts_allowed: bool = False) -> None:
        """Raise the 409 that says why ``order`` cannot be paid now (paid, expired, cancelled, refunded).

        An order partly paid in cash can only be completed at a Khales outlet (``parts_allowed``):
        a card payment is always for the whole amount and would pay it twice (409 ``PARTIALLY_PAID``).
        """
        status = self.status_of(order)
        if status == "PAID":
            raise AlreadyPaid(f"bill {order['bill_reference']} is already paid", field="bill_reference")
        if status == "EXPIRED":
            raise BillExpired(f"bill {order['bill_reference']} expired at {order['expires_at']}",
                              field="bill_reference")
        if status == "CANCELLED":
            raise Conflict(f"bill {order['bill_reference']} is cancelled", field="bill_reference",
                           code="BILL_CANCELLED")
        if status == "REFUNDED":
            raise BillRefunded(f"bill {order['bill_reference']} was paid and refunded; open a new order",
                               field="bill_reference")
        if not parts_allowed:
            held = self.held(order)
            if held:
                raise Conflict(f"bill {order['bill_reference']} is partly paid ({format_amount(held)} of "
                               f"{format_amount(order['amount'])}): pay the {format_amount(order['amount'] - held)}"
                               " outstanding at a Khales outlet", field="bill_reference", code="PARTIALLY_PAID")

    # --- crediting (inside a transaction) -----------------------------------------------------
    def capture(self, order: dict[str, Any], *, channel: str, external_id: str, amount: int,
                paid_at: datetime, business_date: date | None = None, refunded: bool = False,
                **extra: Any) -> dict[str, Any] | None:
        """Credit one channel transaction; ``None`` when it was already credited. Call it inside a
        transaction with a fresh ``order``.

        ``refunded``: the money came in and went back before we heard of it (an e-finance refund
        notice ahead of its payment notice): the payment is recorded REFUNDED at once, with no
        confirmation to citizen services and no claim on the order.

        Partial payments (a Khales part, less than what is outstanding) leave the order UNPAID and
        confirm nothing; the part that brings the captured parts to the order's amount makes it PAID
        and queues the one confirmation, for the whole amount. A payment that would take the order
        past its amount (a card payment on a partly paid order) is kept as excess, refund due.
        """
        now = self.now
        business_date = business_date or self.reconciliation.business_date(paid_at)
        status = self.status_of(order)  # past expires_at counts as expired even before anyone marked it
        excess_reason = None
        held = self.held(order) if status == "UNPAID" else 0
        if status == "PAID":
            excess_reason = "the order was already paid by another payment: refund due"
        elif status in ("EXPIRED", "CANCELLED", "REFUNDED"):
            excess_reason = f"the order is {status.lower()}: refund due"
        elif held + amount > order["amount"]:
            excess_reason = (f"the order is partly paid ({format_amount(held)} of {format_amount(order['amount'])}):"
                             f" this payment is more than the {format_amount(order['amount'] - held)} outstanding:"
                             " refund due")
        if refunded:
            excess_reason = None  # nothing is owed back: it went back already
        payment = dict(extra, payment_id=new_id("PAY"), bill_reference=order["bill_reference"], channel=channel,
                       external_id=external_id, amount=amount, status="REFUNDED" if refunded else "CAPTURED",
                       excess=1 if excess_reason else 0, excess_reason=excess_reason,
                       governorate_code=order["governorate_code"], service_code=order["service_code"],
                       paid_at=iso(paid_at), business_date=business_date.isoformat(), received_at=iso(now))
        if not self.store.insert_payment(payment):
            return None
        self.reconciliation.ensure_day(order["governorate_code"], business_date)
        if refunded:
            if status == "UNPAID" and not held:
                self.store.set_order_status(order["bill_reference"], "REFUNDED", None)
        elif excess_reason:
            self.store.open_exception({
                "exception_key": f"EXCESS_PAYMENT:{payment['payment_id']}", "kind": "EXCESS_PAYMENT",
                "governorate_code": order["governorate_code"], "business_date": business_date.isoformat(),
                "bill_reference": order["bill_reference"], "payment_id": payment["payment_id"],
                "amount": amount, "detail": f"{channel} payment {external_id}: {excess_reason}",
                "opened_at": iso(now)})
        elif held + amount == order["amount"]:
            self.store.set_order_status(order["bill_reference"], "PAID", iso(paid_at))
            # One confirmation per order: for the whole amount, carried by the payment that completes it.
            self.outbox.enqueue_confirmation(dict(payment, amount=order["amount"]), order, now)
        return payment

    def after_reversal(self, payment: dict[str, Any], order: dict[str, Any], reason: str,
                       closed_status: str = "UNPAID") -> None:
        """A payment was undone (Khales reversal, or a whole card refund): drop or cancel its
        confirmation, and let another payment held for the order pay it; with none the order becomes
        ``closed_status`` (UNPAID after a reversal: never paid; REFUNDED after a refund: closed)."""
        now = self.now
        if payment["excess"]:
            self.store.resolve_exception(f"EXCESS_PAYMENT:{payment['payment_id']}", iso(now),
                                         f"reversed: {reason}")
            return
        self.outbox.withdraw_confirmation(payment, order, reason, now)
        others = [p for p in self.store.payments_of(order["bill_reference"])
                  if p["status"] == "CAPTURED" and p["payment_id"] != payment["payment_id"]]
        parts = [p for p in others if not p["excess"]]
        if parts:
            # A part of a partial payment was undone: the order is no longer paid in full. The one
            # confirmation (carried by whichever part completed it) is withdrawn; the other parts
            # stay held and the rest is outstanding again.
            for part in parts:
                self.outbox.withdraw_confirmation(part, order, reason, now)
            self.store.set_order_status(order["bill_reference"], "UNPAID", None)
            return
        if not others:
            self.store.set_order_status(order["bill_reference"], closed_status, None)
            return
        # Another payment already holds the money for this order: it now pays it instead of a refund.
        promoted = others[0]
        self.store.clear_excess(promoted["payment_id"])
        self.store.resolve_exception(f"EXCESS_PAYMENT:{promoted['payment_id']}", iso(now),
                                     f"now pays the order: {payment['payment_id']} was reversed")
        self.store.set_order_status(order["bill_reference"], "PAID", promoted["paid_at"])
        self.outbox.enqueue_confirmation(promoted, order, now)

    # --- Khales biller ------------------------------------------------------------------------
    def khales_inquiry(self, body: dict[str, Any]) -> dict[str, Any]:
        """The bill as an outlet sees it: ``amount_due`` is what is outstanding now (the whole amount
        unless parts were paid), ``bill_amount`` / ``paid_amount`` / ``outstanding_amount`` say why."""
        order = self.find_order(body["bill_reference"])
        status = self.status_of(order)
        held = self.held(order)
        due = 0 if status in ("PAID", "REFUNDED") else max(order["amount"] - held, 0)
        if status == "REFUNDED":
            status = "CANCELLED"  # the inquiry contract has no REFUNDED: to an outlet the bill is closed
        elif status == "UNPAID" and held:
            status = "PARTIALLY_PAID"  # still payable: the rest is outstanding
        return {
            "inquiry_id": body["inquiry_id"], "bill_reference": order["bill_reference"], "status": status,
            "amount_due": format_amount(due), "collection_fee": "0.00", "total_due": format_amount(due),
            "currency": order["currency"], "payer_name": order["payer_name"], "expires_at": order["expires_at"],
            "governorate_code": order["governorate_code"], "service_code": order["service_code"],
            "fee_lines": [{"code": line["code"], "name_ar": line["name_ar"], "amount": line["amount"]}
                          for line in order["fee_lines"]],
            "bill_amount": format_amount(order["amount"]), "paid_amount": format_amount(held),
            "outstanding_amount": format_amount(due), "partial_payments": self.partial_payments,
        }

    def khales_payment(self, body: dict[str, Any]) -> dict[str, Any]:
        """Cash taken at an outlet; idempotent by ``khales_transaction_id``."""
        key = body["khales_transaction_id"]
        fingerprint = body_hash(body)
        amount = parse_amount(body["amount"], "amount")
        paid_at = parse_instant_field(body["paid_at"], "paid_at")
        with self.store.transaction():
            prior = self.store.idempotent_answer("khales_payment", key)
            if prior is not None:
                if prior["request_hash"] != fingerprint:
                    raise Conflict(f"transaction {key} was already posted with another body",
                                   field="khales_transaction_id")
                payment = self.store.payment_by_external("cash", key)
                if payment is not None and payment["status"] == "REVERSED":
                    # The replayed answer would hand out a receipt for money that was given back.
                    raise TransactionReversed(f"transaction {key} was accepted, then reversed",
                                              field="khales_transaction_id")
                return dict(prior["response"])
            if self.store.idempotent_answer("khales_reversed_unknown", key) is not None:
                raise TransactionReversed(f"transaction {key} was reversed before it arrived",
                                          field="khales_transaction_id")
            order = self.find_order(body["bill_reference"])
            self.payable(order, parts_allowed=True)
            held = self.held(order)
            outstanding = order["amount"] - held
            self._check_khales_amount(amount, body["amount"], outstanding)
            payment = self.capture(order, channel="cash", external_id=key, amount=amount, paid_at=paid_at,
                                    outlet_id=body["outlet_id"], receipt_number=new_id("RCPT"))
            if payment is None:
                raise Conflict(f"transaction {key} is already credited", field="khales_transaction_id")
            response = {"khales_transaction_id": key, "payment_id": payment["payment_id"],
                        "bill_reference": order["bill_reference"], "status": "ACCEPTED",
                        "amount": format_amount(amount), "currency": CURRENCY,
                        "receipt_number": payment["receipt_number"],
                        "bill_status": "PAID" if amount == outstanding else "PARTIALLY_PAID",
                        "bill_amount": format_amount(order["amount"]), "paid_amount": format_amount(held + amount),
                        "outstanding_amount": format_amount(outstanding - amount)}
            self.store.save_answer("khales_payment", key, fingerprint, 200, response, iso(self.now))
        return response

    def _check_khales_amount(self, amount: int, text: str, outstanding: int) -> None:
        """The amount an outlet took against what is outstanding, by ``reference.khales_partial_payments``."""
        if amount == outstanding:
            return
        if self.partial_payments == "reject":
            raise AmountMismatch(f"amount {text} is not the amount due {format_amount(outstanding)}"
                                 " (partial payments are not accepted)", field="amount")
        if amount > outstanding:
            raise AmountMismatch(f"amount {text} is more than the {format_amount(outstanding)} outstanding",
                                 field="amount", code="AMOUNT_EXCEEDS_DUE")

    def khales_reversal(self, body: dict[str, Any]) -> dict[str, Any]:
        """Khales never learned a payment's outcome: undo it, and withdraw its confirmation."""
        key = body["reversal_id"]
        fingerprint = body_hash(body)
        txn = body["khales_transaction_id"]
        now = iso(self.now)
        with self.store.transaction():
            prior = self.store.idempotent_answer("khales_reversal", key)
            if prior is not None:
                if prior["request_hash"] != fingerprint:
                    raise Conflict(f"reversal {key} was already posted with another body", field="reversal_id")
                return dict(prior["response"])
            payment = self.store.payment_by_external("cash", txn)
            response: dict[str, Any] = {"reversal_id": key, "khales_transaction_id": txn}
            if payment is None:
                # Remember it: a delayed payment with this id must not be credited after its reversal.
                self.store.save_answer("khales_reversed_unknown", txn, fingerprint, 200, {"reversal_id": key}, now)
                response["status"] = "NOT_FOUND"
            else:
                if payment["bill_reference"] != body["bill_reference"]:
                    raise Conflict(f"transaction {txn} paid bill {payment['bill_reference']}, not"
                                   f" {body['bill_reference']}", field="bill_reference", code="REFERENCE_MISMATCH")
                if self.store.reverse_payment(payment["payment_id"], key, now):
                    # the day no longer expects this money: a day reconciled already is run again
                    self.reconciliation.touch(payment["governorate_code"], payment["business_date"])
                    order = self.find_order(payment["bill_reference"])
                    self.after_reversal(payment, order, body.get("reason") or "reversed by Khales")
                response.update(status="REVERSED", payment_id=payment["payment_id"])
            self.store.save_answer("khales_reversal", key, fingerprint, 200, response, now)
        return response
