"""Status inquiry, refund and cancel of e-finance requests, and expiry at the end of ExpiryDate.

FACTS-only style: the sender of ``test_efinance_initiation.py`` initiates over real loopback sockets
and the citizen pays on the hosted page. The three server-to-server calls have no public spec: their
paths, form fields (``SenderID`` + ``SenderPassword`` RSA-encrypted under the certificate, as FACTS
describes for ``Sender.Password``) and XML answers are the simulator's documented assumption
(simulators/card_gateway/README.md). Codes are looked up by name in
``contracts/efinance-response-codes.yaml``; nothing sleeps, the clock moves by ``POST /_admin/clock``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from simulators.common.contracts import load_contract

from .test_efinance_confirmation import (  # noqa: F401  (fixtures)
    SECOND_ACCOUNT,
    Bench,
    portal,
    settlement_url,
    start_bench,
)
from .test_efinance_initiation import srn_of

STATUS_PATH = "/CardPaymentRequestIntiation/StatusInquiry"
REFUND_PATH = "/CardPaymentRequestIntiation/Refund"
CANCEL_PATH = "/CardPaymentRequestIntiation/Cancel"
CODES = {row["name"]: str(row["code"]) for row in load_contract("efinance-response-codes.yaml")["codes"]}


class Portal2(Bench):
    """The bench plus the sender's server-to-server calls (form in, XML out)."""

    def call(self, path: str, expect: int = 200, **form: str) -> dict[str, str]:
        data = {"SenderID": "9001", "SenderPassword": self.sender.rsa(b"tahseel-test"), **form}
        response = self.http.post(f"{self.url}{path}", data=data)
        assert response.status_code == expect, response.text
        assert response.headers["Content-Type"].startswith("application/xml")
        return {child.tag: child.text or "" for child in ET.fromstring(response.content)}

    def status(self, expect: int = 200, **form: str) -> dict[str, str]:
        return self.call(STATUS_PATH, expect, **form)

    def refund(self, number: str, refund_id: str, amount: str, expect: int = 200) -> dict[str, str]:
        return self.call(REFUND_PATH, expect, PaymentRequestNumber=number, RefundRequestNumber=refund_id,
                         Amount=amount)

    def cancel(self, expect: int = 200, **form: str) -> dict[str, str]:
        return self.call(CANCEL_PATH, expect, **form)


@pytest.fixture
def bench_of(start_bench: Any) -> Any:  # noqa: F811 - the imported fixture
    """``start_bench`` of the confirmation tests, with the sender's server-to-server calls."""
    def start(settlement: str = "http://127.0.0.1:9", session_ttl: str = "24h", **efinance: Any) -> Portal2:
        return start_bench(settlement, bench_class=Portal2, session_ttl=session_ttl, **efinance)

    return start


def paid_request(bench: Portal2, n: int, amounts: tuple[str, ...] = ("100.00", "50.50")) -> tuple[str, str, str]:
    srn = srn_of(n)
    accounts = ("9001001", SECOND_ACCOUNT, "9001001")[:len(amounts)]
    number, session_id = bench.initiate(srn, amounts=amounts, accounts=accounts)
    assert bench.pay(session_id).status_code == 303
    bench.admin("tick")
    return srn, number, session_id


# --- status inquiry -------------------------------------------------------------------------------
def test_status_of_a_paid_request_by_either_number(bench_of):
    bench = bench_of()
    srn, number, _ = paid_request(bench, 1)
    by_srn = bench.status(SenderRequestNumber=srn)
    by_number = bench.status(PaymentRequestNumber=number)
    assert by_srn == by_number
    assert by_srn["ResponseCode"] == "000"
    assert (by_srn["SenderRequestNumber"], by_srn["PaymentRequestNumber"]) == (srn, number)
    assert by_srn["Status"] == "PAID"
    assert (by_srn["PaymentRequestTotalAmount"], by_srn["CollectionFeesAmount"], by_srn["PaidAmount"],
            by_srn["RefundedAmount"], by_srn["RefundableAmount"]) == ("150.50", "0.00", "150.50", "0.00", "150.50")
    assert by_srn["TransactionNumber"] and by_srn["AuthorizationCode"]
    assert by_srn["ReconciliationDate"] == "2026-12-03"


