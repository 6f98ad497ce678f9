"""HTTP face of the citizen-services system: parse (contracts), call the model, serialise.

Signed endpoints verify the signature over the raw bytes *before* the body is parsed, so a forged
or replayed call never reaches the model and never changes anything. Two blueprints: the public
API under ``/api`` and this party's own admin calls under ``/_admin`` (beside the common admin
plane; the catalog reload and the office's work on a request).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify, request

from simulators.common import signing
from simulators.common.component import read_json
from simulators.common.errors import ValidationFailed
from simulators.common.wire import parse_date

from . import reports
from .errors import CatalogInvalid, InvalidQuery
from .fees import CatalogError

REQUEST_NUMBER = re.compile(r"SR-[0-9]{2}-[0-9]{8}", re.ASCII)
GOVERNORATE_CODE = re.compile(r"[0-9]{2}", re.ASCII)

if TYPE_CHECKING:
    from simulators.common.component import Component

    from .models import CitizenServicesModel

API_SECRET = "citizen_services_api"


def _request_number_arg() -> str | None:
    number = request.args.get("request_number")
    if number is not None and not REQUEST_NUMBER.fullmatch(number):
        raise ValidationFailed("request_number is written SR-<governorate>-<8 digits>", field="request_number",
                               status=400)
    return number


def _governorate_arg() -> str | None:
    code = request.args.get("governorate_code") or None
    if code is not None and not GOVERNORATE_CODE.fullmatch(code):
        raise InvalidQuery("governorate_code is two digits, e.g. 04", field="governorate_code")
    return code


def _flag_arg(name: str) -> bool:
    value = request.args.get(name, "0").lower()
    if value not in ("0", "1", "true", "false", ""):
        raise InvalidQuery(f"{name} is 1 or 0 (true or false)", field=name)
    return value in ("1", "true")


def make_blueprint(component: Component, model: CitizenServicesModel) -> Blueprint:
    bp = Blueprint("citizen_services", __name__, url_prefix="/api")

    def verify_signature() -> None:
        signing.verify(component.secret(API_SECRET), request.headers, request.get_data(cache=True),
                       component.clock.now(), int(component.settings.get("signature_window_seconds", 300)))

    def answer(body: dict, created: bool) -> tuple[Response, int]:
        return jsonify(body), 201 if created else 200

    @bp.get("/services")
    def services() -> Response:
        governorate = _governorate_arg()
        listing = model.list_services(governorate)
        if governorate is None:
            return jsonify(services=listing)
        return jsonify(governorate_code=governorate, services=listing)

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

    @bp.post("/service-requests/<request_number>/cancel")
    def cancel_service_request(request_number: str) -> tuple[Response, int]:
        body = read_json("cs-service-request-cancel.schema.json")
        return jsonify(model.cancel_request(request_number, body)[0]), 200

    @bp.post("/payment-confirmations")
    def confirm_payment() -> tuple[Response, int]:
        verify_signature()
        body = read_json("cs-payment-confirmation.schema.json")
        return answer(*model.confirm_payment(body))

    @bp.get("/payment-confirmations")
    def list_confirmations() -> Response:
        return jsonify(confirmations=model.list_confirmations(_request_number_arg()))

    @bp.post("/payment-cancellations")
    def cancel_payment() -> tuple[Response, int]:
        verify_signature()
        body = read_json("cs-payment-cancellation.schema.json")
        return answer(*model.cancel_payment(body))

    @bp.get("/confirmation-conflicts")
    def list_conflicts() -> Response:
        return jsonify(conflicts=model.list_refusals(_request_number_arg()))

    @bp.get("/reports/performance")
    def performance_report() -> Response:
        start = parse_date(request.args.get("from"), "from", InvalidQuery)
        end = parse_date(request.args.get("to"), "to", InvalidQuery)
        governorate = _governorate_arg()
        fmt = request.args.get("format", "json")
        if fmt not in ("json", "csv"):
            raise InvalidQuery("format is json (the default) or csv", field="format")
        bom = _flag_arg("bom")
        report = model.performance(start, end, governorate)
        if fmt == "json":
            return jsonify(report)
        name = f"citizen-services-performance-{start}-{end}{'-' + governorate if governorate else ''}.csv"
        return Response(reports.to_csv(report, bom=bom), mimetype="text/csv",
                        headers={"Content-Type": "text/csv; charset=utf-8",
                                 "Content-Disposition": f'attachment; filename="{name}"'})

    return bp


def make_admin_blueprint(component: Component, model: CitizenServicesModel) -> Blueprint:
    """This party's test-bench calls beside the common admin plane (no authentication: loopback tool)."""
    bp = Blueprint("citizen_services_admin", __name__, url_prefix="/_admin")

    @bp.get("/catalog")
    def catalog() -> Response:
        return jsonify(model.catalog_state())

    @bp.post("/catalog/reload")
    def reload_catalog() -> Response:
        try:
            return jsonify(model.reload_catalog())
        except CatalogError as exc:
            raise CatalogInvalid(str(exc), field=exc.field) from None

    @bp.post("/service-requests/<request_number>/status")
    def set_status(request_number: str) -> tuple[Response, int]:
        body = read_json("cs-request-status.schema.json")
        return jsonify(model.set_status(request_number, body["status"])[0]), 200

    return bp
