"""App factory of the e-finance card gateway simulator (component name ``card_gateway``)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from simulators.common.component import Component
from simulators.common.config import load_settings

from .channel import ChannelDesk
from .channel_views import make_channel_blueprint
from .efinance_model import EfinanceGateway
from .efinance_views import make_efinance_blueprint
from .models import CardGatewayModel
from .views import make_blueprint


def create_app(settings: dict[str, Any] | None = None) -> Flask:
    """A card gateway app: merchant API, e-finance initiation, hosted page, the cash network's Channel
    API, admin plane.

    No state at import time; the gateway's RSA identity is read (or created on the first start)
    under ``card_gateway.data_dir`` here.
    """
    settings = settings if settings is not None else load_settings()
    app = Flask(__name__)
    component = Component("card_gateway", settings)
    model = CardGatewayModel(component)
    efinance = EfinanceGateway(component, model)
    channel = ChannelDesk(component, model, efinance)
    component.on_reset(model.reset)
    component.on_reset(efinance.reset)
    component.on_reset(channel.reset)
    app.register_blueprint(make_blueprint(component, model))
    app.register_blueprint(make_efinance_blueprint(component, model, efinance))
    app.register_blueprint(make_channel_blueprint(component, channel))
    app.extensions["card_gateway_efinance"] = efinance
    component.install(app)
    return app
