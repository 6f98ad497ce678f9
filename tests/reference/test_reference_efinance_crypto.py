"""The e-finance client's cryptography and XML, against a test-side decrypt written from FACTS.

Nothing here uses reference.efinance to check reference.efinance: the test decrypts with the
``cryptography`` primitives directly (the gateway's private key is the session's fake one).
"""

from __future__ import annotations

import base64
import hashlib
import re
import xml.etree.ElementTree as ET
from datetime import date

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from reference import efinance
from reference.efinance import GatewayCertificate, Initiation, MessageError, SettlementLine

KEY, IV = bytes(range(32)), bytes(range(16, 32))


def decrypt(ciphertext: str, key: bytes = KEY, iv: bytes = IV) -> bytes:
    """The gateway's side of AES-256-CBC/PKCS#7, straight from the primitives."""
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(base64.b64decode(ciphertext)) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def test_aes_is_cbc_with_pkcs7_in_base64_and_round_trips():
    for plaintext in (b"", b"x", b"<a>" * 100, "مرحبا".encode()):
        sealed = efinance.aes_encrypt(plaintext, KEY, IV)
        assert decrypt(sealed) == plaintext
        assert efinance.aes_decrypt(sealed, KEY, IV) == plaintext
        assert len(base64.b64decode(sealed)) % 16 == 0 and len(base64.b64decode(sealed)) > len(plaintext)


@pytest.mark.parametrize("ciphertext", ["not base64!", base64.b64encode(b"short").decode(), "", "٣٣٣٣"])
def test_aes_refuses_what_is_not_a_ciphertext(ciphertext):
    with pytest.raises(MessageError) as caught:
        efinance.aes_decrypt(ciphertext, KEY, IV)
    assert caught.value.reason == "undecryptable" and caught.value.field == "RequestObject"


def test_aes_under_another_key_is_undecryptable():
    sealed = efinance.aes_encrypt(b"<PaymentConfirmationRequest/>", bytes(32), bytes(16))
    with pytest.raises(MessageError):
        efinance.aes_decrypt(sealed, KEY, IV)  # these fixed bytes unpad badly under KEY/IV (checked once)


def test_rsa_parts_are_pkcs1_v15_under_the_certificate(gateway_key):
    private, pem = gateway_key
    certificate = GatewayCertificate(pem)

    secret = private.decrypt(base64.b64decode(certificate.random_secret(KEY, IV)), PKCS1v15())
    password = private.decrypt(base64.b64decode(certificate.password("كلمة-sirr")), PKCS1v15())

    assert secret == base64.b64encode(KEY + IV)  # the base64 TEXT of key‖IV (64 characters), not the 48 bytes
    assert len(secret) == 64
    assert password == "كلمة-sirr".encode()
    assert certificate.random_secret(KEY, IV) != certificate.random_secret(KEY, IV)  # PKCS#1 v1.5 is randomised


