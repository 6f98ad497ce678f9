"""Simulator package: khales."""
