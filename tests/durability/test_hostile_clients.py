"""Hostile clients: forged log lines, forged client addresses, and connections that hold a worker
by sending their request slowly or not at all (slowloris)."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.oci_client import sha256
from tests.servers import RunningServer

FORGED = "%0aFAKE%20200%20line%0d%00%1b[31m%e2%80%a8"


def start(tmp: Path, **env: str) -> RunningServer:
    return RunningServer(tmp, f"sqlite:///{tmp / 'portside.db'}", workers=1,
                         env={"PORTSIDE_LOG__ACCESS_LOG": "true", **env}).start()


@pytest.fixture(scope="module")
def text_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Text logs, short deadlines for request heads and bodies."""
    srv = start(tmp_path_factory.mktemp("hostile-text"), PORTSIDE_SERVER__REQUEST_HEADER_TIMEOUT_SECONDS="1",
                PORTSIDE_SERVER__REQUEST_BODY_IDLE_TIMEOUT_SECONDS="1")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start(tmp_path_factory.mktemp("hostile-json"), PORTSIDE_LOG__FORMAT="json")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Behind a proxy on 127.0.0.1, configured as trusted."""
    srv = start(tmp_path_factory.mktemp("hostile-proxied"), PORTSIDE_LOG__FORMAT="json",
                PORTSIDE_SERVER__FORWARDED_ALLOW_IPS="127.0.0.1")
    yield srv
    srv.stop()


def log_lines_with(srv: RunningServer, marker: str, timeout: float = 10) -> list[str]:
    """The server's log lines holding `marker`, once there are some (the access log is written after the response)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in srv.log().splitlines() if marker in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def raw_get(srv: RunningServer, target: str, headers: str = "") -> bytes:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode())
        return read_to_eof(s)


def read_to_eof(s: socket.socket) -> bytes:
    """Everything the server sends until it closes; socket.timeout if it keeps the connection open."""
    received = b""
    while chunk := s.recv(65536):
        received += chunk
    return received


@pytest.mark.parametrize("prefix", ["/v2/", "/api/v2.0/", "/"])
def test_text_access_log_escapes_control_characters(text_server: RunningServer, prefix: str) -> None:
    marker = uuid.uuid4().hex
    raw_get(text_server, f"{prefix}{marker}{FORGED}")
    lines = log_lines_with(text_server, marker)
    assert len(lines) == 1, lines
    assert "\\x0aFAKE 200 line\\x0d\\x00\\x1b[31m\\u2028" in lines[0], lines[0]
    assert not any(line.startswith("FAKE") for line in text_server.log().splitlines())


def test_json_access_log_stays_one_valid_object_per_line(json_server: RunningServer) -> None:
    marker = uuid.uuid4().hex
    raw_get(json_server, f"/v2/{marker}{FORGED}")
    lines = log_lines_with(json_server, marker)
    assert len(lines) == 1, lines
    entry = json.loads(lines[0])
    assert entry["path"].endswith(f"{marker}\\x0aFAKE 200 line\\x0d\\x00\\x1b[31m\\u2028"), entry
    assert "\n" not in entry["message"] and "\x1b" not in entry["message"]


def client_seen(srv: RunningServer, forwarded_for: str) -> str:
    marker = uuid.uuid4().hex
    raw_get(srv, f"/v2/{marker}", f"X-Forwarded-For: {forwarded_for}\r\n")
    lines = log_lines_with(srv, marker)
    assert len(lines) == 1, lines
    return str(json.loads(lines[0])["client"])


def test_forwarded_for_is_ignored_unless_the_proxy_is_configured(json_server: RunningServer,
                                                                  proxied_server: RunningServer) -> None:
    # The login throttle and the audit log key on this address: a client must not choose it.
    assert client_seen(json_server, "203.0.113.7") == "127.0.0.1"
    assert client_seen(proxied_server, "203.0.113.7") == "203.0.113.7"


def test_a_request_head_that_never_completes_is_closed(text_server: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", text_server.port), timeout=20) as s:
        s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert read_to_eof(s) == b""  # closed, nothing answered
    with socket.create_connection(("127.0.0.1", text_server.port), timeout=20) as s:
        assert read_to_eof(s) == b""  # connected and never said anything


def test_a_stalled_body_is_closed(text_server: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", text_server.port), timeout=20) as s:
        s.sendall(f"POST /v2/test/stall/blobs/uploads/?digest={sha256(b'x' * 1000)} HTTP/1.1\r\n".encode()
                  + b"Host: x\r\nContent-Length: 1000\r\nContent-Type: application/octet-stream\r\n\r\n"
                  + b"x" * 10)
        assert b" 201 " not in read_to_eof(s)  # the connection ends, the upload with it


def test_a_slow_but_moving_body_is_not_cut(text_server: RunningServer) -> None:
    chunks = [b"y" * 100] * 6
    digest = sha256(b"".join(chunks))
    with socket.create_connection(("127.0.0.1", text_server.port), timeout=20) as s:
        s.sendall(f"POST /v2/test/slow/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\n".encode()
                  + b"Connection: close\r\nContent-Length: 600\r\nContent-Type: application/octet-stream\r\n\r\n")
        for chunk in chunks:  # each gap is under the 1 s body deadline; all of them together are not
            time.sleep(0.4)
            s.sendall(chunk)
        head = read_to_eof(s).split(b"\r\n", 1)[0]
    assert head == b"HTTP/1.1 201 Created", head
    with httpx.Client(base_url=text_server.url) as client:
        assert client.head(f"/v2/test/slow/blobs/{digest}").status_code == 200


def test_forwarded_host_and_proto_only_from_configured_proxies(json_server: RunningServer,
                                                               proxied_server: RunningServer) -> None:
    headers = {"X-Forwarded-Host": "registry.example", "X-Forwarded-Proto": "https"}
    info = httpx.get(f"{json_server.url}/api/v2.0/systeminfo", headers=headers).json()
    assert (info["registry_url"], info["external_url"]) == (json_server.host, f"http://{json_server.host}")
    info = httpx.get(f"{proxied_server.url}/api/v2.0/systeminfo", headers=headers).json()
    assert (info["registry_url"], info["external_url"]) == ("registry.example", "https://registry.example")
