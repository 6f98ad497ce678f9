"""e-finance payment request initiation, tested from docs/domain-facts.md alone.

The sender below is written from the FACTS text only (not from the simulator's code): it builds the
``PaymentRequestInitiationReq`` XML (declared utf-16, bytes UTF-8, as published senders do),
encrypts it with a fresh AES-256-CBC key and IV, RSA-encrypts the base64 text of key‖IV and the
password under the certificate fetched from ``GET /_admin/certificate``, and hashes the
``RequestObject`` text with SHA-256 (lowercase hex).
"""

from __future__ import annotations

import base64
import hashlib
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import escape

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import Flask

from simulators.card_gateway.app import create_app
from simulators.common.clock import parse_instant
from simulators.common.config import load_settings
from simulators.common.server import ServerThread

START = "2026-12-03T12:00:00+02:00"  # Thursday, Cairo
TOMORROW = "2026-12-04"
SENDER_ID, PASSWORD, SERVICE_CODE, ACCOUNT = "9001", "tahseel-test", "9001", "9001001"
PAGE_PATH = "/CardPaymentRequestIntiation/index"
S2S_PATH = "/CardPaymentRequestIntiation/ServerToServer"
REFUSING_URL = "http://127.0.0.1:9"


# --- a sender written from FACTS.md ---------------------------------------------------------------
def request_xml(srn: str, *, amounts: tuple[str, ...] = ("150.00",), account: str = ACCOUNT,
                currency: str = "818", expiry: str = TOMORROW, password_b64: str = "",
                sender_id: str = SENDER_ID, description: str = "Building permit renewal",
                accounts: tuple[str, ...] | None = None,
                confirmation_url: str = "https://portal.example/efinance/confirm",
                redirect_url: str = "https://portal.example/efinance/back") -> str:
    codes = accounts if accounts is not None else (account,) * len(amounts)  # one account per line
    lines = "".join(
        f"<SettlementAmounts><SettlementAccountCode>{code}</SettlementAccountCode>"
        f"<SettlementAmountsDescription>Line {i}</SettlementAmountsDescription><Amount>{amount}</Amount>"
        f"</SettlementAmounts>" for i, (amount, code) in enumerate(zip(amounts, codes, strict=True)))
    return (
        '<?xml version="1.0" encoding="utf-16"?>'
        '<PaymentRequestInitiationReq xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<Sender><Id>{sender_id}</Id><Name>Governorate portal</Name>"
        f"<RandomValue>{os.urandom(16).hex()}</RandomValue><Password>{password_b64}</Password></Sender>"
        f"<SettlementAmounts>{lines}</SettlementAmounts>"
        f"<SenderRequestNumber>{srn}</SenderRequestNumber><SenderInvoiceNumber>INV-77</SenderInvoiceNumber>"
        f"<ServiceCode>{SERVICE_CODE}</ServiceCode>"
        f"<RequestInitiationDescription>{description}</RequestInitiationDescription>"
        f"<Currency>{currency}</Currency><IP>10.0.0.7</IP>"
        "<PaymentMechanism><Type>NotSet</Type><MechanismType>NotSet</MechanismType><Channel /></PaymentMechanism>"
        f"<ExpiryDate>{expiry}</ExpiryDate>"
        f"<PaymentConfirmationUrl>{escape(confirmation_url)}</PaymentConfirmationUrl>"
        f"<PaymentConfirmationRedirectUrl>{escape(redirect_url)}</PaymentConfirmationRedirectUrl>"
        "<UserUniqueIdentifier>a1b2c3d4</UserUniqueIdentifier>"
        "</PaymentRequestInitiationReq>"
    )


class Sender:
    def __init__(self, certificate_pem: bytes) -> None:
        self.public_key = x509.load_pem_x509_certificate(certificate_pem).public_key()
        self.secrets: dict[str, tuple[bytes, bytes]] = {}  # kept per SenderRequestNumber (FACTS)

    def rsa(self, data: bytes) -> str:
        return base64.b64encode(self.public_key.encrypt(data, PKCS1v15())).decode()  # type: ignore[union-attr]

    def fields(self, srn: str, *, password: str = PASSWORD, xml: str | None = None, sender_id: str = SENDER_ID,
               encoding: str = "utf-8", **xml_changes: Any) -> dict[str, str]:
        key, iv = os.urandom(32), os.urandom(16)
        self.secrets[srn] = (key, iv)
        text = xml if xml is not None else request_xml(srn, password_b64=self.rsa(password.encode()), **xml_changes)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(text.encode(encoding)) + padder.finalize()
        encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        request_object = base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()
        return {
            "SenderID": sender_id,
            "RandomSecret": self.rsa(base64.b64encode(key + iv)),  # the base64 TEXT of key‖IV
            "RequestObject": request_object,
            "HashedRequestObject": hashlib.sha256(request_object.encode()).hexdigest(),
        }


