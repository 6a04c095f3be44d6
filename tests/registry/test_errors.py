"""GET /v2/ (end-1), the error body format, name validation on every endpoint, unknown routes and methods."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.oci_client import sha256
from tests.registry.helpers import assert_error, push_small, small_image

CODES = {"BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN",
         "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED",
         "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS"}


def test_api_version_check(client: httpx.Client) -> None:
    r = client.get("/v2/")
    assert r.status_code == 200
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"
    assert r.json() == {}
    h = client.head("/v2/")
    assert h.status_code == 200
    assert h.headers["docker-distribution-api-version"] == "registry/2.0"


def test_successful_responses_carry_the_api_version(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    for r in (client.get(f"/v2/{repo}/manifests/v1"), client.head(f"/v2/{repo}/blobs/{sha256(image.config)}"),
              client.get(f"/v2/{repo}/tags/list"), client.post(f"/v2/{repo}/blobs/uploads/")):
        assert r.is_success, r.text
        assert r.headers["docker-distribution-api-version"] == "registry/2.0"


def _error_cases(repo: str) -> list[tuple[str, str, int, str]]:
    missing = sha256(b"missing")
    return [
        ("GET", f"/v2/{repo}/blobs/{missing}", 404, "BLOB_UNKNOWN"),
        ("GET", f"/v2/{repo}/blobs/sha256:bad", 400, "DIGEST_INVALID"),
        ("GET", f"/v2/{repo}/manifests/nope", 404, "MANIFEST_UNKNOWN"),
        ("GET", f"/v2/{repo}/manifests/-bad", 404, "MANIFEST_UNKNOWN"),
        ("GET", f"/v2/{repo}-nowhere/tags/list", 404, "NAME_UNKNOWN"),
        ("GET", f"/v2/{repo}/blobs/uploads/00000000-0000-4000-8000-000000000000", 404, "BLOB_UPLOAD_UNKNOWN"),
        ("GET", f"/v2/{repo.upper()}/tags/list", 400, "NAME_INVALID"),
        ("DELETE", f"/v2/{repo}/blobs/{sha256(small_image().config)}", 404, "BLOB_UNKNOWN"),
    ]


def test_errors_have_the_spec_body_and_headers(client: httpx.Client, repo: str) -> None:
    push_small(client, repo, "v1")
    for method, url, status, code in _error_cases(repo):
        r = client.request(method, url)
        entry = assert_error(r, status, code)
        assert r.headers["docker-distribution-api-version"] == "registry/2.0"
        assert re.fullmatch(r"[A-Z_]+", entry["code"])
        assert entry["message"]
        assert "detail" in entry
        if code != "TAG_INVALID":  # TAG_INVALID is Distribution's, outside the spec's list
            assert entry["code"] in CODES


def test_unknown_route_is_404(client: httpx.Client) -> None:
    for path in ("/v2/foo", "/v2/foo/bar", "/v2/foo/manifests/", "/v2/foo/blobs/"):
        r = client.get(path)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["errors"]


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("POST", "manifests/v1", {"GET", "HEAD", "PUT", "DELETE"}),
    ("PATCH", "manifests/v1", {"GET", "HEAD", "PUT", "DELETE"}),
    ("PUT", f"blobs/{sha256(b'x')}", {"GET", "HEAD", "DELETE"}),
    ("POST", "tags/list", {"GET"}),
    ("DELETE", f"referrers/{sha256(b'x')}", {"GET"}),
])
def test_unsupported_method_is_405(client: httpx.Client, repo: str, method: str, path: str,
                                   allowed: set[str]) -> None:
    r = client.request(method, f"/v2/{repo}/{path}")
    assert_error(r, 405, "UNSUPPORTED")
    assert {m.strip() for m in r.headers["allow"].split(",")} == allowed


@pytest.mark.parametrize("name", ["UPPER", "a..b", "a__-b", "-a", "a-", "a/", "a/b/", "x" * 230, "a$b"])
def test_invalid_names_on_every_endpoint(client: httpx.Client, name: str) -> None:
    digest = sha256(b"x")
    for method, path in [
        ("GET", f"/v2/{name}/blobs/{digest}"),
        ("HEAD", f"/v2/{name}/blobs/{digest}"),
        ("DELETE", f"/v2/{name}/blobs/{digest}"),
        ("POST", f"/v2/{name}/blobs/uploads/"),
        ("GET", f"/v2/{name}/blobs/uploads/00000000-0000-4000-8000-000000000000"),
        ("GET", f"/v2/{name}/manifests/latest"),
        ("PUT", f"/v2/{name}/manifests/latest"),
        ("DELETE", f"/v2/{name}/manifests/latest"),
        ("GET", f"/v2/{name}/tags/list"),
        ("GET", f"/v2/{name}/referrers/{digest}"),
    ]:
        r = client.request(method, path)
        if method == "HEAD":
            assert r.status_code == 400, (method, path)
        else:
            assert_error(r, 400, "NAME_INVALID")


def test_mount_from_an_invalid_name_is_400(client: httpx.Client, repo: str) -> None:
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": sha256(b"x"), "from": "Not/Valid"})
    assert_error(r, 400, "NAME_INVALID")
