"""The cryptography of e-finance's payment request initiation, as docs/domain-facts.md describes it.

- A fresh 32-byte AES key and 16-byte IV per request.
- ``RequestObject`` = base64(AES-256-CBC, PKCS#7 padding, of the XML bytes).
- ``RandomSecret`` = base64(RSA PKCS#1 v1.5 encryption, under the gateway certificate's public key,
  of the **base64 text** of key‖IV — 48 bytes, 64 base64 characters).
- ``HashedRequestObject`` = lowercase hex SHA-256 of the ``RequestObject`` text.
- ``Sender.Password`` = base64(RSA PKCS#1 v1.5 of the password).

The gateway's identity (an RSA key pair and a self-signed X.509 certificate) is generated on the
first start and kept under ``card_gateway.data_dir`` (``<data_dir>/gateway/private-key.pem`` and
``certificate.pem``), or read from ``card_gateway.private_key_file`` + ``certificate_file``.
Both directions live here, so a test (or a future silent call) uses the same primitives.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID

KEY_BYTES, IV_BYTES = 32, 16
RSA_BITS = 2048
DEFAULT_DATA_DIR = ".tahseel/card_gateway"
IDENTITY_DIR = "gateway"
KEY_FILE, CERT_FILE = "private-key.pem", "certificate.pem"


class CryptoFailure(ValueError):
    """Raised when a ciphertext cannot be decoded or decrypted (the caller picks the response code)."""


# --- symmetric part -------------------------------------------------------------------------------
def new_secret() -> tuple[bytes, bytes]:
    """A fresh (32-byte key, 16-byte IV) pair."""
    return secrets.token_bytes(KEY_BYTES), secrets.token_bytes(IV_BYTES)


def encode_secret(key: bytes, iv: bytes) -> str:
    """The base64 text of key‖IV: this text (not the raw 48 bytes) is what RSA encrypts."""
    return base64.b64encode(key + iv).decode("ascii")


def decode_secret(text: bytes | str) -> tuple[bytes, bytes]:
    """Key and IV from the base64 text of key‖IV; anything but exactly 48 bytes is refused."""
    raw = b64decode_strict(text)
    if len(raw) != KEY_BYTES + IV_BYTES:
        raise CryptoFailure(f"the random secret holds {len(raw)} bytes, not {KEY_BYTES + IV_BYTES}")
    return raw[:KEY_BYTES], raw[KEY_BYTES:]


def aes_encrypt(plaintext: bytes, key: bytes, iv: bytes) -> str:
    """base64(AES-256-CBC with PKCS#7 padding)."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def aes_decrypt(ciphertext_b64: str, key: bytes, iv: bytes) -> bytes:
    """The plaintext of ``aes_encrypt``; bad base64, a partial block or bad padding raise."""
    data = b64decode_strict(ciphertext_b64)
    if not data or len(data) % 16:
        raise CryptoFailure("the ciphertext is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise CryptoFailure("bad PKCS#7 padding (wrong key or IV?)") from exc


def sha256_hex(text: str) -> str:
    """Lowercase hex SHA-256 of a text (its UTF-8 bytes; base64 text is ASCII anyway)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def b64decode_strict(text: bytes | str) -> bytes:
    if isinstance(text, str):
        try:
            text = text.encode("ascii")
        except UnicodeEncodeError as exc:
            raise CryptoFailure("not base64 text") from exc
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoFailure("not base64 text") from exc


# --- asymmetric part ------------------------------------------------------------------------------
def rsa_encrypt(public_key: rsa.RSAPublicKey, data: bytes) -> str:
    """base64(RSA PKCS#1 v1.5 encryption) — what a sender does with the gateway's certificate."""
    return base64.b64encode(public_key.encrypt(data, PKCS1v15())).decode("ascii")


@dataclass(frozen=True)
class GatewayIdentity:
    """The gateway's RSA key pair and its certificate (which integrators are given)."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def decrypt(self, ciphertext_b64: str) -> bytes:
        """Plaintext of base64(RSA PKCS#1 v1.5); raises :class:`CryptoFailure`.

        (With OpenSSL's implicit rejection a wrong ciphertext may "decrypt" to random bytes: every
        caller checks what it got — 48 bytes of base64 text, the sender's password — so both
        behaviours end in the same refusal.)
        """
        data = b64decode_strict(ciphertext_b64)
        if len(data) != self.private_key.key_size // 8:
            raise CryptoFailure("the RSA ciphertext has the wrong length for the gateway's key")
        try:
            return self.private_key.decrypt(data, PKCS1v15())
        except ValueError as exc:
            raise CryptoFailure("RSA decryption failed") from exc


def load_identity(own: dict[str, Any], now: datetime) -> GatewayIdentity:
    """The configured PEM files, else the one kept in ``data_dir`` (created on the first start)."""
    key_file, cert_file = own.get("private_key_file"), own.get("certificate_file")
    if key_file or cert_file:
        if not (key_file and cert_file):
            raise ValueError("card_gateway.private_key_file and certificate_file go together")
        return _read_identity(Path(str(key_file)), Path(str(cert_file)))
    folder = Path(str(own.get("data_dir") or DEFAULT_DATA_DIR)) / IDENTITY_DIR
    if not folder.is_dir():
        _create_identity(folder, now)
    return _read_identity(folder / KEY_FILE, folder / CERT_FILE)


def _read_identity(key_path: Path, cert_path: Path) -> GatewayIdentity:
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{key_path} is not an RSA private key")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise ValueError(f"{cert_path} does not certify the key in {key_path}")
    return GatewayIdentity(key, cert)


def _create_identity(folder: Path, now: datetime) -> None:
    """Write key and certificate into a temporary folder, then rename it into place: two gateways
    starting together on one data_dir end up with the same identity (the loser's is discarded)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "EG"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tahseel test bench"),
        x509.NameAttribute(NameOID.COMMON_NAME, "e-finance card gateway simulator"),
    ])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, content_commitment=False,
                                     data_encipherment=True, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    staging = Path(tempfile.mkdtemp(prefix=".gateway-", dir=folder.parent))
    try:
        key_path = staging / KEY_FILE
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        (staging / CERT_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        try:
            staging.rename(folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
