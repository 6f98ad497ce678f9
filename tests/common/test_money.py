"""Money on the wire is a two-decimal string; inside it is integer piasters, never a float."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.parties import Parties, SharedClock
from harness.stack import Stack
from reference.efinance import MessageError
from reference.efinance import parse_amount as parse_efinance_amount
from simulators.card_gateway.efinance_messages import Rejection, parse_xml_amount
from simulators.common.calendar import BusinessCalendar
from simulators.common.clock import parse_instant
from simulators.common.errors import InvalidAmount
from simulators.common.http import encode_json
from simulators.common.money import apply_rate, format_amount, parse_amount
from simulators.common.signing import sign_headers

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "piasters"), [("1250.50", 125050), ("0.10", 10), ("0.01", 1), ("922.00", 92200)])
def test_parse_amount(text: str, piasters: int) -> None:
    assert parse_amount(text) == piasters
    assert format_amount(piasters) == text


@pytest.mark.parametrize("bad", ["8.165", "1.005", "-1.00", "1e3", "1.5", "01.00", "", " 1.00", "NaN", 12.5, 12, None])
def test_refuses_anything_but_two_decimals(bad: object) -> None:
    with pytest.raises(InvalidAmount) as info:
        parse_amount(bad, field="amount")
    assert info.value.field == "amount"
    assert info.value.status == 422


def test_zero_refused_unless_allowed() -> None:
    with pytest.raises(InvalidAmount):
        parse_amount("0.00")
    assert parse_amount("0.00", allow_zero=True) == 0


def test_ten_and_twenty_piasters_pay_thirty_exactly() -> None:
    assert parse_amount("0.10") + parse_amount("0.20") == parse_amount("0.30")


def test_rate_rounds_half_up_to_the_piaster() -> None:
    assert apply_rate(80000, 1400) == 11200  # 14 % of 800.00
    assert apply_rate(50, 1000) == 5  # 10 % of 0.50 = 0.05
    assert apply_rate(5, 1000) == 1  # 0.005 rounds half up to 0.01
    assert apply_rate(4, 1000) == 0


def test_signed_amounts_for_reversal_lines() -> None:
    from simulators.common.money import parse_signed_amount

    assert parse_signed_amount("-10.00") == -1000
    assert parse_signed_amount("0.00") == 0
    assert parse_signed_amount("12.34") == 1234
    for bad in ("--1.00", "-0.00", "-1.5", 3):
        with pytest.raises(InvalidAmount):
            parse_signed_amount(bad)


# --- issue 5: money parsing, end to end ----------------------------------------------------------
@pytest.mark.parametrize("three_decimals", ["8.165", "1.005"])
def test_three_decimals_are_refused_for_egp_on_every_parser(three_decimals: str) -> None:
    """EGP has two decimals (piasters). Rounding "8.165" to 8.16 or 8.17, or "1.005" to 1.00 or 1.01,
    would invent or lose a piaster; so it is refused: the JSON wire parser and both e-finance XML
    parsers (the gateway's and the reference's, which accept "100" and "100.5" as e-finance writes them)."""
    with pytest.raises(InvalidAmount) as info:
        parse_amount(three_decimals, field="amount")
    assert three_decimals in info.value.message and info.value.field == "amount"
    with pytest.raises(MessageError):
        parse_efinance_amount(three_decimals, "PaymentRequestTotalAmount")
    with pytest.raises(Rejection):
        parse_xml_amount(three_decimals, "SettlementAmounts.0.Amount")
    assert parse_efinance_amount("8.16", "x") == parse_xml_amount("8.16", "x") == parse_amount("8.16") == 816


# A bill of 0.30 EGP: in the bench below Cairo's temporary utility connection (TUC) is overridden to a
# 0.10 connection fee plus a 0.20 stamp duty (config/catalog: fee_overrides of governorate 01).
TINY_TUC = {"TUC": {"BASE": {"amount": "0.10"}, "STAMP": {"amount": "0.20"}}}
MONDAY_10 = "2026-12-07T10:00:00+02:00"


class MoneyBench:
    """Every party in this process on loopback, the reference taking parts of a bill at Khales."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.urls = stack.urls
        self.http = requests.Session()
        self.http.trust_env = False
        self.clock = SharedClock(Parties(stack.urls), list(stack.urls),
                                 BusinessCalendar.from_config(stack.settings["calendar"]))

    def post(self, party: str, path: str, body: Any) -> requests.Response:
        return self.http.post(self.urls[party] + path, json=body, timeout=30)

    def get(self, party: str, path: str) -> Any:
        response = self.http.get(self.urls[party] + path, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def signed(self, party: str, path: str, body: Any, secret: str) -> requests.Response:
        data = encode_json(body)
        now = parse_instant(self.get(party, "/_admin/clock")["now"])
        headers = sign_headers(self.stack.settings["secrets"][secret], data, now)
        return self.http.post(self.urls[party] + path, data=data, timeout=30,
                              headers={**headers, "Content-Type": "application/json"})

    def tiny_order(self) -> dict[str, Any]:
        request = self.post("citizen_services", "/api/service-requests", {"governorate_code": "01",
                                                                         "service_code": "TUC"})
        assert request.status_code == 201, request.text
        assert request.json()["total"] == "0.30"
        order = self.post("reference", "/api/orders", {"request_number": request.json()["request_number"]})
        assert order.status_code == 201, order.text
        return dict(order.json())


@pytest.fixture(scope="module")
def money_bench() -> Iterator[MoneyBench]:
    overrides = {"reference": {"khales_partial_payments": "accept", "ticker": False},
                 "catalog": {"governorates": {"01": {"fee_overrides": TINY_TUC}}}}
    with Stack(overrides=overrides) as stack:
        bench = MoneyBench(stack)
        bench.clock.set(parse_instant(MONDAY_10))
        try:
            yield bench
        finally:
            bench.http.close()
            bench.clock.parties.close()


def test_ten_and_twenty_piasters_at_khales_pay_a_thirty_piaster_bill_exactly(money_bench: MoneyBench) -> None:
    """0.1 + 0.2 is 0.30000000000000004 in binary floating point: anything that added them as floats
    would leave the bill 'unpaid' by a ghost amount, or confirm 0.31 / 0.29. Through every party."""
    bench = money_bench
    order = bench.tiny_order()
    assert order["amount"] == "0.30" and [line["amount"] for line in order["fee_lines"]] == ["0.10", "0.20"]
    bill = order["bill_reference"]

    first = bench.post("khales", "/api/outlet-payments", {"bill_reference": bill, "amount": "0.10",
                                                           "outlet_id": "KH-01-0001"}).json()
    assert first["status"] == "PAID" and first["bill_status"] == "PARTIALLY_PAID", first
    assert first["outstanding_amount"] == "0.20"
    half_way = bench.get("reference", f"/api/orders/{bill}")
    assert (half_way["status"], half_way["paid_amount"], half_way["outstanding_amount"]) == ("UNPAID", "0.10", "0.20")

    second = bench.post("khales", "/api/outlet-payments", {"bill_reference": bill, "amount": "0.20",
                                                            "outlet_id": "KH-01-0001"}).json()
    assert second["status"] == "PAID" and second["bill_status"] == "PAID", second
    assert second["outstanding_amount"] == "0.00"
    paid = bench.get("reference", f"/api/orders/{bill}")
    assert (paid["status"], paid["paid_amount"], paid["outstanding_amount"], paid["excess_amount"]) == \
        ("PAID", "0.30", "0.00", "0.00")
    assert sorted(p["amount"] for p in paid["payments"] if p["status"] == "CAPTURED") == ["0.10", "0.20"]
    # Nothing more is due: a third piaster is refused at the counter.
    again = bench.post("khales", "/api/outlet-payments", {"bill_reference": bill, "amount": "0.01",
                                                           "outlet_id": "KH-01-0001"}).json()
    assert again["status"] == "REFUSED" and again["error"]["code"] == "ALREADY_PAID", again

    bench.clock.advance_to(parse_instant(MONDAY_10) + timedelta(minutes=5))  # outbox and feeds
    request_number = order["request_number"]
    confirmations = bench.get("citizen_services", f"/api/payment-confirmations?request_number={request_number}")
    assert [(c["amount"], c["status"]) for c in confirmations["confirmations"]] == [("0.30", "CONFIRMED")]
    lines = bench.get("settlement", "/api/settlement-files/2026-12-07?format=json")["lines"]
    assert sorted(line["amount"] for line in lines if line["bill_reference"] == bill) == ["0.10", "0.20"]
    report = bench.get("reference", "/api/reports/daily?date=2026-12-07&governorate_code=01")
    pools = {code: row["amount"] for code, row in report["governorates"][0]["collections"]["by_revenue_pool"].items()}
    assert (pools.get("UTL"), pools.get("STAMP")) == ("0.10", "0.20")  # each part on its own fee line


@pytest.mark.parametrize("bad", ["8.165", "1.005", 8.165, "0.1", "0,30"])
def test_amounts_off_the_two_decimal_form_are_refused_over_http_and_change_nothing(money_bench: MoneyBench,
                                                                                  bad: Any) -> None:
    bench = money_bench
    order = bench.tiny_order()
    bill = order["bill_reference"]

    at_outlet = bench.post("khales", "/api/outlet-payments", {"bill_reference": bill, "amount": bad,
                                                              "outlet_id": "KH-01-0001"})
    assert at_outlet.status_code == 422 and at_outlet.json()["error"]["field"] == "amount", at_outlet.text

    now = bench.get("reference", "/_admin/clock")["now"]
    at_biller = bench.signed("reference", "/khales/payments", {
        "khales_transaction_id": f"KHT-BAD-{bill}", "bill_reference": bill, "amount": bad, "currency": "EGP",
        "outlet_id": "KH-01-0001", "paid_at": now}, "khales_biller")
    assert at_biller.status_code == 422 and at_biller.json()["error"]["field"] == "amount", at_biller.text

    at_settlement = bench.signed("settlement", "/api/collections", {
        "collection_id": f"khales:KHT-BAD-{bill}", "type": "payment", "channel": "cash", "source": "khales",
        "governorate_code": "01", "service_code": "TUC", "bill_reference": bill, "amount": bad,
        "collection_fee": "0.00", "currency": "EGP", "collected_at": now,
        "transaction_number": f"KHT-BAD-{bill}"}, "collections_feed")
    assert at_settlement.status_code == 422 and at_settlement.json()["error"]["field"] == "amount", at_settlement.text

    untouched = bench.get("reference", f"/api/orders/{bill}")
    assert (untouched["status"], untouched["paid_amount"], untouched["payments"]) == ("UNPAID", "0.00", [])
    lines = bench.get("settlement", "/api/settlement-files/2026-12-07?format=json")["lines"]
    assert [line for line in lines if line["bill_reference"] == bill] == []
    # ...and the same bill then takes a well-formed amount (the refusals left nothing half-written).
    paid = bench.post("khales", "/api/outlet-payments", {"bill_reference": bill, "outlet_id": "KH-01-0001"}).json()
    assert paid["status"] == "PAID" and paid["amount"] == "0.30", paid


# --- no float anywhere in money code -------------------------------------------------------------
# An AST scan of every module of the parties, the reference, the harness and the load tests: an amount
# (an expression naming amount/total/fee/price/piasters/cash/paid/refund/...) must never meet float(),
# round(), Decimal(), a true division, a float literal, a float format (:.2f, %.2f) or a float
# annotation. Names of time (seconds, timeout, duration, rate) are not money.
MONEY_FOLDERS = ("simulators", "reference", "harness", "loadtests", "benchmarks")
MONEY_WORDS = {"amount", "amounts", "total", "totals", "fee", "fees", "price", "prices", "piaster", "piasters",
               "piastres", "cash", "money", "balance", "paid", "refund", "refunded", "credit", "credited", "debit",
               "outstanding", "excess", "egp"}
NOT_MONEY = {"seconds", "second", "ms", "duration", "timeout", "minutes", "hours", "days", "rate"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FLOAT_PERCENT = re.compile(r"%[-+ 0#]*[0-9]*(?:\.[0-9]+)?[eEfFgG]")


def _words(node: ast.AST) -> set[str]:
    words: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            text = sub.id
        elif isinstance(sub, ast.Attribute):
            text = sub.attr
        elif isinstance(sub, ast.arg):
            text = sub.arg
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) and _IDENTIFIER.fullmatch(sub.value):
            text = sub.value  # body["amount"], row.get("total")
        else:
            continue
        words |= {part.lower() for part in text.split("_") if part}
    return words


def _is_money(*nodes: ast.AST) -> bool:
    words = set().union(*(_words(node) for node in nodes)) if nodes else set()
    return bool(words & MONEY_WORDS) and not words & NOT_MONEY


def float_money_findings(source: str, name: str) -> list[str]:
    """``name:line: why: code`` for every place where an amount could become a float."""
    tree = ast.parse(source)
    found: list[str] = []

    def flag(node: ast.AST, why: str) -> None:
        code = (ast.get_source_segment(source, node) or "")[:120]
        found.append(f"{name}:{getattr(node, 'lineno', 0)}: {why}: {code}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in ("float", "round", "Decimal") and _is_money(*node.args, *node.keywords):
                flag(node, f"{called}() of an amount")
        elif isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Div) and _is_money(node):
                flag(node, "true division of an amount")
            elif any(isinstance(side, ast.Constant) and isinstance(side.value, float)
                     for side in (node.left, node.right)) and _is_money(node):
                flag(node, "float literal with an amount")
            elif (isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant)
                  and isinstance(node.left.value, str) and _FLOAT_PERCENT.search(node.left.value)
                  and _is_money(node.right)):
                flag(node, "%-format of an amount as a float")
        elif isinstance(node, ast.FormattedValue) and isinstance(node.format_spec, ast.JoinedStr):
            spec = "".join(str(part.value) for part in node.format_spec.values if isinstance(part, ast.Constant))
            if spec[-1:] in ("e", "E", "f", "F", "g", "G", "%") and _is_money(node.value):
                flag(node, f"':{spec}' format of an amount")
        elif isinstance(node, ast.arg) and node.annotation is not None:
            if "float" in _words(node.annotation) and _is_money(node):
                flag(node, "an amount annotated float")
        elif isinstance(node, ast.AnnAssign) and "float" in _words(node.annotation):
            if _is_money(node.target) or (node.value is not None and _is_money(node.value)):
                flag(node, "an amount annotated float")
    return found


def test_no_float_in_money_code() -> None:
    """No component turns an amount into a float: simulators/, reference/, harness/, loadtests/."""
    scanned, offenders = 0, []
    for folder in MONEY_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            scanned += 1
            offenders += float_money_findings(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert scanned > 50  # the folders are there: an empty scan proves nothing
    assert offenders == []


def test_the_float_scan_catches_what_it_is_for() -> None:
    planted = """
a = float(body["amount"])
b = round(total, 2)
c = Decimal(fee)
d = amount / 100
e = f"{amount:.2f}"
f = piasters * 1.14
def g(amount: float) -> None: ...
h = "%.2f" % order["total"]
i: float = row["paid_amount"]
"""
    clean = """
timeout = float(own.get("biller_timeout_seconds", 5))
took = round((time.perf_counter() - started) * 1000, 2)
path = REPO_ROOT / "loadtests" / "locustfile_cash.py"
shown = f"{s.duration_ms / 1000:.2f}s"
whole, piasters = divmod(amount, 100)
text = f"{amount // 100}.{amount % 100:02d}"
"""
    found = float_money_findings(planted, "planted")
    assert sorted(int(line.split(":")[1]) for line in found) == list(range(2, 11)), found
    assert float_money_findings(clean, "clean") == []
