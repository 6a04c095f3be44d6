"""Bad input leaves nothing behind: cut-off bodies, wrong digests, and the upload directories they used."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from tests.durability.support import (
    RawRequest,
    assert_log_clean,
    blob_digest_via_get,
    finish,
    offset_of,
    patch,
    start_upload,
    wait_for_file_size,
)
from tests.oci_client import EMPTY_JSON_DIGEST, OCI_MANIFEST, push_blob, push_manifest, sha256
from tests.servers import RunningServer

KiB = 1 << 10


def uploads_left(srv: RunningServer) -> list[str]:
    """Everything under the store's uploads directory: session directories and temporary files alike."""
    return sorted(os.listdir(srv.data_dir / "storage" / "uploads"))


def wait_until_no_uploads(srv: RunningServer, timeout: float = 20) -> None:
    """The server notices a vanished client asynchronously; give it a moment to clean up."""
    deadline = time.monotonic() + timeout
    while uploads_left(srv) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uploads_left(srv) == []


def wait_for_upload_dir(srv: RunningServer, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not uploads_left(srv) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert uploads_left(srv)


@pytest.fixture
def srv(fresh_server: RunningServer) -> RunningServer:
    return fresh_server.start()


def test_cut_off_bodies_and_wrong_digests_leave_nothing(srv: RunningServer, repo: str) -> None:
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        # A monolithic POST promising 1000 bytes that sends 10 and hangs up. Neither the digest of the
        # intended 1000 bytes nor that of the 10 that arrived may become a blob.
        intended = os.urandom(1000)
        for declared in (sha256(intended), sha256(intended[:10])):
            req = RawRequest(srv, "POST", f"/v2/{repo}/blobs/uploads/?digest={declared}",
                             {"Content-Type": "application/octet-stream", "Content-Length": "1000"})
            req.send(intended[:10])
            wait_for_upload_dir(srv)  # the server has started on this request
            req.close()
            wait_until_no_uploads(srv)
            assert client.head(f"/v2/{repo}/blobs/{declared}").status_code == 404
        assert client.head(f"/v2/{repo}/blobs/{sha256(intended[:10])}").status_code == 404
        # ...and the server keeps serving, on new connections.
        assert client.get("/v2/").status_code == 200
        assert push_blob(client, repo, intended) == sha256(intended)
        assert blob_digest_via_get(client, repo, sha256(intended)) == sha256(intended)

        # A PATCH cut off the same way rolls back: the session keeps its clean offset.
        data = os.urandom(600 * KiB)
        uid = start_upload(client, repo)
        assert patch(client, repo, uid, data[: 200 * KiB], 0).status_code == 202
        req = RawRequest(srv, "PATCH", f"/v2/{repo}/blobs/uploads/{uid}", {
            "Content-Type": "application/octet-stream", "Content-Length": str(400 * KiB),
            "Content-Range": f"{200 * KiB}-{600 * KiB - 1}"})
        # 300 of the 400 KiB promised: enough that the store writes some of it before the cut
        req.send(data[200 * KiB: 500 * KiB])
        data_file = srv.data_dir / "storage" / "uploads" / uid / "data"
        wait_for_file_size(data_file, 200 * KiB + 256 * KiB)
        req.close()
        deadline = time.monotonic() + 20  # the cut-off request rolls its bytes back
        while data_file.stat().st_size != 200 * KiB and time.monotonic() < deadline:
            time.sleep(0.05)
        r = client.get(f"/v2/{repo}/blobs/uploads/{uid}")
        assert r.status_code == 204 and offset_of(r) == 200 * KiB
        assert patch(client, repo, uid, data[200 * KiB:], 200 * KiB).status_code == 202
        assert finish(client, repo, uid, sha256(data)).status_code == 201
        assert blob_digest_via_get(client, repo, sha256(data)) == sha256(data)

        # Monolithic push with the wrong digest: refused, and neither digest becomes a blob.
        body, wrong = os.urandom(50 * KiB), sha256(b"something else")
        r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": wrong}, content=body)
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
        for digest in (wrong, sha256(body)):
            assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 404

        # Chunked upload closed with the wrong digest, with and without a final chunk on the PUT:
        # refused, the session is gone, nothing visible.
        for last_chunk in (b"", body[25 * KiB:]):
            uid = start_upload(client, repo)
            assert patch(client, repo, uid, body[: 25 * KiB], 0).status_code == 202
            r = client.put(f"/v2/{repo}/blobs/uploads/{uid}", params={"digest": wrong}, content=last_chunk,
                           headers={"Content-Type": "application/octet-stream"})
            assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
            assert client.get(f"/v2/{repo}/blobs/uploads/{uid}").status_code == 404
            for digest in (wrong, sha256(body), sha256(body[: 25 * KiB])):
                assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 404

        # A malformed digest is refused before anything is stored.
        r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": "sha256:nothex"}, content=body)
        assert r.status_code == 400

        # Cancelled sessions, with and without data.
        for content in (b"", body):
            uid = start_upload(client, repo)
            if content:
                assert patch(client, repo, uid, content, 0).status_code == 202
            assert client.delete(f"/v2/{repo}/blobs/uploads/{uid}").status_code == 204
            assert client.get(f"/v2/{repo}/blobs/uploads/{uid}").status_code == 404
        assert client.head(f"/v2/{repo}/blobs/{sha256(body)}").status_code == 404

        # The empty-JSON config blob is written through a temporary file of its own.
        empty_config = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_JSON_DIGEST, "size": 2}
        r = push_manifest(client, repo, "empty", {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                                  "config": empty_config, "layers": []})
        assert r.status_code == 201, r.text

    # Finished, cancelled and failed uploads: no directory or temporary file is left behind.
    wait_until_no_uploads(srv)
    assert_log_clean(srv)
