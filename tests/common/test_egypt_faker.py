"""The project's Faker provider: every generated national ID has the right structure (FACTS.md)."""

from __future__ import annotations

import re
from datetime import date

from faker import Faker

from simulators.common import egypt
from simulators.common.egypt import (
    GOVERNORATES,
    community_check_digit,
    make_faker,
    national_id_problem,
    parse_national_id,
    random_citizen,
)
from simulators.common.egypt_faker import CITIES, EgyptProvider

ARABIC = re.compile(r"[\u0600-\u06ff]")


def test_many_seeded_national_ids_have_the_structure_of_facts() -> None:
    fake = make_faker(2026)
    codes = sorted(GOVERNORATES)
    for i in range(5400):  # 200 per governorate
        governorate = codes[i % len(codes)]
        citizen = random_citizen(fake, governorate)
        nid = citizen["national_id"]
        assert re.fullmatch(r"[23][0-9]{13}", nid, re.ASCII), nid
        # Century digit: 2 for the 1900s, 3 for the 2000s, matching the birth year.
        year = (1900 if nid[0] == "2" else 2000) + int(nid[1:3])
        born = date(year, int(nid[3:5]), int(nid[5:7]))  # a real date, or ValueError
        assert date(1950, 1, 1) <= born <= date(2005, 1, 1)
        assert nid[7:9] == governorate  # born in the governorate asked for
        gender_digit = int(nid[12])  # the sequence's last digit: odd for men, even for women
        assert gender_digit % 2 == (1 if citizen["gender"] == "male" else 0)
        assert community_check_digit(nid[:13]) == int(nid[13])
        assert national_id_problem(nid, check_digit=True) is None
        parts = parse_national_id(nid)
        assert parts is not None
        assert (parts.birth_date, parts.governorate_code, parts.gender) == (born, governorate, citizen["gender"])
        assert re.fullmatch(r"01[0125][0-9]{8}", citizen["mobile"], re.ASCII)
        assert ARABIC.search(citizen["name"]) and len(citizen["name"].split()) >= 3
        assert citizen["address"].endswith(GOVERNORATES[governorate][1])
        assert any(city in citizen["address"] for city in CITIES[governorate])


def test_the_same_seed_gives_the_same_citizens_and_both_centuries_occur() -> None:
    first = [random_citizen(make_faker(7), "29") for _ in range(3)]
    assert first == [random_citizen(make_faker(7), "29") for _ in range(3)]
    fake = make_faker(11)
    centuries = {fake.egyptian_national_id()[0] for _ in range(500)}
    assert centuries == {"2", "3"}
    born_2001 = fake.egyptian_national_id(governorate="04", gender="female", birth_date=date(2001, 2, 28))
    assert born_2001.startswith("301022804") and int(born_2001[12]) % 2 == 0


def test_the_provider_is_registered_on_an_ar_eg_faker_and_speaks_arabic() -> None:
    fake = make_faker(3)
    assert isinstance(fake, Faker) and fake.locales == ["ar_EG"]
    assert any(isinstance(p, EgyptProvider) for p in fake.providers)
    for value in (fake.name(), fake.first_name_male(), fake.first_name_female(), fake.last_name(),
                  fake.egyptian_name("female"), fake.egyptian_address("35")):
        assert ARABIC.search(value), value
    assert egypt.make_faker is make_faker  # still importable from simulators.common.egypt


def test_parse_national_id_refuses_what_the_check_refuses() -> None:
    assert parse_national_id("29913450100011") is None  # month 13
    assert parse_national_id("29001019912345") is None  # governorate 99
    assert parse_national_id(12345678901234) is None
    born_abroad = parse_national_id("29001018812345")
    assert born_abroad is not None and born_abroad.governorate_code == "88" and born_abroad.gender == "female"
