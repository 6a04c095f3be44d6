"""The tag/manifest read cache never serves a stale answer after a write: across the worker
processes of one server at once, and across replicas sharing a PostgreSQL database (via NOTIFY)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from portside.metadata.changes import ACCESS, ChangeCounter
from tests.oci_client import make_image, push_image, sha256
from tests.servers import RunningServer, new_postgres_database


def test_retag_is_visible_immediately_on_every_worker(client: httpx.Client, repo: str) -> None:
    first = push_image(client, repo, "moving")
    for _ in range(20):  # warm the cache in both worker processes
        assert client.get(f"/v2/{repo}/manifests/moving").content == first.body
    for _ in range(5):
        second = push_image(client, repo, "moving", make_image())
        for _ in range(10):
            r = client.get(f"/v2/{repo}/manifests/moving")
            assert r.content == second.body and r.headers["docker-content-digest"] == second.digest
        first = second


def test_deleted_blob_is_gone_at_once(client: httpx.Client, repo: str) -> None:
    image = push_image(client, repo, "v1")
    digest = sha256(image.layers[0])
    assert client.delete(f"/v2/{repo}/manifests/v1").status_code == 202
    assert client.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202
    for _ in range(10):
        assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 200
    assert client.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
    for _ in range(10):
        assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 404


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[RunningServer, RunningServer]]:
    url = new_postgres_database()
    a = RunningServer(tmp_path / "a", url, workers=1).start()
    b = RunningServer(tmp_path / "b", url, workers=1).start()
    yield a, b
    a.stop()
    b.stop()


def test_replicas_on_postgres_see_each_others_tag_updates(replicas: tuple[RunningServer, RunningServer]) -> None:
    a, b = replicas
    with httpx.Client(base_url=a.url) as ca, httpx.Client(base_url=b.url) as cb:
        image = push_image(ca, "team/app", "live")
        push_image(cb, "team/app", "other", image)  # b has the blobs linked too
        assert cb.get("/v2/team/app/manifests/live").content == image.body  # cached on b now
        newer = push_image(ca, "team/app", "live", make_image())
        deadline = time.monotonic() + 2
        while cb.get("/v2/team/app/manifests/live").content != newer.body:
            assert time.monotonic() < deadline, "replica b kept serving the old tag"
            time.sleep(0.01)


def test_content_writes_bump_one_counter_and_access_writes_both(tmp_path: Path) -> None:
    """Two processes' counters on one file: what pushes bump leaves project and account caches valid."""
    mine, theirs = ChangeCounter(tmp_path / "changes"), ChangeCounter(tmp_path / "changes")
    start = theirs.current(), theirs.current(ACCESS)
    mine.bump(access=False)
    assert (theirs.current(), theirs.current(ACCESS)) == (start[0] + 1, start[1])
    mine.bump()
    assert (theirs.current(), theirs.current(ACCESS)) == (start[0] + 2, start[1] + 1)
