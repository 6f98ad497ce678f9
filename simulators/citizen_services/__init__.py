"""Simulator package: citizen_services."""
