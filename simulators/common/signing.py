"""HMAC-SHA256 signatures over a timestamp and the raw body, with a replay window.

Used for webhooks, Khales biller calls, the collections feed and settlement notices. The signed
text is ``"<unix seconds>.<raw body bytes>"``; the signature travels as ``X-Tahseel-Signature:
v1=<lowercase hex>`` beside ``X-Tahseel-Timestamp``. Verification compares in constant time and
refuses timestamps outside the window around the receiver's (simulated) clock.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime

from .errors import BadSignature

SIGNATURE_HEADER = "X-Tahseel-Signature"
TIMESTAMP_HEADER = "X-Tahseel-Timestamp"
DEFAULT_WINDOW_SECONDS = 300
_TIMESTAMP = re.compile(r"[1-9][0-9]{0,11}", re.ASCII)
_SIGNATURE = re.compile(r"v1=[0-9a-f]{64}", re.ASCII)


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
    if not _TIMESTAMP.fullmatch(raw_ts):
        raise BadSignature("timestamp must be a whole number of Unix seconds (ASCII digits, no sign)",
                           field=TIMESTAMP_HEADER)
    timestamp = int(raw_ts)
    if abs(now.timestamp() - timestamp) > window_seconds:
        raise BadSignature(
            f"timestamp is outside the {window_seconds}s replay window", field=TIMESTAMP_HEADER,
            code="SIGNATURE_EXPIRED")
    if not _SIGNATURE.fullmatch(raw_sig):
        raise BadSignature("signature must be 'v1=' and 64 lower-case hex digits", field=SIGNATURE_HEADER)
    expected = signature(secret, timestamp, body)
    if not hmac.compare_digest(raw_sig[3:].encode("ascii"), expected.encode("ascii")):
        raise BadSignature("signature does not match the body", field=SIGNATURE_HEADER)
