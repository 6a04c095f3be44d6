"""Labels through /api/v2.0: global and project labels, who may manage them, and labels on artifacts."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa

from portside.metadata.database import sync_url
from tests.api.artifact_support import (
    API,
    Registry,
    check_shape,
    error_code,
    harbor_time,
    new_project,
    ok,
    project_id,
    repo_path,
    unique,
    user_client,
)
from tests.servers import RunningServer

LABEL_FIELDS = {"id", "name", "description", "color", "scope", "project_id", "creation_time", "update_time"}


def create_label(api: httpx.Client, name: str, **fields: Any) -> int:
    r = ok(api.post(f"{API}/labels", json={"name": name, **fields}), 201)
    location = r.headers["Location"]
    assert location.startswith(f"{API}/labels/")
    return int(location.rsplit("/", 1)[1])


def names(r: httpx.Response) -> list[str]:
    return [label["name"] for label in ok(r).json()]


def test_global_labels(api: httpx.Client, anon: httpx.Client) -> None:
    name = unique("release-")
    label_id = create_label(api, name, description="shipped", color="#0095D3", scope="g")
    label = ok(api.get(f"{API}/labels/{label_id}")).json()
    check_shape(label, "Label", required=LABEL_FIELDS, extra=frozenset({"deleted"}))
    assert label["name"] == name and label["scope"] == "g" and label["project_id"] == 0
    assert label["description"] == "shipped" and label["color"] == "#0095D3" and label["deleted"] is False
    harbor_time(label["creation_time"])
    assert ok(anon.get(f"{API}/labels/{label_id}")).json()["name"] == name  # global labels are public

    r = api.post(f"{API}/labels", json={"name": name, "scope": "g"})
    assert r.status_code == 409 and error_code(r) == "CONFLICT"
    assert name in names(api.get(f"{API}/labels", params={"scope": "g", "name": name[8:], "page_size": 100}))
    assert names(api.get(f"{API}/labels", params={"scope": "g", "q": f"name={name}"})) == [name]
    assert names(api.get(f"{API}/labels", params={"q": f"name={name}", "project_id": 1})) == [name]  # g is default

    other = create_label(api, unique("other-"))  # scope defaults to global without a project
    ok(api.put(f"{API}/labels/{label_id}", json={"name": name + "x", "color": "#FF0000"}))
    updated = ok(api.get(f"{API}/labels/{label_id}")).json()
    assert (updated["name"], updated["color"], updated["description"]) == (name + "x", "#FF0000", "shipped")
    r = api.put(f"{API}/labels/{other}", json={"name": name + "x"})
    assert r.status_code == 409 and error_code(r) == "CONFLICT"
    assert api.put(f"{API}/labels/{other}", json={"scope": "p"}).status_code == 400

    for bad in ({"name": ""}, {"name": "x" * 129}, {"name": "x", "scope": "q"}, {"name": "x", "scope": "p"}):
        r = api.post(f"{API}/labels", json=bad)
        assert r.status_code == 400 and error_code(r) == "BAD_REQUEST", bad
    assert anon.post(f"{API}/labels", json={"name": unique("a")}).status_code == 401

    ok(api.delete(f"{API}/labels/{label_id}"))
    r = api.get(f"{API}/labels/{label_id}")
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"
    assert api.delete(f"{API}/labels/{label_id}").status_code == 404
    assert api.put(f"{API}/labels/{label_id}", json={"name": "y"}).status_code == 404
    ok(api.delete(f"{API}/labels/{other}"))


def test_project_labels_and_who_may_manage_them(api: httpx.Client, auth_server: RunningServer) -> None:
    project, elsewhere = new_project(api), new_project(api)
    pid, other_pid = project_id(api, project), project_id(api, elsewhere)
    shared = unique("shared-")
    global_id = create_label(api, shared)
    with user_client(auth_server, api, project, "projectAdmin") as owner:
        label_id = create_label(owner, shared, scope="p", project_id=pid)  # a global one of that name is fine
        r = owner.post(f"{API}/labels", json={"name": shared, "scope": "p", "project_id": pid})
        assert r.status_code == 409
        r = owner.post(f"{API}/labels", json={"name": unique("g"), "scope": "g"})
        assert r.status_code == 403 and error_code(r) == "FORBIDDEN"
        assert owner.put(f"{API}/labels/{global_id}", json={"name": "z"}).status_code == 403
        assert owner.delete(f"{API}/labels/{global_id}").status_code == 403
        # Another project's labels are out of reach; that project is not even visible.
        assert owner.post(f"{API}/labels", json={"name": "x", "scope": "p", "project_id": other_pid}).status_code == 404
        listed = owner.get(f"{API}/labels", params={"scope": "p", "project_id": pid})
        assert names(listed) == [shared] and listed.headers["X-Total-Count"] == "1"
        ok(owner.put(f"{API}/labels/{label_id}", json={"description": "ours"}))
    elsewhere_label = create_label(api, shared, scope="p", project_id=other_pid)  # unique per project only
    with user_client(auth_server, api, project, "developer") as dev:
        assert dev.post(f"{API}/labels", json={"name": "d", "scope": "p", "project_id": pid}).status_code == 403
        assert dev.delete(f"{API}/labels/{label_id}").status_code == 403
        assert ok(dev.get(f"{API}/labels/{label_id}")).json()["description"] == "ours"
        assert dev.get(f"{API}/labels", params={"scope": "p", "project_id": other_pid}).status_code == 404
    with user_client(auth_server, api) as stranger:
        assert stranger.get(f"{API}/labels/{label_id}").status_code == 404
    r = api.get(f"{API}/labels", params={"scope": "p"})
    assert r.status_code == 400 and error_code(r) == "BAD_REQUEST"
    ok(api.delete(f"{API}/labels/{global_id}"))
    ok(api.delete(f"{API}/projects/{elsewhere}"))  # a project's labels go with it
    assert api.get(f"{API}/labels/{elsewhere_label}").status_code == 404


def test_labels_on_artifacts(api: httpx.Client, registry: Registry, auth_server: RunningServer) -> None:
    project, elsewhere = new_project(api), new_project(api)
    image = registry.push(f"{project}/app", "v1")
    other = registry.push(f"{project}/app", "v2")
    global_id = create_label(api, unique("g-"))
    local_id = create_label(api, unique("p-"), scope="p", project_id=project_id(api, project))
    foreign_id = create_label(api, unique("f-"), scope="p", project_id=project_id(api, elsewhere))
    labels_url = repo_path(project, "app", "/artifacts/v1/labels")

    ok(api.post(labels_url, json={"id": global_id}))
    with user_client(auth_server, api, project, "developer") as dev:
        ok(dev.post(labels_url, json={"id": local_id}))
        assert dev.delete(f"{labels_url}/{local_id}").status_code == 403  # maintainers and up remove
    with user_client(auth_server, api, project, "guest") as guest:
        assert guest.post(repo_path(project, "app", "/artifacts/v2/labels"), json={"id": global_id}).status_code == 403
    r = api.post(labels_url, json={"id": global_id})
    assert r.status_code == 409 and error_code(r) == "CONFLICT"
    r = api.post(labels_url, json={"id": foreign_id})
    assert r.status_code == 400 and error_code(r) == "BAD_REQUEST"
    assert api.post(labels_url, json={"id": 999_999_999}).status_code == 404
    assert api.post(labels_url, json={}).status_code == 400
    assert api.post(repo_path(project, "app", "/artifacts/nope/labels"), json={"id": global_id}).status_code == 404

    art = ok(api.get(repo_path(project, "app", "/artifacts/v1"), params={"with_label": "true"})).json()
    assert [label["id"] for label in art["labels"]] == [global_id, local_id]
    check_shape(art["labels"][0], "Label", required=LABEL_FIELDS, extra=frozenset({"deleted"}))
    assert ok(api.get(repo_path(project, "app", "/artifacts/v1"))).json()["labels"] == []
    listed = ok(api.get(repo_path(project, "app", "/artifacts"), params={"with_label": "true"})).json()
    assert {a["digest"]: len(a["labels"]) for a in listed} == {image.digest: 2, other.digest: 0}
    for q, expected in ((f"labels={global_id}", [image.digest]), (f"labels=({global_id} {local_id})", [image.digest]),
                        (f"labels=({global_id} {foreign_id})", [])):
        found = ok(api.get(repo_path(project, "app", "/artifacts"), params={"q": q})).json()
        assert [a["digest"] for a in found] == expected, q
    in_project = ok(api.get(f"{API}/projects/{project}/artifacts", params={"q": f"labels={local_id}"})).json()
    assert [a["digest"] for a in in_project] == [image.digest]
    assert api.get(repo_path(project, "app", "/artifacts"), params={"q": "labels=~x"}).status_code == 400

    ok(api.delete(f"{labels_url}/{local_id}"))
    r = api.delete(f"{labels_url}/{local_id}")
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"
    ok(api.delete(f"{API}/labels/{global_id}"))  # deleting a label takes it off its artifacts
    assert ok(api.get(repo_path(project, "app", "/artifacts/v1"),
                      params={"with_label": "true"})).json()["labels"] == []

    ok(api.post(labels_url, json={"id": local_id}))
    art_id = art["id"]
    ok(api.delete(repo_path(project, "app", "/artifacts/v1")))  # its label links go with it
    engine = sa.create_engine(sync_url(auth_server.database_url))
    try:
        with engine.connect() as conn:
            left = conn.execute(sa.text("SELECT count(*) FROM artifact_labels WHERE manifest_id = :m"),
                                {"m": art_id}).scalar()
    finally:
        engine.dispose()
    assert left == 0
    ok(api.get(f"{API}/labels/{local_id}"))
