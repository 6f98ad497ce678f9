"""The harness: scenarios, runner, reports and the `tahseel` CLI. It imports everything; nothing
imports it."""

__version__ = "0.1.0"
