"""Concurrency: racing pushes of the same content, racing tag updates, racing chunks of one session.

The server runs two worker processes. Every thread has its own connection, opened before the race and
checked (through /proc) to be spread over both workers, so the racing requests land in different
processes and only the filesystem and the database order them.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx
import pytest

from tests.durability.support import (
    assert_log_clean,
    blob_digest_via_get,
    connection_owners,
    finish,
    offset_of,
    patch,
    start_upload,
    upload_dirs,
)
from tests.oci_client import OCI_MANIFEST, make_image, push_blob, push_image, push_manifest, sha256
from tests.servers import RunningServer, database_url

THREADS = 16
KiB, MiB = 1 << 10, 1 << 20
T = TypeVar("T")


@pytest.fixture(scope="module")
def srv(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server per backend for this module (nothing here restarts it); each test uses its own repository."""
    data_dir = tmp_path_factory.mktemp(f"concurrency-{backend}")
    server = RunningServer(data_dir, database_url(backend, data_dir)).start()
    yield server
    server.stop()
    assert_log_clean(server)


def clients_on_both_workers(srv: RunningServer, n: int) -> list[httpx.Client]:
    """n clients, each with an open connection, the connections spread over both worker processes."""
    for _ in range(20):
        clients = [httpx.Client(base_url=srv.url, timeout=120) for _ in range(n)]
        for client in clients:
            assert client.get("/v2/").status_code == 200
        if len(connection_owners(srv)) >= 2:
            return clients
        for client in clients:
            client.close()
    raise AssertionError("the kernel kept handing every connection to the same worker")


def run_together(srv: RunningServer, n: int, work: Callable[[int, httpx.Client], T]) -> list[T]:
    """Run work(i, client) in n threads, released at the same moment, over connections already open
    to both workers (so the requests themselves race, in different processes)."""
    clients = clients_on_both_workers(srv, n)
    barrier = threading.Barrier(n)

    def one(i: int) -> T:
        barrier.wait()
        return work(i, clients[i])

    try:
        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(one, range(n)))
    finally:
        for client in clients:
            client.close()


