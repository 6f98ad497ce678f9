"""After an e-finance request is paid: the silent call, the browser's redirect, the settlement lines.

Written from docs/domain-facts.md alone, over real loopback sockets: the sender of
``test_efinance_initiation.py`` initiates a request whose ``PaymentConfirmationUrl`` is a small
portal app below; the citizen pays on the hosted page; the portal decrypts the confirmation's
``RequestObject`` with the key and IV the test itself chose for that request and acknowledges with
the header ``Response_Code: 000`` (or, to see the retries, answers without it). What FACTS leaves
open (XML root, date formats, the Signature algorithm, the retry schedule) is the simulator's
documented assumption and is marked "assumed" where a check relies on it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import Flask, request

from simulators.card_gateway.app import create_app
from simulators.common.config import load_settings
from simulators.common.contracts import validate
from simulators.common.server import ServerThread
from simulators.settlement.app import create_app as create_settlement

from .test_efinance_initiation import PAGE_PATH, START, Sender, srn_of

CONFIRM_PATH = "/efinance/confirm"
REDIRECT_URL = "https://portal.example/efinance/back?order=7"
SECOND_ACCOUNT = "9001002"
SCHEDULE = [60, 300, 900, 3600, 10800]  # card_gateway.efinance.confirmation_retry_seconds (default)
CONFIRMATION_FIELDS = ("SenderRequestNumber", "PaymentRequestNumber", "PaymentRequestTotalAmount",
                       "CollectionFeesAmount", "CustomerAuthorizationAmount", "AuthorizationCode", "TransactionNumber",
                       "AuthorizingMechanism", "AuthorizingInstitution", "AuthoriztionDateTime",
                       "ReconciliationDate", "IsConfirmed")


# --- the portal: receives the silent call --------------------------------------------------------
class Portal:
    """The sender's server: keeps every silent call; acknowledges with ``Response_Code: 000`` when told."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.acknowledge = True
        self._lock = threading.Lock()
        app = Flask("efinance_portal")

        @app.post(CONFIRM_PATH)
        def confirm():  # type: ignore[no-untyped-def]
            with self._lock:
                self.calls.append({"form": request.form.to_dict(flat=False), "raw": request.get_data(),
                                   "content_type": request.headers.get("Content-Type", "")})
                headers = {"Response_Code": "000"} if self.acknowledge else {}
            return "OK", 200, headers

        self.server = ServerThread(app)

    @property
    def confirm_url(self) -> str:
        return self.server.url + CONFIRM_PATH


def decrypt(request_object: str, key: bytes, iv: bytes) -> dict[str, str]:
    """What a sender does with the silent call: AES-256-CBC/PKCS#7 under its own key and IV."""
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(base64.b64decode(request_object, validate=True)) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    root = ET.fromstring(unpadder.update(padded) + unpadder.finalize())
    return {child.tag: child.text or "" for child in root}


# --- fixtures -------------------------------------------------------------------------------------
@pytest.fixture
def portal() -> Iterator[Portal]:
    fake = Portal()
    fake.server.start()
    yield fake
    fake.server.stop()


@pytest.fixture
def settlement_url(receiver: Any, http: requests.Session) -> Iterator[str]:
    server = ServerThread(create_settlement(load_settings(overrides={"urls": {"reference": receiver.url}}))).start()
    http.post(f"{server.url}/_admin/clock", json={"set": START}).raise_for_status()
    yield server.url
    server.stop()


