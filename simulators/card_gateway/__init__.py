"""Simulator package: card_gateway."""
