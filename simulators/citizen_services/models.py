"""State and operations of the central citizen-services system (obligations P4-P7, L2).

The system issues service requests with assessed fees (each fee line tied to a revenue pool, its
budget chapter and item, and the governorate's settlement account for that pool) and takes the
collection service's payment confirmations and cancellations, exactly once per ``payment_id``.
Nothing here knows HTTP: the views parse and serialise, this module decides.
"""

from __future__ import annotations

import copy
import itertools
import threading
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulators.common import egypt, money
from simulators.common.clock import iso
from simulators.common.errors import Conflict

from .errors import (
    AlreadyPaid,
    AmountMismatch,
    InvalidName,
    InvalidNationalId,
    MissingUnits,
    RequestMismatch,
    UnknownGovernorate,
    UnknownLocalUnit,
    UnknownPayment,
    UnknownRequest,
    UnknownService,
    UnknownUnit,
)

if TYPE_CHECKING:
    from simulators.common.component import Component


class CatalogError(ValueError):
    """Raised at start-up when the catalog is inconsistent (a fee line names an unknown pool, a
    percentage line refers to a line the service does not have, a governorate lacks an account)."""


@dataclass
class FeeSchedule:
    """The catalog's services, fee lines, revenue pools and governorates, and the fee arithmetic.

    Money is integer piasters; a percentage line is ``apply_rate`` (half-up) of the sum of the lines
    it names, so a VAT line is computed exactly as the tax authority rounds it.
    """

    catalog: dict[str, Any]

    def __post_init__(self) -> None:
        self.pools: dict[str, dict[str, Any]] = dict(self.catalog["revenue_pools"])
        self.services: dict[str, dict[str, Any]] = {s["code"]: s for s in self.catalog["services"]}
        self.governorates: dict[str, dict[str, Any]] = {
            str(code): gov for code, gov in self.catalog["governorates"].items()}
        self._check()

    def _check(self) -> None:
        # A broken catalog is a configuration error: refuse to start rather than answer 500 later.
        for service in self.services.values():
            codes = [line["code"] for line in service["fee_lines"]]
            for line in service["fee_lines"]:
                where = f"service {service['code']} fee line {line['code']}"
                if line["revenue_pool"] not in self.pools:
                    raise CatalogError(f"{where}: unknown revenue pool {line['revenue_pool']!r}")
                if line["kind"] == "percentage":
                    for ref in line.get("of") or []:
                        if ref not in codes or ref == line["code"]:
                            raise CatalogError(f"{where}: percentage of unknown line {ref!r}")
                for code, gov in self.governorates.items():
                    if line["revenue_pool"] not in (gov.get("settlement_accounts") or {}):
                        raise CatalogError(
                            f"governorate {code} has no settlement account for pool {line['revenue_pool']}")

    # --- catalog views --------------------------------------------------------------------------
    def service_view(self, service: dict[str, Any]) -> dict[str, Any]:
        lines = []
        for line in service["fee_lines"]:
            pool = self.pools[line["revenue_pool"]]
            view = {k: line[k] for k in ("code", "name_ar", "name_en", "kind", "revenue_pool")}
            for key in ("amount", "rate", "unit", "rate_basis_points", "of"):
                if key in line:
                    view[key] = line[key]
            view["budget_chapter"] = str(pool["budget_chapter"])
            view["budget_item"] = str(pool["budget_item"])
            lines.append(view)
        return {"code": service["code"], "name_ar": service["name_ar"], "name_en": service["name_en"],
                "default_units": dict(service.get("default_units") or {}), "fee_lines": lines}

    def governorate_view(self, code: str) -> dict[str, Any]:
        gov = self.governorates[code]
        return {"code": code, "name_ar": gov["name_ar"], "name_en": gov["name_en"],
                "iban": gov.get("iban"),
                "local_units": [dict(u) for u in gov.get("local_units") or []],
                "settlement_accounts": {p: str(a) for p, a in (gov.get("settlement_accounts") or {}).items()}}

    # --- assessment -----------------------------------------------------------------------------
    def assess(self, service_code: str, governorate_code: str,
               units: dict[str, int]) -> tuple[list[dict[str, Any]], int]:
        """The fee lines (wire form) and the total in piasters for one request."""
        service = self.services[service_code]
        accounts = self.governorates[governorate_code]["settlement_accounts"]
        amounts: dict[str, int] = {}
        # Fixed and per-unit lines first: a percentage line may name a line listed after it.
        for line in service["fee_lines"]:
            if line["kind"] == "fixed":
                amounts[line["code"]] = money.parse_amount(line["amount"], allow_zero=True)
            elif line["kind"] == "per_unit":
                unit = line["unit"]
                if unit not in units:
                    raise MissingUnits(
                        f"service {service_code} charges {line['code']} per {unit}: give units.{unit}",
                        field=f"units.{unit}")
                amounts[line["code"]] = money.parse_amount(line["rate"], allow_zero=True) * units[unit]
        for line in service["fee_lines"]:
            if line["kind"] == "percentage":
                base = sum(amounts[ref] for ref in line.get("of") or [])
                amounts[line["code"]] = money.apply_rate(base, int(line["rate_basis_points"]))
        out = []
        for line in service["fee_lines"]:
            pool = self.pools[line["revenue_pool"]]
            out.append({
                "code": line["code"], "name_ar": line["name_ar"], "name_en": line["name_en"],
                "amount": money.format_amount(amounts[line["code"]]),
                "revenue_pool": line["revenue_pool"],
                "budget_chapter": str(pool["budget_chapter"]), "budget_item": str(pool["budget_item"]),
                "settlement_account": str(accounts[line["revenue_pool"]]),
            })
        return out, sum(amounts.values())


