"""Blob bodies sent with sendfile(2) (the pathsend extension on uvicorn): exact bytes, slow and vanishing readers."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from portside.serving import pump, sendfile
from portside.serving.pump import copy_file_to_socket
from tests.oci_client import push_blob
from tests.servers import RunningServer

MiB = 1024 * 1024


def test_copy_waits_for_a_slow_reader_and_sends_every_byte(tmp_path: Path) -> None:
    data = os.urandom(3 * MiB + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)  # full almost at once: EAGAIN, then poll
    ours.setblocking(False)
    received = bytearray()

    def read_slowly() -> None:
        while len(received) < len(data) - 1000:
            received.extend(theirs.recv(64 * 1024))
            time.sleep(0.001)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    with path.open("rb") as f:
        copy_file_to_socket(ours.fileno(), f.fileno(), len(data) - 1000)  # a prefix, as for a Content-Length
    reader.join(10)
    ours.close()
    rest = theirs.recv(1 << 20)
    theirs.close()
    assert bytes(received) + rest == data[:-1000]


def test_copy_stops_when_the_reader_goes_away(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(8 * MiB))
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.close()
    with pytest.raises(OSError), path.open("rb") as f:
        copy_file_to_socket(ours.fileno(), f.fileno(), 8 * MiB)
    ours.close()


def test_a_small_cached_file_goes_out_in_one_call_and_a_large_one_is_left_to_the_thread(tmp_path: Path) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    small.write_bytes(data := os.urandom(100_000))
    large.write_bytes(os.urandom(pump.INLINE_MAX + 1))
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    with ours, theirs, small.open("rb") as s, large.open("rb") as big:
        assert pump.send_if_cached(ours.fileno(), s.fileno(), len(data)) == len(data)
        received = b""
        while len(received) < len(data):
            received += theirs.recv(1 << 20)
        assert received == data
        assert pump.send_if_cached(ours.fileno(), big.fileno(), pump.INLINE_MAX + 1) == 0


def test_a_small_file_not_in_the_page_cache_is_left_to_the_thread(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated: on this machine's fast disk the readahead an RWF_NOWAIT probe starts can finish
    # before the probe answers, so a file cannot be kept out of the cache reliably.
    monkeypatch.setattr(pump, "cached", lambda fd, start, end: False)
    path = tmp_path / "cold"
    path.write_bytes(os.urandom(100_000))
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    with ours, theirs, path.open("rb") as f:
        assert pump.send_if_cached(ours.fileno(), f.fileno(), 100_000) == 0


def test_pulls_cut_off_mid_body_leave_the_workers_serving(server: RunningServer, client: httpx.Client,
                                                          repo: str) -> None:
    data = os.urandom(16 * MiB)
    digest = push_blob(client, repo, data)
    host, port = "127.0.0.1", server.port
    for _ in range(6):  # more than the workers: each one sees a client vanish mid-transfer
        with socket.create_connection((host, port)) as s:
            s.sendall(f"GET /v2/{repo}/blobs/{digest} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            s.recv(256 * 1024)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
    for _ in range(4):
        r = client.get(f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == 200
        assert r.content == data
    r = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=1000-1999"})
    assert r.status_code == 206
    assert r.content == data[1000:2000]
    assert client.get("/readyz").status_code == 200
    assert "Exception in ASGI application" not in server.log()  # a vanished client is not a server error


class _Transport:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False

    def get_extra_info(self, name: str) -> object:
        return self.sock if name == "socket" else None

    def close(self) -> None:
        self.closed = True


class _Cycle:
    """The parts of uvicorn's RequestResponseCycle the pathsend wrapper uses; `sent` records what
    reached the connection and whether the socket was corked at that moment."""

    def __init__(self, sock: socket.socket, method: str = "GET") -> None:
        self.scope = {"method": method}
        self.transport = _Transport(sock)
        self.chunked_encoding = False
        self.response_started = False
        self.disconnected = False
        self.expected_content_length = 0
        self.sent: list[tuple[str, int]] = []

    def corked(self) -> int:
        return self.transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)

    async def send(self, message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            self.response_started = True
            self.expected_content_length = 11
        self.sent.append((str(message["type"]), self.corked()))


def _wrapped(cycle: _Cycle, monkeypatch: pytest.MonkeyPatch) -> Any:
    async def fake_send_file(transport: object, path: str, count: int) -> None:
        cycle.sent.append((f"file {path} {count}", cycle.corked()))

    monkeypatch.setattr(sendfile, "send_file", fake_send_file)
    return sendfile._pathsend_aware(cycle)  # type: ignore[arg-type]


SIZED_START = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"11")]}


@pytest.fixture
def tcp_socket() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname()) as sock:
        yield sock


def test_a_file_response_goes_out_corked_head_and_body_together(tcp_socket: socket.socket,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cycle = _Cycle(tcp_socket)
    send = _wrapped(cycle, monkeypatch)

    async def respond() -> None:
        await send(SIZED_START)
        assert cycle.sent == []  # the head waits to learn whether a file follows
        await send({"type": sendfile.PATHSEND, "path": "/blobs/x"})

    asyncio.run(respond())
    assert cycle.sent == [("http.response.start", 1), ("file /blobs/x 11", 1), ("http.response.body", 0)]
    assert cycle.corked() == 0  # uncorked after the file: the last partial segment leaves at once


def test_other_responses_are_never_corked_nor_delayed(tcp_socket: socket.socket,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cycle = _Cycle(tcp_socket)
    send = _wrapped(cycle, monkeypatch)
    body = {"type": "http.response.body", "body": b"hello world", "more_body": False}
    streamed_start = {"type": "http.response.start", "status": 200, "headers": []}

    async def respond() -> None:
        await send(SIZED_START)
        await send(body)
        await send(streamed_start)
        assert cycle.sent[-1] == ("http.response.start", 0)  # no Content-Length: the head leaves at once

    asyncio.run(respond())
    assert cycle.sent == [("http.response.start", 0), ("http.response.body", 0), ("http.response.start", 0)]


def test_a_head_request_for_a_file_sends_no_body_and_no_cork(tcp_socket: socket.socket,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cycle = _Cycle(tcp_socket, method="HEAD")
    send = _wrapped(cycle, monkeypatch)

    async def respond() -> None:
        await send(SIZED_START)
        await send({"type": sendfile.PATHSEND, "path": "/blobs/x"})

    asyncio.run(respond())
    assert cycle.sent == [("http.response.start", 0), ("http.response.body", 0)]


class _HeadInFlight:
    """A transport whose buffer still holds the response head for `polls` looks; closed once
    `close_after` looks have passed (None: never)."""

    def __init__(self, sock: socket.socket, polls: int, close_after: int | None = None) -> None:
        self.sock, self.polls, self.close_after, self.looks = sock, polls, close_after, 0

    def get_extra_info(self, name: str) -> object:
        return self.sock if name == "socket" else None

    def is_closing(self) -> bool:
        return self.close_after is not None and self.looks >= self.close_after

    def get_write_buffer_size(self) -> int:
        self.looks += 1
        return 100 if self.looks <= self.polls else 0


def test_the_file_waits_for_the_head_to_leave_and_a_closed_connection_gets_nothing(tmp_path: Path) -> None:
    path = tmp_path / "small"
    path.write_bytes(b"hello world")
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        waits = _HeadInFlight(ours, polls=3)
        asyncio.run(sendfile.send_file(waits, str(path), 11))  # type: ignore[arg-type]
        assert waits.looks == 4  # three looks with the head still buffered, then the file
        assert theirs.recv(100) == b"hello world"
        with pytest.raises(ConnectionError):
            asyncio.run(sendfile.send_file(_HeadInFlight(ours, polls=5, close_after=2), str(path), 11))  # type: ignore[arg-type]
        with pytest.raises(ConnectionError):  # closed before the first look
            asyncio.run(sendfile.send_file(_HeadInFlight(ours, polls=0, close_after=0), str(path), 11))  # type: ignore[arg-type]
        theirs.setblocking(False)
        with pytest.raises(BlockingIOError):
            theirs.recv(100)  # nothing more was sent
