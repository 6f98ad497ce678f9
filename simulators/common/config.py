"""Settings for every component: one YAML file, validated by ``contracts/settings.schema.json``.

Order of precedence: the shipped ``config/tahseel.yaml`` (or the file named by ``TAHSEEL_CONFIG``),
then environment variables (``TAHSEEL_SECRET_<NAME>`` for secrets, ``TAHSEEL_URL_<PARTY>`` for
where a party lives), then the dict a test or the harness passes. The shipped secrets are test
secrets, printed as such; a real deployment sets its own.
"""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .catalog import load_catalog, validate_catalog
from .contracts import validate

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
PARTIES = ("reference", "citizen_services", "card_gateway", "khales", "settlement")


@lru_cache(maxsize=8)
def _read_yaml(path: str) -> Any:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_settings(overrides: dict[str, Any] | None = None, path: str | None = None) -> dict[str, Any]:
    """The validated settings dict every app factory takes."""
    path = path or os.environ.get("TAHSEEL_CONFIG") or str(CONFIG_DIR / "tahseel.yaml")
    settings = copy.deepcopy(_read_yaml(path))
    for name in list(settings.get("secrets", {})):
        env = os.environ.get(f"TAHSEEL_SECRET_{name.upper()}")
        if env:
            settings["secrets"][name] = env
    for party in PARTIES:
        env = os.environ.get(f"TAHSEEL_URL_{party.upper()}")
        if env:
            settings["urls"][party] = env
    settings = deep_merge(settings, overrides or {})
    catalog_path = Path(settings.get("catalog_file", "catalog.yaml"))
    if not catalog_path.is_absolute():
        catalog_path = Path(path).resolve().parent / catalog_path
    # The catalog's files are checked on their own first, so an error names the file and line; the
    # catalog_file is kept absolute so that a party can read the files again (citizen services' reload).
    settings["catalog_file"] = str(catalog_path.resolve())
    settings["catalog"] = deep_merge(load_catalog(catalog_path), settings.get("catalog") or {})
    validate("settings.schema.json", settings)
    validate_catalog(settings["catalog"])  # the merged catalog: contracts/cs-catalog.schema.json + cross-references
    return settings
