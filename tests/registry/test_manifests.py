"""GET/HEAD/PUT/DELETE /v2/<name>/manifests/<reference> (end-3, end-7a, end-7b, end-9)."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from tests.oci_client import (
    EMPTY_JSON_DIGEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    make_image,
    push_blob,
    push_image,
    push_manifest,
    sha256,
)
from tests.registry.helpers import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    HELM_CHART,
    HELM_CONFIG,
    OCI_EMPTY,
    assert_error,
    docker_image,
    index_of,
    push_blobs,
    push_small,
    put_json,
    random_blob,
    small_image,
)


def assert_manifest(client: httpx.Client, repo: str, ref: str, body: bytes, media_type: str) -> None:
    """GET and HEAD by `ref` return exactly `body` as `media_type`."""
    digest = sha256(body)
    r = client.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": media_type})
    assert r.status_code == 200, r.text
    assert r.content == body
    assert r.headers["content-type"] == media_type
    assert r.headers["docker-content-digest"] == digest
    assert r.headers["content-length"] == str(len(body))
    h = client.head(f"/v2/{repo}/manifests/{ref}", headers={"Accept": media_type})
    assert h.status_code == 200
    assert h.content == b""
    assert h.headers["content-type"] == media_type
    assert h.headers["docker-content-digest"] == digest
    assert h.headers["content-length"] == str(len(body))


def assert_created(r: httpx.Response, repo: str, body: bytes) -> None:
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == sha256(body)
    assert r.headers["location"] == f"/v2/{repo}/manifests/{sha256(body)}"


def assert_absent(client: httpx.Client, repo: str, ref: str) -> None:
    assert_error(client.get(f"/v2/{repo}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")
    assert client.head(f"/v2/{repo}/manifests/{ref}").status_code == 404


# -- kinds of manifest ---------------------------------------------------------------------------


def test_oci_image_manifest_by_tag_and_digest(client: httpx.Client, repo: str) -> None:
    image = small_image()
    push_blobs(client, repo, image)
    r = push_manifest(client, repo, "v1", image.body)
    assert_created(r, repo, image.body)
    assert_manifest(client, repo, "v1", image.body, OCI_MANIFEST)
    assert_manifest(client, repo, image.digest, image.body, OCI_MANIFEST)
    # The Location is a pullable manifest URL.
    assert client.get(r.headers["location"]).content == image.body


def test_exact_bytes_are_kept(client: httpx.Client, repo: str) -> None:
    """Whitespace and key order are the client's: the digest is of the bytes as pushed."""
    image = small_image()
    push_image(client, repo, "plain", image)
    pretty = json.dumps(image.manifest, indent=3, sort_keys=True).encode() + b"\n"
    assert sha256(pretty) != image.digest
    assert_created(push_manifest(client, repo, "pretty", pretty), repo, pretty)
    assert_manifest(client, repo, "pretty", pretty, OCI_MANIFEST)
    assert_manifest(client, repo, "plain", image.body, OCI_MANIFEST)


def test_oci_index(client: httpx.Client, repo: str) -> None:
    amd, arm = push_small(client, repo, "amd"), push_small(client, repo, "arm")
    index = index_of([(OCI_MANIFEST, amd.body), (OCI_MANIFEST, arm.body)],
                     annotations={"org.opencontainers.image.version": "1.0"})
    r, body = put_json(client, repo, "multi", index, OCI_INDEX)
    assert_created(r, repo, body)
    assert_manifest(client, repo, "multi", body, OCI_INDEX)
    assert_manifest(client, repo, sha256(body), body, OCI_INDEX)


def test_index_of_untagged_children_pushed_by_digest(client: httpx.Client, repo: str) -> None:
    image = small_image()
    push_blobs(client, repo, image)
    assert_created(push_manifest(client, repo, image.digest, image.body), repo, image.body)
    r, body = put_json(client, repo, "latest", index_of([(OCI_MANIFEST, image.body)]), OCI_INDEX)
    assert_created(r, repo, body)


def test_index_with_missing_child_is_refused(client: httpx.Client, repo: str) -> None:
    present = push_small(client, repo, "present")
    ghost = small_image()  # never pushed
    r, body = put_json(client, repo, "multi",
                       index_of([(OCI_MANIFEST, present.body), (OCI_MANIFEST, ghost.body)]), OCI_INDEX)
    err = assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert ghost.digest in err["message"]
    assert_absent(client, repo, "multi")
    assert_absent(client, repo, sha256(body))


