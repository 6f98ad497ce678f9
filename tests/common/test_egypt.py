"""Real-shaped Egyptian data: national IDs, mobiles, IBANs, card numbers."""

from __future__ import annotations

from simulators.common.egypt import (
    GOVERNORATES,
    iban_valid,
    luhn_valid,
    make_faker,
    national_id_problem,
    random_citizen,
)


def test_generated_citizens_have_valid_structure_and_are_reproducible() -> None:
    first = [random_citizen(make_faker(7), "01") for _ in range(1)]
    again = [random_citizen(make_faker(7), "01") for _ in range(1)]
    assert first == again
    fake = make_faker(3)
    for _ in range(200):
        citizen = random_citizen(fake)
        assert national_id_problem(citizen["national_id"], check_digit=True) is None
        assert citizen["mobile"][:3] in ("010", "011", "012", "015") and len(citizen["mobile"]) == 11
        gender_digit = int(citizen["national_id"][12])
        assert (gender_digit % 2 == 1) == (citizen["gender"] == "male")
        assert any("\u0600" <= ch <= "\u06ff" for ch in citizen["name"])  # Arabic name


def test_national_id_structure_checks() -> None:
    assert national_id_problem("12345") == "a national ID is 14 digits"
    assert "century" in national_id_problem("12901010112345")
    assert "birth date" in national_id_problem("29913010112345")
    assert "governorate" in national_id_problem("29001019912345")
    assert national_id_problem("29001018812345") is None  # born abroad
    assert len(GOVERNORATES) == 27


def test_iban_and_cards() -> None:
    fake = make_faker(1)
    iban = fake.egyptian_iban()
    assert len(iban) == 29 and iban_valid(iban)
    assert not iban_valid(iban[:-1] + str((int(iban[-1]) + 1) % 10))
    card = fake.meeza_card_number()
    assert card.startswith(("507803", "507808")) and luhn_valid(card)
    assert not luhn_valid("4111111111111112")