class Bench:
    """The gateway on loopback, a sender that knows its certificate, and the portal."""

    def __init__(self, url: str, http: requests.Session, portal: Portal) -> None:
        self.url, self.http, self.portal = url, http, portal
        self.sender = Sender(http.get(f"{url}/_admin/certificate").content)

    def admin(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post(f"{self.url}/_admin/{path}", json=body or {})
        assert response.status_code in (200, 201), response.text
        return response.json()

    def initiate(self, srn: str, **xml: Any) -> tuple[str, str]:
        """The browser's initiation; returns (PaymentRequestNumber, session id of the hosted page)."""
        fields = self.sender.fields(srn, confirmation_url=self.portal.confirm_url, redirect_url=REDIRECT_URL, **xml)
        page = self.http.post(f"{self.url}{PAGE_PATH}", data=fields)
        assert page.status_code == 200, page.text
        match = re.search(r'action="/pay/([A-Za-z0-9]+)', page.text)
        assert match is not None
        return page.headers["X-Payment-Request-Number"], match.group(1)

    def pay(self, session_id: str, card: str = "4111111111111111", expiry: str = "12/30") -> requests.Response:
        return self.http.post(f"{self.url}/pay/{session_id}", allow_redirects=False,
                              data={"card_number": card, "expiry": expiry, "cvv": "123", "cardholder": "Mona Ali"})

    def log(self, number: str) -> dict[str, Any]:
        response = self.http.get(f"{self.url}/api/efinance/requests/{number}")
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def start_bench(tmp_path: Any, http: requests.Session, portal: Portal) -> Iterator[Any]:
    servers: list[ServerThread] = []

    def start(settlement: str = "http://127.0.0.1:9", bench_class: type[Bench] = Bench,
              session_ttl: str = "24h", **efinance: Any) -> Bench:
        settings = load_settings(overrides={
            "urls": {"reference": "http://127.0.0.1:9", "settlement": settlement},
            "card_gateway": {"data_dir": str(tmp_path), "webhook_retry_seconds": [60], "webhook_timeout_seconds": 2,
                             "session_ttl": session_ttl, "efinance": efinance,
                             "senders": [{"id": "9001", "name": "Tahseel test sender", "password": "tahseel-test",
                                          "governorate_code": "01", "service_codes": ["9001"],
                                          "settlement_accounts": ["9001001", SECOND_ACCOUNT]}]},
        })
        server = ServerThread(create_app(settings)).start()
        servers.append(server)
        bench = bench_class(server.url, http, portal)
        bench.admin("clock", {"set": START})
        return bench

    yield start
    for server in servers:
        server.stop()


# --- the tests ------------------------------------------------------------------------------------
def test_approved_payment_sends_the_encrypted_silent_call_redirects_and_feeds_settlement(
        start_bench, portal, settlement_url, http):
    bench = start_bench(settlement=settlement_url)
    srn = srn_of(0xC0FFEE)
    number, session_id = bench.initiate(srn, amounts=("100.00", "50.50"), accounts=("9001001", SECOND_ACCOUNT))

    paid = bench.pay(session_id)
    # The browser goes back to PaymentConfirmationRedirectUrl (its own query kept; what is added is assumed).
    assert paid.status_code == 303
    location = urlsplit(paid.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://portal.example/efinance/back"
    query = parse_qs(location.query)
    assert query["order"] == ["7"]
    assert (query["SenderRequestNumber"], query["PaymentRequestNumber"], query["IsConfirmed"]) == (
        [srn], [number], ["true"])
    assert portal.calls == []  # never in the request thread: due work runs on the tick

    bench.admin("tick")

    [call] = portal.calls
    assert call["content_type"].startswith("application/x-www-form-urlencoded")
    form = {name: values[0] for name, values in call["form"].items()}
    assert set(form) == {"SenderID", "SenderRequestNumber", "RequestObject", "Signature"}
    assert (form["SenderID"], form["SenderRequestNumber"]) == ("9001", srn)
    assert form["Signature"] == hashlib.sha256(form["RequestObject"].encode()).hexdigest()  # assumed default
    key, iv = bench.sender.secrets[srn]  # the key and IV this test chose for the request
    confirmation = decrypt(form["RequestObject"], key, iv)
    assert tuple(confirmation) == CONFIRMATION_FIELDS
    assert confirmation["SenderRequestNumber"] == srn
    assert confirmation["PaymentRequestNumber"] == number
    assert confirmation["PaymentRequestTotalAmount"] == "150.50"
    assert confirmation["CollectionFeesAmount"] == "0.00"
    assert confirmation["CustomerAuthorizationAmount"] == "150.50"
    assert re.fullmatch(r"[0-9]{6}", confirmation["AuthorizationCode"])
    assert confirmation["TransactionNumber"]
    assert (confirmation["AuthorizingMechanism"], confirmation["AuthorizingInstitution"]) == ("Card", "Visa")
    assert confirmation["AuthoriztionDateTime"] == "2026-12-03 12:00:00"  # Cairo time (format assumed)
    assert confirmation["ReconciliationDate"] == "2026-12-03"  # Thursday: a Cairo business day
    assert confirmation["IsConfirmed"] == "true"

    # Acknowledged: delivered on the first attempt and never sent again.
    log = bench.log(number)
    assert [(c["state"], c["is_confirmed"]) for c in log["confirmations"]] == [("delivered", True)]
    assert [(a["attempt"], a["status"], a["outcome"]) for a in log["attempts"]] == [(1, 200, "delivered")]
    bench.admin("clock", {"advance": "1d"})
    assert len(portal.calls) == 1

    # Settlement: one line per settlement account line, in governorate 01's batch of the business date.
    assert [(d["state"], d["settlement_account_code"]) for d in log["settlement_feed"]] == [
        ("delivered", "9001001"), ("delivered", SECOND_ACCOUNT)]
    batch = http.get(f"{settlement_url}/api/batches/B-01-20261203").json()
    assert batch["amount"] == "150.50"
    transaction = confirmation["TransactionNumber"]
    assert sorted((line["collection_id"], line["amount"]) for line in batch["lines"]) == [
        (f"card:{transaction}:1", "100.00"), (f"card:{transaction}:2", "50.50")]
    assert {line["bill_reference"] for line in batch["lines"]} == {number}


def test_an_answer_without_response_code_000_is_retried_on_the_schedule_then_given_up(start_bench, portal):
    portal.acknowledge = False  # 200 OK, but not the acknowledgement FACTS names
    bench = start_bench()
    number, session_id = bench.initiate(srn_of(0xBAD))
    bench.pay(session_id)
    bench.admin("tick")
    assert len(portal.calls) == 1
    for n, wait in enumerate(SCHEDULE, start=2):
        bench.admin("clock", {"advance": f"{wait - 1}s"})
        assert len(portal.calls) == n - 1, f"retry {n} came early"
        bench.admin("clock", {"advance": "1s"})
        assert len(portal.calls) == n, f"retry {n} did not come after {wait}s"
    bench.admin("clock", {"advance": "7d"})
    assert len(portal.calls) == 1 + len(SCHEDULE)
    assert len({call["raw"] for call in portal.calls}) == 1  # every retry carries the same confirmation

    log = bench.log(number)
    [confirmation] = log["confirmations"]
    assert confirmation["state"] == "gave_up" and confirmation["gave_up_at"] is not None
    assert [a["outcome"] for a in log["attempts"]] == ["not_acknowledged"] * (1 + len(SCHEDULE))
    listed = bench.http.get(f"{bench.url}/api/efinance/confirmations", params={"state": "gave_up"}).json()
    assert [(c["payment_request_number"], c["id"]) for c in listed["confirmations"]] == [
        (number, confirmation["id"])]


def test_a_duplicate_out_fault_delivers_the_same_confirmation_twice(start_bench, portal):
    bench = start_bench()
    number, session_id = bench.initiate(srn_of(0xD0D0))
    bench.admin("faults", {"direction": "out", "kind": "duplicate", "target": "reference", "count": 1})
    bench.pay(session_id)
    bench.admin("tick")
    first, second = portal.calls
    assert first["raw"] == second["raw"]
    log = bench.log(number)
    assert [c["state"] for c in log["confirmations"]] == ["delivered"] and len(log["attempts"]) == 1


def test_a_decline_is_notified_with_is_confirmed_false_and_a_later_approval_too(start_bench, portal):
    bench = start_bench()
    srn = srn_of(0xDEC)
    number, session_id = bench.initiate(srn)
    declined = bench.pay(session_id, card="4000000000000002")
    assert parse_qs(urlsplit(declined.headers["Location"]).query)["IsConfirmed"] == ["false"]
    bench.admin("tick")
    approved = bench.pay(session_id)
    assert parse_qs(urlsplit(approved.headers["Location"]).query)["IsConfirmed"] == ["true"]
    bench.admin("tick")

    key, iv = bench.sender.secrets[srn]
    first, second = (decrypt(call["form"]["RequestObject"][0], key, iv) for call in portal.calls)
    assert (first["IsConfirmed"], first["AuthorizationCode"], first["TransactionNumber"]) == ("false", "", "")
    assert first["PaymentRequestNumber"] == second["PaymentRequestNumber"] == number
    assert second["IsConfirmed"] == "true" and second["TransactionNumber"]
    log = bench.log(number)
    assert [c["is_confirmed"] for c in log["confirmations"]] == [False, True]
    assert len(log["settlement_feed"]) == 1  # only the approval is money to settle


def test_signature_none_sends_an_empty_signature(start_bench, portal):
    bench = start_bench(signature="none")
    _, session_id = bench.initiate(srn_of(0x515))
    bench.pay(session_id)
    bench.admin("tick")
    [call] = portal.calls
    assert call["form"]["Signature"] == [""]
    unknown = bench.http.get(f"{bench.url}/api/efinance/requests/000000000000")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "PAYMENT_REQUEST_NOT_FOUND"


def test_the_settlement_line_fits_the_collections_contract(start_bench, receiver, portal):
    bench = start_bench(settlement=receiver.url)
    number, session_id = bench.initiate(srn_of(0x5E7))
    bench.pay(session_id, card="5078031234567890")
    bench.admin("tick")
    [line] = receiver.on("/api/collections")
    body = json.loads(line["body"])
    validate("st-collection.schema.json", body)
    assert (body["governorate_code"], body["bill_reference"], body["amount"], body["settlement_account_code"]) == (
        "01", number, "150.00", "9001001")
    # e-finance's own fields of the detailed settlement file (issue 5)
    assert (body["payment_request_number"], body["sender_request_number"], body["mechanism"]) == (
        number, srn_of(0x5E7), "Meeza")
    key, iv = bench.sender.secrets[srn_of(0x5E7)]
    confirmation = decrypt(portal.calls[0]["form"]["RequestObject"][0], key, iv)
    assert (confirmation["AuthorizingMechanism"], confirmation["AuthorizingInstitution"]) == ("Meeza", "Meeza")


def test_redirect_parameters_replace_the_urls_own_of_the_same_name() -> None:
    from urllib.parse import parse_qs, urlsplit

    from simulators.card_gateway.views import _with_query

    url = _with_query("https://portal.example/back?IsConfirmed=true&status=APPROVED&x=1",
                      IsConfirmed="false", status="DECLINED")
    query = parse_qs(urlsplit(url).query)
    assert query == {"x": ["1"], "IsConfirmed": ["false"], "status": ["DECLINED"]}
