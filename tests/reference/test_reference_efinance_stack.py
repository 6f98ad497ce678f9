"""The reference's e-finance client against the real card gateway simulator (the whole stack).

Issue 3's cases: a confirmation delivered twice at the same moment from two threads; a refund
confirmation ahead of its payment confirmation; 3-D Secure started and abandoned; a captured
confirmation replayed later or stripped of its Signature. The simulated clock is moved through
every party's ``/_admin/clock`` (harness.parties.SharedClock): nobody sleeps.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from harness.parties import Parties, SharedClock
from harness.stack import Stack
from simulators.common.calendar import BusinessCalendar
from simulators.common.clock import parse_instant
from simulators.common.contracts import problems

MONDAY_10 = "2026-12-07T10:00:00+02:00"
APPROVED_CARD, ENROLLED_CARD = "4111111111111111", "5123450000000008"
CONFIRMATIONS = "/efinance/confirmations"


class Bench:
    """Every party, reset, on one simulated clock; a citizen's browser is ``requests``."""

    def __init__(self, stack: Stack) -> None:
        self.urls = stack.urls
        self.parties = Parties(stack.urls)
        calendar = BusinessCalendar.from_config(stack.settings["calendar"])
        self.clock = SharedClock(self.parties, list(stack.urls), calendar)
        self.http = requests.Session()
        self.http.trust_env = False

    def url(self, party: str, path: str) -> str:
        return self.urls[party] + path

    def order(self, governorate: str = "01", service: str = "CTC") -> dict[str, Any]:
        request = self.http.post(self.url("citizen_services", "/api/service-requests"),
                                 json={"governorate_code": governorate, "service_code": service}).json()
        order = self.http.post(self.url("reference", "/api/orders"), json={"request_number": request["request_number"]})
        assert order.status_code == 201, order.text
        return order.json()

    def get_order(self, bill_reference: str) -> dict[str, Any]:
        return self.http.get(self.url("reference", f"/api/orders/{bill_reference}")).json()

    def open_card(self, order: dict[str, Any]) -> dict[str, Any]:
        """What the portal's auto-post page does: the sealed fields to the gateway, its hosted page back."""
        opened = self.http.post(self.url("reference", f"/api/orders/{order['bill_reference']}/card-payments"))
        assert opened.status_code == 201, opened.text
        initiation = opened.json()["initiation"]
        page = self.http.post(initiation["url"], data=initiation["fields"])
        assert page.status_code == 200, page.text[:500]
        form = re.search(r'<form[^>]*id="card-form"[^>]*>', page.text) or re.search(r"<form[^>]*/pay/[^>]*>", page.text)
        action = re.search(r'action="([^"]+)"', form.group(0)).group(1).replace("&amp;", "&")
        hosted = urljoin(initiation["url"], action)
        return dict(opened.json(), hosted_page_url=hosted,
                    payment_request_number=page.headers["X-Payment-Request-Number"])

    def pay(self, card: dict[str, Any], number: str = APPROVED_CARD) -> requests.Response:
        form = {"card_number": number, "expiry": "12/30", "cvv": "123", "cardholder": "Citizen"}
        return self.http.post(card["hosted_page_url"], data=form, allow_redirects=False)

    def fault(self, party: str, spec: dict[str, Any]) -> None:
        response = self.http.post(self.url(party, "/_admin/faults"), json=spec)
        assert response.status_code in (200, 201), response.text

    def confirmation_forms(self) -> list[dict[str, str]]:
        """The silent calls the gateway sent (or tried to), as forms, from its journal."""
        entries = self.http.get(self.url("card_gateway", f"/_admin/journal?direction=out&path={CONFIRMATIONS}")).json()
        forms = []
        for entry in entries["entries"]:
            fields = dict(part.split("=", 1) for part in entry["request_body"].split("&"))
            # the journal shows the form decoded; base64 has no spaces, so a space was a "+"
            forms.append({name: value.replace(" ", "+") for name, value in fields.items()})
        return forms

    def silent_call(self, form: dict[str, str]) -> requests.Response:
        return self.http.post(self.url("reference", CONFIRMATIONS), data=form)

    def received(self, path: str, status: int | None = None) -> list[dict[str, Any]]:
        entries = self.http.get(self.url("reference", f"/_admin/journal?direction=in&path={path}")).json()["entries"]
        for entry in entries:
            if isinstance(entry["response_body"], str) and entry["response_body"].startswith("{"):
                entry["response_body"] = json.loads(entry["response_body"])
        return [e for e in entries if status is None or e["status"] == status]

    def confirmations_at_citizen_services(self, request_number: str) -> list[dict[str, Any]]:
        return self.http.get(self.url("citizen_services", "/api/payment-confirmations"),
                             params={"request_number": request_number}).json()["confirmations"]

    def close(self) -> None:
        self.http.close()
        self.parties.close()


