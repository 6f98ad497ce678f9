"""Settlement's own (domain) faults: their names, where each acts, and which specs can be applied.

Every kind acts at one point of the settlement party and is scoped by ``match`` on the attributes
named at that point (all optional; none = every batch / line / file). A spec the party could not
apply as written (a ``match`` key it never names, a ``match`` value no batch / line / file can ever
have, a missing or malformed param, a governorate with no bank account) is refused at declaration with
a 422 naming the field: a typo must not turn into a fault that silently never hits. Every kind's
``match`` goes through one check (:func:`_check_match`): each value is a string of the form the
attribute has (``governorate_code`` a catalog governorate with a bank account, ``business_date`` an
Egyptian business day, ``batch_id`` ``B-NN-YYYYMMDD[-n]`` agreeing with the other keys,
``bill_reference`` 12 digits, ``transaction_number`` 1 to 64 characters, ``channel`` card | cash).

| kind | point | match | params |
| --- | --- | --- | --- |
| late_batch | batch | governorate_code, business_date | business_days (default 1) |
| short_batch | credit | governorate_code, business_date, batch_id | amount "X.XX" (required, at most MAX_SHORT) |
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
from datetime import date
from typing import Any

from simulators.common.errors import ValidationFailed
from simulators.common.faults import check_point_scope
from simulators.common.money import format_amount, parse_amount
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
# short_batch: 1,000,000,000.00 EGP, far above any day's batch of one governorate yet far below the
# schema's 12 digits; at credit time the shortfall is further capped at the batch's own amount.
MAX_SHORT = 1_000_000_000 * 100
CHANNELS = ("card", "cash")
_GOVERNORATE = re.compile(r"[0-9]{2}", re.ASCII)
_BILL_REFERENCE = re.compile(r"[0-9]{12}", re.ASCII)
_BATCH_ID = re.compile(r"B-([0-9]{2})-([0-9]{4})([0-9]{2})([0-9]{2})(-[1-9][0-9]{0,5})?", re.ASCII)


def business_days(params: dict[str, Any], name: str = "business_days") -> int:
    """The fault's ``params.<name>`` (validated at declaration), default 1."""
    return int(params.get(name, 1))


def make_validator(banked_governorates: Callable[[], Collection[str]],
                   is_business_day: Callable[[date], bool] | None = None) -> Callable[[dict[str, Any]], None]:
    """The validator of every settlement kind; ``banked_governorates()`` are the catalog governorates
    with a bank account (the only ones a line can be fed for, or moved to by ``wrong_governorate``);
    ``is_business_day`` the calendar's (a batch's business date is always a business day)."""

    def validate(spec: dict[str, Any]) -> None:
        kind = str(spec.get("kind"))
        check_point_scope(spec, POINTS[kind])
        match = spec.get("match") or {}
        for key, value in match.items():
            _check_match(kind, str(key), value, match, banked_governorates, is_business_day)
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


def _check_match(kind: str, key: str, value: Any, match: dict[str, Any],
                 banked_governorates: Callable[[], Collection[str]],
                 is_business_day: Callable[[date], bool] | None) -> None:
    """The one check of every kind's ``match``: a key the kind's point names, and a value that
    attribute can have (else the fault could never hit)."""
    field = f"match.{key}"
    if key not in MATCH_KEYS[kind]:
        raise ValidationFailed(f"a {kind} fault matches on {', '.join(MATCH_KEYS[kind])}, not {key[:40]!r}",
                               field=field)
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} is a string (the attribute is one: {type(value).__name__} "
                               f"{str(value)[:40]!r} never matches)", field=field)
    if not value or len(value) > 64:
        raise ValidationFailed(f"{field} is 1 to 64 characters", field=field)
    if key == "governorate_code":
        if not _GOVERNORATE.fullmatch(value) or value not in banked_governorates():
            raise ValidationFailed(f"{field} must be a governorate of the catalog with a bank account, such as "
                                   f"\"01\" (no line of {value[:8]!r} is ever settled)", field=field)
    elif key == "business_date":
        if not is_date(value):
            raise ValidationFailed(f"{field} is a date YYYY-MM-DD", field=field)
        if is_business_day is not None and not is_business_day(date.fromisoformat(value)):
            raise ValidationFailed(f"{field} {value} is not an Egyptian business day: no batch or file is "
                                   f"ever of that date", field=field)
    elif key == "batch_id":
        _check_batch_id(field, value, match, banked_governorates, is_business_day)
    elif key == "bill_reference" and not _BILL_REFERENCE.fullmatch(value):
        raise ValidationFailed(f"{field} is 12 digits, as every fed bill_reference", field=field)
    elif key == "channel" and value not in CHANNELS:
        raise ValidationFailed(f"{field} is one of {', '.join(CHANNELS)}", field=field)


def _check_batch_id(field: str, value: str, match: dict[str, Any], banked_governorates: Callable[[], Collection[str]],
                    is_business_day: Callable[[date], bool] | None) -> None:
    """``B-<governorate>-<YYYYMMDD>[-n]`` of a banked governorate and a business day, naming the
    governorate and date of the rest of ``match``."""
    found = _BATCH_ID.fullmatch(value)
    day = f"{found.group(2)}-{found.group(3)}-{found.group(4)}" if found else ""
    if (found is None or not is_date(day) or found.group(1) not in banked_governorates()
            or (is_business_day is not None and not is_business_day(date.fromisoformat(day)))):
        raise ValidationFailed(f"{field} is a batch id such as \"B-01-20261203\" (or a supplementary "
                               f"\"B-01-20261203-2\") of a governorate with a bank account and a business day",
                               field=field)
    if "governorate_code" in match and match["governorate_code"] != found.group(1):
        raise ValidationFailed(f"{field} {value} is not of match.governorate_code {match['governorate_code']!r}: "
                               f"the fault could never hit", field=field)
    if "business_date" in match and match["business_date"] != day:
        raise ValidationFailed(f"{field} {value} is not of match.business_date {match['business_date']!r}: "
                               f"the fault could never hit", field=field)


def _check_param(kind: str, name: str, value: Any, match: dict[str, Any],
                 banked_governorates: Callable[[], Collection[str]]) -> None:
    field = f"params.{name}"
    if name in ("business_days", "file_late_business_days"):
        if not _int_within(value, 1, MAX_BUSINESS_DAYS):
            raise ValidationFailed(f"{field} is a whole number of business days from 1 to {MAX_BUSINESS_DAYS}",
                                   field=field)
    elif name == "amount":  # a positive "X.XX": how much less the bank credits (capped at the batch's amount)
        if parse_amount(value, field) > MAX_SHORT:
            raise ValidationFailed(f"{field} is at most {format_amount(MAX_SHORT)} (no batch is larger; a larger "
                                   f"shortfall would be capped at the batch's amount anyway)", field=field)
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


