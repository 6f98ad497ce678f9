"""Money: integer piasters inside, a two-decimal string plus ``"EGP"`` on the wire.

No float ever touches an amount. ``parse_amount("1250.50") == 125050``; ``"8.165"``, ``"-1.00"``,
``"1e3"`` and ``12.5`` (a JSON number) are refused with :class:`InvalidAmount` naming the field.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidAmount

CURRENCY = "EGP"
CURRENCY_NUMERIC = "818"
_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,11})\.([0-9]{2})", re.ASCII)  # whole string: fullmatch


def parse_amount(value: Any, field: str = "amount", *, allow_zero: bool = False) -> int:
    """Piasters from a wire amount; refuses anything but ``"<digits>.<two digits>"``."""
    if not isinstance(value, str):
        raise InvalidAmount(
            f"{field} must be a string with exactly two decimals such as \"1250.50\"", field=field)
    match = _AMOUNT.fullmatch(value)
    if not match:
        raise InvalidAmount(
            f"{field} {value!r} is not a non-negative amount with exactly two decimals", field=field)
    piasters = int(match.group(1)) * 100 + int(match.group(2))
    if piasters == 0 and not allow_zero:
        raise InvalidAmount(f"{field} must be greater than zero", field=field)
    return piasters


def parse_signed_amount(value: Any, field: str = "amount") -> int:
    """Piasters from a wire amount that may be negative (a reversal line, a debit batch)."""
    if isinstance(value, str) and value.startswith("-"):
        return -parse_amount(value[1:], field, allow_zero=False)
    return parse_amount(value, field, allow_zero=True)


def format_amount(piasters: int) -> str:
    """Wire form of an integer number of piasters: ``125050 -> "1250.50"``."""
    if not isinstance(piasters, int) or isinstance(piasters, bool):
        raise TypeError("amounts are integer piasters")
    sign = "-" if piasters < 0 else ""
    whole, frac = divmod(abs(piasters), 100)
    return f"{sign}{whole}.{frac:02d}"


def parse_currency(value: Any, field: str = "currency") -> str:
    if value != CURRENCY:
        raise InvalidAmount(f"{field} must be \"EGP\"", field=field, code="INVALID_CURRENCY")
    return CURRENCY


def apply_rate(piasters: int, rate_basis_points: int) -> int:
    """``piasters × rate`` rounded half-up to the piaster (rates in basis points: 14 % = 1400)."""
    numerator = piasters * rate_basis_points
    return (numerator + 5_000) // 10_000
