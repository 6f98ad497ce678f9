"""Money on the wire is a two-decimal string; inside it is integer piasters, never a float."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simulators.common.errors import InvalidAmount
from simulators.common.money import apply_rate, format_amount, parse_amount


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


def test_no_float_in_money_code() -> None:
    """No component turns an amount into a float (a grep over the sources)."""
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for folder in ("simulators", "reference", "harness"):
        for path in (root / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"float\((amount|total|fee|price|piast|.*amount)", line):
                    offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert offenders == []


def test_signed_amounts_for_reversal_lines() -> None:
    from simulators.common.money import parse_signed_amount

    assert parse_signed_amount("-10.00") == -1000
    assert parse_signed_amount("0.00") == 0
    assert parse_signed_amount("12.34") == 1234
    for bad in ("--1.00", "-0.00", "-1.5", 3):
        with pytest.raises(InvalidAmount):
            parse_signed_amount(bad)
