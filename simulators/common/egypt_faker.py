"""The project's own Faker provider: Egyptian citizens, places and numbers that are real-shaped.

Faker's ``ar_EG`` locale localises dates only (its names and addresses fall back to English), so
:class:`EgyptProvider` brings what the simulators need, registered on an ``ar_EG`` Faker by
:func:`make_faker`:

- Arabic names in the Egyptian pattern (first name, father's first name, family name), Muslim and,
  about one in ten, Coptic; it *is* Faker's person provider for that Faker (``name()``,
  ``first_name_male()``, ``last_name()`` … answer in Arabic);
- national IDs ``C YYMMDD GG SSSS K`` (docs/domain-facts.md): century digit matching the birth
  year, a real birth date, the governorate of birth, a sequence whose last digit is odd for men and
  even for women, and the community check digit;
- mobiles on the four networks' prefixes (010, 011, 012, 015), EG IBANs with valid check digits,
  Meeza card numbers that pass Luhn;
- addresses by governorate: a building number and street, a city or district of that governorate,
  the governorate's Arabic name.

Seeded (``make_faker(seed)``), the same calls give the same values on every run.
"""

from __future__ import annotations

import string
from datetime import date, timedelta
from typing import Any

from faker import Faker
from faker.providers.person import Provider as PersonProvider

from .egypt import GOVERNORATES, MOBILE_PREFIXES, community_check_digit, iban_check_digits, luhn_check_digit

