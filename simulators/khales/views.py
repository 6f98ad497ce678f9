"""HTTP face of the Khales simulator: the outlet desk and the transaction log.

``POST /api/outlet-payments`` is how a scenario makes a citizen pay cash at an outlet; the outlet's
conversation with the biller happens during the call, as at a real counter where the clerk waits
for the receipt, and the transaction comes back with its outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify, request

from simulators.common.component import read_json
from simulators.common.wire import parse_date

from .errors import InvalidDate

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

    @bp.get("/transactions/<transaction_id>")
    def transaction(transaction_id: str) -> Response:
        return jsonify(model.get_transaction(transaction_id))

    @bp.get("/transactions")
    def transactions() -> Response:
        raw = request.args.get("business_date")
        day = parse_date(raw, "business_date", InvalidDate) if raw else None
        return jsonify(transactions=model.list_transactions(day, request.args.get("outlet_id") or None))

    return bp
