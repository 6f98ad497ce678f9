"""Egyptian data that is real-shaped: governorates, national IDs, mobiles, IBANs, card numbers.

This module holds the facts and the checks (docs/domain-facts.md); the Faker provider that makes
such data, with Arabic names and addresses by governorate, is :mod:`simulators.common.egypt_faker`
(``EgyptProvider``, ``make_faker``, ``random_citizen`` are importable from here too). National IDs
are ``C YYMMDD GG SSSS K``: century (2 = 1900s, 3 = 2000s), birth date, governorate of birth,
sequence whose last digit is odd for men and even for women, check digit. The check-digit rule is
not official, so validation checks the structure and only optionally the community check digit
(off by default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from .wire import ascii_digits

GOVERNORATES: dict[str, tuple[str, str]] = {
    "01": ("Cairo", "القاهرة"),
    "02": ("Alexandria", "الإسكندرية"),
    "03": ("Port Said", "بورسعيد"),
    "04": ("Suez", "السويس"),
    "11": ("Damietta", "دمياط"),
    "12": ("Dakahlia", "الدقهلية"),
    "13": ("Sharqia", "الشرقية"),
    "14": ("Qalyubia", "القليوبية"),
    "15": ("Kafr El-Sheikh", "كفر الشيخ"),
    "16": ("Gharbia", "الغربية"),
    "17": ("Monufia", "المنوفية"),
    "18": ("Beheira", "البحيرة"),
    "19": ("Ismailia", "الإسماعيلية"),
    "21": ("Giza", "الجيزة"),
    "22": ("Beni Suef", "بني سويف"),
    "23": ("Fayoum", "الفيوم"),
    "24": ("Minya", "المنيا"),
    "25": ("Asyut", "أسيوط"),
    "26": ("Sohag", "سوهاج"),
    "27": ("Qena", "قنا"),
    "28": ("Aswan", "أسوان"),
    "29": ("Luxor", "الأقصر"),
    "31": ("Red Sea", "البحر الأحمر"),
    "32": ("New Valley", "الوادي الجديد"),
    "33": ("Matrouh", "مطروح"),
    "34": ("North Sinai", "شمال سيناء"),
    "35": ("South Sinai", "جنوب سيناء"),
}
BORN_ABROAD = "88"
_NID = re.compile(r"([23])([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{4})([0-9])", re.ASCII)
_WEIGHTS = (2, 7, 6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
MOBILE_PREFIXES = ("010", "011", "012", "015")


def community_check_digit(first13: str) -> int:
    """The unofficial check digit rule (fails on many real IDs; optional)."""
    k = 11 - sum(int(d) * w for d, w in zip(first13, _WEIGHTS, strict=True)) % 11
    return {10: 0, 11: 1}.get(k, k)


@dataclass(frozen=True)
class NationalId:
    """The parts of a structurally valid national ID."""

    century: str          # "2" (1900s) or "3" (2000s)
    birth_date: date
    governorate_code: str  # one of GOVERNORATES, or BORN_ABROAD
    sequence: str          # four digits; the last is the gender digit
    gender: str            # "male" (odd gender digit) or "female" (even)
    check_digit: int


def parse_national_id(value: Any) -> NationalId | None:
    """The parts of ``value``, or ``None`` when it is not structurally valid (see :func:`national_id_problem`)."""
    if national_id_problem(value) is not None:
        return None
    century, gov, sequence = value[0], value[7:9], value[9:13]
    return NationalId(century=century, birth_date=_birth_date(value), governorate_code=gov, sequence=sequence,
                      gender="male" if int(sequence[-1]) % 2 else "female", check_digit=int(value[13]))


def _birth_date(value: str) -> date:
    return date((1900 if value[0] == "2" else 2000) + int(value[1:3]), int(value[3:5]), int(value[5:7]))


def national_id_problem(value: Any, *, check_digit: bool = False) -> str | None:
    """Why ``value`` is not a structurally valid national ID, or ``None`` when it is."""
    if not ascii_digits(value, length=14):
        return "a national ID is 14 digits"
    m = _NID.fullmatch(value)
    if not m:
        return "a national ID starts with century digit 2 (1900s) or 3 (2000s)"
    gov = m.group(5)
    try:
        _birth_date(value)
    except ValueError:
        return "the birth date in the national ID is not a real date"
    if gov not in GOVERNORATES and gov != BORN_ABROAD:
        return f"governorate code {gov} in the national ID is not an Egyptian governorate"
    if check_digit and community_check_digit(value[:13]) != int(value[13]):
        return "the check digit does not match"
    return None


def luhn_check_digit(partial: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def luhn_valid(number: str) -> bool:
    return ascii_digits(number, length=(12, 19)) and luhn_check_digit(number[:-1]) == int(number[-1])


def iban_check_digits(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    numeric = "".join(str(int(ch, 36)) for ch in rearranged)
    return f"{98 - int(numeric) % 97:02d}"


def iban_valid(iban: str) -> bool:
    if not isinstance(iban, str) or not re.fullmatch(r"EG[0-9]{27}", iban, re.ASCII):
        return False
    numeric = "".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])
    return int(numeric) % 97 == 1


# The Faker provider lives in egypt_faker (it imports this module); these names stay importable here.
_FAKER_NAMES = ("EgyptProvider", "make_faker", "random_citizen")


def __getattr__(name: str) -> Any:
    if name in _FAKER_NAMES:
        from . import egypt_faker

        return getattr(egypt_faker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