def srn_of(n: int) -> str:
    return f"{n:016x}"


# --- fixtures -------------------------------------------------------------------------------------
def settings(data_dir: Any) -> dict[str, Any]:
    return load_settings(overrides={
        "urls": {"reference": REFUSING_URL, "settlement": REFUSING_URL},
        "card_gateway": {"data_dir": str(data_dir), "webhook_retry_seconds": [60], "webhook_timeout_seconds": 2},
    })


@pytest.fixture
def app(tmp_path: Any) -> Iterator[Flask]:
    app = create_app(settings(tmp_path))
    app.extensions["tahseel"].clock.set(parse_instant(START))
    yield app
    app.extensions["tahseel"].stop()


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


@pytest.fixture
def sender(client: Any) -> Sender:
    response = client.get("/_admin/certificate")
    assert response.status_code == 200
    return Sender(response.data)


@pytest.fixture
def live(tmp_path: Any) -> Iterator[tuple[str, requests.Session]]:
    server = ServerThread(create_app(settings(tmp_path))).start()
    http = requests.Session()
    http.trust_env = False
    try:
        assert http.post(f"{server.url}/_admin/clock", json={"set": START}).status_code == 200
        yield server.url, http
    finally:
        http.close()
        server.stop()


def sessions(app: Flask) -> dict[str, Any]:
    return app.extensions["card_gateway_efinance"].model._sessions


def parse_response(body: bytes) -> dict[str, str]:
    root = ET.fromstring(body)
    assert root.tag == "PaymentRequestInitiationRes"
    return {child.tag: child.text or "" for child in root}


# --- server to server on a real socket ------------------------------------------------------------
def test_server_to_server_initiation_over_loopback_answers_000_and_a_payment_request_number(live):
    url, http = live
    cert = http.get(f"{url}/_admin/certificate")
    assert cert.status_code == 200 and cert.text.startswith("-----BEGIN CERTIFICATE-----")
    portal = Sender(cert.content)
    srn = srn_of(0xABC)
    response = http.post(f"{url}{S2S_PATH}", data=portal.fields(srn, amounts=("100", "50.5")))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/xml")
    res = parse_response(response.content)
    assert res["ResponseCode"] == "000"
    assert res["OriginalSenderRequestNumber"] == srn
    assert res["PaymentRequestNumber"].isdigit()
    assert res["Currency"] == "818"
    assert res["OriginalPaymentRequestAmount"] == "150.50"
    assert res["CollectionFeesAmount"] == "0.00"
    assert res["TotalAuthorizationAmount"] == "150.50"


def test_server_to_server_rejection_is_xml_with_the_code_and_a_4xx(live):
    url, http = live
    portal = Sender(http.get(f"{url}/_admin/certificate").content)
    response = http.post(f"{url}{S2S_PATH}", data=portal.fields(srn_of(1), password="wrong"))
    assert response.status_code == 401
    res = parse_response(response.content)
    assert res["ResponseCode"] == "102" and res["PaymentRequestNumber"] == ""


def test_same_request_again_gets_the_same_payment_request_number_another_request_is_refused(client, sender, app):
    srn = srn_of(7)
    first = parse_response(client.post(S2S_PATH, data=sender.fields(srn)).data)
    again = parse_response(client.post(S2S_PATH, data=sender.fields(srn)).data)  # fresh key, IV, password cipher
    assert first["ResponseCode"] == again["ResponseCode"] == "000"
    assert again["PaymentRequestNumber"] == first["PaymentRequestNumber"]
    assert len(sessions(app)) == 1
    other = client.post(S2S_PATH, data=sender.fields(srn, amounts=("999.00",)))
    assert other.status_code == 409
    assert parse_response(other.data)["ResponseCode"] == "126"
    assert len(sessions(app)) == 1
    # the browser path shares the index: the same request shows the same session's page
    page = client.post(PAGE_PATH, data=sender.fields(srn))
    assert page.status_code == 200 and page.headers["X-Payment-Request-Number"] == first["PaymentRequestNumber"]


