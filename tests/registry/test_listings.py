"""GET /v2/<name>/tags/list (end-8a, end-8b) and GET /v2/_catalog, with n/last pagination and Link headers."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.oci_client import push_blob, push_manifest
from tests.registry.helpers import assert_error, push_small

LINK = re.compile(r'^<(?P<url>[^>]+)>;\s*rel="next"$')


def next_link(r: httpx.Response) -> str | None:
    """The URL of the rel="next" Link, or None; fails on a malformed header."""
    value = r.headers.get("link")
    if value is None:
        return None
    match = LINK.match(value)
    assert match, f"malformed Link header {value!r}"
    return match.group("url")


def tag_all(client: httpx.Client, repo: str, tags: list[str]) -> None:
    image = push_small(client, repo, tags[0])
    for tag in tags[1:]:
        assert push_manifest(client, repo, tag, image.body).status_code == 201


def walk(client: httpx.Client, url: str, key: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Follow Link headers from `url`; returns all items and every page's body."""
    items: list[str] = []
    pages = []
    next_url: str | None = url
    while next_url is not None:
        r = client.get(next_url)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body)
        items += body[key]
        next_url = next_link(r)
        assert len(pages) < 50, "pagination does not end"
    return items, pages


# -- tags ------------------------------------------------------------------------------------------

TAGS = ["v1.0", "latest", "V2", "1.0", "a", "b-c", "b_c", "beta", "Alpha", "_x", "z9", "0"]


@pytest.fixture(scope="session")
def tagged(shared_client: httpx.Client) -> str:
    """A repository with every tag of TAGS, shared by the tests that only read it."""
    repo = f"test/tagged-{uuid.uuid4().hex[:10]}"
    tag_all(shared_client, repo, TAGS)
    return repo


def test_tags_are_listed_in_lexical_order(client: httpx.Client, tagged: str) -> None:
    repo = tagged
    r = client.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"name": repo, "tags": sorted(TAGS)}
    assert "link" not in r.headers


def test_tags_pagination_with_n(client: httpx.Client, tagged: str) -> None:
    repo = tagged
    expected = sorted(TAGS)
    r = client.get(f"/v2/{repo}/tags/list", params={"n": 5})
    assert r.status_code == 200
    assert r.json()["tags"] == expected[:5]
    link = next_link(r)
    assert link is not None and link.startswith(f"/v2/{repo}/tags/list?")
    # Following the Link gives the next page, and so on until no Link is sent.
    items, pages = walk(client, f"/v2/{repo}/tags/list?n=5", "tags")
    assert items == expected
    assert [len(p["tags"]) for p in pages] == [5, 5, 2]
    assert all(p["name"] == repo for p in pages)


def test_tags_pagination_with_an_exact_multiple(client: httpx.Client, repo: str) -> None:
    tags = ["a", "b", "c", "d"]
    tag_all(client, repo, tags)
    items, pages = walk(client, f"/v2/{repo}/tags/list?n=2", "tags")
    assert items == tags
    assert [p["tags"] for p in pages][-1] == ["c", "d"]  # no empty trailing page
    r = client.get(f"/v2/{repo}/tags/list", params={"n": 4})
    assert r.json()["tags"] == tags and "link" not in r.headers


def test_tags_with_last(client: httpx.Client, tagged: str) -> None:
    repo = tagged
    expected = sorted(TAGS)
    r = client.get(f"/v2/{repo}/tags/list", params={"n": 3, "last": "a"})
    assert r.json()["tags"] == expected[expected.index("a") + 1:][:3]
    # `last` alone returns everything after it.
    r = client.get(f"/v2/{repo}/tags/list", params={"last": "beta"})
    assert r.json()["tags"] == [t for t in expected if t > "beta"]
    # `last` need not be an existing tag.
    r = client.get(f"/v2/{repo}/tags/list", params={"last": "b-d"})
    assert r.json()["tags"] == [t for t in expected if t > "b-d"]
    r = client.get(f"/v2/{repo}/tags/list", params={"last": "zzz"})
    assert r.status_code == 200 and r.json()["tags"] == []


def test_tags_n_zero_is_empty_without_link(client: httpx.Client, repo: str) -> None:
    tag_all(client, repo, ["a", "b"])
    r = client.get(f"/v2/{repo}/tags/list", params={"n": 0})
    assert r.status_code == 200
    assert r.json() == {"name": repo, "tags": []}
    assert "link" not in r.headers


