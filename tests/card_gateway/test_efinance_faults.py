"""The card gateway's protocol faults (``direction: domain``), scoped to one request or to all.

Real loopback sockets: the FACTS-written sender initiates, the citizen pays on the hosted page, and
a strict portal receives the silent calls. The portal acknowledges (``Response_Code: 000``) only a
form whose ``Signature`` is the hex SHA-256 of its ``RequestObject`` (the gateway's documented
default), as a careful receiver would; it can refuse a number of calls, and can require that two
calls be in its handler at the same moment. Faults are declared through ``POST /_admin/faults``;
nothing sleeps: due work runs on ``POST /_admin/tick`` and the clock moves by ``POST /_admin/clock``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask, request

from simulators.common.server import ServerThread

from .test_efinance_confirmation import CONFIRM_PATH, decrypt, settlement_url, start_bench  # noqa: F401
from .test_efinance_initiation import srn_of
from .test_efinance_refunds import bench_of, paid_request  # noqa: F401  (fixtures)

ENROLLED = "5123450000000008"  # 3-D Secure enrolled, approved (contracts/test-cards.yaml)
DECLINED = "4000000000000002"
OTP = "123456"
SCHEDULE = [60, 300, 900, 3600, 10800]  # card_gateway.efinance.confirmation_retry_seconds (default)


class StrictPortal:
    """The sender's confirmation endpoint: acknowledges a well-signed form; ``refuse`` more calls
    are answered without the acknowledgement; with ``together`` set, each call waits (bounded) in the
    handler until that many calls are in it at once, and records whether they were."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.acknowledge = True
        self.refuse = 0
        self.together: threading.Barrier | None = None
        self._lock = threading.Lock()
        app = Flask("strict_portal")

        @app.post(CONFIRM_PATH)
        def confirm():  # type: ignore[no-untyped-def]
            met = None
            if self.together is not None:
                try:
                    self.together.wait()
                    met = True
                except threading.BrokenBarrierError:
                    met = False
            form = request.form.to_dict()
            signed = form.get("Signature") == hashlib.sha256(form.get("RequestObject", "").encode()).hexdigest()
            with self._lock:
                refused = self.refuse > 0 or not self.acknowledge
                self.refuse = max(0, self.refuse - 1)
                self.calls.append({"form": request.form.to_dict(flat=False), "raw": request.get_data(),
                                   "signed": signed, "met": met})
            if not signed:
                return "bad signature", 400  # refused: no Response_Code 000, so the gateway retries
            return "OK", 200, ({} if refused else {"Response_Code": "000"})

        self.server = ServerThread(app)

    @property
    def confirm_url(self) -> str:
        return self.server.url + CONFIRM_PATH


@pytest.fixture
def portal() -> Iterator[StrictPortal]:
    """Replaces the confirmation tests' portal for ``start_bench`` in this module."""
    fake = StrictPortal()
    fake.server.start()
    yield fake
    fake.server.stop()


def fault(bench: Any, kind: str, expect: int = 201, **spec: Any) -> dict[str, Any]:
    response = bench.http.post(f"{bench.url}/_admin/faults", json={"direction": "domain", "kind": kind, **spec})
    assert response.status_code == expect, response.text
    return response.json()


def opened(bench: Any, n: int) -> tuple[str, str, str]:
    """An initiated, unpaid request: (SenderRequestNumber, PaymentRequestNumber, session id)."""
    srn = srn_of(n)
    number, session_id = bench.initiate(srn)
    return srn, number, session_id


def payment_numbers(bench: Any) -> list[str]:
    """The PaymentRequestNumber of each call the portal got, in order (decrypted per request)."""
    numbers = []
    for call in bench.portal.calls:
        srn = call["form"]["SenderRequestNumber"][0]
        key, iv = bench.sender.secrets[srn]
        numbers.append(decrypt(call["form"]["RequestObject"][0], key, iv)["PaymentRequestNumber"])
    return numbers


