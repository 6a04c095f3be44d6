"""The users' cleanup script (clean_old_images.py, section 4.1 of their Harbor notes) against Portside.

The script is kept as written - list artifacts, parse `push_time` with '%Y-%m-%dT%H:%M:%SZ', delete by
digest those older than N days - changing only the host (an httpx client with the administrator's
Basic credentials stands in for `requests`). It runs with its own project-level paths, and with
Harbor's per-repository ones:

    GET    /api/v2.0/projects/{project}/repositories/{repository}/artifacts
    DELETE /api/v2.0/projects/{project}/repositories/{repository}/artifacts/{digest}

Nothing is made "old" by editing the database: the script runs with a threshold of 0 days (everything
pushed before now is older than that) and with a large one (nothing is).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.api.artifact_support import Registry, new_project


def delete_old_images(requests: httpx.Client, project_name: str, repository_name: str,
                      days_threshold: int = 30) -> None:
    # clean_old_images.py, adapted in host and path only
    response = requests.get(f"/api/v2.0/projects/{project_name}/repositories/{repository_name}/artifacts")
    for artifact in response.json():
        push_time = datetime.strptime(artifact['push_time'], '%Y-%m-%dT%H:%M:%SZ')
        if datetime.utcnow() - push_time > timedelta(days=days_threshold):
            requests.delete(f"/api/v2.0/projects/{project_name}/repositories/{repository_name}/artifacts/"
                            f"{artifact['digest']}")


def delete_old_images_of_project(requests: httpx.Client, project_id: int, days_threshold: int = 30) -> None:
    """The script's own URLs, as written: the project's artifacts (Harbor's listArtifactsOfProject), and
    the delete by digest at the project level, which Portside accepts for the artifact's one repository."""
    response = requests.get(f"/api/v2.0/projects/{project_id}/artifacts")
    for artifact in response.json():
        push_time = datetime.strptime(artifact['push_time'], '%Y-%m-%dT%H:%M:%SZ')
        if datetime.utcnow() - push_time > timedelta(days=days_threshold):
            requests.delete(f"/api/v2.0/projects/{project_id}/artifacts/{artifact['digest']}")


def listed(admin: httpx.Client, project: str, repository: str) -> list[dict[str, Any]]:
    r = admin.get(f"/api/v2.0/projects/{project}/repositories/{repository}/artifacts")
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()
    return found


def test_cleanup_script_deletes_only_what_is_older_than_the_threshold(admin: httpx.Client,
                                                                      registry: Registry) -> None:
    project = new_project(admin)
    repo = f"{project}/webapp"
    images = [registry.push(repo, f"1.{i}") for i in range(3)]
    bystander = registry.push(f"{project}/other", "1.0")
    assert {a["digest"] for a in listed(admin, project, "webapp")} == {i.digest for i in images}

    delete_old_images(admin, project, "webapp", days_threshold=30)
    assert {a["digest"] for a in listed(admin, project, "webapp")} == {i.digest for i in images}
    for image in images:
        assert registry.manifest_status(repo, image.digest) == 200

    delete_old_images(admin, project, "webapp", days_threshold=0)
    assert listed(admin, project, "webapp") == []
    for i, image in enumerate(images):
        assert registry.manifest_status(repo, image.digest) == 404
        assert registry.manifest_status(repo, f"1.{i}") == 404
    assert registry.tags(repo) == []
    assert registry.manifest_status(f"{project}/other", bystander.digest) == 200


def test_cleanup_script_with_nested_repository_and_project_listing(admin: httpx.Client, registry: Registry) -> None:
    project = new_project(admin)
    repo = f"{project}/team/api"
    images = [registry.push(repo, f"v{i}") for i in range(3)]
    pid = admin.get(f"/api/v2.0/projects/{project}").json()["project_id"]

    delete_old_images(admin, project, "team%252Fapi", days_threshold=365)
    delete_old_images_of_project(admin, pid, days_threshold=365)
    assert len(listed(admin, project, "team%252Fapi")) == 3

    delete_old_images_of_project(admin, pid, days_threshold=0)
    assert listed(admin, project, "team%252Fapi") == []
    for image in images:
        assert registry.manifest_status(repo, image.digest) == 404
