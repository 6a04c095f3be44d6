"""Labels, artifact copy and build history driven by the PyPI `harborapi` client, unchanged: its models
validate our answers."""

from __future__ import annotations

import asyncio

import httpx
from harborapi import HarborAsyncClient
from harborapi.models import Label

from tests.api.artifact_support import Registry, new_project, unique
from tests.conftest import ADMIN_PASSWORD
from tests.servers import RunningServer


def test_labels_with_harborapi(api: httpx.Client, registry: Registry, auth_server: RunningServer) -> None:
    project, target = new_project(api), new_project(api)
    image = registry.push(f"{project}/team/app", "v1")
    name = unique("hapi-")

    async def scenario() -> None:
        client = HarborAsyncClient(url=f"{auth_server.url}/api/v2.0", username="admin", secret=ADMIN_PASSWORD)
        location = await client.create_label(Label(name=name, description="from harborapi", color="#00FF00",
                                                   scope="g"))
        label_id = int(location.rsplit("/", 1)[1])
        label = await client.get_label(label_id)
        assert (label.name, label.scope, label.color) == (name, "g", "#00FF00")
        assert name in [x.name for x in await client.get_labels(scope="g", name=name)]
        await client.update_label(label_id, Label(name=name, description="renamed", color="#00FF00"))
        assert (await client.get_label(label_id)).description == "renamed"

        await client.add_artifact_label(project, "team/app", "v1", Label(id=label_id))
        art = await client.get_artifact(project, "team/app", "v1", with_label=True)
        assert art.digest == image.digest and [x.id for x in art.labels or []] == [label_id]
        assert await client.get_artifact_build_history(project, "team/app", "v1") == []

        await client.copy_artifact(target, "copied", f"{project}/team/app:v1")
        copied = await client.get_artifact(target, "copied", "v1")
        assert copied.digest == image.digest

        await client.delete_artifact_label(project, "team/app", "v1", label_id)
        assert not (await client.get_artifact(project, "team/app", "v1", with_label=True)).labels
        await client.delete_label(label_id)

    asyncio.run(scenario())
