"""Calls the reference service makes in the request path: citizen services and the card gateway.

Why a module of its own: the ledger keeps the business rules and only sees dicts or typed errors;
how an upstream is reached (URL, signature, merchant header, contract check of the answer) lives
here. Every call goes through ``component.http`` so it is journaled and fault-injectable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from simulators.common.contracts import problems
from simulators.common.http import OutboundFailure, OutboundResponse

from .errors import UnknownRequest, UpstreamRejected, UpstreamUnavailable

if TYPE_CHECKING:
    from simulators.common.component import Component


class Upstreams:
    """Citizen services (P6: real-time inquiry) and the card gateway (E3: sessions)."""

    def __init__(self, component: Component) -> None:
        self.component = component

    def _call(self, method: str, url: str, target: str, **kwargs: Any) -> OutboundResponse:
        try:
            response = self.component.http.request(method, url, target=target, **kwargs)
        except OutboundFailure as exc:
            raise UpstreamUnavailable(f"{target} did not answer: {exc}") from None
        if response.status >= 500:
            raise UpstreamUnavailable(f"{target} answered {response.status}")
        return response

    def service_request(self, request_number: str) -> dict[str, Any]:
        """The assessed service request, checked against ``cs-service-request.schema.json``."""
        url = f"{self.component.url_of('citizen_services')}/api/service-requests/{quote(request_number)}"
        response = self._call("GET", url, "citizen_services")
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

    def _merchant_headers(self) -> dict[str, str]:
        return {"X-Merchant-Id": str(self.component.settings["card_gateway"]["merchant_id"])}

    def open_session(self, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.component.url_of('card_gateway')}/api/sessions"
        response = self._call("POST", url, "card_gateway", json_body=body, headers=self._merchant_headers(),
                              sign_with=self.component.secret("card_gateway_merchant"))
        session = response.json()
        if response.status not in (200, 201) or not isinstance(session, dict):
            raise UpstreamRejected(f"the card gateway refused the session ({response.status}):"
                                   f" {response.body[:300].decode('utf-8', 'replace')}")
        if not session.get("session_id") or not session.get("payment_url"):
            raise UpstreamRejected("the card gateway answered without session_id or payment_url")
        return session

    def session(self, session_id: str) -> dict[str, Any] | None:
        """The gateway's own view of a session (``None`` when it does not know it)."""
        url = f"{self.component.url_of('card_gateway')}/api/sessions/{quote(session_id)}"
        response = self._call("GET", url, "card_gateway", data=b"", headers=self._merchant_headers(),
                              sign_with=self.component.secret("card_gateway_merchant"))
        if response.status == 404:
            return None
        body = response.json()
        if response.status != 200 or not isinstance(body, dict):
            raise UpstreamRejected(f"the card gateway answered {response.status} for session {session_id}")
        return body
