"""The harness: scenarios, runner, reports, the pytest plugin and the `tahseel` CLI."""
