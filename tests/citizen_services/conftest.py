"""Fixtures for the citizen-services simulator: an app per test, and a signer for the
collection service's signed calls (confirmations, cancellations)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from simulators.citizen_services.app import create_app
from simulators.common import signing
from simulators.common.config import load_settings
from simulators.common.http import encode_json
from simulators.common.server import ServerThread

CS_SECRET_NAME = "citizen_services_api"
CLOCK_AT = "2026-03-01T10:00:00+02:00"  # a Sunday morning in Cairo


@pytest.fixture
def cs_settings() -> dict[str, Any]:
    return load_settings()


@pytest.fixture
def cs_app(cs_settings: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(cs_settings)
    yield app
    app.extensions["tahseel"].stop()


@pytest.fixture
def cs_client(cs_app: Flask) -> FlaskClient:
    client = cs_app.test_client()
    response = client.post("/_admin/clock", json={"set": CLOCK_AT})
    assert response.status_code == 200
    return client


@pytest.fixture
def signed_post(cs_app: Flask, cs_client: FlaskClient,
                cs_settings: dict[str, Any]) -> Callable[..., Any]:
    """POST raw bytes signed as the collection service signs them (or with another secret)."""

    def post(path: str, body: Any, *, secret: str | None = None, raw: bytes | None = None) -> Any:
        data = raw if raw is not None else encode_json(body)
        now = cs_app.extensions["tahseel"].clock.now()
        headers = signing.sign_headers(secret or cs_settings["secrets"][CS_SECRET_NAME], data, now)
        headers["Content-Type"] = "application/json"
        return cs_client.post(path, data=data, headers=headers)

    return post


@pytest.fixture
def new_request(cs_client: FlaskClient) -> Callable[..., dict[str, Any]]:
    """Create an assessed service request and return it (asserting it was created)."""

    def create(**body: Any) -> dict[str, Any]:
        payload = {"governorate_code": "01", "service_code": "BPR", **body}
        response = cs_client.post("/api/service-requests", json=payload)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return create


class LiveCitizenServices:
    """The simulator on a real loopback socket, for what only HTTP shows (a dropped answer, a reload)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.server = ServerThread(create_app(settings)).start()
        self.http = requests.Session()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def component(self) -> Any:
        return self.server.app.extensions["tahseel"]

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.http.post(self.url + path, json=body, timeout=10, **kwargs)

    def signed_post(self, path: str, body: Any) -> requests.Response:
        data = encode_json(body)
        headers = signing.sign_headers(self.settings["secrets"][CS_SECRET_NAME], data, self.component.clock.now())
        headers["Content-Type"] = "application/json"
        return self.http.post(self.url + path, data=data, headers=headers, timeout=10)

    def stop(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture
def live_cs() -> Iterator[Callable[..., LiveCitizenServices]]:
    """Start the simulator on loopback (``live_cs(settings)``, default settings); every one is stopped."""
    started: list[LiveCitizenServices] = []

    def start(settings: dict[str, Any] | None = None) -> LiveCitizenServices:
        live = LiveCitizenServices(settings if settings is not None else load_settings())
        started.append(live)
        assert live.post("/_admin/clock", {"set": CLOCK_AT}).status_code == 200
        return live

    yield start
    for live in started:
        live.stop()
