"""Blob uploads: POST (end-4a/b/c), PATCH (end-5), PUT (end-6), mount (end-11), status (end-13), cancel (end-14)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.oci_client import push_blob, sha256
from tests.registry.helpers import (
    assert_error,
    blob_exists,
    patch_chunk,
    random_blob,
    sha512,
    start_upload,
)
from tests.servers import RunningServer


def assert_blob(client: httpx.Client, repo: str, digest: str, data: bytes) -> None:
    r = client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200, r.text
    assert r.content == data
    assert r.headers["docker-content-digest"] == digest


def assert_created(r: httpx.Response, repo: str, digest: str) -> None:
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v2/{repo}/blobs/{digest}"
    assert r.headers["docker-content-digest"] == digest


def upload_id(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[1]


# -- monolithic --------------------------------------------------------------------------------


def test_single_post_monolithic_upload(client: httpx.Client, repo: str) -> None:
    data = random_blob(2048)
    digest = sha256(data)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data,
                    headers={"Content-Type": "application/octet-stream"})
    assert_created(r, repo, digest)
    # The Location is a pullable blob URL.
    assert client.get(r.headers["location"]).content == data
    assert_blob(client, repo, digest, data)


def test_single_post_of_content_already_stored_elsewhere(client: httpx.Client, repo: str) -> None:
    data = random_blob()
    push_blob(client, f"{repo}-first", data)
    digest = push_blob(client, repo, data)
    assert_blob(client, repo, digest, data)


def test_post_then_put(client: httpx.Client, repo: str) -> None:
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    assert r.headers["docker-upload-uuid"] == upload_id(location)
    assert len(upload_id(location)) >= 32  # a UUID
    data = random_blob(1500)
    digest = sha256(data)
    r = client.put(location, params={"digest": digest}, content=data,
                   headers={"Content-Type": "application/octet-stream"})
    assert_created(r, repo, digest)
    assert_blob(client, repo, digest, data)
    # The session is closed.
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_every_post_starts_a_distinct_session(client: httpx.Client, repo: str) -> None:
    a, b = start_upload(client, repo), start_upload(client, repo)
    assert a != b


# -- chunked -----------------------------------------------------------------------------------


def test_chunked_upload_with_content_range(client: httpx.Client, repo: str) -> None:
    data = random_blob(3000)
    chunks = [data[:1000], data[1000:2500], data[2500:]]
    location = start_upload(client, repo)
    offset = 0
    for chunk in chunks:
        r = patch_chunk(client, location, chunk, offset)
        assert r.status_code == 202, r.text
        offset += len(chunk)
        assert r.headers["range"] == f"0-{offset - 1}"
        assert r.headers["docker-upload-uuid"] == upload_id(location)
        location = r.headers["location"]
        assert location.startswith(f"/v2/{repo}/blobs/uploads/")
    assert_created(client.put(location, params={"digest": sha256(data)}), repo, sha256(data))
    assert_blob(client, repo, sha256(data), data)


def test_upload_status_reports_the_offset(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    r = client.get(location)
    assert r.status_code == 204
    assert r.headers["location"] == location
    assert r.headers["docker-upload-uuid"] == upload_id(location)
    assert r.headers["range"] == "0-0"
    patch_chunk(client, location, b"x" * 42, 0)
    r = client.get(location)
    assert r.status_code == 204
    assert r.headers["range"] == "0-41"
    assert r.content == b""


def test_out_of_order_chunk_is_416_and_upload_stays_usable(client: httpx.Client, repo: str) -> None:
    data = random_blob(300)
    location = start_upload(client, repo)
    assert patch_chunk(client, location, data[:100], 0).status_code == 202

    # A gap: starts at 200 instead of 100.
    r = patch_chunk(client, location, data[200:], 200)
    assert_error(r, 416, "BLOB_UPLOAD_INVALID")
    assert r.headers["range"] == "0-99"
    assert r.headers["location"] == location
    # A repeat: starts at 0 again.
    r = patch_chunk(client, location, data[:100], 0)
    assert_error(r, 416, "BLOB_UPLOAD_INVALID")
    assert r.headers["range"] == "0-99"

    # Nothing of the refused chunks was kept.
    status = client.get(location)
    assert status.status_code == 204 and status.headers["range"] == "0-99"
    assert patch_chunk(client, location, data[100:], 100).status_code == 202
    assert_created(client.put(location, params={"digest": sha256(data)}), repo, sha256(data))
    assert_blob(client, repo, sha256(data), data)


def test_out_of_order_final_chunk_in_put_is_416(client: httpx.Client, repo: str) -> None:
    data = random_blob(200)
    location = start_upload(client, repo)
    assert patch_chunk(client, location, data[:100], 0).status_code == 202
    r = client.put(location, params={"digest": sha256(data)}, content=data[150:],
                   headers={"Content-Range": "150-199"})
    assert_error(r, 416, "BLOB_UPLOAD_INVALID")
    assert r.headers["range"] == "0-99"
    assert not blob_exists(client, repo, sha256(data))
    r = client.put(location, params={"digest": sha256(data)}, content=data[100:],
                   headers={"Content-Range": "100-199"})
    assert_created(r, repo, sha256(data))
    assert_blob(client, repo, sha256(data), data)


@pytest.mark.parametrize("content_range", ["abc", "10-5", "0-10"])
def test_malformed_content_range_is_400(client: httpx.Client, repo: str, content_range: str) -> None:
    location = start_upload(client, repo)
    r = client.patch(location, content=b"12345", headers={"Content-Range": content_range})
    assert_error(r, 400, "BLOB_UPLOAD_INVALID")
    assert client.get(location).headers["range"] == "0-0"


def test_streamed_patch_without_content_range(client: httpx.Client, repo: str) -> None:
    data = random_blob(4000)

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(data), 700):
            yield data[i:i + 700]

    location = start_upload(client, repo)
    r = client.patch(location, content=pieces(), headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202, r.text
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.headers["range"] == f"0-{len(data) - 1}"
    # A second streamed chunk without Content-Range appends.
    more = random_blob(500)
    r = client.patch(r.headers["location"], content=iter([more]))
    assert r.status_code == 202 and r.headers["range"] == f"0-{len(data) + len(more) - 1}"
    whole = data + more
    assert_created(client.put(r.headers["location"], params={"digest": sha256(whole)}), repo, sha256(whole))
    assert_blob(client, repo, sha256(whole), whole)


def test_streamed_single_post(client: httpx.Client, repo: str) -> None:
    data = random_blob(2500)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)},
                    content=iter([data[:1000], data[1000:]]))
    assert_created(r, repo, sha256(data))
    assert_blob(client, repo, sha256(data), data)


def test_final_chunk_in_the_put(client: httpx.Client, repo: str) -> None:
    data = random_blob(1000)
    location = start_upload(client, repo)
    location = patch_chunk(client, location, data[:600], 0).headers["location"]
    r = client.put(location, params={"digest": sha256(data)}, content=data[600:],
                   headers={"Content-Type": "application/octet-stream", "Content-Range": "600-999"})
    assert_created(r, repo, sha256(data))
    assert_blob(client, repo, sha256(data), data)


def test_final_chunk_in_the_put_without_content_range(client: httpx.Client, repo: str) -> None:
    data = random_blob(1000)
    location = start_upload(client, repo)
    patch_chunk(client, location, data[:400], 0)
    r = client.put(location, params={"digest": sha256(data)}, content=data[400:])
    assert_created(r, repo, sha256(data))
    assert_blob(client, repo, sha256(data), data)


def test_streamed_final_chunk_in_the_put(client: httpx.Client, repo: str) -> None:
    data = random_blob(3000)
    location = start_upload(client, repo)
    patch_chunk(client, location, data[:1000], 0)
    r = client.put(location, params={"digest": sha256(data)}, content=iter([data[1000:2000], data[2000:]]))
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert_created(r, repo, sha256(data))
    assert_blob(client, repo, sha256(data), data)


def test_put_of_an_empty_session_creates_the_empty_blob(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    assert_created(client.put(location, params={"digest": sha256(b"")}), repo, sha256(b""))
    assert_blob(client, repo, sha256(b""), b"")


# -- digests -----------------------------------------------------------------------------------


def test_wrong_digest_on_put_is_400_and_nothing_is_visible(client: httpx.Client, repo: str) -> None:
    data = random_blob(500)
    claimed = sha256(b"something else entirely")
    location = start_upload(client, repo)
    patch_chunk(client, location, data, 0)
    assert_error(client.put(location, params={"digest": claimed}), 400, "DIGEST_INVALID")
    assert not blob_exists(client, repo, claimed)
    assert not blob_exists(client, repo, sha256(data))
    # The session was discarded.
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_wrong_digest_on_single_post_is_400_and_nothing_is_visible(client: httpx.Client, repo: str) -> None:
    data = random_blob(500)
    claimed = sha256(b"not this")
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": claimed}, content=data)
    assert_error(r, 400, "DIGEST_INVALID")
    assert not blob_exists(client, repo, claimed)
    assert not blob_exists(client, repo, sha256(data))


def test_sha512_chunked_upload(client: httpx.Client, repo: str) -> None:
    data = random_blob(3000)
    location = start_upload(client, repo, **{"digest-algorithm": "sha512"})
    location = patch_chunk(client, location, data[:1000], 0).headers["location"]
    location = patch_chunk(client, location, data[1000:], 1000).headers["location"]
    r = client.put(location, params={"digest": sha512(data)})
    assert_created(r, repo, sha512(data))
    assert_blob(client, repo, sha512(data), data)


def test_sha512_monolithic_upload(client: httpx.Client, repo: str) -> None:
    data = random_blob(800)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha512(data)}, content=data)
    assert_created(r, repo, sha512(data))
    assert_blob(client, repo, sha512(data), data)


def test_sha512_mismatch_is_400(client: httpx.Client, repo: str) -> None:
    data = random_blob(800)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha512(b"other")}, content=data)
    assert_error(r, 400, "DIGEST_INVALID")
    assert not blob_exists(client, repo, sha512(data))


def test_session_closed_with_another_algorithm(client: httpx.Client, repo: str) -> None:
    data = random_blob(900)
    location = start_upload(client, repo, **{"digest-algorithm": "sha512"})
    patch_chunk(client, location, data, 0)
    assert_created(client.put(location, params={"digest": sha256(data)}), repo, sha256(data))
    assert_blob(client, repo, sha256(data), data)


def test_unsupported_algorithm_is_400(client: httpx.Client, repo: str) -> None:
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest-algorithm": "md5"})
    assert_error(r, 400, "DIGEST_INVALID")
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": "md5:" + "a" * 32}, content=b"x")
    assert_error(r, 400, "DIGEST_INVALID")
    location = start_upload(client, repo)
    patch_chunk(client, location, b"abc", 0)
    assert_error(client.put(location, params={"digest": "sha1:" + "a" * 40}), 400, "DIGEST_INVALID")
    # A refused digest does not end the session.
    assert_created(client.put(location, params={"digest": sha256(b"abc")}), repo, sha256(b"abc"))


def test_malformed_digest_on_post_is_400(client: httpx.Client, repo: str) -> None:
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": "sha256:nothex"}, content=b"x")
    assert_error(r, 400, "DIGEST_INVALID")


def test_put_without_digest_is_400(client: httpx.Client, repo: str) -> None:
    data = b"some bytes"
    location = start_upload(client, repo)
    patch_chunk(client, location, data, 0)
    assert_error(client.put(location), 400, "BLOB_UPLOAD_INVALID")
    # The session is still there and can be finished properly.
    assert client.get(location).headers["range"] == f"0-{len(data) - 1}"
    assert_created(client.put(location, params={"digest": sha256(data)}), repo, sha256(data))


# -- sessions ----------------------------------------------------------------------------------


def test_cancel_upload(client: httpx.Client, repo: str) -> None:
    location = start_upload(client, repo)
    patch_chunk(client, location, b"partial", 0)
    r = client.delete(location)
    assert r.status_code == 204
    assert_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch_chunk(client, location, b"more", 7), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.put(location, params={"digest": sha256(b"partial")}), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert not blob_exists(client, repo, sha256(b"partial"))


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_unknown_upload_id_is_404(client: httpx.Client, repo: str, method: str) -> None:
    url = f"/v2/{repo}/blobs/uploads/00000000-0000-4000-8000-000000000000"
    r = client.request(method, url, params={"digest": sha256(b"x")} if method == "PUT" else None,
                       content=b"x" if method in ("PATCH", "PUT") else None)
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize("weird", [".hidden", "not-a-uuid", "a..b"])
def test_odd_upload_ids_are_404(client: httpx.Client, repo: str, weird: str) -> None:
    assert_error(client.get(f"/v2/{repo}/blobs/uploads/{weird}"), 404, "BLOB_UPLOAD_UNKNOWN")


def test_upload_of_another_repository_is_404(client: httpx.Client, repo: str) -> None:
    data = b"belongs to the first repository"
    location = start_upload(client, repo)
    patch_chunk(client, location, data[:10], 0)
    foreign = location.replace(f"/v2/{repo}/", f"/v2/{repo}-other/")
    assert_error(client.get(foreign), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch_chunk(client, foreign, data[10:], 10), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.put(foreign, params={"digest": sha256(data)}, content=data[10:]), 404,
                 "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.delete(foreign), 404, "BLOB_UPLOAD_UNKNOWN")
    assert not blob_exists(client, f"{repo}-other", sha256(data))
    # The rightful session is untouched.
    assert client.get(location).headers["range"] == "0-9"
    patch_chunk(client, location, data[10:], 10)
    assert_created(client.put(location, params={"digest": sha256(data)}), repo, sha256(data))


# -- mount -------------------------------------------------------------------------------------


def test_mount_from_a_repository_that_has_the_blob(client: httpx.Client, repo: str) -> None:
    data = random_blob()
    source = f"{repo}-source"
    digest = push_blob(client, source, data)
    assert not blob_exists(client, repo, digest)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": source})
    assert_created(r, repo, digest)
    assert_blob(client, repo, digest, data)


def test_mount_from_a_repository_without_the_blob_starts_an_upload(client: httpx.Client, repo: str) -> None:
    data = random_blob()
    source = f"{repo}-source"
    push_blob(client, source, b"unrelated")
    digest = sha256(data)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": source})
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    assert location.startswith(f"/v2/{repo}/blobs/uploads/")
    assert r.headers["docker-upload-uuid"] == upload_id(location)
    assert not blob_exists(client, repo, digest)
    # The fallback session works like any other.
    assert_created(client.put(location, params={"digest": digest}, content=data), repo, digest)
    assert_blob(client, repo, digest, data)


def test_mount_from_an_unknown_repository_starts_an_upload(client: httpx.Client, repo: str) -> None:
    digest = sha256(b"x")
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": f"{repo}-nowhere"})
    assert r.status_code == 202
    assert r.headers["location"].startswith(f"/v2/{repo}/blobs/uploads/")


def test_mount_without_from_starts_an_upload(client: httpx.Client, repo: str) -> None:
    data = random_blob()
    push_blob(client, f"{repo}-source", data)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": sha256(data)})
    assert r.status_code == 202
    assert not blob_exists(client, repo, sha256(data))


def test_mount_with_malformed_digest_is_400(client: httpx.Client, repo: str) -> None:
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": "sha256:zz", "from": f"{repo}-x"})
    assert_error(r, 400, "DIGEST_INVALID")


# -- many workers ------------------------------------------------------------------------------


def test_uploads_are_visible_across_workers(server: RunningServer, repo: str) -> None:
    """Every request on a new connection, so the server's worker processes take turns serving them."""
    with httpx.Client(base_url=server.url, timeout=30, headers={"Connection": "close"}) as c:
        for i in range(6):
            data = random_blob(1000 + i)
            digest = sha256(data)
            location = start_upload(c, repo)
            for start in range(0, len(data), 300):
                r = patch_chunk(c, location, data[start:start + 300], start)
                assert r.status_code == 202, r.text
                assert r.headers["range"] == f"0-{min(start + 300, len(data)) - 1}"
            assert c.get(location).headers["range"] == f"0-{len(data) - 1}"
            assert_created(c.put(location, params={"digest": digest}), repo, digest)
            for _ in range(3):
                assert_blob(c, repo, digest, data)
            single = random_blob(100)
            push_blob(c, repo, single)
            for _ in range(3):
                assert_blob(c, repo, sha256(single), single)
