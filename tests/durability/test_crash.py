"""Crash safety and graceful restart: upload sessions survive SIGKILL and SIGTERM of the server.

A SIGKILL of the whole process group is a crash: no handler, no cleanup, writes cut off wherever they
were. What the server has on disk afterwards must still be a clean state: every upload session reports
an offset that is a prefix of what the client sent, resumes from there to a blob with the right digest
(or can be cancelled and done again), nothing unfinished is visible as a blob, and every blob finished
before the crash is served intact.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.durability.support import (
    RawRequest,
    assert_log_clean,
    blob_digest_via_get,
    finish,
    offset_of,
    patch,
    start_upload,
    upload_dirs,
    wait_for_file_size,
)
from tests.oci_client import push_blob, sha256
from tests.servers import RunningServer

KiB, MiB = 1 << 10, 1 << 20


def _stalled_patch(srv: RunningServer, repo: str, uid: str, start: int, chunk: bytes, send: int) -> RawRequest:
    """A PATCH announcing all of `chunk` whose body stops after `send` bytes, connection left open."""
    req = RawRequest(srv, "PATCH", f"/v2/{repo}/blobs/uploads/{uid}", {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(len(chunk)),
        "Content-Range": f"{start}-{start + len(chunk) - 1}",
    })
    req.send(chunk[:send])
    return req


def test_sigkill_mid_chunk_leaves_resumable_sessions(fresh_server: RunningServer, repo: str) -> None:
    srv = fresh_server.start()
    uploads_root = srv.data_dir / "storage" / "uploads"
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        # Blobs finished before the crash, monolithic and chunked, including the empty blob.
        done = {sha256(b): b for b in (os.urandom(100 * KiB), os.urandom(3 * MiB + 17), b"")}
        for data in done.values():
            push_blob(client, repo, data)
        chunked_done = os.urandom(2 * MiB + 5)
        uid = start_upload(client, repo)
        assert patch(client, repo, uid, chunked_done[: MiB], 0).status_code == 202
        # closing with the digest of the whole blob while only half was sent: refused, session discarded
        assert finish(client, repo, uid, sha256(chunked_done)).status_code == 400
        assert client.get(f"/v2/{repo}/blobs/uploads/{uid}").status_code == 404
        uid = start_upload(client, repo)
        assert patch(client, repo, uid, chunked_done[: MiB], 0).status_code == 202
        assert patch(client, repo, uid, chunked_done[MiB:], MiB).status_code == 202
        assert finish(client, repo, uid, sha256(chunked_done)).status_code == 201
        done[sha256(chunked_done)] = chunked_done

        # Sessions in flight at the crash. `sent` is how much of each blob the server was given.
        blobs = {name: os.urandom(6 * MiB + 123) for name in ("idle", "mid", "first", "cancel")}
        sent: dict[str, int] = {}
        ids = {name: start_upload(client, repo) for name in blobs}
        open_requests = []

        # idle: one whole chunk acknowledged, then nothing.
        assert patch(client, repo, ids["idle"], blobs["idle"][: 300 * KiB], 0).status_code == 202
        sent["idle"] = 300 * KiB
        # mid and cancel: one chunk acknowledged, the second cut off after 1.5 of its 3 MiB.
        for name in ("mid", "cancel"):
            data = blobs[name]
            assert patch(client, repo, ids[name], data[: 256 * KiB], 0).status_code == 202
            open_requests.append(_stalled_patch(srv, repo, ids[name], 256 * KiB, data[256 * KiB: 256 * KiB + 3 * MiB],
                                                3 * MiB // 2))
            sent[name] = 256 * KiB + 3 * MiB // 2
        # first: the very first chunk (4 MiB) cut off after 2.5 MiB.
        open_requests.append(_stalled_patch(srv, repo, ids["first"], 0, blobs["first"][: 4 * MiB], 5 * MiB // 2))
        sent["first"] = 5 * MiB // 2
        # A monolithic POST cut off halfway through its body.
        mono = os.urandom(4 * MiB)
        before = set(upload_dirs(srv))
        mono_req = RawRequest(srv, "POST", f"/v2/{repo}/blobs/uploads/?digest={sha256(mono)}", {
            "Content-Type": "application/octet-stream", "Content-Length": str(len(mono))})
        mono_req.send(mono[: 2 * MiB + 100])
        open_requests.append(mono_req)

        # Make sure the server is really in the middle of writing each cut-off chunk before killing it.
        for name in ("mid", "cancel"):
            wait_for_file_size(uploads_root / ids[name] / "data", 256 * KiB + MiB)
        wait_for_file_size(uploads_root / ids["first"] / "data", MiB)  # the store writes as bytes arrive
        deadline = time.monotonic() + 20
        while not (mono_dirs := set(upload_dirs(srv)) - before) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(mono_dirs) == 1
        wait_for_file_size(uploads_root / next(iter(mono_dirs)) / "data", MiB)

    srv.kill()
    for req in open_requests:
        assert req.response_status() is None  # the crash answered nothing
        req.close()
    srv.start()

    with httpx.Client(base_url=srv.url, timeout=60) as client:
        # (c) nothing unfinished is visible as a blob.
        for data in [*blobs.values(), mono]:
            assert client.head(f"/v2/{repo}/blobs/{sha256(data)}").status_code == 404

        # (a) each session reports a clean offset: a prefix of what was sent, never more.
        offsets = {}
        for name, uid in ids.items():
            r = client.get(f"/v2/{repo}/blobs/uploads/{uid}")
            assert r.status_code == 204, r.text
            offsets[name] = offset_of(r)
            assert offsets[name] <= sent[name], (name, offsets[name], sent[name])
        assert offsets["idle"] == sent["idle"]  # an acknowledged chunk is never lost
        assert offsets["mid"] >= 256 * KiB and offsets["cancel"] >= 256 * KiB

        # (a) resume from the reported offset; a chunk at any other offset is refused.
        for name in ("idle", "mid", "first"):
            uid, data, at = ids[name], blobs[name], offsets[name]
            r = patch(client, repo, uid, data[at + 1: at + 1000], at + 1)
            assert r.status_code == 416 and offset_of(r) == at, r.text
            middle = at + (len(data) - at) // 2
            r = patch(client, repo, uid, data[at:middle], at)
            assert r.status_code == 202 and offset_of(r) == middle, r.text
            # the last piece rides on the closing PUT
            r = client.put(f"/v2/{repo}/blobs/uploads/{uid}", params={"digest": sha256(data)}, content=data[middle:],
                           headers={"Content-Range": f"{middle}-{len(data) - 1}",
                                    "Content-Type": "application/octet-stream"})
            assert r.status_code == 201, r.text
            assert r.headers["docker-content-digest"] == sha256(data)
            assert blob_digest_via_get(client, repo, sha256(data)) == sha256(data)

        # (b) cancel a cut-off session and upload the same blob again from scratch.
        uid = ids["cancel"]
        assert client.delete(f"/v2/{repo}/blobs/uploads/{uid}").status_code == 204
        assert client.get(f"/v2/{repo}/blobs/uploads/{uid}").status_code == 404
        assert patch(client, repo, uid, b"x", offsets["cancel"]).status_code == 404
        assert client.head(f"/v2/{repo}/blobs/{sha256(blobs['cancel'])}").status_code == 404
        uid = start_upload(client, repo)
        data = blobs["cancel"]
        assert patch(client, repo, uid, data[: 4 * MiB], 0).status_code == 202
        assert patch(client, repo, uid, data[4 * MiB:], 4 * MiB).status_code == 202
        assert finish(client, repo, uid, sha256(data)).status_code == 201
        assert blob_digest_via_get(client, repo, sha256(data)) == sha256(data)

        # (c) the cut-off monolithic push never became a blob.
        assert client.head(f"/v2/{repo}/blobs/{sha256(mono)}").status_code == 404
        assert client.get(f"/v2/{repo}/blobs/{sha256(mono)}").status_code == 404

        # (d) everything finished before the crash is still served intact.
        for digest, data in done.items():
            r = client.head(f"/v2/{repo}/blobs/{digest}")
            assert r.status_code == 200 and int(r.headers["content-length"]) == len(data)
            assert blob_digest_via_get(client, repo, digest) == digest

    # Finished and cancelled sessions left no directories; only the crashed monolithic push's remains
    # (an abandoned session, which nothing can resume but the purge of old uploads).
    assert set(upload_dirs(srv)) <= mono_dirs
    assert_log_clean(srv)


def test_sigterm_keeps_idle_sessions_and_finishes_chunks_in_flight(fresh_server: RunningServer, repo: str) -> None:
    """SIGTERM is a graceful stop: an idle session survives it, and a chunk still streaming when the
    signal arrives is received in full, acknowledged, and there after the restart."""
    srv = fresh_server.start()
    idle, streaming = os.urandom(5 * MiB + 99), os.urandom(8 * MiB)
    with httpx.Client(base_url=srv.url, timeout=60) as client, \
            httpx.Client(base_url=srv.url, timeout=60) as streamer:
        finished = push_blob(client, repo, os.urandom(64 * KiB))
        idle_id = start_upload(client, repo)
        assert patch(client, repo, idle_id, idle[: 2 * MiB], 0).status_code == 202
        streaming_id = start_upload(client, repo)

        def slow_body() -> Iterator[bytes]:
            for start in range(0, len(streaming), MiB):
                yield streaming[start: start + MiB]
                time.sleep(0.1)

        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(
                streamer.patch, f"/v2/{repo}/blobs/uploads/{streaming_id}", content=slow_body(),
                headers={"Content-Type": "application/octet-stream", "Content-Range": f"0-{len(streaming) - 1}"})
            wait_for_file_size(srv.data_dir / "storage" / "uploads" / streaming_id / "data", MiB)
            # Both clients' keep-alive connections are open while the server is told to stop.
            srv.stop(signal.SIGTERM)
            r = in_flight.result()
        assert srv.proc is not None and srv.proc.returncode == 0, srv.log()
        assert r.status_code == 202 and offset_of(r) == len(streaming), r.text
    srv.start()
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        r = client.get(f"/v2/{repo}/blobs/uploads/{idle_id}")
        assert r.status_code == 204 and offset_of(r) == 2 * MiB
        assert patch(client, repo, idle_id, idle[2 * MiB:], 2 * MiB).status_code == 202
        assert finish(client, repo, idle_id, sha256(idle)).status_code == 201
        assert blob_digest_via_get(client, repo, sha256(idle)) == sha256(idle)
        r = client.get(f"/v2/{repo}/blobs/uploads/{streaming_id}")
        assert r.status_code == 204 and offset_of(r) == len(streaming)
        assert finish(client, repo, streaming_id, sha256(streaming)).status_code == 201
        assert blob_digest_via_get(client, repo, sha256(streaming)) == sha256(streaming)
        assert blob_digest_via_get(client, repo, finished) == finished
    assert upload_dirs(srv) == []
    assert_log_clean(srv)
