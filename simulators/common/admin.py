"""The admin plane every component mounts under ``/_admin/``: health, clock, reset, journal, faults.

Written once, here, so that the harness drives every party (and the reference service) the same
way. It is a test-tool plane for loopback use: it has no authentication.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, jsonify, request

from .clock import cairo, iso, parse_duration, parse_instant
from .component import read_json
from .errors import NotFound, ValidationFailed
from .wire import ascii_digits

if TYPE_CHECKING:
    from .component import Component


def admin_blueprint(component: Component) -> Blueprint:
    bp = Blueprint("tahseel_admin", __name__, url_prefix="/_admin")

    def clock_state() -> dict[str, Any]:
        now = component.clock.now()
        due = component.scheduler.next_due()
        return {"now": iso(now), "cairo": cairo(now).isoformat(timespec="seconds"),
                "simulated": component.clock.simulated, "next_due": iso(due) if due else None}

    @bp.get("/health")
    def health():  # type: ignore[no-untyped-def]
        return jsonify(status="ok", component=component.name, now=iso(component.clock.now()),
                       simulated=component.clock.simulated, errors=component.scheduler.errors[-5:])

    @bp.get("/clock")
    def get_clock():  # type: ignore[no-untyped-def]
        return jsonify(clock_state())

    @bp.post("/clock")
    def move_clock():  # type: ignore[no-untyped-def]
        body = read_json("admin-clock.schema.json")
        try:
            if "set" in body:
                component.clock.set(parse_instant(body["set"]))
            elif "advance" in body:
                component.clock.advance(parse_duration(body["advance"]))
            elif body.get("real"):
                component.clock.use_real_time()
        except ValueError as exc:
            field = next(iter(k for k in ("set", "advance") if k in body), "body")
            raise ValidationFailed(str(exc), field=field) from None
        component.clock_moved()
        ran = component.scheduler.run_due() if body.get("run_due", True) else 0
        return jsonify(dict(clock_state(), ran=ran))

    @bp.get("/settings")
    def get_settings():  # type: ignore[no-untyped-def]
        """The settings a scenario may switch at run time (a test hook; ``reset`` restores them)."""
        return jsonify(settings=component.tunables())

    @bp.post("/settings")
    def set_settings():  # type: ignore[no-untyped-def]
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not body:
            raise ValidationFailed("a JSON object {setting: value}", field="body")
        for name, value in body.items():  # every one checked before any is applied
            component.tunables_check(name, value)
        for name, value in body.items():
            component.tune(name, value)
        return jsonify(settings=component.tunables())

    @bp.post("/tick")
    def tick():  # type: ignore[no-untyped-def]
        ran = component.scheduler.run_due()
        return jsonify(dict(clock_state(), ran=ran))

    @bp.get("/scheduled")
    def scheduled():  # type: ignore[no-untyped-def]
        return jsonify(tasks=component.scheduler.pending(), clock=clock_state())

    @bp.post("/reset")
    def reset():  # type: ignore[no-untyped-def]
        component.reset()
        return jsonify(status="reset", component=component.name)

    @bp.get("/journal")
    def journal():  # type: ignore[no-untyped-def]
        since_text, limit_text = request.args.get("since", "0"), request.args.get("limit")
        if not ascii_digits(since_text, length=(1, 12)):
            raise ValidationFailed("since is a journal entry id (0 or more)", field="since", status=400)
        if limit_text is not None and not (ascii_digits(limit_text, length=(1, 6)) and int(limit_text) > 0):
            raise ValidationFailed("limit is a whole number from 1 to 999999", field="limit", status=400)
        since, limit = int(since_text), int(limit_text) if limit_text is not None else None
        entries = component.journal.entries(
            since=since, direction=request.args.get("direction"), path=request.args.get("path"),
            method=request.args.get("method"), limit=limit)
        return jsonify(component=component.name, entries=[e.to_dict() for e in entries])

    @bp.delete("/journal")
    def clear_journal():  # type: ignore[no-untyped-def]
        component.journal.clear()
        return jsonify(status="cleared")

    @bp.get("/faults")
    def list_faults():  # type: ignore[no-untyped-def]
        return jsonify(faults=component.faults.list(), domain_kinds=sorted(component.faults.domain_kinds))

    @bp.post("/faults")
    def add_fault():  # type: ignore[no-untyped-def]
        body = read_json("fault.schema.json")
        fault = component.faults.add(body)
        return jsonify(fault.to_dict()), 201

    @bp.delete("/faults")
    def clear_faults():  # type: ignore[no-untyped-def]
        component.faults.clear()
        return jsonify(status="cleared")

    @bp.delete("/faults/<fault_id>")
    def remove_fault(fault_id: str):  # type: ignore[no-untyped-def]
        if not component.faults.remove(fault_id):
            raise NotFound(f"no fault {fault_id}", field="fault_id")
        return jsonify(status="removed", id=fault_id)

    return bp