def test_status_refusals_unknown_sender_wrong_password_unknown_request(bench_of):
    bench = bench_of()
    srn, number, _ = paid_request(bench, 2)
    assert bench.status(401, SenderID="4242", SenderRequestNumber=srn)["ResponseCode"] == CODES["UNKNOWN_SENDER"]
    wrong = bench.status(401, SenderPassword=bench.sender.rsa(b"nope"), SenderRequestNumber=srn)
    assert wrong["ResponseCode"] == CODES["WRONG_PASSWORD"]
    unknown = bench.status(404, SenderRequestNumber=srn_of(999))
    assert unknown["ResponseCode"] == CODES["PAYMENT_REQUEST_NOT_FOUND"]
    mismatch = bench.status(404, SenderRequestNumber=srn, PaymentRequestNumber="123456789012")
    assert mismatch["ResponseCode"] == CODES["PAYMENT_REQUEST_NOT_FOUND"]
    assert bench.status(400)["ResponseCode"] == CODES["MISSING_FIELD"]


# --- refunds --------------------------------------------------------------------------------------
def test_partial_refunds_then_one_that_would_exceed_is_refused_and_nothing_changes(bench_of, settlement_url):  # noqa: F811
    bench = bench_of(settlement=settlement_url)
    srn, number, _ = paid_request(bench, 3)
    tx = bench.status(SenderRequestNumber=srn)["TransactionNumber"]

    first = bench.refund(number, "R-1", "100.00")
    assert (first["ResponseCode"], first["RefundAmount"], first["RefundedAmount"], first["RefundableAmount"],
            first["Status"]) == ("000", "100.00", "100.00", "50.50", "PARTIAL_REFUNDED")
    assert first["RefundNumber"]
    second = bench.refund(number, "R-2", "30")
    assert (second["RefundedAmount"], second["RefundableAmount"]) == ("130.00", "20.50")
    assert second["RefundNumber"] != first["RefundNumber"]

    before = bench.status(PaymentRequestNumber=number)
    too_much = bench.refund(number, "R-3", "20.51", expect=422)
    assert too_much["ResponseCode"] == CODES["REFUND_EXCEEDS_PAYMENT"]
    assert bench.status(PaymentRequestNumber=number) == before
    assert before["Status"] == "PARTIAL_REFUNDED"
    assert (before["RefundedAmount"], before["PaidAmount"]) == ("130.00", "150.50")

    # Settlement: each refund reverses the lines from the first onward (R-1: line 1 whole; R-2: 30.00 of line 2).
    bench.admin("tick")
    batch = bench.http.get(f"{settlement_url}/api/batches/B-01-20261203").json()
    reversals = sorted((line["reverses"], line["amount"]) for line in batch["lines"] if line["type"] == "reversal")
    assert reversals == [(f"card:{tx}:1", "-100.00"), (f"card:{tx}:2", "-30.00")]
    assert batch["amount"] == "20.50"

    last = bench.refund(number, "R-4", "20.50")
    assert (last["Status"], last["RefundableAmount"]) == ("REFUNDED", "0.00")
    assert bench.refund(number, "R-5", "0.01", expect=422)["ResponseCode"] == CODES["REFUND_EXCEEDS_PAYMENT"]
    # R-4 reverses the rest of line 2, which R-2 had partly reversed: settlement takes reversals in parts.
    bench.admin("tick")
    batch = bench.http.get(f"{settlement_url}/api/batches/B-01-20261203").json()
    reversals = sorted((line["reverses"], line["amount"]) for line in batch["lines"] if line["type"] == "reversal")
    assert reversals == [(f"card:{tx}:1", "-100.00"), (f"card:{tx}:2", "-20.50"), (f"card:{tx}:2", "-30.00")]
    assert batch["amount"] == "0.00"
    assert all(d["state"] == "delivered" for d in bench.log(number)["settlement_feed"])


