"""Simulator package: settlement."""
