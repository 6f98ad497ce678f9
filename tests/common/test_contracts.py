"""Every contract is a valid JSON Schema 2020-12 and formats are really checked."""

from __future__ import annotations

import pytest

from simulators.common.contracts import CONTRACTS_DIR, check_format_support, validate, validator
from simulators.common.errors import ValidationFailed


@pytest.mark.parametrize("name", sorted(p.name for p in CONTRACTS_DIR.glob("*.schema.json")))
def test_contract_is_a_valid_schema(name: str) -> None:
    assert validator(name) is not None


def test_date_time_format_is_enforced() -> None:
    check_format_support()
    with pytest.raises(ValidationFailed) as info:
        validate("admin-clock.schema.json", {"set": "2026-13-45 soon"})
    assert info.value.field == "set" and "date-time" in info.value.message


def test_missing_field_is_named() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate("kh-payment.schema.json", {"khales_transaction_id": "K1"})
    assert info.value.field == "bill_reference" or info.value.field in {"amount", "currency", "outlet_id", "paid_at"}
