"""Request bodies at /api/v2.0 and /c: read only from someone signed in, and capped (api.max_body_bytes,
1 MiB by default) with 413, whether the size is declared or the body comes chunked."""

from __future__ import annotations

import base64
import json
import select
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.accounts import API, Accounts, error_message, unique
from tests.conftest import ADMIN_PASSWORD
from tests.durability.support import RawRequest, RssSampler, group_rss
from tests.servers import RunningServer

MiB = 1 << 20
CAP = MiB
BASIC_ADMIN = "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()


@pytest.fixture
def accounts(auth_server: RunningServer, admin: httpx.Client) -> Iterator[Accounts]:
    a = Accounts(auth_server, admin)
    yield a
    a.close()


def status_without_body(server: RunningServer, path: str, headers: dict[str, str]) -> int | None:
    """Send only the head of a request that announces a big body: an answer proves the server did
    not wait for (read) the body."""
    req = RawRequest(server, "POST", path, {"Content-Type": "application/json", **headers})
    try:
        return req.response_status()
    finally:
        req.close()


def test_anonymous_bodies_are_refused_unread(auth_server: RunningServer, accounts: Accounts) -> None:
    big = {"Content-Length": str(48 * MiB)}
    assert status_without_body(auth_server, f"{API}/projects", big) == 401
    assert status_without_body(auth_server, f"{API}/projects", {"Transfer-Encoding": "chunked"}) == 401
    wrong = "Basic " + base64.b64encode(b"admin:Not-The-Passw0rd").decode()
    assert status_without_body(auth_server, f"{API}/projects", {**big, "Authorization": wrong}) == 401
    assert status_without_body(auth_server, f"{API}/users", {**big, "Cookie": "sid=forged"}) == 401
    # Signed in, a declared size over the cap is refused at once, also unread.
    assert status_without_body(auth_server, f"{API}/projects", {**big, "Authorization": BASIC_ADMIN}) == 413
    r = httpx.post(f"{auth_server.url}{API}/projects", content=b"{}" + b" " * CAP)
    assert error_message(r, 401) and r.headers["www-authenticate"].startswith("Basic")


def test_bodies_over_the_cap_get_413(auth_server: RunningServer, accounts: Accounts, admin: httpx.Client) -> None:
    name = unique("p")
    padded = json.dumps({"project_name": name}).encode() + b" " * (CAP - 100)
    assert admin.post(f"{API}/projects", content=padded,
                      headers={"Content-Type": "application/json"}).status_code == 201
    over = json.dumps({"project_name": unique("p")}).encode() + b" " * CAP
    for client in (admin, accounts.admin):  # Basic credentials and a portal session
        error_message(client.post(f"{API}/projects", content=over, headers={"Content-Type": "application/json"}),
                      413)
        chunked = client.post(f"{API}/projects", content=iter([over[:CAP // 2], over[CAP // 2:]]),
                              headers={"Content-Type": "application/json"})
        assert error_message(chunked, 413) and chunked.request.headers["transfer-encoding"] == "chunked"
    # The sign-in form is capped too, though it needs no sign-in.
    r = httpx.post(f"{auth_server.url}/c/login", data={"principal": "admin", "password": "x" * (CAP + 1)})
    assert r.json()["errors"][0]["code"] == "PAYLOAD_TOO_LARGE" and r.status_code == 413
    assert admin.get(f"{API}/projects/{name}").status_code == 200


def send_big_body(server: RunningServer, size: int, *, chunked: bool, statuses: list[int | None]) -> None:
    """Stream `size` bytes at the server as an anonymous project creation, stopping when it answers."""
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(size)}
    req = RawRequest(server, "POST", f"{API}/projects", {"Content-Type": "application/json", **framing})
    piece = b" " * MiB
    if chunked:
        piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    try:
        for _ in range(size // MiB):
            readable, _, _ = select.select([req.sock], [], [], 0)
            if readable:
                break  # answered already
            req.send(piece)
        else:
            if chunked:
                req.send(b"0\r\n\r\n")
    except OSError:
        pass  # the server closed the connection: it wants no more
    statuses.append(req.response_status())
    req.close()


def test_anonymous_big_bodies_do_not_grow_the_workers(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = RunningServer(data_dir, f"sqlite:///{data_dir / 'portside.db'}", auth=True,
                           env={"PORTSIDE_ADMIN_PASSWORD": ADMIN_PASSWORD}).start()
    try:
        assert server.proc is not None
        pgid = server.proc.pid
        for _ in range(16):  # warm every worker up on the same path
            send_big_body(server, MiB, chunked=False, statuses=[])
            send_big_body(server, MiB, chunked=True, statuses=[])
        baseline = sum(group_rss(pgid).values())
        statuses: list[int | None] = []
        threads = [threading.Thread(target=send_big_body, args=(server, 48 * MiB),
                                    kwargs={"chunked": i % 2 == 1, "statuses": statuses}) for i in range(6)]
        with RssSampler(pgid) as sampler:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        growth = sampler.peak - baseline
        assert growth < 12 * MiB, f"server RSS grew {growth / MiB:.1f} MiB: {sampler.peak_by_pid}"
        assert statuses == [401] * 6
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_the_cap_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from portside.config import load_settings

    assert load_settings().api.max_body_bytes == CAP
    monkeypatch.setenv("PORTSIDE_API__MAX_BODY_BYTES", "4096")
    assert load_settings().api.max_body_bytes == 4096