# --- declaring ------------------------------------------------------------------------------------
def test_the_kinds_are_listed_and_a_fault_the_gateway_cannot_apply_is_refused(bench_of):  # noqa: F811
    bench = bench_of()
    listed = bench.http.get(f"{bench.url}/_admin/faults").json()
    assert set(listed["domain_kinds"]) >= {"confirmation_delayed", "confirmation_duplicated",
                                           "confirmation_out_of_order", "confirmation_never_sent",
                                           "confirmation_bad_signature", "payment_response_lost"}
    bad = [
        ("confirmation_delayed", {}, "params.after"),
        ("confirmation_delayed", {"params": {"after": "soon"}}, "params.after"),
        ("confirmation_delayed", {"params": {"after": "0s"}}, "params.after"),
        ("confirmation_delayed", {"params": {"after": True}}, "params.after"),
        ("confirmation_delayed", {"params": {"after": "10m", "seconds": 5}}, "params.seconds"),
        ("confirmation_out_of_order", {"params": {"hold": "-1h"}}, "params.hold"),
        ("confirmation_duplicated", {"params": {"same_moment": "yes"}}, "params.same_moment"),
        ("confirmation_never_sent", {"match": {"payment_request": "1"}}, "match.payment_request"),
        ("confirmation_never_sent", {"match": {"operation": "chargeback"}}, "match.operation"),
        ("payment_response_lost", {"match": {"operation": "payment"}}, "match.operation"),
        ("confirmation_bad_signature", {"target": "reference"}, "target"),
        ("confirmation_bad_signature", {"endpoint": "/efinance/confirm"}, "endpoint"),
        ("confirmation_late", {}, "kind"),
    ]
    for kind, spec, field in bad:
        refused = fault(bench, kind, expect=422, **spec)
        assert refused["error"]["field"] == field, (kind, spec, refused)
    assert bench.http.get(f"{bench.url}/_admin/faults").json()["faults"] == []  # nothing was declared
    fault(bench, "confirmation_delayed", params={"after": 600}, endpoint="confirmation")  # seconds, the point


# --- confirmation_delayed -------------------------------------------------------------------------
def test_delayed_scoped_to_one_request_holds_its_first_attempt_on_the_simulated_clock(bench_of):  # noqa: F811
    bench = bench_of()
    _, late, late_session = opened(bench, 0xA1)
    _, other, other_session = opened(bench, 0xA2)
    declared = fault(bench, "confirmation_delayed", params={"after": "10m"}, match={"payment_request_number": late})
    bench.pay(late_session)
    bench.pay(other_session)
    bench.admin("tick")
    assert payment_numbers(bench) == [other]
    bench.admin("clock", {"advance": "9m59s"})
    assert payment_numbers(bench) == [other]
    bench.admin("clock", {"advance": "1s"})
    assert payment_numbers(bench) == [other, late]

    [confirmation] = bench.log(late)["confirmations"]
    assert confirmation["state"] == "delivered"
    assert confirmation["faults"] == [{"id": declared["id"], "kind": "confirmation_delayed"}]
    assert confirmation["attempts"][0]["at"] == "2026-12-03T10:10:00.000Z"
    assert confirmation["attempts"][0]["faults"] == confirmation["faults"]
    assert bench.log(late)["faults"][0]["confirmation_id"] == confirmation["id"]
    assert bench.log(other)["confirmations"][0]["faults"] == []
    [listed] = bench.http.get(f"{bench.url}/_admin/faults").json()["faults"]
    assert listed["hits"] == 1


def test_delayed_without_match_hits_every_request_until_its_count_is_used(bench_of):  # noqa: F811
    bench = bench_of()
    requests_ = [opened(bench, 0xA10 + n) for n in range(3)]
    fault(bench, "confirmation_delayed", params={"after": "1h"}, count=2)
    for _, _, session_id in requests_:
        bench.pay(session_id)
    bench.admin("tick")
    assert payment_numbers(bench) == [requests_[2][1]]  # the first two took the fault's two hits
    bench.admin("clock", {"advance": "1h"})
    assert sorted(payment_numbers(bench)) == sorted(number for _, number, _ in requests_)


# --- confirmation_duplicated ----------------------------------------------------------------------
def test_duplicated_posts_the_same_form_twice_and_each_post_needs_its_own_acknowledgement(bench_of):  # noqa: F811
    bench = bench_of()
    _, number, session_id = opened(bench, 0xB1)
    fault(bench, "confirmation_duplicated", match={"payment_request_number": number}, count=1)
    bench.pay(session_id)
    bench.portal.refuse = 0
    bench.admin("tick")
    first, second = bench.portal.calls
    assert first["raw"] == second["raw"]  # the very same form, byte for byte
    log = bench.log(number)
    assert [(c["id"], c["state"], c["duplicate_of"]) for c in log["confirmations"]] == [
        (f"confirmation:{number}:1", "delivered", None),
        (f"confirmation:{number}:1:duplicate", "delivered", f"confirmation:{number}:1")]

    # The copy is a delivery of its own: refusing it (say, "already processed") gets it retried.
    _, again, again_session = opened(bench, 0xB2)
    fault(bench, "confirmation_duplicated", match={"sender_request_number": srn_of(0xB2)})
    bench.pay(again_session)
    bench.portal.calls.clear()
    bench.portal.refuse = 1
    bench.admin("tick")
    assert len(bench.portal.calls) == 2
    states = {c["id"]: c["state"] for c in bench.log(again)["confirmations"]}
    assert states == {f"confirmation:{again}:1": "pending", f"confirmation:{again}:1:duplicate": "delivered"}
    bench.admin("clock", {"advance": "60s"})
    assert len(bench.portal.calls) == 3
    assert {c["state"] for c in bench.log(again)["confirmations"]} == {"delivered"}


