"""HTTP face of the cash network's Channel API at e-finance (ASSUMED: no public specification).

JSON in and out, every call signed with the ``efinance_channel`` secret (``X-Tahseel-Timestamp`` /
``X-Tahseel-Signature``, checked before the body is parsed), bodies validated against
``contracts/cg-channel-*.schema.json``; errors are the common ``{"error": {"code", "message", "field"}}``.

| call | answer |
| --- | --- |
| ``POST /api/channel/inquiry`` (``cg-channel-inquiry``) | 200 ``cg-channel-inquiry-result`` |
| ``POST /api/channel/payments`` (``cg-channel-payment``) | 201 ``cg-channel-payment-result``; a replay 200 |
| ``POST /api/channel/reversals`` (``cg-channel-reversal``) | 201 ``cg-channel-reversal-result``; a replay 200 |
| ``GET /api/channel/payments/<khales_transaction_id>`` | the test bench's view of one cash payment |
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify, request

from simulators.common.component import read_json
from simulators.common.signing import verify

from .channel import SECRET

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .channel import ChannelDesk


def make_channel_blueprint(component: Component, desk: ChannelDesk) -> Blueprint:
    bp = Blueprint("card_gateway_channel", __name__, url_prefix="/api/channel")

    def signed(schema: str) -> dict:
        """The signature over the raw body first (nothing is parsed from an unsigned caller), then the body."""
        verify(component.secret(SECRET), request.headers, request.get_data(cache=True), component.clock.now(),
               int(component.settings.get("signature_window_seconds", 300)))
        return read_json(schema)

    @bp.post("/inquiry")
    def inquiry() -> Response:
        return jsonify(desk.inquiry(signed("cg-channel-inquiry.schema.json")))

    @bp.post("/payments")
    def payment() -> tuple[Response, int]:
        answer, created = desk.pay(signed("cg-channel-payment.schema.json"))
        return jsonify(answer), 201 if created else 200

    @bp.post("/reversals")
    def reversal() -> tuple[Response, int]:
        answer, created = desk.reverse(signed("cg-channel-reversal.schema.json"))
        return jsonify(answer), 201 if created else 200

    @bp.get("/payments/<khales_transaction_id>")
    def payment_log(khales_transaction_id: str) -> Response:
        return jsonify(desk.payment_log(khales_transaction_id))

    return bp