def test_a_certificate_that_is_not_one_is_refused():
    with pytest.raises(ValueError):
        GatewayCertificate(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


def test_sealing_an_initiation_end_to_end(gateway_key):
    private, pem = gateway_key
    request = Initiation(
        sender_id="1001", sender_name="Tahseel - Cairo", encrypted_password="PW",
        sender_request_number="0123456789ABCDEF",
        lines=(SettlementLine("0101001", "رسم التجديد", 50000), SettlementLine("0109001", "VAT", 7005)),
        sender_invoice_number="123456789012", service_code="1001", description="BPR SR-01-1", ip="10.0.0.1",
        mechanism="Meeza", expiry_date=date(2026, 12, 10), confirmation_url="https://portal.test/efinance/confirmations",
        redirect_url="https://portal.test/payments/return", user_unique_identifier="AB12CD34")

    sealed = efinance.seal_initiation(efinance.GatewayCertificate(pem), request, "en")

    fields = sealed.fields
    assert fields["HashedRequestObject"] == hashlib.sha256(fields["RequestObject"].encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", fields["HashedRequestObject"])  # lowercase
    text = private.decrypt(base64.b64decode(fields["RandomSecret"]), PKCS1v15())
    raw = base64.b64decode(text)
    key, iv = raw[:32], raw[32:]
    assert (key, iv) == (sealed.key, sealed.iv) and len(raw) == 48
    plaintext = decrypt(fields["RequestObject"], key, iv)
    assert plaintext.startswith(b'<?xml version="1.0" encoding="utf-16"?>')
    root = ET.fromstring(plaintext.split(b"?>", 1)[1])
    assert [child.tag for child in root] == [
        "Sender", "SettlementAmounts", "SenderRequestNumber", "SenderInvoiceNumber", "ServiceCode",
        "RequestInitiationDescription", "Currency", "IP", "PaymentMechanism", "ExpiryDate",
        "PaymentConfirmationUrl", "PaymentConfirmationRedirectUrl", "UserUniqueIdentifier"]
    assert [child.tag for child in root.find("Sender")] == ["Id", "Name", "RandomValue", "Password"]
    assert [(x.findtext("SettlementAccountCode"), x.findtext("SettlementAmountsDescription"), x.findtext("Amount"))
            for x in root.findall("SettlementAmounts/SettlementAmounts")] == [
        ("0101001", "رسم التجديد", "500.00"), ("0109001", "VAT", "70.05")]
    assert root.findtext("Currency") == "818" and root.findtext("ExpiryDate") == "2026-12-10"
    assert root.findtext("PaymentMechanism/Type") == "Meeza" == root.findtext("PaymentMechanism/MechanismType")
    assert fields["LanguageId"] == "en" and fields["SenderID"] == "1001"
    other = efinance.seal_initiation(efinance.GatewayCertificate(pem), request, "ar")
    assert (other.key, other.iv) != (sealed.key, sealed.iv)  # a fresh key and IV every time


def test_numbers_the_sender_makes_up():
    numbers = {efinance.new_sender_request_number() for _ in range(50)}
    assert len(numbers) == 50 and all(re.fullmatch(r"[0-9A-F]{16}", n) for n in numbers)
    assert re.fullmatch(r"[0-9A-F]{32}", efinance.new_random_value())
    uid = efinance.user_unique_identifier("SR-01-00000001")
    assert re.fullmatch(r"[0-9A-Z]{8}", uid) and uid == efinance.user_unique_identifier("SR-01-00000001")


@pytest.mark.parametrize(("text", "piasters"), [("100", 10000), ("100.5", 10050), ("100.50", 10050), ("0.01", 1)])
def test_xml_amounts(text, piasters):
    assert efinance.parse_amount(text, "Amount") == piasters


@pytest.mark.parametrize("text", ["", "-1.00", "1e3", "1,000.00", "١٠٠", "100.505", " 100", "01"])
def test_xml_amounts_refused(text):
    with pytest.raises(MessageError):
        efinance.parse_amount(text, "Amount")


@pytest.mark.parametrize("document", [
    b"<PaymentConfirmationRequest><A>1</A><A>2</A></PaymentConfirmationRequest>",
    b"<PaymentConfirmationRequest><A><B/></A></PaymentConfirmationRequest>",
    b"<Other/>",
    b"<PaymentConfirmationRequest>",
    b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<PaymentConfirmationRequest>&x;</PaymentConfirmationRequest>",
    b"\xff\xfe\x00",
])
def test_flat_xml_refusals(document):
    with pytest.raises(MessageError) as caught:
        efinance.parse_flat(document, "PaymentConfirmationRequest")
    assert caught.value.reason == "malformed"


def test_confirmation_and_refund_notices_are_read():
    base = ("<SenderRequestNumber>0123456789ABCDEF</SenderRequestNumber><PaymentRequestNumber>400000000001"
            "</PaymentRequestNumber><PaymentRequestTotalAmount>855</PaymentRequestTotalAmount><CollectionFeesAmount>"
            "2.5</CollectionFeesAmount><CustomerAuthorizationAmount>857.50</CustomerAuthorizationAmount>"
            "<AuthorizationCode>123456</AuthorizationCode><TransactionNumber>TX1</TransactionNumber>"
            "<AuthorizingMechanism>Meeza</AuthorizingMechanism><AuthorizingInstitution>Meeza</AuthorizingInstitution>"
            "<AuthoriztionDateTime>2026-12-07 10:00:00</AuthoriztionDateTime><ReconciliationDate>2026-12-07"
            "</ReconciliationDate><IsConfirmed>true</IsConfirmed>")
    declared_utf16 = '<?xml version="1.0" encoding="utf-16"?>'  # over UTF-8 bytes, as senders do
    payment = efinance.parse_confirmation(
        f"{declared_utf16}<PaymentConfirmationRequest>{base}</PaymentConfirmationRequest>".encode())
    refund = efinance.parse_confirmation(
        (f"<PaymentConfirmationRequest>{base}<OperationType>Refund</OperationType><RefundRequestNumber>R1"
         "</RefundRequestNumber><RefundNumber>RF000000000001</RefundNumber><RefundAmount>100</RefundAmount>"
         "<RefundedAmount>100.00</RefundedAmount><RefundDateTime>2026-12-07 11:00:00</RefundDateTime>"
         "<Status>PARTIAL_REFUNDED</Status></PaymentConfirmationRequest>").encode())

    assert payment.operation == "Payment" and payment.is_confirmed and payment.total_amount == 85500
    assert (payment.collection_fee, payment.authorized_amount) == (250, 85750)
    assert payment.authorized_at.isoformat() == "2026-12-07T10:00:00+02:00"
    assert payment.reconciliation_date == date(2026, 12, 7) and payment.mechanism == "Meeza"
    assert refund.operation == "Refund" and refund.refund_amount == 10000 and refund.refunded_amount == 10000
    assert refund.status == "PARTIAL_REFUNDED" and refund.refund_number == "RF000000000001"
    with pytest.raises(MessageError) as caught:
        efinance.parse_confirmation(f"<PaymentConfirmationRequest>{base}<OperationType>Refund</OperationType>"
                                    "</PaymentConfirmationRequest>".encode())
    assert caught.value.reason == "missing"


@pytest.mark.parametrize(("word", "meaning"), [("UNPAID", "UNPAID"), ("NEW", "UNPAID"), ("CANCELED", "CANCELLED"),
                                               ("CANCELLED", "CANCELLED"), ("paid", "PAID"),
                                               ("PARTIAL_REFUNDED", "PARTIAL_REFUNDED")])
def test_both_status_vocabularies(word, meaning):
    assert efinance.status_word(word) == meaning


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-16"])
def test_a_dtd_hidden_in_utf16_is_refused_with_or_without_a_byte_order_mark(encoding):
    document = ('<!DOCTYPE R [<!ENTITY x "EXPANDED">]><PaymentRequestStatusRes><Status>&x;</Status>'
                "</PaymentRequestStatusRes>").encode(encoding)
    with pytest.raises(MessageError) as caught:
        efinance.parse_flat(document, "PaymentRequestStatusRes")
    assert caught.value.reason == "malformed"