def test_index_child_in_another_repository_does_not_count(client: httpx.Client, repo: str) -> None:
    elsewhere = push_small(client, f"{repo}-other", "v1")
    r, _ = put_json(client, repo, "multi", index_of([(OCI_MANIFEST, elsewhere.body)]), OCI_INDEX)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")


def test_docker_schema2_manifest(client: httpx.Client, repo: str) -> None:
    manifest = docker_image(client, repo)
    r, body = put_json(client, repo, "docker", manifest, DOCKER_MANIFEST)
    assert_created(r, repo, body)
    assert_manifest(client, repo, "docker", body, DOCKER_MANIFEST)
    assert_manifest(client, repo, sha256(body), body, DOCKER_MANIFEST)


def test_docker_manifest_list(client: httpx.Client, repo: str) -> None:
    children = []
    for arch in ("amd64", "arm64"):
        r, body = put_json(client, repo, arch, docker_image(client, repo), DOCKER_MANIFEST)
        assert r.status_code == 201, r.text
        children.append((DOCKER_MANIFEST, body))
    r, body = put_json(client, repo, "list", index_of(children, DOCKER_MANIFEST_LIST), DOCKER_MANIFEST_LIST)
    assert_created(r, repo, body)
    assert_manifest(client, repo, "list", body, DOCKER_MANIFEST_LIST)


def test_docker_foreign_layers_need_not_be_pushed(client: httpx.Client, repo: str) -> None:
    manifest = docker_image(client, repo)
    foreign = random_blob(50)
    manifest["layers"].append({
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": sha256(foreign), "size": len(foreign), "urls": ["https://example.invalid/layer"],
    })
    r, body = put_json(client, repo, "win", manifest, DOCKER_MANIFEST)
    assert_created(r, repo, body)


def test_oci_artifact_with_unuploaded_empty_config(client: httpx.Client, repo: str) -> None:
    payload = b'{"sbom": true}'
    push_blob(client, repo, payload)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2},
        "layers": [descriptor("application/vnd.example.sbom.v1+json", payload)],
    }
    r, body = put_json(client, repo, "sbom", manifest, OCI_MANIFEST)
    assert_created(r, repo, body)
    assert_manifest(client, repo, "sbom", body, OCI_MANIFEST)
    # The registry supplies the empty JSON blob itself.
    b = client.get(f"/v2/{repo}/blobs/{EMPTY_JSON_DIGEST}")
    assert b.status_code == 200 and b.content == b"{}"


def test_artifact_without_layers(client: httpx.Client, repo: str) -> None:
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.marker",
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2},
        "layers": [{"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2}],
    }
    r, body = put_json(client, repo, "marker", manifest, OCI_MANIFEST)
    assert_created(r, repo, body)


def test_helm_chart(client: httpx.Client, repo: str) -> None:
    config = json.dumps({"name": "mychart", "version": "0.1.0", "apiVersion": "v2"}).encode()
    chart = random_blob(700)
    push_blob(client, repo, config)
    push_blob(client, repo, chart)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(HELM_CONFIG, config),
        "layers": [descriptor(HELM_CHART, chart)],
        "annotations": {"org.opencontainers.image.title": "mychart"},
    }
    r, body = put_json(client, repo, "0.1.0", manifest, OCI_MANIFEST)
    assert_created(r, repo, body)
    assert_manifest(client, repo, "0.1.0", body, OCI_MANIFEST)
    assert client.get(f"/v2/{repo}/blobs/{sha256(chart)}").content == chart


def test_manifest_without_media_type_field_takes_the_content_type(client: httpx.Client, repo: str) -> None:
    image = small_image()
    del image.manifest["mediaType"]
    push_image(client, repo, "v1", image)
    assert_manifest(client, repo, "v1", image.body, OCI_MANIFEST)


def test_content_type_parameters_are_ignored(client: httpx.Client, repo: str) -> None:
    image = small_image()
    push_blobs(client, repo, image)
    r = push_manifest(client, repo, "v1", image.body, f"{OCI_MANIFEST}; charset=utf-8")
    assert_created(r, repo, image.body)
    assert client.get(f"/v2/{repo}/manifests/v1").headers["content-type"] == OCI_MANIFEST


