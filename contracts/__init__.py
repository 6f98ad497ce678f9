"""Contracts are data: JSON Schema (2020-12) per message and an OpenAPI 3.1 document per interface.

Nothing here is code but this path; ``simulators.common.contracts`` loads and applies the files.
"""

from pathlib import Path

CONTRACTS_DIR = Path(__file__).resolve().parent
