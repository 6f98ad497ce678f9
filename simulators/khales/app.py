"""App factory of the Khales cash-network simulator."""

from __future__ import annotations

from flask import Flask

from simulators.common.component import Component
from simulators.common.config import load_settings

from .models import KhalesModel
from .views import make_blueprint

COMPONENT = "khales"


def create_app(settings: dict | None = None) -> Flask:
    """Build the simulator: seeded outlets, the outlet desk and the biller conversation."""
    settings = settings if settings is not None else load_settings()
    app = Flask(__name__)
    component = Component(COMPONENT, settings)
    model = KhalesModel(component)
    component.on_reset(model.reset)
    app.register_blueprint(make_blueprint(component, model))
    component.install(app)
    app.extensions["khales_model"] = model
    return app
