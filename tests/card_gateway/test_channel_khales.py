"""A Channel payment request paid in cash at a Khales outlet, end to end over loopback (issue 3).

The FACTS sender initiates server to server with mechanism ``Channel``; a citizen pays the
PaymentRequestNumber at a Khales outlet (``POST /api/outlet-payments`` with ``biller: efinance``);
the Khales simulator inquires and pays at the card gateway's Channel API (assumed API, signed
``efinance_channel``); the gateway confirms to the sender with ``AuthorizingMechanism`` ``Channel``
and settles the money itself (settlement lines with ``channel: cash``, ``source: card_gateway``);
Khales feeds nothing to settlement for it. Retries with the same transaction id pay once; an
outcome Khales never learned is reversed, which refunds the request in full. Simulated clocks, no
sleeps; every server is stopped after its test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from simulators.common.config import load_settings
from simulators.common.server import ServerThread
from simulators.khales.app import create_app as create_khales

from .test_efinance_confirmation import decrypt, portal, settlement_url, start_bench  # noqa: F401 (fixtures)
from .test_efinance_initiation import S2S_PATH, START, parse_response, srn_of
from .test_mechanisms import mechanism_xml

REFUSING_URL = "http://127.0.0.1:9"
BATCH = "B-01-20261203"  # governorate 01 (the test sender's), Thursday 3 December 2026


class Khales:
    """The Khales simulator on loopback, pointed at the gateway (and settlement), on the same clock."""

    def __init__(self, gateway_url: str, settlement: str, http: requests.Session) -> None:
        settings = load_settings(overrides={
            "urls": {"card_gateway": gateway_url, "reference": REFUSING_URL, "settlement": settlement},
            "khales": {"biller_timeout_seconds": 2, "feed_retry_seconds": [60]},
        })
        self.server = ServerThread(create_khales(settings)).start()
        self.http = http
        assert http.post(f"{self.url}/_admin/clock", json={"set": START}).status_code == 200

    @property
    def url(self) -> str:
        return self.server.url

    def pay(self, reference: str, **extra: Any) -> requests.Response:
        return self.http.post(f"{self.url}/api/outlet-payments",
                              json={"bill_reference": reference, "biller": "efinance", **extra})

    def outbound(self, path: str) -> list[dict[str, Any]]:
        journal = self.http.get(f"{self.url}/_admin/journal", params={"direction": "out", "path": path}).json()
        return journal["entries"]


@pytest.fixture
def start_khales(http: requests.Session) -> Iterator[Any]:
    started: list[Khales] = []

    def start(gateway_url: str, settlement: str = REFUSING_URL) -> Khales:
        khales = Khales(gateway_url, settlement, http)
        started.append(khales)
        return khales

    yield start
    for khales in started:
        khales.server.stop()


def initiate_channel(bench: Any, n: int, type_: str = "Channel", amounts: tuple[str, ...] = ("100.00", "50.50"),
                     accounts: tuple[str, ...] = ("9001001", "9001002")) -> tuple[str, str]:
    """Server-to-server initiation; (SenderRequestNumber, PaymentRequestNumber)."""
    srn = srn_of(n)
    xml = mechanism_xml(bench.sender, srn, type_, amounts=amounts, accounts=accounts,
                        confirmation_url=bench.portal.confirm_url)
    response = bench.http.post(f"{bench.url}{S2S_PATH}", data=bench.sender.fields(srn, xml=xml))
    answer = parse_response(response.content)
    assert answer["ResponseCode"] == "000", answer
    return srn, answer["PaymentRequestNumber"]


def confirmations(bench: Any, srn: str) -> list[dict[str, str]]:
    key, iv = bench.sender.secrets[srn]
    return [decrypt(call["form"]["RequestObject"][0], key, iv) for call in bench.portal.calls]


def test_a_channel_request_paid_at_a_khales_outlet_is_confirmed_and_settled_by_efinance(
        start_bench, portal, settlement_url, start_khales, http):  # noqa: F811
    bench = start_bench(settlement=settlement_url)
    khales = start_khales(bench.url, settlement_url)
    srn, number = initiate_channel(bench, 0xCA5401)

    paid = khales.pay(number, transaction_id="KHT100000000001")
    assert paid.status_code == 201, paid.text
    tx = paid.json()
    assert (tx["status"], tx["biller"], tx["amount"], tx["attempts"]) == ("PAID", "efinance", "150.50", 1)
    assert tx["inquiry"]["payment_request_number"] == number and tx["inquiry"]["total_due"] == "150.50"
    assert tx["receipt"]["status"] == "ACCEPTED" and tx["receipt"]["payment_request_number"] == number
    assert tx["settlement_feed"] is None  # e-finance settles its Channel payments, not Khales
    assert [e["step"] for e in tx["events"]] == ["inquiry", "payment"]

    bench.admin("tick")
    [confirmation] = confirmations(bench, srn)
    assert (confirmation["AuthorizingMechanism"], confirmation["AuthorizingInstitution"]) == ("Channel", "Khales")
    assert confirmation["IsConfirmed"] == "true" and confirmation["PaymentRequestNumber"] == number
    assert confirmation["TransactionNumber"] == tx["receipt"]["transaction_number"]
    assert confirmation["CustomerAuthorizationAmount"] == "150.50"

    assert http.post(f"{khales.url}/_admin/tick").status_code == 200
    assert khales.outbound("/api/collections") == []  # nothing fed by Khales
    batch = http.get(f"{settlement_url}/api/batches/{BATCH}").json()
    transaction = confirmation["TransactionNumber"]
    assert sorted((line["collection_id"], line["amount"], line["channel"], line["source"],
                   line["settlement_account_code"]) for line in batch["lines"]) == [
        (f"card:{transaction}:1", "100.00", "cash", "card_gateway", "9001001"),
        (f"card:{transaction}:2", "50.50", "cash", "card_gateway", "9001002")]
    assert {line["bill_reference"] for line in batch["lines"]} == {number}
    assert {(line["payment_request_number"], line["sender_request_number"], line["mechanism"])
            for line in batch["lines"]} == {(number, srn, "Channel")}  # cash at Khales, settled by e-finance


def test_a_lost_answer_is_retried_with_the_same_transaction_id_and_pays_once(
        start_bench, portal, start_khales):  # noqa: F811
    bench = start_bench()
    khales = start_khales(bench.url)
    srn, number = initiate_channel(bench, 0xCA5402)
    bench.admin("faults", {"direction": "in", "kind": "drop_response", "endpoint": "/api/channel/payments",
                           "count": 1})

    tx = khales.pay(number).json()
    assert (tx["status"], tx["attempts"]) == ("PAID", 2)
    sent = [entry["request_body"] for entry in khales.outbound("/api/channel/payments")]
    assert len(sent) == 2 and sent[0] == sent[1]  # the same body, the same transaction id
    payment = bench.http.get(f"{bench.url}/api/channel/payments/{tx['transaction_id']}").json()
    assert payment["answer"]["transaction_number"] == tx["receipt"]["transaction_number"]

    bench.admin("tick")
    assert [c["IsConfirmed"] for c in confirmations(bench, srn)] == ["true"]  # paid once, confirmed once
    log = bench.log(number)
    assert len(log["settlement_feed"]) == 2 and log["refunds"] == []


def test_an_outcome_khales_never_learned_is_reversed_and_the_request_refunded_in_full(
        start_bench, portal, settlement_url, start_khales, http):  # noqa: F811
    bench = start_bench(settlement=settlement_url)
    khales = start_khales(bench.url)
    srn, number = initiate_channel(bench, 0xCA5403)
    # The gateway takes the payment, and every answer is lost: Khales retries twice, then reverses.
    bench.admin("faults", {"direction": "in", "kind": "drop_response", "endpoint": "/api/channel/payments",
                           "count": 3})

    tx = khales.pay(number).json()
    assert (tx["status"], tx["attempts"]) == ("REVERSED", 3)
    assert tx["reversal"]["answer"]["status"] == "REVERSED"
    assert tx["reversal"]["answer"]["refunded_amount"] == "150.50"
    log = bench.log(number)
    assert [r["amount"] for r in log["refunds"]] == ["150.50"]
    bench.admin("tick")
    assert confirmations(bench, srn)[0]["AuthorizingMechanism"] == "Channel"
    transaction = confirmations(bench, srn)[0]["TransactionNumber"]
    batch = http.get(f"{settlement_url}/api/batches/{BATCH}").json()
    reversals = [line for line in batch["lines"] if line["type"] == "reversal"]
    assert sorted((line["amount"], line["channel"], line["reverses"]) for line in reversals) == [
        ("-100.00", "cash", f"card:{transaction}:1"), ("-50.50", "cash", f"card:{transaction}:2")]
    # The request is refunded: another outlet payment is refused, not paid twice.
    again = khales.pay(number).json()
    assert (again["status"], again["error"]["code"]) == ("REFUSED", "REFUNDED")


@pytest.mark.parametrize(("type_", "code"), [("Card", "CHANNEL_NOT_OFFERED"), ("NotSet", "CHANNEL_NOT_OFFERED")])
def test_khales_is_refused_what_is_not_payable_in_cash(start_bench, portal, start_khales, type_, code):  # noqa: F811
    bench = start_bench()
    khales = start_khales(bench.url)
    _, number = initiate_channel(bench, 0xCA5404, type_=type_)
    tx = khales.pay(number).json()
    assert (tx["status"], tx["error"]["code"]) == ("REFUSED", code)
    unknown = khales.pay("999999999999").json()
    assert (unknown["status"], unknown["error"]["code"]) == ("REFUSED", "PAYMENT_REQUEST_NOT_FOUND")
    assert bench.log(number)["status"] == "OPEN"


def test_khales_refuses_an_expired_channel_request_from_the_inquiry(start_bench, portal, start_khales):  # noqa: F811
    bench = start_bench()
    khales = start_khales(bench.url)
    _, number = initiate_channel(bench, 0xCA5405)
    for url in (bench.url, khales.url):
        assert bench.http.post(f"{url}/_admin/clock", json={"advance": "2d"}).status_code == 200
    tx = khales.pay(number).json()
    assert (tx["status"], tx["error"]["code"], tx["attempts"]) == ("REFUSED", "EXPIRED", 0)