@pytest.fixture
def bench(stack: Stack) -> Iterator[Bench]:
    bench = Bench(stack)
    for party in stack.urls:
        bench.parties.admin(party, "POST", "/reset")
    bench.clock.set(parse_instant(MONDAY_10))
    yield bench
    for party in stack.urls:
        bench.parties.admin(party, "DELETE", "/faults")
    bench.close()


def test_the_same_confirmation_twice_at_the_same_moment_from_two_threads_is_credited_once(bench):
    order = bench.order()
    card = bench.open_card(order)
    bench.fault("card_gateway", {"direction": "out", "kind": "down", "target": "reference",
                                 "endpoint": CONFIRMATIONS, "count": 1})  # keep the first delivery for the test
    assert bench.pay(card).status_code == 303
    bench.clock.quiesce()
    [form] = bench.confirmation_forms()
    assert bench.get_order(order["bill_reference"])["payments"] == []

    start = threading.Barrier(2)
    answers: list[requests.Response] = []

    def deliver() -> None:
        with requests.Session() as session:
            start.wait(timeout=10)
            answers.append(session.post(bench.url("reference", CONFIRMATIONS), data=form, timeout=30))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert [a.headers.get("Response_Code") for a in answers] == ["000", "000"]
    assert sorted(a.json()["status"] for a in answers) == ["credited", "duplicate"]
    bench.clock.advance_to(bench.clock.now() + timedelta(minutes=2))  # the gateway's own retry: a third copy
    view = bench.get_order(order["bill_reference"])
    assert view["status"] == "PAID" and len(view["payments"]) == 1
    assert view["payments"][0]["payment_request_number"] == card["payment_request_number"]
    assert len(bench.confirmations_at_citizen_services(order["request_number"])) == 1
    log = bench.http.get(bench.url("card_gateway", f"/api/efinance/requests/{card['payment_request_number']}")).json()
    assert [c["state"] for c in log["confirmations"]] == ["delivered"]


def test_a_refund_heard_before_its_payment_nets_to_zero_and_confirms_nothing(bench):
    order = bench.order()
    card = bench.open_card(order)
    number = card["payment_request_number"]
    bench.fault("card_gateway", {"direction": "domain", "kind": "confirmation_out_of_order", "count": 1,
                                 "match": {"payment_request_number": number}})  # holds the payment's silent call
    assert bench.pay(card).status_code == 303
    bench.clock.quiesce()
    assert bench.get_order(order["bill_reference"])["payments"] == []  # the payment's silent call is held

    refund = bench.http.post(bench.url("card_gateway", f"/api/efinance/requests/{number}/refunds"), json={})
    assert refund.status_code == 201, refund.text
    bench.clock.quiesce()

    answers = bench.received(CONFIRMATIONS)
    assert [(e["status"], e["response_body"]["status"]) for e in answers] == [(200, "refunded"), (200, "duplicate")]
    view = bench.get_order(order["bill_reference"])
    assert view["status"] == "REFUNDED" and view["paid_amount"] == "0.00"
    [payment] = view["payments"]
    assert payment["status"] == "REFUNDED" and payment["refunded_amount"] == order["amount"]
    assert payment["confirmation"] == "NOT_REQUIRED" and problems("ref-order.schema.json", view) == []
    assert bench.confirmations_at_citizen_services(order["request_number"]) == []
    assert bench.http.get(bench.url("reference", "/api/confirmations")).json()["confirmations"] == []

    report = bench.http.get(bench.url("reference", "/api/reports/daily"),
                            params={"date": "2026-12-07", "governorate_code": "01"}).json()
    [cairo] = report["governorates"]
    assert cairo["collections"]["amount"] == "0.00" and cairo["collections"]["count"] == 0
    assert cairo["collections"]["reversed"]["amount"] == order["amount"]
    assert cairo["collections"]["refunds"]["amount"] == order["amount"]
    assert cairo["settlement"]["expected_amount"] == "0.00"

    bench.clock.advance_to(parse_instant("2026-12-09T12:00:00+02:00"))  # T+2: e-finance settles Monday
    batches = bench.http.get(bench.url("settlement", "/api/batches"),
                             params={"governorate_code": "01", "business_date": "2026-12-07"}).json()["batches"]
    assert [b["amount"] for b in batches] == ["0.00"]  # paid in and refunded: nothing reaches Cairo's account
    report = bench.http.get(bench.url("reference", "/api/reports/daily"),
                            params={"date": "2026-12-07", "governorate_code": "01"}).json()
    settlement = report["governorates"][0]["settlement"]
    assert settlement["status"] == "ON_TIME" and settlement["credited_amount"] == "0.00"
    assert report["governorates"][0]["exceptions"] == []  # no orphan: the settled lines are ours
    assert problems("ref-daily-report.schema.json", report) == []


