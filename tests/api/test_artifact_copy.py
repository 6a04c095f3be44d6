"""Copying artifacts on the server (POST .../artifacts?from=) and an image's build history addition."""

from __future__ import annotations

import hashlib
import json
import os

import httpx

from tests.api.artifact_support import (
    API,
    Registry,
    audited,
    enc,
    error_code,
    new_project,
    ok,
    repo_path,
    user_client,
)
from tests.oci_client import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Image, descriptor, make_image
from tests.servers import RunningServer


def copy(client: httpx.Client, project: str, repo: str, source: str) -> httpx.Response:
    return client.post(repo_path(project, repo, "/artifacts"), params={"from": source})


def pulled(registry: Registry, repo: str, ref: str, accept: str = f"{OCI_MANIFEST}, {OCI_INDEX}") -> bytes:
    return ok(registry.client(repo).get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept})).content


def blob(registry: Registry, repo: str, digest: str) -> bytes:
    return ok(registry.client(repo).get(f"/v2/{repo}/blobs/{digest}", follow_redirects=True)).content


def test_copy_an_image_by_tag(api: httpx.Client, registry: Registry, auth_server: RunningServer) -> None:
    source, target = new_project(api), new_project(api)
    image = registry.push(f"{source}/app", "v1")
    ok(registry.client(f"{source}/app").put(f"/v2/{source}/app/manifests/stable", content=image.body,
                                            headers={"Content-Type": OCI_MANIFEST}), 201)

    r = ok(copy(api, target, "team/app", f"{source}/app:v1"), 201)
    assert r.headers["Location"] == f"{API}/projects/{target}/repositories/{enc('team/app')}/artifacts/{image.digest}"
    art = ok(api.get(repo_path(target, "team/app", "/artifacts/v1"))).json()
    assert art["digest"] == image.digest and sorted(t["name"] for t in art["tags"]) == ["stable", "v1"]
    dest = f"{target}/team/app"
    assert pulled(registry, dest, "v1") == image.body
    assert blob(registry, dest, image.manifest["config"]["digest"]) == image.config
    for layer in image.layers:
        assert blob(registry, dest, descriptor(OCI_LAYER, layer)["digest"]) == layer
    assert audited(auth_server, f"{dest}@{image.digest}", ("create", "artifact", "admin"))

    ok(copy(api, target, "team/app", f"{source}/app@{image.digest}"), 201)  # already there: nothing changes
    assert len(ok(api.get(repo_path(target, "team/app", "/artifacts"))).json()) == 1
    ok(registry.client(f"{source}/app").delete(f"/v2/{source}/app/manifests/{image.digest}"), 202)
    assert pulled(registry, dest, image.digest) == image.body  # the copy stands on its own


def test_copy_an_index_takes_its_children(api: httpx.Client, registry: Registry) -> None:
    source, target = new_project(api), new_project(api)
    amd, arm = make_image(n_layers=1, layer_size=200), make_image(n_layers=2, layer_size=300)
    index = registry.push_index(f"{source}/multi", "latest",
                                [(amd, {"architecture": "amd64", "os": "linux"}),
                                 (arm, {"architecture": "arm64", "os": "linux"})])
    index_digest = "sha256:" + hashlib.sha256(index).hexdigest()

    ok(copy(api, target, "multi", f"{source}/multi@{index_digest}"), 201)
    dest = f"{target}/multi"
    assert pulled(registry, dest, index_digest) == index
    for child in (amd, arm):
        assert pulled(registry, dest, child.digest) == child.body
        assert blob(registry, dest, child.manifest["config"]["digest"]) == child.config
    [art] = ok(api.get(repo_path(target, "multi", "/artifacts"))).json()
    assert art["digest"] == index_digest and [t["name"] for t in art["tags"]] == ["latest"]
    assert sorted(ref["child_digest"] for ref in art["references"]) == sorted([amd.digest, arm.digest])
    assert all(ref["child_id"] for ref in art["references"])


