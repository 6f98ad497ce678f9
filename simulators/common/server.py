"""Run a component's WSGI app on a real multi-threaded server on loopback.

``ServerThread`` is what tests and ``tahseel run`` use: port 0 picks a free port, ``start()``
returns once the socket listens, ``stop()`` shuts the server and the component's ticker down.
``reserve_socket()`` binds a port *before* the app exists, so that a set of components can be told
each other's URLs without a race for free ports. ``tahseel serve`` runs each component under
gunicorn's threaded worker instead (see ``harness/serve.py``).
"""

from __future__ import annotations

import logging
import socket
import threading

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

LOOPBACK = "127.0.0.1"


def reserve_socket(host: str = LOOPBACK, port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one), for ``ServerThread(sock=…)``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class ServerThread:
    def __init__(self, app: Flask, host: str = LOOPBACK, port: int = 0,
                 sock: socket.socket | None = None) -> None:
        self.app = app
        self.host = host
        self._sock = sock
        self.port = sock.getsockname()[1] if sock is not None else port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        if self._sock is None:
            self._sock = reserve_socket(self.host, self.port)
        self._server = make_server(self.host, self.port, self.app, threaded=True, fd=self._sock.fileno())
        self._sock.close()  # the server holds its own duplicate of the descriptor
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        component = self.app.extensions.get("tahseel")
        if component is not None:
            component.stop()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
