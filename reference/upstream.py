"""Calls the reference service makes in the request path: citizen services and e-finance.

Why a module of its own: the ledger keeps the business rules and only sees dicts, typed answers or
typed errors; how an upstream is reached (URL, form or JSON, certificate, contract check of the
answer) lives here. Every call goes through ``component.http`` so it is journaled and
fault-injectable.

e-finance is reached at ``urls.card_gateway`` + the paths under ``reference.efinance`` (the
simulator's by default): pointing the service at the real gateway is a change of host name and,
for the certificate, a PEM file (``reference.efinance.certificate_file``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from simulators.common.contracts import problems
from simulators.common.http import OutboundFailure, OutboundResponse

from .efinance import (
    CANCEL_ROOT,
    INITIATION_RESPONSE_ROOT,
    STATUS_ROOT,
    GatewayAnswer,
    GatewayCertificate,
    MessageError,
    RequestStatus,
    parse_flat,
    read_status,
)
from .errors import UnknownRequest, UpstreamRejected, UpstreamUnavailable

if TYPE_CHECKING:
    from simulators.common.component import Component

DEFAULT_PATHS = {
    "initiation_path": "/CardPaymentRequestIntiation/index",             # seen (sic)
    "server_to_server_path": "/CardPaymentRequestIntiation/ServerToServer",  # the simulator's (assumed)
    "status_inquiry_path": "/CardPaymentRequestIntiation/StatusInquiry",     # the simulator's (assumed)
    "refund_path": "/CardPaymentRequestIntiation/Refund",                    # the simulator's (assumed)
    "cancel_path": "/CardPaymentRequestIntiation/Cancel",                    # the simulator's (assumed)
    "certificate_path": "/_admin/certificate",                               # the simulator's test bench
}
SIGNATURES = ("sha256-of-request-object", "none")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Upstreams:
    """Citizen services (P6: real-time inquiry)."""

    def __init__(self, component: Component) -> None:
        self.component = component

    def service_request(self, request_number: str) -> dict[str, Any]:
        """The assessed service request, checked against ``cs-service-request.schema.json``."""
        url = f"{self.component.url_of('citizen_services')}/api/service-requests/{quote(request_number)}"
        response = call(self.component, "GET", url, "citizen_services")
        if response.status == 404:
            raise UnknownRequest(f"citizen services does not know request {request_number}",
                                 field="request_number")
        body = response.json()
        if response.status != 200 or not isinstance(body, dict):
            raise UpstreamRejected(f"citizen services answered {response.status} for {request_number}")
        found = problems("cs-service-request.schema.json", body)
        if found:
            raise UpstreamRejected("citizen services answered off contract: " + "; ".join(found[:3]))
        return body


def call(component: Component, method: str, url: str, target: str, **kwargs: Any) -> OutboundResponse:
    """One outbound call; no answer or a 5xx is :class:`UpstreamUnavailable` (the caller may retry)."""
    try:
        response = component.http.request(method, url, target=target, **kwargs)
    except OutboundFailure as exc:
        raise UpstreamUnavailable(f"{target} did not answer: {exc}") from None
    if response.status >= 500:
        raise UpstreamUnavailable(f"{target} answered {response.status}")
    return response


@dataclass(frozen=True)
class Sender:
    """Our identity at e-finance for one governorate (``reference.efinance.senders``)."""

    governorate_code: str
    sender_id: str
    name: str
    password: str
    service_code: str


class EfinanceClient:
    """e-finance's server-to-server calls and the gateway certificate, for the ledger."""

    def __init__(self, component: Component) -> None:
        self.component = component
        own = dict(component.own.get("efinance") or {})
        self.paths = {name: str(own.get(name) or default) for name, default in DEFAULT_PATHS.items()}
        self.signature = str(own.get("signature", SIGNATURES[0]))
        if self.signature not in SIGNATURES:
            raise ValueError(f"reference.efinance.signature is one of {', '.join(SIGNATURES)}")
        self.timeout = float(own.get("status_timeout_seconds", 5))
        self.initiation_timeout = float(own.get("initiation_timeout_seconds", 10))
        self.default_mechanism = str(own.get("mechanism", "Card"))
        self.certificate_file = own.get("certificate_file") or None
        self.senders: dict[str, Sender] = {}
        for governorate, row in (own.get("senders") or {}).items():
            self.senders[str(governorate)] = Sender(
                governorate_code=str(governorate), sender_id=str(row["sender_id"]),
                name=str(row.get("name") or f"Tahseel {governorate}"), password=str(row["password"]),
                service_code=str(row["service_code"]))
        self._certificate: GatewayCertificate | None = None
        self._lock = threading.Lock()

    # --- settings -------------------------------------------------------------------------------
    def url(self, path_setting: str) -> str:
        return self.component.url_of("card_gateway") + self.paths[path_setting]

    def sender_for(self, governorate_code: str) -> Sender | None:
        return self.senders.get(governorate_code)

    def sender_by_id(self, sender_id: str) -> Sender | None:
        return next((s for s in self.senders.values() if s.sender_id == sender_id), None)

    # --- the certificate ------------------------------------------------------------------------
    def certificate(self) -> GatewayCertificate:
        """The gateway's certificate: the configured PEM file, else fetched once from the gateway.

        Fetching is for the test bench (the simulator makes its key pair on first start); against
        the real gateway configure the file, which is never replaced by a download.
        """
        with self._lock:
            if self._certificate is not None:
                return self._certificate
        if self.certificate_file:
            try:
                pem = Path(str(self.certificate_file)).read_bytes()
            except OSError as exc:
                raise UpstreamUnavailable(f"cannot read reference.efinance.certificate_file: {exc}") from None
            origin = str(self.certificate_file)
        else:
            response = call(self.component, "GET", self.url("certificate_path"), "card_gateway",
                            timeout=self.timeout)
            if response.status != 200:
                raise UpstreamRejected(f"the card gateway answered {response.status} for its certificate")
            pem, origin = response.body, "the card gateway"
        try:
            certificate = GatewayCertificate(pem)
        except ValueError as exc:
            raise UpstreamRejected(f"the certificate from {origin} is unusable: {exc}") from None
        with self._lock:
            self._certificate = certificate
        return certificate

    def forget_certificate(self) -> bool:
        """Drop a downloaded certificate (the gateway's key may have changed); False for a configured file."""
        if self.certificate_file:
            return False
        with self._lock:
            self._certificate = None
        return True

    # --- server to server -------------------------------------------------------------------------
    def _post_form(self, path_setting: str, fields: dict[str, str], root: str, timeout: float) -> GatewayAnswer:
        response = call(self.component, "POST", self.url(path_setting), "card_gateway",
                        data=urlencode(fields).encode("ascii"), headers=dict(FORM), timeout=timeout)
        try:
            return GatewayAnswer(parse_flat(response.body, root))
        except MessageError as exc:
            raise UpstreamRejected(f"the card gateway answered {response.status} without a readable {root}:"
                                   f" {exc.message}") from None

    def initiate_server_to_server(self, fields: dict[str, str]) -> GatewayAnswer:
        """The same sealed fields, server to server (mechanism Channel): ``PaymentRequestInitiationRes``."""
        return self._post_form("server_to_server_path", fields, INITIATION_RESPONSE_ROOT, self.initiation_timeout)

    def cancel(self, sender: Sender, sender_request_number: str, payment_request_number: str = "") -> str:
        """Cancel an unpaid request at the gateway (its page then refuses payment). Returns the
        ResponseCode: 000 cancelled, 130 paid meanwhile, 131 expired, 144 cancelled already, 140 unknown.
        No answer → :class:`UpstreamUnavailable`; an unreadable answer → :class:`UpstreamRejected`."""
        fields = {"SenderID": sender.sender_id, "SenderPassword": self.certificate().password(sender.password),
                  "SenderRequestNumber": sender_request_number}
        if payment_request_number:
            fields["PaymentRequestNumber"] = payment_request_number
        return self._post_form("cancel_path", fields, CANCEL_ROOT, self.timeout).code

    def status(self, sender: Sender, sender_request_number: str,
               payment_request_number: str = "") -> RequestStatus | None:
        """The gateway's word on a request; None when it does not know it (140). No answer →
        :class:`UpstreamUnavailable`; a refusal or an unreadable answer → :class:`UpstreamRejected`."""
        for attempt in range(2):
            fields = {"SenderID": sender.sender_id,
                      "SenderPassword": self.certificate().password(sender.password),
                      "SenderRequestNumber": sender_request_number}
            if payment_request_number:
                fields["PaymentRequestNumber"] = payment_request_number
            answer = self._post_form("status_inquiry_path", fields, STATUS_ROOT, self.timeout)
            if answer.ok:
                try:
                    return read_status(answer.fields)
                except MessageError as exc:
                    raise UpstreamRejected(f"the status inquiry answered off contract: {exc.message}") from None
            if answer.code == "140":
                return None
            # 102: our password did not decrypt, so the gateway may have a new key pair: fetch its
            # certificate again, once.
            if answer.code == "102" and attempt == 0 and self.forget_certificate():
                continue
            raise UpstreamRejected(f"the status inquiry was refused: {answer.describe()}")
        raise UpstreamRejected("the status inquiry was refused twice")  # pragma: no cover - loop returns
