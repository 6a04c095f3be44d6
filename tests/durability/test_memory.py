"""Memory stays flat while a big blob streams through: the server never holds a blob in memory.

The blob is generated one MiB at a time on the client and hashed as it goes, so the test itself never
holds it either. The bound is on the summed resident memory of every process in the server's process
group (the supervisor and its workers), sampled throughout the push and the pull.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
from collections.abc import Iterator

import httpx

from tests.durability.support import (
    RssSampler,
    assert_log_clean,
    generated_chunks,
    group_rss,
    offset_of,
    raw_get_digest,
    start_upload,
)
from tests.oci_client import push_blob
from tests.servers import RunningServer

MiB = 1 << 20
BLOB = 512 * MiB
PATCH_SIZE = 50 * MiB
GROWTH_LIMIT = 64 * MiB


def digest_of(seed: bytes) -> str:
    hasher = hashlib.sha256()
    for piece in generated_chunks(BLOB, seed):
        hasher.update(piece)
    return "sha256:" + hasher.hexdigest()


def hashed(chunks: Iterator[bytes], hasher: hashlib._Hash) -> Iterator[bytes]:
    """Pass the chunks on, hashing them on the way (so the digest costs no extra pass)."""
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk


def grew(baseline: int, sampler: RssSampler) -> str:
    return (f"server RSS grew {(sampler.peak - baseline) / MiB:.1f} MiB over {baseline / MiB:.1f} MiB; "
            f"peak by pid: { {pid: f'{rss / MiB:.1f} MiB' for pid, rss in sampler.peak_by_pid.items()} }")


def test_big_streamed_pushes_keep_memory_flat(fresh_server: RunningServer, repo: str) -> None:
    srv = fresh_server.start()
    assert srv.proc is not None
    pgid = srv.proc.pid
    try:
        with httpx.Client(base_url=srv.url, timeout=300) as client:
            # Warm every worker up (imports, pools, first requests) before taking the baseline.
            for i in range(8):
                digest = push_blob(client, repo, i.to_bytes(4, "big") * 1000)
                assert client.get(f"/v2/{repo}/blobs/{digest}").status_code == 200
            baseline = sum(group_rss(pgid).values())
            assert len(group_rss(pgid)) >= 3  # supervisor and two workers

            # One monolithic POST, streamed with a Content-Length.
            mono = digest_of(b"monolithic")
            with RssSampler(pgid) as sampler:
                r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": mono},
                                content=generated_chunks(BLOB, b"monolithic"),
                                headers={"Content-Type": "application/octet-stream", "Content-Length": str(BLOB)})
                assert r.status_code == 201, r.text
                assert raw_get_digest(srv, f"/v2/{repo}/blobs/{mono}") == mono
            assert sampler.peak - baseline < GROWTH_LIMIT, grew(baseline, sampler)

            # The same size again in 50 MiB PATCHes (chunked transfer encoding), closed by an empty PUT.
            hasher = hashlib.sha256()
            source = generated_chunks(BLOB, b"chunked")  # 1 MiB pieces; 50 of them make a PATCH
            with RssSampler(pgid) as sampler:
                uid = start_upload(client, repo)
                for start in range(0, BLOB, PATCH_SIZE):
                    end = min(start + PATCH_SIZE, BLOB)
                    body = hashed(itertools.islice(source, (end - start) // MiB), hasher)
                    r = client.patch(f"/v2/{repo}/blobs/uploads/{uid}", content=body,
                                     headers={"Content-Type": "application/octet-stream",
                                              "Content-Range": f"{start}-{end - 1}"})
                    assert r.status_code == 202 and offset_of(r) == end, r.text
                chunked = "sha256:" + hasher.hexdigest()
                r = client.put(f"/v2/{repo}/blobs/uploads/{uid}", params={"digest": chunked})
                assert r.status_code == 201, r.text
                assert raw_get_digest(srv, f"/v2/{repo}/blobs/{chunked}") == chunked
            assert sampler.peak - baseline < GROWTH_LIMIT, grew(baseline, sampler)
        assert_log_clean(srv)
    finally:
        shutil.rmtree(srv.data_dir / "storage" / "blobs", ignore_errors=True)  # 1 GiB the next run needn't keep
