"""GET /v2/<name>/referrers/<digest> (end-12a, end-12b) and the OCI-Subject header on manifest pushes."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.oci_client import (
    EMPTY_JSON_DIGEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    descriptor,
    push_blob,
    push_image,
    push_manifest,
    sha256,
)
from tests.registry.helpers import OCI_EMPTY, assert_error, index_of, push_small, random_blob, small_image

SBOM = "application/vnd.example.sbom.v1"
SIGNATURE_CONFIG = "application/vnd.example.signature.config.v1+json"
BUNDLE = "application/vnd.example.bundle.v1"


def subject_of(image: Image) -> dict[str, Any]:
    return {"mediaType": OCI_MANIFEST, "digest": image.digest, "size": len(image.body)}


def push_referrer(client: httpx.Client, repo: str, manifest: dict[str, Any],
                  media_type: str = OCI_MANIFEST) -> bytes:
    body = json.dumps(manifest).encode()
    r = push_manifest(client, repo, sha256(body), body, media_type)
    assert r.status_code == 201, r.text
    if "subject" in manifest:
        assert r.headers["oci-subject"] == manifest["subject"]["digest"]
    return body


def sbom_for(client: httpx.Client, repo: str, subject: dict[str, Any], **annotations: str) -> bytes:
    payload = random_blob(64)
    push_blob(client, repo, payload)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SBOM,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2},
        "layers": [descriptor("application/spdx+json", payload)],
        "subject": subject,
    }
    if annotations:
        manifest["annotations"] = annotations
    return push_referrer(client, repo, manifest)


def signature_for(client: httpx.Client, repo: str, subject: dict[str, Any]) -> bytes:
    """An image manifest without artifactType: its config's mediaType stands in."""
    config = b'{"signed": true}'
    sig = random_blob(32)
    push_blob(client, repo, config)
    push_blob(client, repo, sig)
    return push_referrer(client, repo, {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(SIGNATURE_CONFIG, config),
        "layers": [descriptor("application/vnd.example.signature", sig)],
        "subject": subject,
        "annotations": {"org.example.signer": "alice"},
    })


