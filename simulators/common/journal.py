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
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_BODY = 16_384
_PAN = re.compile(r"(?<!\d)(\d{6})\d{3,9}(\d{4})(?!\d)")
_SECRET_KEYS = {"cvv", "cvc", "password", "secret", "otp", "card_number", "pan"}


def redact(text: str) -> str:
    """Mask anything that looks like a full card number (keep BIN and last four) and truncate."""
    masked = _PAN.sub(lambda m: f"{m.group(1)}******{m.group(2)}", text)
    masked = re.sub(
        r'("?(?:' + "|".join(_SECRET_KEYS) + r')"?\s*[:=]\s*"?)[^"&,}\s]*',
        r"\1***",
        masked,
        flags=re.IGNORECASE,
    )
    return masked if len(masked) <= MAX_BODY else masked[:MAX_BODY] + "…[truncated]"


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
        return json.loads(text)
    except ValueError:
        return None


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
