"""Simulator package: card_gateway (the e-finance card gateway: sessions, hosted page, webhooks)."""
