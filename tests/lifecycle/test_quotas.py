"""Project storage quotas on a live server: exact accounting (each digest once per project), releases
on delete and garbage collection, refusals that leave nothing behind, concurrent pushes that never
overshoot, and the /quotas API."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.lifecycle.quota_support import (
    bearer,
    create_project,
    error_of,
    put_manifest,
    registry_client,
    run_gc,
    set_limit,
    signed_in,
    token_for,
    upload,
    upload_chunked,
    used,
)
from tests.oci_client import (
    EMPTY_JSON_DIGEST,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Image,
    descriptor,
    make_image,
    push_image,
    sha256,
)
from tests.servers import RunningServer

EMPTY_JSON_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"


@pytest.fixture
def api(auth_server: RunningServer) -> Iterator[httpx.Client]:
    with signed_in(auth_server) as client:
        yield client


def image_of(layers: list[bytes], **manifest_extra: Any) -> Image:
    """An image with the given layers and a config of its own."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "salt": os.urandom(8).hex()}).encode()
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config),
                "layers": [descriptor(OCI_LAYER, x) for x in layers], **manifest_extra}
    return Image(config, layers, manifest)


def recount(images: Iterable[Image] = (), blobs: Iterable[bytes] = ()) -> int:
    """What the project should use, from the pushed bytes: each distinct digest once."""
    sizes: dict[str, int] = {}
    for image in images:
        sizes[image.digest] = len(image.body)
        for blob in [image.config, *image.layers]:
            sizes[sha256(blob)] = len(blob)
    for blob in blobs:
        sizes[sha256(blob)] = len(blob)
    return sum(sizes.values())


def summary_quota(api: httpx.Client, project: str) -> dict[str, Any]:
    r = api.get(f"/api/v2.0/projects/{project}/summary")
    assert r.status_code == 200, r.text
    quota: dict[str, Any] = r.json()["quota"]
    return quota


def test_each_blob_counts_once_per_project(auth_server: RunningServer, api: httpx.Client,
                                           project_name: str) -> None:
    pid = create_project(api, project_name)
    other_name = f"{project_name}x"
    other_id = create_project(api, other_name)
    one, two, elsewhere = f"{project_name}/one", f"{project_name}/two", f"{other_name}/app"
    with registry_client(auth_server, [one, two, elsewhere]) as reg:
        assert used(api, pid) == 0
        a = make_image(n_layers=2, layer_size=3000)
        push_image(reg, one, "a", a)
        assert used(api, pid) == recount([a])

        # B shares A's first layer and brings one of its own, in another repository of the project.
        b = image_of([a.layers[0], os.urandom(5000)])
        push_image(reg, two, "b", b)
        assert used(api, pid) == recount([a, b]) == recount([a]) + len(b.body) + len(b.config) + 5000

        # A again, in the second repository and under a second tag: nothing new to the project.
        push_image(reg, two, "a", a)
        assert put_manifest(reg, one, "a-again", a.body, OCI_MANIFEST).status_code == 201
        assert used(api, pid) == recount([a, b])

        # Another project holding the same content counts it for itself; the first one is unchanged.
        push_image(reg, elsewhere, "a", a)
        assert used(api, other_id) == recount([a])
        assert used(api, pid) == recount([a, b])

    assert summary_quota(api, project_name) == {"hard": {"storage": -1}, "used": {"storage": recount([a, b])}}


