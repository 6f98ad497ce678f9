"""HTTP face of the citizen-services system: parse (contracts), call the model, serialise.

Signed endpoints verify the signature over the raw bytes *before* the body is parsed, so a forged
or replayed call never reaches the model and never changes anything.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify, request

from simulators.common import signing
from simulators.common.component import read_json
from simulators.common.errors import ValidationFailed

REQUEST_NUMBER = re.compile(r"SR-[0-9]{2}-[0-9]{8}", re.ASCII)

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .models import CitizenServicesModel

API_SECRET = "citizen_services_api"


def make_blueprint(component: Component, model: CitizenServicesModel) -> Blueprint:
    bp = Blueprint("citizen_services", __name__, url_prefix="/api")

    def verify_signature() -> None:
        signing.verify(component.secret(API_SECRET), request.headers, request.get_data(cache=True),
                       component.clock.now(), int(component.settings.get("signature_window_seconds", 300)))

    def answer(body: dict, created: bool) -> tuple[Response, int]:
        return jsonify(body), 201 if created else 200

    @bp.get("/services")
    def services() -> Response:
        return jsonify(services=model.list_services())

    @bp.get("/governorates")
    def governorates() -> Response:
        return jsonify(governorates=model.list_governorates())

    @bp.post("/service-requests")
    def create_service_request() -> tuple[Response, int]:
        body = read_json("cs-service-request-create.schema.json")
        key = request.headers.get("Idempotency-Key") or None
        return answer(*model.create_request(body, key))

    @bp.get("/service-requests/<request_number>")
    def get_service_request(request_number: str) -> Response:
        return jsonify(model.get_request(request_number))

    @bp.post("/payment-confirmations")
    def confirm_payment() -> tuple[Response, int]:
        verify_signature()
        body = read_json("cs-payment-confirmation.schema.json")
        return answer(*model.confirm_payment(body))

    @bp.get("/payment-confirmations")
    def list_confirmations() -> Response:
        number = request.args.get("request_number")
        if number is not None and not REQUEST_NUMBER.fullmatch(number):
            raise ValidationFailed("request_number is written SR-<governorate>-<8 digits>", field="request_number",
                                   status=400)
        return jsonify(confirmations=model.list_confirmations(number))

    @bp.post("/payment-cancellations")
    def cancel_payment() -> tuple[Response, int]:
        verify_signature()
        body = read_json("cs-payment-cancellation.schema.json")
        return answer(*model.cancel_payment(body))

    return bp
