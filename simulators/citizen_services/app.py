"""App factory of the central citizen-services system simulator."""

from __future__ import annotations

from flask import Flask

from simulators.common.component import Component
from simulators.common.config import load_settings

from .models import CitizenServicesModel
from .views import make_admin_blueprint, make_blueprint

COMPONENT = "citizen_services"


def create_app(settings: dict | None = None) -> Flask:
    """Build the simulator: catalog-driven fee assessment, the request lifecycle, the confirmation
    endpoints and the performance report.

    An inconsistent catalog raises :class:`~simulators.common.catalog.CatalogError` here, at
    start-up, rather than a 500 on the first request. The model is the scheduler's poller for its
    own due transitions (expiry, the office's work).
    """
    settings = settings if settings is not None else load_settings()
    app = Flask(__name__)
    component = Component(COMPONENT, settings)
    model = CitizenServicesModel(component)
    component.on_reset(model.reset)
    component.scheduler.add_poller(model)
    app.register_blueprint(make_blueprint(component, model))
    app.register_blueprint(make_admin_blueprint(component, model))
    component.install(app)
    app.extensions["citizen_services_model"] = model
    return app