@dataclass
class ServiceRequest:
    request_number: str
    governorate_code: str
    service_code: str
    local_unit: str | None
    citizen: dict[str, str]
    units: dict[str, int]
    fee_lines: list[dict[str, Any]]
    total: int
    created_at: str
    status: str = "ASSESSED"
    paid_at: str | None = None
    payment_id: str | None = None

    def to_dict(self, schedule: FeeSchedule) -> dict[str, Any]:
        gov = schedule.governorates[self.governorate_code]
        service = schedule.services[self.service_code]
        return {
            "request_number": self.request_number, "status": self.status,
            "governorate_code": self.governorate_code,
            "governorate_name_ar": gov["name_ar"], "governorate_name_en": gov["name_en"],
            "local_unit": self.local_unit, "service_code": self.service_code,
            "service_name_ar": service["name_ar"], "service_name_en": service["name_en"],
            "citizen": dict(self.citizen), "units": dict(self.units),
            "fee_lines": copy.deepcopy(self.fee_lines), "total": money.format_amount(self.total),
            "currency": money.CURRENCY, "created_at": self.created_at,
            "paid_at": self.paid_at, "payment_id": self.payment_id,
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
        return data


class CitizenServicesModel:
    """Service requests and payment confirmations, per entity, behind one lock."""

    def __init__(self, component: Component) -> None:
        self.component = component
        self.schedule = FeeSchedule(component.settings["catalog"])
        own = component.own
        self.seed = own.get("seed")
        self.check_digit = bool(own.get("check_digit", False))
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget every request and confirmation and reseed the citizen generator."""
        with self._lock:
            self.requests: dict[str, ServiceRequest] = {}
            self.confirmations: dict[str, Confirmation] = {}
            self.idempotency: dict[str, tuple[dict[str, Any], str]] = {}
            self._request_seq = itertools.count(1)
            self._confirmation_seq = itertools.count(1)
            self._faker = egypt.make_faker(self.seed)

    def _now(self) -> str:
        return iso(self.component.clock.now())

    # --- catalog --------------------------------------------------------------------------------
    def list_services(self) -> list[dict[str, Any]]:
        return [self.schedule.service_view(s) for s in self.schedule.services.values()]

    def list_governorates(self) -> list[dict[str, Any]]:
        return [self.schedule.governorate_view(code) for code in sorted(self.schedule.governorates)]

    # --- service requests -----------------------------------------------------------------------
    def create_request(self, body: dict[str, Any],
                       idempotency_key: str | None = None) -> tuple[dict[str, Any], bool]:
        """Assess and issue a request; ``(request, created)``. A replayed key gives the same request."""
        with self._lock:
            if idempotency_key is not None and idempotency_key in self.idempotency:
                first_body, number = self.idempotency[idempotency_key]
                if first_body != body:
                    raise Conflict(f"Idempotency-Key {idempotency_key!r} was used for another request body",
                                   field="Idempotency-Key")
                return self.requests[number].to_dict(self.schedule), False
            gov_code, service_code = body["governorate_code"], body["service_code"]
            gov = self.schedule.governorates.get(gov_code)
            if gov is None:
                raise UnknownGovernorate(f"governorate {gov_code} is not in the catalog",
                                         field="governorate_code")
            service = self.schedule.services.get(service_code)
            if service is None:
                raise UnknownService(f"service {service_code} is not in the catalog", field="service_code")
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
                citizen = dict(citizen)
            else:
                # Generated only once the input is known good, so bad input never moves the sequence.
                citizen = egypt.random_citizen(self._faker, gov_code)
            number = f"SR-{gov_code}-{next(self._request_seq):08d}"
            request = ServiceRequest(
                request_number=number, governorate_code=gov_code, service_code=service_code,
                local_unit=local_unit, citizen=citizen, units=units, fee_lines=fee_lines, total=total,
                created_at=self._now())
            self.requests[number] = request
            if idempotency_key is not None:
                self.idempotency[idempotency_key] = (copy.deepcopy(body), number)
            return request.to_dict(self.schedule), True

    def get_request(self, request_number: str) -> dict[str, Any]:
        with self._lock:
            request = self.requests.get(request_number)
            if request is None:
                raise UnknownRequest(f"no service request {request_number}", field="request_number")
            return request.to_dict(self.schedule)

    # --- payment confirmations (P5, P6) ---------------------------------------------------------
    def confirm_payment(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Record a payment exactly once; ``(answer, created)``. Checks come before any write."""
        with self._lock:
            payment_id = body["payment_id"]
            existing = self.confirmations.get(payment_id)
            if existing is not None:
                if existing.body != body:
                    raise Conflict(f"payment {payment_id} was already confirmed with another body",
                                   field="payment_id")
                return existing.answer(), False
            request = self.requests.get(body["request_number"])
            if request is None:
                raise UnknownRequest(f"no service request {body['request_number']}", field="request_number")
            amount = money.parse_amount(body["amount"])
            if amount != request.total:
                raise AmountMismatch(
                    f"amount {body['amount']} is not the assessed total {money.format_amount(request.total)} "
                    f"of {request.request_number}", field="amount")
            if request.status == "PAID":
                raise AlreadyPaid(
                    f"{request.request_number} is already paid by payment {request.payment_id}",
                    field="request_number")
            confirmation = Confirmation(
                confirmation_id=f"CNF-{next(self._confirmation_seq):010d}", payment_id=payment_id,
                request_number=request.request_number, body=copy.deepcopy(body), received_at=self._now())
            self.confirmations[payment_id] = confirmation
            request.status, request.paid_at, request.payment_id = "PAID", body["paid_at"], payment_id
            return confirmation.answer(), True

    def cancel_payment(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Undo a confirmed payment once; ``(answer, created)``; the request is payable again."""
        with self._lock:
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
            confirmation.status = "CANCELLED"
            confirmation.cancellation = copy.deepcopy(body)
            confirmation.cancelled_at = self._now()
            request = self.requests[confirmation.request_number]
            if request.payment_id == payment_id:
                request.status, request.paid_at, request.payment_id = "ASSESSED", None, None
            return confirmation.answer(), True

    def list_confirmations(self, request_number: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [c.to_dict() for c in self.confirmations.values()
                    if request_number is None or c.request_number == request_number]


def _name_problem(name: str) -> str | None:
    """Why a citizen's name cannot be printed on a receipt, or ``None``."""
    if any(unicodedata.category(ch)[0] == "C" for ch in name):
        return "the name holds control or invisible characters"
    if sum(ch.isalpha() for ch in name) < 2:
        return "the name needs at least two letters"
    return None
