"""The daily report per governorate (obligations L3, E4, E5): what was collected, where it belongs,
and whether e-finance settled it.

Collections of a business date are split by channel, by service, by revenue pool (وعاء) and by
budget chapter (باب موازني, L2): each payment is spread over its order's fee lines, so the pool and
chapter totals add up to the collected total to the piaster. The CSV form carries Arabic labels for
the governorates' finance staff and is UTF-8 (with a BOM on request, for spreadsheet programs).
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import TYPE_CHECKING, Any

from simulators.common.clock import iso
from simulators.common.money import format_amount, parse_amount

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .reconciliation import Reconciliation
    from .store import Store

CHANNEL_NAMES_AR = {"card": "بطاقة بنكية", "cash": "نقدًا (خالص)"}
SECTION_NAMES_AR = {
    "total": "إجمالي التحصيل", "channel": "حسب القناة", "service": "حسب الخدمة",
    "revenue_pool": "حسب وعاء الإيراد", "budget_chapter": "حسب الباب الموازني",
    "excess": "مدفوعات زائدة مستحقة الرد", "reversed": "مدفوعات ملغاة أو مردودة", "refunds": "مبالغ مردودة",
    "partial": "سداد جزئي (الباقي مستحق)",
    "settlement": "التسوية",
    "exception": "استثناء مفتوح",
}
STATUS_NAMES_AR = {"PENDING": "قيد الانتظار", "ON_TIME": "في الموعد", "LATE": "متأخرة", "OVERDUE": "لم تصل",
                   "SHORT": "ناقصة", "OVER": "زائدة"}
CSV_HEADER = ["كود المحافظة", "المحافظة", "تاريخ العمل", "البند", "الكود", "الاسم", "العدد", "المبلغ",
              "الحالة", "ملاحظات"]


def _bucket(buckets: dict[str, dict[str, Any]], key: str, amount: int, **names: Any) -> None:
    entry = buckets.setdefault(key, dict(names, count=0, amount=0))
    entry["count"] += 1
    entry["amount"] += amount


def _format(buckets: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {key: dict(value, amount=format_amount(value["amount"])) for key, value in sorted(buckets.items())}


class Reports:
    def __init__(self, component: Component, store: Store, reconciliation: Reconciliation) -> None:
        self.component = component
        self.store = store
        self.reconciliation = reconciliation
        catalog = component.settings.get("catalog") or {}
        self.pools: dict[str, Any] = catalog.get("revenue_pools") or {}
        self.services = {s["code"]: s for s in catalog.get("services") or []}
        self.governorates: dict[str, Any] = catalog.get("governorates") or {}

    def daily(self, business_date: date, governorate_code: str | None = None) -> dict[str, Any]:
        day = business_date.isoformat()
        payments = self.store.captured_payments_on(day, governorate_code)
        reversed_ = self.store.reversed_payments_on(day, governorate_code)
        refunds = self.store.refunds_on(day, governorate_code)
        codes = {p["governorate_code"] for p in payments} | {p["governorate_code"] for p in reversed_}
        codes |= {r["governorate_code"] for r in refunds}
        codes |= {d["governorate_code"] for d in self.store.settlement_days_on(day)}
        if governorate_code:
            codes = {governorate_code}
        now = self.component.clock.now()
        sections = [self._governorate(code, business_date, [p for p in payments if p["governorate_code"] == code],
                                      [p for p in reversed_ if p["governorate_code"] == code],
                                      [r for r in refunds if r["governorate_code"] == code], now)
                    for code in sorted(codes)]
        total = sum(p["amount"] for p in payments)
        return {"business_date": day, "generated_at": iso(now), "currency": "EGP",
                "total": {"count": len(payments), "amount": format_amount(total)}, "governorates": sections}

    def _governorate(self, code: str, business_date: date, payments: list[dict[str, Any]],
                     reversed_: list[dict[str, Any]], refunds: list[dict[str, Any]], now: Any) -> dict[str, Any]:
        """One governorate's day. ``collections`` are the payments of the day still held (a wholly
        refunded card payment is under ``reversed``, like a Khales reversal, so a day whose money
        all went back nets to zero); ``refunds`` are the card refunds made that day, partial ones
        included (what settlement debits that day)."""
        by_channel: dict[str, dict[str, Any]] = {}
        by_service: dict[str, dict[str, Any]] = {}
        by_pool: dict[str, dict[str, Any]] = {}
        by_chapter: dict[str, dict[str, Any]] = {}
        excess = {"count": 0, "amount": 0}
        partial = {"count": 0, "amount": 0}
        for payment in payments:
            amount = int(payment["amount"])
            if not payment["excess"] and amount < int(payment["order_amount"]):
                partial["count"] += 1  # a part of a partial payment (Khales): collected, the bill not paid by it
                partial["amount"] += amount
            _bucket(by_channel, payment["channel"], amount, name_ar=CHANNEL_NAMES_AR[payment["channel"]])
            service = self.services.get(payment["service_code"], {})
            _bucket(by_service, payment["service_code"], amount, name_ar=service.get("name_ar", ""),
                    name_en=service.get("name_en", ""))
            if payment["excess"]:
                excess["count"] += 1
                excess["amount"] += amount
            for pool, chapter, share in self._split(payment):
                pool_info = self.pools.get(pool, {})
                _bucket(by_pool, pool, share, name_ar=pool_info.get("name_ar", ""),
                        name_en=pool_info.get("name_en", ""), budget_chapter=chapter)
                _bucket(by_chapter, chapter, share)
        settlement = self.reconciliation.status(code, business_date, now)
        exceptions = [{key: row[key] for key in ("id", "kind", "bill_reference", "payment_id", "detail",
                                                 "opened_at")}
                      | {"amount": format_amount(row["amount"]) if row["amount"] is not None else None}
                      for row in self.store.exceptions(status="OPEN", governorate_code=code,
                                                       business_date=business_date.isoformat())]
        return {
            "governorate_code": code,
            "governorate_name_ar": (self.governorates.get(code) or {}).get("name_ar", ""),
            "collections": {
                "count": len(payments), "amount": format_amount(sum(int(p["amount"]) for p in payments)),
                "by_channel": _format(by_channel), "by_service": _format(by_service),
                "by_revenue_pool": _format(by_pool), "by_budget_chapter": _format(by_chapter),
                "excess": {"count": excess["count"], "amount": format_amount(excess["amount"])},
                "partial": {"count": partial["count"], "amount": format_amount(partial["amount"])},
                "reversed": {"count": len(reversed_),
                             "amount": format_amount(sum(int(p["amount"]) for p in reversed_))},
                "refunds": {"count": len(refunds), "amount": format_amount(sum(int(r["amount"]) for r in refunds))},
            },
            "settlement": {key: settlement[key] for key in (
                "expected_value_date", "deadline", "status", "expected_amount", "credited_amount",
                "collection_fees", "credited_at", "difference", "days_late")},
            "exceptions": exceptions,
        }

    def _split(self, payment: dict[str, Any]) -> list[tuple[str, str, int]]:
        """(revenue pool, budget chapter, piasters) per fee line of the payment's order.

        A whole payment's share of each line is that line's amount. A part of a partial payment
        covers the fee lines in their order, from where the order's earlier parts stopped (so the
        parts of one bill, over one day or several, add up to each line exactly once). The last
        line takes any remainder so the shares always add up to the payment.
        """
        lines = payment["fee_lines"]
        amount = int(payment["amount"])
        start = self._paid_before(payment) if not payment["excess"] and amount < int(payment["order_amount"]) else 0
        shares, left, line_start = [], amount, 0
        for index, line in enumerate(lines):
            line_amount = parse_amount(line["amount"], allow_zero=True)
            overlap = max(0, min(line_start + line_amount, start + amount) - max(line_start, start))
            share = left if index == len(lines) - 1 else min(left, overlap)
            left -= share
            line_start += line_amount
            shares.append((str(line["revenue_pool"]), str(line["budget_chapter"]), share))
        return shares

    def _paid_before(self, payment: dict[str, Any]) -> int:
        """Piasters the order's earlier parts still held cover (those received before this one)."""
        earlier = 0
        for other in self.store.payments_of(payment["bill_reference"]):
            if other["payment_id"] == payment["payment_id"]:
                break
            if other["status"] == "CAPTURED" and not other["excess"]:
                earlier += int(other["amount"])
        return earlier

    def to_csv(self, report: dict[str, Any], bom: bool = False) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_HEADER)
        day = report["business_date"]
        for gov in report["governorates"]:
            head = [gov["governorate_code"], gov["governorate_name_ar"], day]
            col = gov["collections"]
            writer.writerow(head + [SECTION_NAMES_AR["total"], "", "", col["count"], col["amount"], "", ""])
            for section, key in (("channel", "by_channel"), ("service", "by_service"),
                                 ("revenue_pool", "by_revenue_pool"), ("budget_chapter", "by_budget_chapter")):
                for code, entry in col[key].items():
                    name = entry.get("name_ar") or (f"الباب {code}" if section == "budget_chapter" else "")
                    writer.writerow(head + [SECTION_NAMES_AR[section], code, name, entry["count"],
                                            entry["amount"], "", ""])
            for section in ("excess", "partial", "reversed", "refunds"):
                writer.writerow(head + [SECTION_NAMES_AR[section], "", "", col[section]["count"],
                                        col[section]["amount"], "", ""])
            st = gov["settlement"]
            note = f"تاريخ القيمة المتوقع {st['expected_value_date']}"
            if st["credited_at"]:
                note += f"؛ أضيف في {st['credited_at']}؛ الفرق {st['difference']}"
            if st["days_late"]:
                note += f"؛ أيام التأخير {st['days_late']}"
            writer.writerow(head + [SECTION_NAMES_AR["settlement"], st["status"], STATUS_NAMES_AR[st["status"]],
                                    "", st["credited_amount"] or "", st["status"], note])
            for exc in gov["exceptions"]:
                writer.writerow(head + [SECTION_NAMES_AR["exception"], exc["kind"], exc["bill_reference"] or "",
                                        "", exc["amount"] or "", "OPEN", exc["detail"]])
        text = out.getvalue()
        return ("\ufeff" + text) if bom else text
