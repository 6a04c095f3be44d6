"""GET/HEAD/DELETE /v2/<name>/blobs/<digest> (end-2, end-10), including HTTP Range requests."""

from __future__ import annotations

import httpx
import pytest

from tests.oci_client import push_blob, sha256
from tests.registry.helpers import assert_error, push_small, random_blob, sha512
from tests.servers import RunningServer


def test_get_blob_returns_bytes_and_headers(client: httpx.Client, repo: str) -> None:
    data = random_blob(5000)
    digest = push_blob(client, repo, data)
    r = client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["docker-content-digest"] == digest
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"


def test_head_blob_has_length_and_digest_but_no_body(client: httpx.Client, repo: str) -> None:
    data = random_blob(777)
    digest = push_blob(client, repo, data)
    r = client.head(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.headers["docker-content-digest"] == digest
    assert r.headers["content-length"] == "777"
    assert r.content == b""


def test_empty_blob(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, b"")
    r = client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["docker-content-digest"] == digest
    assert client.head(f"/v2/{repo}/blobs/{digest}").headers["content-length"] == "0"


def test_sha512_blob_is_served_by_its_digest(client: httpx.Client, repo: str) -> None:
    data = random_blob(100)
    digest = sha512(data)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    r = client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200 and r.content == data
    assert r.headers["docker-content-digest"] == digest
    assert client.head(f"/v2/{repo}/blobs/{sha256(data)}").status_code == 404


# -- Range ---------------------------------------------------------------------------------------


@pytest.fixture
def ranged(client: httpx.Client, repo: str) -> tuple[str, bytes]:
    data = bytes(range(256)) * 4  # 1024 bytes, every offset recognisable
    return f"/v2/{repo}/blobs/{push_blob(client, repo, data)}", data


def test_blob_advertises_byte_ranges(client: httpx.Client, ranged: tuple[str, bytes]) -> None:
    url, _ = ranged
    assert client.head(url).headers["accept-ranges"] == "bytes"


def test_range_returns_partial_content(client: httpx.Client, ranged: tuple[str, bytes]) -> None:
    url, data = ranged
    r = client.get(url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.content == data[10:20]
    assert r.headers["content-range"] == "bytes 10-19/1024"
    assert r.headers["content-length"] == "10"
    assert r.headers["docker-content-digest"] == url.rsplit("/", 1)[1]


def test_open_ended_range(client: httpx.Client, ranged: tuple[str, bytes]) -> None:
    url, data = ranged
    r = client.get(url, headers={"Range": "bytes=1000-"})
    assert r.status_code == 206
    assert r.content == data[1000:]
    assert r.headers["content-range"] == "bytes 1000-1023/1024"


def test_suffix_range_returns_the_tail(client: httpx.Client, ranged: tuple[str, bytes]) -> None:
    url, data = ranged
    r = client.get(url, headers={"Range": "bytes=-100"})
    assert r.status_code == 206
    assert r.content == data[-100:]
    assert r.headers["content-range"] == "bytes 924-1023/1024"


def test_range_past_the_end_is_clamped(client: httpx.Client, ranged: tuple[str, bytes]) -> None:
    url, data = ranged
    r = client.get(url, headers={"Range": "bytes=1020-5000"})
    assert r.status_code == 206
    assert r.content == data[1020:]
    assert r.headers["content-range"] == "bytes 1020-1023/1024"


def test_unsatisfiable_range_is_416(client: httpx.Client, ranged: tuple[str, bytes]) -> None:
    url, _ = ranged
    r = client.get(url, headers={"Range": "bytes=1024-2000"})
    assert r.status_code == 416
    assert r.headers["content-range"] == "bytes */1024"


def test_if_range_with_the_etag_honours_the_range(client: httpx.Client, ranged: tuple[str, bytes]) -> None:
    url, data = ranged
    etag = client.head(url).headers["etag"]
    r = client.get(url, headers={"Range": "bytes=0-3", "If-Range": etag})
    assert r.status_code == 206 and r.content == data[:4]
    r = client.get(url, headers={"Range": "bytes=0-3", "If-Range": '"something-else"'})
    assert r.status_code == 200 and r.content == data


# -- not found, wrong repository, bad digests ------------------------------------------------------


def test_unknown_blob_is_404_blob_unknown(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, b"something so the repository exists")
    missing = sha256(b"never pushed")
    assert_error(client.get(f"/v2/{repo}/blobs/{missing}"), 404, "BLOB_UNKNOWN")
    r = client.head(f"/v2/{repo}/blobs/{missing}")
    assert r.status_code == 404 and r.content == b""


def test_blob_in_unknown_repository_is_404(client: httpx.Client, repo: str) -> None:
    assert_error(client.get(f"/v2/{repo}/blobs/{sha256(b'x')}"), 404, "BLOB_UNKNOWN")


def test_blob_of_another_repository_is_not_visible(client: httpx.Client, repo: str) -> None:
    data = random_blob()
    digest = push_blob(client, repo, data)
    other = f"{repo}-other"
    push_blob(client, other, b"other content")
    assert_error(client.get(f"/v2/{other}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert client.head(f"/v2/{other}/blobs/{digest}").status_code == 404
    assert client.get(f"/v2/{repo}/blobs/{digest}").content == data


@pytest.mark.parametrize("bad", [
    "sha256:abc",                       # too short
    "sha256:" + "G" * 64,               # not hex
    "sha256:" + "A" * 64,               # upper-case hex
    "nodigest",                         # no algorithm
    "sha512:" + "a" * 64,               # sha512 with a sha256-sized value
])
def test_malformed_digest_is_400_digest_invalid(client: httpx.Client, repo: str, bad: str) -> None:
    assert_error(client.get(f"/v2/{repo}/blobs/{bad}"), 400, "DIGEST_INVALID")
    assert_error(client.delete(f"/v2/{repo}/blobs/{bad}"), 400, "DIGEST_INVALID")


def test_unsupported_digest_algorithm_is_400(client: httpx.Client, repo: str) -> None:
    assert_error(client.get(f"/v2/{repo}/blobs/md5:{'a' * 32}"), 400, "DIGEST_INVALID")


# -- DELETE ----------------------------------------------------------------------------------------


def test_delete_blob_then_404(client: httpx.Client, repo: str) -> None:
    digest = push_blob(client, repo, random_blob())
    r = client.delete(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 202
    assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
    assert_error(client.delete(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


def test_delete_unlinks_only_from_that_repository(client: httpx.Client, repo: str) -> None:
    data = random_blob()
    other = f"{repo}-b"
    digest = push_blob(client, repo, data)
    push_blob(client, other, data)
    assert client.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
    assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
    r = client.get(f"/v2/{other}/blobs/{digest}")
    assert r.status_code == 200 and r.content == data


def test_delete_blob_in_unknown_repository_is_404(client: httpx.Client, repo: str) -> None:
    assert_error(client.delete(f"/v2/{repo}/blobs/{sha256(b'x')}"), 404, "NAME_UNKNOWN")


def test_delete_blob_used_by_a_manifest_is_refused(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    layer = sha256(image.layers[0])
    config = sha256(image.config)
    for digest in (layer, config):
        err = assert_error(client.delete(f"/v2/{repo}/blobs/{digest}"), 405, "DENIED")
        assert image.digest in err["message"]
        assert client.get(f"/v2/{repo}/blobs/{digest}").status_code == 200
    # Once the manifest is gone the blob may go too.
    assert client.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202
    assert client.delete(f"/v2/{repo}/blobs/{layer}").status_code == 202
    assert client.head(f"/v2/{repo}/blobs/{layer}").status_code == 404


def test_a_blob_recorded_but_gone_from_storage_is_blob_unknown(server: RunningServer, client: httpx.Client,
                                                                repo: str) -> None:
    data = random_blob(3000)
    digest = push_blob(client, repo, data)
    hexpart = digest.split(":")[1]
    (server.data_dir / "storage" / "blobs" / "sha256" / hexpart[:2] / hexpart).unlink()
    assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    other = push_blob(client, repo, random_blob(3000))  # the worker goes on serving
    assert client.get(f"/v2/{repo}/blobs/{other}").status_code == 200
