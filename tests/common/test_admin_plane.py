"""The admin plane and the fault injector on a real socket: one tiny component calls another."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from flask import Flask, jsonify

from simulators.common.component import Component, read_json
from simulators.common.config import load_settings
from simulators.common.http import OutboundFailure
from simulators.common.server import ServerThread


def make_app(name: str, settings: dict) -> tuple[Flask, Component]:
    app = Flask(name)
    component = Component(name, settings, ticker=False)
    received: list[dict] = []
    component.on_reset(received.clear)

    @app.post("/api/things")
    def create_thing():  # type: ignore[no-untyped-def]
        body = read_json()
        received.append(body)
        return jsonify(count=len(received)), 201

    @app.post("/api/forward")
    def forward():  # type: ignore[no-untyped-def]
        try:
            answer = component.http.request("POST", settings["urls"]["settlement"] + "/api/things",
                                            target="settlement", json_body=read_json())
        except OutboundFailure as exc:
            return jsonify(outcome=exc.kind), 502
        return jsonify(outcome="answered", status=answer.status), 200

    component.install(app)
    return app, component


@pytest.fixture
def pair() -> Iterator[tuple[str, str]]:
    settings = load_settings()
    receiver_app, _ = make_app("settlement", settings)
    receiver = ServerThread(receiver_app).start()
    settings["urls"]["settlement"] = receiver.url
    sender_app, _ = make_app("khales", settings)
    sender = ServerThread(sender_app).start()
    try:
        yield sender.url, receiver.url
    finally:
        sender.stop()
        receiver.stop()


def test_health_clock_reset_and_journal(pair: tuple[str, str]) -> None:
    sender, receiver = pair
    assert requests.get(sender + "/_admin/health").json()["component"] == "khales"
    clock = requests.post(receiver + "/_admin/clock", json={"set": "2026-12-07T10:00:00+02:00"}).json()
    assert clock["now"] == "2026-12-07T08:00:00.000Z" and clock["simulated"] is True
    assert requests.post(receiver + "/api/things", json={"a": 1}).status_code == 201
    entries = requests.get(receiver + "/_admin/journal").json()["entries"]
    assert [(e["direction"], e["path"], e["status"]) for e in entries] == [("in", "/api/things", 201)]
    assert entries[0]["at"] == "2026-12-07T08:00:00.000Z"  # journal times are simulated times
    requests.post(receiver + "/_admin/reset")
    assert requests.get(receiver + "/_admin/journal").json()["entries"] == []
    assert requests.post(receiver + "/api/things", json={"a": 1}).json()["count"] == 1  # state was reset


def test_inbound_down_and_drop_response(pair: tuple[str, str]) -> None:
    _, receiver = pair
    requests.post(receiver + "/_admin/faults", json={"kind": "down", "endpoint": "/api/things", "count": 1})
    down = requests.post(receiver + "/api/things", json={"a": 1})
    assert down.status_code == 503 and down.json()["error"]["code"] == "DOWN"
    requests.post(receiver + "/_admin/faults", json={"kind": "drop_response", "count": 1})
    with pytest.raises(requests.ConnectionError):
        requests.post(receiver + "/api/things", json={"a": 2})
    # the work was done although the answer was lost: the next call sees it
    assert requests.post(receiver + "/api/things", json={"a": 3}).json()["count"] == 2


def test_outbound_faults_timeout_duplicate_and_lost_answer(pair: tuple[str, str]) -> None:
    sender, receiver = pair
    requests.post(sender + "/_admin/faults", json={"direction": "out", "kind": "timeout", "target": "settlement",
                                                   "count": 1})
    assert requests.post(sender + "/api/forward", json={"n": 1}).json()["outcome"] == "timeout"
    assert requests.get(receiver + "/_admin/journal").json()["entries"] == []  # nothing was sent
    requests.post(sender + "/_admin/faults", json={"direction": "out", "kind": "duplicate", "count": 1})
    assert requests.post(sender + "/api/forward", json={"n": 2}).json()["outcome"] == "answered"
    requests.post(sender + "/_admin/faults", json={"direction": "out", "kind": "drop_response", "count": 1})
    assert requests.post(sender + "/api/forward", json={"n": 3}).json()["outcome"] == "drop_response"
    bodies = [e["request_json"] for e in requests.get(receiver + "/_admin/journal").json()["entries"]]
    assert bodies == [{"n": 2}, {"n": 2}, {"n": 3}]
    outcomes = [e["outcome"] for e in requests.get(sender + "/_admin/journal?direction=out").json()["entries"]]
    assert outcomes == ["fault:timeout", "ok", "ok", "ok", "fault:drop_response"]


@pytest.mark.parametrize("body,code", [(b"{not json", "MALFORMED_BODY"), (b'{"a":1,"a":2}', "MALFORMED_BODY"),
                                       (b"", "MALFORMED_BODY"), (b'{"x": NaN}', "MALFORMED_BODY")])
def test_malformed_bodies_are_4xx_with_a_code(pair: tuple[str, str], body: bytes, code: str) -> None:
    _, receiver = pair
    response = requests.post(receiver + "/api/things", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code and response.json()["error"]["field"] == "body"
    assert requests.post(receiver + "/api/things", json={"ok": 1}).json()["count"] == 1  # nothing was stored


def test_admin_rejects_bad_clock_and_fault_input(pair: tuple[str, str]) -> None:
    _, receiver = pair
    bad_clock = requests.post(receiver + "/_admin/clock", json={"set": "next tuesday"})
    assert bad_clock.status_code == 422 and bad_clock.json()["error"]["field"] == "set"
    bad_fault = requests.post(receiver + "/_admin/faults", json={"kind": "down", "count": -1})
    assert bad_fault.status_code == 422 and bad_fault.json()["error"]["field"] == "count"
    assert requests.delete(receiver + "/_admin/faults/f999").status_code == 404
    assert requests.get(receiver + "/_admin/faults").json()["faults"] == []


def test_csv_cells_that_would_run_as_formulas_are_neutralised_and_amounts_are_not():
    # A breaker's case: a citizen named "=cmd|' /C calc'!A0 محمد" reached Khales' Excel file verbatim.
    from simulators.common.files import csv_text

    text = csv_text(["name", "amount"], [{"name": "=cmd|' /C calc'!A0 محمد", "amount": "-27.00"},
                                         {"name": "+SUM(A1)", "amount": "27.00"}, {"name": "@x", "amount": "0.00"},
                                         {"name": "-2+3", "amount": "+5"}, {"name": "منى", "amount": "1"}])
    lines = text.split("\r\n")
    assert lines[1] == "'=cmd|' /C calc'!A0 محمد,-27.00"
    assert lines[2] == "'+SUM(A1),27.00" and lines[3] == "'@x,0.00" and lines[4] == "'-2+3,+5"
    assert lines[5] == "منى,1"
