"""HTTP face of e-finance settlement: the signed collections feed and the published reports.

Views parse, call :class:`~simulators.settlement.models.SettlementModel` and serialise. The
detailed settlement file is signed like every settlement message, so a reconciler can prove that
the file it reads is the one settlement published.
"""

from __future__ import annotations

import re
from datetime import date
from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify, request

from simulators.common import files, wire
from simulators.common.component import read_json
from simulators.common.http import encode_json
from simulators.common.signing import verify

from .errors import InvalidDate, InvalidQuery, KhalesFileNotFound
from .publication import FILE_COLUMNS

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .khales_files import KhalesFiles
    from .models import SettlementModel

_GOVERNORATE = re.compile(r"[0-9]{2}", re.ASCII)


def make_blueprint(component: Component, model: SettlementModel, khales_files: KhalesFiles) -> Blueprint:
    bp = Blueprint("settlement", __name__)

    @bp.post("/api/collections")
    def add_collection() -> tuple[Response, int]:
        verify(component.secret("collections_feed"), request.headers, request.get_data(cache=True),
               component.clock.now(), int(component.settings.get("signature_window_seconds", 300)))
        body = read_json("st-collection.schema.json")
        answer, created = model.add_collection(body)
        return jsonify(answer), 201 if created else 200

    @bp.post("/api/khales-files")
    def add_khales_file() -> tuple[Response, int]:
        """Khales' end-of-day file of a day (signed with the feed's secret): kept, read, compared."""
        verify(component.secret("collections_feed"), request.headers, request.get_data(cache=True),
               component.clock.now(), int(component.settings.get("signature_window_seconds", 300)))
        answer, created = khales_files.receive(read_json("kh-end-of-day-delivery.schema.json"))
        return jsonify(answer), 201 if created else 200

    @bp.get("/api/khales-files")
    def list_khales_files() -> Response:
        return jsonify(files=khales_files.list())

    @bp.get("/api/khales-files/<day>")
    def khales_file(day: str) -> Response:
        return jsonify(khales_files.view(parse_date(day, "date")))

    @bp.get("/api/khales-files/<day>/content")
    def khales_file_content(day: str) -> Response:
        """The CSV exactly as Khales sent it (signed by settlement, like its own files)."""
        business_date = parse_date(day, "date")
        content = khales_files.content(business_date)
        if content is None:
            raise KhalesFileNotFound(f"no Khales end-of-day file of {business_date} was received", field="date")
        return files.signed_file(content.encode("utf-8"), mimetype="text/csv",
                                 filename=f"khales-end-of-day-{business_date.isoformat()}.csv",
                                 secret=component.secret("settlement_notice"), now=component.clock.now())

    @bp.get("/api/collections/<collection_id>")
    def get_collection(collection_id: str) -> Response:
        """One fed line as settlement holds it (its batch, or ``null`` when a fault left it out)."""
        return jsonify(model.collection(collection_id))

    @bp.get("/api/batches")
    def list_batches() -> Response:
        raw_date = request.args.get("business_date")
        business_date = parse_date(raw_date, "business_date") if raw_date else None
        governorate = governorate_arg()
        batches = model.batches(business_date, governorate)
        return jsonify(batches=[model.batch_dict(b, with_lines=False) for b in batches])

    @bp.get("/api/batches/<batch_id>")
    def get_batch(batch_id: str) -> Response:
        return jsonify(model.batch_dict(model.batch(batch_id), with_lines=True))

    @bp.get("/api/settlement-files/<day>")
    def settlement_file(day: str) -> Response:
        business_date = parse_date(day, "date")
        rows = model.file_rows(business_date, governorate_arg())
        fmt = request.args.get("format", "csv")
        if fmt == "json":
            payload = {"business_date": business_date.isoformat(), "currency": "EGP",
                       "columns": list(FILE_COLUMNS), "lines": rows}
            raw, mimetype, suffix = encode_json(payload), "application/json", "json"
        elif fmt == "csv":
            raw, mimetype, suffix = files.csv_bytes(FILE_COLUMNS, rows, bom=flag_arg("bom")), "text/csv", "csv"
        else:
            raise InvalidQuery("format is csv (the default) or json", field="format")
        return files.signed_file(raw, mimetype=mimetype, filename=f"settlement-{business_date.isoformat()}.{suffix}",
                                 secret=component.secret("settlement_notice"), now=component.clock.now())

    @bp.get("/api/settlement-files")
    def list_settlement_files() -> Response:
        """The files published so far (what each file run delivered, its faults and delivery state)."""
        raw_date = request.args.get("business_date")
        business_date = parse_date(raw_date, "business_date") if raw_date else None
        return jsonify(files=model.publication.files(business_date))

    @bp.get("/api/bank-statement-deliveries")
    def list_statement_deliveries() -> Response:
        """The bank statements sent so far, one per day with credits, and their delivery state."""
        return jsonify(statements=model.publication.statements())

    @bp.get("/api/daily-reports/<day>")
    def daily_report(day: str) -> Response:
        return jsonify(model.daily_report(parse_date(day, "date")))

    @bp.get("/api/bank-statements")
    def bank_statements() -> Response:
        return jsonify(entries=model.statement(governorate_arg()))

    return bp


def parse_date(text: str | None, field: str) -> date:
    """A Cairo business date written ``YYYY-MM-DD`` (nothing else: no basic ISO form)."""
    return wire.parse_date(text, field, InvalidDate)


def governorate_arg() -> str | None:
    value = request.args.get("governorate_code")
    if value is not None and not _GOVERNORATE.fullmatch(value):
        raise InvalidQuery("governorate_code is two digits such as 01", field="governorate_code")
    return value or None


def flag_arg(name: str) -> bool:
    return files.flag_arg(name, InvalidQuery)
