"""The fee schedule of the central citizen-services system (obligation L2): the catalog's services,
each governorate's own values, and the fee arithmetic. No HTTP, no state beyond the catalog.

Money is integer piasters; a percentage line is ``apply_rate`` (half-up) of the sum of the lines it
names, so a VAT line is computed exactly as the tax authority rounds it. Every line carries its
revenue pool, the pool's budget chapter and item, and the governorate's settlement account for it.
"""

from __future__ import annotations

from typing import Any

from simulators.common import money
from simulators.common.catalog import CatalogError, check_catalog, effective_service

from .errors import AssessmentTooLarge, MissingUnits

MAX_TOTAL = 99_999_999_999_999  # piasters: 999,999,999,999.99, the largest amount on the wire

__all__ = ["CatalogError", "FeeSchedule"]


class FeeSchedule:
    """One catalog, checked at construction (:class:`CatalogError` naming the field when inconsistent)."""

    def __init__(self, catalog: dict[str, Any]) -> None:
        # A broken catalog is a configuration error: refuse to start rather than answer 500 later.
        check_catalog(catalog)
        self.catalog = catalog
        self.pools: dict[str, dict[str, Any]] = dict(catalog["revenue_pools"])
        self.services: dict[str, dict[str, Any]] = {s["code"]: s for s in catalog["services"]}
        self.governorates: dict[str, dict[str, Any]] = {
            str(code): gov for code, gov in catalog["governorates"].items()}
        self._effective = {(gov, code): effective_service(catalog, service, gov)
                           for gov in self.governorates for code, service in self.services.items()}

    def service(self, service_code: str, governorate_code: str | None = None) -> dict[str, Any]:
        """The service as the catalog defines it, or with ``governorate_code``'s overrides applied."""
        if governorate_code is None:
            return self.services[service_code]
        return self._effective[(governorate_code, service_code)]

    # --- catalog views --------------------------------------------------------------------------
    def service_view(self, service_code: str, governorate_code: str | None = None) -> dict[str, Any]:
        service = self.service(service_code, governorate_code)
        lines = []
        for line in service["fee_lines"]:
            pool = self.pools[line["revenue_pool"]]
            view = {k: line[k] for k in ("code", "name_ar", "name_en", "kind", "revenue_pool")}
            for key in ("amount", "rate", "unit", "rate_basis_points", "of"):
                if key in line:
                    view[key] = line[key]
            view["budget_chapter"] = str(pool["budget_chapter"])
            view["budget_item"] = str(pool["budget_item"])
            if governorate_code is not None:
                view["settlement_account"] = str(self.governorates[governorate_code]["settlement_accounts"]
                                                 [line["revenue_pool"]])
                view["overridden"] = bool(line.get("overridden"))
            lines.append(view)
        return {"code": service["code"], "name_ar": service["name_ar"], "name_en": service["name_en"],
                "default_units": dict(service.get("default_units") or {}), "fee_lines": lines}

    def governorate_view(self, code: str) -> dict[str, Any]:
        gov = self.governorates[code]
        return {"code": code, "name_ar": gov["name_ar"], "name_en": gov["name_en"],
                "iban": gov.get("iban"), "example": bool(gov.get("example", False)),
                "local_units": [dict(u) for u in gov.get("local_units") or []],
                "settlement_accounts": {p: str(a) for p, a in (gov.get("settlement_accounts") or {}).items()},
                "fee_overrides": {s: {line: dict(v) for line, v in lines.items()}
                                  for s, lines in (gov.get("fee_overrides") or {}).items()}}

    # --- assessment -----------------------------------------------------------------------------
    def assess(self, service_code: str, governorate_code: str,
               units: dict[str, int]) -> tuple[list[dict[str, Any]], int]:
        """The fee lines (wire form) and the total in piasters for one request."""
        service = self.service(service_code, governorate_code)
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
            wire = {
                "code": line["code"], "name_ar": line["name_ar"], "name_en": line["name_en"],
                "amount": money.format_amount(amounts[line["code"]]),
                "revenue_pool": line["revenue_pool"],
                "budget_chapter": str(pool["budget_chapter"]), "budget_item": str(pool["budget_item"]),
                "settlement_account": str(accounts[line["revenue_pool"]]),
                "kind": line["kind"],
            }
            # How the amount was reached, so an inquiry (P6) can be checked line by line.
            if line["kind"] == "per_unit":
                wire.update(unit=line["unit"], quantity=units[line["unit"]], rate=line["rate"])
            elif line["kind"] == "percentage":
                wire.update(rate_basis_points=int(line["rate_basis_points"]), of=list(line["of"]))
            out.append(wire)
        total = sum(amounts.values())
        if total > MAX_TOTAL or any(amount > MAX_TOTAL for amount in amounts.values()):
            raise AssessmentTooLarge(f"service {service_code} would cost more than {money.format_amount(MAX_TOTAL)}"
                                     " with these units", field="units")
        return out, total