def test_deletes_and_gc_release_usage_exactly(auth_server: RunningServer, api: httpx.Client,
                                              project_name: str) -> None:
    pid = create_project(api, project_name)
    repo, other = f"{project_name}/app", f"{project_name}/other"
    with registry_client(auth_server, [repo, other]) as reg:
        a = make_image(n_layers=2, layer_size=2000)
        b = image_of([a.layers[0], os.urandom(3000)])  # shares a layer with A
        c = image_of([a.layers[1], os.urandom(4000)])  # in the other repository, shares one too
        push_image(reg, repo, "a", a)
        push_image(reg, repo, "b", b)
        push_image(reg, other, "c", c)
        stray = os.urandom(1500)
        assert upload(reg, repo, stray).status_code == 201
        assert used(api, pid) == recount([a, b, c], [stray])

        # A tag delete leaves the manifest (and everything) in place.
        assert put_manifest(reg, repo, "b2", b.body, OCI_MANIFEST).status_code == 201
        assert reg.delete(f"/v2/{repo}/manifests/b2").status_code == 202
        assert used(api, pid) == recount([a, b, c], [stray])

        # A manifest delete releases the manifest at once; its blobs stay linked until GC.
        assert reg.delete(f"/v2/{repo}/manifests/{b.digest}").status_code == 202
        assert used(api, pid) == recount([a, c], [stray, b.config, *b.layers])
        run = run_gc(api, time_window=0)
        assert run["job_status"] == "Success", run
        assert used(api, pid) == recount([a, c])

        # Deleting a repository releases what only it held (C's own config and layer), at once.
        r = api.delete(f"/api/v2.0/projects/{project_name}/repositories/other")
        assert r.status_code == 200, r.text
        assert used(api, pid) == recount([a])
        assert run_gc(api, time_window=0)["job_status"] == "Success"
        assert used(api, pid) == recount([a])

        # Untagged manifests collected by GC with delete_untagged release their share too.
        assert reg.delete(f"/v2/{repo}/manifests/a").status_code == 202
        assert run_gc(api, time_window=0, delete_untagged=True)["job_status"] == "Success"
        assert used(api, pid) == 0
    assert summary_quota(api, project_name)["used"] == {"storage": 0}