def test_the_gateway_keeps_the_senders_latest_key_and_iv_per_sender_request_number(client, sender, app):
    srn = srn_of(8)
    client.post(S2S_PATH, data=sender.fields(srn))
    kept = app.extensions["card_gateway_efinance"].get_request(SENDER_ID, srn)
    assert (kept.key, kept.iv) == sender.secrets[srn]


# --- the browser's initiation page ----------------------------------------------------------------
def test_initiation_page_renders_the_hosted_page_in_arabic_by_default_with_the_amount(client, sender, app):
    response = client.post(PAGE_PATH, data=sender.fields(srn_of(21), amounts=("100.00", "25.75")))
    assert response.status_code == 200, response.data
    html = response.get_data(as_text=True)
    assert 'dir="rtl"' in html and 'lang="ar"' in html
    assert 'id="amount">125.75' in html
    assert "INV-77" in html and "Line 1" in html  # the bill as the citizen knows it (SenderInvoiceNumber), the lines
    (session,) = sessions(app).values()
    assert session.amount == 12575 and session.merchant_reference == "INV-77"
    assert f'action="/pay/{session.session_id}' in html


def test_initiation_page_in_english_when_language_id_says_so_and_by_query_string(client, sender):
    fields = dict(sender.fields(srn_of(22)), LanguageId="en")
    response = client.get(PAGE_PATH, query_string=fields)  # the fields may travel as a query string
    assert response.status_code == 200, response.data
    html = response.get_data(as_text=True)
    assert 'dir="ltr"' in html and 'lang="en"' in html and "Amount" in html
    assert 'id="amount">150.00' in html


def test_the_utf16_declaration_over_utf8_bytes_is_accepted_and_so_is_a_plain_utf8_one(client, sender):
    srn = srn_of(23)
    quirky = request_xml(srn, password_b64=sender.rsa(PASSWORD.encode()), description="تجديد ترخيص")
    assert quirky.startswith('<?xml version="1.0" encoding="utf-16"?>')
    response = client.post(S2S_PATH, data=sender.fields(srn, xml=quirky))
    assert parse_response(response.data)["ResponseCode"] == "000"
    plain = quirky.replace('encoding="utf-16"', 'encoding="utf-8"').replace(srn, srn_of(24))
    answer = client.post(S2S_PATH, data=sender.fields(srn_of(24), xml=plain))
    assert parse_response(answer.data)["ResponseCode"] == "000"


def test_a_dtd_in_utf16_without_a_byte_order_mark_is_refused_like_any_dtd(client, sender, app):
    # A breaker's case: UTF-16LE bytes without a BOM decoded "as UTF-8" hid the DOCTYPE from the check,
    # and expat, guessing UTF-16 from the bytes, expanded the entity onto the hosted page.
    srn = srn_of(26)
    xml = request_xml(srn, password_b64=sender.rsa(PASSWORD.encode()), description="&x;").replace(
        "<PaymentRequestInitiationReq ", '<!DOCTYPE PaymentRequestInitiationReq [<!ENTITY x "EXPANDED">]>'
        "<PaymentRequestInitiationReq ", 1)
    for encoding in ("utf-16-le", "utf-16-be", "utf-16"):  # "utf-16" writes a BOM
        answer = parse_response(client.post(S2S_PATH, data=sender.fields(srn, xml=xml, encoding=encoding)).data)
        assert answer["ResponseCode"] == "113", (encoding, answer)
    assert sessions(app) == {}


def test_paying_an_efinance_session_redirects_to_the_confirmation_redirect_url(client, sender, app):
    client.post(PAGE_PATH, data=sender.fields(srn_of(25)))
    (session,) = sessions(app).values()
    paid = client.post(f"/pay/{session.session_id}", data={"card_number": "4111111111111111", "expiry": "12/30",
                                                            "cvv": "123", "cardholder": "Mona"})
    assert paid.status_code == 303
    assert paid.headers["Location"].startswith("https://portal.example/efinance/back?")
    again = client.post(PAGE_PATH, data=sender.fields(srn_of(25)))
    assert again.status_code == 409 and 'id="response-code">130<' in again.get_data(as_text=True)


# --- every refusal: an HTML page with ResponseCode and ResponseMessage, a 4xx, no session ---------
def _tamper_hash(f: dict[str, str]) -> dict[str, str]:
    return dict(f, HashedRequestObject=hashlib.sha256(b"something else").hexdigest())