_MUSLIM_MALE = (
    "محمد", "أحمد", "محمود", "مصطفى", "علي", "حسن", "حسين", "إبراهيم", "يوسف", "عمر", "خالد", "طارق", "عمرو",
    "كريم", "هشام", "شريف", "سامح", "وليد", "ياسر", "أيمن", "عادل", "جمال", "سعيد", "فتحي", "صلاح", "مجدي",
    "ناصر", "تامر", "أشرف", "عبد الله", "عبد الرحمن", "عبد الفتاح", "عبد العزيز", "سيد", "رضا", "حمدي", "عصام",
    "إسلام", "زياد", "آدم", "ياسين", "أنس", "مروان", "حازم", "شادي", "عماد", "نبيل", "سمير", "فؤاد", "رامي",
)
_MUSLIM_FEMALE = (
    "فاطمة", "مريم", "نور", "سارة", "هدى", "منى", "إيمان", "أمل", "رحاب", "دينا", "ريم", "ياسمين", "سلمى",
    "هبة", "نادية", "سعاد", "زينب", "عائشة", "خديجة", "آية", "رانيا", "شيماء", "مروة", "نهى", "سمر", "داليا",
    "غادة", "إسراء", "ندى", "جنى", "ملك", "حبيبة", "فرح", "ليلى", "نجلاء", "عبير", "وفاء", "أسماء", "سهام", "هالة",
)
_MUSLIM_FAMILY = (
    "السيد", "إبراهيم", "عبد الحميد", "الشافعي", "المصري", "النجار", "الحداد", "عثمان", "سليمان", "منصور",
    "عبد الرازق", "الشربيني", "البنا", "العطار", "الجمال", "حجازي", "زكي", "فهمي", "بدوي", "الشاذلي",
    "عبد الغني", "موسى", "رمضان", "حافظ", "يونس", "مرسي", "الفقي", "الدسوقي", "الصعيدي", "خليل", "عزت",
    "صبري", "لطفي", "نصر", "جاد", "عبد السلام", "الطحاوي", "الأنصاري", "سالم", "شلبي",
)
_COPTIC_MALE = (
    "مينا", "جرجس", "بيشوي", "مايكل", "بولس", "شنودة", "بطرس", "كيرلس", "مرقس", "يوسف", "بيتر", "أندرو",
    "رامي", "هاني", "عماد", "نبيل", "سمير", "فادي", "ماجد", "عادل",
)
_COPTIC_FEMALE = (
    "مارينا", "مريان", "كريستين", "ماريا", "مريم", "دميانة", "كاترين", "ساندرا", "إيريني", "فيبي", "نرمين",
    "سوزان", "ماجدة", "هايدي", "جاكلين",
)
_COPTIC_FAMILY = (
    "حنا", "غالي", "عوض", "شحاتة", "رزق", "جرجس", "بطرس", "إسكندر", "ميخائيل", "عبد المسيح", "تادرس", "سوريال",
    "منقريوس", "بشاي", "لبيب", "وهبة",
)
_STREETS = (
    "شارع التحرير", "شارع الجمهورية", "شارع سعد زغلول", "شارع الجلاء", "شارع النصر", "شارع 26 يوليو",
    "شارع بورسعيد", "شارع الثورة", "شارع الجيش", "شارع المحطة", "شارع طلعت حرب", "شارع جمال عبد الناصر",
    "شارع السلام", "شارع البحر", "شارع المدارس", "شارع الجامعة", "شارع الشهيد أحمد حمدي", "شارع مصطفى كامل",
    "شارع محمد فريد", "شارع الحرية", "شارع الكورنيش", "شارع أحمد عرابي", "شارع المستشفى", "شارع الثلاثيني",
)
# Cities and districts of each governorate (real places; the catalog's local units are configuration).
CITIES: dict[str, tuple[str, ...]] = {
    "01": ("مدينة نصر", "المعادي", "مصر الجديدة", "شبرا", "حلوان", "الزيتون"),
    "02": ("المنتزه", "سيدي جابر", "العجمي", "محرم بك", "برج العرب"),
    "03": ("حي الشرق", "حي العرب", "حي الضواحي", "بورفؤاد"),
    "04": ("حي الأربعين", "حي الجناين", "حي عتاقة", "حي السويس"),
    "11": ("دمياط", "رأس البر", "فارسكور", "كفر سعد", "دمياط الجديدة"),
    "12": ("المنصورة", "ميت غمر", "طلخا", "أجا", "السنبلاوين"),
    "13": ("الزقازيق", "بلبيس", "منيا القمح", "أبو حماد", "العاشر من رمضان"),
    "14": ("بنها", "شبرا الخيمة", "قليوب", "الخانكة", "طوخ"),
    "15": ("كفر الشيخ", "دسوق", "فوه", "بيلا", "سيدي سالم"),
    "16": ("طنطا", "المحلة الكبرى", "كفر الزيات", "زفتى", "السنطة"),
    "17": ("شبين الكوم", "منوف", "أشمون", "قويسنا", "السادات"),
    "18": ("دمنهور", "كفر الدوار", "رشيد", "إيتاي البارود", "أبو حمص"),
    "19": ("الإسماعيلية", "فايد", "القنطرة غرب", "التل الكبير"),
    "21": ("الدقي", "الهرم", "العجوزة", "السادس من أكتوبر", "إمبابة", "الشيخ زايد"),
    "22": ("بني سويف", "الواسطى", "ناصر", "ببا", "الفشن"),
    "23": ("الفيوم", "سنورس", "إطسا", "طامية", "يوسف الصديق"),
    "24": ("المنيا", "ملوي", "سمالوط", "بني مزار", "مغاغة"),
    "25": ("أسيوط", "ديروط", "منفلوط", "أبنوب", "القوصية"),
    "26": ("سوهاج", "أخميم", "جرجا", "طهطا", "البلينا"),
    "27": ("قنا", "نجع حمادي", "قوص", "دشنا", "أبو تشت"),
    "28": ("أسوان", "كوم أمبو", "إدفو", "دراو", "نصر النوبة"),
    "29": ("الأقصر", "إسنا", "أرمنت", "الطود"),
    "31": ("الغردقة", "سفاجا", "القصير", "مرسى علم", "رأس غارب"),
    "32": ("الخارجة", "الداخلة", "الفرافرة", "باريس"),
    "33": ("مرسى مطروح", "العلمين", "الضبعة", "سيوة", "السلوم"),
    "34": ("العريش", "بئر العبد", "الشيخ زويد", "رفح"),
    "35": ("الطور", "شرم الشيخ", "دهب", "نويبع", "سانت كاترين"),
}
COPTIC_SHARE_PERCENT = 10  # assumed: about one citizen in ten carries a Coptic name


