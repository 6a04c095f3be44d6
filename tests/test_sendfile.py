"""Blob bodies sent with sendfile(2) (the pathsend extension on uvicorn): exact bytes, slow and vanishing readers."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from portside.serving.sendfile import copy_file_to_socket
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
    copy_file_to_socket(ours.fileno(), str(path), len(data) - 1000)  # a prefix, as for a Content-Length
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
    with pytest.raises(OSError):
        copy_file_to_socket(ours.fileno(), str(path), 8 * MiB)
    ours.close()


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