def test_duplicated_at_the_same_moment_has_both_posts_in_the_receiver_at_once(bench_of):  # noqa: F811
    bench = bench_of()
    _, number, session_id = opened(bench, 0xB3)
    fault(bench, "confirmation_duplicated", params={"same_moment": True}, match={"payment_request_number": number})
    bench.pay(session_id)
    bench.portal.together = threading.Barrier(2, timeout=10)
    bench.admin("tick")  # answers once both threads have had their answers
    first, second = bench.portal.calls
    assert first["raw"] == second["raw"]
    assert first["met"] is True and second["met"] is True  # both were in the handler at the same time
    assert {c["state"] for c in bench.log(number)["confirmations"]} == {"delivered"}


# --- confirmation_out_of_order --------------------------------------------------------------------
def test_out_of_order_holds_the_payment_until_the_refund_notice_has_gone(bench_of):  # noqa: F811
    bench = bench_of()
    srn, number, session_id = opened(bench, 0xC1)
    fault(bench, "confirmation_out_of_order", match={"payment_request_number": number, "operation": "payment"})
    bench.pay(session_id)
    bench.admin("tick")
    assert bench.portal.calls == []
    [held] = bench.log(number)["confirmations"]
    assert (held["state"], held["held_until"], held["attempts"]) == ("held", "2026-12-03T11:00:00.000Z", [])
    listed = bench.http.get(f"{bench.url}/api/efinance/confirmations", params={"state": "held"}).json()
    assert [c["id"] for c in listed["confirmations"]] == [held["id"]]

    # The bank's chargeback refunds it; its notice goes first, the payment right behind it.
    assert bench.http.post(f"{bench.url}/api/efinance/requests/{number}/refunds", json={}).status_code == 201
    bench.admin("tick")
    key, iv = bench.sender.secrets[srn]
    seen = [decrypt(call["form"]["RequestObject"][0], key, iv) for call in bench.portal.calls]
    assert [notice.get("OperationType", "payment") for notice in seen] == ["Refund", "payment"]
    assert seen[1]["IsConfirmed"] == "true"
    log = bench.log(number)
    assert [(c["kind"], c["state"]) for c in log["confirmations"]] == [("payment", "delivered"),
                                                                        ("refund", "delivered")]
    bench.admin("clock", {"advance": "2h"})  # the hold's own time limit does nothing more
    assert len(bench.portal.calls) == 2


def test_out_of_order_with_nothing_after_it_is_sent_when_its_hold_runs_out(bench_of):  # noqa: F811
    bench = bench_of()
    _, number, session_id = opened(bench, 0xC2)
    _, default_number, default_session = opened(bench, 0xC3)
    fault(bench, "confirmation_out_of_order", params={"hold": "30m"}, match={"payment_request_number": number})
    fault(bench, "confirmation_out_of_order", match={"payment_request_number": default_number})
    bench.pay(session_id)
    bench.pay(default_session)
    bench.admin("clock", {"advance": "29m59s"})
    assert bench.portal.calls == []
    bench.admin("clock", {"advance": "1s"})
    assert payment_numbers(bench) == [number]
    bench.admin("clock", {"advance": "29m59s"})
    assert payment_numbers(bench) == [number]
    bench.admin("clock", {"advance": "1s"})  # the default hold: one hour
    assert payment_numbers(bench) == [number, default_number]
    assert bench.log(default_number)["confirmations"][0]["state"] == "delivered"


def test_out_of_order_decline_is_overtaken_by_the_approval_that_follows(bench_of):  # noqa: F811
    bench = bench_of()
    srn, number, session_id = opened(bench, 0xC4)
    fault(bench, "confirmation_out_of_order", match={"sender_request_number": srn}, count=1)
    bench.pay(session_id, card=DECLINED)
    bench.admin("tick")
    assert bench.portal.calls == []
    bench.pay(session_id)
    bench.admin("tick")
    key, iv = bench.sender.secrets[srn]
    seen = [decrypt(call["form"]["RequestObject"][0], key, iv)["IsConfirmed"] for call in bench.portal.calls]
    assert seen == ["true", "false"]  # the receiver sees the approval, then the older decline


