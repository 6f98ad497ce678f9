"""Declared faults: what goes wrong, where, and for how long.

A fault is data (``contracts/fault.schema.json``), never code: a *kind* (``down``, ``delay``,
``timeout``, ``drop_response``, ``error``, ``duplicate`` or a party's own kind such as
``late_batch``), a *direction* (``in`` for requests the component receives, ``out`` for calls it
makes, ``domain`` for a party's business behaviour), a scope (endpoint glob, method, target, match
attributes), and a life: a ``count`` of hits and/or a window on the simulated clock.

``params.rate`` (0 to 1) makes any fault intermittent: each call the fault's scope matches while it
is active draws from the fault's own ``random.Random(params.seed)`` (seed 0 when not given) and is
hit only when the draw is below the rate; a call it spares is not counted (``count`` counts hits).
The same seed and the same sequence of calls give the same hits on every run.
"""

from __future__ import annotations

import fnmatch
import itertools
import random
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from .clock import Clock, iso, parse_duration, parse_instant
from .errors import ValidationFailed

MAX_COUNT = 1_000_000
MAX_DELAY_SECONDS = 30  # a delayed request holds a server thread; the admin plane shares the pool
HTTP_KINDS_IN = {"down", "delay", "error", "drop_response"}
HTTP_KINDS_OUT = {"down", "delay", "timeout", "error", "drop_response", "duplicate"}


@dataclass
class Fault:
    id: str
    kind: str
    direction: str
    endpoint: str | None = None
    method: str | None = None
    target: str | None = None
    match: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    remaining: int | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    hits: int = 0
    spared: int = 0  # calls in scope that params.rate let through
    _draws: random.Random | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.params.get("rate") is not None:
            self._draws = random.Random(int(self.params.get("seed") or 0))

    def strikes(self) -> bool:
        """Whether this call in scope is hit: always, or with probability ``params.rate`` (seeded)."""
        if self._draws is None:
            return True
        if self._draws.random() < float(self.params["rate"]):
            return True
        self.spared += 1
        return False

    def active(self, now: datetime) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.starts_at is not None and now < self.starts_at:
            return False
        return not (self.ends_at is not None and now >= self.ends_at)

    def applies(self, direction: str, point: str, method: str | None, target: str | None,
                attrs: dict[str, Any]) -> bool:
        if direction != self.direction:
            return False
        if self.endpoint and not fnmatch.fnmatchcase(point, self.endpoint):
            return False
        if self.method and method and self.method.upper() != method.upper():
            return False
        if self.target and target != self.target:
            return False
        return all(str(attrs.get(k)) == str(v) for k, v in self.match.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "direction": self.direction,
            "endpoint": self.endpoint, "method": self.method, "target": self.target,
            "match": self.match, "params": self.params, "remaining": self.remaining,
            "from": iso(self.starts_at) if self.starts_at else None,
            "until": iso(self.ends_at) if self.ends_at else None, "hits": self.hits,
            **({"spared": self.spared} if self._draws is not None else {}),
        }


def check_point_scope(spec: dict[str, Any], point: str) -> None:
    """A domain fault that acts at one point of its party is scoped by ``match`` only: ``endpoint`` may
    be left out or name that point, ``method`` and ``target`` mean nothing for it (refused, so a spec
    that looks scoped but is not never silently hits every request)."""
    kind = str(spec.get("kind"))
    if spec.get("endpoint") is not None and spec["endpoint"] != point:
        raise ValidationFailed(f"a {kind} fault acts at the point {point!r}: leave endpoint out or say {point!r}",
                               field="endpoint")
    for name in ("method", "target"):
        if spec.get(name) is not None:
            raise ValidationFailed(f"{name} does not scope a {kind} fault; use match", field=name)


