"""WSGI entry point for ``tahseel serve`` under gunicorn: ``harness.wsgi:create('khales')``.

Settings come from the environment the serve command sets: ``TAHSEEL_URL_<PARTY>`` for every
party and ``TAHSEEL_DATA_DIR`` for the reference service's SQLite ledger.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

from simulators.common.config import load_settings

from .stack import create_component_app


def create(name: str) -> Flask:
    overrides: dict[str, dict[str, str]] = {}
    data_dir = os.environ.get("TAHSEEL_DATA_DIR")
    if data_dir:
        overrides["reference"] = {"database": str(Path(data_dir) / "reference.sqlite3")}
        # the gateway's key pair outlives a restart: integrators keep the certificate they fetched
        overrides["card_gateway"] = {"data_dir": str(Path(data_dir) / "card_gateway")}
    return create_component_app(name, load_settings(overrides))