def test_same_blob_pushed_by_many_at_once(srv: RunningServer, repo: str) -> None:
    data = os.urandom(4 * MiB + 321)
    digest = sha256(data)

    def push(i: int, client: httpx.Client) -> int:
        if i % 2 == 0:  # monolithic
            r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data,
                            headers={"Content-Type": "application/octet-stream"})
            return r.status_code
        uid = start_upload(client, repo)  # chunked, in three PATCHes
        for start in range(0, len(data), 2 * MiB):
            assert patch(client, repo, uid, data[start: start + 2 * MiB], start).status_code == 202
        return finish(client, repo, uid, digest).status_code

    assert run_together(srv, THREADS, push) == [201] * THREADS
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        r = client.head(f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == 200 and int(r.headers["content-length"]) == len(data)
        assert blob_digest_via_get(client, repo, digest) == digest
        assert client.get(f"/v2/{repo}/blobs/{digest}").content == data
    stored = [p for p in (srv.data_dir / "storage" / "blobs").rglob("*") if p.name == digest.split(":")[1]]
    assert len(stored) == 1 and stored[0].stat().st_size == len(data)  # one blob file, whole
    assert list((srv.data_dir / "storage" / "uploads").iterdir()) == []  # no session or temporary file left
    assert_log_clean(srv)



def test_many_manifests_to_one_tag_at_once(srv: RunningServer, repo: str) -> None:
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        base = push_image(client, repo, "base")
    bodies = [
        json.dumps({**base.manifest, "annotations": {"org.example.writer": str(i)}}).encode()
        for i in range(THREADS)
    ]

    def put(i: int, client: httpx.Client) -> tuple[int, str]:
        r = push_manifest(client, repo, "latest", bodies[i])
        return r.status_code, r.headers.get("docker-content-digest", r.text)

    results = run_together(srv, THREADS, put)
    assert [status for status, _ in results] == [201] * THREADS
    assert [digest for _, digest in results] == [sha256(b) for b in bodies]

    with httpx.Client(base_url=srv.url, timeout=60) as client:
        r = client.get(f"/v2/{repo}/manifests/latest", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200
        assert r.content in bodies  # the tag ends on one of the racing manifests, whole
        assert sha256(r.content) == r.headers["docker-content-digest"]
        for body in bodies:  # and every one of them was stored, reachable by digest
            by_digest = client.get(f"/v2/{repo}/manifests/{sha256(body)}", headers={"Accept": OCI_MANIFEST})
            assert by_digest.status_code == 200 and by_digest.content == body
        assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["base", "latest"]
    assert_log_clean(srv)



def test_racing_chunks_to_one_session(srv: RunningServer, repo: str) -> None:
    """Several threads each try to send every chunk of the same session, in order, from wherever the
    server says the upload stands. Exactly one copy of each chunk is accepted; the rest get 416."""
    chunk, n_chunks, writers = 256 * KiB, 24, 8
    data = os.urandom(chunk * n_chunks)
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        uid = start_upload(client, repo)

    def writer(_: int, client: httpx.Client) -> Counter[int]:
        statuses: Counter[int] = Counter()
        at = 0
        while at < len(data):
            r = patch(client, repo, uid, data[at: at + chunk], at)
            statuses[r.status_code] += 1
            assert r.status_code in (202, 416), r.text
            new_at = offset_of(r)
            # 202: exactly this chunk was added; 416: someone else got further. Never a torn chunk.
            assert new_at == at + chunk if r.status_code == 202 else new_at > at, (r.status_code, at, new_at)
            assert new_at % chunk == 0, new_at
            at = new_at
        return statuses

    totals = sum(run_together(srv, writers, writer), Counter())
    assert totals[202] == n_chunks, totals  # each chunk landed exactly once
    assert totals[416] > 0, totals  # and the races really happened
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        r = client.get(f"/v2/{repo}/blobs/uploads/{uid}")
        assert r.status_code == 204 and offset_of(r) == len(data)
        assert finish(client, repo, uid, sha256(data)).status_code == 201
        assert blob_digest_via_get(client, repo, sha256(data)) == sha256(data)
    assert upload_dirs(srv) == []
    assert_log_clean(srv)



def test_racing_pushes_of_the_same_image_to_new_repositories(srv: RunningServer, repo: str) -> None:
    """Every thread pushes the same image to the same, not yet existing repository and tag."""
    image = make_image(n_layers=3, layer_size=256 * KiB)

    def push(_: int, client: httpx.Client) -> int:
        for blob in (image.config, *image.layers):
            push_blob(client, repo, blob)
        return push_manifest(client, repo, "v1", image.body).status_code

    assert run_together(srv, THREADS, push) == [201] * THREADS
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        r = client.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200 and r.content == image.body
        assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
        catalog = client.get("/v2/_catalog").json()["repositories"]
        assert catalog.count(repo) == 1
    assert_log_clean(srv)


def test_chunk_racing_the_closing_put_never_corrupts_the_blob(srv: RunningServer, repo: str) -> None:
    """A PATCH that lands while the closing PUT is being verified must not end up inside the published
    blob. The PUT names a sha512 digest for a sha256 session, so the server re-hashes the whole upload
    under the upload lock: a wide window for the PATCH, which is sent a moment after the PUT."""
    data = os.urandom(32 * MiB)
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    outcomes = []
    for delay in (0.0, 0.005, 0.01, 0.02):
        with httpx.Client(base_url=srv.url, timeout=60) as closer, httpx.Client(base_url=srv.url, timeout=60) as other:
            uid = start_upload(closer, repo)
            assert patch(closer, repo, uid, data, 0).status_code == 202
            other.get("/v2/")
            with ThreadPoolExecutor(1) as pool:
                put = pool.submit(finish, closer, repo, uid, digest)
                time.sleep(delay)
                extra = patch(other, repo, uid, b"not part of the blob" * 100, len(data))
                closed = put.result()
            outcomes.append((closed.status_code, extra.status_code))
            # Before the PUT, during its check, after it: the chunk is taken, refused or too late.
            assert closed.status_code in (201, 400), closed.text
            assert extra.status_code in (202, 404, 416), extra.text
            head = closer.head(f"/v2/{repo}/blobs/{digest}")
            if closed.status_code == 201:  # whatever the PATCH got, the blob is exactly the verified bytes
                assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)
                body = closer.get(f"/v2/{repo}/blobs/{digest}").content
                assert len(body) == len(data), f"{len(body) - len(data)} bytes more than were verified"
                assert hashlib.sha512(body).hexdigest() == digest.split(":")[1]
            else:
                assert head.status_code == 404
                closer.delete(f"/v2/{repo}/blobs/uploads/{uid}")  # the session may still be there: drop it
    assert upload_dirs(srv) == [], outcomes
    assert_log_clean(srv)