class FaultInjector:
    """The active faults of one component; ``take`` finds the one that hits and counts it."""

    def __init__(self, clock: Clock, domain_kinds: set[str] | None = None) -> None:
        self.clock = clock
        self.domain_kinds = set(domain_kinds or ())
        self._faults: dict[str, Fault] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._validators: dict[str, Callable[[dict[str, Any]], None]] = {}

    def declare(self, kinds: Iterable[str], validate: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Add domain kinds after the component was built, for a part of a party that is built on its
        own (the card gateway's e-finance protocol declares its confirmation faults this way).

        ``validate(spec)`` sees every spec of those kinds before it is stored and raises
        :class:`ValidationFailed` naming the field, so a fault whose params the party cannot use is
        refused with a 4xx instead of doing nothing later.
        """
        kinds = set(kinds)
        self.domain_kinds |= kinds
        if validate is not None:
            for kind in kinds:
                self._validators[kind] = validate

    def add(self, spec: dict[str, Any]) -> Fault:
        """Declare a fault from its wire form; raises :class:`ValidationFailed` naming the field."""
        if not isinstance(spec, dict):
            raise ValidationFailed("a fault is a JSON object", field="fault")
        direction = spec.get("direction", "in")
        kind = spec.get("kind")
        allowed = {"in": HTTP_KINDS_IN, "out": HTTP_KINDS_OUT, "domain": self.domain_kinds}.get(direction)
        if allowed is None:
            raise ValidationFailed("direction must be 'in', 'out' or 'domain'", field="direction")
        if kind not in allowed:
            raise ValidationFailed(
                f"kind {kind!r} is not a fault of direction {direction!r}; one of {sorted(allowed)}",
                field="kind")
        count = spec.get("count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_COUNT):
            raise ValidationFailed(f"count must be an integer from 1 to {MAX_COUNT}", field="count")
        for name in ("endpoint", "method", "target"):
            if spec.get(name) is not None and not isinstance(spec.get(name), str):
                raise ValidationFailed(f"{name} must be a string", field=name)
        for name in ("match", "params"):
            if not isinstance(spec.get(name, {}), dict):
                raise ValidationFailed(f"{name} must be an object", field=name)
        now = self.clock.now()
        try:
            starts = parse_instant(spec["from"]) if spec.get("from") else None
            ends = parse_instant(spec["until"]) if spec.get("until") else None
        except (TypeError, ValueError) as exc:
            raise ValidationFailed(f"not an ISO 8601 instant: {exc}", field="from/until") from None
        if spec.get("for") is not None and spec.get("until"):
            raise ValidationFailed("give the window's end once: 'for' (a length) or 'until' (an instant), not both",
                                   field="for")
        if spec.get("for") is not None:
            try:
                ends = (starts or now) + parse_duration(spec["for"])
            except (TypeError, ValueError, OverflowError) as exc:
                raise ValidationFailed(str(exc) if not isinstance(exc, OverflowError)
                                       else "the window ends past the last representable instant",
                                       field="for") from None
        params = dict(spec.get("params") or {})
        seconds = params.get("seconds")
        if seconds is not None and (not isinstance(seconds, int | float | Decimal) or isinstance(seconds, bool)
                                    or not 0 <= seconds <= MAX_DELAY_SECONDS):
            raise ValidationFailed(f"params.seconds must be a number from 0 to {MAX_DELAY_SECONDS}",
                                   field="params.seconds")
        rate = params.get("rate")
        if rate is not None and (not isinstance(rate, int | float | Decimal) or isinstance(rate, bool)
                                 or not 0 <= rate <= 1):
            raise ValidationFailed("params.rate must be a number from 0 to 1", field="params.rate")
        seed = params.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValidationFailed("params.seed must be an integer", field="params.seed")
        status = params.get("status")
        if status is not None and (not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599):
            raise ValidationFailed("params.status must be an HTTP status", field="params.status")
        if kind == "error" and status is not None and not 400 <= status <= 599:
            # an "error" answering 200 or a redirect would tell the caller the work was done
            raise ValidationFailed("an error fault answers a 4xx or 5xx status", field="params.status")
        validate = self._validators.get(kind) if direction == "domain" else None
        if validate is not None:
            validate(spec)
        with self._lock:
            fault = Fault(
                id=f"f{next(self._ids)}", kind=kind, direction=direction,
                endpoint=spec.get("endpoint"), method=spec.get("method"), target=spec.get("target"),
                match={str(k): str(v) for k, v in (spec.get("match") or {}).items()},
                params=params, remaining=count, starts_at=starts, ends_at=ends,
            )
            self._faults[fault.id] = fault
        return fault

    def take(self, direction: str, point: str, *, method: str | None = None, target: str | None = None,
             kinds: Collection[str] | None = None, **attrs: Any) -> Fault | None:
        """The first active fault for this call, counted as one hit; ``None`` when nothing hits.

        ``kinds`` limits the search to those kinds, so a party with several domain kinds acting at
        one point can ask for each separately (and a hit of one never uses up another's count).
        """
        now = self.clock.now()
        with self._lock:
            for fault in self._faults.values():
                if kinds is not None and fault.kind not in kinds:
                    continue
                if fault.active(now) and fault.applies(direction, point, method, target, attrs):
                    if not fault.strikes():
                        continue
                    fault.hits += 1
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None

    def give_back(self, fault: Fault) -> None:
        """Undo the hit ``take`` counted for a fault that turned out not to apply to the call that took
        it (e.g. settlement's ``file_broken_line`` naming a line the file does not have): it is not
        used up and stays for the next call. Under the injector's lock, like ``take``."""
        with self._lock:
            fault.hits = max(0, fault.hits - 1)
            if fault.remaining is not None:
                fault.remaining += 1

    def list(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        with self._lock:
            return [dict(f.to_dict(), active=f.active(now)) for f in self._faults.values()]

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            return self._faults.pop(fault_id, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
