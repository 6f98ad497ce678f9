"""Refund notices and the back-office refund of e-finance requests (issue 3; shapes ASSUMED, README).

Over real loopback sockets: the FACTS-written sender of ``test_efinance_initiation.py`` initiates,
the citizen pays on the hosted page, the portal of ``test_efinance_confirmation.py`` receives the
silent calls and the test decrypts them with the key and IV it chose itself. After a refund (the
sender's refund call or the test bench's back-office refund, a chargeback) the portal gets a refund
notice: the payment's twelve confirmation fields, then ``OperationType`` ``Refund`` and the refund.
Nothing sleeps: due work runs on ``POST /_admin/tick`` and the clock moves by ``POST /_admin/clock``.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .test_efinance_confirmation import (  # noqa: F401  (fixtures)
    CONFIRMATION_FIELDS,
    decrypt,
    portal,
    settlement_url,
    start_bench,
)
from .test_efinance_initiation import srn_of
from .test_efinance_refunds import CODES, bench_of, paid_request  # noqa: F401  (fixtures)

REFUND_FIELDS = ("OperationType", "RefundRequestNumber", "RefundNumber", "RefundAmount", "RefundedAmount",
                 "RefundDateTime", "Status")


def notices(bench: Any, srn: str) -> list[dict[str, str]]:
    """Every silent call the portal got, decrypted with the request's own key and IV, in order."""
    key, iv = bench.sender.secrets[srn]
    return [decrypt(call["form"]["RequestObject"][0], key, iv) for call in bench.portal.calls]


def back_office(bench: Any, number: str, **body: Any) -> Any:
    return bench.http.post(f"{bench.url}/api/efinance/requests/{number}/refunds", json=body)


# --- the refund notice ----------------------------------------------------------------------------
def test_each_sender_refund_is_notified_with_the_payments_fields_and_the_refund(bench_of):  # noqa: F811
    bench = bench_of()
    srn, number, _ = paid_request(bench, 0x501)
    [payment] = notices(bench, srn)
    assert tuple(payment) == CONFIRMATION_FIELDS  # the payment's notice is as before: no OperationType

    bench.admin("clock", {"advance": "2h"})
    first = bench.refund(number, "R-1", "100.00")
    bench.admin("clock", {"advance": "1h"})
    second = bench.refund(number, "R-2", "50.50")
    bench.admin("tick")

    calls = bench.portal.calls
    assert len(calls) == 3
    for call in calls[1:]:
        form = {name: values[0] for name, values in call["form"].items()}
        assert set(form) == {"SenderID", "SenderRequestNumber", "RequestObject", "Signature"}
        assert (form["SenderID"], form["SenderRequestNumber"]) == ("9001", srn)
        assert form["Signature"] == hashlib.sha256(form["RequestObject"].encode()).hexdigest()
    _, partial, full = notices(bench, srn)
    for notice, answer in ((partial, first), (full, second)):
        assert tuple(notice) == CONFIRMATION_FIELDS + REFUND_FIELDS
        assert {name: notice[name] for name in CONFIRMATION_FIELDS} == payment  # IsConfirmed true, its TX...
        assert notice["OperationType"] == "Refund"
        for name in ("RefundRequestNumber", "RefundNumber", "RefundAmount", "RefundedAmount", "Status",
                     "RefundDateTime"):
            assert notice[name] == answer[name], name
    assert payment["IsConfirmed"] == "true" and payment["TransactionNumber"]
    assert (partial["RefundAmount"], partial["RefundedAmount"], partial["Status"]) == (
        "100.00", "100.00", "PARTIAL_REFUNDED")
    assert (full["RefundAmount"], full["RefundedAmount"], full["Status"]) == ("50.50", "150.50", "REFUNDED")
    assert (partial["RefundDateTime"], full["RefundDateTime"]) == ("2026-12-03 14:00:00", "2026-12-03 15:00:00")

    log = bench.log(number)
    assert [(c["id"], c["kind"], c["state"], c["is_confirmed"]) for c in log["confirmations"]] == [
        (f"confirmation:{number}:1", "payment", "delivered", True),
        (f"refund:{number}:{first['RefundNumber']}", "refund", "delivered", True),
        (f"refund:{number}:{second['RefundNumber']}", "refund", "delivered", True)]
    assert log["confirmations"][1]["refund_number"] == first["RefundNumber"]
    assert [r["origin"] for r in log["refunds"]] == ["sender", "sender"]


