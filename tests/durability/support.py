"""Helpers for the durability tests: raw sockets, upload bookkeeping, server process memory."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.servers import RunningServer


def assert_log_clean(server: RunningServer) -> None:
    """No request or background task failed with an unhandled exception (they would log a traceback)."""
    log = server.log()
    assert "Traceback" not in log, log[-5000:]


def upload_dirs(server: RunningServer) -> list[str]:
    """Upload session directories the server's filesystem store still holds."""
    root = server.data_dir / "storage" / "uploads"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def upload_id(response: httpx.Response) -> str:
    return response.headers["location"].rstrip("/").rsplit("/", 1)[-1]


def offset_of(response: httpx.Response) -> int:
    """Bytes received so far, from a `Range: 0-<last>` header (`0-0` is ambiguous: callers avoid it)."""
    first, last = response.headers["range"].split("-")
    assert first == "0", response.headers["range"]
    return int(last) + 1 if int(last) > 0 else 0


def start_upload(client: httpx.Client, repo: str) -> str:
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    return upload_id(r)


def patch(client: httpx.Client, repo: str, uid: str, data: bytes, start: int) -> httpx.Response:
    return client.patch(
        f"/v2/{repo}/blobs/uploads/{uid}", content=data,
        headers={"Content-Type": "application/octet-stream",
                 "Content-Range": f"{start}-{start + len(data) - 1}"},
    )


def finish(client: httpx.Client, repo: str, uid: str, digest: str) -> httpx.Response:
    return client.put(f"/v2/{repo}/blobs/uploads/{uid}", params={"digest": digest})


def blob_digest_via_get(client: httpx.Client, repo: str, digest: str) -> str:
    """Stream the blob and hash it (never holding it in memory)."""
    hasher = hashlib.sha256()
    with client.stream("GET", f"/v2/{repo}/blobs/{digest}") as r:
        assert r.status_code == 200, r.read()
        for chunk in r.iter_bytes(1 << 20):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def raw_get_digest(server: RunningServer, path: str) -> str:
    """GET over a plain socket, hashing the body as it arrives: for big blobs, where httpx's
    per-chunk overhead would dominate the test's run time."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {server.host}\r\nConnection: close\r\n\r\n".encode())
        buf = bytearray(4 << 20)
        view = memoryview(buf)
        head = b""
        while b"\r\n\r\n" not in head:
            n = sock.recv_into(buf)
            assert n, "connection closed before the response headers ended"
            head += bytes(view[:n])
        head, body = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].split(" ")[1] == "200", lines[0]
        fields = dict(line.split(":", 1) for line in lines[1:])
        length = int({k.lower(): v for k, v in fields.items()}["content-length"])
        hasher = hashlib.sha256(body)
        received = len(body)
        while received < length:
            n = sock.recv_into(buf)
            assert n, f"connection closed after {received} of {length} bytes"
            hasher.update(view[:n])
            received += n
        assert received == length
    return "sha256:" + hasher.hexdigest()


class RawRequest:
    """An HTTP/1.1 request written by hand on a plain socket, so a test controls exactly how much
    of the body the server gets and when the connection goes away."""

    def __init__(self, server: RunningServer, method: str, target: str, headers: dict[str, str]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        head = f"{method} {target} HTTP/1.1\r\nHost: {server.host}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self.sock.sendall(head.encode())

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response_status(self) -> int | None:
        """The status line's code, or None when the server closed without answering."""
        buf = b""
        try:
            while b"\r\n" not in buf:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return None
                buf += chunk
        except OSError:
            return None
        return int(buf.split(b" ", 2)[1])

    def close(self) -> None:
        self.sock.close()


def wait_for_file_size(path: Path, at_least: int, timeout: float = 20) -> int:
    """Wait until the server has written `at_least` bytes of an upload to disk."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size >= at_least:
            return size
        time.sleep(0.02)
    raise AssertionError(f"{path} did not reach {at_least} bytes within {timeout}s")


def connection_owners(server: RunningServer) -> dict[int, int]:
    """How many established connections to the server's port each of its processes holds."""
    assert server.proc is not None
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == server.port and fields[3] == "01":  # 01: ESTABLISHED
                inodes.add(fields[9])
    owners: dict[int, int] = {}
    for pid in group_pids(server.proc.pid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                owners[pid] = owners.get(pid, 0) + 1
    return owners


# -- process memory ----------------------------------------------------------------------------


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def group_rss(pgid: int) -> dict[int, int]:
    return {pid: rss_bytes(pid) for pid in group_pids(pgid)}


class RssSampler:
    """Samples the summed RSS of a process group in a background thread; `peak` is the largest sum."""

    def __init__(self, pgid: int, interval: float = 0.02) -> None:
        self.pgid = pgid
        self.interval = interval
        self.peak = 0
        self.peak_by_pid: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = group_rss(self.pgid)
            total = sum(sample.values())
            if total > self.peak:
                self.peak, self.peak_by_pid = total, sample
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def generated_chunks(total: int, seed: bytes, chunk: int = 1 << 20) -> Iterator[bytes]:
    """`total` bytes of deterministic, non-repeating-per-chunk content, produced one chunk at a time."""
    block = hashlib.shake_256(seed).digest(chunk)
    sent, n = 0, 0
    while sent < total:
        piece = n.to_bytes(8, "big") + block[8:]
        piece = piece[: min(chunk, total - sent)]
        yield piece
        sent += len(piece)
        n += 1
