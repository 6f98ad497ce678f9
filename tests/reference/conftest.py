"""Fixtures for the reference service: the app on a test client, fake upstreams on loopback.

The fakes stand for citizen services and the e-finance gateway as the contracts describe them (and
no more): the reference service must work against anything that honours ``contracts/`` and
docs/domain-facts.md. They run on real sockets (``ServerThread`` on port 0) because the reference
calls them over HTTP. The fake gateway's cryptography is written here again, from FACTS, with its
own key pair: it decrypts what the reference seals, so the reference's client is checked against
an independent implementation, not against itself.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID
from flask import Flask, Response, jsonify, request

from reference.app import create_app
from simulators.common.clock import iso, parse_instant
from simulators.common.config import load_settings
from simulators.common.http import encode_json
from simulators.common.server import ServerThread
from simulators.common.signing import sign_headers

MONDAY_10 = "2026-12-07T10:00:00+02:00"


def make_service_request(number: str = "SR-01-00000001", *, status: str = "ASSESSED",
                    governorate: str = "01") -> dict[str, Any]:
    """A renewal of a building permit: 500.00 base + 250.00 area (BLD) + 105.00 VAT = 855.00."""
    def line(code: str, amount: str, pool: str, chapter: str, item: str, account: str) -> dict[str, str]:
        return {"code": code, "name_ar": f"رسم {code}", "name_en": f"{code} fee", "amount": amount,
                "revenue_pool": pool, "budget_chapter": chapter, "budget_item": item,
                "settlement_account": account}

    return {
        "request_number": number, "status": status, "governorate_code": governorate, "service_code": "BPR",
        "citizen": {"name": "أحمد محمد علي", "national_id": "29001010100015", "mobile": "01012345678"},
        "fee_lines": [line("BASE", "500.00", "BLD", "3", "3-2-1", "0101001"),
                      line("AREA", "250.00", "BLD", "3", "3-2-1", "0101001"),
                      line("VAT", "105.00", "VAT", "1", "1-3-1", "0109001")],
        "total": "855.00", "currency": "EGP", "created_at": "2026-12-01T08:00:00.000Z",
    }


class FakeCitizenServices:
    """Answers service-request inquiries and records confirmations and cancellations."""

    def __init__(self) -> None:
        self.requests: dict[str, dict[str, Any]] = {}
        self.confirmations: list[dict[str, Any]] = []
        self.cancellations: list[dict[str, Any]] = []
        self.confirmation_statuses: list[int] = []  # answers to give first; 201 afterwards
        self.down = False
        self.lock = threading.Lock()
        app = Flask("fake_citizen_services")

        @app.get("/api/service-requests/<number>")
        def get_request(number: str):  # type: ignore[no-untyped-def]
            if self.down:
                return jsonify(error={"code": "DOWN", "message": "down"}), 503
            found = self.requests.get(number)
            if found is None:
                return jsonify(error={"code": "NOT_FOUND", "message": "no such request"}), 404
            return jsonify(found)

        @app.post("/api/payment-confirmations")
        def confirm():  # type: ignore[no-untyped-def]
            with self.lock:
                status = self.confirmation_statuses.pop(0) if self.confirmation_statuses else 201
                self.confirmations.append({"status": status, "body": request.get_json(),
                                           "headers": dict(request.headers), "raw": request.get_data()})
            if status >= 300:
                return jsonify(error={"code": "CONFLICT" if status == 409 else "DOWN", "message": "x"}), status
            body = request.get_json()
            return jsonify(confirmation_id=f"CNF-{body['payment_id']}", payment_id=body["payment_id"],
                           request_number=body["request_number"], status="CONFIRMED",
                           received_at="2026-12-07T08:00:00.000Z"), status

        @app.post("/api/payment-cancellations")
        def cancel():  # type: ignore[no-untyped-def]
            self.cancellations.append(request.get_json())
            return jsonify(status="CANCELLED"), 200

        self.app = app

    def delivered(self) -> list[dict[str, Any]]:
        return [c["body"] for c in self.confirmations if 200 <= c["status"] < 300]


@pytest.fixture(scope="session")
def gateway_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    """One RSA key pair and self-signed certificate (PEM) for every fake gateway of the session."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake e-finance gateway")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, certificate.public_bytes(serialization.Encoding.PEM)


