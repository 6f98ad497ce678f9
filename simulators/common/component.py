"""A component: one Flask app plus its clock, scheduler, journal, faults and outbound client.

Every simulator and the reference service build one ``Component`` in their app factory and call
``install(app)``: that mounts the admin plane, journals every request, applies inbound faults, and
turns every error into ``{"error": {"code", "message", "field"}}`` with a 4xx (never a traceback).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask import Flask, Response, g, has_request_context, jsonify, request
from werkzeug.exceptions import HTTPException

from .calendar import BusinessCalendar
from .clock import Clock, iso
from .errors import ApiError, MalformedBody, Unavailable, UnsupportedMediaType, ValidationFailed
from .faults import FaultInjector
from .http import OutboundClient
from .journal import Journal, body_text, form_text, redact
from .scheduler import Scheduler

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1_048_576
_SURROGATE = re.compile("[\ud800-\udfff]")


class Component:
    def __init__(self, name: str, settings: dict[str, Any], *, domain_fault_kinds: set[str] | None = None,
                 ticker: bool = True) -> None:
        self.name = name
        self.settings = settings
        self.clock = Clock()
        self.calendar = BusinessCalendar.from_config(settings.get("calendar"))
        self.scheduler = Scheduler(self.clock)
        self.journal = Journal()
        self.faults = FaultInjector(self.clock, domain_fault_kinds)
        self.http = OutboundClient(self)
        self._reset_hooks: list[Callable[[], None]] = []
        self._stop_hooks: list[Callable[[], None]] = []
        self._clock_hooks: list[Callable[[], None]] = []
        self._tunables: dict[str, tuple[tuple[str, ...], Any]] = {}
        self._inbound_attrs: list[Callable[[], dict[str, Any]]] = []
        self._ticker = ticker

    # --- settings -----------------------------------------------------------------------------
    def url_of(self, party: str) -> str:
        return str(self.settings["urls"][party]).rstrip("/")

    def secret(self, name: str) -> str:
        return str(self.settings["secrets"][name])

    @property
    def own(self) -> dict[str, Any]:
        """This component's own section of the settings."""
        return dict(self.settings.get(self.name) or {})

    # --- lifecycle ----------------------------------------------------------------------------
    def on_reset(self, fn: Callable[[], None]) -> None:
        self._reset_hooks.append(fn)

    def on_stop(self, fn: Callable[[], None]) -> None:
        self._stop_hooks.append(fn)

    def tunable(self, name: str, allowed: tuple[str, ...]) -> None:
        """Let the admin plane (``/_admin/settings``) switch one of this component's own settings
        among ``allowed`` at run time, a test hook like the clock: a scenario can try both of a
        biller's rules on one running stack. ``reset`` puts the configured value back."""
        self._tunables[name] = (allowed, self.own.get(name, allowed[0]))

    def tunables(self) -> dict[str, dict[str, Any]]:
        return {name: {"value": self.own.get(name, default), "allowed": list(allowed)}
                for name, (allowed, default) in self._tunables.items()}

    def tune(self, name: str, value: Any) -> None:
        self.tunables_check(name, value)
        self.settings.setdefault(self.name, {})[name] = value

    def tunables_check(self, name: str, value: Any) -> None:
        if name not in self._tunables:
            raise ValidationFailed(f"{name} is not a setting the admin plane may change; these are:"
                                   f" {', '.join(sorted(self._tunables)) or '(none)'}", field=name)
        allowed, _ = self._tunables[name]
        if value not in allowed:
            raise ValidationFailed(f"{name} is one of {', '.join(allowed)}", field=name)

    def on_clock_moved(self, fn: Callable[[], None]) -> None:
        """Called after the admin plane set, advanced or released the clock (e.g. to persist it, so a
        restarted worker comes back on the scenario's simulated time, not the real one)."""
        self._clock_hooks.append(fn)

    def clock_moved(self) -> None:
        for fn in self._clock_hooks:
            fn()

    def reset(self) -> None:
        """Forget every entity, journal entry, fault and pending task; keep the clock as it is."""
        with self.scheduler._run_lock:
            self.scheduler.clear()
            self.faults.clear()
            for hook in self._reset_hooks:
                hook()
            self.journal.clear()
            for name, (_, configured) in self._tunables.items():  # back to what the settings file says
                self.settings.setdefault(self.name, {})[name] = configured

    def stop(self) -> None:
        self.scheduler.stop_ticker()
        for hook in self._stop_hooks:
            hook()

    def add_inbound_attrs(self, fn: Callable[[], dict[str, Any]]) -> None:
        """``fn()`` (called in the request, before the inbound faults are asked) names attributes of the
        request that an inbound fault's ``match`` can scope on, e.g. the card gateway's request numbers;
        without any, an inbound fault with a ``match`` never hits."""
        self._inbound_attrs.append(fn)

    # --- a domain fault that loses the answer ---------------------------------------------------
    def serving_request(self) -> bool:
        """Whether this thread is answering a request (not the admin plane's) whose answer a domain
        fault could drop; scheduled work run by a clock move is not such a request."""
        return has_request_context() and not request.path.startswith("/_admin/")

    def drop_answer(self, fault: Any) -> bool:
        """Lose the answer of the request being served, once its work is done, because of a domain
        ``fault`` (e.g. the card gateway's ``payment_response_lost``): the connection is cut as by
        the inbound ``drop_response`` fault and the journal names the fault. False (nothing done)
        when :meth:`serving_request` is not true."""
        if not self.serving_request():
            return False
        g.tahseel_dropped_by = fault
        return True

    # --- Flask wiring -------------------------------------------------------------------------
    def install(self, app: Flask) -> None:
        from .admin import admin_blueprint

        if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask's default config holds None, not nothing
            app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
        app.json.ensure_ascii = False  # type: ignore[attr-defined]
        app.json.sort_keys = False  # type: ignore[attr-defined]
        app.extensions["tahseel"] = self
        app.register_blueprint(admin_blueprint(self))
        app.before_request(self._before)
        app.after_request(self._after)
        app.register_error_handler(ApiError, _api_error)
        app.register_error_handler(HTTPException, _http_error)
        app.register_error_handler(Exception, self._unexpected)
        if self._ticker:
            self.scheduler.start_ticker()

    def _before(self) -> Response | None:
        g.tahseel_started = time.perf_counter()
        g.tahseel_at = iso(self.clock.now())
        if request.path.startswith("/_admin/"):
            return None
        attrs: dict[str, Any] = {}
        for fn in self._inbound_attrs:
            attrs.update(fn())
        fault = self.faults.take("in", request.path, method=request.method, **attrs)
        g.tahseel_fault = fault
        if fault is None:
            return None
        if fault.kind == "down":
            raise Unavailable(f"{self.name} is down (injected fault {fault.id})", code="DOWN")
        if fault.kind == "delay":
            time.sleep(float(fault.params.get("seconds", 1.0)))
        elif fault.kind == "error":
            status = int(fault.params.get("status", 500))
            body = {"error": {"code": "INJECTED_ERROR", "message": f"injected fault {fault.id}"}}
            return Response(json.dumps(body), status=status, mimetype="application/json")
        return None

    def _after(self, response: Response) -> Response:
        if request.path.startswith("/_admin/"):
            return response
        fault = getattr(g, "tahseel_fault", None)
        dropped = fault is not None and fault.kind == "drop_response"
        dropped_by = getattr(g, "tahseel_dropped_by", None)  # a domain fault (drop_answer)
        if dropped_by is not None:
            fault, dropped = dropped_by, True
        try:
            self._journal_exchange(response, fault, dropped)
        except Exception:  # noqa: BLE001 - the journal must never turn an answer into a 500
            log.exception("%s could not journal %s %s", self.name, request.method, request.path)
        if dropped:
            _drop_connection()
        return response

    def _journal_exchange(self, response: Response, fault: Any, dropped: bool) -> None:
        response_body = "" if response.direct_passthrough else body_text(response.get_data())
        started = getattr(g, "tahseel_started", time.perf_counter())
        self.journal.record(
            at=getattr(g, "tahseel_at", iso(self.clock.now())), direction="in", method=request.method,
            url=redact(request.url), path=request.path, status=response.status_code,
            request_headers=dict(request.headers), request_body=_journal_request_body(),
            response_body=response_body, duration_ms=round((time.perf_counter() - started) * 1000, 2),
            peer=request.remote_addr or "",
            outcome=f"fault:{fault.kind}" if fault is not None else "ok",
            note=f"work done, answer dropped by injected fault {fault.id}" if dropped else "",
        )

    def _unexpected(self, exc: Exception) -> tuple[Response, int]:
        log.exception("unexpected error in %s", self.name)
        body = {"error": {"code": "INTERNAL", "message": f"{type(exc).__name__}: {exc}"}}
        return jsonify(body), 500


