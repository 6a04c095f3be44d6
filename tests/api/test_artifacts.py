"""Artifacts and tags through /api/v2.0: Harbor's shapes, filters, paging, deletes and permissions."""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

import httpx

from tests.api.artifact_support import (
    API,
    Registry,
    audited,
    check_shape,
    error_code,
    harbor_time,
    image_size,
    new_project,
    ok,
    project_id,
    repo_path,
    user_client,
)
from tests.oci_client import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    descriptor,
    make_image,
    push_blob,
    push_manifest,
)
from tests.servers import RunningServer

ARTIFACT_FIELDS = {"id", "type", "media_type", "manifest_media_type", "artifact_type", "project_id", "repository_id",
                   "repository_name", "digest", "size", "push_time", "pull_time", "extra_attrs", "annotations",
                   "references", "tags", "labels", "accessories"}
TAG_FIELDS = {"id", "repository_id", "artifact_id", "name", "push_time", "pull_time", "immutable"}
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"


def rich_image() -> Image:
    """An image whose config has what Harbor's extra_attrs show."""
    config = json.dumps({
        "architecture": "arm64", "os": "linux", "created": "2024-03-01T10:20:30.123456789Z", "author": "ops team",
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/app"], "Labels": {"team": "ops"}},
        "rootfs": {"type": "layers", "diff_ids": []}, "salt": os.urandom(4).hex(),
    }).encode()
    layers = [os.urandom(200), os.urandom(300)]
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
                "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", x) for x in layers],
                "annotations": {"org.opencontainers.image.source": "https://example.com/app"}}
    return Image(config, layers, manifest)


def typed_image(config_media_type: str, config: dict[str, Any]) -> Image:
    data = json.dumps({**config, "salt": os.urandom(4).hex()}).encode()
    layer = os.urandom(100)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(config_media_type, data),
                "layers": [descriptor("application/octet-stream", layer)]}
    return Image(data, [layer], manifest)