def aes(key: bytes, iv: bytes, data: bytes, *, decrypt: bool) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    if decrypt:
        worker = cipher.decryptor()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(worker.update(data) + worker.finalize()) + unpadder.finalize()
    padder = padding.PKCS7(128).padder()
    worker = cipher.encryptor()
    return worker.update(padder.update(data) + padder.finalize()) + worker.finalize()


class FakeEfinanceGateway:
    """e-finance as FACTS and the card gateway README describe it, seen from the sender: the
    certificate, the status inquiry and the server-to-server initiation; tests decide the answers
    (``statuses``) and send silent calls themselves (``silent_call_form``)."""

    def __init__(self, key: rsa.RSAPrivateKey, certificate_pem: bytes, senders: dict[str, Any]) -> None:
        self.key = key
        self.certificate_pem = certificate_pem
        self.passwords = {row["sender_id"]: row["password"] for row in senders.values()}
        self.statuses: dict[str, dict[str, str]] = {}  # by SenderRequestNumber
        self.inquiries: list[dict[str, str]] = []
        self.initiations: list[dict[str, Any]] = []
        self.down = False
        self.certificate_downloads = 0
        self.refuse_with: str | None = None  # a ResponseCode for the next server-to-server initiation
        self._numbers = itertools.count(100000000001)
        app = Flask("fake_efinance_gateway")

        @app.get("/_admin/certificate")
        def certificate():  # type: ignore[no-untyped-def]
            self.certificate_downloads += 1
            if self.down:
                return Response("down", status=503)
            return Response(self.certificate_pem, mimetype="application/x-pem-file")

        @app.post("/CardPaymentRequestIntiation/StatusInquiry")
        def status_inquiry():  # type: ignore[no-untyped-def]
            form = request.form.to_dict()
            self.inquiries.append(form)
            if self.down:
                return Response("down", status=503)
            if self.rsa_decrypt(form["SenderPassword"]) != self.passwords.get(form["SenderID"], "").encode():
                return self.xml("PaymentRequestStatusRes", [("ResponseCode", "102")], 401)
            found = self.statuses.get(form.get("SenderRequestNumber", ""))
            if found is None:
                return self.xml("PaymentRequestStatusRes", [("ResponseCode", "140")], 404)
            return self.xml("PaymentRequestStatusRes", [*found.items(), ("ResponseCode", "000")])

        @app.post("/CardPaymentRequestIntiation/ServerToServer")
        def server_to_server():  # type: ignore[no-untyped-def]
            if self.down:
                return Response("down", status=503)
            opened = self.unseal(request.form.to_dict())
            self.initiations.append(opened)
            if self.refuse_with:
                code, self.refuse_with = self.refuse_with, None
                return self.xml("PaymentRequestInitiationRes", [("PaymentRequestNumber", ""), ("ResponseCode", code),
                                                                ("ResponseMessage", "refused")], 422)
            number = str(next(self._numbers))
            srn = opened["xml"].findtext("SenderRequestNumber")
            return self.xml("PaymentRequestInitiationRes", [
                ("OriginalSenderRequestNumber", srn), ("PaymentRequestNumber", number), ("Currency", "818"),
                ("ResponseCode", "000"), ("ResponseMessage", "Success")])

        self.app = app

    @staticmethod
    def xml(root: str, fields: list[tuple[str, str]], status: int = 200) -> Response:
        element = ET.Element(root)
        for name, value in fields:
            ET.SubElement(element, name).text = value
        body = b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(element, encoding="utf-8")
        return Response(body, status=status, mimetype="application/xml")

    # --- the gateway's side of FACTS' cryptography ------------------------------------------------
    def rsa_decrypt(self, text: str) -> bytes:
        try:
            return self.key.decrypt(base64.b64decode(text), PKCS1v15())
        except ValueError:
            return b""

    def unseal(self, fields: dict[str, str]) -> dict[str, Any]:
        """What the gateway reads from the browser's form: key, IV and the request XML."""
        assert fields["HashedRequestObject"] == hashlib.sha256(fields["RequestObject"].encode()).hexdigest()
        secret = base64.b64decode(self.rsa_decrypt(fields["RandomSecret"]), validate=True)
        assert len(secret) == 48, "RandomSecret holds the base64 text of key and IV"
        key, iv = secret[:32], secret[32:]
        plaintext = aes(key, iv, base64.b64decode(fields["RequestObject"]), decrypt=True)
        return {"key": key, "iv": iv, "plaintext": plaintext, "xml": ET.fromstring(plaintext.split(b"?>", 1)[1])}

    # --- what tests tell it -------------------------------------------------------------------------
    def approve(self, opened: dict[str, Any], transaction: str = "TX000000000001", *, number: str = "400000000001",
                status: str = "PAID", refunded: str = "0.00") -> dict[str, str]:
        """The status inquiry will say this request is paid (or ``status``)."""
        self.statuses[opened["sender_request_number"]] = {
            "SenderRequestNumber": opened["sender_request_number"], "PaymentRequestNumber": number,
            "Status": status, "Currency": "818", "PaymentRequestTotalAmount": opened["amount"],
            "CollectionFeesAmount": "0.00", "CustomerAuthorizationAmount": opened["amount"],
            "PaidAmount": opened["amount"], "RefundedAmount": refunded, "TransactionNumber": transaction,
            "AuthorizationCode": "123456", "AuthoriztionDateTime": "2026-12-07 10:00:00",
            "ReconciliationDate": "2026-12-07"}
        return self.statuses[opened["sender_request_number"]]

    def confirmation_xml(self, opened: dict[str, Any], **values: str) -> bytes:
        fields = {
            "SenderRequestNumber": opened["sender_request_number"], "PaymentRequestNumber": "400000000001",
            "PaymentRequestTotalAmount": opened["amount"], "CollectionFeesAmount": "0.00",
            "CustomerAuthorizationAmount": opened["amount"], "AuthorizationCode": "123456",
            "TransactionNumber": "TX000000000001", "AuthorizingMechanism": "Card", "AuthorizingInstitution": "Visa",
            "AuthoriztionDateTime": "2026-12-07 10:00:00", "ReconciliationDate": "2026-12-07", "IsConfirmed": "true",
        }
        fields.update(values)
        root = ET.Element("PaymentConfirmationRequest")
        for name, value in fields.items():
            if value is not None:
                ET.SubElement(root, name).text = value
        return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="utf-8")

    def silent_call_form(self, opened: dict[str, Any], *, plaintext: bytes | None = None, **values: str
                         ) -> dict[str, str]:
        """The silent call's form, encrypted under the key and IV the reference chose for ``opened``."""
        sealed = self.unseal(opened["initiation"]["fields"])
        body = plaintext if plaintext is not None else self.confirmation_xml(opened, **values)
        request_object = base64.b64encode(aes(sealed["key"], sealed["iv"], body, decrypt=False)).decode()
        return {"SenderID": opened["initiation"]["fields"]["SenderID"],
                "SenderRequestNumber": opened["sender_request_number"], "RequestObject": request_object,
                "Signature": hashlib.sha256(request_object.encode()).hexdigest()}