def test_tags_of_unknown_repository_is_404(client: httpx.Client, repo: str) -> None:
    assert_error(client.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")
    assert_error(client.get(f"/v2/{repo}/tags/list", params={"n": 0}), 404, "NAME_UNKNOWN")


def test_tags_of_repository_without_tags(client: httpx.Client, repo: str) -> None:
    push_blob(client, repo, b"only a blob")
    r = client.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 200 and r.json() == {"name": repo, "tags": []}


@pytest.mark.parametrize("n", ["abc", "-1", "1.5", "0x10", "²", "٣", "1" * 30])
def test_tags_bad_n_is_400(client: httpx.Client, repo: str, n: str) -> None:
    push_blob(client, repo, b"the repository exists")
    r = client.get(f"/v2/{repo}/tags/list", params={"n": n})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["code"].isupper()


def test_tags_reflect_deletes(client: httpx.Client, repo: str) -> None:
    tag_all(client, repo, ["a", "b", "c"])
    assert client.delete(f"/v2/{repo}/manifests/b").status_code == 202
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["a", "c"]


# -- catalog ---------------------------------------------------------------------------------------


@pytest.fixture
def prefix(client: httpx.Client) -> str:
    """Three repositories under a prefix of their own: cat<hex>/a, /b, /c (pushed out of order)."""
    base = f"cat{uuid.uuid4().hex[:10]}"
    for name in ("c", "a", "b"):
        push_blob(client, f"{base}/{name}", name.encode())
    return base


def test_catalog_lists_repositories_in_order(client: httpx.Client, prefix: str) -> None:
    r = client.get("/v2/_catalog")
    assert r.status_code == 200
    assert r.headers["docker-distribution-api-version"] == "registry/2.0"
    names = r.json()["repositories"]
    assert names == sorted(names)
    mine = [n for n in names if n.startswith(prefix + "/")]
    assert mine == [f"{prefix}/a", f"{prefix}/b", f"{prefix}/c"]


def test_catalog_pagination(client: httpx.Client, prefix: str) -> None:
    r = client.get("/v2/_catalog", params={"n": 2, "last": prefix})
    assert r.status_code == 200
    assert r.json()["repositories"] == [f"{prefix}/a", f"{prefix}/b"]
    link = next_link(r)
    assert link is not None and link.startswith("/v2/_catalog?")
    follow = client.get(link)
    assert follow.status_code == 200
    page = follow.json()["repositories"]
    assert page[0] == f"{prefix}/c"
    assert len(page) <= 2


def test_catalog_walk_visits_every_repository_once(client: httpx.Client, prefix: str) -> None:
    everything = client.get("/v2/_catalog").json()["repositories"]
    items, pages = walk(client, f"/v2/_catalog?n={max(2, len(everything) // 5)}", "repositories")
    assert items == everything
    assert len(pages) > 1


def test_catalog_n_zero(client: httpx.Client, prefix: str) -> None:
    r = client.get("/v2/_catalog", params={"n": 0})
    assert r.status_code == 200
    assert r.json() == {"repositories": []}
    assert "link" not in r.headers


def test_catalog_last_page_has_no_link(client: httpx.Client, prefix: str) -> None:
    everything = client.get("/v2/_catalog").json()["repositories"]
    r = client.get("/v2/_catalog", params={"n": 2, "last": everything[-2]})
    assert r.json()["repositories"] == everything[-1:]
    assert "link" not in r.headers


@pytest.mark.parametrize("n", ["abc", "-5", "²", "1" * 30])
def test_catalog_bad_n_is_400(client: httpx.Client, n: str) -> None:
    r = client.get("/v2/_catalog", params={"n": n})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["code"].isupper()


@pytest.mark.parametrize("path", ["/v2/_catalog", "/v2/test/anything/tags/list"])
def test_last_with_a_nul_is_400(client: httpx.Client, path: str) -> None:
    # PostgreSQL refuses NUL in a text parameter: this was a 500 there
    push_blob(client, "test/anything", b"the repository exists")
    r = client.get(path, params={"last": "a\x00b"})
    assert r.status_code == 400, r.text
