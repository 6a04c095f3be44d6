"""Garbage collection never breaks a push that succeeded.

The acceptance test runs many concurrent pushes (layers shared across images and repositories,
multi-arch indexes whose children arrive untagged first, cross-repository mounts, pushes abandoned
after their blobs, upload sessions left open) while garbage collection runs back to back with a zero
time window, sometimes deleting untagged manifests. Then every image whose manifest PUT answered 201
must pull whole, every blob hashing to its digest; and after one last collection the blob store
holds exactly the blobs the surviving manifests name.

With a zero window a collection may take the layers of a push whose manifest has not arrived yet:
that push is refused with MANIFEST_BLOB_UNKNOWN and the client pushes again. That is correct; a 201
for a manifest whose content is gone is not.

The white-box tests below it pin down the interleavings the acceptance test can only hit by luck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from portside.metadata.changes import ChangeCounter
from portside.metadata.database import Database
from portside.metadata.gc import GcQueries
from tests.conftest import ADMIN_PASSWORD
from tests.lifecycle.quota_support import (
    bearer,
    create_project,
    error_of,
    put_manifest,
    registry_client,
    run_gc,
    signed_in,
    token_for,
    upload,
    upload_chunked,
)
from tests.oci_client import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Image, descriptor, push_image, sha256
from tests.servers import RunningServer, database_url

THREADS, IMAGES_PER_THREAD, REPOS = 8, 10, 4
MIN_RUNS = 3  # collections that must run while pushes are under way
ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX])


@pytest.fixture
def gc_server(backend: str, tmp_path: Path) -> Iterator[RunningServer]:
    """A registry of the test's own (so the final blob count is exact), polling for jobs often."""
    data_dir = tmp_path / "data"
    srv = RunningServer(data_dir, database_url(backend, data_dir), auth=True,
                        env={"PORTSIDE_ADMIN_PASSWORD": ADMIN_PASSWORD, "PORTSIDE_JOBS__POLL_SECONDS": "0.2"})
    srv.start(timeout=60)
    yield srv
    srv.stop()


def new_image(rng: random.Random, shared: list[bytes]) -> Image:
    """Two layers from the shared pool, one of its own, and a config of its own."""
    layers = [*rng.sample(shared, 2), os.urandom(rng.randint(1000, 12000))]
    config = json.dumps({"architecture": "amd64", "os": "linux", "salt": os.urandom(8).hex()}).encode()
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
                "layers": [descriptor(OCI_LAYER, x) for x in layers]}
    return Image(config, layers, manifest)


@dataclass
class Pushed:
    """A tagged manifest that answered 201, and what it needs."""

    repo: str
    tag: str
    body: bytes
    children: list[Image] = field(default_factory=list)  # for an index
    image: Image | None = None


@dataclass
class Ledger:
    pushed: list[Pushed] = field(default_factory=list)
    manifests: set[tuple[str, str]] = field(default_factory=set)  # every (repo, digest) that answered 201
    images: dict[str, Image] = field(default_factory=dict)  # manifest digest -> image
    events: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, event: str) -> None:
        with self.lock:
            self.events[event] += 1


