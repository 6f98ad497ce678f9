"""Messages that must arrive: a signed POST retried with backoff on the simulated clock until a 2xx.

Webhooks, the collections feed, settlement credit notices all share this. The body is fixed when
the event happens, so every retry re-sends the same content (only the signature's timestamp is
fresh). Attempts are the component's scheduled work, so a retry "in an hour" happens when the
simulated clock passes it, and the calls go through ``component.http``, so out-faults hit them.

By default a message is a signed JSON body acknowledged by any 2xx. A :class:`Delivery` may instead
carry a form body (``encoding="form"``) and go unsigned (``secret_name=None``: no X-Tahseel
headers), and a :class:`Courier` may take its own ``acknowledged(response)`` test (e.g. e-finance's
``Response_Code: 000`` header) for protocols that acknowledge otherwise.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .clock import iso
from .http import OutboundFailure, OutboundResponse

if TYPE_CHECKING:
    from .component import Component

log = logging.getLogger(__name__)
PENDING, DELIVERED, GAVE_UP = "pending", "delivered", "gave_up"
ENCODINGS = ("json", "form")


@dataclass
class Delivery:
    """One message to get acknowledged: where it goes, what it says, and every attempt so far."""

    delivery_id: str
    kind: str
    url: str
    target: str  # the party called: for out-faults and the journal
    secret_name: str | None  # the settings secret that signs it; None: sent unsigned
    body: dict[str, Any]
    state: str = PENDING
    attempts: list[dict[str, Any]] = field(default_factory=list)
    next_attempt_at: datetime | None = None
    gave_up_at: datetime | None = None
    encoding: str = "json"  # "json" (compact UTF-8 JSON) | "form" (application/x-www-form-urlencoded)

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"a delivery's encoding is one of {', '.join(ENCODINGS)}, not {self.encoding!r}")

    def payload(self) -> dict[str, Any]:
        """The keyword arguments of ``component.http.request`` that carry the body."""
        if self.encoding == "form":
            return {"data": urlencode([(str(k), str(v)) for k, v in self.body.items()]).encode("ascii"),
                    "headers": {"Content-Type": "application/x-www-form-urlencoded"}}
        return {"json_body": self.body}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.delivery_id, "kind": self.kind, "url": self.url, "target": self.target,
            "state": self.state, "attempts": list(self.attempts),
            "next_attempt_at": iso(self.next_attempt_at) if self.next_attempt_at else None,
            "gave_up_at": iso(self.gave_up_at) if self.gave_up_at else None,
        }


class Courier:
    """Delivers one component's messages of one retry policy.

    ``backoff[i]`` is the wait after the (i+1)-th failed attempt. With ``give_up`` the courier
    stops after ``len(backoff)`` retries (state ``gave_up``); without it the last wait repeats
    until the message is acknowledged. ``acknowledged(response)`` says whether an answer counts as
    the acknowledgement (default: any 2xx); an answer that does not is retried like a failure.
    """

    def __init__(self, component: Component, backoff: Sequence[float], *, give_up: bool = True,
                 timeout: float = 5.0, on_delivered: Callable[[Delivery, OutboundResponse], None] | None = None,
                 acknowledged: Callable[[OutboundResponse], bool] | None = None) -> None:
        if not backoff:
            raise ValueError("a courier needs at least one backoff interval")
        self.component = component
        self.backoff = [float(s) for s in backoff]
        self.give_up = give_up
        self.timeout = float(timeout)
        self.on_delivered = on_delivered
        self.acknowledged: Callable[[OutboundResponse], bool] = acknowledged or (lambda response: response.ok)
        self._deliveries: dict[str, Delivery] = {}
        self._lock = threading.Lock()
        component.on_reset(self.reset)

    def send(self, delivery: Delivery, at: datetime | None = None) -> Delivery:
        """Queue ``delivery`` for its first attempt at ``at`` (default: now, i.e. the next tick)."""
        with self._lock:
            self._deliveries[delivery.delivery_id] = delivery
        self._schedule(delivery, at or self.component.clock.now())
        return delivery

    def send_together(self, deliveries: Sequence[Delivery], at: datetime | None = None) -> None:
        """Queue ``deliveries`` so that their first attempts are made at the same moment, each from
        its own thread (e.g. one message posted twice at once, to find a receiver's race between two
        identical posts). Each is then acknowledged and retried on its own, like any delivery."""
        when = at or self.component.clock.now()
        with self._lock:
            for delivery in deliveries:
                self._deliveries[delivery.delivery_id] = delivery
                delivery.next_attempt_at = when
        ids = [d.delivery_id for d in deliveries]
        self.component.scheduler.schedule(
            when, f"{deliveries[0].kind} {' + '.join(ids)} attempt 1 (together)",
            lambda: self._attempt_together(ids))

    def _attempt_together(self, delivery_ids: list[str]) -> None:
        """First attempts of several deliveries from as many threads, released by one barrier; joined
        before returning, so the scheduled work is over when the clock move that ran it answers."""
        barrier = threading.Barrier(len(delivery_ids))

        def attempt(delivery_id: str) -> None:
            try:
                barrier.wait(timeout=self.timeout)
            except threading.BrokenBarrierError:
                pass  # a thread that could not start in time still makes its attempt
            try:
                self._attempt(delivery_id)
            except Exception as exc:  # noqa: BLE001 - reported in /_admin/health like any scheduled work
                log.exception("attempt of %s failed", delivery_id)
                self.component.scheduler.errors.append(f"{delivery_id}: {exc!r}")

        threads = [threading.Thread(target=attempt, args=(delivery_id,), daemon=True,
                                    name=f"courier-together-{delivery_id}") for delivery_id in delivery_ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def get(self, delivery_id: str) -> Delivery | None:
        with self._lock:
            return self._deliveries.get(delivery_id)

    def __contains__(self, delivery_id: str) -> bool:
        with self._lock:
            return delivery_id in self._deliveries

    def reset(self) -> None:
        with self._lock:
            self._deliveries.clear()

    def _schedule(self, delivery: Delivery, at: datetime) -> None:
        delivery.next_attempt_at = at
        self.component.scheduler.schedule(
            at, f"{delivery.kind} {delivery.delivery_id} attempt {len(delivery.attempts) + 1}",
            lambda: self._attempt(delivery.delivery_id))

    def _attempt(self, delivery_id: str) -> None:
        """Send once; on no answer or no acknowledgement, schedule the next attempt after the backoff."""
        with self._lock:
            delivery = self._deliveries.get(delivery_id)
            if delivery is None or delivery.state != PENDING:
                return
        comp = self.component
        now = comp.clock.now()
        status: int | None = None
        response: OutboundResponse | None = None
        acknowledged = False
        sign_with = comp.secret(delivery.secret_name) if delivery.secret_name is not None else None
        try:
            response = comp.http.request("POST", delivery.url, target=delivery.target, sign_with=sign_with,
                                         timeout=self.timeout, **delivery.payload())
            status = response.status
            acknowledged = bool(self.acknowledged(response))
            if acknowledged:
                outcome = "delivered"
            else:
                outcome = f"http_{status}" if not response.ok else "not_acknowledged"
        except OutboundFailure as exc:
            outcome = exc.kind
        with self._lock:
            if self._deliveries.get(delivery_id) is not delivery:
                return  # forgotten by a reset while the call was in flight
            delivery.attempts.append({"attempt": len(delivery.attempts) + 1, "at": iso(now), "status": status,
                                      "outcome": outcome})
            delivery.next_attempt_at = None
            if acknowledged:
                delivery.state = DELIVERED
            else:
                failed = len(delivery.attempts)
                if self.give_up and failed > len(self.backoff):
                    delivery.state, delivery.gave_up_at = GAVE_UP, now
                else:
                    wait = self.backoff[min(failed, len(self.backoff)) - 1]
                    self._schedule(delivery, now + timedelta(seconds=wait))
        if delivery.state == DELIVERED and self.on_delivered is not None and response is not None:
            self.on_delivered(delivery, response)
