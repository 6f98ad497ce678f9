"""State and operations of the Khales cash network (assumed model: no public specification).

An outlet's payment is the electronic bill presentment and payment conversation with the biller
(the collection service): **inquiry** by bill reference, **payment** quoting the inquiry and the
outlet's own transaction id (retried with the same id when no answer came), and a **reversal** of a
payment whose outcome the outlet never learned. Every paid transaction is then reported to
e-finance settlement on the collections feed. Nothing here knows Flask; outbound calls go through
``component.http`` so they are journaled and fault-injectable.

The same conversation also pays e-finance Channel payment requests (``biller: efinance``): the bill
reference is then a PaymentRequestNumber and the peer is the card gateway's Channel API. Only the
:class:`BillerLink` differs (where, which secret, what the reference is called, which contracts);
e-finance settles those payments itself, so they are not fed to settlement from here.

A citizen may pay several bills in one **visit** (one cash total): each bill is its own transaction,
inquired and paid on its own, in order, so a refused bill leaves the others paid. Every day's
transactions go to settlement in the **end-of-day file** (:mod:`simulators.khales.end_of_day`).
"""

from __future__ import annotations

import copy
import itertools
import logging
import random
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from simulators.common import egypt, money
from simulators.common.clock import cairo, iso
from simulators.common.contracts import problems
from simulators.common.delivery import Courier, Delivery
from simulators.common.errors import Conflict, ValidationFailed
from simulators.common.http import OutboundFailure, OutboundResponse

from .end_of_day import EndOfDayFiles
from .errors import DuplicateBill, UnknownGovernorate, UnknownOutlet, UnknownTransaction, UnknownVisit

if TYPE_CHECKING:
    from simulators.common.component import Component

log = logging.getLogger(__name__)
BILLER_SECRET = "khales_biller"
CHANNEL_SECRET = "efinance_channel"
FEED_SECRET = "collections_feed"
DEFAULT_REVERSAL_RETRY_SECONDS = (60, 300, 900, 3600)
DEFAULT_FEED_RETRY_SECONDS = (60, 300, 900, 3600)
COLLECTION_SERVICE, EFINANCE = "collection_service", "efinance"  # the outlet payment's ``biller``
# What the outlet tells the citizen when the biller's inquiry says the bill is not payable.
REFUSAL_FOR_STATUS = {"PAID": "ALREADY_PAID", "EXPIRED": "EXPIRED", "CANCELLED": "CANCELLED"}
PAYABLE = ("UNPAID", "PARTIALLY_PAID")  # inquiry statuses an outlet pays (PARTIALLY_PAID: the rest is due)
# Domain faults at the point "payment" (match: outlet_id, bill_reference, transaction_id, biller).
DUPLICATE_PAYMENT, REVERSAL_BEFORE_PAYMENT = "duplicate_payment", "reversal_before_payment"
PAYMENT_FAULTS = (DUPLICATE_PAYMENT, REVERSAL_BEFORE_PAYMENT)
PAYMENT_MATCH_KEYS = ("outlet_id", "bill_reference", "transaction_id", "biller")
_OUTLET_KINDS = ("صيدلية", "سوبر ماركت", "مكتبة", "كشك", "محل", "مكتب خدمات", "سنترال")
_OPENING_HOURS = (("08:00", "22:00"), ("09:00", "23:00"), ("10:00", "24:00"), ("00:00", "24:00"))


@dataclass
class Outlet:
    outlet_id: str
    terminal_id: str
    name_ar: str
    governorate_code: str
    local_unit: str | None
    opening_hours: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"outlet_id": self.outlet_id, "terminal_id": self.terminal_id, "name_ar": self.name_ar,
                "governorate_code": self.governorate_code, "local_unit": self.local_unit,
                "opening_hours": dict(self.opening_hours)}


@dataclass(frozen=True)
class BillerLink:
    """Who an outlet's conversation is with and how its messages are named: the collection service's
    biller API (``kh-*`` contracts) or e-finance's Channel API for cash payment requests
    (``cg-channel-*``, assumed). The conversation itself (inquiry, payment retried with the same
    transaction id, reversal of an unknown outcome) is the same code for both."""

    name: str
    url: str
    target: str  # the party called: for out-faults and the journal
    secret: str
    paths: dict[str, str]  # inquiry, payment, reversal
    reference_field: str  # the bill reference's name on the wire
    contracts: dict[str, str]  # the answers' contracts: inquiry, payment, reversal
    feeds_settlement: bool  # False: the peer settles the money itself (e-finance's Channel payments)

    def body(self, fields: dict[str, Any], reference: str) -> dict[str, Any]:
        """A message with the bill reference under this link's name, first."""
        return {self.reference_field: reference, **fields}