# --- confirmation_never_sent ----------------------------------------------------------------------
def test_never_sent_is_listed_suppressed_and_only_a_status_inquiry_tells_the_sender(bench_of):  # noqa: F811
    bench = bench_of()
    srn, number, session_id = opened(bench, 0xD1)
    _, other, other_session = opened(bench, 0xD2)
    declared = fault(bench, "confirmation_never_sent", match={"payment_request_number": number})
    bench.pay(session_id)
    bench.pay(other_session)
    bench.admin("tick")
    bench.admin("clock", {"advance": "1d"})
    assert payment_numbers(bench) == [other]
    [suppressed] = bench.log(number)["confirmations"]
    assert (suppressed["state"], suppressed["attempts"], suppressed["next_attempt_at"]) == ("suppressed", [], None)
    assert suppressed["faults"] == [{"id": declared["id"], "kind": "confirmation_never_sent"}]
    listed = bench.http.get(f"{bench.url}/api/efinance/confirmations", params={"state": "suppressed"}).json()
    assert [c["payment_request_number"] for c in listed["confirmations"]] == [number]
    assert bench.status(SenderRequestNumber=srn)["Status"] == "PAID"  # how the sender finds out


# --- confirmation_bad_signature -------------------------------------------------------------------
def test_bad_signature_is_refused_by_the_receiver_retried_then_given_up(bench_of):  # noqa: F811
    bench = bench_of()
    _, number, session_id = opened(bench, 0xE1)
    _, other, other_session = opened(bench, 0xE2)
    declared = fault(bench, "confirmation_bad_signature", count=1)  # unscoped: the first silent call
    bench.pay(session_id)
    bench.pay(other_session)
    bench.admin("tick")
    for wait in SCHEDULE:
        bench.admin("clock", {"advance": f"{wait}s"})
    bench.admin("clock", {"advance": "7d"})
    bad = [call for call in bench.portal.calls if not call["signed"]]
    assert len(bad) == 1 + len(SCHEDULE)  # every attempt carried the same wrong Signature
    assert len({call["raw"] for call in bad}) == 1
    assert payment_numbers(bench).count(other) == 1  # the count was used up: the next one is signed
    [confirmation] = bench.log(number)["confirmations"]
    assert confirmation["state"] == "gave_up"
    assert [a["outcome"] for a in confirmation["attempts"]] == ["http_400"] * (1 + len(SCHEDULE))
    assert all(a["faults"] == [{"id": declared["id"], "kind": "confirmation_bad_signature"}]
               for a in confirmation["attempts"])
    assert bench.log(other)["confirmations"][0]["state"] == "delivered"


def test_bad_signature_also_hits_a_refund_notice_when_scoped_to_refunds(bench_of):  # noqa: F811
    bench = bench_of()
    _, number, _ = paid_request(bench, 0xE3)
    fault(bench, "confirmation_bad_signature", match={"payment_request_number": number, "operation": "refund"})
    bench.refund(number, "R-1", "1.00")
    bench.admin("tick")
    assert [call["signed"] for call in bench.portal.calls] == [True, False]
    kinds = [(c["kind"], c["state"]) for c in bench.log(number)["confirmations"]]
    assert kinds == [("payment", "delivered"), ("refund", "pending")]


# --- payment_response_lost ------------------------------------------------------------------------
def test_payment_response_lost_takes_the_payment_but_the_browser_gets_no_answer(bench_of):  # noqa: F811
    bench = bench_of()
    srn, number, session_id = opened(bench, 0xF1)
    _, other, other_session = opened(bench, 0xF2)
    declared = fault(bench, "payment_response_lost", match={"sender_request_number": srn})
    assert bench.pay(other_session).status_code == 303  # another request: answered
    with pytest.raises(requests.ConnectionError):
        bench.pay(session_id)
    assert bench.status(SenderRequestNumber=srn)["Status"] == "PAID"  # the payment was taken
    bench.admin("tick")
    assert sorted(payment_numbers(bench)) == sorted([number, other])  # and notified
    log = bench.log(number)
    assert log["status"] == "APPROVED"
    assert log["faults"] == [{"fault_id": declared["id"], "kind": "payment_response_lost",
                              "at": "2026-12-03T10:00:00.000Z", "confirmation_id": None, "attempt": 1}]
    journal = bench.http.get(f"{bench.url}/_admin/journal", params={"path": f"/pay/{session_id}"}).json()
    [entry] = journal["entries"]
    assert entry["outcome"] == "fault:payment_response_lost" and declared["id"] in entry["note"]


