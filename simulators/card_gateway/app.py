"""App factory of the e-finance card gateway simulator (component name ``card_gateway``)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from simulators.common.component import Component
from simulators.common.config import load_settings

from .models import CardGatewayModel
from .views import make_blueprint


def create_app(settings: dict[str, Any] | None = None) -> Flask:
    """A card gateway app: merchant API, hosted page, admin plane; no state at import time."""
    settings = settings if settings is not None else load_settings()
    app = Flask(__name__)
    component = Component("card_gateway", settings)
    model = CardGatewayModel(component)
    component.on_reset(model.reset)
    app.register_blueprint(make_blueprint(component, model))
    component.install(app)
    return app
