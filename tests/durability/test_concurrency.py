"""Concurrency: racing pushes of the same content, racing tag updates, racing chunks of one session.

The server runs two worker processes and every thread has its own connection, so the racing requests
land in different processes and only the filesystem and the database order them.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx
import pytest

from tests.durability.support import (
    blob_digest_via_get,
    finish,
    offset_of,
    patch,
    sha256,
    start_upload,
    upload_dirs,
)
from tests.oci_client import OCI_MANIFEST, make_image, push_blob, push_image, push_manifest
from tests.servers import RunningServer

THREADS = 16
KiB, MiB = 1 << 10, 1 << 20
T = TypeVar("T")


@pytest.fixture
def srv(fresh_server: RunningServer) -> Iterator[RunningServer]:
    yield fresh_server.start()


def run_together(n: int, work: Callable[[int, httpx.Client], T], url: str) -> list[T]:
    """Run work(i, client) in n threads, each with its own connection, released at the same moment."""
    barrier = threading.Barrier(n)

    def one(i: int) -> T:
        with httpx.Client(base_url=url, timeout=120) as client:
            client.get("/v2/")  # connect before the barrier, so the requests themselves race
            barrier.wait()
            return work(i, client)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


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

    assert run_together(THREADS, push, srv.url) == [201] * THREADS
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        r = client.head(f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == 200 and int(r.headers["content-length"]) == len(data)
        assert blob_digest_via_get(client, repo, digest) == digest
        assert client.get(f"/v2/{repo}/blobs/{digest}").content == data
    stored = [p for p in (srv.data_dir / "storage" / "blobs").rglob("*") if p.is_file()]
    assert [p.name for p in stored] == [digest.split(":")[1]]  # one blob, and no stray copies
    assert list((srv.data_dir / "storage" / "uploads").iterdir()) == []


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

    results = run_together(THREADS, put, srv.url)
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
            assert new_at % chunk == 0 and new_at >= at - chunk, (at, new_at)  # never a torn chunk
            at = new_at
        return statuses

    totals = sum(run_together(writers, writer, srv.url), Counter())
    assert totals[202] == n_chunks, totals  # each chunk landed exactly once
    assert totals[416] > 0, totals  # and the races really happened
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        r = client.get(f"/v2/{repo}/blobs/uploads/{uid}")
        assert r.status_code == 204 and offset_of(r) == len(data)
        assert finish(client, repo, uid, sha256(data)).status_code == 201
        assert blob_digest_via_get(client, repo, sha256(data)) == sha256(data)
    assert upload_dirs(srv) == []


def test_racing_pushes_of_the_same_image_to_new_repositories(srv: RunningServer, repo: str) -> None:
    """Every thread pushes the same image to the same, not yet existing repository and tag."""
    image = make_image(n_layers=3, layer_size=256 * KiB)

    def push(_: int, client: httpx.Client) -> int:
        for blob in (image.config, *image.layers):
            push_blob(client, repo, blob)
        return push_manifest(client, repo, "v1", image.body).status_code

    assert run_together(THREADS, push, srv.url) == [201] * THREADS
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        r = client.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200 and r.content == image.body
        assert client.get("/v2/_catalog").json()["repositories"] == [repo]