@dataclass
class Transaction:
    transaction_id: str
    bill_reference: str
    outlet: Outlet
    request_body: dict[str, Any]
    created_at: str
    business_date: str
    biller: str = COLLECTION_SERVICE
    visit_id: str | None = None
    seq: int = 0  # the order transactions were opened in (a visit's bills, in the end-of-day file)
    status: str = "IN_PROGRESS"
    amount: int | None = None
    collection_fee: int = 0
    attempts: int = 0
    inquiry: Any = None
    receipt: Any = None
    paid_at: str | None = None
    error: dict[str, Any] | None = None
    reversal: dict[str, Any] | None = None
    settlement_feed: Delivery | None = None
    bill_status: str | None = None  # the biller's word on the bill once paid: PAID or PARTIALLY_PAID
    outstanding_amount: str | None = None  # what the bill still owes after a part of a partial payment
    posted: datetime | None = None  # when the payment was first posted to the biller (end-of-day file)
    reversed: datetime | None = None  # when the biller answered the reversal (end-of-day file)
    events: list[dict[str, Any]] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)  # set when answered

    def to_dict(self) -> dict[str, Any]:
        amount = money.format_amount(self.amount) if self.amount is not None else None
        cash = money.format_amount(self.amount + self.collection_fee) if self.amount is not None else None
        return {
            "transaction_id": self.transaction_id, "status": self.status, "biller": self.biller,
            "visit_id": self.visit_id, "bill_reference": self.bill_reference, "outlet_id": self.outlet.outlet_id,
            "terminal_id": self.outlet.terminal_id, "outlet_governorate_code": self.outlet.governorate_code,
            "amount": amount, "collection_fee": money.format_amount(self.collection_fee),
            "cash_collected": cash, "currency": money.CURRENCY, "attempts": self.attempts,
            "bill_status": self.bill_status, "outstanding_amount": self.outstanding_amount,
            "inquiry": copy.deepcopy(self.inquiry), "receipt": copy.deepcopy(self.receipt),
            "error": copy.deepcopy(self.error), "reversal": copy.deepcopy(self.reversal),
            "settlement_feed": self.settlement_feed.to_dict() if self.settlement_feed else None,
            "created_at": self.created_at, "posted_at": iso(self.posted) if self.posted else None,
            "paid_at": self.paid_at, "business_date": self.business_date,
            "events": copy.deepcopy(self.events),
        }


@dataclass
class Visit:
    """A citizen at an outlet paying several bills at once: one transaction per bill, one cash total."""

    visit_id: str
    outlet: Outlet
    request_body: dict[str, Any]
    created_at: str
    business_date: str
    transactions: list[Transaction]
    finished: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        paid = [tx for tx in self.transactions if tx.status == "PAID"]
        done = all(tx.status != "IN_PROGRESS" for tx in self.transactions)
        if not done:
            status = "IN_PROGRESS"
        elif len(paid) == len(self.transactions):
            status = "COMPLETED"
        else:
            status = "PARTLY_COMPLETED" if paid else "NOT_COMPLETED"
        amount = sum(tx.amount or 0 for tx in paid)
        fees = sum(tx.collection_fee for tx in paid)
        return {
            "visit_id": self.visit_id, "status": status, "outlet_id": self.outlet.outlet_id,
            "terminal_id": self.outlet.terminal_id, "outlet_name_ar": self.outlet.name_ar,
            "bills": len(self.transactions), "paid": len(paid), "not_paid": len(self.transactions) - len(paid),
            # One cash total: what the citizen hands over for the bills that were paid.
            "amount": money.format_amount(amount), "collection_fee": money.format_amount(fees),
            "cash_collected": money.format_amount(amount + fees), "currency": money.CURRENCY,
            "created_at": self.created_at, "business_date": self.business_date,
            "transactions": [tx.to_dict() for tx in self.transactions],
        }


def validate_payment_fault(spec: dict[str, Any]) -> None:
    """Refuse (422 naming the field) a payment fault Khales could not apply as written: another
    point, an endpoint/method/target (they are scoped by ``match`` only), an unknown match key or
    param (a typo would silently never hit)."""
    kind = str(spec.get("kind"))
    if spec.get("endpoint") is not None and spec["endpoint"] != "payment":
        raise ValidationFailed(f"a {kind} fault acts at the point 'payment'", field="endpoint")
    for name in ("method", "target"):
        if spec.get(name) is not None:
            raise ValidationFailed(f"{name} does not scope a {kind} fault; use match", field=name)
    for key in spec.get("match") or {}:
        if key not in PAYMENT_MATCH_KEYS:
            raise ValidationFailed(f"a {kind} fault matches on {', '.join(PAYMENT_MATCH_KEYS)}, not {str(key)[:40]!r}",
                                   field=f"match.{key}")
    params = spec.get("params") or {}
    allowed = {"same_moment"} if kind == DUPLICATE_PAYMENT else set()
    for name, value in params.items():
        if name not in allowed:
            raise ValidationFailed(f"a {kind} fault takes {', '.join(sorted(allowed)) or 'no params'}, "
                                   f"not {str(name)[:40]!r}", field=f"params.{name}")
        if not isinstance(value, bool):
            raise ValidationFailed("params.same_moment is true or false", field="params.same_moment")


