"""Fixtures for the card gateway: an in-process app, a merchant that signs its calls, real servers.

The simulated clock starts on Thursday 2026-12-03 12:00 Cairo; nothing here sleeps: due work runs
through ``POST /_admin/tick`` and the clock moves through ``POST /_admin/clock``.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from simulators.card_gateway.app import create_app
from simulators.common.clock import parse_instant
from simulators.common.config import load_settings
from simulators.common.http import encode_json
from simulators.common.server import ServerThread
from simulators.common.signing import sign_headers

START = "2026-12-03T12:00:00+02:00"
MERCHANT_ID = "9001"
REFUSING_URL = "http://127.0.0.1:9"  # discard port: refused at once, so stray deliveries fail fast


# One key pair for the whole test session, in a temporary folder removed when the session ends.
GATEWAY_IDENTITY = tempfile.TemporaryDirectory(prefix="tahseel-gateway-")


def gateway_settings(**urls: str) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        "urls": {"reference": REFUSING_URL, "settlement": REFUSING_URL, **urls},
        "card_gateway": {"webhook_retry_seconds": [60, 300], "webhook_timeout_seconds": 2,
                         "data_dir": GATEWAY_IDENTITY.name},
    }
    return load_settings(overrides=overrides)


def session_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "merchant_request_id": "REQ-0001",
        "merchant_reference": "100200300400",
        "amount": "1250.50",
        "currency": "EGP",
        "return_url": "https://portal.example/return?order=7",
        "webhook_url": f"{REFUSING_URL}/webhooks/card",
        "governorate_code": "01",
        "service_code": "BPR",
        "description": "Renewal of a building permit",
    }
    body.update(changes)
    return body


class Merchant:
    """The collection service's side of the merchant API: signs every call with the merchant secret."""

    def __init__(self, client: Any, app: Flask) -> None:
        self.client = client
        self.component = app.extensions["tahseel"]

    def headers(self, raw: bytes, merchant_id: str = MERCHANT_ID) -> dict[str, str]:
        headers = sign_headers(self.component.secret("card_gateway_merchant"), raw,
                               self.component.clock.now())
        headers.update({"X-Merchant-Id": merchant_id, "Content-Type": "application/json"})
        return headers

    def create(self, body: dict[str, Any], **kwargs: Any) -> Any:
        raw = encode_json(body)
        return self.client.post("/api/sessions", data=raw, headers=self.headers(raw, **kwargs))

    def get(self, session_id: str, suffix: str = "") -> Any:
        return self.client.get(f"/api/sessions/{session_id}{suffix}", headers=self.headers(b""))


@pytest.fixture
def app() -> Iterator[Flask]:
    app = create_app(gateway_settings())
    app.extensions["tahseel"].clock.set(parse_instant(START))
    yield app
    app.extensions["tahseel"].stop()


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


@pytest.fixture
def merchant(app: Flask, client: Any) -> Merchant:
    return Merchant(client, app)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()


class LiveGateway:
    """A gateway on a real socket, driven over HTTP like the harness drives it."""

    def __init__(self, server: ServerThread, http: requests.Session) -> None:
        self.server = server
        self.http = http
        self.component = server.app.extensions["tahseel"]

    @property
    def url(self) -> str:
        return self.server.url

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        raw = encode_json(body)
        headers = sign_headers(self.component.secret("card_gateway_merchant"), raw, self.component.clock.now())
        headers.update({"X-Merchant-Id": MERCHANT_ID, "Content-Type": "application/json"})
        response = self.http.post(f"{self.url}/api/sessions", data=raw, headers=headers)
        assert response.status_code == 201, response.text
        return response.json()

    def signed_get(self, path: str) -> dict[str, Any]:
        headers = sign_headers(self.component.secret("card_gateway_merchant"), b"", self.component.clock.now())
        headers["X-Merchant-Id"] = MERCHANT_ID
        response = self.http.get(f"{self.url}{path}", headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def pay(self, session_id: str, card_number: str, expiry: str = "12/30", cvv: str = "123") -> requests.Response:
        response = self.http.post(f"{self.url}/pay/{session_id}", allow_redirects=False,
                                  data={"card_number": card_number, "expiry": expiry, "cvv": cvv,
                                        "cardholder": "Mona Ali"})
        found = re.search(r'name="challenge_id" value="([^"]+)"', response.text)
        self.last_challenge_id = found.group(1) if found else None  # the hidden field a browser posts back
        return response

    def admin(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post(f"{self.url}/_admin/{path}", json=body or {})
        assert response.status_code in (200, 201), response.text
        return response.json()


@pytest.fixture
def start_gateway(http: requests.Session) -> Iterator[Any]:
    """Start gateways on loopback with the given party URLs; each is stopped after the test."""
    servers: list[ServerThread] = []

    def start(**urls: str) -> LiveGateway:
        server = ServerThread(create_app(gateway_settings(**urls))).start()
        servers.append(server)
        gateway = LiveGateway(server, http)
        gateway.admin("clock", {"set": START})
        return gateway

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def live_gateway(receiver: Any, start_gateway: Any) -> LiveGateway:
    """A gateway whose webhooks and settlement feed both go to the fake collection service."""
    return start_gateway(reference=receiver.url, settlement=receiver.url)


@pytest.fixture(name="session_body")
def session_body_fixture() -> Any:
    """The factory of valid ``cg-session-create`` bodies (keyword arguments change fields)."""
    return session_body