def test_full_refund_reads_refunded_and_settlement_receives_the_reversal_lines(bench_of, settlement_url):  # noqa: F811
    bench = bench_of(settlement=settlement_url)
    srn, number, _ = paid_request(bench, 4)
    tx = bench.status(SenderRequestNumber=srn)["TransactionNumber"]
    answer = bench.refund(number, "FULL-1", "150.50")
    assert (answer["ResponseCode"], answer["Status"], answer["RefundedAmount"]) == ("000", "REFUNDED", "150.50")
    status = bench.status(SenderRequestNumber=srn)
    assert (status["Status"], status["RefundedAmount"], status["RefundableAmount"]) == ("REFUNDED", "150.50", "0.00")

    assert bench.log(number)["settlement_feed"][-1]["state"] == "pending"  # never in the request thread
    bench.admin("tick")
    feed = bench.log(number)["settlement_feed"]
    assert [(d["state"], d["settlement_account_code"]) for d in feed] == [
        ("delivered", "9001001"), ("delivered", SECOND_ACCOUNT),
        ("delivered", "9001001"), ("delivered", SECOND_ACCOUNT)]
    batch = bench.http.get(f"{settlement_url}/api/batches/B-01-20261203").json()
    assert sorted((line["reverses"], line["amount"]) for line in batch["lines"] if line["type"] == "reversal") == [
        (f"card:{tx}:1", "-100.00"), (f"card:{tx}:2", "-50.50")]
    assert batch["amount"] == "0.00"
    # payments and reversals alike name the e-finance request and the mechanism that paid (issue 5)
    assert {(line["payment_request_number"], line["sender_request_number"], line["mechanism"])
            for line in batch["lines"]} == {(number, srn, "Card")}


def test_refund_of_an_unpaid_request_is_refused(bench_of):
    bench = bench_of()
    number, session_id = bench.initiate(srn_of(5))
    assert bench.refund(number, "R-1", "10.00", expect=409)["ResponseCode"] == CODES["NOT_PAID"]
    bench.pay(session_id, card="4000000000000002")  # declined: still not paid
    assert bench.status(PaymentRequestNumber=number)["Status"] == "FAILED"
    assert bench.refund(number, "R-1", "10.00", expect=409)["ResponseCode"] == CODES["NOT_PAID"]
    assert bench.status(PaymentRequestNumber=number)["RefundedAmount"] == "0.00"


def test_refund_is_idempotent_by_its_request_number(bench_of):
    bench = bench_of()
    _, number, _ = paid_request(bench, 6)
    first = bench.http.post(f"{bench.url}{REFUND_PATH}", data={
        "SenderID": "9001", "SenderPassword": bench.sender.rsa(b"tahseel-test"), "PaymentRequestNumber": number,
        "RefundRequestNumber": "IDEM-1", "Amount": "40.00"})
    again = bench.http.post(f"{bench.url}{REFUND_PATH}", data={
        "SenderID": "9001", "SenderPassword": bench.sender.rsa(b"tahseel-test"), "PaymentRequestNumber": number,
        "RefundRequestNumber": "IDEM-1", "Amount": "40.00"})
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.content == again.content  # the same answer, not a second refund
    assert bench.status(PaymentRequestNumber=number)["RefundedAmount"] == "40.00"
    other = bench.refund(number, "IDEM-1", "41.00", expect=409)
    assert other["ResponseCode"] == CODES["REFUND_ID_CONFLICT"]
    _, another, _ = paid_request(bench, 7)
    assert bench.refund(another, "IDEM-1", "40.00", expect=409)["ResponseCode"] == CODES["REFUND_ID_CONFLICT"]
    assert bench.status(PaymentRequestNumber=number)["RefundedAmount"] == "40.00"
    assert bench.status(PaymentRequestNumber=another)["RefundedAmount"] == "0.00"
    assert bench.refund(number, "IDEM-2", "0", expect=422)["ResponseCode"] == CODES["INVALID_AMOUNT"]
    assert bench.refund(number, "IDEM-2", "1.234", expect=422)["ResponseCode"] == CODES["INVALID_AMOUNT"]


