"""The reference collection-and-settlement service's app factory (component name ``reference``).

Built like every component (``simulators/common/README.md``): the ledger and its helpers know nothing
of Flask; the blueprint parses and serialises; ``component.install`` adds the admin plane, the
journal, inbound faults and the one error handler. The outbox and the reconciliation are pollers on
the component's scheduler, so the harness drives them with ``/_admin/clock`` and ``/_admin/tick``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from simulators.common.clock import iso, parse_instant
from simulators.common.component import Component
from simulators.common.config import load_settings

from .card_payments import CardPayments
from .ledger import Ledger
from .outbox import Outbox
from .reconciliation import Reconciliation
from .reports import Reports
from .status_watch import StatusWatch
from .store import Store
from .upstream import EfinanceClient, Upstreams
from .views import make_blueprint


def create_app(settings: dict[str, Any] | None = None) -> Flask:
    settings = settings if settings is not None else load_settings()
    own = settings.get("reference") or {}
    app = Flask(__name__)
    # ``reference.ticker: false`` leaves due work to /_admin/tick alone (deterministic unit tests).
    component = Component("reference", settings, ticker=bool(own.get("ticker", True)))
    store = Store(str(own.get("database", ".tahseel/reference.sqlite3")),
                  busy_timeout_ms=int(own.get("database_busy_timeout_ms", 5000)))
    outbox = Outbox(component, store)
    reconciliation = Reconciliation(component, store)
    ledger = Ledger(component, store, outbox, reconciliation, Upstreams(component))
    cards = CardPayments(component, store, ledger, EfinanceClient(component))
    reports = Reports(component, store, reconciliation)
    component.scheduler.add_poller(outbox)
    component.scheduler.add_poller(reconciliation)
    component.scheduler.add_poller(StatusWatch(component, store, cards))
    saved = store.saved_clock()
    if saved:  # a worker restarted after a crash: back on the scenario's simulated time
        component.clock.set(parse_instant(saved))

    def persist_clock() -> None:
        with store.transaction():
            store.save_clock(iso(component.clock.now()) if component.clock.simulated else None)

    component.on_clock_moved(persist_clock)
    component.on_reset(store.wipe)
    component.on_stop(store.close)
    app.register_blueprint(make_blueprint(component, store, ledger, cards, outbox, reconciliation, reports))
    component.install(app)
    app.extensions["reference"] = {"store": store, "ledger": ledger, "cards": cards, "outbox": outbox,
                                   "reconciliation": reconciliation, "reports": reports}
    return app
