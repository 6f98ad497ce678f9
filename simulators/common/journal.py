"""The journal: every request a component received and every call it made, with bodies.

Scenarios assert on journals ("citizen services received exactly one confirmation"), and failures
show journal excerpts as evidence. Secrets and card data never enter the journal: bodies pass
through :func:`redact` first.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import unicodedata
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote_plus

MAX_BODY = 16_384
_SECRET_KEYS = ("cvv", "cvc", "cvv2", "password", "secret", "otp", "card_number", "cardnumber", "pan")
# a key may be written with separators between its letters ("c_v_v", "card-number", "Card.Number")
_KEYS = "|".join(r"[_\-. ]?".join(key.replace("_", "")) for key in _SECRET_KEYS)
# key=value / "key": "value" / key: value  (JSON, urlencoded forms, query strings, YAML-ish text)
_KEYED = re.compile(r'("?(?:' + _KEYS + r')"?\s*[:=]\s*"?)[^"&,}\s]*', re.IGNORECASE)
# multipart/form-data: the value is the first line after the part's blank line
_MULTIPART = re.compile(r'(name="(?:' + _KEYS + r')"[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n)[^\r\n]*',
                        re.IGNORECASE)
# a run of 13-19 digits of any script (ASCII, fullwidth, Arabic-Indic...), a few spaces, dots, dashes or
# underscores allowed between them ("5123 4500 0000 0008", "4111.1111.1111.1111", "４１１１…")
_DIGIT_RUN = re.compile(r"(?<!\d)\d(?:[ ._\-]{0,4}\d){12,18}(?!\d)")


def _mask_pan(match: re.Match[str]) -> str:
    digits = "".join(str(unicodedata.digit(ch)) for ch in match.group(0) if ch.isdigit())
    if not _luhn(digits):
        return match.group(0)  # a bill reference, a national ID: not a card number
    return f"{digits[:6]}******{digits[-4:]}"


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def redact(text: str) -> str:
    """Mask card numbers (keep BIN and last four) and secret fields, in any encoding of a form.

    Percent-encoded text (forms, query strings) is decoded first, so ``cv%76=123`` cannot hide a
    CVV; multipart parts, JSON members and ``key=value`` pairs are all masked.
    """
    if text and text[0] not in "[{" and "%" in text:
        text = unquote_plus(text)
    masked = _DIGIT_RUN.sub(_mask_pan, text)
    masked = _MULTIPART.sub(r"\1***", masked)
    masked = _KEYED.sub(r"\1***", masked)
    return masked if len(masked) <= MAX_BODY else masked[:MAX_BODY] + "…[truncated]"


def secret_field(name: str) -> bool:
    """Is a form field of this name secret? Loose on purpose: ``Card-Number``, ``cvv2``, ``x_pan``."""
    folded = re.sub(r"[^a-z0-9]", "", name.lower())
    return any(key.replace("_", "") in folded for key in _SECRET_KEYS)


def form_text(fields: list[tuple[str | None, str]], files: list[tuple[str | None, str]]) -> str:
    """A parsed form as the journal keeps it: secret fields starred, card numbers masked anywhere."""
    # A field whose name could not be read might be anything: its value is starred too.
    parts = [f"{name}={'***' if name is None or secret_field(name) else value}" for name, value in fields]
    parts += [f"{name}=<file {filename}>" for name, filename in files]
    return redact("&".join(parts))


def body_text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    return redact(raw)


@dataclass
class JournalEntry:
    id: int
    at: str
    direction: str  # "in" (received) or "out" (sent)
    method: str
    url: str
    path: str
    status: int | None
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: str = ""
    response_body: str = ""
    duration_ms: float = 0.0
    peer: str = ""
    outcome: str = "ok"  # ok | error | timeout | fault:<kind>
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["request_json"] = _maybe_json(self.request_body)
        data["response_json"] = _maybe_json(self.response_body)
        return data


def _maybe_json(text: str) -> Any:
    if not text or text[0] not in "[{":
        return None
    try:
        data = json.loads(text)
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # a lone surrogate could never be served
    except (ValueError, RecursionError, UnicodeEncodeError):
        return None
    return data


_KEPT_HEADERS = ("content-type", "x-tahseel-signature", "x-tahseel-timestamp", "idempotency-key")


class Journal:
    """A bounded, thread-safe, append-only log of HTTP exchanges."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._entries: deque[JournalEntry] = deque(maxlen=capacity)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def record(self, **fields: Any) -> JournalEntry:
        headers = fields.pop("request_headers", {}) or {}
        kept = {k: v for k, v in headers.items() if k.lower() in _KEPT_HEADERS}
        with self._lock:
            entry = JournalEntry(id=next(self._ids), request_headers=kept, **fields)
            self._entries.append(entry)
            return entry

    def entries(
        self,
        *,
        since: int = 0,
        direction: str | None = None,
        path: str | None = None,
        method: str | None = None,
        limit: int | None = None,
    ) -> list[JournalEntry]:
        with self._lock:
            items = list(self._entries)
        out = [
            e
            for e in items
            if e.id > since
            and (direction is None or e.direction == direction)
            and (path is None or path in e.path)
            and (method is None or e.method == method.upper())
        ]
        return out[-limit:] if limit else out

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