def _api_error(exc: ApiError) -> tuple[Response, int]:
    return jsonify(exc.to_dict()), exc.status


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    code = (exc.name or "HTTP_ERROR").upper().replace(" ", "_")
    field = "body" if exc.code in (400, 413, 415) else ("path" if exc.code == 404 else None)
    body: dict[str, Any] = {"code": code, "message": exc.description or exc.name}
    if field:
        body["field"] = field
    response = jsonify({"error": body})
    if exc.code == 413:  # the body was never read: the connection cannot carry another request
        response.headers["Connection"] = "close"
    return response, exc.code or 400


def http_error_response(exc: HTTPException) -> tuple[Response, int]:
    """The common JSON answer to an HTTP error (404, 405, 413...), for a party that answers some of
    its paths in its own protocol's shape to fall back on for every other path."""
    return _http_error(exc)


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _journal_request_body() -> str:
    """The request body as the journal keeps it. Forms are journaled as parsed fields, so that no
    way of writing a field (quoting, RFC 2231 names, percent-encoding) can carry a CVV past the mask."""
    try:
        if request.mimetype in FORM_TYPES:
            try:
                fields = list(request.form.items(multi=True))
                files = [(name, f.filename or "") for name, f in request.files.items(multi=True)]
            except HTTPException:
                raise
            except Exception:  # noqa: BLE001 - an unparseable form is journaled as such, never raw
                return "<form that could not be parsed>"
            return form_text(fields, files)
        return body_text(request.get_data(cache=True))
    except HTTPException as exc:  # 413: the body was never read, so there is nothing to keep
        return f"<body not kept: {exc.name}>"