def test_a_repeated_refund_is_not_notified_twice_and_notify_refunds_false_sends_none(bench_of):  # noqa: F811
    bench = bench_of()
    _, number, _ = paid_request(bench, 0x502)
    bench.refund(number, "R-1", "10.00")
    bench.refund(number, "R-1", "10.00")  # the same refund again: the same answer, nothing new
    bench.admin("tick")
    assert len(bench.portal.calls) == 2
    assert [c["kind"] for c in bench.log(number)["confirmations"]] == ["payment", "refund"]

    quiet = bench_of(notify_refunds=False)
    quiet.portal.calls.clear()
    _, other, _ = paid_request(quiet, 0x503)
    quiet.refund(other, "R-1", "10.00")
    quiet.admin("tick")
    assert len(quiet.portal.calls) == 1  # the payment only
    assert [c["kind"] for c in quiet.log(other)["confirmations"]] == ["payment"]


def test_a_refund_notice_that_is_not_acknowledged_is_retried_like_a_confirmation(bench_of):  # noqa: F811
    bench = bench_of()
    srn, number, _ = paid_request(bench, 0x504)
    bench.portal.acknowledge = False
    answer = bench.refund(number, "R-1", "1.00")
    bench.admin("tick")
    bench.admin("clock", {"advance": "60s"})
    refund_calls = bench.portal.calls[1:]
    assert len(refund_calls) == 2 and refund_calls[0]["raw"] == refund_calls[1]["raw"]
    [notice] = [c for c in bench.log(number)["confirmations"] if c["kind"] == "refund"]
    assert notice["id"] == f"refund:{number}:{answer['RefundNumber']}"
    assert [a["outcome"] for a in notice["attempts"]] == ["not_acknowledged"] * 2
    assert notice["state"] == "pending"


# --- the back-office refund -----------------------------------------------------------------------
def test_back_office_refund_defaults_to_everything_refundable_and_is_notified(bench_of):  # noqa: F811
    bench = bench_of()
    srn, number, _ = paid_request(bench, 0x511)
    bench.refund(number, "R-1", "50.00")

    answer = back_office(bench, number)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert set(body) == {"refund_request_number", "refund_number", "sender_request_number", "payment_request_number",
                         "currency", "refund_amount", "refunded_amount", "refundable_amount", "status",
                         "refund_date_time"}
    assert re.fullmatch(r"BO-[0-9A-F]{12}", body["refund_request_number"])
    assert re.fullmatch(r"RF[0-9]{12}", body["refund_number"])
    assert (body["sender_request_number"], body["payment_request_number"], body["currency"]) == (srn, number, "818")
    assert (body["refund_amount"], body["refunded_amount"], body["refundable_amount"], body["status"]) == (
        "100.50", "150.50", "0.00", "REFUNDED")
    assert body["refund_date_time"] == "2026-12-03 12:00:00"

    status = bench.status(PaymentRequestNumber=number)
    assert (status["Status"], status["RefundedAmount"], status["RefundableAmount"]) == ("REFUNDED", "150.50", "0.00")
    log = bench.log(number)
    assert [(r["origin"], r["amount"]) for r in log["refunds"]] == [("sender", "50.00"), ("back_office", "100.50")]
    bench.admin("tick")
    last = notices(bench, srn)[-1]
    assert (last["OperationType"], last["RefundRequestNumber"], last["RefundAmount"], last["Status"]) == (
        "Refund", body["refund_request_number"], "100.50", "REFUNDED")

    nothing_left = back_office(bench, number)
    assert nothing_left.status_code == 422
    assert nothing_left.json()["error"]["code"] == "REFUND_EXCEEDS_PAYMENT"
    assert nothing_left.json()["error"]["field"] == "amount"
    assert nothing_left.json()["error"]["details"] == {"response_code": CODES["REFUND_EXCEEDS_PAYMENT"]}