def test_copy_refusals(api: httpx.Client, registry: Registry, auth_server: RunningServer) -> None:
    private, mine, small = new_project(api), new_project(api), new_project(api)
    image = registry.push(f"{private}/app", "v1")
    with user_client(auth_server, api, mine, "developer") as dev:
        r = copy(dev, mine, "app", f"{private}/app:v1")  # cannot see the source project
        assert r.status_code == 404 and error_code(r) == "NOT_FOUND"
    with user_client(auth_server, api, private, "guest") as reader:
        r = copy(reader, private, "other", f"{private}/app:v1")  # may pull, may not push
        assert r.status_code == 403 and error_code(r) == "FORBIDDEN"
    assert copy(api, mine, "app", f"{private}/app:nope").status_code == 404
    assert copy(api, mine, "app", f"{private}/missing:v1").status_code == 404
    for bad in ("no-tag-or-digest", f"{private}/app@sha256:12", "app:v1", f"{private}/App:v1"):
        r = copy(api, mine, "app", bad)
        assert r.status_code == 400 and error_code(r) == "BAD_REQUEST", bad
    assert api.post(repo_path(mine, "app", "/artifacts")).status_code == 400  # `from` is required

    ok(api.put(f"{API}/projects/{small}", json={"storage_limit": 100}))
    r = copy(api, small, "app", f"{private}/app:v1")
    assert r.status_code == 403 and "quota" in r.json()["errors"][0]["message"]
    assert api.get(repo_path(small, "app")).status_code == 404  # nothing was written
    assert registry.tags(f"{small}/app") is None
    ok(copy(api, mine, "app", f"{private}/app@{image.digest}"), 201)


def test_build_history(api: httpx.Client, registry: Registry) -> None:
    project = new_project(api)
    history = [{"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
               {"created": "2024-01-01T00:00:01Z", "created_by": "CMD [\"/app\"]", "empty_layer": True}]
    config = json.dumps({"architecture": "amd64", "os": "linux", "history": history,
                         "rootfs": {"type": "layers", "diff_ids": []}, "salt": os.urandom(4).hex()}).encode()
    layer = os.urandom(100)
    image = Image(config, [layer], {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                    "config": descriptor(OCI_CONFIG, config), "layers": [descriptor(OCI_LAYER, layer)]})
    registry.push(f"{project}/app", "v1", image)
    plain = registry.push(f"{project}/app", "plain")
    registry.push_index(f"{project}/app", "multi", [(make_image(n_layers=1), {"architecture": "amd64", "os": "linux"})])

    r = ok(api.get(repo_path(project, "app", "/artifacts/v1/additions/build_history")))
    assert r.headers["content-type"].startswith("application/json") and r.json() == history
    assert ok(api.get(repo_path(project, "app", f"/artifacts/{plain.digest}/additions/build_history"))).json() == []
    r = api.get(repo_path(project, "app", "/artifacts/multi/additions/build_history"))
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"
    assert api.get(repo_path(project, "app", "/artifacts/v1/additions/values.yaml")).status_code == 404
    assert api.get(repo_path(project, "app", "/artifacts/nope/additions/build_history")).status_code == 404
    r = api.get(repo_path(project, "app", "/artifacts/v1/additions/bogus"))
    assert r.status_code == 400 and error_code(r) == "BAD_REQUEST"


def test_copy_respects_immutable_tags(api: httpx.Client, registry: Registry) -> None:
    source, target = new_project(api), new_project(api)
    image = registry.push(f"{source}/app", "v1")
    registry.push(f"{target}/app", "v1")  # another artifact holds the tag there
    rule = {"disabled": False, "action": "immutable", "template": "immutable_template",
            "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "v1"}],
            "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]}}
    ok(api.post(f"{API}/projects/{target}/immutabletagrules", json=rule), 201)
    r = copy(api, target, "app", f"{source}/app:v1")
    assert r.status_code == 412 and error_code(r) == "PRECONDITION"  # as every immutable-tag refusal under /api
    assert registry.manifest_status(f"{target}/app", image.digest) == 404  # nothing was written
