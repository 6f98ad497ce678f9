"""Locust load tests of the payment path (run through `tahseel load` / `make load`)."""
