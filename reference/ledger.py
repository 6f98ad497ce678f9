"""Orders and payments: the business rules of the collection service, with no HTTP framework in sight.

What it owns: payment orders (a bill reference per service request), card payment attempts, and
payments from both channels. Rules it keeps:

- one open order per service request (P6: the amount comes from citizen services in real time);
- a payment is credited exactly once per channel transaction (UNIQUE(channel, external_id));
- money is never lost: a card payment for an order that is already paid is kept, flagged
  ``excess`` and reported for refund (the card was charged; the order stays PAID);
- every credited payment writes its confirmation to the outbox in the same transaction (P5);
- no partial payments: an amount other than the amount due is refused and changes nothing.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from simulators.common.clock import iso, parse_duration
from simulators.common.egypt import luhn_check_digit
from simulators.common.errors import ApiError, Conflict, ValidationFailed
from simulators.common.money import CURRENCY, format_amount, parse_amount
from simulators.common.wire import parse_instant_field

from .errors import (
    AlreadyPaid,
    AmountMismatch,
    BillExpired,
    PaymentNotConfirmed,
    RequestNotPayable,
    TransactionReversed,
    UnknownBill,
    UnknownSession,
    UpstreamRejected,
    UpstreamUnavailable,
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
        if request["status"] == "PAID":
            raise AlreadyPaid(f"service request {request_number} is already paid", field="request_number")
        if request["status"] == "CANCELLED":
            raise RequestNotPayable(f"service request {request_number} is cancelled", field="request_number")
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
        return {
            "bill_reference": order["bill_reference"], "request_number": order["request_number"],
            "status": self.status_of(order), "amount": format_amount(order["amount"]),
            "paid_amount": format_amount(captured), "excess_amount": format_amount(excess),
            "currency": order["currency"],
            "governorate_code": order["governorate_code"], "service_code": order["service_code"],
            "payer_name": order["payer_name"], "fee_lines": order["fee_lines"],
            "expires_at": order["expires_at"], "created_at": order["created_at"], "paid_at": order["paid_at"],
            "payments": [self.payment_view(p) for p in payments],
        }

    def payment_view(self, payment: dict[str, Any]) -> dict[str, Any]:
        view = {
            "payment_id": payment["payment_id"], "channel": payment["channel"],
            "amount": format_amount(payment["amount"]), "status": payment["status"],
            "external_id": payment["external_id"], "paid_at": payment["paid_at"],
            "business_date": payment["business_date"],
            "confirmation": self.outbox.confirmation_state(payment["payment_id"], bool(payment["excess"])),
            "excess": bool(payment["excess"]),
        }
        if payment["excess"]:
            view["excess_reason"] = payment["excess_reason"]
        for name in ("receipt_number", "outlet_id", "card_bin", "card_last4", "reversed_at"):
            if payment[name]:
                view[name] = payment[name]
        return view

    def _payable(self, order: dict[str, Any]) -> None:
        status = self.status_of(order)
        if status == "PAID":
            raise AlreadyPaid(f"bill {order['bill_reference']} is already paid", field="bill_reference")
        if status == "EXPIRED":
            raise BillExpired(f"bill {order['bill_reference']} expired at {order['expires_at']}",
                              field="bill_reference")
        if status == "CANCELLED":
            raise Conflict(f"bill {order['bill_reference']} is cancelled", field="bill_reference",
                           code="BILL_CANCELLED")

    # --- crediting (inside a transaction) -----------------------------------------------------
    def _capture(self, order: dict[str, Any], *, channel: str, external_id: str, amount: int,
                 paid_at: datetime, **extra: Any) -> dict[str, Any] | None:
        """Credit one channel transaction; ``None`` when it was already credited."""
        now = self.now
        business_date = self.reconciliation.business_date(paid_at)
        excess_reason = None
        if order["status"] == "PAID":
            excess_reason = "the order was already paid by another payment: refund due"
        elif order["status"] in ("EXPIRED", "CANCELLED"):
            excess_reason = f"the order is {order['status'].lower()}: refund due"
        payment = dict(extra, payment_id=new_id("PAY"), bill_reference=order["bill_reference"], channel=channel,
                       external_id=external_id, amount=amount, status="CAPTURED",
                       excess=1 if excess_reason else 0, excess_reason=excess_reason,
                       governorate_code=order["governorate_code"], service_code=order["service_code"],
                       paid_at=iso(paid_at), business_date=business_date.isoformat(), received_at=iso(now))
        if not self.store.insert_payment(payment):
            return None
        self.reconciliation.ensure_day(order["governorate_code"], business_date)
        if excess_reason:
            self.store.open_exception({
                "exception_key": f"EXCESS_PAYMENT:{payment['payment_id']}", "kind": "EXCESS_PAYMENT",
                "governorate_code": order["governorate_code"], "business_date": business_date.isoformat(),
                "bill_reference": order["bill_reference"], "payment_id": payment["payment_id"],
                "amount": amount, "detail": f"{channel} payment {external_id}: {excess_reason}",
                "opened_at": iso(now)})
        else:
            self.store.set_order_status(order["bill_reference"], "PAID", iso(paid_at))
            self.outbox.enqueue_confirmation(payment, order, now)
        return payment

    def _after_reversal(self, payment: dict[str, Any], order: dict[str, Any], reason: str) -> None:
        now = self.now
        if payment["excess"]:
            self.store.resolve_exception(f"EXCESS_PAYMENT:{payment['payment_id']}", iso(now),
                                         f"reversed: {reason}")
            return
        self.outbox.withdraw_confirmation(payment, order, reason, now)
        others = [p for p in self.store.payments_of(order["bill_reference"])
                  if p["status"] == "CAPTURED" and p["payment_id"] != payment["payment_id"]]
        if not others:
            self.store.set_order_status(order["bill_reference"], "UNPAID", None)
            return
        # Another payment already holds the money for this order: it now pays it instead of a refund.
        promoted = others[0]
        self.store.clear_excess(promoted["payment_id"])
        self.store.resolve_exception(f"EXCESS_PAYMENT:{promoted['payment_id']}", iso(now),
                                     f"now pays the order: {payment['payment_id']} was reversed")
        self.store.set_order_status(order["bill_reference"], "PAID", promoted["paid_at"])
        self.outbox.enqueue_confirmation(promoted, order, now)

    # --- card ---------------------------------------------------------------------------------
    def open_card_payment(self, bill_reference: str, body: dict[str, Any]) -> dict[str, Any]:
        order = self.find_order(bill_reference)
        self._payable(order)
        now = self.now
        merchant_request_id = new_id("MR")
        return_url = body.get("return_url") or f"{self.component.url_of('reference')}/payments/return"
        with self.store.transaction():
            self.store.insert_card_attempt({"merchant_request_id": merchant_request_id,
                                            "bill_reference": bill_reference, "return_url": return_url,
                                            "language": body.get("language"), "created_at": iso(now)})
        request = {
            "merchant_request_id": merchant_request_id, "merchant_reference": bill_reference,
            "amount": format_amount(order["amount"]), "currency": CURRENCY,
            "description": f"{order['service_code']} {order['request_number']}"[:200],
            "return_url": return_url,
            "webhook_url": f"{self.component.url_of('reference')}/webhooks/card-gateway",
            "governorate_code": order["governorate_code"], "service_code": order["service_code"],
            "expires_at": order["expires_at"],  # the card session must not outlive the bill
            "fee_lines": [{"code": line["code"], "name_ar": line["name_ar"], "name_en": line["name_en"],
                           "amount": line["amount"], "settlement_account": line["settlement_account"]}
                          for line in order["fee_lines"]],
        }
        if body.get("language"):
            request["language"] = body["language"]
        try:
            session = self.upstreams.open_session(request)
        except (UpstreamUnavailable, UpstreamRejected):
            with self.store.transaction():
                self.store.update_card_attempt(merchant_request_id, iso(self.now), status="FAILED")
            raise
        with self.store.transaction():
            self.store.update_card_attempt(merchant_request_id, iso(self.now), status="OPEN",
                                           session_id=str(session["session_id"]),
                                           payment_url=str(session["payment_url"]))
        return {"bill_reference": bill_reference, "session_id": session["session_id"],
                "payment_url": session["payment_url"], "merchant_request_id": merchant_request_id,
                "amount": format_amount(order["amount"]), "currency": CURRENCY,
                "expires_at": session.get("expires_at")}

    def card_webhook(self, event: dict[str, Any]) -> dict[str, Any]:
        """A signed gateway webhook: check it against what we opened and the gateway itself, credit once."""
        now = self.now
        seen = self.store.webhook_event(event["event_id"])
        if seen is not None:
            return {"status": "duplicate", "event_id": event["event_id"], "payment_id": seen["payment_id"]}
        attempt = self.store.card_attempt(event["merchant_request_id"])
        if attempt is None or attempt["session_id"] != event["session_id"]:
            raise UnknownSession(f"session {event['session_id']} was not opened by this service",
                                 field="session_id")
        order = self.find_order(event["merchant_reference"], field="merchant_reference")
        if attempt["bill_reference"] != order["bill_reference"]:
            raise ApiError(f"session {event['session_id']} was opened for another bill",
                           field="merchant_reference", code="REFERENCE_MISMATCH", status=422)
        amount = parse_amount(event["amount"], "amount")
        if amount != order["amount"]:
            raise AmountMismatch(f"webhook amount {event['amount']} is not the order amount"
                                 f" {format_amount(order['amount'])}; nothing credited", field="amount")
        record = {"event_id": event["event_id"], "session_id": event["session_id"], "status": event["status"],
                  "payment_id": None, "received_at": iso(now)}
        if event["status"] == "DECLINED":
            with self.store.transaction():
                self.store.insert_webhook_event(dict(record, outcome="declined"))
                if attempt["status"] != "APPROVED":
                    self.store.update_card_attempt(attempt["merchant_request_id"], iso(now), status="DECLINED",
                                                   decline_reason=event.get("decline_reason"))
            return {"status": "declined", "event_id": event["event_id"]}
        transaction_id = event.get("transaction_id")
        if not transaction_id:
            raise ValidationFailed("an APPROVED webhook carries a transaction_id", field="transaction_id")
        credited = self.store.payment_by_external("card", transaction_id)
        if credited is None:
            self._confirm_with_gateway(event, amount)
        with self.store.transaction():
            payment = None
            if credited is None:
                order = self.find_order(event["merchant_reference"])  # fresh, inside the transaction
                card = event.get("card") or {}
                payment = self._capture(order, channel="card", external_id=transaction_id, amount=amount,
                                        paid_at=parse_instant_field(event["occurred_at"], "occurred_at"),
                                        session_id=event["session_id"], card_bin=card.get("bin"),
                                        card_last4=card.get("last4"), auth_code=event.get("auth_code"))
            if payment is None:
                existing = self.store.payment_by_external("card", transaction_id)
                self.store.insert_webhook_event(dict(record, outcome="duplicate",
                                                     payment_id=existing["payment_id"] if existing else None))
                return {"status": "duplicate", "event_id": event["event_id"],
                        "payment_id": existing["payment_id"] if existing else None}
            self.store.insert_webhook_event(dict(record, outcome="credited", payment_id=payment["payment_id"]))
            self.store.update_card_attempt(attempt["merchant_request_id"], iso(now), status="APPROVED")
        return {"status": "excess" if payment["excess"] else "credited", "event_id": event["event_id"],
                "payment_id": payment["payment_id"]}

    def _confirm_with_gateway(self, event: dict[str, Any], amount: int) -> None:
        """Ask the gateway directly before crediting: a webhook alone is a claim, the session is the fact."""
        session = self.upstreams.session(event["session_id"])
        if session is None:
            raise PaymentNotConfirmed(f"the gateway does not know session {event['session_id']}",
                                      field="session_id")
        problems = []
        if session.get("status") != "APPROVED":
            problems.append(f"status is {session.get('status')}")
        if session.get("transaction_id") != event["transaction_id"]:
            problems.append(f"transaction is {session.get('transaction_id')}")
        try:
            if parse_amount(session.get("amount"), "amount") != amount:
                problems.append(f"amount is {session.get('amount')}")
        except ApiError:
            problems.append("amount is unreadable")
        if problems:
            raise PaymentNotConfirmed("the gateway does not confirm the webhook: " + ", ".join(problems),
                                      field="status")

    def return_page_order(self, session_id: str | None, merchant_request_id: str | None
                          ) -> dict[str, Any] | None:
        attempt = None
        if session_id:
            attempt = self.store.card_attempt_by_session(session_id)
        if attempt is None and merchant_request_id:
            attempt = self.store.card_attempt(merchant_request_id)
        if attempt is None:
            return None
        order = self.store.order(attempt["bill_reference"])
        return self.order_view(order) if order else None

    # --- Khales biller ------------------------------------------------------------------------
    def khales_inquiry(self, body: dict[str, Any]) -> dict[str, Any]:
        order = self.find_order(body["bill_reference"])
        status = self.status_of(order)
        due = 0 if status == "PAID" else order["amount"]
        return {
            "inquiry_id": body["inquiry_id"], "bill_reference": order["bill_reference"], "status": status,
            "amount_due": format_amount(due), "collection_fee": "0.00", "total_due": format_amount(due),
            "currency": order["currency"], "payer_name": order["payer_name"], "expires_at": order["expires_at"],
            "governorate_code": order["governorate_code"], "service_code": order["service_code"],
            "fee_lines": [{"code": line["code"], "name_ar": line["name_ar"], "amount": line["amount"]}
                          for line in order["fee_lines"]],
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
            self._payable(order)
            if amount != order["amount"]:
                raise AmountMismatch(f"amount {body['amount']} is not the amount due"
                                     f" {format_amount(order['amount'])}", field="amount")
            payment = self._capture(order, channel="cash", external_id=key, amount=amount, paid_at=paid_at,
                                    outlet_id=body["outlet_id"], receipt_number=new_id("RCPT"))
            if payment is None:
                raise Conflict(f"transaction {key} is already credited", field="khales_transaction_id")
            response = {"khales_transaction_id": key, "payment_id": payment["payment_id"],
                        "bill_reference": order["bill_reference"], "status": "ACCEPTED",
                        "amount": format_amount(amount), "currency": CURRENCY,
                        "receipt_number": payment["receipt_number"]}
            self.store.save_answer("khales_payment", key, fingerprint, 200, response, iso(self.now))
        return response

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
                    order = self.find_order(payment["bill_reference"])
                    self._after_reversal(payment, order, body.get("reason") or "reversed by Khales")
                response.update(status="REVERSED", payment_id=payment["payment_id"])
            self.store.save_answer("khales_reversal", key, fingerprint, 200, response, now)
        return response
