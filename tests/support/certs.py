"""Certificates made in the test (cryptography): a CA, and leaves it signs.

EC P-256 keys: generating one takes well under a millisecond, so every test
can have its own.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: str | None = None) -> bytes:
        encryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def fingerprint(self) -> bytes:
        return self.certificate.fingerprint(hashes.SHA256())

    def write(self, directory: str, name: str, password: str | None = None) -> tuple[str, str]:
        """Write ``name.crt`` and ``name.key``; return their paths."""
        cert_path = os.path.join(directory, name + ".crt")
        key_path = os.path.join(directory, name + ".key")
        with open(cert_path, "wb") as handle:
            handle.write(self.cert_pem())
        with open(key_path, "wb") as handle:
            handle.write(self.key_pem(password))
        return cert_path, key_path


def _build(subject: str, issuer: Issued | None, *, ca: bool, client: bool = False) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.certificate.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if not client:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
    signer = issuer.key if issuer else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def make_ca(name: str = "Telex Test CA") -> Issued:
    return _build(name, None, ca=True)


def make_server_cert(ca: Issued, name: str = "localhost") -> Issued:
    return _build(name, ca, ca=False)


def make_client_cert(ca: Issued, name: str = "client") -> Issued:
    return _build(name, ca, ca=False, client=True)
