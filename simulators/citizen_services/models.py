"""State and operations of the central citizen-services system (obligations P4-P7, L2).

The system issues service requests with assessed fees (each fee line tied to a revenue pool, its
budget chapter and item, and the governorate's settlement account for that pool), moves them
through their lifecycle, and takes the collection service's payment confirmations and
cancellations, exactly once per ``payment_id``. Nothing here knows HTTP: the views parse and
serialise, this module decides.

Lifecycle (the wire ``status``; every change is kept in the request's ``history``)::

    SUBMITTED ─► ASSESSED ─► PAID ─► IN_PROGRESS ─► COMPLETED
                 (awaiting   │  ▲
                  payment)   │  └─ a cancelled payment puts it back to ASSESSED
                     ├─► CANCELLED   (the citizen withdraws it)
                     └─► EXPIRED     (unpaid request_ttl after submission, on the clock)

SUBMITTED is recorded but never seen on the wire: assessment happens in the same call (assumed).
Time only moves on the component's clock: expiry and the automatic start and completion of the
work (``citizen_services.work``) are due work this model hands to the scheduler as a poller.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from simulators.common import egypt, money
from simulators.common.catalog import load_catalog
from simulators.common.clock import iso, parse_duration, parse_instant
from simulators.common.errors import ApiError, Conflict, ValidationFailed

from . import reports
from .errors import (
    AlreadyPaid,
    AmountMismatch,
    InvalidName,
    InvalidNationalId,
    InvalidRange,
    InvalidTransition,
    NotCancellable,
    RequestCancelled,
    RequestExpired,
    RequestMismatch,
    UnknownGovernorate,
    UnknownLocalUnit,
    UnknownPayment,
    UnknownRequest,
    UnknownService,
    UnknownUnit,
    WorkStarted,
)
from .fees import CatalogError, FeeSchedule

if TYPE_CHECKING:
    from simulators.common.component import Component

__all__ = ["CatalogError", "CitizenServicesModel", "FeeSchedule", "ServiceRequest"]

SUBMITTED, ASSESSED, PAID, IN_PROGRESS, COMPLETED, CANCELLED, EXPIRED = (
    "SUBMITTED", "ASSESSED", "PAID", "IN_PROGRESS", "COMPLETED", "CANCELLED", "EXPIRED")
PAID_STATUSES = (PAID, IN_PROGRESS, COMPLETED)
WORK_STEPS = {IN_PROGRESS: (PAID, "WORK_STARTED"), COMPLETED: (IN_PROGRESS, "COMPLETED")}  # to: (from, event)
RECORDED_REFUSALS = (Conflict, AmountMismatch, RequestMismatch)  # what GET /api/confirmation-conflicts lists
DEFAULT_REQUEST_TTL = "30d"


@dataclass
class ServiceRequest:
    request_number: str
    governorate_code: str
    governorate_name_ar: str
    governorate_name_en: str
    service_code: str
    service_name_ar: str
    service_name_en: str
    local_unit: str | None
    citizen: dict[str, str]
    units: dict[str, int]
    fee_lines: list[dict[str, Any]]
    total: int
    created: datetime
    expires: datetime
    status: str = ASSESSED
    paid_at: str | None = None
    payment_id: str | None = None
    confirmed: datetime | None = None  # when the current payment's confirmation arrived
    history: list[dict[str, Any]] = field(default_factory=list)
    due: tuple[datetime, str] | None = None  # the next automatic transition: (at, "expire" | "start" | "complete")

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_number": self.request_number, "status": self.status,
            "governorate_code": self.governorate_code,
            "governorate_name_ar": self.governorate_name_ar, "governorate_name_en": self.governorate_name_en,
            "local_unit": self.local_unit, "service_code": self.service_code,
            "service_name_ar": self.service_name_ar, "service_name_en": self.service_name_en,
            "citizen": dict(self.citizen), "units": dict(self.units),
            "fee_lines": copy.deepcopy(self.fee_lines), "total": money.format_amount(self.total),
            "currency": money.CURRENCY, "created_at": iso(self.created), "expires_at": iso(self.expires),
            "paid_at": self.paid_at, "payment_id": self.payment_id,
            "history": copy.deepcopy(self.history),
        }


@dataclass
class Confirmation:
    confirmation_id: str
    payment_id: str
    request_number: str
    body: dict[str, Any]
    received_at: str
    status: str = "CONFIRMED"
    cancellation: dict[str, Any] | None = None
    cancelled_at: str | None = None
    late: bool = False  # arrived after the request had expired, applied because it was paid before

    def answer(self) -> dict[str, Any]:
        """The answer to the confirmation (and to its replays): its current state."""
        out: dict[str, Any] = {
            "confirmation_id": self.confirmation_id, "payment_id": self.payment_id,
            "request_number": self.request_number, "status": self.status,
            "received_at": self.received_at,
        }
        if self.cancelled_at is not None:
            out["cancelled_at"] = self.cancelled_at
            out["reason"] = (self.cancellation or {}).get("reason")
        return out

    def to_dict(self) -> dict[str, Any]:
        """The full record, for scenarios that count and inspect confirmations."""
        data = self.answer()
        for key in ("bill_reference", "amount", "currency", "channel", "paid_at", "transaction_reference"):
            if key in self.body:
                data[key] = self.body[key]
        data["late"] = self.late
        return data


@dataclass
class Refusal:
    """A confirmation or cancellation refused with a conflict: recorded, never applied (P6)."""

    conflict_id: str
    kind: str  # "confirmation" | "cancellation"
    code: str
    http_status: int
    message: str
    field: str | None
    payment_id: str
    request_number: str
    body: dict[str, Any]
    first_at: str
    last_at: str
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"conflict_id": self.conflict_id, "kind": self.kind, "code": self.code,
                "http_status": self.http_status, "message": self.message, "field": self.field,
                "payment_id": self.payment_id, "request_number": self.request_number,
                "body": copy.deepcopy(self.body), "first_at": self.first_at, "last_at": self.last_at,
                "count": self.count}


class CitizenServicesModel:
    """Service requests, their lifecycle, payment confirmations and refusals, behind one lock.

    The model is also the scheduler's poller for its own due transitions (``next_due`` /
    ``run_due``); every operation first catches up with the clock, so a request read between two
    clock moves is never shown in a state it has already left.
    """

    def __init__(self, component: Component) -> None:
        self.component = component
        self.schedule = FeeSchedule(component.settings["catalog"])
        self.catalog_loaded_at = iso(component.clock.now())
        self.catalog_reloads = 0
        own = component.own
        self.seed = own.get("seed")
        self.check_digit = bool(own.get("check_digit", False))
        self.request_ttl = parse_duration(own.get("request_ttl", DEFAULT_REQUEST_TTL))
        self.accept_paid_before_expiry = bool(own.get("accept_paid_before_expiry", True))
        work = dict(own.get("work") or {})
        self.start_after = _optional_duration(work.get("start_after"))
        self.complete_after = _optional_duration(work.get("complete_after"))
        self.report_max_days = int(own.get("report_max_days", 366))
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget every request, confirmation and refusal and reseed the citizen generator (the
        catalog in use stays, reloaded or not)."""
        with self._lock:
            self.requests: dict[str, ServiceRequest] = {}
            self.confirmations: dict[str, Confirmation] = {}
            self.refusals: dict[str, Refusal] = {}
            self._refusal_keys: dict[tuple[str, str, str, str], str] = {}
            self.idempotency: dict[str, tuple[dict[str, Any], str]] = {}
            self._request_seq = itertools.count(1)
            self._confirmation_seq = itertools.count(1)
            self._refusal_seq = itertools.count(1)
            self._due: list[tuple[datetime, int, str, str]] = []  # (at, seq, request number, action)
            self._due_seq = itertools.count()
            self._faker = egypt.make_faker(self.seed)

    def _now(self) -> datetime:
        return self.component.clock.now()

    # --- due transitions (a scheduler poller) -----------------------------------------------------
    def _plan(self, request: ServiceRequest, at: datetime | None, action: str | None) -> None:
        """Set (or, with ``at`` None, drop) the request's next automatic transition."""
        if at is None or action is None:
            request.due = None
            return
        request.due = (at, action)
        heapq.heappush(self._due, (at, next(self._due_seq), request.request_number, action))

    def _drop_stale(self) -> None:
        while self._due:
            at, _, number, action = self._due[0]
            request = self.requests.get(number)
            if request is not None and request.due == (at, action):
                return
            heapq.heappop(self._due)

    def next_due(self) -> datetime | None:
        with self._lock:
            self._drop_stale()
            return self._due[0][0] if self._due else None

    def run_due(self, now: datetime) -> int:
        """Expire unpaid requests and move paid ones through the office's work, as due at ``now``."""
        done = 0
        with self._lock:
            while True:
                self._drop_stale()
                if not self._due or self._due[0][0] > now:
                    return done
                at, _, number, action = heapq.heappop(self._due)
                request = self.requests[number]
                request.due = None
                if action == "expire" and request.status == ASSESSED:
                    self._move(request, at, EXPIRED, "EXPIRED")
                elif action == "start" and request.status == PAID:
                    self._start_work(request, at, by="schedule")
                elif action == "complete" and request.status == IN_PROGRESS:
                    self._move(request, at, COMPLETED, "COMPLETED", by="schedule")
                done += 1

    def _catch_up(self) -> datetime:
        now = self._now()
        self.run_due(now)
        return now

    def _move(self, request: ServiceRequest, at: datetime, status: str, event: str, **details: Any) -> None:
        request.status = status
        request.history.append({"at": iso(at), "event": event, "status": status,
                                **{k: v for k, v in details.items() if v is not None}})

    def _start_work(self, request: ServiceRequest, at: datetime, *, by: str) -> None:
        self._move(request, at, IN_PROGRESS, "WORK_STARTED", by=by)
        if self.complete_after is not None:
            self._plan(request, at + self.complete_after, "complete")

    # --- catalog --------------------------------------------------------------------------------
    def list_services(self, governorate_code: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if governorate_code is not None and governorate_code not in self.schedule.governorates:
                raise UnknownGovernorate(f"governorate {governorate_code} is not in the catalog",
                                         field="governorate_code")
            return [self.schedule.service_view(code, governorate_code) for code in self.schedule.services]

    def list_governorates(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self.schedule.governorate_view(code) for code in sorted(self.schedule.governorates)]

    def catalog_state(self) -> dict[str, Any]:
        with self._lock:
            return {"catalog_file": self.component.settings.get("catalog_file"),
                    "loaded_at": self.catalog_loaded_at, "reloads": self.catalog_reloads,
                    "governorates": sorted(self.schedule.governorates), "services": list(self.schedule.services)}

    def reload_catalog(self) -> dict[str, Any]:
        """Read the catalog files again (``catalog_file`` of the settings); the next assessment uses them.

        A wrong file raises :class:`CatalogError` (file, line, field) and the catalog in use stays.
        Requests already assessed keep their fee lines. Only this party's fee schedule changes: the
        other parties read the catalog when they start.
        """
        path = self.component.settings.get("catalog_file")
        if not path:
            raise CatalogError("the settings name no catalog_file to reload from", field="catalog_file")
        schedule = FeeSchedule(load_catalog(path))
        with self._lock:
            self.schedule = schedule
            self.catalog_loaded_at = iso(self._now())
            self.catalog_reloads += 1
        return self.catalog_state()

    # --- service requests -----------------------------------------------------------------------
    def create_request(self, body: dict[str, Any],
                       idempotency_key: str | None = None) -> tuple[dict[str, Any], bool]:
        """Assess and issue a request; ``(request, created)``. A replayed key gives the same request."""
        with self._lock:
            now = self._catch_up()
            if idempotency_key is not None and idempotency_key in self.idempotency:
                first_body, number = self.idempotency[idempotency_key]
                if first_body != body:
                    raise Conflict(f"Idempotency-Key {idempotency_key!r} was used for another request body",
                                   field="Idempotency-Key")
                return self.requests[number].to_dict(), False
            gov_code, service_code = body["governorate_code"], body["service_code"]
            gov = self.schedule.governorates.get(gov_code)
            if gov is None:
                raise UnknownGovernorate(f"governorate {gov_code} is not in the catalog",
                                         field="governorate_code")
            if service_code not in self.schedule.services:
                raise UnknownService(f"service {service_code} is not in the catalog", field="service_code")
            service = self.schedule.service(service_code, gov_code)
            local_unit = body.get("local_unit")
            if local_unit is not None and local_unit not in {u["code"] for u in gov.get("local_units") or []}:
                raise UnknownLocalUnit(f"governorate {gov_code} has no local unit {local_unit!r}",
                                       field="local_unit")
            charged_by = {line["unit"] for line in service["fee_lines"] if line["kind"] == "per_unit"}
            for unit in body.get("units") or {}:
                if unit not in charged_by:
                    known = ", ".join(sorted(charged_by)) or "no units"
                    raise UnknownUnit(f"service {service_code} is not charged by {unit[:40]!r}; it takes {known}",
                                      field=f"units.{unit[:40]}")
            units = dict(service.get("default_units") or {})
            units.update(body.get("units") or {})
            fee_lines, total = self.schedule.assess(service_code, gov_code, units)
            citizen = body.get("citizen")
            if citizen is not None:
                name_problem = _name_problem(citizen["name"])
                if name_problem:
                    raise InvalidName(name_problem, field="citizen.name")
                problem = egypt.national_id_problem(citizen["national_id"], check_digit=self.check_digit)
                if problem:
                    raise InvalidNationalId(problem, field="citizen.national_id")
                if "address" in citizen and _text_problem(citizen["address"]):
                    raise ValidationFailed(f"the address {_text_problem(citizen['address'])}", field="citizen.address")
                citizen = dict(citizen)
            else:
                # Generated only once the input is known good, so bad input never moves the sequence.
                citizen = egypt.random_citizen(self._faker, gov_code)
            number = f"SR-{gov_code}-{next(self._request_seq):08d}"
            request = ServiceRequest(
                request_number=number, governorate_code=gov_code, governorate_name_ar=gov["name_ar"],
                governorate_name_en=gov["name_en"], service_code=service_code, service_name_ar=service["name_ar"],
                service_name_en=service["name_en"], local_unit=local_unit, citizen=citizen, units=units,
                fee_lines=fee_lines, total=total, created=now, expires=now + self.request_ttl)
            self._move(request, now, SUBMITTED, "SUBMITTED")
            self._move(request, now, ASSESSED, "ASSESSED", total=money.format_amount(total))
            self._plan(request, request.expires, "expire")
            self.requests[number] = request
            if idempotency_key is not None:
                self.idempotency[idempotency_key] = (copy.deepcopy(body), number)
            return request.to_dict(), True

    def _request(self, request_number: str) -> ServiceRequest:
        request = self.requests.get(request_number)
        if request is None:
            raise UnknownRequest(f"no service request {request_number}", field="request_number")
        return request

    def get_request(self, request_number: str) -> dict[str, Any]:
        with self._lock:
            self._catch_up()
            return self._request(request_number).to_dict()

    def cancel_request(self, request_number: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The citizen withdraws a request awaiting payment; ``(request, changed)``. Cancelling a
        cancelled request answers it again; any other status is :class:`NotCancellable`."""
        with self._lock:
            now = self._catch_up()
            request = self._request(request_number)
            if request.status == CANCELLED:
                return request.to_dict(), False
            if request.status != ASSESSED:
                raise NotCancellable(f"{request_number} is {request.status}: only a request awaiting payment "
                                     f"(ASSESSED) can be cancelled", field="request_number")
            self._move(request, now, CANCELLED, "CANCELLED", reason=body.get("reason"))
            self._plan(request, None, None)
            return request.to_dict(), True

    def set_status(self, request_number: str, status: str) -> tuple[dict[str, Any], bool]:
        """The office's work, by hand (admin plane): PAID → IN_PROGRESS → COMPLETED; ``(request, changed)``."""
        with self._lock:
            now = self._catch_up()
            request = self._request(request_number)
            if request.status == status:
                return request.to_dict(), False
            source, event = WORK_STEPS[status]
            if request.status != source:
                raise InvalidTransition(f"{request_number} is {request.status}: {status} follows {source}",
                                        field="status")
            self._plan(request, None, None)
            if status == IN_PROGRESS:
                self._start_work(request, now, by="admin")
            else:
                self._move(request, now, COMPLETED, event, by="admin")
            return request.to_dict(), True

    # --- payment confirmations (P5, P6) ---------------------------------------------------------
    def confirm_payment(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Record a payment exactly once; ``(answer, created)``. Checks come before any write; a
        refusal that is a conflict (or another amount) is recorded, never applied."""
        with self._lock:
            now = self._catch_up()
            try:
                return self._confirm(body, now)
            except RECORDED_REFUSALS as exc:
                self._record_refusal("confirmation", exc, body, now)
                raise

    def _confirm(self, body: dict[str, Any], now: datetime) -> tuple[dict[str, Any], bool]:
        payment_id = body["payment_id"]
        existing = self.confirmations.get(payment_id)
        if existing is not None:
            if existing.body != body:
                changed = [k for k in sorted(set(body) | set(existing.body)) if body.get(k) != existing.body.get(k)]
                raise Conflict(f"payment {payment_id} was already confirmed with another body "
                               f"(differs in {', '.join(changed)}); the first confirmation stands",
                               field="payment_id")
            return existing.answer(), False
        request = self._request(body["request_number"])
        amount = money.parse_amount(body["amount"])
        if amount != request.total:
            raise AmountMismatch(
                f"amount {body['amount']} is not the assessed total {money.format_amount(request.total)} "
                f"of {request.request_number}", field="amount")
        if request.status == CANCELLED:
            raise RequestCancelled(f"{request.request_number} was cancelled by the citizen; the payment is "
                                   f"not applied", field="request_number")
        if request.status in PAID_STATUSES:
            raise AlreadyPaid(
                f"{request.request_number} is already paid by payment {request.payment_id}",
                field="request_number")
        late = request.status == EXPIRED
        if late and not (self.accept_paid_before_expiry and parse_instant(body["paid_at"]) < request.expires):
            raise RequestExpired(f"{request.request_number} expired unpaid at {iso(request.expires)}; a payment "
                                 f"made at {body['paid_at']} is not applied", field="request_number")
        confirmation = Confirmation(
            confirmation_id=f"CNF-{next(self._confirmation_seq):010d}", payment_id=payment_id,
            request_number=request.request_number, body=copy.deepcopy(body), received_at=iso(now), late=late)
        self.confirmations[payment_id] = confirmation
        request.paid_at, request.payment_id, request.confirmed = body["paid_at"], payment_id, now
        self._move(request, now, PAID, "PAID", payment_id=payment_id, channel=body["channel"],
                   paid_at=body["paid_at"], late_confirmation=True if late else None)
        self._plan(request, now + self.start_after if self.start_after is not None else None, "start")
        return confirmation.answer(), True

    def cancel_payment(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Undo a confirmed payment once; ``(answer, created)``; the request is payable again."""
        with self._lock:
            now = self._catch_up()
            try:
                return self._cancel_payment(body, now)
            except RECORDED_REFUSALS as exc:
                self._record_refusal("cancellation", exc, body, now)
                raise

    def _cancel_payment(self, body: dict[str, Any], now: datetime) -> tuple[dict[str, Any], bool]:
        payment_id = body["payment_id"]
        confirmation = self.confirmations.get(payment_id)
        if confirmation is None:
            raise UnknownPayment(f"no confirmed payment {payment_id}", field="payment_id")
        if confirmation.request_number != body["request_number"]:
            raise RequestMismatch(
                f"payment {payment_id} confirmed {confirmation.request_number}, "
                f"not {body['request_number']}", field="request_number")
        if confirmation.cancellation is not None:
            if confirmation.cancellation != body:
                raise Conflict(f"payment {payment_id} was already cancelled with another body",
                               field="payment_id")
            return confirmation.answer(), False
        request = self.requests[confirmation.request_number]
        current = request.payment_id == payment_id
        if current and request.status in (IN_PROGRESS, COMPLETED):
            raise WorkStarted(f"{request.request_number} is {request.status}: the work payment {payment_id} paid "
                              f"for has started, so the payment cannot be cancelled here", field="payment_id")
        confirmation.status = "CANCELLED"
        confirmation.cancellation = copy.deepcopy(body)
        confirmation.cancelled_at = iso(now)
        if current:
            request.paid_at, request.payment_id, request.confirmed = None, None, None
            self._move(request, now, ASSESSED, "PAYMENT_CANCELLED", payment_id=payment_id, reason=body.get("reason"))
            if now >= request.expires:
                self._move(request, now, EXPIRED, "EXPIRED")
                self._plan(request, None, None)
            else:
                self._plan(request, request.expires, "expire")
        return confirmation.answer(), True

    def _record_refusal(self, kind: str, exc: ApiError, body: dict[str, Any], now: datetime) -> None:
        """Keep a refused confirmation or cancellation (once per kind, code, payment and body; repeats count)."""
        key = (kind, exc.code, str(body.get("payment_id")), json.dumps(body, sort_keys=True, default=str))
        existing = self._refusal_keys.get(key)
        if existing is not None:
            refusal = self.refusals[existing]
            refusal.count += 1
            refusal.last_at = iso(now)
            return
        refusal = Refusal(
            conflict_id=f"CFL-{next(self._refusal_seq):010d}", kind=kind, code=exc.code, http_status=exc.status,
            message=exc.message, field=exc.field, payment_id=str(body.get("payment_id")),
            request_number=str(body.get("request_number")), body=copy.deepcopy(body), first_at=iso(now),
            last_at=iso(now))
        self.refusals[refusal.conflict_id] = refusal
        self._refusal_keys[key] = refusal.conflict_id
        request = self.requests.get(refusal.request_number)
        if request is not None:
            request.history.append({"at": iso(now), "event": f"{kind.upper()}_REFUSED", "status": request.status,
                                    "code": exc.code, "payment_id": refusal.payment_id,
                                    "conflict_id": refusal.conflict_id})

    def list_confirmations(self, request_number: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [c.to_dict() for c in self.confirmations.values()
                    if request_number is None or c.request_number == request_number]

    def list_refusals(self, request_number: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_dict() for r in self.refusals.values()
                    if request_number is None or r.request_number == request_number]

    # --- performance report (P4) ------------------------------------------------------------------
    def performance(self, start: date, end: date, governorate_code: str | None) -> dict[str, Any]:
        """The P4 report over the requests submitted from ``start`` to ``end`` (Cairo dates, included)."""
        if end < start:
            raise InvalidRange(f"to ({end}) is before from ({start})", field="to")
        if (end - start).days + 1 > self.report_max_days:
            raise InvalidRange(f"the range is {(end - start).days + 1} days; at most {self.report_max_days}",
                               field="to")
        if governorate_code is not None and governorate_code not in egypt.GOVERNORATES:
            raise UnknownGovernorate(f"{governorate_code} is not an Egyptian governorate code",
                                     field="governorate_code")
        with self._lock:
            now = self._catch_up()
            return reports.performance(list(self.requests.values()), start=start, end=end,
                                       governorate_code=governorate_code, now=now)


def _optional_duration(value: Any) -> timedelta | None:
    return None if value is None else parse_duration(value)


def _text_problem(text: str) -> str | None:
    if any(unicodedata.category(ch)[0] == "C" for ch in text):
        return "holds control or invisible characters"
    return None


def _name_problem(name: str) -> str | None:
    """Why a citizen's name cannot be printed on a receipt, or ``None``."""
    if _text_problem(name):
        return "the name holds control or invisible characters"
    if sum(ch.isalpha() for ch in name) < 2:
        return "the name needs at least two letters"
    return None
