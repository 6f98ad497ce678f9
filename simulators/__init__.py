"""Simulators of the external parties of the Egyptian governorates' e-collection money path.

Each sub-package is one party (``citizen_services``, ``card_gateway``, ``khales``, ``settlement``)
made by a Flask app factory; ``common`` is what they share (clock, journal, faults, signing, admin
plane, Egyptian data). Parties never import each other: they meet over HTTP only.
"""