def artifacts(api: httpx.Client, project: str, repo: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ok(api.get(repo_path(project, repo, "/artifacts"), params=params)).json()
    return found


# -- shapes -------------------------------------------------------------------------------------


def test_image_artifact_shape(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    image = registry.push(f"{project}/team/app", "v1", rich_image())
    [art] = artifacts(api, project, "team/app")

    check_shape(art, "Artifact", required=ARTIFACT_FIELDS)
    assert art["type"] == "IMAGE"
    assert art["media_type"] == OCI_CONFIG and art["manifest_media_type"] == OCI_MANIFEST
    assert art["artifact_type"] == OCI_CONFIG
    assert art["digest"] == image.digest and art["size"] == image_size(image)
    assert art["project_id"] == project_id(api, project)
    assert art["repository_name"] == f"{project}/team/app"
    repo = ok(api.get(repo_path(project, "team/app"))).json()
    assert art["repository_id"] == repo["id"]
    assert harbor_time(art["push_time"]) and art["pull_time"] is None
    assert art["extra_attrs"] == {
        "architecture": "arm64", "os": "linux", "created": "2024-03-01T10:20:30.123456789Z", "author": "ops team",
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["/app"], "Labels": {"team": "ops"}},
    }
    assert art["annotations"] == {"org.opencontainers.image.source": "https://example.com/app"}
    assert art["references"] == [] and art["labels"] == [] and art["accessories"] == []

    [tag] = art["tags"]
    check_shape(tag, "Tag", required=TAG_FIELDS, extra=frozenset({"signed"}))
    assert tag["name"] == "v1" and tag["artifact_id"] == art["id"] and tag["repository_id"] == repo["id"]
    assert tag["immutable"] is False and tag["signed"] is False and isinstance(tag["id"], int)
    harbor_time(tag["push_time"])

    by_tag = ok(api.get(repo_path(project, "team/app", "/artifacts/v1"))).json()
    by_digest = ok(api.get(repo_path(project, "team/app", f"/artifacts/{image.digest}"))).json()
    assert by_tag == by_digest == art
    assert ok(api.get(repo_path(project, "team/app", "/artifacts/v1"), params={"with_tag": "false"})).json()[
        "tags"] is None

    r = api.get(repo_path(project, "team/app", "/artifacts/nope"))
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"
    r = api.get(repo_path(project, "team/app", "/artifacts/sha256:" + "0" * 64))
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"
    r = api.get(repo_path(project, "team/app", "/artifacts/sha256:short"))
    assert r.status_code == 400 and error_code(r) == "BAD_REQUEST"


def test_pull_time_after_a_pull(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    repo = f"{project}/pulled"
    image = registry.push(repo, "v1")
    assert registry.manifest_status(repo, "v1") == 200
    # Pull times are written in batches (every few seconds).
    for _ in range(60):
        art = ok(api.get(repo_path(project, "pulled", f"/artifacts/{image.digest}"))).json()
        if art["pull_time"] is not None:
            break
        time.sleep(0.25)
    assert harbor_time(art["pull_time"]) >= harbor_time(art["push_time"])
    assert art["tags"][0]["pull_time"] == art["pull_time"]


def test_types_chart_unknown_and_derived(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    chart = registry.push(f"{project}/charts/web", "0.1.0",
                          typed_image(HELM_CONFIG, {"name": "web", "version": "0.1.0", "apiVersion": "v2"}))
    other = registry.push(f"{project}/things", "v1", typed_image("application/vnd.example.thing.v1+json", {"a": 1}))
    model = registry.push(f"{project}/models", "v1",
                          typed_image("application/vnd.acme.model.config.v1+json", {"framework": "onnx"}))

    [art] = artifacts(api, project, "charts/web")
    assert art["type"] == "CHART" and art["media_type"] == HELM_CONFIG and art["size"] == image_size(chart)
    assert art["extra_attrs"]["name"] == "web" and art["extra_attrs"]["version"] == "0.1.0"
    [art] = artifacts(api, project, "things")
    assert art["type"] == "UNKNOWN" and art["extra_attrs"] == {} and art["size"] == image_size(other)
    [art] = artifacts(api, project, "models")  # Harbor names such types after the media type's middle
    assert art["type"] == "MODEL" and art["extra_attrs"]["framework"] == "onnx" and art["size"] == image_size(model)


def test_index_references_sizes_and_listing(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    repo = f"{project}/multi"
    amd, arm = make_image(), make_image()
    body = registry.push_index(repo, "latest", [(amd, {"architecture": "amd64", "os": "linux"}),
                                                (arm, {"architecture": "arm64", "os": "linux", "variant": "v8"})])

    # Only the index is a top-level artifact; base=* lists its children too.
    [index] = artifacts(api, project, "multi")
    assert index["type"] == "IMAGE" and index["media_type"] == OCI_INDEX
    assert index["manifest_media_type"] == OCI_INDEX
    assert index["size"] == len(body) + image_size(amd) + image_size(arm)
    assert index["extra_attrs"] == {} and [t["name"] for t in index["tags"]] == ["latest"]
    children = {c["digest"]: c for c in artifacts(api, project, "multi", q="base=*")}
    assert set(children) == {index["digest"], amd.digest, arm.digest}
    for ref in index["references"]:
        check_shape(ref, "Reference", required={"parent_id", "child_id", "child_digest", "platform"})
        check_shape(ref["platform"], "Platform", required={"architecture", "os"})
        assert ref["parent_id"] == index["id"] and ref["child_id"] == children[ref["child_digest"]]["id"]
    assert [(r["child_digest"], r["platform"]) for r in index["references"]] == [
        (amd.digest, {"architecture": "amd64", "os": "linux"}),
        (arm.digest, {"architecture": "arm64", "os": "linux", "variant": "v8"}),
    ]
    repository = ok(api.get(repo_path(project, "multi"))).json()
    assert repository["artifact_count"] == 1

    # A child is an artifact of its own when asked for by digest.
    child = ok(api.get(repo_path(project, "multi", f"/artifacts/{amd.digest}"))).json()
    assert child["size"] == image_size(amd) and child["extra_attrs"]["architecture"] == "amd64"


def test_delete_index_takes_unshared_children(api: httpx.Client, registry: Registry,
                                              auth_server: RunningServer) -> None:
    project = new_project(api)
    repo = f"{project}/multi"
    lone, shared, tagged = make_image(), make_image(), make_image()
    plat = {"architecture": "amd64", "os": "linux"}
    first = registry.push_index(repo, "one", [(lone, plat), (shared, plat), (tagged, plat)])
    registry.push_index(repo, "two", [(shared, plat)])
    registry.push(repo, "keep", tagged)

    # A child cannot go while an index lists it.
    r = api.delete(repo_path(project, "multi", f"/artifacts/{lone.digest}"))
    assert r.status_code == 412 and error_code(r) == "PRECONDITION"
    assert registry.manifest_status(repo, lone.digest) == 200

    first_digest = "sha256:" + hashlib.sha256(first).hexdigest()
    ok(api.delete(repo_path(project, "multi", "/artifacts/one")))
    assert registry.manifest_status(repo, first_digest) == 404
    assert registry.manifest_status(repo, lone.digest) == 404  # only this index listed it
    assert registry.manifest_status(repo, shared.digest) == 200  # index "two" still lists it
    assert registry.manifest_status(repo, tagged.digest) == 200  # a tag names it
    assert sorted(registry.tags(repo) or []) == ["keep", "two"]
    assert audited(auth_server, f"{repo}@{first_digest}", ("delete", "artifact", "admin"))
    listed = {a["digest"] for a in artifacts(api, project, "multi")}
    assert tagged.digest in listed and lone.digest not in listed and first_digest not in listed


def test_delete_by_digest_or_tag_removes_tags(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    repo = f"{project}/svc"
    one = registry.push(repo, "v1")
    push_manifest(registry.client(repo), repo, "stable", one.body)
    two = registry.push(repo, "v2")

    ok(api.delete(repo_path(project, "svc", f"/artifacts/{one.digest}")))
    assert registry.manifest_status(repo, one.digest) == 404
    assert registry.manifest_status(repo, "v1") == 404 and registry.manifest_status(repo, "stable") == 404
    assert registry.tags(repo) == ["v2"]

    ok(api.delete(repo_path(project, "svc", "/artifacts/v2")))  # a tag names the whole artifact
    assert registry.manifest_status(repo, two.digest) == 404
    assert artifacts(api, project, "svc") == []
    r = api.delete(repo_path(project, "svc", "/artifacts/v2"))
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"
    assert ok(api.get(repo_path(project, "svc"))).json()["artifact_count"] == 0


def test_accessories_listed_with_their_subject_and_deleted_with_it(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    repo = f"{project}/signed"
    image = registry.push(repo, "v1")
    client = registry.client(repo)
    sig_type = "application/vnd.dev.cosign.artifact.sig.v1+json"
    empty = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    layer = os.urandom(64)
    push_blob(client, repo, layer)
    referrer = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": sig_type,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
                "layers": [descriptor("application/octet-stream", layer)],
                "subject": descriptor(OCI_MANIFEST, image.body)}
    body = json.dumps(referrer).encode()
    ref_digest = "sha256:" + hashlib.sha256(body).hexdigest()
    ok(push_manifest(client, repo, ref_digest, body), 201)

    listed = artifacts(api, project, "signed")
    assert [a["digest"] for a in listed] == [image.digest] and listed[0]["accessories"] == []
    [art] = artifacts(api, project, "signed", with_accessory="true")
    [acc] = art["accessories"]
    check_shape(acc, "Accessory", required={"id", "artifact_id", "subject_artifact_id", "subject_artifact_digest",
                                            "subject_artifact_repo", "size", "digest", "type", "creation_time"})
    assert acc["digest"] == ref_digest and acc["type"] == "signature.cosign"
    assert acc["subject_artifact_id"] == art["id"] and acc["subject_artifact_digest"] == image.digest
    assert acc["size"] == len(body) + 2 + len(layer)
    assert [a["digest"] for a in ok(api.get(repo_path(project, "signed", "/artifacts/v1/accessories"))).json()] == [
        ref_digest]

    ok(api.delete(repo_path(project, "signed", "/artifacts/v1")))
    assert registry.manifest_status(repo, ref_digest) == 404


# -- filters, sorting, paging -------------------------------------------------------------------


def test_q_sort_and_paging(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    repo = f"{project}/app"
    images = [registry.push(repo, f"v{i}") for i in range(3)]
    untagged = make_image()
    registry.push(repo, untagged.digest, untagged)
    chart = registry.push(repo, "chart-1", typed_image(HELM_CONFIG, {"name": "c", "version": "1"}))

    newest_first = [a["digest"] for a in artifacts(api, project, "app")]
    assert newest_first == [chart.digest, untagged.digest, *[i.digest for i in reversed(images)]]
    oldest_first = [a["digest"] for a in artifacts(api, project, "app", sort="push_time,id")]
    assert oldest_first == list(reversed(newest_first))

    r = ok(api.get(repo_path(project, "app", "/artifacts"), params={"page": 2, "page_size": 2}))
    assert r.headers["X-Total-Count"] == "5"
    assert 'rel="prev"' in r.headers["Link"] and 'rel="next"' in r.headers["Link"]
    assert [a["digest"] for a in r.json()] == newest_first[2:4]

    def digests(q: str) -> set[str]:
        return {a["digest"] for a in artifacts(api, project, "app", q=q)}

    assert digests("tags=nil") == {untagged.digest}
    assert digests("tags=*") == set(newest_first) - {untagged.digest}
    assert digests("tags=v1") == {images[1].digest}
    assert digests("tags=~chart") == {chart.digest}
    assert digests(f"digest={images[0].digest}") == {images[0].digest}
    assert digests(f"media_type={HELM_CONFIG}") == {chart.digest}
    assert digests("type=IMAGE") == set(newest_first) - {chart.digest}
    assert digests("push_time=[2000-01-01 00:00:00~2999-01-01 00:00:00]") == set(newest_first)
    assert digests("push_time=[2999-01-01 00:00:00~]") == set()
    assert digests("labels=(1)") == set()
    for bad in ("colour=blue", "base=1"):
        r = api.get(repo_path(project, "app", "/artifacts"), params={"q": bad})
        assert r.status_code == 400 and error_code(r) == "BAD_REQUEST", bad


def test_project_artifacts(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    a = registry.push(f"{project}/a", "v1")
    b = registry.push(f"{project}/b/c", "v1")
    b2 = registry.push(f"{project}/b/c", "v2")
    pid = project_id(api, project)
    for ref in (project, str(pid)):
        r = ok(api.get(f"{API}/projects/{ref}/artifacts"))
        assert r.headers["X-Total-Count"] == "3"
        assert [x["digest"] for x in r.json()] == [b2.digest, b.digest, a.digest]
        for art in r.json():
            check_shape(art, "Artifact", required=ARTIFACT_FIELDS)
            assert art["project_id"] == pid
    r = ok(api.get(f"{API}/projects/{project}/artifacts", params={"q": f"repository_name=~{project}/b"}))
    assert {x["repository_name"] for x in r.json()} == {f"{project}/b/c"}
    r = ok(api.get(f"{API}/projects/{project}/artifacts",
                   params={"q": f"media_type={OCI_CONFIG}", "latest_in_repository": "true"}))
    assert sorted(x["digest"] for x in r.json()) == sorted([a.digest, b2.digest])
    r = ok(api.get(f"{API}/projects/{pid}/artifacts", headers={"X-Is-Resource-Name": "false"}))
    assert len(r.json()) == 3


# -- tags ---------------------------------------------------------------------------------------


def test_create_list_and_delete_tags(api: httpx.Client, registry: Registry, auth_server: RunningServer) -> None:
    project = new_project(api)
    repo = f"{project}/tools/cli"
    one, two = registry.push(repo, "v1"), registry.push(repo, "v2")

    r = ok(api.post(repo_path(project, "tools/cli", f"/artifacts/{one.digest}/tags"), json={"name": "stable"}), 201)
    assert r.headers["Location"].endswith("/tags/stable")
    assert registry.manifest_status(repo, "stable") == 200
    assert registry.client(repo).get(f"/v2/{repo}/manifests/stable",
                                     headers={"Accept": OCI_MANIFEST}).headers["Docker-Content-Digest"] == one.digest
    assert audited(auth_server, f"{repo}:stable", ("create", "tag", "admin"))

    r = ok(api.get(repo_path(project, "tools/cli", "/artifacts/v1/tags"), params={"sort": "name"}))
    assert [t["name"] for t in r.json()] == ["stable", "v1"] and r.headers["X-Total-Count"] == "2"
    for tag in r.json():
        check_shape(tag, "Tag", required=TAG_FIELDS, extra=frozenset({"signed"}))
    r = ok(api.get(repo_path(project, "tools/cli", "/artifacts/v1/tags"), params={"q": "name=~sta"}))
    assert [t["name"] for t in r.json()] == ["stable"]

    # Harbor answers 409 for a tag the repository already has, on this artifact or another.
    for target, name in ((one.digest, "stable"), (two.digest, "stable"), ("v2", "v1")):
        r = api.post(repo_path(project, "tools/cli", f"/artifacts/{target}/tags"), json={"name": name})
        assert r.status_code == 409 and error_code(r) == "CONFLICT", (target, name)
    r = api.post(repo_path(project, "tools/cli", "/artifacts/v1/tags"), json={"name": "-bad tag"})
    assert r.status_code == 400 and error_code(r) == "BAD_REQUEST"
    r = api.post(repo_path(project, "tools/cli", "/artifacts/v9/tags"), json={"name": "x"})
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"

    # Deleting a tag leaves the artifact; the tag must be on the artifact named.
    r = api.delete(repo_path(project, "tools/cli", "/artifacts/v2/tags/stable"))
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"
    ok(api.delete(repo_path(project, "tools/cli", f"/artifacts/{one.digest}/tags/stable")))
    assert registry.manifest_status(repo, "stable") == 404
    assert registry.manifest_status(repo, one.digest) == 200
    assert sorted(registry.tags(repo) or []) == ["v1", "v2"]
    assert audited(auth_server, f"{repo}:stable", ("delete", "tag", "admin"))


# -- permissions --------------------------------------------------------------------------------


def test_permissions(api: httpx.Client, anon: httpx.Client, registry: Registry, auth_server: RunningServer) -> None:
    public, private = new_project(api, public=True), new_project(api)
    pub_image = registry.push(f"{public}/app", "v1")
    image = registry.push(f"{private}/app", "v1")

    # Public: anyone reads; anonymous callers change nothing.
    assert len(ok(anon.get(repo_path(public, "app", "/artifacts"))).json()) == 1
    ok(anon.get(repo_path(public, "app", "/artifacts/v1")))
    ok(anon.get(repo_path(public, "app", "/artifacts/v1/tags")))
    ok(anon.get(f"{API}/projects/{public}/artifacts"))
    for r in (anon.delete(repo_path(public, "app", "/artifacts/v1")),
              anon.post(repo_path(public, "app", "/artifacts/v1/tags"), json={"name": "x"}),
              anon.delete(repo_path(public, "app", "/artifacts/v1/tags/v1"))):
        assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED"

    # Private: 401 anonymous, 404 for a signed-in non-member.
    paths = [repo_path(private, "app", "/artifacts"), repo_path(private, "app", f"/artifacts/{image.digest}"),
             repo_path(private, "app", "/artifacts/v1/tags"), f"{API}/projects/{private}/artifacts"]
    for path in paths:
        r = anon.get(path)
        assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED", path
    with user_client(auth_server, api) as stranger:
        for path in paths:
            r = stranger.get(path)
            assert r.status_code == 404 and error_code(r) == "NOT_FOUND", path
        r = stranger.delete(repo_path(private, "app", "/artifacts/v1"))
        assert r.status_code == 404
        r = stranger.delete(repo_path(public, "app", f"/artifacts/{pub_image.digest}"))
        assert r.status_code == 403 and error_code(r) == "FORBIDDEN"

    with user_client(auth_server, api, private, "guest") as guest:
        assert len(ok(guest.get(repo_path(private, "app", "/artifacts"))).json()) == 1
        for r in (guest.delete(repo_path(private, "app", "/artifacts/v1")),
                  guest.post(repo_path(private, "app", "/artifacts/v1/tags"), json={"name": "g"})):
            assert r.status_code == 403 and error_code(r) == "FORBIDDEN"
    with user_client(auth_server, api, private, "developer") as developer:
        ok(developer.post(repo_path(private, "app", "/artifacts/v1/tags"), json={"name": "dev"}), 201)
        for r in (developer.delete(repo_path(private, "app", "/artifacts/v1/tags/dev")),
                  developer.delete(repo_path(private, "app", "/artifacts/v1"))):
            assert r.status_code == 403 and error_code(r) == "FORBIDDEN"
    with user_client(auth_server, api, private, "maintainer") as maintainer:
        ok(maintainer.delete(repo_path(private, "app", "/artifacts/v1/tags/dev")))
        ok(maintainer.delete(repo_path(private, "app", "/artifacts/v1")))
    assert registry.manifest_status(f"{private}/app", image.digest) == 404