def test_pushing_the_same_manifest_again_is_idempotent(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    assert_created(push_manifest(client, repo, "v1", image.body), repo, image.body)
    assert_created(push_manifest(client, repo, "v1-again", image.body), repo, image.body)
    assert_manifest(client, repo, "v1-again", image.body, OCI_MANIFEST)


# -- content negotiation ---------------------------------------------------------------------------


def test_accept_listing_only_another_manifest_type_is_404(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    for ref in ("v1", image.digest):
        r = client.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": DOCKER_MANIFEST})
        assert_error(r, 404, "MANIFEST_UNKNOWN")
        r = client.head(f"/v2/{repo}/manifests/{ref}", headers={"Accept": f"{DOCKER_MANIFEST}, {OCI_INDEX}"})
        assert r.status_code == 404


ACCEPTABLE = [
    "*/*",
    OCI_MANIFEST,
    f"{DOCKER_MANIFEST}, {OCI_MANIFEST}",
    f"{OCI_MANIFEST};q=0.9",
    f"{DOCKER_MANIFEST};q=1.0, application/*;q=0.1",
    "application/json",
    "text/html",  # names no manifest type: not negotiating
]


def test_acceptable_accept_headers(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    for accept in ACCEPTABLE:
        for method in ("GET", "HEAD"):
            r = client.request(method, f"/v2/{repo}/manifests/v1", headers={"Accept": accept})
            assert r.status_code == 200, (accept, r.text)
            assert r.content == (image.body if method == "GET" else b"")
            assert r.headers["content-type"] == OCI_MANIFEST


def test_accept_in_several_header_lines(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    headers = [("Accept", DOCKER_MANIFEST), ("Accept", OCI_INDEX), ("Accept", OCI_MANIFEST)]
    r = client.get(f"/v2/{repo}/manifests/v1", headers=headers)
    assert r.status_code == 200 and r.content == image.body
    r = client.get(f"/v2/{repo}/manifests/v1", headers=headers[:2])
    assert_error(r, 404, "MANIFEST_UNKNOWN")


def test_no_accept_header_gets_the_manifest(client: httpx.Client, repo: str) -> None:
    manifest = docker_image(client, repo)
    _, body = put_json(client, repo, "v1", manifest, DOCKER_MANIFEST)
    r = client.get(f"/v2/{repo}/manifests/v1", headers={"Accept": ""})
    assert r.status_code == 200 and r.content == body
    assert r.headers["content-type"] == DOCKER_MANIFEST


# -- push by digest, tags on push ------------------------------------------------------------------


def test_put_by_digest(client: httpx.Client, repo: str) -> None:
    image = small_image()
    push_blobs(client, repo, image)
    r = push_manifest(client, repo, image.digest, image.body)
    assert_created(r, repo, image.body)
    assert "oci-tag" not in r.headers
    assert_manifest(client, repo, image.digest, image.body, OCI_MANIFEST)
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == []


def test_put_by_digest_that_does_not_match_the_body(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    other = small_image()
    push_blob(client, repo, other.config)
    for layer in other.layers:
        push_blob(client, repo, layer)
    r = push_manifest(client, repo, image.digest, other.body)
    assert_error(r, 400, "DIGEST_INVALID")
    assert_absent(client, repo, other.digest)
    assert client.get(f"/v2/{repo}/manifests/{image.digest}").content == image.body


def test_put_by_sha512_digest(client: httpx.Client, repo: str) -> None:
    image = small_image()
    push_blobs(client, repo, image)
    digest = "sha512:" + hashlib.sha512(image.body).hexdigest()
    r = push_manifest(client, repo, digest, image.body)
    assert r.status_code == 201, r.text
    assert r.headers["docker-content-digest"] == digest
    got = client.get(f"/v2/{repo}/manifests/{digest}")
    assert got.status_code == 200 and got.content == image.body
    assert got.headers["docker-content-digest"] == digest


def test_put_by_digest_with_tags(client: httpx.Client, repo: str) -> None:
    image = small_image()
    push_blobs(client, repo, image)
    r = client.put(f"/v2/{repo}/manifests/{image.digest}", params=[("tag", "a"), ("tag", "b")],
                   content=image.body, headers={"Content-Type": OCI_MANIFEST})
    assert_created(r, repo, image.body)
    announced = {t.strip() for value in r.headers.get_list("oci-tag") for t in value.split(",")}
    assert announced == {"a", "b"}
    for tag in ("a", "b"):
        assert_manifest(client, repo, tag, image.body, OCI_MANIFEST)
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["a", "b"]


def test_put_by_digest_with_an_invalid_tag_stores_nothing(client: httpx.Client, repo: str) -> None:
    image = small_image()
    push_blobs(client, repo, image)
    r = client.put(f"/v2/{repo}/manifests/{image.digest}", params=[("tag", "ok"), ("tag", "-bad")],
                   content=image.body, headers={"Content-Type": OCI_MANIFEST})
    assert_error(r, 400, "TAG_INVALID")
    assert_absent(client, repo, "ok")
    assert_absent(client, repo, image.digest)


# -- invalid manifests -----------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, "application/json"])
def test_schema1_is_refused(client: httpx.Client, repo: str, content_type: str) -> None:
    body = json.dumps({"schemaVersion": 1, "name": repo, "tag": "v1", "architecture": "amd64",
                       "fsLayers": [], "history": []}).encode()
    err = assert_error(push_manifest(client, repo, "v1", body, content_type), 400, "MANIFEST_INVALID")
    assert "schema 1" in err["message"]
    assert_absent(client, repo, "v1")


def test_content_type_must_match_the_media_type_field(client: httpx.Client, repo: str) -> None:
    image = small_image()
    push_blobs(client, repo, image)
    for content_type in (DOCKER_MANIFEST, OCI_INDEX):
        r = push_manifest(client, repo, "v1", image.body, content_type)
        err = assert_error(r, 400, "MANIFEST_INVALID")
        assert OCI_MANIFEST in err["message"]
    assert_absent(client, repo, "v1")


def test_unknown_content_type_is_refused(client: httpx.Client, repo: str) -> None:
    image = small_image()
    del image.manifest["mediaType"]
    push_blobs(client, repo, image)
    assert_error(push_manifest(client, repo, "v1", image.body, "text/plain"), 400, "MANIFEST_INVALID")


@pytest.mark.parametrize("body", [
    b"{not json",
    b"",
    b"\xff\xfe",
    b"[]",
    b'{"schemaVersion": 3, "mediaType": "application/vnd.oci.image.manifest.v1+json"}',
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}',  # no config
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", '
    b'"config": {"mediaType": "x", "digest": "sha256:nothex", "size": 1}, "layers": []}',
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": {}}',
])
def test_malformed_manifest_is_400(client: httpx.Client, repo: str, body: bytes) -> None:
    media_type = OCI_INDEX if b"index" in body else OCI_MANIFEST
    assert_error(push_manifest(client, repo, "v1", body, media_type), 400, "MANIFEST_INVALID")
    assert_absent(client, repo, "v1")


def test_missing_blob_is_manifest_blob_unknown_and_nothing_is_stored(client: httpx.Client, repo: str) -> None:
    image = make_image(n_layers=2, layer_size=64)
    push_blob(client, repo, image.config)
    push_blob(client, repo, image.layers[0])  # layers[1] is missing
    r = push_manifest(client, repo, "v1", image.body)
    err = assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert sha256(image.layers[1]) in err["message"]
    assert_absent(client, repo, "v1")
    assert_absent(client, repo, image.digest)
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == []


def test_refused_artifact_with_empty_config_leaves_nothing_behind(client: httpx.Client, repo: str) -> None:
    missing = random_blob(40)  # never pushed
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.thing",
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2},
        "layers": [descriptor("application/octet-stream", missing)],
    }
    r, body = put_json(client, repo, "v1", manifest, OCI_MANIFEST)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_absent(client, repo, sha256(body))
    assert_error(client.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")
    assert client.head(f"/v2/{repo}/blobs/{EMPTY_JSON_DIGEST}").status_code == 404
    assert repo not in client.get("/v2/_catalog").json()["repositories"]


def test_missing_config_is_manifest_blob_unknown(client: httpx.Client, repo: str) -> None:
    image = make_image(n_layers=1)
    push_blob(client, repo, image.layers[0])
    assert_error(push_manifest(client, repo, "v1", image.body), 400, "MANIFEST_BLOB_UNKNOWN")
    # Nothing at all was created for a repository that had nothing.
    assert_error(client.get(f"/v2/{repo}-fresh/tags/list"), 404, "NAME_UNKNOWN")
    r = push_manifest(client, f"{repo}-fresh", "v1", image.body)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_error(client.get(f"/v2/{repo}-fresh/tags/list"), 404, "NAME_UNKNOWN")


def test_blob_of_another_repository_does_not_count(client: httpx.Client, repo: str) -> None:
    image = small_image()
    push_image(client, f"{repo}-other", "v1", image)
    assert_error(push_manifest(client, repo, "v1", image.body), 400, "MANIFEST_BLOB_UNKNOWN")


def test_descriptor_size_must_match_the_blob(client: httpx.Client, repo: str) -> None:
    config, layer = b'{"os": "linux"}', random_blob(100)
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
                "layers": [{**descriptor(OCI_LAYER, layer), "size": 99}]}
    r, _ = put_json(client, repo, "v1", manifest, OCI_MANIFEST)
    assert_error(r, 400, "MANIFEST_INVALID")
    assert_absent(client, repo, "v1")


def test_manifest_over_4_mib_is_413(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "small")
    big = dict(image.manifest, annotations={"padding": "x" * (4 * 1024 * 1024)})
    body = json.dumps(big).encode()
    assert_error(push_manifest(client, repo, "big", body), 413, "SIZE_INVALID")
    assert_absent(client, repo, "big")
    # Streamed without a Content-Length, the limit still holds.
    r = client.put(f"/v2/{repo}/manifests/big", content=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]),
                   headers={"Content-Type": OCI_MANIFEST})
    assert_error(r, 413, "SIZE_INVALID")
    assert_absent(client, repo, "big")


