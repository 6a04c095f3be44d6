"""The OCI conformance suite's (v1.1.1) checks on references that cannot exist and on its teardown, which
deletes blobs before the manifests that use them. The suite is Go and is not built here; each test below
makes the suite's requests and accepts exactly the statuses it accepts, then pins the answer Portside gives.
"""

from __future__ import annotations

import json
import os

import httpx
import pytest

from tests.oci_client import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, descriptor, push_blob, push_manifest, sha256
from tests.registry.helpers import assert_error

NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME"  # the suite's `nonexistentManifest`
# The suite's `errorCodes`: a 400 must carry one of these.
SPEC_CODES = {"BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
              "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID", "NAME_UNKNOWN",
              "SIZE_INVALID", "TAG_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS"}


def is_2xx(r: httpx.Response) -> bool:
    return 200 <= r.status_code < 300


def suite_setup(client: httpx.Client, repo: str, count: int) -> tuple[str, list[str], list[str]]:
    """As the suite's setup: one layer blob, `count` configs, one manifest per config over that layer,
    the first tagged. Returns (layer digest, config digests, manifest digests)."""
    layer = os.urandom(512)
    layer_digest = push_blob(client, repo, layer)
    configs, manifests = [], []
    for i in range(count):
        config = json.dumps({"architecture": "amd64", "os": "linux", "author": f"conformance {i}",
                             "salt": os.urandom(4).hex()}).encode()
        configs.append(push_blob(client, repo, config))
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
                           "layers": [descriptor(OCI_LAYER, layer)]}).encode()
        r = push_manifest(client, repo, "tagtest0" if i == 0 else sha256(body), body)
        assert r.status_code == 201, r.text
        manifests.append(sha256(body))
    return layer_digest, configs, manifests


# -- references that cannot exist (01_pull "Pull manifests", 02_push "Manifest Upload") -----------------


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_nonexistent_manifest_is_404(client: httpx.Client, repo: str, method: str) -> None:
    suite_setup(client, repo, 1)
    r = client.request(method, f"/v2/{repo}/manifests/{NONEXISTENT_MANIFEST}")
    assert r.status_code == 404  # the suite's whole check
    if method == "GET":
        assert_error(r, 404, "MANIFEST_UNKNOWN")


def test_nonexistent_manifest_in_unknown_repository_is_404(client: httpx.Client, repo: str) -> None:
    for method in ("HEAD", "GET"):
        assert client.request(method, f"/v2/{repo}/manifests/{NONEXISTENT_MANIFEST}").status_code == 404


@pytest.mark.parametrize("reference", [NONEXISTENT_MANIFEST, "-dash", "x" * 129, "t%C3%A4g"])
def test_invalid_tag_is_manifest_unknown(client: httpx.Client, repo: str, reference: str) -> None:
    """A tag no manifest can be stored under: reads and deletes find nothing (as in Distribution) rather
    than refusing a bad request. (A malformed digest stays 400 DIGEST_INVALID, see below.)"""
    suite_setup(client, repo, 1)
    assert_error(client.get(f"/v2/{repo}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")
    assert client.head(f"/v2/{repo}/manifests/{reference}").status_code == 404
    assert_error(client.delete(f"/v2/{repo}/manifests/{reference}"), 404, "MANIFEST_UNKNOWN")


def test_pushing_to_an_invalid_tag_is_still_tag_invalid(client: httpx.Client, repo: str) -> None:
    manifests = suite_setup(client, repo, 1)[2]
    body = client.get(f"/v2/{repo}/manifests/{manifests[0]}", headers={"Accept": OCI_MANIFEST}).content
    assert_error(push_manifest(client, repo, NONEXISTENT_MANIFEST, body), 400, "TAG_INVALID")


def test_error_body_for_a_malformed_digest(client: httpx.Client, repo: str) -> None:
    """01_pull "400 response body should contain OCI-conforming JSON message": 400 with a spec code, or 404."""
    suite_setup(client, repo, 1)
    r = client.get(f"/v2/{repo}/manifests/sha256:totallywrong")
    assert r.status_code in (400, 404)
    if r.status_code == 400:
        assert r.json()["errors"][0]["code"] in SPEC_CODES
    assert_error(r, 400, "DIGEST_INVALID")


# -- teardown: blobs before manifests (01_pull, 02_push, 03_discovery) --------------------------------------


def test_teardown_deletes_blobs_before_manifests(client: httpx.Client, repo: str) -> None:
    layer, configs, manifests = suite_setup(client, repo, 2)
    for digest in (configs[0], configs[1], layer):  # "Delete config[i] / layer blob created in setup"
        r = client.delete(f"/v2/{repo}/blobs/{digest}")
        assert is_2xx(r) or r.status_code in (404, 405), (r.status_code, r.text)
        # Portside: still used by a manifest, so refused as Zot refuses it, naming a manifest that uses it.
        err = assert_error(r, 405, "DENIED")
        assert any(m in err["message"] for m in manifests), err
        assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 200
    for digest in manifests:  # "Delete manifest[i] created in setup"
        r = client.delete(f"/v2/{repo}/manifests/{digest}")
        assert is_2xx(r) or r.status_code == 405, (r.status_code, r.text)
        assert r.status_code == 202


def test_management_blob_delete(client: httpx.Client, repo: str) -> None:
    """04_management: after manifest[3] is deleted its config goes (202); the layer other manifests still
    use is refused with 405, which the suite reads as "blob delete is not allowed"."""
    layer, configs, manifests = suite_setup(client, repo, 4)
    assert client.delete(f"/v2/{repo}/manifests/{manifests[3]}").status_code == 202
    r = client.delete(f"/v2/{repo}/blobs/{configs[3]}")
    assert r.status_code in (202, 404, 405)
    assert r.status_code == 202
    assert client.get(f"/v2/{repo}/blobs/{configs[3]}").status_code == 404
    r = client.delete(f"/v2/{repo}/blobs/{layer}")
    assert r.status_code in (202, 404, 405)
    assert_error(r, 405, "DENIED")
