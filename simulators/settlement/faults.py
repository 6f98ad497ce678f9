"""Settlement's own (domain) faults: their names, where each acts, and which specs can be applied.

Every kind acts at one point of the settlement party and is scoped by ``match`` on the attributes
named at that point (all optional; none = every batch / line / file). A spec the party could not
apply as written (a ``match`` key it never names, a missing or malformed param, a governorate with
no bank account) is refused at declaration with a 422 naming the field: a typo must not turn into a
fault that silently never hits.

| kind | point | match | params |
| --- | --- | --- | --- |
| late_batch | batch | governorate_code, business_date | business_days (default 1) |
| short_batch | credit | governorate_code, business_date, batch_id | amount "X.XX" (required) |
| credit_late | credit | governorate_code, business_date, batch_id | business_days (default 1) |
| missing_transaction, settled_twice | collection | governorate_code, bill_reference, transaction_number, channel | — |
| wrong_governorate | collection | same | governorate_code (required: another catalog governorate) |
| file_duplicated | file | business_date | same_id (default true) |
| file_bad_signature | file | business_date | — |
| file_broken_line | file | business_date | line (default 1), damage truncate \\| garble_amount |
| credit_without_file | file | governorate_code, business_date | file_late_business_days (optional) |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

from simulators.common.errors import ValidationFailed
from simulators.common.faults import check_point_scope
from simulators.common.money import parse_amount
from simulators.common.wire import is_date

LATE_BATCH = "late_batch"
SHORT_BATCH, CREDIT_LATE = "short_batch", "credit_late"
MISSING_TRANSACTION, SETTLED_TWICE, WRONG_GOVERNORATE = "missing_transaction", "settled_twice", "wrong_governorate"
FILE_DUPLICATED, FILE_BAD_SIGNATURE, FILE_BROKEN_LINE = "file_duplicated", "file_bad_signature", "file_broken_line"
CREDIT_WITHOUT_FILE = "credit_without_file"

BATCH_POINT, CREDIT_POINT, COLLECTION_POINT, FILE_POINT = "batch", "credit", "collection", "file"
COLLECTION_MATCH = ("governorate_code", "bill_reference", "transaction_number", "channel")
CREDIT_MATCH = ("governorate_code", "business_date", "batch_id")

POINTS: dict[str, str] = {
    LATE_BATCH: BATCH_POINT,
    SHORT_BATCH: CREDIT_POINT, CREDIT_LATE: CREDIT_POINT,
    MISSING_TRANSACTION: COLLECTION_POINT, SETTLED_TWICE: COLLECTION_POINT, WRONG_GOVERNORATE: COLLECTION_POINT,
    FILE_DUPLICATED: FILE_POINT, FILE_BAD_SIGNATURE: FILE_POINT, FILE_BROKEN_LINE: FILE_POINT,
    CREDIT_WITHOUT_FILE: FILE_POINT,
}
KINDS = tuple(POINTS)
MATCH_KEYS: dict[str, tuple[str, ...]] = {
    LATE_BATCH: ("governorate_code", "business_date"),
    SHORT_BATCH: CREDIT_MATCH, CREDIT_LATE: CREDIT_MATCH,
    MISSING_TRANSACTION: COLLECTION_MATCH, SETTLED_TWICE: COLLECTION_MATCH, WRONG_GOVERNORATE: COLLECTION_MATCH,
    FILE_DUPLICATED: ("business_date",), FILE_BAD_SIGNATURE: ("business_date",),
    FILE_BROKEN_LINE: ("business_date",), CREDIT_WITHOUT_FILE: ("governorate_code", "business_date"),
}
PARAMS: dict[str, tuple[str, ...]] = {
    LATE_BATCH: ("business_days",), SHORT_BATCH: ("amount",), CREDIT_LATE: ("business_days",),
    MISSING_TRANSACTION: (), SETTLED_TWICE: (), WRONG_GOVERNORATE: ("governorate_code",),
    FILE_DUPLICATED: ("same_id",), FILE_BAD_SIGNATURE: (), FILE_BROKEN_LINE: ("line", "damage"),
    CREDIT_WITHOUT_FILE: ("file_late_business_days",),
}
REQUIRED: dict[str, str] = {SHORT_BATCH: "amount", WRONG_GOVERNORATE: "governorate_code"}
COMMON_PARAMS = ("rate", "seed")  # any fault may be intermittent (checked by the fault injector)
DAMAGES = ("truncate", "garble_amount")
MAX_BUSINESS_DAYS = 30
MAX_LINE = 2_000_000  # the delivery contract's largest line_count
CHANNELS = ("card", "cash")
_GOVERNORATE = re.compile(r"[0-9]{2}", re.ASCII)


def business_days(params: dict[str, Any], name: str = "business_days") -> int:
    """The fault's ``params.<name>`` (validated at declaration), default 1."""
    return int(params.get(name, 1))