def test_push_over_the_limit_is_refused_and_leaves_nothing(auth_server: RunningServer, api: httpx.Client,
                                                           project_name: str) -> None:
    a = make_image(n_layers=1, layer_size=4000)
    limit = recount([a]) + 1000
    pid = create_project(api, project_name, storage_limit=limit)
    donor_name = f"{project_name}d"
    create_project(api, donor_name)
    repo, second, donor = f"{project_name}/app", f"{project_name}/second", f"{donor_name}/app"
    with registry_client(auth_server, [repo, second, donor]) as reg:
        push_image(reg, repo, "a", a)
        before = used(api, pid)
        assert before == recount([a])

        # A monolithic upload one byte too big: 403 DENIED naming the quota, nothing linked or kept.
        big = os.urandom(1001)
        r = upload(reg, repo, big)
        assert r.status_code == 403, r.text
        err = error_of(r)
        assert err["code"] == "DENIED"
        assert err["message"] == (f"quota exceeded: adding 1001 bytes to project {project_name} would use "
                                  f"{before + 1001} of its {limit}-byte limit")
        assert reg.head(f"/v2/{repo}/blobs/{sha256(big)}").status_code == 404
        assert used(api, pid) == before

        # The same through a chunked upload: refused at the closing PUT, and the session is gone.
        r = reg.post(f"/v2/{repo}/blobs/uploads/")
        location = r.headers["Location"]
        r = reg.patch(location, content=big, headers={"Content-Range": f"0-{len(big) - 1}"})
        assert r.status_code == 202, r.text
        r = reg.put(location, params={"digest": sha256(big)})
        assert r.status_code == 403 and "quota exceeded" in error_of(r)["message"]
        assert reg.get(location).status_code == 404
        assert reg.head(f"/v2/{repo}/blobs/{sha256(big)}").status_code == 404
        assert used(api, pid) == before

        # Exactly up to the limit is fine.
        fill = os.urandom(1000)
        assert upload_chunked(reg, repo, fill).status_code == 201
        assert used(api, pid) == limit

        # Content the project already holds adds nothing, even at the limit.
        assert upload(reg, second, a.layers[0]).status_code == 201
        assert upload(reg, second, a.config).status_code == 201
        assert upload(reg, second, fill).status_code == 201
        assert used(api, pid) == limit

        # A new manifest that would cross the limit is refused; no tag, no manifest, no repository change.
        m = image_of([fill])
        m.config = a.config
        m.manifest["config"] = descriptor(OCI_CONFIG, a.config)
        r = put_manifest(reg, repo, "m", m.body, OCI_MANIFEST)
        assert r.status_code == 403, r.text
        assert error_of(r)["code"] == "DENIED"
        assert f"adding {len(m.body)} bytes to project {project_name}" in error_of(r)["message"]
        assert reg.get(f"/v2/{repo}/manifests/m").status_code == 404
        assert reg.get(f"/v2/{repo}/manifests/{m.digest}").status_code == 404
        assert reg.get(f"/v2/{repo}/tags/list").json()["tags"] == ["a"]
        # ... but a manifest the project already holds can be tagged again.
        assert put_manifest(reg, second, "a", a.body, OCI_MANIFEST).status_code == 201
        assert used(api, pid) == limit

        # Raising the limit through the API lets the same push through.
        set_limit(api, pid, limit + len(m.body))
        assert put_manifest(reg, repo, "m", m.body, OCI_MANIFEST).status_code == 201
        assert used(api, pid) == limit + len(m.body)
        limit += len(m.body)

        # A cross-repository mount of content new to the project is refused the same way.
        foreign = os.urandom(700)
        assert upload(reg, donor, foreign).status_code == 201
        r = reg.post(f"/v2/{repo}/blobs/uploads/", params={"mount": sha256(foreign), "from": donor})
        assert r.status_code == 403, r.text
        assert error_of(r)["code"] == "DENIED" and "adding 700 bytes" in error_of(r)["message"]
        assert reg.head(f"/v2/{repo}/blobs/{sha256(foreign)}").status_code == 404
        assert used(api, pid) == limit

        # The empty-JSON config the registry links itself counts with the manifest that uses it.
        artifact = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.x",
                    "config": {"mediaType": EMPTY_JSON_MEDIA_TYPE, "digest": EMPTY_JSON_DIGEST, "size": 2},
                    "layers": [descriptor(OCI_LAYER, fill)]}
        body = json.dumps(artifact).encode()
        set_limit(api, pid, limit + len(body) + 1)
        r = put_manifest(reg, repo, "art", body, OCI_MANIFEST)
        assert r.status_code == 403 and f"adding {len(body) + 2} bytes" in error_of(r)["message"], r.text
        assert reg.head(f"/v2/{repo}/blobs/{EMPTY_JSON_DIGEST}").status_code == 404
        assert used(api, pid) == limit
        set_limit(api, pid, limit + len(body) + 2)
        assert put_manifest(reg, repo, "art", body, OCI_MANIFEST).status_code == 201
        assert used(api, pid) == limit + len(body) + 2

        # Lowering the limit under the usage refuses new content but keeps what is there.
        set_limit(api, pid, 10)
        assert upload(reg, repo, os.urandom(10)).status_code == 403
        assert reg.get(f"/v2/{repo}/manifests/a").status_code == 200
        set_limit(api, pid, -1)
        assert upload(reg, repo, os.urandom(10)).status_code == 201