def _undecryptable_secret(f: dict[str, str]) -> dict[str, str]:
    return dict(f, RandomSecret=base64.b64encode(os.urandom(256)).decode())


REFUSALS = [
    ("wrong hash", lambda s: _tamper_hash(s.fields(srn_of(31))), "110", 400),
    ("wrong password", lambda s: s.fields(srn_of(32), password="not-the-password"), "102", 401),
    ("unknown sender", lambda s: s.fields(srn_of(33), sender_id="4242"), "101", 401),
    ("currency 840", lambda s: s.fields(srn_of(34), currency="840"), "120", 422),
    ("amounts zero", lambda s: s.fields(srn_of(35), amounts=("0.00",)), "122", 422),
    ("unknown settlement account", lambda s: s.fields(srn_of(36), account="7777777"), "123", 422),
    ("expired date", lambda s: s.fields(srn_of(37), expiry="2026-12-02"), "125", 422),
    ("malformed XML", lambda s: s.fields(srn_of(38), xml="<PaymentRequestInitiationReq><Sender>"), "113", 400),
    ("undecryptable secret", lambda s: _undecryptable_secret(s.fields(srn_of(39))), "111", 400),
    ("amount with three decimals", lambda s: s.fields(srn_of(40), amounts=("1.005",)), "121", 422),
    ("missing field", lambda s: {k: v for k, v in s.fields(srn_of(41)).items() if k != "RequestObject"}, "114", 400),
    ("bad expiry format", lambda s: s.fields(srn_of(42), expiry="04/12/2026"), "115", 422),
    ("entity declaration", lambda s: s.fields(srn_of(43), xml='<?xml version="1.0"?><!DOCTYPE a ['
                                               '<!ENTITY x "y">]><PaymentRequestInitiationReq/>'), "113", 400),
    # found by a breaker: the last date Python holds overflowed one day later (a 500)
    ("expiry at the end of time", lambda s: s.fields(srn_of(44), expiry="9999-12-31"), "115", 422),
    ("namespaced root", lambda s: s.fields(srn_of(45), xml='<PaymentRequestInitiationReq xmlns="urn:evil">'
                                                            '<SenderRequestNumber/></PaymentRequestInitiationReq>'),
     "113", 400),
]


@pytest.mark.parametrize(("case", "build", "code", "status"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_each_refusal_is_a_page_with_its_response_code_a_4xx_and_no_session(client, sender, app, case, build,
                                                                             code, status):
    response = client.post(PAGE_PATH, data=build(sender))
    assert response.status_code == status, response.data
    assert response.headers["Content-Type"].startswith("text/html")
    html = response.get_data(as_text=True)
    assert f'id="response-code">{code}<' in html
    assert 'id="response-message">' in html and "Traceback" not in html
    assert sessions(app) == {}


def test_refusal_page_in_english_on_request(client, sender):
    response = client.post(PAGE_PATH, data=dict(sender.fields(srn_of(50), password="x"), LanguageId="en"))
    html = response.get_data(as_text=True)
    assert response.status_code == 401 and 'dir="ltr"' in html and "Wrong sender password" in html


# --- the gateway's identity -----------------------------------------------------------------------
def test_key_pair_is_created_once_and_kept_across_two_apps_on_the_same_data_dir(tmp_path):
    first = create_app(settings(tmp_path))
    second = create_app(settings(tmp_path))
    try:
        pem_1 = first.test_client().get("/_admin/certificate").data
        pem_2 = second.test_client().get("/_admin/certificate").data
        assert pem_1 == pem_2 and pem_1.startswith(b"-----BEGIN CERTIFICATE-----")
        assert (tmp_path / "gateway" / "private-key.pem").stat().st_mode & 0o077 == 0
        # a request encrypted for the first app's certificate is accepted by the second
        second.extensions["tahseel"].clock.set(parse_instant(START))
        portal = Sender(pem_1)
        answer = parse_response(second.test_client().post(S2S_PATH, data=portal.fields(srn_of(60))).data)
        assert answer["ResponseCode"] == "000"
    finally:
        first.extensions["tahseel"].stop()
        second.extensions["tahseel"].stop()
    other = create_app(settings(tmp_path / "elsewhere"))
    try:
        assert other.test_client().get("/_admin/certificate").data != pem_1
    finally:
        other.extensions["tahseel"].stop()
