"""Shared fixtures: the whole stack on loopback (once per session) and a recording receiver."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request

from harness.stack import Stack
from simulators.common.server import ServerThread


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """Every simulator and the reference service on free loopback ports (stopped at the end)."""
    with Stack() as running:
        yield running


class RecordingReceiver:
    """A stand-in for whoever a party calls: records every POST, answers queued statuses, then 200.

    ``answer_next`` queues statuses (an int, or ``(status, {header: value})`` for an answer with
    headers); ``answer_headers`` sets headers sent with every later answer that has none queued.
    """

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._statuses: deque[int | tuple[int, dict[str, str]]] = deque()
        self._headers: dict[str, str] = {}
        self._lock = threading.Lock()
        app = Flask("recording_receiver")

        @app.post("/<path:path>")
        def receive(path: str):  # type: ignore[no-untyped-def]
            with self._lock:
                self.received.append({"path": "/" + path, "headers": dict(request.headers),
                                      "body": request.get_data()})
                queued = self._statuses.popleft() if self._statuses else 200
                status, headers = queued if isinstance(queued, tuple) else (queued, dict(self._headers))
            return {"received": True}, status, headers

        self.server = ServerThread(app)

    @property
    def url(self) -> str:
        return self.server.url

    def answer_next(self, *statuses: int | tuple[int, dict[str, str]]) -> None:
        with self._lock:
            self._statuses.extend(statuses)

    def answer_headers(self, headers: dict[str, str]) -> None:
        with self._lock:
            self._headers = dict(headers)

    def on(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.received if r["path"] == path]


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    """A recording receiver on a free loopback port, stopped after the test."""
    fake = RecordingReceiver()
    fake.server.start()
    yield fake
    fake.server.stop()