def _drop_connection() -> None:
    """Cut the TCP connection after the work is done, so the caller never learns the answer."""
    sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


MAX_JSON_DEPTH = 32


def read_json(schema: str | None = None) -> Any:
    """The request body as JSON, validated against ``contracts/<schema>`` when given.

    Refuses, before anything else looks at it: a media type that is not JSON (415), a body that is
    not UTF-8 JSON, repeats a key, holds NaN/Infinity, nests deeper than ``MAX_JSON_DEPTH`` or
    holds a lone UTF-16 surrogate (``"\ud800"`` parses, but can never be stored or sent on).
    """
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(f"Content-Encoding {encoding[:40]!r} is not accepted; send the body as is",
                                   field="Content-Encoding")
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not (mimetype.startswith("application/") and mimetype.endswith("+json")):
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {mimetype or 'missing'!r}",
                                   field="Content-Type")
    raw = request.get_data(cache=True)
    if not raw:
        raise MalformedBody("the request body is empty; a JSON object is expected", field="body")
    try:
        # parse_float=Decimal: no request ever carries a float (120.0 is not an integer, money never
        # a binary fraction), and 1e400 stays a number instead of becoming infinity.
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys,
                          parse_constant=_no_constants, parse_float=Decimal)
    except UnicodeDecodeError:
        raise MalformedBody("the body is not UTF-8", field="body") from None
    except RecursionError:
        raise MalformedBody(f"the body nests deeper than {MAX_JSON_DEPTH} levels", field="body") from None
    except ValueError as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc}", field="body") from None
    problem = _unstorable(data, "body", 0)
    if problem:
        raise MalformedBody(problem[1], field=problem[0])
    if schema is not None:
        from .contracts import validate

        validate(schema, data)
    return data


def _unstorable(value: Any, path: str, depth: int) -> tuple[str, str] | None:
    """(field, reason) for the first value that nests too deep or holds a lone surrogate."""
    if depth > MAX_JSON_DEPTH:
        return "body", f"the body nests deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, str):
        return (path, f"{path} holds a lone UTF-16 surrogate") if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path != "body" else str(key)
            if _SURROGATE.search(key):
                return path, f"a key in {path} holds a lone UTF-16 surrogate"
            found = _unstorable(item, inner, depth + 1)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _unstorable(item, f"{path}.{index}", depth + 1)
            if found:
                return found
    return None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")