def test_three_d_secure_abandoned_fails_the_attempt_and_a_second_one_is_credited_once(bench, stack):
    order = bench.order()
    first = bench.open_card(order)
    challenge = bench.pay(first, ENROLLED_CARD)
    assert challenge.status_code == 200 and 'name="challenge_id"' in challenge.text

    seconds = float(stack.settings["card_gateway"].get("three_ds", {}).get("challenge_seconds", 300))
    bench.clock.advance_to(bench.clock.now() + timedelta(seconds=seconds + 1))  # the citizen walked away

    view = bench.get_order(order["bill_reference"])
    assert view["status"] == "UNPAID" and view["payments"] == []
    assert [a["status"] for a in view["card_attempts"]] == ["DECLINED"]
    assert [e["response_body"]["status"] for e in bench.received(CONFIRMATIONS, 200)] == ["declined"]

    second = bench.open_card(order)  # payable again
    assert bench.pay(second).status_code == 303
    bench.clock.quiesce()

    view = bench.get_order(order["bill_reference"])
    assert view["status"] == "PAID" and len(view["payments"]) == 1
    assert view["payments"][0]["sender_request_number"] == second["sender_request_number"]
    assert [a["status"] for a in view["card_attempts"]] == ["DECLINED", "APPROVED"]
    assert len(bench.confirmations_at_citizen_services(order["request_number"])) == 1


def test_a_captured_confirmation_replayed_later_or_without_its_signature_credits_nothing(bench):
    order = bench.order()
    card = bench.open_card(order)
    bench.fault("card_gateway", {"direction": "out", "kind": "down", "target": "reference",
                                 "endpoint": CONFIRMATIONS, "count": 1})
    assert bench.pay(card).status_code == 303
    bench.clock.quiesce()
    [captured] = bench.confirmation_forms()

    unsigned = bench.silent_call({k: v for k, v in captured.items() if k != "Signature"})
    assert unsigned.status_code == 401 and unsigned.headers["Response_Code"] == "110"
    assert bench.get_order(order["bill_reference"])["payments"] == []  # refused, nothing changed

    genuine = bench.silent_call(captured)
    assert genuine.headers["Response_Code"] == "000" and genuine.json()["status"] == "credited"

    bench.clock.advance_to(bench.clock.now() + timedelta(minutes=10))
    replayed = bench.silent_call(captured)
    stripped = bench.silent_call(dict(captured, Signature=""))

    assert replayed.headers["Response_Code"] == "000" and replayed.json()["status"] == "duplicate"
    assert stripped.status_code == 401 and stripped.headers["Response_Code"] == "110"
    view = bench.get_order(order["bill_reference"])
    assert view["status"] == "PAID" and len(view["payments"]) == 1
    assert len(bench.confirmations_at_citizen_services(order["request_number"])) == 1