def test_back_office_refund_is_idempotent_by_its_refund_request_number(bench_of):  # noqa: F811
    bench = bench_of()
    _, number, _ = paid_request(bench, 0x512)
    first = back_office(bench, number, amount="20.00", refund_request_number="CB-77")
    assert first.status_code == 201
    again = back_office(bench, number, amount="20.00", refund_request_number="CB-77")
    assert (again.status_code, again.json()) == (200, first.json())
    without_amount = back_office(bench, number, refund_request_number="CB-77")  # the same refund, named by its id
    assert (without_amount.status_code, without_amount.json()) == (200, first.json())
    other = back_office(bench, number, amount="21.00", refund_request_number="CB-77")
    assert other.status_code == 409
    assert (other.json()["error"]["code"], other.json()["error"]["field"]) == (
        "REFUND_ID_CONFLICT", "refund_request_number")
    # The id is the refund's, whoever asked: the sender's refund call under it is the same conflict.
    assert bench.refund(number, "CB-77", "5.00", expect=409)["ResponseCode"] == CODES["REFUND_ID_CONFLICT"]
    assert len(bench.log(number)["refunds"]) == 1
    bench.admin("tick")
    assert len(bench.portal.calls) == 2  # the payment and one refund notice


def test_back_office_refund_refusals_name_the_field_and_change_nothing(bench_of):  # noqa: F811
    bench = bench_of()
    srn, number, _ = paid_request(bench, 0x513)
    unpaid, _ = bench.initiate(srn_of(0x514))
    cancelled, _ = bench.initiate(srn_of(0x515))
    bench.cancel(PaymentRequestNumber=cancelled)
    before = bench.status(PaymentRequestNumber=number)

    cases = [
        ("000000000000", {}, 404, "PAYMENT_REQUEST_NOT_FOUND", "payment_request_number"),
        (unpaid, {}, 409, "NOT_PAID", "payment_request_number"),
        (cancelled, {}, 409, "ALREADY_CANCELLED", "payment_request_number"),
        (number, {"amount": "150.51"}, 422, "REFUND_EXCEEDS_PAYMENT", "amount"),
        (number, {"amount": "0.00"}, 422, "INVALID_AMOUNT", "amount"),
        (number, {"amount": "1.5"}, 422, "VALIDATION_FAILED", "amount"),
        (number, {"amount": 10}, 422, "VALIDATION_FAILED", "amount"),
        (number, {"refund_request_number": "no spaces"}, 422, "VALIDATION_FAILED", "refund_request_number"),
        (number, {"refund_request_number": "R" * 33}, 422, "VALIDATION_FAILED", "refund_request_number"),
        (number, {"reason": "chargeback"}, 422, "VALIDATION_FAILED", "reason"),
    ]
    for target, body, status, code, field in cases:
        answer = back_office(bench, target, **body)
        assert answer.status_code == status, (body, answer.text)
        assert (answer.json()["error"]["code"], answer.json()["error"].get("field")) == (code, field), body
    not_json = bench.http.post(f"{bench.url}/api/efinance/requests/{number}/refunds", data="amount=1.00",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert not_json.status_code == 415
    assert bench.status(PaymentRequestNumber=number) == before
    assert bench.log(number)["refunds"] == []
    bench.admin("tick")
    assert len(bench.portal.calls) == 1  # the payment only
