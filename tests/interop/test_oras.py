"""oras-py (the ORAS Python SDK) pushing artifacts and referrers to Portside and pulling them back.

oras-py has no `artifactType` argument and no referrers call, so: the artifact's manifest gets its
artifactType through a one-line subclass hook on the manifest upload; one referrer goes through
`push(subject=...)` (its config media type is its artifact type, the ORAS 1.0 convention); another is
assembled from the library's blob-upload helpers and PUT by digest, untagged, with an explicit
artifactType. The referrers listing is read with the library's own HTTP session.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from oras.client import OrasClient
from oras.oci import NewLayer, Subject

from tests.interop.conftest import Registry
from tests.oci_client import sha256

pytestmark = pytest.mark.interop

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
MODEL_TYPE = "application/vnd.portside.test.model.v1"
MODEL_LAYER = "application/vnd.portside.test.model.layer.v1.bin"
ORAS_DEFAULT_LAYER = "application/vnd.oci.image.layer.v1.tar"  # what oras-py calls a file with no type
SBOM_TYPE = "application/vnd.portside.test.sbom.v1+json"
SIGNATURE_TYPE = "application/vnd.portside.test.signature.v1"



class ArtifactClient(OrasClient):  # type: ignore[misc]
    """OrasClient whose pushes carry a manifest-level artifactType (push() offers no argument for it)."""

    artifact_type: str | None = None

    def upload_manifest(self, manifest: dict[str, Any], container: Any) -> requests.Response:
        if self.artifact_type:
            manifest = {**manifest, "artifactType": self.artifact_type}
        response: requests.Response = super().upload_manifest(manifest, container)
        return response


def oras_client(registry: Registry) -> ArtifactClient:
    if registry.tls:  # verify against our root CA only (requests' verify=<CA bundle path>)
        return ArtifactClient(hostname=registry.host, tls_verify=str(registry.ca_cert))
    return ArtifactClient(hostname=registry.host, insecure=True)


def ok(response: requests.Response, *statuses: int) -> requests.Response:
    where = f"{response.request.method} {response.url}" if response.request else "(no request)"
    assert response.status_code in (statuses or (201,)), f"{where}: {response.status_code} {response.text}"
    return response


def raw_manifest(client: OrasClient, target: str) -> bytes:
    container = client.get_container(target)
    r = ok(client.do_request(f"{client.prefix}://{container.manifest_url()}", "GET",
                             headers={"Accept": OCI_MANIFEST}), 200)
    content: bytes = r.content
    return content


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_push_and_pull_artifact(registry: Registry, repo: str, tmp_path: Path, chunked: bool) -> None:
    """Two files under a custom artifactType; pulled back byte for byte, with the manifest as pushed."""
    src = tmp_path / "src"
    src.mkdir()
    model = src / "model.bin"
    model.write_bytes(os.urandom(300_000))
    notes = src / "NOTES.md"
    notes.write_text("# trained on nothing at all\n")
    client = oras_client(registry)
    client.artifact_type = MODEL_TYPE
    target = f"{registry.host}/{repo}:v1"

    r = client.push(
        target=target, files=[f"{model}:{MODEL_LAYER}", str(notes)], manifest_config=f":{OCI_EMPTY}",
        manifest_annotations={"org.opencontainers.image.description": "interop"},
        disable_path_validation=True, do_chunked=chunked, chunk_size=64 * 1024, quiet=True,
    )
    ok(r)
    digest = r.headers["Docker-Content-Digest"]

    body = raw_manifest(client, target)
    assert sha256(body) == digest
    manifest = json.loads(body)
    assert manifest["artifactType"] == MODEL_TYPE
    assert manifest["config"]["mediaType"] == OCI_EMPTY
    assert [layer["mediaType"] for layer in manifest["layers"]] == [MODEL_LAYER, ORAS_DEFAULT_LAYER]
    assert manifest["annotations"]["org.opencontainers.image.description"] == "interop"
    assert client.get_manifest(f"{registry.host}/{repo}@{digest}") == manifest

    out = tmp_path / "out"
    pulled = client.pull(target=target, outdir=str(out))
    assert sorted(Path(p).name for p in pulled) == ["NOTES.md", "model.bin"]
    assert (out / "model.bin").read_bytes() == model.read_bytes()
    assert (out / "NOTES.md").read_bytes() == notes.read_bytes()
    assert client.get_tags(f"{registry.host}/{repo}") == ["v1"]


def test_referrers(registry: Registry, repo: str, tmp_path: Path) -> None:
    """Two referrers of one artifact, one per way of setting artifactType; both listed, filter honoured."""
    payload = tmp_path / "payload.txt"
    payload.write_text("the subject of it all\n")
    client = oras_client(registry)
    r = ok(client.push(target=f"{registry.host}/{repo}:subject", files=[str(payload)],
                       disable_path_validation=True, quiet=True))
    subject_digest = r.headers["Docker-Content-Digest"]
    subject_body = raw_manifest(client, f"{registry.host}/{repo}@{subject_digest}")
    subject = Subject(mediaType=OCI_MANIFEST, digest=subject_digest, size=len(subject_body))

    # 1: push(subject=...) from the library; the artifact type is the config's media type.
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": "payload"}))
    r = ok(client.push(target=f"{registry.host}/{repo}:sbom", files=[f"{sbom}:application/spdx+json"],
                       manifest_config=f":{SBOM_TYPE}", subject=subject, disable_path_validation=True,
                       quiet=True))
    sbom_digest = r.headers["Docker-Content-Digest"]
    assert r.headers.get("OCI-Subject") == subject_digest

    # 2: assembled by hand from the library's blob helpers, with artifactType, PUT by digest (no tag).
    signature = tmp_path / "payload.sig"
    signature.write_bytes(os.urandom(256))
    container = client.get_container(f"{registry.host}/{repo}")
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"{}")
    config = NewLayer(str(empty), media_type=OCI_EMPTY)
    layer = NewLayer(str(signature), media_type="application/vnd.portside.test.signature.bytes")
    for path, descriptor in ((empty, config), (signature, layer)):
        ok(client.upload_blob(str(path), container, descriptor), 200, 201)  # 200: it was already there
    sig_manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SIGNATURE_TYPE,
        "config": config, "layers": [layer], "subject": vars(subject),
        "annotations": {"org.example.signed-by": "interop"},
    }
    sig_body = json.dumps(sig_manifest).encode()
    sig_digest = sha256(sig_body)
    by_digest = client.get_container(f"{registry.host}/{repo}@{sig_digest}")
    r = ok(client.do_request(f"{client.prefix}://{by_digest.manifest_url()}", "PUT", data=sig_body,
                             headers={"Content-Type": OCI_MANIFEST}))
    assert r.headers["Docker-Content-Digest"] == sig_digest
    assert r.headers.get("OCI-Subject") == subject_digest

    referrers_url = f"{client.prefix}://{registry.host}/v2/{repo}/referrers/{subject_digest}"

    def referrers(query: str = "") -> requests.Response:
        r = ok(client.do_request(referrers_url + query, "GET"), 200)
        assert r.headers["Content-Type"].split(";")[0] == OCI_INDEX
        index = r.json()
        assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
        return r

    listed = {d["digest"]: d for d in referrers().json()["manifests"]}
    sbom_body = raw_manifest(client, f"{registry.host}/{repo}@{sbom_digest}")
    assert listed == {
        sbom_digest: {"mediaType": OCI_MANIFEST, "digest": sbom_digest, "size": len(sbom_body),
                      "artifactType": SBOM_TYPE},
        sig_digest: {"mediaType": OCI_MANIFEST, "digest": sig_digest, "size": len(sig_body),
                     "artifactType": SIGNATURE_TYPE, "annotations": {"org.example.signed-by": "interop"}},
    }

    for artifact_type, expected in ((SIGNATURE_TYPE, sig_digest), (SBOM_TYPE, sbom_digest)):
        r = referrers("?" + urlencode({"artifactType": artifact_type}))  # "+json" must arrive as "+"
        assert [d["digest"] for d in r.json()["manifests"]] == [expected]
        assert r.headers.get("OCI-Filters-Applied") == "artifactType"
    assert referrers("?artifactType=application%2Fvnd.nothing").json()["manifests"] == []
    # No referrers of a manifest that has none (the referrer itself), and an empty index, not a 404.
    none_url = f"{client.prefix}://{registry.host}/v2/{repo}/referrers/{sig_digest}"
    assert ok(client.do_request(none_url, "GET"), 200).json()["manifests"] == []

    # The untagged referrer pulls by digest like any artifact; the tag list holds only the tags.
    pulled = client.pull(target=f"{registry.host}/{repo}@{sig_digest}", outdir=str(tmp_path / "out"))
    assert [Path(p).read_bytes() for p in pulled] == [signature.read_bytes()]
    assert client.get_tags(f"{registry.host}/{repo}") == ["sbom", "subject"]