# --- cancel ---------------------------------------------------------------------------------------
def test_cancel_unpaid_then_the_page_refuses_payment(bench_of):
    bench = bench_of()
    srn = srn_of(8)
    number, session_id = bench.initiate(srn)
    assert bench.status(SenderRequestNumber=srn)["Status"] == "UNPAID"
    answer = bench.cancel(SenderRequestNumber=srn)
    assert (answer["ResponseCode"], answer["Status"], answer["PaymentRequestNumber"]) == ("000", "CANCELLED", number)
    assert bench.status(SenderRequestNumber=srn)["Status"] == "CANCELLED"

    page = bench.http.get(f"{bench.url}/pay/{session_id}")
    assert page.status_code == 410 and 'data-code="SESSION_CANCELLED"' in page.text
    tried = bench.pay(session_id)
    assert tried.status_code == 410
    assert bench.status(SenderRequestNumber=srn)["Status"] == "CANCELLED"
    assert bench.cancel(409, SenderRequestNumber=srn)["ResponseCode"] == CODES["ALREADY_CANCELLED"]
    assert bench.refund(number, "R-1", "1.00", expect=409)["ResponseCode"] == CODES["ALREADY_CANCELLED"]


def test_cancel_of_a_paid_request_is_refused(bench_of):
    bench = bench_of()
    srn, number, _ = paid_request(bench, 9)
    assert bench.cancel(409, PaymentRequestNumber=number)["ResponseCode"] == CODES["ALREADY_PAID"]
    assert bench.status(SenderRequestNumber=srn)["Status"] == "PAID"


def test_the_other_status_vocabulary_is_selectable(bench_of):
    bench = bench_of(status_vocabulary="new_canceled")
    srn = srn_of(10)
    bench.initiate(srn)
    assert bench.status(SenderRequestNumber=srn)["Status"] == "NEW"
    assert bench.cancel(SenderRequestNumber=srn)["Status"] == "CANCELED"


# --- expiry ---------------------------------------------------------------------------------------
def test_an_unpaid_request_expires_at_the_end_of_its_expiry_date_in_cairo(bench_of):
    bench = bench_of(session_ttl="72h")  # so that ExpiryDate, not the session lifetime, decides
    srn = srn_of(11)
    number, session_id = bench.initiate(srn, expiry="2026-12-04")
    bench.admin("clock", {"set": "2026-12-04T23:59:59+02:00"})
    assert bench.status(SenderRequestNumber=srn)["Status"] == "UNPAID"
    bench.admin("clock", {"set": "2026-12-05T00:00:00+02:00"})
    status = bench.status(SenderRequestNumber=srn)
    assert (status["Status"], status["PaidAmount"]) == ("EXPIRED", "0.00")
    assert bench.http.get(f"{bench.url}/pay/{session_id}").status_code == 410
    assert bench.cancel(410, SenderRequestNumber=srn)["ResponseCode"] == CODES["REQUEST_EXPIRED"]
    assert bench.refund(number, "R-1", "1.00", expect=409)["ResponseCode"] == CODES["NOT_PAID"]


def test_the_initiation_page_of_a_cancelled_request_answers_already_cancelled(bench_of):
    bench = bench_of()
    srn = srn_of(12)
    bench.initiate(srn)
    bench.cancel(SenderRequestNumber=srn)
    fields = bench.sender.fields(srn, confirmation_url=bench.portal.confirm_url,
                                 redirect_url="https://portal.example/efinance/back?order=7")
    page = bench.http.post(f"{bench.url}/CardPaymentRequestIntiation/index", data=fields)
    assert page.status_code == 409
    assert f'data-response-code="{CODES["ALREADY_CANCELLED"]}"' in page.text
