"""Simulator package: settlement (e-finance settlement: batches, value dates, credits, files)."""