def test_manifest_just_under_4_mib_is_accepted(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "small")
    big = dict(image.manifest, annotations={"padding": ""})
    overhead = len(json.dumps(big).encode())
    big["annotations"] = {"padding": "x" * (4 * 1024 * 1024 - overhead)}
    body = json.dumps(big).encode()
    assert len(body) == 4 * 1024 * 1024
    assert_created(push_manifest(client, repo, "big", body), repo, body)
    assert client.get(f"/v2/{repo}/manifests/big").content == body


# -- names and tags --------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["-leading-dash", ".leading-dot", "x" * 129, "has+plus", "t%C3%A4g"])
def test_invalid_tag_is_400_tag_invalid(client: httpx.Client, repo: str, tag: str) -> None:
    image = small_image()
    assert_error(push_manifest(client, repo, tag, image.body), 400, "TAG_INVALID")
    # Reading it finds nothing: no manifest can be stored under such a name.
    assert_error(client.get(f"/v2/{repo}/manifests/{tag}"), 404, "MANIFEST_UNKNOWN")


def test_longest_valid_tag(client: httpx.Client, repo: str) -> None:
    tag = "T" + "a_.-9" * 25 + "zz"
    assert len(tag) == 128
    image = push_small(client, repo, tag)
    assert_manifest(client, repo, tag, image.body, OCI_MANIFEST)


