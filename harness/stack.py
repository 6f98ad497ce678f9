"""Start every simulator and the reference service in this process, on loopback.

Ports are reserved first (port 0 → free ports), then the settings are written with everybody's
URL, then the apps are made: nobody races for a port and every party knows the others. With
``target`` set, the reference service is not started and the simulators talk to the target.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import Any

from flask import Flask

from simulators.common.config import deep_merge, load_settings
from simulators.common.server import LOOPBACK, ServerThread, reserve_socket

FACTORIES = {
    "reference": "reference.app",
    "citizen_services": "simulators.citizen_services.app",
    "card_gateway": "simulators.card_gateway.app",
    "khales": "simulators.khales.app",
    "settlement": "simulators.settlement.app",
}
SIMULATORS = ("citizen_services", "card_gateway", "khales", "settlement")


def create_component_app(name: str, settings: dict[str, Any]) -> Flask:
    module = importlib.import_module(FACTORIES[name])
    return module.create_app(settings)


class Stack:
    """The running parties: ``urls`` maps each party to its base URL."""

    def __init__(self, *, target: str | None = None, overrides: dict[str, Any] | None = None,
                 ports: dict[str, int] | None = None, host: str = LOOPBACK,
                 data_dir: str | None = None) -> None:
        self.target = target.rstrip("/") if target else None
        self.overrides = overrides or {}
        self.ports = ports or {}
        self.host = host
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.data_dir = data_dir
        self.servers: dict[str, ServerThread] = {}
        self.urls: dict[str, str] = {}
        self.settings: dict[str, Any] = {}

    @property
    def parties(self) -> tuple[str, ...]:
        return SIMULATORS if self.target else ("reference", *SIMULATORS)

    def start(self) -> Stack:
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="tahseel-")
            self.data_dir = self._tmp.name
        sockets = {name: reserve_socket(self.host, self.ports.get(name, 0)) for name in self.parties}
        self.urls = {name: f"http://{self.host}:{sock.getsockname()[1]}" for name, sock in sockets.items()}
        if self.target:
            self.urls["reference"] = self.target
        base = {"urls": dict(self.urls),
                "reference": {"database": str(Path(self.data_dir) / "reference.sqlite3")},
                "card_gateway": {"data_dir": str(Path(self.data_dir) / "card_gateway")}}
        self.settings = load_settings(deep_merge(base, self.overrides))
        try:
            for name, sock in sockets.items():
                app = create_component_app(name, self.settings)
                self.servers[name] = ServerThread(app, self.host, sock=sock).start()
        except BaseException:
            for sock in sockets.values():
                sock.close()
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