def _error(code: str, message: str, details: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        out["details"] = details
    return out


def _name(contract: str) -> str:
    """``kh-inquiry-result`` from ``kh-inquiry-result.schema.json`` (how messages name a contract)."""
    return contract.removesuffix(".schema.json")


def _error_code(response: OutboundResponse) -> str:
    """The peer's machine-readable error code, or ``HTTP_<status>`` when it gave none."""
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("error"), dict) and body["error"].get("code"):
        return str(body["error"]["code"])
    return f"HTTP_{response.status}"


def _error_message(response: OutboundResponse) -> str:
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("error"), dict) and body["error"].get("message"):
        return str(body["error"]["message"])
    return f"the peer answered HTTP {response.status}"


class KhalesModel:
    """Outlets and their transactions; each transaction is its own entity keyed by its id."""

    def __init__(self, component: Component) -> None:
        self.component = component
        own = component.own
        self.seed = own.get("seed")
        self.outlets_per_governorate = int(own.get("outlets_per_governorate", 3))
        self.biller_timeout = float(own.get("biller_timeout_seconds", 5))
        self.payment_retries = int(own.get("payment_retries", 2))
        self.surcharge = money.parse_amount(str(own.get("surcharge", "0.00")), "khales.surcharge",
                                            allow_zero=True)
        self.surcharge_threshold = money.parse_amount(str(own.get("surcharge_threshold", "0.00")),
                                                      "khales.surcharge_threshold", allow_zero=True)
        self.visit_max_bills = int(own.get("visit_max_bills", 10))
        self.reversal_backoff = tuple(own.get("reversal_retry_seconds") or DEFAULT_REVERSAL_RETRY_SECONDS)
        # The collections feed never gives up: money collected must reach settlement (the last wait repeats).
        call_seconds = own.get("feed_timeout_seconds", 5)  # the courier takes any number of seconds
        self.feed = Courier(component, own.get("feed_retry_seconds") or DEFAULT_FEED_RETRY_SECONDS,
                            give_up=False, timeout=call_seconds)
        self.governorates = {str(code): gov for code, gov in component.settings["catalog"]["governorates"].items()}
        self.links = {
            COLLECTION_SERVICE: BillerLink(
                name=COLLECTION_SERVICE, url=component.url_of("reference"), target="reference", secret=BILLER_SECRET,
                paths={"inquiry": "/khales/inquiry", "payment": "/khales/payments", "reversal": "/khales/reversals"},
                reference_field="bill_reference",
                contracts={"inquiry": "kh-inquiry-result.schema.json", "payment": "kh-payment-result.schema.json",
                           "reversal": "kh-reversal-result.schema.json"},
                feeds_settlement=True),
            # Assumed (no public spec): e-finance's Channel API on the card gateway (card_gateway/channel.py).
            EFINANCE: BillerLink(
                name=EFINANCE, url=component.url_of("card_gateway"), target="card_gateway", secret=CHANNEL_SECRET,
                paths={"inquiry": "/api/channel/inquiry", "payment": "/api/channel/payments",
                       "reversal": "/api/channel/reversals"},
                reference_field="payment_request_number",
                contracts={"inquiry": "cg-channel-inquiry-result.schema.json",
                           "payment": "cg-channel-payment-result.schema.json",
                           "reversal": "cg-channel-reversal-result.schema.json"},
                feeds_settlement=False),
        }
        # Ids must never collide with a biller's records from an earlier run (its database survives a
        # reset of this simulator), so they are random, not a sequence; pass transaction_id to fix one.
        self._ids = random.SystemRandom()
        self._seq = itertools.count(1)
        self._lock = threading.RLock()
        component.faults.declare(PAYMENT_FAULTS, validate_payment_fault)
        self.end_of_day = EndOfDayFiles(component, self)
        self.reset()

    def reset(self) -> None:
        """Forget every transaction and visit; rebuild the same outlets from the seed."""
        with self._lock:
            self.transactions: dict[str, Transaction] = {}
            self.visits: dict[str, Visit] = {}
            self.outlets: dict[str, Outlet] = self._make_outlets()

    @property
    def lock(self) -> threading.RLock:
        """The model's one lock: hold it to read transactions consistently (the end-of-day file)."""
        return self._lock

    def snapshot(self) -> list[Transaction]:
        """Every transaction (the objects: read their fields holding :attr:`lock`)."""
        with self._lock:
            return list(self.transactions.values())

    # --- outlets --------------------------------------------------------------------------------
    def _make_outlets(self) -> dict[str, Outlet]:
        fake = egypt.make_faker(self.seed)
        outlets: dict[str, Outlet] = {}
        for gov_code in sorted(self.governorates):
            units = [u["code"] for u in self.governorates[gov_code].get("local_units") or []]
            for number in range(1, self.outlets_per_governorate + 1):
                opens, closes = fake.random_element(_OPENING_HOURS)
                outlet = Outlet(
                    outlet_id=f"KH-{gov_code}-{number:04d}",
                    terminal_id=f"T{gov_code}{fake.numerify('######')}",
                    name_ar=f"{fake.random_element(_OUTLET_KINDS)} {fake.last_name()}",
                    governorate_code=gov_code,
                    local_unit=fake.random_element(units) if units else None,
                    opening_hours={"opens": opens, "closes": closes},
                )
                outlets[outlet.outlet_id] = outlet
        return outlets

    def list_outlets(self, governorate_code: str | None = None) -> list[dict[str, Any]]:
        if governorate_code is not None and governorate_code not in egypt.GOVERNORATES:
            raise UnknownGovernorate(f"{governorate_code!r} is not a governorate code",
                                     field="governorate_code")
        with self._lock:
            return [o.to_dict() for o in self.outlets.values()
                    if governorate_code is None or o.governorate_code == governorate_code]

    def _outlet(self, outlet_id: str | None) -> Outlet:
        with self._lock:
            if outlet_id is None:
                if not self.outlets:
                    raise UnknownOutlet("the network has no outlets (outlets_per_governorate is 0)",
                                        field="outlet_id")
                return next(iter(self.outlets.values()))
            outlet = self.outlets.get(outlet_id)
        if outlet is None:
            raise UnknownOutlet(f"no Khales outlet {outlet_id}", field="outlet_id")
        return outlet

    # --- transactions ---------------------------------------------------------------------------
    def get_transaction(self, transaction_id: str) -> dict[str, Any]:
        with self._lock:
            tx = self.transactions.get(transaction_id)
            if tx is None:
                raise UnknownTransaction(f"no Khales transaction {transaction_id}", field="transaction_id")
            return tx.to_dict()

    def list_transactions(self, business_date: date | None = None,
                          outlet_id: str | None = None) -> list[dict[str, Any]]:
        wanted = business_date.isoformat() if business_date else None
        with self._lock:
            return [tx.to_dict() for tx in self.transactions.values()
                    if (wanted is None or tx.business_date == wanted)
                    and (outlet_id is None or tx.outlet.outlet_id == outlet_id)]

    def _new_id(self, prefix: str) -> str:
        return prefix + "".join(str(self._ids.randrange(10)) for _ in range(12))

    def _event(self, tx: Transaction, step: str, outcome: str, **extra: Any) -> None:
        """Note one exchange with a peer on the transaction: the evidence a scenario reads."""
        with self._lock:
            tx.events.append({"at": iso(self.component.clock.now()), "step": step, "outcome": outcome, **extra})

    def outlet_payment(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """A citizen pays cash at an outlet; ``(transaction, created)``.

        The biller's refusals are outcomes of the transaction, not errors of this call. The same
        transaction_id with the same body replays the stored transaction without calling the biller.
        """
        # The biller named explicitly or by default is the same request (a replay must not conflict).
        body = {**body, "biller": body.get("biller", COLLECTION_SERVICE)}
        outlet = self._outlet(body.get("outlet_id"))
        amount = money.parse_amount(body["amount"]) if "amount" in body else None
        now = self.component.clock.now()
        with self._lock:
            tx_id = body.get("transaction_id")
            existing = self.transactions.get(tx_id) if tx_id is not None else None
            if existing is not None:
                if existing.request_body != body:
                    raise Conflict(f"transaction {tx_id} was already used with another body",
                                   field="transaction_id")
            else:
                tx = self._open_transaction(body, outlet, now)
        if existing is not None:
            # Same id, same body: the same answer, so a replay waits for the first call's outcome.
            if not existing.finished.wait(self._conversation_limit()):
                raise Conflict(f"transaction {tx_id} is still in progress", field="transaction_id",
                               code="IN_PROGRESS")
            with self._lock:
                return existing.to_dict(), False
        self._run(tx, amount, reraise=True)
        with self._lock:
            return tx.to_dict(), True

    def _open_transaction(self, body: dict[str, Any], outlet: Outlet, now: datetime,
                          visit_id: str | None = None) -> Transaction:
        """A new transaction for ``body`` (a fresh id unless it names one); call it under the lock."""
        tx_id = body.get("transaction_id")
        while tx_id is None or tx_id in self.transactions:
            tx_id = self._new_id("KHT")
        tx = Transaction(transaction_id=tx_id, bill_reference=body["bill_reference"], outlet=outlet,
                         request_body=copy.deepcopy(body), created_at=iso(now),
                         business_date=cairo(now).date().isoformat(), biller=body["biller"], visit_id=visit_id,
                         seq=next(self._seq))
        self.transactions[tx_id] = tx
        return tx

    def _run(self, tx: Transaction, amount: int | None, *, reraise: bool) -> None:
        """The whole conversation of one transaction; ``finished`` is set whatever happens."""
        try:
            self._converse(tx, amount)
        except Exception as exc:
            # A bug here must not leave the transaction IN_PROGRESS for ever: record it, then surface
            # (a visit records it on that bill and goes on with the next: the bills are independent).
            log.exception("outlet payment %s failed unexpectedly", tx.transaction_id)
            self._finish(tx, "FAILED", _error("INTERNAL", f"{type(exc).__name__}: {exc}"))
            if reraise:
                raise
        finally:
            tx.finished.set()

    # --- several bills in one visit -------------------------------------------------------------
    def outlet_visit(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """A citizen pays several bills at one outlet visit; ``(visit, created)``.

        Each bill is inquired and paid on its own transaction, one after the other; a bill the biller
        refuses (or that fails) leaves the others as they are. The same visit_id with the same body
        replays the stored visit; with another body it is a 409. Everything is checked before the
        first bill is inquired, so a bad visit changes nothing.
        """
        bills = [{**bill, "biller": bill.get("biller", COLLECTION_SERVICE)} for bill in body["bills"]]
        body = {**body, "bills": bills}
        if len(bills) > self.visit_max_bills:
            raise ValidationFailed(f"a visit pays at most {self.visit_max_bills} bills", field="bills")
        seen: dict[tuple[str, str], int] = {}
        amounts: list[int | None] = []
        for index, bill in enumerate(bills):
            key = (bill["biller"], bill["bill_reference"])
            if key in seen:
                raise DuplicateBill(f"bill {bill['bill_reference']} is already bill {seen[key]} of this visit",
                                    field=f"bills.{index}.bill_reference")
            seen[key] = index
            amounts.append(money.parse_amount(bill["amount"], f"bills.{index}.amount") if "amount" in bill else None)
        given = [bill.get("transaction_id") for bill in bills]
        for index, tx_id in enumerate(given):
            if tx_id is not None and given.index(tx_id) != index:
                raise Conflict(f"transaction {tx_id} is named twice in this visit",
                               field=f"bills.{index}.transaction_id")
        outlet = self._outlet(body.get("outlet_id"))
        now = self.component.clock.now()
        with self._lock:
            visit_id = body.get("visit_id")
            existing = self.visits.get(visit_id) if visit_id is not None else None
            if existing is not None:
                if existing.request_body != body:
                    raise Conflict(f"visit {visit_id} was already used with another body", field="visit_id")
            else:
                for index, tx_id in enumerate(given):
                    if tx_id is not None and tx_id in self.transactions:
                        raise Conflict(f"transaction {tx_id} was already used", field=f"bills.{index}.transaction_id")
                while visit_id is None or visit_id in self.visits:
                    visit_id = self._new_id("KHV")
                transactions = [self._open_transaction({**bill, "outlet_id": outlet.outlet_id, "visit_id": visit_id},
                                                       outlet, now, visit_id) for bill in bills]
                visit = Visit(visit_id=visit_id, outlet=outlet, request_body=copy.deepcopy(body), created_at=iso(now),
                              business_date=cairo(now).date().isoformat(), transactions=transactions)
                self.visits[visit_id] = visit
        if existing is not None:
            if not existing.finished.wait(self._conversation_limit() * len(existing.transactions)):
                raise Conflict(f"visit {visit_id} is still in progress", field="visit_id", code="IN_PROGRESS")
            with self._lock:
                return existing.to_dict(), False
        try:
            for tx, amount in zip(visit.transactions, amounts, strict=True):
                self._run(tx, amount, reraise=False)
        finally:
            visit.finished.set()
        with self._lock:
            return visit.to_dict(), True

    def get_visit(self, visit_id: str) -> dict[str, Any]:
        with self._lock:
            visit = self.visits.get(visit_id)
            if visit is None:
                raise UnknownVisit(f"no Khales visit {visit_id}", field="visit_id")
            return visit.to_dict()

    def _conversation_limit(self) -> float:
        """The longest an outlet's conversation can take: every call timing out, plus a margin."""
        return self.biller_timeout * (self.payment_retries + 3) + 5

    def _finish(self, tx: Transaction, status: str, error: dict[str, Any] | None = None) -> None:
        with self._lock:
            tx.status = status
            if error is not None:
                tx.error = error

    # --- the conversation with the biller -------------------------------------------------------
    def _biller(self, tx: Transaction, step: str, body: dict[str, Any]) -> OutboundResponse:
        """One signed call of ``step`` (inquiry, payment, reversal) on the transaction's biller link."""
        link = self.links[tx.biller]
        return self.component.http.request(
            "POST", link.url + link.paths[step], target=link.target, json_body=body,
            sign_with=self.component.secret(link.secret), timeout=self.biller_timeout)

    def _converse(self, tx: Transaction, amount: int | None) -> None:
        inquiry = self._inquire(tx)
        if inquiry is None:
            return
        if amount is None:
            amount = money.parse_amount(inquiry["total_due"], "total_due", allow_zero=True)
            if amount == 0:
                self._finish(tx, "REFUSED", _error("NOTHING_DUE", "the biller says nothing is due"))
                return
        with self._lock:
            tx.amount = amount
            tx.collection_fee = self.surcharge if amount > self.surcharge_threshold else 0
        self._pay(tx, inquiry, amount)

    def _inquire(self, tx: Transaction) -> dict[str, Any] | None:
        """Ask the biller for the bill; the conforming, payable answer, or ``None`` (tx finished)."""
        link = self.links[tx.biller]
        body = link.body({"inquiry_id": self._new_id("KHI"), "outlet_id": tx.outlet.outlet_id,
                          "terminal_id": tx.outlet.terminal_id}, tx.bill_reference)
        try:
            response = self._biller(tx, "inquiry", body)
        except OutboundFailure as exc:
            self._event(tx, "inquiry", exc.kind)
            self._finish(tx, "FAILED", _error("BILLER_UNREACHABLE", f"inquiry got no answer: {exc}"))
            return None
        self._event(tx, "inquiry", f"HTTP {response.status}")
        if 400 <= response.status < 500:
            self._finish(tx, "REFUSED", _error(_error_code(response), _error_message(response)))
            return None
        if not response.ok:
            self._finish(tx, "FAILED", _error("BILLER_ERROR", _error_message(response)))
            return None
        answer = response.json()
        with self._lock:
            tx.inquiry = answer
        found = problems(link.contracts["inquiry"], answer)
        ref = link.reference_field
        if not found and answer[ref] != tx.bill_reference:
            found = [f"{ref}: {answer[ref]} is not the one inquired"]
        if found:
            self._finish(tx, "FAILED", _error("INVALID_BILLER_ANSWER",
                                              f"the inquiry answer breaks {_name(link.contracts['inquiry'])}", found))
            return None
        if answer["status"] not in PAYABLE:
            code = REFUSAL_FOR_STATUS.get(answer["status"], answer["status"])
            message = f"the bill is {answer['status']}"
            if answer["status"] == "EXPIRED":
                message = f"the bill expired at {answer.get('expires_at')}: nothing was collected"
            self._finish(tx, "REFUSED", _error(code, message, {"bill_status": answer["status"],
                                                               "expires_at": answer.get("expires_at")}))
            return None
        return answer

    def _pay(self, tx: Transaction, inquiry: dict[str, Any], amount: int) -> None:
        """Post the payment, retrying with the same transaction id and body; reverse if unanswered."""
        now = self.component.clock.now()
        paid_at = iso(now)
        link = self.links[tx.biller]
        body = link.body({"khales_transaction_id": tx.transaction_id, "inquiry_id": inquiry["inquiry_id"],
                          "amount": money.format_amount(amount), "currency": money.CURRENCY,
                          "outlet_id": tx.outlet.outlet_id, "paid_at": paid_at}, tx.bill_reference)
        with self._lock:
            tx.posted = now
        self.end_of_day.touch(now)
        scope = {"outlet_id": tx.outlet.outlet_id, "bill_reference": tx.bill_reference,
                 "transaction_id": tx.transaction_id, "biller": tx.biller}
        faults = self.component.faults
        overtaken = faults.take("domain", "payment", kinds=(REVERSAL_BEFORE_PAYMENT,), **scope)
        if overtaken is not None:
            self._reversal_overtakes_payment(tx, body, overtaken.id)
            return
        duplicate = faults.take("domain", "payment", kinds=(DUPLICATE_PAYMENT,), **scope)
        last = _error("NO_ANSWER", "no payment attempt was made")
        for attempt in range(1, self.payment_retries + 2):
            with self._lock:
                tx.attempts = attempt
            try:
                if attempt == 1 and duplicate is not None:
                    response = self._post_twice(tx, body, duplicate)
                else:
                    response = self._biller(tx, "payment", body)
            except OutboundFailure as exc:
                self._event(tx, "payment", exc.kind, attempt=attempt)
                last = _error("NO_ANSWER", f"payment attempt {attempt} got no answer: {exc}")
                continue
            self._event(tx, "payment", f"HTTP {response.status}", attempt=attempt)
            if 400 <= response.status < 500:
                self._finish(tx, "REFUSED",
                             _error(_error_code(response), _error_message(response)))
                return
            if not response.ok:
                # A 5xx says nothing certain about the work: retrying the same id is safe.
                last = _error("NO_ANSWER", f"payment attempt {attempt}: {_error_message(response)}")
                continue
            receipt = response.json()
            found = problems(link.contracts["payment"], receipt)
            if not found:
                found = [f"{key}: {receipt[key]} is not {expected}"
                         for key, expected in (("khales_transaction_id", tx.transaction_id),
                                               (link.reference_field, tx.bill_reference),
                                               ("amount", body["amount"]))
                         if receipt[key] != expected]
            with self._lock:
                tx.receipt = receipt
            if found:
                # The biller said yes in words the outlet cannot read: the outcome is unknown.
                last = _error("INVALID_BILLER_ANSWER",
                              f"the payment answer breaks {_name(link.contracts['payment'])}", found)
                break
            with self._lock:
                tx.status, tx.paid_at, tx.error = "PAID", paid_at, None
                # A part of a partial payment is PAID at the outlet (the cash was taken and accepted);
                # the biller says the bill itself is only PARTIALLY_PAID, with the rest outstanding.
                tx.bill_status = str(receipt.get("bill_status") or "PAID")
                tx.outstanding_amount = receipt.get("outstanding_amount")
            if link.feeds_settlement:  # e-finance settles its Channel payments itself
                self._start_feed(tx, inquiry, amount, paid_at)
            return
        self._start_reversal(tx, last)
        self._reverse(tx.transaction_id)

    def _start_reversal(self, tx: Transaction, why: dict[str, Any]) -> None:
        with self._lock:
            tx.status, tx.error = "REVERSAL_PENDING", why
            tx.reversal = {"reversal_id": self._new_id("KHR"), "attempts": 0, "answer": None,
                           "next_attempt_at": None}

    def _post_twice(self, tx: Transaction, body: dict[str, Any], fault: Any) -> OutboundResponse:
        """The ``duplicate_payment`` fault: the outlet's terminal posts the same payment twice (one
        after the other, or with ``params.same_moment`` at the same moment from two threads). The
        biller must credit it once; the outlet reads the first answer that came back."""
        outcomes: list[OutboundResponse | OutboundFailure | None] = [None, None]

        def post(index: int, barrier: threading.Barrier | None) -> None:
            if barrier is not None:
                try:
                    barrier.wait(timeout=self.biller_timeout)
                except threading.BrokenBarrierError:
                    pass  # the other thread did not start in time: post anyway
            try:
                outcomes[index] = self._biller(tx, "payment", body)
            except OutboundFailure as exc:
                outcomes[index] = exc

        if fault.params.get("same_moment"):
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=post, args=(i, barrier), daemon=True,
                                        name=f"khales-duplicate-{tx.transaction_id}-{i}") for i in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            post(0, None)
            post(1, None)
        self._event(tx, "payment", "posted twice (fault " + fault.id + "): " + ", ".join(
            f"HTTP {o.status}" if isinstance(o, OutboundResponse) else getattr(o, "kind", "none") for o in outcomes),
            attempt=1)
        for outcome in outcomes:
            if isinstance(outcome, OutboundResponse):
                return outcome
        first = outcomes[0]
        raise first if isinstance(first, OutboundFailure) else OutboundFailure("connection", "no answer")

    def _reversal_overtakes_payment(self, tx: Transaction, body: dict[str, Any], fault_id: str) -> None:
        """The ``reversal_before_payment`` fault: the payment post is held in the network; the outlet,
        without an answer, reverses the transaction, and the reversal reaches the biller first. Then
        the held payment arrives. A biller must not credit it (the cash went back to the citizen)."""
        with self._lock:
            tx.attempts = 1
        self._event(tx, "payment", f"held in the network (fault {fault_id})", attempt=1)
        self._start_reversal(tx, _error("NO_ANSWER", "payment attempt 1 was held in the network; the outlet"
                                                     " reversed the transaction"))
        self._reverse(tx.transaction_id)
        try:
            response = self._biller(tx, "payment", body)
        except OutboundFailure as exc:
            self._event(tx, "payment", f"arrived late: {exc.kind}", attempt=1)
            return
        self._event(tx, "payment", f"arrived late: HTTP {response.status}", attempt=1)
        if response.ok:
            with self._lock:
                tx.receipt = response.json()
                tx.error = _error("LATE_PAYMENT_ACCEPTED", "the biller accepted the payment after its reversal;"
                                  " the outlet handed the cash back", {"reversal": copy.deepcopy(tx.reversal)})

    def _reverse(self, transaction_id: str) -> None:
        """One attempt to reverse a payment whose outcome is unknown; reschedules itself on no answer."""
        with self._lock:
            tx = self.transactions.get(transaction_id)
            if tx is None or tx.status != "REVERSAL_PENDING" or tx.reversal is None:
                return
            reversal = tx.reversal
            reversal["attempts"] += 1
            attempt = reversal["attempts"]
            link = self.links[tx.biller]
            body = link.body({"reversal_id": reversal["reversal_id"], "khales_transaction_id": tx.transaction_id,
                              "reason": "NO_ANSWER"}, tx.bill_reference)
        try:
            response = self._biller(tx, "reversal", body)
        except OutboundFailure as exc:
            self._event(tx, "reversal", exc.kind, attempt=attempt)
            self._retry_reversal(tx, reversal, attempt, f"no answer: {exc}")
            return
        self._event(tx, "reversal", f"HTTP {response.status}", attempt=attempt)
        if 400 <= response.status < 500:
            with self._lock:
                reversal["next_attempt_at"] = None
            self._finish(tx, "FAILED", _error(
                "REVERSAL_REFUSED", f"the biller refused the reversal ({_error_code(response)}): "
                f"{_error_message(response)}; the payment's outcome is unknown"))
            return
        if not response.ok:
            self._retry_reversal(tx, reversal, attempt, _error_message(response))
            return
        answer = response.json()
        found = problems(link.contracts["reversal"], answer)
        if found:
            with self._lock:
                reversal["answer"] = answer
            self._retry_reversal(tx, reversal, attempt,
                                 f"the reversal answer breaks {_name(link.contracts['reversal'])}: {found}")
            return
        now = self.component.clock.now()
        with self._lock:
            reversal.update(answer=answer, next_attempt_at=None, reversed_at=iso(now))
            tx.status, tx.reversed = "REVERSED", now
        self.end_of_day.touch(now)

    def _retry_reversal(self, tx: Transaction, reversal: dict[str, Any], attempt: int, why: str) -> None:
        """Try the reversal again after the next backoff (the last interval repeats until answered)."""
        delay = self.reversal_backoff[min(attempt - 1, len(self.reversal_backoff) - 1)]
        at = self.component.clock.now() + timedelta(seconds=float(delay))
        with self._lock:
            reversal.update(next_attempt_at=iso(at), last_error=why)
        self.component.scheduler.schedule(at, f"khales reversal {tx.transaction_id}",
                                          lambda: self._reverse(tx.transaction_id))

    # --- the collections feed to e-finance settlement -------------------------------------------
    def _start_feed(self, tx: Transaction, inquiry: dict[str, Any], amount: int, paid_at: str) -> None:
        """Queue the paid collection for settlement; the body is fixed now so retries repeat it."""
        feed: dict[str, Any] = {
            "collection_id": f"khales:{tx.transaction_id}", "type": "payment", "channel": "cash",
            "source": "khales",
            # Assumed: the biller names the governorate that owns the bill; else the outlet's.
            "governorate_code": inquiry.get("governorate_code") or tx.outlet.governorate_code,
        }
        if inquiry.get("service_code"):
            feed["service_code"] = inquiry["service_code"]
        feed.update({"bill_reference": tx.bill_reference, "amount": money.format_amount(amount),
                     "collection_fee": money.format_amount(tx.collection_fee), "currency": money.CURRENCY,
                     "collected_at": paid_at, "transaction_number": tx.transaction_id})
        delivery = Delivery(delivery_id=feed["collection_id"], kind="settlement_feed",
                            url=self.component.url_of("settlement") + "/api/collections", target="settlement",
                            secret_name=FEED_SECRET, body=feed)
        with self._lock:
            tx.settlement_feed = delivery
        self.feed.send(delivery)