class EgyptProvider(PersonProvider):
    """Faker provider (a ``BaseProvider``, as Faker's person providers are) for Egyptian citizens:
    Arabic names, national IDs, mobiles, addresses by governorate, IBANs and Meeza card numbers."""

    # Faker's person provider reads these: name(), first_name_male(), last_name() … answer in Arabic.
    first_names_male = _MUSLIM_MALE + _COPTIC_MALE
    first_names_female = _MUSLIM_FEMALE + _COPTIC_FEMALE
    first_names = first_names_male + first_names_female
    last_names = _MUSLIM_FAMILY + _COPTIC_FAMILY
    formats_male = ("{{first_name_male}} {{first_name_male}} {{last_name}}",)
    formats_female = ("{{first_name_female}} {{first_name_male}} {{last_name}}",)
    formats = formats_male + formats_female
    # Forms of address (prefix() …); no suffixes: Faker's person provider answers "" without them.
    prefixes_male = ("السيد", "الأستاذ", "المهندس", "الدكتور")
    prefixes_female = ("السيدة", "الأستاذة", "المهندسة", "الدكتورة")

    # --- places ---------------------------------------------------------------------------------
    def governorate_code(self) -> str:
        return self.random_element(sorted(GOVERNORATES))

    def egyptian_address(self, governorate: str | None = None) -> str:
        """``<number> <street>، <city>، <governorate>`` in Arabic (ASCII digits), in ``governorate``."""
        gov = governorate or self.governorate_code()
        city = self.random_element(CITIES[gov])
        return f"{self.random_int(1, 250)} {self.random_element(_STREETS)}، {city}، {GOVERNORATES[gov][1]}"

    # --- people -----------------------------------------------------------------------------------
    def egyptian_name(self, gender: str | None = None) -> str:
        """First name (of ``gender``), father's first name, family name; Coptic or Muslim throughout."""
        gender = gender or self.random_element(("male", "female"))
        coptic = self.random_int(0, 99) < COPTIC_SHARE_PERCENT
        male = _COPTIC_MALE if coptic else _MUSLIM_MALE
        first = self.random_element(male if gender == "male" else (_COPTIC_FEMALE if coptic else _MUSLIM_FEMALE))
        family = self.random_element(_COPTIC_FAMILY if coptic else _MUSLIM_FAMILY)
        return f"{first} {self.random_element(male)} {family}"

    def egyptian_national_id(self, governorate: str | None = None, gender: str | None = None,
                             birth_date: date | None = None) -> str:
        """A national ID of a citizen born in ``governorate`` on ``birth_date`` (1950-2004 when not given)."""
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

    def egyptian_citizen(self, governorate: str | None = None) -> dict[str, str]:
        """``{name, national_id, mobile, gender, address}`` of a citizen born and living in ``governorate``."""
        gov = governorate or self.governorate_code()
        gender = self.random_element(("male", "female"))
        return {
            "name": self.egyptian_name(gender),
            "national_id": self.egyptian_national_id(governorate=gov, gender=gender),
            "mobile": self.egyptian_mobile(),
            "gender": gender,
            "address": self.egyptian_address(gov),
        }

    # --- money ------------------------------------------------------------------------------------
    def egyptian_iban(self, bank_code: str = "0019") -> str:
        bban = bank_code + "".join(self.random_element(string.digits) for _ in range(21))
        return "EG" + iban_check_digits("EG", bban) + bban

    def meeza_card_number(self) -> str:
        partial = self.random_element(("507803", "507808")) + "".join(
            self.random_element(string.digits) for _ in range(9))
        return partial + str(luhn_check_digit(partial))


def make_faker(seed: int | None = None) -> Faker:
    """An ``ar_EG`` Faker with :class:`EgyptProvider`, reproducible from ``seed``."""
    fake = Faker("ar_EG")
    fake.add_provider(EgyptProvider)
    if seed is not None:
        fake.seed_instance(seed)
    return fake


def random_citizen(fake: Any, governorate: str | None = None) -> dict[str, str]:
    """A generated citizen (``fake`` from :func:`make_faker`), born and living in ``governorate``."""
    return fake.egyptian_citizen(governorate)
