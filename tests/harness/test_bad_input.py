"""Bad input of any kind, on every state-changing endpoint of every party, gets a 4xx with an error
code and changes nothing: malformed JSON, a wrong signature, an unknown bill reference, a negative
amount."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from harness.stack import Stack
from simulators.common.clock import parse_instant
from simulators.common.http import encode_json
from simulators.common.signing import sign_headers

NOW = "2026-12-07T10:00:00+02:00"
UNKNOWN_BILL = "999999999999"

# party, path, secret that signs it (None: unsigned), extra headers
ENDPOINTS: list[tuple[str, str, str | None]] = [
    ("reference", "/api/orders", None),
    ("reference", "/api/orders/{bill}/card-payments", None),
    ("reference", "/webhooks/card-gateway", "card_gateway_webhook"),
    ("reference", "/khales/inquiry", "khales_biller"),
    ("reference", "/khales/payments", "khales_biller"),
    ("reference", "/khales/reversals", "khales_biller"),
    ("reference", "/settlement/notices", "settlement_notice"),
    ("citizen_services", "/api/service-requests", None),
    ("citizen_services", "/api/payment-confirmations", "citizen_services_api"),
    ("citizen_services", "/api/payment-cancellations", "citizen_services_api"),
    ("card_gateway", "/api/sessions", "card_gateway_merchant"),
    ("khales", "/api/outlet-payments", None),
    ("settlement", "/api/collections", "collections_feed"),
]


@pytest.fixture
def world(stack: Stack) -> dict[str, Any]:
    """Reset parties at a fixed simulated time, with one unpaid order to protect."""
    session = requests.Session()
    for url in stack.urls.values():
        session.post(url + "/_admin/reset").raise_for_status()
        session.post(url + "/_admin/clock", json={"set": NOW}).raise_for_status()
    request = session.post(stack.urls["citizen_services"] + "/api/service-requests",
                           json={"governorate_code": "01", "service_code": "CTC"}).json()
    order = session.post(stack.urls["reference"] + "/api/orders",
                         json={"request_number": request["request_number"]}).json()
    return {"session": session, "urls": stack.urls, "settings": stack.settings, "order": order,
            "request": request}


def post(world: dict[str, Any], party: str, path: str, body: bytes, secret: str | None,
         tamper: bool = False) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if party == "card_gateway":
        headers["X-Merchant-Id"] = world["settings"]["card_gateway"]["merchant_id"]
    if secret:
        key = world["settings"]["secrets"][secret] + ("x" if tamper else "")
        headers.update(sign_headers(key, body, parse_instant(NOW)))
    path = path.format(bill=world["order"]["bill_reference"])
    return world["session"].post(world["urls"][party] + path, data=body, headers=headers)


def state(world: dict[str, Any]) -> dict[str, Any]:
    """What bad input must not change: the order, the confirmations, the settlement batches."""
    s, u = world["session"], world["urls"]
    return {
        "order": s.get(u["reference"] + f"/api/orders/{world['order']['bill_reference']}").json(),
        "confirmations": s.get(u["citizen_services"] + "/api/payment-confirmations").json(),
        "request": s.get(u["citizen_services"] + f"/api/service-requests/{world['request']['request_number']}").json(),
        "batches": s.get(u["settlement"] + "/api/batches").json(),
        "khales": s.get(u["khales"] + "/api/transactions").json(),
    }


def assert_error(response: requests.Response, statuses: tuple[int, ...]) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert error["code"] and error["message"]
    return error


@pytest.mark.parametrize(("party", "path", "secret"), ENDPOINTS, ids=[f"{p}{e}" for p, e, _ in ENDPOINTS])
def test_malformed_json_and_wrong_signature(world: dict[str, Any], party: str, path: str, secret: str | None) -> None:
    before = state(world)
    error = assert_error(post(world, party, path, b'{"amount": "1.00",', secret), (400,))
    assert error["field"] == "body"
    if secret:
        valid_body = encode_json({"bill_reference": world["order"]["bill_reference"]})
        error = assert_error(post(world, party, path, valid_body, secret, tamper=True), (401,))
        assert error["field"].startswith("X-Tahseel")
        unsigned = world["session"].post(world["urls"][party] + path, data=valid_body,
                                         headers={"Content-Type": "application/json"})
        assert_error(unsigned, (401,))
    assert state(world) == before


def test_unknown_bill_reference(world: dict[str, Any]) -> None:
    before = state(world)
    s, u = world["session"], world["urls"]
    assert_error(s.get(u["reference"] + f"/api/orders/{UNKNOWN_BILL}"), (404,))
    assert_error(s.post(u["reference"] + f"/api/orders/{UNKNOWN_BILL}/card-payments", json={}), (404,))
    inquiry = {"inquiry_id": "KHI1", "bill_reference": UNKNOWN_BILL, "outlet_id": "KH-01-0001"}
    error = assert_error(post(world, "reference", "/khales/inquiry", encode_json(inquiry), "khales_biller"), (404,))
    assert error["field"] == "bill_reference"
    payment = {"khales_transaction_id": "KHT1", "inquiry_id": "KHI1", "bill_reference": UNKNOWN_BILL,
               "amount": "27.00", "currency": "EGP", "outlet_id": "KH-01-0001", "paid_at": "2026-12-07T08:00:00Z"}
    assert_error(post(world, "reference", "/khales/payments", encode_json(payment), "khales_biller"), (404,))
    outlet = s.post(u["khales"] + "/api/outlet-payments", json={"bill_reference": UNKNOWN_BILL})
    assert outlet.status_code in (201, 404, 409, 422)
    if outlet.status_code == 201:  # the outlet records a refused transaction, never a paid one
        assert outlet.json()["status"] == "REFUSED"
    after = state(world)
    assert after["order"] == before["order"] and after["confirmations"] == before["confirmations"]
    assert after["batches"] == before["batches"]


def test_negative_and_malformed_amounts(world: dict[str, Any]) -> None:
    before = state(world)
    bill = world["order"]["bill_reference"]
    for amount in ("-27.00", "27.001", 27.0):
        payment = {"khales_transaction_id": "KHT2", "inquiry_id": "KHI2", "bill_reference": bill,
                   "amount": amount, "currency": "EGP", "outlet_id": "KH-01-0001", "paid_at": "2026-12-07T08:00:00Z"}
        error = assert_error(post(world, "reference", "/khales/payments", encode_json(payment), "khales_biller"),
                             (400, 422))
        assert error["field"] == "amount"
        confirmation = {"payment_id": "PAY-X", "request_number": world["request"]["request_number"],
                        "bill_reference": bill, "amount": amount, "currency": "EGP", "channel": "cash",
                        "paid_at": "2026-12-07T08:00:00Z"}
        assert_error(post(world, "citizen_services", "/api/payment-confirmations", encode_json(confirmation),
                          "citizen_services_api"), (400, 422))
        collection = {"collection_id": "khales:X", "type": "payment", "channel": "cash", "source": "khales",
                      "governorate_code": "01", "bill_reference": bill, "amount": amount, "collection_fee": "0.00",
                      "currency": "EGP", "collected_at": "2026-12-07T08:00:00Z", "transaction_number": "X"}
        assert_error(post(world, "settlement", "/api/collections", encode_json(collection), "collections_feed"),
                     (400, 422))
        session = {"merchant_request_id": "MR1", "merchant_reference": bill, "amount": amount, "currency": "EGP",
                   "return_url": "http://127.0.0.1/r", "webhook_url": "http://127.0.0.1/w",
                   "governorate_code": "01", "service_code": "CTC"}
        assert_error(post(world, "card_gateway", "/api/sessions", encode_json(session), "card_gateway_merchant"),
                     (400, 422))
        assert_error(world["session"].post(world["urls"]["khales"] + "/api/outlet-payments",
                                           json={"bill_reference": bill, "amount": amount}), (400, 422))
    assert state(world) == before