class Reference:
    """The reference service on a test client, with the helpers every test needs."""

    def __init__(self, app: Flask, settings: dict[str, Any]) -> None:
        self.app = app
        self.settings = settings
        self.client = app.test_client()

    @staticmethod
    def at(instant: str) -> str:
        """The wire form (UTC, Z) of an instant written in Cairo time in a test."""
        return iso(parse_instant(instant))

    def now(self) -> str:
        return self.client.get("/_admin/clock").get_json()["now"]

    def set_clock(self, instant: str) -> dict[str, Any]:
        response = self.client.post("/_admin/clock", json={"set": instant})
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def advance(self, duration: str) -> dict[str, Any]:
        return self.client.post("/_admin/clock", json={"advance": duration}).get_json()

    def tick(self) -> dict[str, Any]:
        return self.client.post("/_admin/tick").get_json()

    def signed(self, path: str, body: Any, secret: str, *, raw: bytes | None = None,
               signed_at: str | None = None) -> Any:
        data = raw if raw is not None else encode_json(body)
        headers = sign_headers(self.settings["secrets"][secret], data, parse_instant(signed_at or self.now()))
        headers["Content-Type"] = "application/json"
        return self.client.post(path, data=data, headers=headers)

    def create_order(self, request_number: str = "SR-01-00000001") -> dict[str, Any]:
        response = self.client.post("/api/orders", json={"request_number": request_number})
        assert response.status_code in (200, 201), response.get_json()
        return response.get_json()

    def order(self, bill_reference: str) -> dict[str, Any]:
        return self.client.get(f"/api/orders/{bill_reference}").get_json()

    def open_card(self, order: dict[str, Any], **body: Any) -> dict[str, Any]:
        response = self.client.post(f"/api/orders/{order['bill_reference']}/card-payments", json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def silent_call(self, form: dict[str, str]) -> Any:
        return self.client.post("/efinance/confirmations", data=form)

    # --- settlement's side (issue 5): the detailed file and the bank statement ------------------------
    @staticmethod
    def file_line(transaction_number: str = "KH-TXN-1", amount: str = "855.00", *, governorate: str = "01",
                  business_date: str = "2026-12-07", value_date: str = "2026-12-09", batch_id: str | None = None,
                  collection_id: str | None = None, channel: str = "cash", bill_reference: str = "",
                  line_type: str = "payment", reverses: str = "") -> dict[str, str]:
        """One line of a detailed settlement file (the 19 columns of the issue 5 spec)."""
        return {
            "batch_id": batch_id or f"B-{governorate}-{business_date.replace('-', '')}",
            "governorate_code": governorate, "business_date": business_date, "value_date": value_date,
            "collection_id": collection_id or f"khales:{transaction_number}", "channel": channel,
            "bill_reference": bill_reference, "service_code": "BPR", "transaction_number": transaction_number,
            "amount": amount, "collection_fee": "0.00", "collected_at": "2026-12-07T08:00:00.000Z",
            "settlement_account_code": "", "payment_request_number": "", "sender_request_number": "",
            "mechanism": "", "reconciliation_date": "", "line_type": line_type, "reverses": reverses}

    def settlement_file(self, lines: list[dict[str, str]], *, business_date: str = "2026-12-07", sequence: int = 1,
                        file_id: str | None = None, content: str | None = None,
                        declared: dict[str, str] | None = None) -> dict[str, Any]:
        """A ``st-settlement-file-delivery`` whose ``batches`` declare the true totals of ``lines``
        (``declared`` overrides a batch's amount); ``content`` replaces the CSV (a damaged delivery)."""
        from simulators.common.files import csv_text
        from simulators.common.money import format_amount, parse_signed_amount

        batches: dict[str, dict[str, Any]] = {}
        for line in lines:
            batch = batches.setdefault(line["batch_id"], {
                "batch_id": line["batch_id"], "governorate_code": line["governorate_code"],
                "business_date": line["business_date"], "value_date": line["value_date"], "line_count": 0,
                "gross": 0})
            batch["line_count"] += 1
            batch["gross"] += parse_signed_amount(line["amount"])
        declared_batches = [{
            "batch_id": b["batch_id"], "governorate_code": b["governorate_code"], "business_date": b["business_date"],
            "value_date": b["value_date"], "line_count": b["line_count"], "gross_amount": format_amount(b["gross"]),
            "collection_fees": "0.00", "amount": (declared or {}).get(b["batch_id"], format_amount(b["gross"])),
            "mode": "gross", "iban": "EG380019000500000000263180002"} for b in batches.values()]
        gross = format_amount(sum(b["gross"] for b in batches.values()))
        columns = list(self.file_line())
        return {"file_id": file_id or f"SF-{business_date.replace('-', '')}-{sequence}", "business_date": business_date,
                "sequence": sequence, "generated_at": self.now(), "format": "csv", "line_count": len(lines),
                "gross_amount": gross, "collection_fees": "0.00", "net_amount": gross, "batches": declared_batches,
                "content": content if content is not None else csv_text(columns, lines)}

    def post_file(self, body: dict[str, Any], secret: str = "settlement_notice") -> Any:
        return self.signed("/settlement/files", body, secret)

    def statement(self, *entries: dict[str, str], statement_date: str = "2026-12-09",
                  statement_id: str | None = None) -> dict[str, Any]:
        return {"statement_id": statement_id or f"BS-{statement_date.replace('-', '')}",
                "statement_date": statement_date, "generated_at": self.now(), "entries": list(entries)}

    def credit(self, amount: str = "855.00", *, reference: str = "B-01-20261207", governorate: str = "01",
               value_date: str = "2026-12-09", credited_at: str = "2026-12-09T10:00:00+02:00",
               entry_id: str | None = None) -> dict[str, str]:
        """One bank statement entry: ``amount`` credited to the governorate for batch ``reference``."""
        iban = ((self.settings.get("catalog") or {}).get("governorates") or {}).get(governorate, {}).get("iban", "")
        return {"entry_id": entry_id or f"BS-{reference}", "iban": iban,  # the governorate's catalog account
                "governorate_code": governorate, "value_date": value_date, "amount": amount, "currency": "EGP",
                "reference": reference, "credited_at": self.at(credited_at)}

    def post_statement(self, body: dict[str, Any], secret: str = "bank_statement") -> Any:
        return self.signed("/settlement/bank-statements", body, secret)

    def exceptions(self, **query: str) -> list[dict[str, Any]]:
        text = "&".join(f"{k}={v}" for k, v in query.items())
        response = self.client.get(f"/api/exceptions?{text}")
        assert response.status_code == 200, response.get_json()
        return response.get_json()["exceptions"]

    def reconciliation(self, day: str = "2026-12-07", **query: str) -> dict[str, Any]:
        text = "&".join(f"{k}={v}" for k, v in query.items())
        response = self.client.get(f"/api/reconciliation/{day}?{text}")
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def khales_payment(self, order: dict[str, Any], txn: str = "KH-TXN-1", **changes: Any) -> Any:
        body = {"khales_transaction_id": txn, "bill_reference": order["bill_reference"],
                "amount": order["amount"], "currency": "EGP", "outlet_id": "OUT-01-001", "paid_at": self.now()}
        body.update(changes)
        return self.signed("/khales/payments", body, "khales_biller")


@pytest.fixture
def citizen_services() -> Iterator[FakeCitizenServices]:
    fake = FakeCitizenServices()
    fake.requests["SR-01-00000001"] = make_service_request()
    server = ServerThread(fake.app).start()
    fake.url = server.url  # type: ignore[attr-defined]
    yield fake
    server.stop()


@pytest.fixture
def card_gateway(gateway_key: tuple[rsa.RSAPrivateKey, bytes]) -> Iterator[FakeEfinanceGateway]:
    fake = FakeEfinanceGateway(*gateway_key, load_settings()["reference"]["efinance"]["senders"])
    server = ServerThread(fake.app).start()
    fake.url = server.url  # type: ignore[attr-defined]
    yield fake
    server.stop()


@pytest.fixture
def settings(tmp_path: Any, citizen_services: FakeCitizenServices, card_gateway: FakeEfinanceGateway
             ) -> dict[str, Any]:
    return load_settings(overrides={
        "reference": {"database": str(tmp_path / "ref.sqlite3"), "ticker": False},
        # the bank -> collection service secret (issue 5); config/tahseel.yaml ships it too
        "secrets": {"bank_statement": "test-bank-statement-secret-change-me"},
        "urls": {"reference": "http://127.0.0.1:9", "citizen_services": citizen_services.url,  # type: ignore[attr-defined]
                 "card_gateway": card_gateway.url},  # type: ignore[attr-defined]
    })


@pytest.fixture
def ref(settings: dict[str, Any]) -> Iterator[Reference]:
    app = create_app(settings)
    reference = Reference(app, settings)
    reference.set_clock(MONDAY_10)
    yield reference
    app.extensions["tahseel"].stop()


@pytest.fixture
def service_request() -> Any:
    """The factory of assessed service requests (tests import nothing from conftest)."""
    return make_service_request