def test_concurrent_pushes_never_overshoot(auth_server: RunningServer, api: httpx.Client,
                                           project_name: str) -> None:
    size, fits = 2000, 10
    pid = create_project(api, project_name, storage_limit=size * fits + size // 2)
    repos = [f"{project_name}/r{i}" for i in range(4)]
    token = token_for(auth_server, repos)
    blobs = [os.urandom(size) for _ in range(3 * fits)]

    def push(i: int) -> int:
        with bearer(auth_server, token) as reg:
            send = upload if i % 2 else upload_chunked
            return send(reg, repos[i % len(repos)], blobs[i]).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(push, range(len(blobs))))
    assert sorted(set(statuses)) == [201, 403], statuses
    assert statuses.count(201) == fits
    assert used(api, pid) == size * fits

    # Manifests racing for the last bytes: exactly as many as fit get in.
    accepted = [b for b, s in zip(blobs, statuses, strict=True) if s == 201]
    with bearer(auth_server, token) as reg:
        config = b'{"architecture":"amd64","os":"linux"}'
        assert upload(reg, repos[0], config).status_code == 201
        for blob in accepted:  # every accepted layer into the first repository (already counted)
            assert upload(reg, repos[0], blob).status_code == 201
    base = used(api, pid)
    assert base == size * fits + len(config)
    bodies = [json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": descriptor(OCI_CONFIG, config),
                          "layers": [descriptor(OCI_LAYER, accepted[0])],
                          "annotations": {"n": f"{i:04d}"}}).encode() for i in range(12)]
    assert len({len(b) for b in bodies}) == 1
    set_limit(api, pid, base + 3 * len(bodies[0]) + len(bodies[0]) // 2)

    def push_manifest(i: int) -> int:
        with bearer(auth_server, token) as reg:
            return put_manifest(reg, repos[0], f"m{i}", bodies[i], OCI_MANIFEST).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(push_manifest, range(len(bodies))))
    assert statuses.count(201) == 3 and statuses.count(403) == len(bodies) - 3, statuses
    assert used(api, pid) == base + 3 * len(bodies[0])


def every_quota(api: httpx.Client, **params: str) -> list[dict[str, Any]]:
    """Every quota, page by page (the shared server holds more projects than one page of 100)."""
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        r = api.get("/api/v2.0/quotas", params={**params, "page": page, "page_size": 100})
        assert r.status_code == 200, r.text
        found += r.json()
        if len(found) >= int(r.headers["X-Total-Count"]):
            return found
        page += 1


