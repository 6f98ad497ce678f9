"""HTTP face of the Khales simulator: the outlet desk, the transaction log and the end-of-day file.

``POST /api/outlet-payments`` is how a scenario makes a citizen pay cash at an outlet; the outlet's
conversation with the biller happens during the call, as at a real counter where the clerk waits
for the receipt, and the transaction comes back with its outcome. ``POST /api/outlet-visits`` does
the same for several bills in one visit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify, request

from simulators.common import files
from simulators.common.clock import iso
from simulators.common.component import read_json
from simulators.common.http import encode_json
from simulators.common.money import CURRENCY
from simulators.common.wire import parse_date

from .end_of_day import COLUMNS, FEED_SECRET, net_amount
from .errors import InvalidDate, InvalidQuery

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .models import KhalesModel


def make_blueprint(component: Component, model: KhalesModel) -> Blueprint:
    bp = Blueprint("khales", __name__, url_prefix="/api")

    @bp.get("/outlets")
    def outlets() -> Response:
        return jsonify(outlets=model.list_outlets(request.args.get("governorate_code") or None))

    @bp.post("/outlet-payments")
    def outlet_payment() -> tuple[Response, int]:
        body = read_json("kh-outlet-payment.schema.json")
        transaction, created = model.outlet_payment(body)
        return jsonify(transaction), 201 if created else 200

    @bp.post("/outlet-visits")
    def outlet_visit() -> tuple[Response, int]:
        body = read_json("kh-outlet-visit.schema.json")
        visit, created = model.outlet_visit(body)
        return jsonify(visit), 201 if created else 200

    @bp.get("/outlet-visits/<visit_id>")
    def visit(visit_id: str) -> Response:
        return jsonify(model.get_visit(visit_id))

    @bp.get("/transactions/<transaction_id>")
    def transaction(transaction_id: str) -> Response:
        return jsonify(model.get_transaction(transaction_id))

    @bp.get("/transactions")
    def transactions() -> Response:
        raw = request.args.get("business_date")
        day = parse_date(raw, "business_date", InvalidDate) if raw else None
        return jsonify(transactions=model.list_transactions(day, request.args.get("outlet_id") or None))

    @bp.get("/end-of-day")
    def end_of_day_files() -> Response:
        """The files made so far, with their delivery to settlement and the faults that hit them."""
        return jsonify(files=model.end_of_day.summaries())

    @bp.get("/end-of-day/<day>")
    def end_of_day_file(day: str) -> Response:
        """The end-of-day file of a Cairo day: CSV (``?excel=1`` adds a byte-order mark) or JSON."""
        business_date = parse_date(day, "date", InvalidDate)
        fmt = request.args.get("format", "csv")
        if fmt not in ("csv", "json"):
            raise InvalidQuery("format is csv (the default) or json", field="format")
        bom = files.flag_arg("excel", InvalidQuery) or files.flag_arg("bom", InvalidQuery)
        rows, state, generated_at = model.end_of_day.view(business_date)
        name = f"khales-end-of-day-{business_date.isoformat()}"
        if fmt == "json":
            payload = {"business_date": business_date.isoformat(), "network": "khales", "state": state,
                       "generated_at": iso(generated_at), "currency": CURRENCY, "columns": list(COLUMNS),
                       "line_count": len(rows), "net_amount": net_amount(rows), "lines": rows}
            raw, mimetype, filename = encode_json(payload), "application/json", name + ".json"
        else:
            raw, mimetype, filename = files.csv_bytes(COLUMNS, rows, bom=bom), "text/csv", name + ".csv"
        response = files.signed_file(raw, mimetype=mimetype, filename=filename,
                                     secret=component.secret(FEED_SECRET), now=component.clock.now())
        response.headers["X-Khales-File-State"] = state
        return response

    return bp