@pytest.mark.parametrize("name", ["Upper/case", "lib/Alpine", "a..b", "a/-b", "a//b", "x" * 230,
                                  "a/" + "b" * 228])
def test_invalid_repository_name_is_400_name_invalid(client: httpx.Client, name: str) -> None:
    image = small_image()
    assert_error(push_manifest(client, name, "v1", image.body), 400, "NAME_INVALID")
    assert_error(client.get(f"/v2/{name}/manifests/v1"), 400, "NAME_INVALID")
    assert_error(client.delete(f"/v2/{name}/manifests/v1"), 400, "NAME_INVALID")


def test_long_valid_repository_name(client: httpx.Client, repo: str) -> None:
    name = (repo + "/" + "a" * 229)[:229]
    image = push_small(client, name, "v1")
    assert_manifest(client, name, "v1", image.body, OCI_MANIFEST)


def test_deeply_nested_repository_name(client: httpx.Client, repo: str) -> None:
    name = f"{repo}/a/b-c/d__e/f.g"
    image = push_small(client, name, "v1")
    assert_manifest(client, name, "v1", image.body, OCI_MANIFEST)


# -- tags move, deletes ----------------------------------------------------------------------------


def test_retagging_moves_the_tag(client: httpx.Client, repo: str) -> None:
    first = push_small(client, repo, "latest")
    second = push_small(client, repo, "latest")
    assert_manifest(client, repo, "latest", second.body, OCI_MANIFEST)
    assert_manifest(client, repo, first.digest, first.body, OCI_MANIFEST)
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["latest"]