def referrers(client: httpx.Client, repo: str, digest: str, **params: str) -> httpx.Response:
    r = client.get(f"/v2/{repo}/referrers/{digest}", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == OCI_INDEX
    body = r.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    assert isinstance(body["manifests"], list)
    return r


def by_digest(r: httpx.Response) -> dict[str, dict[str, Any]]:
    manifests = r.json()["manifests"]
    found = {d["digest"]: d for d in manifests}
    assert len(found) == len(manifests), "duplicate descriptors"
    return found


def test_referrers_list_descriptors_with_artifact_type_and_annotations(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    subject = subject_of(image)
    sbom = sbom_for(client, repo, subject, **{"org.opencontainers.image.created": "2024-01-01T00:00:00Z"})
    sig = signature_for(client, repo, subject)
    bundle = push_referrer(client, repo, index_of([(OCI_MANIFEST, image.body)], subject=subject,
                                                  annotations={"org.example.kind": "bundle"}), OCI_INDEX)
    typed_bundle = push_referrer(client, repo, index_of([(OCI_MANIFEST, image.body)], subject=subject,
                                                        artifactType=BUNDLE), OCI_INDEX)

    found = by_digest(referrers(client, repo, image.digest))
    assert found == {
        sha256(sbom): {"mediaType": OCI_MANIFEST, "digest": sha256(sbom), "size": len(sbom), "artifactType": SBOM,
                       "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}},
        sha256(sig): {"mediaType": OCI_MANIFEST, "digest": sha256(sig), "size": len(sig),
                      "artifactType": SIGNATURE_CONFIG, "annotations": {"org.example.signer": "alice"}},
        # An index without artifactType has none in its descriptor.
        sha256(bundle): {"mediaType": OCI_INDEX, "digest": sha256(bundle), "size": len(bundle),
                         "annotations": {"org.example.kind": "bundle"}},
        sha256(typed_bundle): {"mediaType": OCI_INDEX, "digest": sha256(typed_bundle), "size": len(typed_bundle),
                               "artifactType": BUNDLE},
    }


def test_referrer_may_be_pushed_before_its_subject(client: httpx.Client, repo: str) -> None:
    image = small_image()
    sbom = sbom_for(client, repo, subject_of(image))  # asserts the OCI-Subject header
    assert_error(client.get(f"/v2/{repo}/manifests/{image.digest}"), 404, "MANIFEST_UNKNOWN")
    assert list(by_digest(referrers(client, repo, image.digest))) == [sha256(sbom)]
    push_image(client, repo, "v1", image)
    assert list(by_digest(referrers(client, repo, image.digest))) == [sha256(sbom)]


def test_push_without_subject_has_no_oci_subject_header(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "plain")
    r = push_manifest(client, repo, "again", image.body)
    assert r.status_code == 201 and "oci-subject" not in r.headers


def test_referrer_pushed_by_tag(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SBOM,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2},
        "layers": [{"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2}],
        "subject": subject_of(image),
    }
    body = json.dumps(manifest).encode()
    r = push_manifest(client, repo, "sbom", body)
    assert r.status_code == 201
    assert r.headers["oci-subject"] == image.digest
    assert list(by_digest(referrers(client, repo, image.digest))) == [sha256(body)]


def test_artifact_type_filter(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    sbom = sbom_for(client, repo, subject_of(image))
    sig = signature_for(client, repo, subject_of(image))

    r = referrers(client, repo, image.digest, artifactType=SBOM)
    assert r.headers["oci-filters-applied"] == "artifactType"
    assert list(by_digest(r)) == [sha256(sbom)]

    r = referrers(client, repo, image.digest, artifactType=SIGNATURE_CONFIG)
    assert r.headers["oci-filters-applied"] == "artifactType"
    assert list(by_digest(r)) == [sha256(sig)]

    r = referrers(client, repo, image.digest, artifactType="application/vnd.example.nothing")
    assert r.headers["oci-filters-applied"] == "artifactType"
    assert r.json()["manifests"] == []

    unfiltered = referrers(client, repo, image.digest)
    assert "oci-filters-applied" not in unfiltered.headers
    assert set(by_digest(unfiltered)) == {sha256(sbom), sha256(sig)}


def test_unknown_subject_has_an_empty_list(client: httpx.Client, repo: str) -> None:
    push_small(client, repo, "v1")
    r = referrers(client, repo, sha256(b"no such manifest"))
    assert r.json()["manifests"] == []


def test_subject_without_referrers_has_an_empty_list(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    assert referrers(client, repo, image.digest).json()["manifests"] == []


def test_unknown_repository_has_an_empty_list(client: httpx.Client, repo: str) -> None:
    assert referrers(client, repo, sha256(b"x")).json()["manifests"] == []


def test_bad_digest_is_400(client: httpx.Client, repo: str) -> None:
    push_small(client, repo, "v1")
    for bad in ("sha256:short", "latest", "md5:" + "a" * 32):
        r = client.get(f"/v2/{repo}/referrers/{bad}")
        assert_error(r, 400, "DIGEST_INVALID")


def test_referrers_are_per_repository(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    other = f"{repo}-other"
    push_image(client, other, "v1", image)
    sbom = sbom_for(client, other, subject_of(image))
    assert referrers(client, repo, image.digest).json()["manifests"] == []
    assert list(by_digest(referrers(client, other, image.digest))) == [sha256(sbom)]


def test_deleted_referrer_is_no_longer_listed(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    sbom = sbom_for(client, repo, subject_of(image))
    sig = signature_for(client, repo, subject_of(image))
    assert client.delete(f"/v2/{repo}/manifests/{sha256(sbom)}").status_code == 202
    assert list(by_digest(referrers(client, repo, image.digest))) == [sha256(sig)]


def test_repushing_a_referrer_does_not_duplicate_it(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    sbom = sbom_for(client, repo, subject_of(image))
    assert push_manifest(client, repo, "sbom-tag", sbom).status_code == 201
    assert list(by_digest(referrers(client, repo, image.digest))) == [sha256(sbom)]


def test_referrers_of_a_referrer(client: httpx.Client, repo: str) -> None:
    image = push_small(client, repo, "v1")
    sbom = sbom_for(client, repo, subject_of(image))
    sig = signature_for(client, repo, {"mediaType": OCI_MANIFEST, "digest": sha256(sbom), "size": len(sbom)})
    assert list(by_digest(referrers(client, repo, image.digest))) == [sha256(sbom)]
    assert list(by_digest(referrers(client, repo, sha256(sbom)))) == [sha256(sig)]