def test_payment_response_lost_waits_for_an_approval_and_hits_the_otp_post(bench_of):  # noqa: F811
    bench = bench_of()
    srn, number, session_id = opened(bench, 0xF3)
    fault(bench, "payment_response_lost", match={"payment_request_number": number}, count=1)
    assert bench.pay(session_id, card=DECLINED).status_code == 303  # a decline takes no payment: answered
    challenge = bench.pay(session_id, card=ENROLLED)
    assert challenge.status_code == 200 and 'name="otp"' in challenge.text  # not decided yet: answered
    challenge_id = challenge.text.split('name="challenge_id" value="', 1)[1].split('"', 1)[0]
    with pytest.raises(requests.ConnectionError):
        bench.http.post(f"{bench.url}/pay/{session_id}/challenge", allow_redirects=False,
                        data={"otp": OTP, "challenge_id": challenge_id})
    assert bench.status(SenderRequestNumber=srn)["Status"] == "PAID"
    [listed] = bench.http.get(f"{bench.url}/_admin/faults").json()["faults"]
    assert (listed["hits"], listed["remaining"]) == (1, 0)


# --- the common inbound faults on the e-finance endpoints ------------------------------------------
def test_inbound_down_error_and_delay_work_on_the_efinance_endpoints(bench_of):  # noqa: F811
    bench = bench_of()
    add = bench.http.post
    add(f"{bench.url}/_admin/faults", json={"kind": "down", "endpoint": "/CardPaymentRequestIntiation/*",
                                            "count": 1}).raise_for_status()
    fields = bench.sender.fields(srn_of(0x1D1), confirmation_url=bench.portal.confirm_url)
    down = bench.http.post(f"{bench.url}/CardPaymentRequestIntiation/index", data=fields)
    assert down.status_code == 503
    assert bench.status(404, SenderRequestNumber=srn_of(0x1D1))["ResponseCode"] == "140"  # nothing was created

    add(f"{bench.url}/_admin/faults", json={"kind": "error", "endpoint": "/CardPaymentRequestIntiation/StatusInquiry",
                                            "params": {"status": 502}, "count": 1}).raise_for_status()
    srn, number, _ = paid_request(bench, 0x1D2)
    assert bench.http.post(f"{bench.url}/CardPaymentRequestIntiation/StatusInquiry",
                           data={"SenderID": "9001", "SenderRequestNumber": srn}).status_code == 502
    add(f"{bench.url}/_admin/faults", json={"kind": "delay", "endpoint": "/CardPaymentRequestIntiation/Refund",
                                            "params": {"seconds": 0}, "count": 1}).raise_for_status()
    assert bench.refund(number, "R-1", "1.00")["ResponseCode"] == "000"  # slow (0 s here), then answered
    journal = bench.http.get(f"{bench.url}/_admin/journal", params={"path": "/CardPaymentRequestIntiation/"}).json()
    outcomes = [entry["outcome"] for entry in journal["entries"]]
    assert {"fault:down", "fault:error", "fault:delay"} <= set(outcomes)


def test_inbound_faults_scoped_by_request_number_on_the_refund_call_and_the_hosted_page(bench_of):  # noqa: F811
    bench = bench_of()
    srn, number, _ = paid_request(bench, 0x1E1)
    _, other, _ = paid_request(bench, 0x1E2)
    bench.http.post(f"{bench.url}/_admin/faults", json={
        "kind": "down", "endpoint": "/CardPaymentRequestIntiation/Refund",
        "match": {"payment_request_number": number}}).raise_for_status()
    assert bench.refund(other, "R-1", "1.00")["ResponseCode"] == "000"  # another request: not hit
    refused = bench.http.post(f"{bench.url}/CardPaymentRequestIntiation/Refund", data={
        "SenderID": "9001", "SenderPassword": bench.sender.rsa(b"tahseel-test"), "SenderRequestNumber": srn,
        "RefundRequestNumber": "R-2", "Amount": "1.00"})
    assert refused.status_code == 503  # named by its SenderRequestNumber: the fault still finds it
    assert bench.log(number)["refunds"] == []

    _, unpaid, unpaid_session = opened(bench, 0x1E3)
    _, _, free_session = opened(bench, 0x1E4)
    bench.http.post(f"{bench.url}/_admin/faults", json={
        "kind": "error", "endpoint": "/pay/*", "params": {"status": 502},
        "match": {"payment_request_number": unpaid}}).raise_for_status()
    assert bench.pay(unpaid_session).status_code == 502
    assert bench.status(PaymentRequestNumber=unpaid)["Status"] == "UNPAID"
    assert bench.pay(free_session).status_code == 303