def test_delete_by_tag(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    push_manifest(client, repo, "v2", image.body)
    r = client.delete(f"/v2/{repo}/manifests/v1")
    assert r.status_code == 202
    assert_absent(client, repo, "v1")
    assert_manifest(client, repo, image.digest, image.body, OCI_MANIFEST)
    assert_manifest(client, repo, "v2", image.body, OCI_MANIFEST)
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v2"]
    assert_error(client.delete(f"/v2/{repo}/manifests/v1"), 404, "MANIFEST_UNKNOWN")


def test_delete_by_digest_removes_its_tags(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    push_manifest(client, repo, "v1.0", image.body)
    keep = push_small(client, repo, "other")
    r = client.delete(f"/v2/{repo}/manifests/{image.digest}")
    assert r.status_code == 202
    for ref in (image.digest, "v1", "v1.0"):
        assert_absent(client, repo, ref)
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["other"]
    assert_manifest(client, repo, "other", keep.body, OCI_MANIFEST)
    assert_error(client.delete(f"/v2/{repo}/manifests/{image.digest}"), 404, "MANIFEST_UNKNOWN")
    # It can be pushed again.
    assert_created(push_manifest(client, repo, "v1", image.body), repo, image.body)


def test_delete_of_an_index_child_is_refused(client: httpx.Client, repo: str) -> None:
    child = push_small(client, repo, "child")
    r, body = put_json(client, repo, "multi", index_of([(OCI_MANIFEST, child.body)]), OCI_INDEX)
    assert r.status_code == 201
    err = assert_error(client.delete(f"/v2/{repo}/manifests/{child.digest}"), 409, "DENIED")
    assert sha256(body) in err["message"]
    assert_manifest(client, repo, child.digest, child.body, OCI_MANIFEST)
    assert_manifest(client, repo, "child", child.body, OCI_MANIFEST)
    # Deleting the tag alone is fine; so is the child once the index is gone.
    assert client.delete(f"/v2/{repo}/manifests/child").status_code == 202
    assert client.delete(f"/v2/{repo}/manifests/{sha256(body)}").status_code == 202
    assert client.delete(f"/v2/{repo}/manifests/{child.digest}").status_code == 202
    assert_absent(client, repo, child.digest)


def test_unknown_manifest_is_404(client: httpx.Client, repo: str) -> None:
    push_small(client, repo, "v1")
    assert_absent(client, repo, "nope")
    assert_absent(client, repo, sha256(b"nothing"))
    assert_error(client.delete(f"/v2/{repo}/manifests/{sha256(b'nothing')}"), 404, "MANIFEST_UNKNOWN")
    assert_error(client.delete(f"/v2/{repo}/manifests/nope"), 404, "MANIFEST_UNKNOWN")


def test_manifest_in_unknown_repository_is_404(client: httpx.Client, repo: str) -> None:
    r = client.get(f"/v2/{repo}/manifests/latest")
    assert r.status_code == 404
    assert r.json()["errors"][0]["code"] in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN")


def test_delete_in_unknown_repository_is_name_unknown(client: httpx.Client, repo: str) -> None:
    assert_error(client.delete(f"/v2/{repo}/manifests/latest"), 404, "NAME_UNKNOWN")
    assert_error(client.delete(f"/v2/{repo}/manifests/{sha256(b'x')}"), 404, "NAME_UNKNOWN")


def test_malformed_digest_reference_is_400(client: httpx.Client, repo: str) -> None:
    push_small(client, repo, "v1")
    for method in ("GET", "DELETE"):
        assert_error(client.request(method, f"/v2/{repo}/manifests/sha256:abc"), 400, "DIGEST_INVALID")
    image = small_image()
    assert_error(push_manifest(client, repo, "sha256:abc", image.body), 400, "DIGEST_INVALID")


def test_repositories_are_independent(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    other = f"{repo}-other"
    push_small(client, other, "v2")
    assert_absent(client, other, "v1")
    assert_absent(client, other, image.digest)
    assert_error(client.delete(f"/v2/{other}/manifests/{image.digest}"), 404, "MANIFEST_UNKNOWN")
    assert_manifest(client, repo, "v1", image.body, OCI_MANIFEST)