class Pusher:
    def __init__(self, server: RunningServer, token: str, repos: list[str], shared: list[bytes],
                 ledger: Ledger, seed: int) -> None:
        self.reg = bearer(server, token)
        self.repos = repos
        self.shared = shared
        self.ledger = ledger
        self.rng = random.Random(seed)

    def blobs(self, repo: str, image: Image) -> None:
        """Push what the repository lacks, as a client does: HEAD first, sometimes a mount."""
        for data in [image.config, *image.layers]:
            digest = sha256(data)
            if self.reg.head(f"/v2/{repo}/blobs/{digest}").status_code == 200:
                self.ledger.note("blob skipped (HEAD 200)")
                continue
            if data in self.shared and self.rng.random() < 0.3:
                source = self.rng.choice([r for r in self.repos if r != repo])
                r = self.reg.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": source})
                if r.status_code == 201:
                    self.ledger.note("blob mounted")
                    continue
                assert r.status_code == 202, r.text
                assert self.reg.delete(r.headers["Location"]).status_code == 204
            send = upload if self.rng.random() < 0.7 else upload_chunked
            r = send(self.reg, repo, data)
            assert r.status_code == 201, r.text
            self.ledger.note("blob uploaded")

    def manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> bool:
        r = put_manifest(self.reg, repo, ref, body, media_type)
        if r.status_code == 201:
            with self.ledger.lock:
                self.ledger.manifests.add((repo, sha256(body)))
            return True
        assert r.status_code == 400 and error_of(r)["code"] == "MANIFEST_BLOB_UNKNOWN", r.text
        self.ledger.note("manifest refused: MANIFEST_BLOB_UNKNOWN")
        return False

    def image(self, repo: str, tag: str) -> None:
        image = new_image(self.rng, self.shared)
        with self.ledger.lock:
            self.ledger.images[image.digest] = image
        for _ in range(4):  # a refused client pushes again
            self.blobs(repo, image)
            if self.manifest(repo, tag, image.body, OCI_MANIFEST):
                with self.ledger.lock:
                    self.ledger.pushed.append(Pushed(repo, tag, image.body, image=image))
                self.ledger.note("image pushed")
                return
        self.ledger.note("image given up")

    def index(self, repo: str, tag: str) -> None:
        children = [new_image(self.rng, self.shared) for _ in range(2)]
        with self.ledger.lock:
            for child in children:
                self.ledger.images[child.digest] = child
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {**descriptor(OCI_MANIFEST, c.body), "platform": {"architecture": arch, "os": "linux"}}
            for c, arch in zip(children, ("amd64", "arm64"), strict=True)]}).encode()
        for _ in range(4):
            for child in children:  # by digest, untagged until the index arrives
                for _ in range(4):
                    self.blobs(repo, child)
                    if self.manifest(repo, child.digest, child.body, OCI_MANIFEST):
                        break
            if self.manifest(repo, tag, body, OCI_INDEX):
                with self.ledger.lock:
                    self.ledger.pushed.append(Pushed(repo, tag, body, children=children))
                self.ledger.note("index pushed")
                return
        self.ledger.note("index given up")

    def interrupted(self, repo: str) -> None:
        """Blobs uploaded, manifest never sent."""
        self.blobs(repo, new_image(self.rng, self.shared))
        self.ledger.note("push interrupted after its blobs")

    def abandoned(self, repo: str) -> None:
        """An upload session started, half sent, never finished."""
        r = self.reg.post(f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202, r.text
        data = os.urandom(4000)
        r = self.reg.patch(r.headers["Location"], content=data[:2000], headers={"Content-Range": "0-1999"})
        assert r.status_code == 202, r.text
        self.ledger.note("upload session abandoned")

    def run(self, thread: int, enough: Callable[[], bool]) -> None:
        """IMAGES_PER_THREAD pushes, and more until `enough()` says the collector has run often
        enough alongside them (however fast pushes are), up to five times as many."""
        with self.reg:
            i = 0
            while i < IMAGES_PER_THREAD or (not enough() and i < 5 * IMAGES_PER_THREAD):
                i += 1
                repo = self.repos[(thread + i) % len(self.repos)]
                tag = f"t{thread}-{i}"
                roll = self.rng.random()
                if roll < 0.15:
                    self.interrupted(repo)
                elif roll < 0.25:
                    self.abandoned(repo)
                elif roll < 0.4:
                    self.index(repo, tag)
                else:
                    self.image(repo, tag)


def gc_loop(api: httpx.Client, stop: threading.Event, runs: list[dict[str, Any]]) -> None:
    """Collect again and again (every third run also deleting untagged manifests), with a short
    breather so pushes can complete between runs."""
    n = 0
    while not stop.wait(0.3):
        n += 1
        runs.append(run_gc(api, time_window=0, delete_untagged=n % 3 == 0))


def check_blob(reg: httpx.Client, repo: str, data: bytes, *, content: bool) -> str | None:
    digest = sha256(data)
    r = reg.request("GET" if content else "HEAD", f"/v2/{repo}/blobs/{digest}")
    if r.status_code != 200:
        return f"{repo}@{digest}: blob {r.request.method} {r.status_code}"
    if content and sha256(r.content) != digest:
        return f"{repo}@{digest}: blob content hashes to {sha256(r.content)}"
    return None


def check_manifest(reg: httpx.Client, repo: str, ref: str, body: bytes) -> str | None:
    r = reg.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
    if r.status_code != 200:
        return f"{repo}:{ref}: manifest GET {r.status_code}"
    if r.content != body:
        return f"{repo}:{ref}: manifest bytes differ"
    return None


def pull(server: RunningServer, token: str, item: Pushed, content: bool = True) -> list[str]:
    """Every problem pulling one pushed tag (empty when it pulls whole); `content=False` only checks
    that every blob is there."""
    problems = []
    with bearer(server, token) as reg:
        images = [item.image] if item.image is not None else item.children
        problems.append(check_manifest(reg, item.repo, item.tag, item.body))
        for image in images:
            assert image is not None
            if item.children:
                problems.append(check_manifest(reg, item.repo, image.digest, image.body))
            for data in [image.config, *image.layers]:
                problems.append(check_blob(reg, item.repo, data, content=content))
    return [p for p in problems if p]


def stored_blobs(server: RunningServer) -> set[str]:
    root = server.data_dir / "storage" / "blobs"
    return {f"{algo.name}:{f.name}" for algo in root.iterdir() for prefix in algo.iterdir() for f in prefix.iterdir()}


def test_concurrent_pushes_under_aggressive_gc_lose_nothing(gc_server: RunningServer) -> None:
    started = time.monotonic()
    project = "safety"
    repos = [f"{project}/r{i}" for i in range(REPOS)]
    shared = [os.urandom(random.randint(2000, 9000)) for _ in range(6)]
    ledger = Ledger()
    runs: list[dict[str, Any]] = []
    with signed_in(gc_server) as api:
        create_project(api, project)
        token = token_for(gc_server, repos)
        stop = threading.Event()
        collector = threading.Thread(target=gc_loop, args=(api, stop, runs), daemon=True)
        collector.start()
        pushers = [Pusher(gc_server, token, repos, shared, ledger, seed=t) for t in range(THREADS)]
        try:
            with ThreadPoolExecutor(THREADS) as pool:
                list(pool.map(lambda t: pushers[t].run(t, lambda: len(runs) >= MIN_RUNS), range(THREADS)))
        finally:
            stop.set()
            collector.join(120)
        pushed_at = time.monotonic()
        failed_runs = [r for r in runs if r["job_status"] != "Success"]
        assert not failed_runs, failed_runs[0]
        assert len(runs) >= 3, f"only {len(runs)} collections ran during the pushes"
        assert any(json.loads(r["job_parameters"])["delete_untagged"] for r in runs)

        # Every 201 pulls whole, every blob hashing to its digest.
        with ThreadPoolExecutor(THREADS) as pool:
            problems = [p for found in pool.map(lambda item: pull(gc_server, token, item), ledger.pushed)
                        for p in found]
        assert not problems, f"{len(problems)} problem(s) after concurrent GC: {problems[:10]}"

        # One last collection leaves exactly what the surviving manifests name.
        final = run_gc(api, time_window=0)
        assert final["job_status"] == "Success", final
        def present(manifest: tuple[str, str]) -> bool:
            with bearer(gc_server, token) as reg:
                r = reg.head(f"/v2/{manifest[0]}/manifests/{manifest[1]}", headers={"Accept": ACCEPT})
                return r.status_code == 200

        candidates = sorted(ledger.manifests)
        with ThreadPoolExecutor(THREADS) as pool:
            surviving = [m for m, ok in zip(candidates, pool.map(present, candidates), strict=True) if ok]
        # (manifests not surviving are untagged ones a delete_untagged run took: index children whose
        # index never made it, and the like)
        tagged = {(p.repo, sha256(p.body)) for p in ledger.pushed}
        assert tagged <= set(surviving)
        referenced = set()
        for _, digest in surviving:
            image = ledger.images.get(digest)
            if image is not None:  # indexes name no blobs of their own
                referenced |= {sha256(x) for x in [image.config, *image.layers]}
        on_disk = stored_blobs(gc_server)
        assert on_disk == referenced, (f"{len(on_disk - referenced)} unreferenced blob(s) left, "
                                       f"{len(referenced - on_disk)} referenced blob(s) missing")
        with ThreadPoolExecutor(THREADS) as pool:
            problems = [p for found in pool.map(lambda item: pull(gc_server, token, item, False), ledger.pushed)
                        for p in found]
        assert not problems, f"the last collection broke {len(problems)} thing(s): {problems[:10]}"

    pushes = ledger.events["image pushed"] + ledger.events["index pushed"]
    assert pushes == len(ledger.pushed) and pushes >= THREADS * IMAGES_PER_THREAD // 2
    print(f"\n{len(runs)} collections during the pushes; {dict(ledger.events)}; "
          f"{len(on_disk)} blobs kept; pushes {pushed_at - started:.1f} s, total {time.monotonic() - started:.1f} s")


# --- white-box: the interleavings, made to happen -----------------------------------------------------------

def pg_connect(server: RunningServer) -> psycopg.Connection[Any]:
    return psycopg.connect(server.database_url.replace("postgresql+psycopg://", "postgresql://"))


def commit_under_a_waiting_push(conn: psycopg.Connection[Any], reg: httpx.Client, repo: str, tag: str,
                                body: bytes) -> httpx.Response:
    """Announce the uncommitted change, start the manifest PUT, let it block on our row lock, then
    commit: the push resumes against what we did."""
    conn.execute("NOTIFY portside_changes")
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(put_manifest, reg, repo, tag, body, OCI_MANIFEST)
        wait_for_lock_waiter(conn)
        conn.commit()
        return pending.result(60)


def wait_for_lock_waiter(conn: psycopg.Connection[Any], timeout: float = 30) -> None:
    """Until another session of this database waits on a row lock."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(conn.info.dsn, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                  "AND wait_event_type = 'Lock'").fetchone()
            if row and row[0]:
                return
            time.sleep(0.02)
    raise AssertionError("no session ever waited on the lock")


# SQLite runs one writer at a time, so these two transactions can only interleave on PostgreSQL.
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_manifest_push_waiting_on_gc_does_not_trust_a_link_gc_dropped(
        backend: str, auth_server: RunningServer, project_name: str) -> None:
    """GC drops a repository's unreferenced link to a blob other repositories still use, holding the
    blob row FOR UPDATE; a manifest push into that repository waits for the row. When it gets it, it
    must see the link is gone. (A single locking join re-checks only the locked blob row and would
    return the deleted link from its older snapshot: a 201 for a manifest whose layer 404s.)"""
    with signed_in(auth_server) as api:
        create_project(api, project_name)
    keeper, pusher = f"{project_name}/keeper", f"{project_name}/pusher"
    with registry_client(auth_server, [keeper, pusher]) as reg:
        kept = push_image(reg, keeper, "v1")
        layer = kept.layers[0]
        image = Image(kept.config, [layer], {**kept.manifest, "layers": [descriptor(OCI_LAYER, layer)]})
        for data in (image.config, layer):
            assert upload(reg, pusher, data).status_code == 201
        with pg_connect(auth_server) as conn:
            repo_id = conn.execute("SELECT id FROM repositories WHERE name = %s", (pusher,)).fetchone()
            assert repo_id is not None
            conn.execute("SELECT digest FROM blobs WHERE digest = %s FOR UPDATE", (sha256(layer),))
            conn.execute("DELETE FROM repository_blobs WHERE repository_id = %s AND digest = %s",
                         (repo_id[0], sha256(layer)))
            r = commit_under_a_waiting_push(conn, reg, pusher, "v1", image.body)
        if r.status_code == 201:
            layer_status = reg.get(f"/v2/{pusher}/blobs/{sha256(layer)}").status_code
            pytest.fail(f"manifest accepted although its layer link was gone (layer GET: {layer_status})")
        assert r.status_code == 400 and error_of(r)["code"] == "MANIFEST_BLOB_UNKNOWN", r.text


# SQLite runs one writer at a time, so these two transactions can only interleave on PostgreSQL.
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_repush_of_a_manifest_gc_is_deleting_stores_it_again(
        backend: str, auth_server: RunningServer, project_name: str) -> None:
    """GC deletes an untagged manifest while a client pushes the same bytes with a tag: the push
    waits on the row, finds it gone, and must store the manifest afresh (not tag a deleted row)."""
    with signed_in(auth_server) as api:
        create_project(api, project_name)
    repo = f"{project_name}/app"
    with registry_client(auth_server, [repo]) as reg:
        image = push_image(reg, repo, "tmp")
        assert reg.delete(f"/v2/{repo}/manifests/tmp").status_code == 202
        with pg_connect(auth_server) as conn:
            row = conn.execute("SELECT m.id FROM manifests m JOIN repositories r ON r.id = m.repository_id "
                               "WHERE r.name = %s AND m.digest = %s FOR UPDATE", (repo, image.digest)).fetchone()
            assert row is not None
            conn.execute("DELETE FROM manifest_references WHERE manifest_id = %s", (row[0],))
            conn.execute("DELETE FROM manifests WHERE id = %s", (row[0],))
            r = commit_under_a_waiting_push(conn, reg, repo, "again", image.body)
        assert r.status_code == 201, r.text
        got = reg.get(f"/v2/{repo}/manifests/again", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200 and got.content == image.body


@contextlib.asynccontextmanager
async def gc_queries(server: RunningServer) -> AsyncIterator[GcQueries]:
    """GC's queries on the server's database, from this process (bumping the server's change counter)."""
    changes = ChangeCounter(server.data_dir.absolute() / ".portside-changes")
    db = Database(server.database_url, pool_size=2, changes=changes)
    try:
        yield GcQueries(db)
    finally:
        await db.close()
        changes.close()


def test_gc_spares_an_untagged_manifest_that_became_an_index_child_or_was_pushed_again(
        auth_server: RunningServer, project_name: str) -> None:
    """GC lists untagged manifests, then deletes them one by one: one that an index started listing,
    or that was pushed again, in between must be spared (the delete re-checks under the row lock)."""
    with signed_in(auth_server) as api:
        create_project(api, project_name)
    repo = f"{project_name}/app"
    with registry_client(auth_server, [repo]) as reg:
        child = push_image(reg, repo, "child")
        again = push_image(reg, repo, "again")
        for tag in ("child", "again"):
            assert reg.delete(f"/v2/{repo}/manifests/{tag}").status_code == 202

        async def listed() -> dict[str, int]:
            async with gc_queries(auth_server) as gc:
                found = await gc.untagged_manifests(datetime.now(UTC) + timedelta(hours=1))
                return {m.digest: m.id for m in found if m.repository == repo}

        cutoff = datetime.now(UTC) + timedelta(seconds=1)
        ids = asyncio.run(listed())  # GC's listing: both untagged, both old enough
        assert set(ids) == {child.digest, again.digest}
        time.sleep(1.5)  # the pushes below come after the cutoff
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, child.body)]}
        assert put_manifest(reg, repo, "multi", json.dumps(index).encode(), OCI_INDEX).status_code == 201
        assert put_manifest(reg, repo, again.digest, again.body, OCI_MANIFEST).status_code == 201

        async def delete_both() -> list[bool]:
            async with gc_queries(auth_server) as gc:
                return [await gc.delete_if_still_untagged(ids[d], cutoff) for d in (child.digest, again.digest)]

        assert asyncio.run(delete_both()) == [False, False]
        for digest, body in ((child.digest, child.body), (again.digest, again.body)):
            got = reg.get(f"/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
            assert got.status_code == 200 and got.content == body


# SQLite runs one writer at a time, so these two transactions can only interleave on PostgreSQL.
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_gc_adopting_an_orphan_file_tolerates_a_push_committing_its_row(
        backend: str, auth_server: RunningServer) -> None:
    """A published file whose row is not committed yet looks like an orphan to GC; when GC's insert of
    an old row meets the push's row, GC must leave the push's row alone (and not fail the run)."""
    digest = sha256(os.urandom(64))
    with pg_connect(auth_server) as conn:
        conn.execute("INSERT INTO blobs (digest, size, created_at, last_linked_at) VALUES (%s, 64, now(), now())",
                     (digest,))

        async def adopt() -> None:
            async with gc_queries(auth_server) as gc:
                await gc.adopt_orphan(digest, 64)

        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(asyncio.run, adopt())
            wait_for_lock_waiter(conn)
            conn.commit()
            pending.result(60)
        row = conn.execute("SELECT last_linked_at FROM blobs WHERE digest = %s", (digest,)).fetchone()
        assert row is not None and row[0] > datetime.now(UTC) - timedelta(minutes=5), "the push's row was replaced"
        conn.execute("DELETE FROM blobs WHERE digest = %s", (digest,))
        conn.commit()


def test_concurrent_mounts_of_one_blob_do_not_deadlock(auth_server: RunningServer, project_name: str) -> None:
    """Found by the acceptance test on PostgreSQL: a mount locked the blob row shared, then updated it
    while linking; two mounts of one blob each held it shared and waited for the other (a deadlock,
    answered 500). Mounts now take the row exclusively from the start."""
    with signed_in(auth_server) as api:
        create_project(api, project_name)
    source = f"{project_name}/source"
    targets = [f"{project_name}/t{i}" for i in range(12)]
    token = token_for(auth_server, [source, *targets])
    with bearer(auth_server, token) as reg:
        layer = os.urandom(3000)
        assert upload(reg, source, layer).status_code == 201

    def mount(target: str) -> int:
        with bearer(auth_server, token) as c:
            r = c.post(f"/v2/{target}/blobs/uploads/", params={"mount": sha256(layer), "from": source})
            return r.status_code

    for _ in range(3):
        with ThreadPoolExecutor(len(targets)) as pool:
            assert list(pool.map(mount, targets)) == [201] * len(targets)
