"""Egyptian data that is real-shaped: governorates, national IDs, mobiles, IBANs, card numbers.

Faker's ``ar_EG`` locale only localises dates, so Arabic person names come from ``ar_AA`` and the
rest from the :class:`EgyptProvider` here. National IDs are ``C YYMMDD GG SSSS K``: century
(2 = 1900s, 3 = 2000s), birth date, governorate of birth, sequence whose last digit is odd for
men and even for women, check digit. The check-digit rule is not official, so validation checks the
structure and only optionally the community check digit (off by default).
"""

from __future__ import annotations

import re
import string
from datetime import date, timedelta

from faker import Faker
from faker.providers import BaseProvider

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


def national_id_problem(value: str, *, check_digit: bool = False) -> str | None:
    """Why ``value`` is not a structurally valid national ID, or ``None`` when it is."""
    if not ascii_digits(value, length=14):
        return "a national ID is 14 digits"
    m = _NID.fullmatch(value)
    if not m:
        return "a national ID starts with century digit 2 (1900s) or 3 (2000s)"
    century, yy, mm, dd, gov = m.group(1), m.group(2), m.group(3), m.group(4), m.group(5)
    try:
        date((1900 if century == "2" else 2000) + int(yy), int(mm), int(dd))
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


class EgyptProvider(BaseProvider):
    """Faker provider for national IDs, governorates, mobiles, IBANs and Meeza card numbers."""

    def governorate_code(self) -> str:
        return self.random_element(sorted(GOVERNORATES))

    def egyptian_national_id(self, governorate: str | None = None, gender: str | None = None,
                             birth_date: date | None = None) -> str:
        birth = birth_date or date(1950, 1, 1) + timedelta(days=self.random_int(0, 365 * 55))
        century = "2" if birth.year < 2000 else "3"
        gov = governorate or self.governorate_code()
        seq = self.random_int(0, 999)
        gender = gender or self.random_element(("male", "female"))
        last = self.random_element((1, 3, 5, 7, 9) if gender == "male" else (0, 2, 4, 6, 8))
        first13 = f"{century}{birth:%y%m%d}{gov}{seq:03d}{last}"
        return first13 + str(community_check_digit(first13))

    def egyptian_mobile(self) -> str:
        return self.random_element(MOBILE_PREFIXES) + "".join(
            self.random_element(string.digits) for _ in range(8))

    def egyptian_iban(self, bank_code: str = "0019") -> str:
        bban = bank_code + "".join(self.random_element(string.digits) for _ in range(21))
        return "EG" + iban_check_digits("EG", bban) + bban

    def meeza_card_number(self) -> str:
        partial = self.random_element(("507803", "507808")) + "".join(
            self.random_element(string.digits) for _ in range(9))
        return partial + str(luhn_check_digit(partial))


def make_faker(seed: int | None = None) -> Faker:
    """A Faker with Arabic names (``ar_AA``) and the Egypt provider, reproducible from ``seed``."""
    fake = Faker("ar_AA")
    fake.add_provider(EgyptProvider)
    if seed is not None:
        fake.seed_instance(seed)
    return fake


def random_citizen(fake: Faker, governorate: str | None = None) -> dict[str, str]:
    gender = fake.random_element(("male", "female"))
    first = fake.first_name_male() if gender == "male" else fake.first_name_female()
    return {
        "name": f"{first} {fake.first_name_male()} {fake.last_name()}",
        "national_id": fake.egyptian_national_id(governorate=governorate, gender=gender),
        "mobile": fake.egyptian_mobile(),
        "gender": gender,
    }
