"""HTTP-level refusals on the e-finance paths in the protocol's shape, and the settings schema.

A sender's client parses XML and a citizen's browser shows a page: a wrong method (405) or a body
over 1 MiB (413) on the protocol's paths must come back as XML with a ResponseCode (or as the
refusal page on the initiation page), never the common JSON error. In-process (the test client):
the answer's shape is what matters here, not the socket. The codes (116, 117) are assumed and looked
up by name in ``contracts/efinance-response-codes.yaml``.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from simulators.common.config import load_settings
from simulators.common.contracts import load_contract
from simulators.common.errors import ValidationFailed

from .test_efinance_initiation import PAGE_PATH, S2S_PATH, app, client, sessions  # noqa: F401  (fixtures)

CODES = {row["name"]: str(row["code"]) for row in load_contract("efinance-response-codes.yaml")["codes"]}
XML_PATHS = {
    S2S_PATH: "PaymentRequestInitiationRes",
    "/CardPaymentRequestIntiation/StatusInquiry": "PaymentRequestStatusRes",
    "/CardPaymentRequestIntiation/Refund": "PaymentRequestRefundRes",
    "/CardPaymentRequestIntiation/Cancel": "PaymentRequestCancelRes",
}
TOO_LARGE = b"SenderID=9001&RequestObject=" + b"A" * (1_048_576 + 1)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def xml_fields(response: Any, root: str) -> dict[str, str]:
    assert response.headers["Content-Type"].startswith("application/xml"), response.data[:200]
    document = ET.fromstring(response.data)
    assert document.tag == root
    return {child.tag: child.text or "" for child in document}


@pytest.mark.parametrize(("path", "root"), sorted(XML_PATHS.items()))
def test_a_wrong_method_on_an_xml_endpoint_is_xml_with_a_response_code(client, path, root):  # noqa: F811
    for method in ("GET", "PUT", "DELETE"):
        response = client.open(path, method=method, query_string={"LanguageId": "en"})
        assert response.status_code == 405
        fields = xml_fields(response, root)
        assert fields["ResponseCode"] == CODES["METHOD_NOT_ALLOWED"]
        assert fields["ResponseMessage"] == "This call does not take that HTTP method"  # LanguageId en
        assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize(("path", "root"), sorted(XML_PATHS.items()))
def test_a_body_over_one_mib_on_an_xml_endpoint_is_xml_with_a_response_code(client, app, path, root):  # noqa: F811
    response = client.post(path, data=TOO_LARGE, headers=FORM)
    assert response.status_code == 413
    fields = xml_fields(response, root)
    assert fields["ResponseCode"] == CODES["BODY_TOO_LARGE"]
    assert fields["ResponseMessage"]  # Arabic by default
    journal = app.extensions["tahseel"].journal.entries(path=path)
    assert [entry.status for entry in journal] == [413]


def test_the_initiation_page_answers_405_and_413_with_the_refusal_page(client, app):  # noqa: F811
    wrong = client.put(PAGE_PATH)
    assert wrong.status_code == 405 and wrong.headers["Content-Type"].startswith("text/html")
    assert f'id="response-code">{CODES["METHOD_NOT_ALLOWED"]}<' in wrong.get_data(as_text=True)
    assert set(wrong.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    large = client.post(PAGE_PATH, data=TOO_LARGE, headers=FORM, query_string={"LanguageId": "en"})
    assert large.status_code == 413 and large.headers["Content-Type"].startswith("text/html")
    html = large.get_data(as_text=True)
    assert f'id="response-code">{CODES["BODY_TOO_LARGE"]}<' in html and 'lang="en"' in html
    assert sessions(app) == {}  # nothing was created


def test_other_paths_keep_the_common_json_errors(client):  # noqa: F811
    wrong = client.get(f"/api/efinance/requests/{'1' * 12}/refunds")
    assert wrong.status_code == 405 and wrong.get_json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    large = client.post(f"/api/efinance/requests/{'1' * 12}/refunds", data=b"{" + b" " * 1_048_577 + b"}",
                        headers={"Content-Type": "application/json"})
    assert large.status_code == 413 and large.get_json()["error"]["field"] == "body"
    assert client.get("/no/such/path").get_json()["error"]["code"] == "NOT_FOUND"


# --- card_gateway settings in contracts/settings.schema.json ---------------------------------------
SENDER = {"id": "9002", "name": "Giza portal", "password": "giza-test", "governorate_code": "21",
          "service_codes": ["9002"], "settlement_accounts": ["9002001"]}


def with_sender(**changes: Any) -> dict[str, Any]:
    sender = {**SENDER, **changes}
    return {"card_gateway": {"senders": [sender]}}


def test_the_shipped_settings_and_another_well_formed_sender_are_valid():
    shipped = load_settings()
    assert "9001" in [s["id"] for s in shipped["card_gateway"]["senders"]]
    assert shipped["card_gateway"]["efinance"]["notify_refunds"] is True
    load_settings(overrides=with_sender())


@pytest.mark.parametrize(("overrides", "field"), [
    (with_sender(password=""), "card_gateway.senders.0.password"),
    (with_sender(id=9002), "card_gateway.senders.0.id"),
    (with_sender(governorate_code="99"), "card_gateway.senders.0.governorate_code"),
    (with_sender(service_codes=[]), "card_gateway.senders.0.service_codes"),
    (with_sender(settlement_accounts=["9002 001"]), "card_gateway.senders.0.settlement_accounts.0"),
    (with_sender(pasword="typo"), "card_gateway.senders.0.pasword"),
    ({"card_gateway": {"senders": [{k: v for k, v in SENDER.items() if k != "password"}]}},
     "card_gateway.senders.0.password"),
    ({"card_gateway": {"efinance": {"signature": "hmac"}}}, "card_gateway.efinance.signature"),
    ({"card_gateway": {"efinance": {"notify_refunds": "yes"}}}, "card_gateway.efinance.notify_refunds"),
    ({"card_gateway": {"efinance": {"notify_refund": True}}}, "card_gateway.efinance.notify_refund"),
    ({"card_gateway": {"efinance": {"confirmation_retry_seconds": []}}},
     "card_gateway.efinance.confirmation_retry_seconds"),
    ({"card_gateway": {"efinance": {"refund_path": "Refund"}}}, "card_gateway.efinance.refund_path"),
    ({"card_gateway": {"efinance": {"status_vocabulary": "fawry"}}}, "card_gateway.efinance.status_vocabulary"),
    ({"card_gateway": {"three_ds": {"otp_tries": 0}}}, "card_gateway.three_ds.otp_tries"),
    ({"card_gateway": {"three_ds": {"otp": "12ab"}}}, "card_gateway.three_ds.otp"),
    ({"card_gateway": {"three_ds": {"challenge_secs": 300}}}, "card_gateway.three_ds.challenge_secs"),
])
def test_bad_card_gateway_settings_are_refused_naming_the_field(overrides, field):
    with pytest.raises(ValidationFailed) as refused:
        load_settings(overrides=copy.deepcopy(overrides))
    assert refused.value.field == field


def test_two_senders_with_one_id_are_refused_when_the_gateway_starts(tmp_path):
    from simulators.card_gateway.app import create_app

    settings = load_settings(overrides={"card_gateway": {"data_dir": str(tmp_path), "senders": [SENDER, SENDER]}})
    with pytest.raises(ValueError, match="same id"):
        create_app(settings)