def make_validator(banked_governorates: Callable[[], Collection[str]]) -> Callable[[dict[str, Any]], None]:
    """The validator of every settlement kind; ``banked_governorates()`` are the catalog governorates
    with a bank account (the only ones a line can be moved to by ``wrong_governorate``)."""

    def validate(spec: dict[str, Any]) -> None:
        kind = str(spec.get("kind"))
        check_point_scope(spec, POINTS[kind])
        match = spec.get("match") or {}
        for key, value in match.items():
            _check_match(kind, str(key), value)
        params = spec.get("params") or {}
        for name in params:
            if name not in PARAMS[kind] and name not in COMMON_PARAMS:
                raise ValidationFailed(f"a {kind} fault takes {', '.join(PARAMS[kind]) or 'no params'}, "
                                       f"not {str(name)[:40]!r}", field=f"params.{name}")
        required = REQUIRED.get(kind)
        if required is not None and required not in params:
            raise ValidationFailed(f"params.{required} is required for a {kind} fault", field=f"params.{required}")
        for name, value in params.items():
            if name not in COMMON_PARAMS:
                _check_param(kind, name, value, match, banked_governorates)

    return validate


def _check_match(kind: str, key: str, value: Any) -> None:
    field = f"match.{key}"
    if key not in MATCH_KEYS[kind]:
        raise ValidationFailed(f"a {kind} fault matches on {', '.join(MATCH_KEYS[kind])}, not {key[:40]!r}",
                               field=field)
    text = str(value)
    if key == "governorate_code" and not _GOVERNORATE.fullmatch(text):
        raise ValidationFailed("match.governorate_code is two digits such as \"01\" (a string)", field=field)
    if key == "business_date" and not is_date(text):
        raise ValidationFailed("match.business_date is a date YYYY-MM-DD", field=field)
    if key == "channel" and text not in CHANNELS:
        raise ValidationFailed(f"match.channel is one of {', '.join(CHANNELS)}", field=field)
    if not text or len(text) > 64:
        raise ValidationFailed(f"{field} is 1 to 64 characters", field=field)


def _check_param(kind: str, name: str, value: Any, match: dict[str, Any],
                 banked_governorates: Callable[[], Collection[str]]) -> None:
    field = f"params.{name}"
    if name in ("business_days", "file_late_business_days"):
        if not _int_within(value, 1, MAX_BUSINESS_DAYS):
            raise ValidationFailed(f"{field} is a whole number of business days from 1 to {MAX_BUSINESS_DAYS}",
                                   field=field)
    elif name == "amount":
        parse_amount(value, field)  # a positive "X.XX": how much less the bank credits
    elif name == "governorate_code":
        if not isinstance(value, str) or value not in banked_governorates():
            raise ValidationFailed(f"{field} must be a governorate of the catalog with a bank account, "
                                   f"such as \"21\" (a string)", field=field)
        if str(match.get("governorate_code", "")) == value:
            raise ValidationFailed(f"{field} is the governorate the line already belongs to: name another one",
                                   field=field)
    elif name == "same_id":
        if not isinstance(value, bool):
            raise ValidationFailed(f"{field} is true (the same file_id twice) or false (a copy under -R)",
                                   field=field)
    elif name == "line":
        if not _int_within(value, 1, MAX_LINE):
            raise ValidationFailed(f"{field} is the data line to damage, from 1 (the first after the header)",
                                   field=field)
    elif name == "damage" and value not in DAMAGES:
        raise ValidationFailed(f"{field} is one of {', '.join(DAMAGES)}", field=field)


def _int_within(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


