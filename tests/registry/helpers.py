"""Shared helpers for the /v2 HTTP tests: error assertions, upload sessions, more manifest shapes."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import httpx

from tests.oci_client import OCI_INDEX, Image, descriptor, make_image, push_blob, push_image, push_manifest, sha256

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is a spec-shaped error with this status and code; returns that error entry."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body.get("errors"), list) and body["errors"], body
    for entry in body["errors"]:
        if entry["code"] == code:
            assert isinstance(entry.get("message"), str)
            return dict(entry)
    raise AssertionError(f"expected error code {code}, got {body}")


def start_upload(client: httpx.Client, repo: str, **params: str) -> str:
    """POST an empty upload session; returns its Location."""
    r = client.post(f"/v2/{repo}/blobs/uploads/", params=params, headers={"Content-Length": "0"})
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    assert location.startswith(f"/v2/{repo}/blobs/uploads/")
    return location


def patch_chunk(client: httpx.Client, location: str, data: bytes, start: int) -> httpx.Response:
    return client.patch(location, content=data, headers={
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{start}-{start + len(data) - 1}",
    })


def blob_exists(client: httpx.Client, repo: str, digest: str) -> bool:
    r = client.head(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


def random_blob(size: int = 256) -> bytes:
    return os.urandom(size)


def put_json(client: httpx.Client, repo: str, ref: str, manifest: dict[str, Any],
             media_type: str) -> tuple[httpx.Response, bytes]:
    body = json.dumps(manifest).encode()
    return push_manifest(client, repo, ref, body, media_type), body


def docker_image(client: httpx.Client, repo: str) -> dict[str, Any]:
    """Push the blobs of a Docker schema 2 image and return its manifest (not pushed)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "salt": os.urandom(8).hex()}).encode()
    layer = random_blob(300)
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    return {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, config),
        "layers": [descriptor(DOCKER_LAYER, layer)],
    }


def index_of(children: list[tuple[str, bytes]], media_type: str = OCI_INDEX, **extra: Any) -> dict[str, Any]:
    """An index over (media type, manifest body) pairs."""
    platforms = [{"architecture": a, "os": "linux"} for a in ("amd64", "arm64", "s390x", "ppc64le")]
    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            {"mediaType": mt, "digest": sha256(body), "size": len(body), "platform": platforms[i % 4]}
            for i, (mt, body) in enumerate(children)
        ],
        **extra,
    }


def small_image(**manifest_extra: Any) -> Image:
    """An image with one small layer: three requests to push instead of four."""
    return make_image(n_layers=1, layer_size=128, **manifest_extra)


def push_small(client: httpx.Client, repo: str, ref: str) -> Image:
    return push_image(client, repo, ref, small_image())


def push_blobs(client: httpx.Client, repo: str, image: Image) -> None:
    """Push an image's config and layers, not its manifest."""
    push_blob(client, repo, image.config)
    for layer in image.layers:
        push_blob(client, repo, layer)
