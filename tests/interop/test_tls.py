"""The TLS setup the other interop tests rely on: Portside (uvicorn, Python ssl) serves leaf + intermediate."""

from __future__ import annotations

import os
import signal
import socket
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.interop.conftest import Registry
from tests.interop.pki import Pki
from tests.servers import RunningServer

pytestmark = pytest.mark.interop


def test_pki_shape(pki: Pki) -> None:
    """The chain file is leaf then intermediate, and the leaf is not signed by the root directly."""
    chain = x509.load_pem_x509_certificates(pki.chain.read_bytes())
    root = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    leaf, intermediate = chain
    assert leaf.issuer == intermediate.subject and intermediate.issuer == root.subject
    assert leaf.issuer != root.subject
    leaf.verify_directly_issued_by(intermediate)
    intermediate.verify_directly_issued_by(root)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]


@pytest.mark.parametrize("server_name", ["127.0.0.1", "localhost"])
def test_handshake_with_root_only_trust(tls_registry: Registry, pki: Pki, server_name: str) -> None:
    """A client holding only the root verifies the server: the intermediate must come from the server."""
    ctx = ssl.create_default_context(cafile=str(tls_registry.ca_cert))  # system roots are not loaded
    assert len(ctx.get_ca_certs()) == 1
    with socket.create_connection(("127.0.0.1", tls_registry.server.port), timeout=10) as sock, \
            ctx.wrap_socket(sock, server_hostname=server_name) as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    assert x509.load_der_x509_certificate(der) == x509.load_pem_x509_certificates(pki.chain.read_bytes())[0]


def test_handshake_fails_without_the_root(tls_registry: Registry) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifying, but trusting nothing
    with socket.create_connection(("127.0.0.1", tls_registry.server.port), timeout=10) as sock, \
            pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(sock, server_hostname="127.0.0.1")


def test_graceful_stop_does_not_wait_for_idle_tls_clients(pki: Pki, tmp_path: Path) -> None:
    """An idle keep-alive client never answers a TLS close_notify: a stop that waited for it held the
    server for the whole 25 s grace period (python-dxf and requests sessions keep such connections)."""
    srv = RunningServer(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'portside.db'}", workers=1,
                        tls=pki.server_tls, ca_file=pki.ca_cert).start()
    try:
        with httpx.Client(base_url=srv.url, verify=str(pki.ca_cert)) as client:
            assert client.get("/v2/").status_code == 200  # the connection now idles, kept alive
            os.killpg(srv.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
            assert srv.proc.wait(15) == 0  # type: ignore[union-attr]  # well inside the grace period
    finally:
        srv.stop()
