"""Garbage collection through the API on a live server: what it frees, what it must never touch."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from tests.oci_client import OCI_INDEX, descriptor, make_image, push_blob, push_image, push_manifest, sha256
from tests.servers import RunningServer


def run_gc(admin: httpx.Client, **parameters: Any) -> dict[str, Any]:
    r = admin.post("/api/v2.0/system/gc/schedule", json={"schedule": {"type": "Manual"}, "parameters": parameters})
    assert r.status_code == 201, r.text
    gc_id = int(r.headers["Location"].rsplit("/", 1)[1])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = admin.get(f"/api/v2.0/system/gc/{gc_id}").json()
        if run["job_status"] in ("Success", "Error", "Stopped"):
            assert run["job_status"] == "Success", run
            run["log"] = admin.get(f"/api/v2.0/system/gc/{gc_id}/log").text
            return run
        time.sleep(0.2)
    raise AssertionError(f"gc {gc_id} did not finish")


def blob_file(server: RunningServer, digest: str) -> Path:
    hexpart = digest.split(":", 1)[1]
    return server.data_dir / "storage" / "blobs" / "sha256" / hexpart[:2] / hexpart


def test_gc_frees_unreferenced_blobs_and_keeps_referenced_ones(
        admin: httpx.Client, auth_server: RunningServer, project_name: str) -> None:
    assert admin.post("/api/v2.0/projects", json={"project_name": project_name}).status_code == 201
    repo = f"{project_name}/app"
    kept = push_image(admin, repo, "keep")
    dropped = push_image(admin, repo, "drop")
    stray = os.urandom(3000)
    stray_digest = push_blob(admin, repo, stray)
    assert admin.delete(f"/v2/{repo}/manifests/{dropped.digest}").status_code == 202

    dry = run_gc(admin, dry_run=True, time_window=0)
    assert dry["result"]["dry_run"] is True and dry["result"]["deleted_links"] >= 3
    assert blob_file(auth_server, stray_digest).exists(), "a dry run must not delete anything"

    run = run_gc(admin, time_window=0)
    assert run["result"]["freed_bytes"] >= len(stray) + sum(len(x) for x in dropped.layers)
    assert "deleted blob" in run["log"]
    for layer in dropped.layers:
        assert not blob_file(auth_server, sha256(layer)).exists()
        assert admin.head(f"/v2/{repo}/blobs/{sha256(layer)}").status_code == 404
    assert not blob_file(auth_server, stray_digest).exists()
    # Everything the tagged image needs is intact.
    assert admin.get(f"/v2/{repo}/manifests/keep").content == kept.body
    for layer in [kept.config, *kept.layers]:
        r = admin.get(f"/v2/{repo}/blobs/{sha256(layer)}")
        assert r.status_code == 200 and sha256(r.content) == sha256(layer)


def test_time_window_protects_recent_uploads(admin: httpx.Client, auth_server: RunningServer,
                                            project_name: str) -> None:
    assert admin.post("/api/v2.0/projects", json={"project_name": project_name}).status_code == 201
    digest = push_blob(admin, f"{project_name}/app", os.urandom(2000))
    run_gc(admin)  # default window: 2 hours
    assert blob_file(auth_server, digest).exists()
    assert admin.head(f"/v2/{project_name}/app/blobs/{digest}").status_code == 200


def test_delete_untagged_spares_index_children_and_live_referrers(
        admin: httpx.Client, project_name: str) -> None:
    assert admin.post("/api/v2.0/projects", json={"project_name": project_name}).status_code == 201
    repo = f"{project_name}/app"
    orphan = push_image(admin, repo, "tmp")
    assert admin.delete(f"/v2/{repo}/manifests/tmp").status_code == 202  # untagged now
    child = push_image(admin, repo, "child-tag")
    assert admin.delete(f"/v2/{repo}/manifests/child-tag").status_code == 202
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [descriptor(child.manifest["mediaType"], child.body)]}
    assert push_manifest(admin, repo, "multi", index, OCI_INDEX).status_code == 201
    subject = push_image(admin, repo, "signed")
    signature = make_image(n_layers=1, subject=descriptor(subject.manifest["mediaType"], subject.body),
                           artifactType="application/vnd.example.signature")
    push_image(admin, repo, signature.digest, signature)

    run = run_gc(admin, delete_untagged=True, time_window=0)
    assert f"{repo}@{orphan.digest}" in run["result"]["deleted_manifests"]
    assert admin.get(f"/v2/{repo}/manifests/{orphan.digest}").status_code == 404
    assert admin.get(f"/v2/{repo}/manifests/{child.digest}").status_code == 200
    assert admin.get(f"/v2/{repo}/manifests/{signature.digest}").status_code == 200
    for layer in child.layers + signature.layers:
        assert admin.get(f"/v2/{repo}/blobs/{sha256(layer)}").status_code == 200


def test_gc_api_validation_and_permissions(admin: httpx.Client, anon: httpx.Client) -> None:
    r = admin.post("/api/v2.0/system/gc/schedule", json={"schedule": {"type": "Custom", "cron": "not a cron"}})
    assert r.status_code == 400 and "cron" in r.json()["errors"][0]["message"]
    r = admin.post("/api/v2.0/system/gc/schedule", json={"schedule": {"type": "Manual"},
                                                          "parameters": {"time_window": -1}})
    assert r.status_code == 400 and "time_window" in r.json()["errors"][0]["message"]
    assert anon.get("/api/v2.0/system/gc").status_code == 401
    r = admin.put("/api/v2.0/system/gc/schedule", json={"schedule": {"type": "Daily"},
                                                        "parameters": {"delete_untagged": True}})
    assert r.status_code == 200, r.text
    schedule = admin.get("/api/v2.0/system/gc/schedule").json()
    assert schedule["schedule"]["type"] == "Daily" and schedule["schedule"]["next_scheduled_time"]
    assert admin.put("/api/v2.0/system/gc/schedule", json={"schedule": {"type": "None"}}).status_code == 200
    assert admin.get("/api/v2.0/system/gc/schedule").json()["schedule"]["type"] == "None"
    assert admin.get("/api/v2.0/system/gc/999999").status_code == 404


def test_gc_purges_idle_uploads_and_spares_active_ones(admin: httpx.Client, auth_server: RunningServer,
                                                      project_name: str) -> None:
    """Upload sessions live beside their bytes; garbage collection removes those that received nothing
    for longer than the upload limit (24 hours by default), whatever their age otherwise."""
    assert admin.post("/api/v2.0/projects", json={"project_name": project_name}).status_code == 201
    uploads_root = auth_server.data_dir / "storage" / "uploads"
    opened = {}
    for which in ("idle", "active"):
        r = admin.post(f"/v2/{project_name}/app/blobs/uploads/")
        assert r.status_code == 202, r.text
        upload_id = r.headers["Docker-Upload-UUID"]
        assert admin.patch(r.headers["Location"], content=b"x" * 100,
                           headers={"Content-Type": "application/octet-stream"}).status_code == 202
        assert (uploads_root / upload_id / "session").is_file()  # the session is a file, not a row
        opened[which] = (upload_id, r.headers["Location"])
    three_days_ago = time.time() - 3 * 86400
    idle_dir = uploads_root / opened["idle"][0]
    for path in (idle_dir / "session", idle_dir / "data", idle_dir):
        os.utime(path, (three_days_ago, three_days_ago))
    os.utime(uploads_root / opened["active"][0], (three_days_ago, three_days_ago))  # old session, fresh bytes

    run = run_gc(admin)
    assert f"purged upload session {opened['idle'][0]}" in run["log"]
    assert opened["active"][0] not in run["log"]
    assert not idle_dir.exists()
    assert admin.get(opened["idle"][1]).status_code == 404
    status = admin.get(opened["active"][1])
    assert status.status_code == 204 and status.headers["Range"] == "0-99"
