"""Outbound HTTP for every component: journaled, fault-injectable, optionally signed.

A component never calls ``requests`` directly: it calls :class:`OutboundClient`, so every call it
makes shows in its journal and a declared ``out`` fault (down, timeout, delay, error,
drop_response, duplicate) can hit it. Failures to get an answer raise :class:`OutboundFailure`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from .journal import body_text, redact
from .signing import sign_headers

if TYPE_CHECKING:
    from .component import Component


class OutboundFailure(Exception):
    """Raised when an outbound call got no HTTP answer (refused, timed out, answer lost)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "down" | "timeout" | "drop_response" | "connection"


@dataclass
class OutboundResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def encode_json(payload: Any) -> bytes:
    """The one JSON encoding used for signed bodies (compact, UTF-8, keys in order given)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class OutboundClient:
    def __init__(self, component: Component, default_timeout: float = 5.0) -> None:
        self.component = component
        self.default_timeout = default_timeout
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # loopback only: never a proxy from the environment
            self._local.session = session
        return session

    def request(
        self,
        method: str,
        url: str,
        *,
        target: str,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        sign_with: str | None = None,
        timeout: float | None = None,
    ) -> OutboundResponse:
        comp = self.component
        body = encode_json(json_body) if json_body is not None else data
        all_headers = dict(headers or {})
        if json_body is not None:
            all_headers.setdefault("Content-Type", "application/json; charset=utf-8")
        if sign_with is not None:
            all_headers.update(sign_headers(sign_with, body or b"", comp.clock.now()))
        path = urlsplit(url).path
        fault = comp.faults.take("out", path, method=method, target=target)
        base = dict(direction="out", method=method.upper(), url=redact(url), path=path, peer=target,
                    request_headers=all_headers, request_body=body_text(body))
        if fault is not None and fault.kind in ("down", "timeout", "error"):
            status = int(fault.params.get("status", 503)) if fault.kind == "error" else None
            comp.journal.record(at=_now(comp), status=status, outcome=f"fault:{fault.kind}",
                                note=f"injected fault {fault.id}; nothing was sent", **base)
            if fault.kind == "error":
                return OutboundResponse(status or 503, b'{"error":{"code":"INJECTED"}}')
            raise OutboundFailure(fault.kind, f"{target} {fault.kind} (injected fault {fault.id})")
        if fault is not None and fault.kind == "delay":
            time.sleep(float(fault.params.get("seconds", 1.0)))
        sends = 2 if fault is not None and fault.kind == "duplicate" else 1
        response: OutboundResponse | None = None
        for attempt in range(sends):
            response = self._send(method, url, body, all_headers, timeout, base,
                                  note=f"duplicate delivery {attempt + 1}/2 (fault {fault.id})"
                                  if sends == 2 else "")
        assert response is not None  # noqa: S101 - loop runs at least once
        if fault is not None and fault.kind == "drop_response":
            comp.journal.record(at=_now(comp), status=None, outcome="fault:drop_response",
                                note=f"answer {response.status} lost by injected fault {fault.id}", **base)
            raise OutboundFailure("drop_response", f"answer from {target} lost (injected fault {fault.id})")
        return response

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str],
              timeout: float | None, base: dict[str, Any], note: str) -> OutboundResponse:
        comp = self.component
        started = time.perf_counter()
        at = _now(comp)
        try:
            raw = self._session().request(method, url, data=body, headers=headers,
                                          timeout=timeout or self.default_timeout, allow_redirects=False)
        except requests.Timeout as exc:
            comp.journal.record(at=at, status=None, outcome="timeout", note=str(exc)[:300],
                                duration_ms=_ms(started), **base)
            raise OutboundFailure("timeout", f"{base['peer']} timed out") from exc
        except requests.RequestException as exc:
            comp.journal.record(at=at, status=None, outcome="error", note=str(exc)[:300],
                                duration_ms=_ms(started), **base)
            raise OutboundFailure("connection", f"{base['peer']} unreachable: {exc}") from exc
        comp.journal.record(at=at, status=raw.status_code, response_body=body_text(raw.content),
                            duration_ms=_ms(started), note=note, **base)
        return OutboundResponse(raw.status_code, raw.content, dict(raw.headers))


def _now(component: Component) -> str:
    from .clock import iso

    return iso(component.clock.now())


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