def test_a_channel_payment_request_paid_in_cash_at_a_khales_outlet_is_credited_as_cash(bench):
    order = bench.order(governorate="02")
    opened = bench.http.post(bench.url("reference", f"/api/orders/{order['bill_reference']}/card-payments"),
                             json={"mechanism": "Channel"})
    assert opened.status_code == 201, opened.text
    number = opened.json()["payment_request_number"]

    paid = bench.http.post(bench.url("khales", "/api/outlet-payments"),
                           json={"bill_reference": number, "biller": "efinance"})
    assert paid.status_code == 201 and paid.json()["status"] == "PAID", paid.text
    bench.clock.quiesce()

    view = bench.get_order(order["bill_reference"])
    assert view["status"] == "PAID"
    [payment] = view["payments"]
    assert (payment["channel"], payment["mechanism"], payment["payment_request_number"]) == ("cash", "Channel", number)
    assert payment["confirmation"] == "CONFIRMED"
    report = bench.http.get(bench.url("reference", "/api/reports/daily"),
                            params={"date": "2026-12-07", "governorate_code": "02"}).json()
    assert report["governorates"][0]["collections"]["by_channel"]["cash"]["amount"] == order["amount"]


def test_a_payment_whose_silent_call_never_comes_and_whose_citizen_never_returns_is_credited_by_the_watch(bench):
    order = bench.order()
    card = bench.open_card(order)
    bench.fault("card_gateway", {"direction": "domain", "kind": "confirmation_never_sent",
                                 "match": {"payment_request_number": card["payment_request_number"]}})
    bench.pay(card)  # the browser is closed before it follows the redirect
    bench.clock.quiesce()
    assert bench.get_order(order["bill_reference"])["status"] == "UNPAID"  # nothing told the reference yet
    assert bench.received(CONFIRMATIONS) == []

    bench.clock.advance_to(bench.clock.now() + timedelta(minutes=10))  # the first status check

    paid = bench.get_order(order["bill_reference"])
    assert paid["status"] == "PAID"
    assert len(paid["payments"]) == 1 and paid["payments"][0]["channel"] == "card"
    bench.clock.advance_to(bench.clock.now() + timedelta(hours=7))  # later checks credit nothing more
    again = bench.get_order(order["bill_reference"])
    assert len(again["payments"]) == 1
    assert len(bench.confirmations_at_citizen_services(order["request_number"])) == 1


def test_an_unpaid_request_is_asked_about_on_schedule_then_once_at_expiry_and_then_left_alone(bench):
    order = bench.order()
    bench.open_card(order)
    status_path = "/CardPaymentRequestIntiation/StatusInquiry"

    def inquiries() -> int:
        entries = bench.http.get(bench.url("card_gateway", f"/_admin/journal?direction=in&path={status_path}"))
        return len(entries.json()["entries"])

    bench.clock.advance_to(bench.clock.now() + timedelta(hours=7))  # 10 min, 1 h, 6 h
    assert inquiries() == 3
    bench.clock.advance_to(parse_instant(order["expires_at"]) + timedelta(hours=1))  # once at the expiry
    assert inquiries() == 4
    bench.clock.advance_to(parse_instant(order["expires_at"]) + timedelta(days=3))
    assert inquiries() == 4
    assert bench.get_order(order["bill_reference"])["payments"] == []


def test_a_request_opened_late_is_cancelled_at_the_gateway_when_its_order_expires(bench):
    # The order expires at an instant (72 h after it was made); e-finance's request lives to the end
    # of its ExpiryDate, a whole Cairo day. Opened in the order's last hours, it would outlive the
    # order: the watch cancels it at the order's expiry, so the gateway's page no longer takes money.
    order = bench.order()
    expires = parse_instant(order["expires_at"])
    bench.clock.advance_to(expires - timedelta(hours=2))
    card = bench.open_card(order)

    bench.clock.advance_to(expires + timedelta(minutes=1))

    number = card["payment_request_number"]
    gateway_view = bench.http.get(bench.url("card_gateway", f"/api/efinance/requests/{number}")).json()
    assert gateway_view["status"] == "CANCELLED"
    assert bench.pay(card).status_code == 410
    assert bench.get_order(order["bill_reference"])["payments"] == []
