"""HMAC-SHA256 signatures over a timestamp and the raw body, with a replay window.

Used for webhooks, Khales biller calls, the collections feed and settlement notices. The signed
text is ``"<unix seconds>.<raw body bytes>"``; the signature travels as ``X-Tahseel-Signature:
v1=<lowercase hex>`` beside ``X-Tahseel-Timestamp``. Verification compares in constant time and
refuses timestamps outside the window around the receiver's (simulated) clock.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

from .errors import BadSignature

SIGNATURE_HEADER = "X-Tahseel-Signature"
TIMESTAMP_HEADER = "X-Tahseel-Timestamp"
DEFAULT_WINDOW_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign_headers(secret: str, body: bytes, now: datetime) -> dict[str, str]:
    """Headers that sign ``body`` at ``now`` (the sender's clock)."""
    timestamp = int(now.timestamp())
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: f"v1={signature(secret, timestamp, body)}"}


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: datetime,
           window_seconds: int = DEFAULT_WINDOW_SECONDS) -> None:
    """Raise :class:`BadSignature` (naming the header) unless ``body`` is signed by ``secret``."""
    raw_ts = headers.get(TIMESTAMP_HEADER)
    raw_sig = headers.get(SIGNATURE_HEADER)
    if not raw_ts:
        raise BadSignature(f"missing {TIMESTAMP_HEADER} header", field=TIMESTAMP_HEADER,
                           code="SIGNATURE_MISSING")
    if not raw_sig:
        raise BadSignature(f"missing {SIGNATURE_HEADER} header", field=SIGNATURE_HEADER,
                           code="SIGNATURE_MISSING")
    try:
        timestamp = int(raw_ts)
    except ValueError:
        raise BadSignature("timestamp is not an integer number of seconds",
                           field=TIMESTAMP_HEADER) from None
    if abs(now.timestamp() - timestamp) > window_seconds:
        raise BadSignature(
            f"timestamp is outside the {window_seconds}s replay window", field=TIMESTAMP_HEADER,
            code="SIGNATURE_EXPIRED")
    given = raw_sig.removeprefix("v1=")
    expected = signature(secret, timestamp, body)
    if not hmac.compare_digest(given.encode("ascii", "replace"), expected.encode("ascii")):
        raise BadSignature("signature does not match the body", field=SIGNATURE_HEADER)
