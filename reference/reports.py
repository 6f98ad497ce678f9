"""The reports (obligations L3, E2, E4, E5): the daily report per governorate, the reconciliation status
of a business date, and the outstanding exceptions.

The daily report says what was collected, where it belongs, and whether e-finance settled it.

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

from simulators.common.clock import cairo, iso, parse_instant
from simulators.common.files import csv_bytes, safe_cell
from simulators.common.money import format_amount, parse_amount

from .reconciliation import RECONCILIATION_KINDS

if TYPE_CHECKING:
    from datetime import datetime

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
KIND_NAMES_AR = {
    "MISSING_IN_FILE": "سداد غير موجود في ملف التسوية", "ORPHAN_COLLECTION": "تحصيل في الملف غير معروف بالدفتر",
    "SETTLED_TWICE": "تحصيل مسوى مرتين", "WRONG_GOVERNORATE": "سداد مسوى لمحافظة أخرى",
    "SHORT_SETTLEMENT": "إضافة بنكية ناقصة", "OVER_SETTLEMENT": "إضافة بنكية زائدة",
    "CREDIT_WITHOUT_FILE": "إضافة بنكية بلا ملف تسوية", "FILE_WITHOUT_CREDIT": "دفعة في الملف بلا إضافة بنكية",
    "LATE_SETTLEMENT": "تسوية متأخرة", "BROKEN_FILE_LINE": "سطر تالف في ملف التسوية",
    "DUPLICATE_FILE": "ملف تسوية مكرر",
    "EXCESS_PAYMENT": "مدفوع زائد مستحق الرد", "CONFIRMATION_FAILED": "تعذر تأكيد السداد للمنظومة المركزية",
}
EXCEPTION_STATUS_AR = {"OPEN": "مفتوح", "RESOLVED": "تمت التسوية"}
RECONCILIATION_STATUS_AR = {"RECONCILED": "مطابقة", "PENDING": "قيد الانتظار", "EXCEPTIONS": "استثناءات"}
EXCEPTION_CSV = {  # column -> Arabic header
    "id": "الرقم", "kind": "النوع", "kind_ar": "وصف النوع", "status": "الحالة", "governorate_code": "كود المحافظة",
    "governorate_name_ar": "المحافظة", "business_date": "تاريخ العمل", "amount": "المبلغ",
    "age_business_days": "العمر بأيام العمل", "opened_at": "فتح في", "resolved_at": "سوي في",
    "exception_key": "المرجع", "detail": "التفاصيل", "resolution": "سبب التسوية",
}
RECONCILIATION_CSV = ["كود المحافظة", "المحافظة", "تاريخ العمل", "البند", "المرجع", "العدد", "المبلغ", "الحالة",
                      "ملاحظات"]
RECONCILIATION_SECTIONS_AR = {
    "ledger": "الدفتر (المتوقع تسويته)", "file": "سطور ملف التسوية", "batch": "دفعة معلنة في الملف",
    "credit": "إضافة بنكية", "notices": "إشعارات الإضافة (للعلم)", "status": "حالة المطابقة",
    "exception": "استثناء مفتوح",
}
CSV_HEADER = ["كود المحافظة", "المحافظة", "تاريخ العمل", "البند", "الكود", "الاسم", "العدد", "المبلغ",
              "الحالة", "ملاحظات"]


def _bucket(buckets: dict[str, dict[str, Any]], key: str, amount: int, **names: Any) -> None:
    entry = buckets.setdefault(key, dict(names, count=0, amount=0))
    entry["count"] += 1
    entry["amount"] += amount


def _format(buckets: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {key: dict(value, amount=format_amount(value["amount"])) for key, value in sorted(buckets.items())}



class _SafeWriter:
    """A ``csv.writer`` whose rows go through ``safe_cell`` (formula injection: OWASP CSV advice)."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def writerow(self, row: list[Any]) -> None:
        self._writer.writerow([safe_cell(cell) for cell in row])

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
        """The daily report as Arabic CSV; every cell that a spreadsheet would run as a formula is
        neutralised (``safe_cell``, like the other CSVs): exception details carry file text."""
        out = io.StringIO()
        writer = _SafeWriter(csv.writer(out, lineterminator="\r\n"))
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

    # --- outstanding exceptions -------------------------------------------------------------------
    def age_business_days(self, row: dict[str, Any], now: datetime) -> int:
        """Egyptian business days from the Cairo date it (last) opened to today's (or its resolution's)."""
        opened = cairo(parse_instant(row["opened_at"])).date()
        end = cairo(parse_instant(row["resolved_at"]) if row["resolved_at"] else now).date()
        return max(0, self.component.calendar.business_days_between(opened, end))

    def exception_view(self, row: dict[str, Any], now: datetime,
                       history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        out = {key: row[key] for key in ("id", "exception_key", "kind", "status", "governorate_code", "business_date",
                                         "bill_reference", "payment_id", "transaction_number", "collection_id",
                                         "file_id", "batch_id", "line_number", "entry_id", "detail", "opened_at",
                                         "resolved_at", "resolution")}
        out["amount"] = format_amount(row["amount"]) if row["amount"] is not None else None
        out["age_business_days"] = self.age_business_days(row, now)
        if history is not None:
            out["history"] = [{"event": h["event"], "at": h["at"], "reason": h["reason"],
                               "amount": format_amount(h["amount"]) if h["amount"] is not None else None}
                              for h in history]
        return out

    def exceptions(self, *, status: str | None = None, governorate_code: str | None = None,
                   business_date: str | None = None, kind: str | None = None) -> dict[str, Any]:
        """Exceptions (all, or filtered), each with its age in business days and its history."""
        now = self.component.clock.now()
        query = {"status": status, "governorate_code": governorate_code, "business_date": business_date,
                 "kind": kind}
        history: dict[str, list[dict[str, Any]]] = {}
        for event in self.store.exception_history(**query):
            history.setdefault(event["exception_key"], []).append(event)
        rows = [self.exception_view(row, now, history.get(row["exception_key"], []))
                for row in self.store.exceptions(**query)]
        return {"generated_at": iso(now), "count": len(rows), "exceptions": rows}

    def exceptions_csv(self, listing: dict[str, Any], bom: bool = False) -> bytes:
        rows = []
        for exc in listing["exceptions"]:
            gov = exc["governorate_code"] or ""
            values = dict(exc, kind_ar=KIND_NAMES_AR.get(exc["kind"], ""),
                          status=EXCEPTION_STATUS_AR.get(exc["status"], exc["status"]),
                          governorate_name_ar=(self.governorates.get(gov) or {}).get("name_ar", ""))
            rows.append({EXCEPTION_CSV[key]: "" if values.get(key) is None else values[key] for key in EXCEPTION_CSV})
        return csv_bytes(list(EXCEPTION_CSV.values()), rows, bom=bom)

    # --- reconciliation status of a business date -------------------------------------------------
    def reconciliation_report(self, business_date: date, governorate_code: str | None = None) -> dict[str, Any]:
        """Per governorate: ledger, file lines, declared batches, bank credits, notices (advice), the
        status RECONCILED | PENDING | EXCEPTIONS and the open exceptions; plus the day's files."""
        day = business_date.isoformat()
        now = self.component.clock.now()
        codes = self.store.reconciliation_governorates(day)
        if governorate_code:
            codes = [governorate_code]
        sections = [self._reconciliation_governorate(code, business_date, now) for code in codes]
        file_exceptions = [self.exception_view(row, now) for row in self.store.exceptions(status="OPEN",
                                                                                           business_date=day)
                           if row["governorate_code"] is None]
        statuses = {section["status"] for section in sections}
        if file_exceptions or "EXCEPTIONS" in statuses:
            overall = "EXCEPTIONS"
        elif "PENDING" in statuses:
            overall = "PENDING"
        else:
            overall = "RECONCILED"
        return {"business_date": day, "generated_at": iso(now), "currency": "EGP", "status": overall,
                "governorates": sections, "files": self.store.settlement_files_on(day),
                "file_exceptions": file_exceptions}

    def _reconciliation_governorate(self, code: str, business_date: date, now: datetime) -> dict[str, Any]:
        day = business_date.isoformat()
        count, expected = self.store.expected_settlement(code, day)
        file = self.store.day_file_totals(code, day)
        batches = self.store.day_batches(code, day)
        credits = self.store.day_credits(code, day)
        row = self.store.settlement_day(code, day)
        settlement = self.reconciliation.status(code, business_date, now)
        open_rows = self.store.exceptions(status="OPEN", governorate_code=code, business_date=day)
        section = bool(batches) or int(file["count"]) > 0 or int(file["broken"]) > 0
        settled = bool(batches) and all(int(b["credits"]) > 0 or int(b["amount"]) == 0 for b in batches)
        if any(r["kind"] in RECONCILIATION_KINDS for r in open_rows) or settlement["status"] in ("SHORT", "OVER"):
            status = "EXCEPTIONS"  # never RECONCILED while the money credited is not the money expected
        elif (section and settled) or (not section and not credits and expected == 0):
            status = "RECONCILED"
        else:
            status = "PENDING"
        return {
            "governorate_code": code,
            "governorate_name_ar": (self.governorates.get(code) or {}).get("name_ar", ""),
            "business_date": day, "status": status,
            "ledger": {"count": count, "amount": format_amount(expected)},
            "file": {"count": int(file["count"]), "amount": format_amount(int(file["amount"])),
                     "collection_fees": format_amount(int(file["fees"])), "broken_lines": int(file["broken"]),
                     "files": sorted((file["files"] or "").split(",")) if file["files"] else []},
            "declared": {"count": len(batches), "amount": format_amount(sum(int(b["amount"]) for b in batches)),
                         "batches": [{
                             "batch_id": b["batch_id"], "file_id": b["file_id"], "value_date": b["value_date"],
                             "line_count": b["line_count"], "gross_amount": format_amount(b["gross_amount"]),
                             "collection_fees": format_amount(b["collection_fees"]),
                             "amount": format_amount(b["amount"]), "mode": b["mode"],
                             "credited_amount": format_amount(int(b["credited"])) if b["credits"] else None,
                             "credited_at": b["last_credit_at"]} for b in batches]},
            "bank": {"count": len(credits), "amount": format_amount(sum(int(c["amount"]) for c in credits)),
                     "credits": [{"entry_id": c["entry_id"], "statement_id": c["statement_id"],
                                  "reference": c["reference"], "iban": c["iban"], "value_date": c["value_date"],
                                  "amount": format_amount(c["amount"]), "credited_at": c["credited_at"],
                                  "declared": bool(c["declared"])} for c in credits]},
            "notices": {"count": int(row["notices"]) if row else 0,
                        "amount": format_amount(int(row["advised_amount"]) if row else 0)},
            "settlement": {key: settlement[key] for key in ("status", "expected_value_date", "deadline",
                                                            "credited_at", "difference", "days_late")},
            "reconciled_at": row["reconciled_at"] if row else None,
            "exceptions": [self.exception_view(r, now) for r in open_rows],
        }

    def reconciliation_csv(self, report: dict[str, Any], bom: bool = False) -> bytes:
        names = RECONCILIATION_SECTIONS_AR
        rows: list[list[Any]] = []
        day = report["business_date"]
        for gov in report["governorates"]:
            head = [gov["governorate_code"], gov["governorate_name_ar"], day]
            rows.append(head + [names["ledger"], "", gov["ledger"]["count"], gov["ledger"]["amount"], "", ""])
            rows.append(head + [names["file"], " ".join(gov["file"]["files"]), gov["file"]["count"],
                                gov["file"]["amount"], "", f"سطور تالفة {gov['file']['broken_lines']}"])
            for batch in gov["declared"]["batches"]:
                credited = batch["credited_amount"]
                rows.append(head + [names["batch"], batch["batch_id"], batch["line_count"], batch["amount"],
                                    "CREDITED" if credited is not None else "", f"تاريخ القيمة {batch['value_date']}"
                                    + (f"؛ أضيف {credited}" if credited is not None else "")])
            for credit in gov["bank"]["credits"]:
                rows.append(head + [names["credit"], credit["entry_id"], "", credit["amount"], "",
                                    f"المرجع {credit['reference']}؛ في {credit['credited_at']}"])
            rows.append(head + [names["notices"], "", gov["notices"]["count"], gov["notices"]["amount"], "", ""])
            rows.append(head + [names["status"], gov["status"], "", "", gov["status"],
                                RECONCILIATION_STATUS_AR[gov["status"]]])
            for exc in gov["exceptions"]:
                rows.append(head + [names["exception"], exc["kind"], "", exc["amount"] or "", exc["status"],
                                    f"{KIND_NAMES_AR.get(exc['kind'], '')}: {exc['detail']}"])
        for exc in report["file_exceptions"]:
            rows.append(["", "", day, names["exception"], exc["kind"], "", exc["amount"] or "", exc["status"],
                         f"{KIND_NAMES_AR.get(exc['kind'], '')}: {exc['detail']}"])
        return csv_bytes(RECONCILIATION_CSV, [dict(zip(RECONCILIATION_CSV, r, strict=True)) for r in rows], bom=bom)
