"""Published files (settlement's detailed file, Khales' end-of-day file): CSV bytes and signed answers.

One way to write them, so every party's file reads the same in a spreadsheet and in a reconciler:
UTF-8, a header row, ``\\r\\n`` line ends (RFC 4180), and, on request, a byte-order mark so that
Excel takes the bytes as UTF-8 (Arabic names would otherwise come out as mojibake). The answer is
signed like every message between the parties (``X-Tahseel-Signature`` over the exact bytes sent,
BOM included), so a reader can prove the file it holds is the one the party published.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from flask import Response, request

from .errors import ApiError
from .signing import sign_headers

BOM = b"\xef\xbb\xbf"
FLAG_VALUES = ("0", "1", "true", "false", "")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def safe_cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula (``=cmd|…``, ``+SUM(…)``, ``@…``) gets a
    leading apostrophe (OWASP's CSV-injection advice); signed amounts such as ``-27.00`` stay numbers.
    Citizens' names reach these files, and the ``excel`` variant is made to be opened in Excel."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """The CSV text of ``rows`` under a header of ``columns`` (``\\r\\n`` line ends, no BOM); cells that
    would be formulas are neutralised (:func:`safe_cell`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({name: safe_cell(value) for name, value in row.items()} for row in rows)
    return buffer.getvalue()


def csv_bytes(columns: Sequence[str], rows: Iterable[Mapping[str, object]], *, bom: bool = False) -> bytes:
    """UTF-8 CSV with a header row; ``bom`` prefixes EF BB BF so Excel reads it as UTF-8."""
    return (BOM if bom else b"") + csv_text(columns, rows).encode("utf-8")


def flag_arg(name: str, error: type[ApiError]) -> bool:
    """A ``?name=1`` query flag (``1``/``true`` on, ``0``/``false``/absent off); anything else is
    ``error`` naming the parameter."""
    value = request.args.get(name, "0").lower()
    if value not in FLAG_VALUES:
        raise error(f"{name} is 1 or 0", field=name)
    return value in ("1", "true")


def signed_file(raw: bytes, *, mimetype: str, filename: str, secret: str, now: datetime) -> Response:
    """A download of ``raw``: the media type with ``charset=utf-8``, an attachment name, and the
    signature headers over exactly these bytes."""
    response = Response(raw, status=200, mimetype=mimetype)
    response.headers["Content-Type"] = f"{mimetype}; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers.update(sign_headers(secret, raw, now))
    return response
