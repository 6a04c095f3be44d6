"""A throw-away PKI for TLS tests: root CA -> intermediate CA -> leaf for 127.0.0.1 / localhost.

The server is given the leaf *and* the intermediate (one PEM file, leaf first); clients are given the
root alone. A handshake that verifies therefore proves the server sends the whole chain.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca_cert: Path  # the root CA alone, named ca.crt so skopeo's --*-cert-dir picks it up
    chain: Path  # leaf then intermediate: what the server presents
    key: Path  # the leaf's private key (PKCS#8 PEM)

    @property
    def ca_dir(self) -> Path:
        """A directory holding only ca.crt, for skopeo --dest-cert-dir / --src-cert-dir."""
        return self.ca_cert.parent

    @property
    def server_tls(self) -> tuple[Path, Path]:
        return self.chain, self.key


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Portside interop tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                         encipher_only=False, decipher_only=False)


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                         encipher_only=False, decipher_only=False)


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
                 issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool, path_length: int | None = None,
                 san: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer else _name(subject))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(_ca_usage() if ca else _leaf_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if not ca:
        eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
        builder = builder.add_extension(eku, critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(directory: Path) -> Pki:
    """Write ca.crt (root), server-chain.pem (leaf + intermediate) and server.key into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _certificate("Portside Test Root CA", root_key, None, root_key, ca=True, path_length=1)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _certificate("Portside Test Intermediate CA", inter_key, root, root_key, ca=True, path_length=0)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate(
        "127.0.0.1", leaf_key, inter, inter_key, ca=False,
        san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
    )

    ca_dir = directory / "trust"
    ca_dir.mkdir(exist_ok=True)
    pki = Pki(directory=directory, ca_cert=ca_dir / "ca.crt", chain=directory / "server-chain.pem",
              key=directory / "server.key")
    pki.ca_cert.write_bytes(_pem(root))
    pki.chain.write_bytes(_pem(leaf) + _pem(inter))
    pki.key.write_bytes(leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    pki.key.chmod(0o600)
    return pki


@pytest.fixture(scope="session", name="pki")
def pki_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    yield make_pki(tmp_path_factory.mktemp("pki"))