def test_quota_api_shapes(auth_server: RunningServer, api: httpx.Client, project_name: str) -> None:
    pid = create_project(api, project_name, storage_limit=123456)
    repo = f"{project_name}/app"
    with registry_client(auth_server, [repo]) as reg:
        image = push_image(reg, repo, "v1", make_image(n_layers=1, layer_size=500))
    r = api.get(f"/api/v2.0/quotas/{pid}")
    assert r.status_code == 200, r.text
    q = r.json()
    assert set(q) == {"id", "ref", "hard", "used", "creation_time", "update_time"}
    assert q["id"] == pid
    assert q["ref"] == {"id": pid, "name": project_name, "owner_name": "admin"}
    assert q["hard"] == {"storage": 123456} and q["used"] == {"storage": recount([image])}
    for key in ("creation_time", "update_time"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", q[key]), q[key]

    r = api.get("/api/v2.0/quotas", params={"reference": "project", "reference_id": str(pid)})
    assert r.status_code == 200 and r.json() == [q] and r.headers["X-Total-Count"] == "1"
    assert api.get("/api/v2.0/quotas", params={"reference": "user"}).json() == []
    assert api.get("/api/v2.0/quotas", params={"reference_id": "999999999"}).json() == []

    second = create_project(api, f"{project_name}b", storage_limit=7)
    everything = every_quota(api)
    assert len(everything) >= 2 and {pid, second} <= {x["id"] for x in everything}
    for key in ("hard.storage", "used.storage"):
        field, _, _ = key.partition(".")
        values = [x[field]["storage"] for x in every_quota(api, sort=key)]
        assert values == sorted(values)
        descending = every_quota(api, sort=f"-{key}")
        assert [x[field]["storage"] for x in descending] == sorted(values, reverse=True)
    assert api.get("/api/v2.0/quotas", params={"sort": "name"}).status_code == 400
    page = api.get("/api/v2.0/quotas", params={"page": 1, "page_size": 1})
    assert len(page.json()) == 1 and 'rel="next"' in page.headers["Link"]

    # Updates: storage only, -1 or a number of bytes.
    set_limit(api, pid, 1 << 30)
    assert api.get(f"/api/v2.0/quotas/{pid}").json()["hard"] == {"storage": 1 << 30}
    assert summary_quota(api, project_name)["hard"] == {"storage": 1 << 30}
    for bad in ({"hard": {"storage": -2}}, {"hard": {"storage": "lots"}}, {"hard": {"count": 3}},
                {"hard": {}}, {}, {"hard": {"storage": True}}):
        r = api.put(f"/api/v2.0/quotas/{pid}", json=bad)
        assert r.status_code == 400 and error_of(r)["code"] == "BAD_REQUEST", (bad, r.text)
    assert api.get(f"/api/v2.0/quotas/{pid}").json()["hard"] == {"storage": 1 << 30}
    assert api.get("/api/v2.0/quotas/999999999").status_code == 404
    assert api.put("/api/v2.0/quotas/999999999", json={"hard": {"storage": 1}}).status_code == 404
    set_limit(api, pid, -1)
    assert api.get(f"/api/v2.0/quotas/{pid}").json()["hard"] == {"storage": -1}


def test_quota_permissions(auth_server: RunningServer, api: httpx.Client, anon: httpx.Client,
                           project_name: str) -> None:
    pid = create_project(api, project_name, storage_limit=5000)
    for method, path in (("GET", "/api/v2.0/quotas"), ("GET", f"/api/v2.0/quotas/{pid}"),
                         ("PUT", f"/api/v2.0/quotas/{pid}")):
        r = anon.request(method, path, json={"hard": {"storage": 1}} if method == "PUT" else None)
        assert r.status_code == 401 and error_of(r)["code"] == "UNAUTHORIZED", (method, path, r.text)

    username, password = f"u{project_name}", "Quota12345"
    r = api.post("/api/v2.0/users", json={"username": username, "password": password,
                                         "email": f"{username}@example.com", "realname": username})
    assert r.status_code == 201, r.text
    own = f"{project_name}own"
    with signed_in(auth_server, username, password) as user:
        # A project of their own, even as its project admin, does not let them set its quota.
        r = user.post("/api/v2.0/projects", json={"project_name": own, "storage_limit": 1})
        assert r.status_code == 201, r.text
        own_id = int(r.headers["Location"].rsplit("/", 1)[1])
        assert used(api, own_id) == 0
        assert api.get(f"/api/v2.0/quotas/{own_id}").json()["hard"] == {"storage": -1}, "a user cannot set it"
        for method, path in (("GET", "/api/v2.0/quotas"), ("GET", f"/api/v2.0/quotas/{own_id}"),
                             ("PUT", f"/api/v2.0/quotas/{own_id}"), ("PUT", f"/api/v2.0/quotas/{pid}")):
            r = user.request(method, path, json={"hard": {"storage": 1}} if method == "PUT" else None)
            assert r.status_code == 403 and error_of(r)["code"] == "FORBIDDEN", (method, path, r.text)
        r = user.put(f"/api/v2.0/projects/{own}", json={"storage_limit": 1})
        assert r.status_code == 403, r.text
        # They see their own project's quota in its summary.
        assert summary_quota(user, own) == {"hard": {"storage": -1}, "used": {"storage": 0}}
    assert api.get(f"/api/v2.0/quotas/{own_id}").json()["hard"] == {"storage": -1}
    assert api.get(f"/api/v2.0/quotas/{pid}").json()["hard"] == {"storage": 5000}


def test_a_limit_set_after_pushes_applies_at_once_on_every_worker(auth_server: RunningServer, api: httpx.Client,
                                                                  project_name: str) -> None:
    """Workers remember that a project has no limit; setting one must reach all of them before the next push."""
    pid = create_project(api, project_name)
    repo = f"{project_name}/app"
    with registry_client(auth_server, [repo]) as reg:
        reg.headers["Connection"] = "close"  # a new connection per request, so both workers serve pushes
        for _ in range(8):
            assert upload(reg, repo, os.urandom(100)).status_code == 201
        set_limit(api, pid, used(api, pid))
        for _ in range(8):
            r = upload(reg, repo, os.urandom(100))
            assert r.status_code == 403 and "quota exceeded" in error_of(r)["message"], r.text
        set_limit(api, pid, -1)
        for _ in range(4):
            assert upload(reg, repo, os.urandom(100)).status_code == 201
