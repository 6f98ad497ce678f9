"""Fixtures for settlement: an in-process app, a signed collections feed, a live server, a receiver.

Clocks are simulated and start on Thursday 2026-12-03 12:00 Cairo; tests move them with the admin
plane (or the component's clock in-process) and never sleep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from simulators.common.clock import parse_instant
from simulators.common.config import load_settings
from simulators.common.http import encode_json
from simulators.common.server import ServerThread
from simulators.common.signing import sign_headers
from simulators.settlement.app import create_app

START = "2026-12-03T12:00:00+02:00"
REFUSING_URL = "http://127.0.0.1:9"


def settlement_settings(reference: str = REFUSING_URL, **own: Any) -> dict[str, Any]:
    return load_settings(overrides={"urls": {"reference": reference},
                                    "settlement": {"notice_retry_seconds": [60, 300], **own}})


def collection(number: int = 1, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "collection_id": f"card:TX{number:012d}",
        "type": "payment",
        "channel": "card",
        "source": "card_gateway",
        "governorate_code": "01",
        "service_code": "BPR",
        "bill_reference": f"{100200300400 + number}",
        "amount": "1250.50",
        "collection_fee": "0.00",
        "currency": "EGP",
        "collected_at": "2026-12-03T10:00:00Z",  # Thursday 12:00 Cairo
        "transaction_number": f"TX{number:012d}",
    }
    body.update(changes)
    return body


class Feed:
    """The card gateway's / Khales's side of the feed: signs each collection with the feed secret."""

    def __init__(self, post: Callable[..., Any], component: Any) -> None:
        self._post = post
        self.component = component

    def send(self, body: dict[str, Any], *, secret: str | None = None) -> Any:
        raw = encode_json(body)
        headers = sign_headers(secret or self.component.secret("collections_feed"), raw,
                               self.component.clock.now())
        headers["Content-Type"] = "application/json"
        return self._post("/api/collections", data=raw, headers=headers)


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    """Settlement apps built from settings overrides; every one is stopped after the test."""
    apps: list[Flask] = []

    def make(**own: Any) -> Flask:
        app = create_app(settlement_settings(**own))
        app.extensions["tahseel"].clock.set(parse_instant(START))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["tahseel"].stop()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


@pytest.fixture
def feed(app: Flask, client: Any) -> Feed:
    return Feed(client.post, app.extensions["tahseel"])


@pytest.fixture(name="collection")
def collection_fixture() -> Callable[..., dict[str, Any]]:
    """The factory of valid ``st-collection`` bodies (``number`` makes the ids unique)."""
    return collection


class LiveSettlement:
    """Settlement on a real socket, driven over HTTP like the harness drives it."""

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.component = server.app.extensions["tahseel"]
        self.http = requests.Session()
        self.http.trust_env = False
        self.feed = Feed(lambda path, **kw: self.http.post(self.url + path, **kw), self.component)

    @property
    def url(self) -> str:
        return self.server.url

    def admin(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post(f"{self.url}/_admin/{path}", json=body or {})
        assert response.status_code in (200, 201), response.text
        return response.json()

    def get(self, path: str) -> Any:
        response = self.http.get(self.url + path)
        assert response.status_code == 200, response.text
        return response.json()


    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.http.post(self.url + path, json=body)


@pytest.fixture
def live_settlement_of(receiver: Any) -> Iterator[Callable[..., LiveSettlement]]:
    """Live settlements with their own ``settlement`` settings, all calling ``receiver`` as the
    collection service; stopped after the test."""
    started: list[LiveSettlement] = []

    def start(**own: Any) -> LiveSettlement:
        live = LiveSettlement(ServerThread(create_app(settlement_settings(reference=receiver.url, **own))).start())
        live.admin("clock", {"set": START})
        started.append(live)
        return live

    yield start
    for live in started:
        live.http.close()
        live.server.stop()


@pytest.fixture
def live_settlement(live_settlement_of: Callable[..., LiveSettlement]) -> LiveSettlement:
    return live_settlement_of()


@pytest.fixture
def feed_for() -> Callable[[Flask], Feed]:
    """A signed feed into any in-process settlement app (for apps with their own settings)."""
    return lambda app: Feed(app.test_client().post, app.extensions["tahseel"])
