"""Work that falls due on a component's clock.

Two kinds of work: one-shot *tasks* (``schedule(at, fn)``) kept in memory, and *pollers*, objects
that look at durable state (an outbox table, settlement batches) and report when they next have
work. ``run_due()`` runs everything due at the clock's current time, oldest first, one run at a
time. It is called by the admin plane after the clock moves (or on ``POST /_admin/tick``), and, on a
real clock only, by a small ticker thread so that work due "now" happens without anybody asking.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from .clock import Clock

log = logging.getLogger(__name__)


class Poller(Protocol):
    """Durable due work: ``next_due`` says when, ``run_due`` does what is due at ``now``."""

    def next_due(self) -> datetime | None: ...

    def run_due(self, now: datetime) -> int:
        """Do what is due at ``now``; return how many items of work were done."""
        ...


class Scheduler:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[tuple[datetime, int, str, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._run_lock = threading.RLock()
        self._pollers: list[Poller] = []
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self.errors: list[str] = []

    def schedule(self, at: datetime, name: str, fn: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._heap, (at, next(self._seq), name, fn))

    def add_poller(self, poller: Poller) -> None:
        self._pollers.append(poller)

    def pending(self) -> list[dict[str, str]]:
        with self._lock:
            return [{"at": at.isoformat(), "name": name} for at, _, name, _ in sorted(self._heap)]

    def next_due(self) -> datetime | None:
        candidates: list[datetime] = []
        with self._lock:
            if self._heap:
                candidates.append(self._heap[0][0])
        for poller in self._pollers:
            due = self._poller_due(poller)
            if due is not None:
                candidates.append(due)
        return min(candidates) if candidates else None

    def clear(self) -> None:
        with self._lock:
            self._heap.clear()
        self.errors.clear()

    def run_due(self, max_passes: int = 50) -> int:
        """Run every task and poller due at the clock's now, in time order. Returns the work done.

        Work that falls due *during* the run (a poller that queues a delivery for now) runs in the
        same call, so that once the admin plane answers a clock move, this component is quiet.
        """
        ran = 0
        with self._run_lock:
            now = self.clock.now()
            for _ in range(max_passes):
                ran_this_pass = 0
                while True:
                    with self._lock:
                        if not self._heap or self._heap[0][0] > now:
                            break
                        _, _, name, fn = heapq.heappop(self._heap)
                    self._guarded(name, fn)
                    ran_this_pass += 1
                for poller in self._pollers:
                    due = self._poller_due(poller)  # cheap; spares a run on every tick with nothing due
                    if due is not None and due <= now:
                        ran_this_pass += self._guarded(type(poller).__name__, lambda p=poller: p.run_due(now)) or 0
                ran += ran_this_pass
                if ran_this_pass == 0:
                    break
        return ran

    def _poller_due(self, poller: Poller) -> datetime | None:
        try:
            return poller.next_due()
        except Exception as exc:  # noqa: BLE001 - reported in /_admin/health, never kills the ticker
            log.exception("poller %s could not say when it is due", type(poller).__name__)
            self.errors.append(f"{type(poller).__name__}.next_due: {exc!r}")
            del self.errors[:-50]
            return None

    def _guarded(self, name: str, fn: Callable[[], object]) -> int:
        # Due work must never kill the ticker; a failure is logged and kept for /_admin/health.
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - reported, not swallowed
            log.exception("scheduled work %s failed", name)
            self.errors.append(f"{name}: {exc!r}")
            del self.errors[:-50]
            return 0
        return result if isinstance(result, int) else 0

    def start_ticker(self, interval: float = 0.05) -> None:
        if self._ticker is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                # Simulated time moves only when somebody moves it: then the mover runs due work
                # (POST /_admin/clock or /_admin/tick). A ticker running it too would let one party act
                # on its new time before the harness has moved the others' clocks.
                if not self.clock.simulated:
                    self.run_due()

        self._ticker = threading.Thread(target=loop, name="scheduler-ticker", daemon=True)
        self._ticker.start()

    def stop_ticker(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None
