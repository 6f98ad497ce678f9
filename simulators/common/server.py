"""Run a component's WSGI app on a real multi-threaded server on loopback.

``ServerThread`` is what tests and ``tahseel run`` use: port 0 picks a free port, ``start()``
returns once the socket listens, ``stop()`` shuts the server and the component's ticker down.
``tahseel serve`` runs each component under gunicorn's threaded worker instead (see the CLI).
"""

from __future__ import annotations

import logging
import threading

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

LOOPBACK = "127.0.0.1"


class ServerThread:
    def __init__(self, app: Flask, host: str = LOOPBACK, port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = make_server(self.host, self.port, self.app, threaded=True)
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        component = self.app.extensions.get("tahseel")
        if component is not None:
            component.stop()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
