"""App factory of the e-finance settlement simulator (component name ``settlement``)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from simulators.common.component import Component
from simulators.common.config import load_settings

from .khales_files import KhalesFiles
from .models import SettlementModel
from .views import make_blueprint

MAX_BODY_BYTES = 32 * 1024 * 1024  # a Khales end-of-day file of a busy day is larger than a message


def create_app(settings: dict[str, Any] | None = None) -> Flask:
    """A settlement app: collections feed, batches, files, reports, bank statement, admin plane.

    The model is the scheduler's poller: files are published, batches credited and statements sent
    when the clock passes their instants, whether the ticker or ``POST /_admin/tick`` notices first.
    Its domain faults (:mod:`simulators.settlement.faults`) are declared by the model with their validator.
    """
    settings = settings if settings is not None else load_settings()
    app = Flask(__name__)
    component = Component("settlement", settings)
    model = SettlementModel(component)
    component.on_reset(model.reset)
    component.scheduler.add_poller(model)
    khales_files = KhalesFiles(component, model)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.register_blueprint(make_blueprint(component, model, khales_files))
    component.install(app)
    return app
