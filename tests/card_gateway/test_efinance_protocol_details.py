"""Details of the e-finance initiation: the code table, amounts, LanguageId, configured PEM files,
the remaining refusal codes and the field-name alias seen in one published integration."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from simulators.card_gateway.app import create_app
from simulators.card_gateway.efinance_crypto import (
    aes_decrypt,
    aes_encrypt,
    decode_secret,
    encode_secret,
    load_identity,
    new_secret,
    sha256_hex,
)
from simulators.card_gateway.efinance_messages import Rejection, parse_xml_amount, response_codes
from simulators.card_gateway.efinance_views import language_of
from simulators.common.clock import parse_instant
from simulators.common.contracts import load_contract

from .test_efinance_initiation import (
    PAGE_PATH,
    S2S_PATH,
    START,
    Sender,
    parse_response,
    request_xml,
    settings,
    srn_of,
)


def test_the_code_table_has_unique_codes_and_names_and_000_is_success():
    rows = load_contract("efinance-response-codes.yaml")["codes"]
    assert len({r["code"] for r in rows}) == len(rows) == len({r["name"] for r in rows})
    assert response_codes()["SUCCESS"]["code"] == "000"
    for row in rows:
        assert row["message_ar"] and row["message_en"]
        assert row["code"] == "000" or 400 <= row["status"] < 500


@pytest.mark.parametrize(("text", "piasters"), [("100", 10000), ("100.5", 10050), ("100.50", 10050),
                                                ("0.01", 1), ("0", 0), ("999999999999.99", 99999999999999)])
def test_xml_amounts_become_integer_piasters(text, piasters):
    assert parse_xml_amount(text, "Amount") == piasters


@pytest.mark.parametrize("text", ["1.005", "-1.00", "1e3", "1,000.00", " 100", "100.", ".5", "0100",
                                  "١٠٠", "1000000000000"])
def test_xml_amounts_are_strict(text):
    with pytest.raises(Rejection) as caught:
        parse_xml_amount(text, "Amount")
    assert caught.value.code == "121"


@pytest.mark.parametrize(("value", "lang"), [(None, "ar"), ("", "ar"), ("ar", "ar"), ("1", "ar"), ("xx", "ar"),
                                             ("en", "en"), ("EN", "en"), ("en-US", "en"), ("2", "en")])
def test_language_id_values(value, lang):
    assert language_of(value) == lang


def test_symmetric_primitives_round_trip():
    key, iv = new_secret()
    assert decode_secret(encode_secret(key, iv)) == (key, iv)
    assert aes_decrypt(aes_encrypt("نص".encode(), key, iv), key, iv) == "نص".encode()
    assert sha256_hex("abc") == hashlib.sha256(b"abc").hexdigest()


def test_identity_from_configured_pem_files_and_a_mismatch_is_refused(tmp_path):
    made = load_identity({"data_dir": str(tmp_path / "a")}, parse_instant(START))
    other = load_identity({"data_dir": str(tmp_path / "b")}, parse_instant(START))
    key_file, cert_file = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_file.write_bytes(made.private_key.private_bytes(serialization.Encoding.PEM,
                                                        serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    cert_file.write_bytes(made.certificate_pem())
    configured = settings(tmp_path / "unused")
    configured["card_gateway"].update(private_key_file=str(key_file), certificate_file=str(cert_file))
    app = create_app(configured)
    try:
        assert app.test_client().get("/_admin/certificate").data == made.certificate_pem()
        assert not (tmp_path / "unused" / "gateway").exists()
    finally:
        app.extensions["tahseel"].stop()
    (tmp_path / "other.pem").write_bytes(other.certificate_pem())
    with pytest.raises(ValueError, match="does not certify"):
        load_identity({"private_key_file": str(key_file), "certificate_file": str(tmp_path / "other.pem")},
                      parse_instant(START))
    with pytest.raises(ValueError, match="go together"):
        load_identity({"private_key_file": str(key_file)}, parse_instant(START))


def test_certificate_is_a_self_signed_rsa_certificate(client):
    cert = x509.load_pem_x509_certificate(client.get("/_admin/certificate").data)
    assert cert.issuer == cert.subject
    assert cert.public_key().key_size == 2048


# --- the remaining refusals (each a 4xx page, no session) -----------------------------------------
def _refused(client: Any, app: Any, data: dict[str, str], code: str, status: int) -> None:
    response = client.post(PAGE_PATH, data=data)
    assert response.status_code == status, response.data
    assert f'id="response-code">{code}<' in response.get_data(as_text=True)
    assert app.extensions["card_gateway_efinance"].model._sessions == {}


def test_sender_id_not_matching_sender_id_in_the_xml_is_103(client, sender, app):
    xml = request_xml(srn_of(71), password_b64=sender.rsa(b"tahseel-test"), sender_id="1234")
    _refused(client, app, sender.fields(srn_of(71), xml=xml), "103", 401)


def test_unknown_service_code_is_124(client, sender, app):
    xml = request_xml(srn_of(72), password_b64=sender.rsa(b"tahseel-test")).replace(
        "<ServiceCode>9001</ServiceCode>", "<ServiceCode>5555</ServiceCode>")
    _refused(client, app, sender.fields(srn_of(72), xml=xml), "124", 422)


def test_request_that_cannot_be_decrypted_is_112(client, sender, app):
    fields = sender.fields(srn_of(73))
    broken = base64.b64encode(base64.b64decode(fields["RequestObject"])[:-3]).decode()  # not whole blocks
    _refused(client, app, dict(fields, RequestObject=broken, HashedRequestObject=sha256_hex(broken)), "112", 400)


def test_bad_sender_request_number_is_115(client, sender, app):
    _refused(client, app, sender.fields("not-hex-at-all!!"), "115", 422)


def test_uppercase_hash_is_a_mismatch_as_facts_say_lowercase(client, sender, app):
    fields = sender.fields(srn_of(74))
    _refused(client, app, dict(fields, HashedRequestObject=fields["HashedRequestObject"].upper()), "110", 400)


def test_the_published_hased_spelling_of_the_hash_field_is_accepted(client, sender):
    fields = sender.fields(srn_of(75))
    fields["HasedRequestObject"] = fields.pop("HashedRequestObject")
    assert parse_response(client.post(S2S_PATH, data=fields).data)["ResponseCode"] == "000"


def test_a_reset_forgets_requests_and_sessions(client, sender, app):
    first = parse_response(client.post(S2S_PATH, data=sender.fields(srn_of(76))).data)
    assert client.post("/_admin/reset").status_code == 200
    assert app.extensions["card_gateway_efinance"].get_request("9001", srn_of(76)) is None
    again = parse_response(client.post(S2S_PATH, data=sender.fields(srn_of(76), amounts=("1.00",))).data)
    assert again["ResponseCode"] == "000" and again["PaymentRequestNumber"] != first["PaymentRequestNumber"]


@pytest.fixture
def app(tmp_path):
    app = create_app(settings(tmp_path))
    app.extensions["tahseel"].clock.set(parse_instant(START))
    yield app
    app.extensions["tahseel"].stop()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def sender(client):
    return Sender(client.get("/_admin/certificate").data)
