"""python-dxf (PyPI), a Docker registry v2 client, with authentication on: it sends credentials over HTTPS
only, follows the Bearer challenge of each refused request and asks the token service for the scope it
names. An administrator pushes blobs under a tag; a project robot (`robot$project+name`) pulls them."""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

import httpx
import pytest
from dxf import DXF, DXFBase
from dxf.exceptions import DXFUnauthorizedError

from tests.conftest import ADMIN_PASSWORD
from tests.interop.conftest import Registry

pytestmark = pytest.mark.interop


def dxf_client(registry: Registry, repo: str, username: str, password: str) -> DXF:
    def auth(dxf: DXFBase, response: Any) -> None:
        dxf.authenticate(username, password, response=response)

    return DXF(registry.host, repo, auth, tlsverify=str(registry.ca_cert))


def api(registry: Registry, method: str, path: str, **kwargs: Any) -> httpx.Response:
    with registry.http() as c:
        r = c.request(method, f"/api/v2.0{path}", auth=("admin", ADMIN_PASSWORD), **kwargs)
    assert r.is_success, (method, path, r.status_code, r.text)
    return r


def test_push_and_pull_with_tokens(auth_tls_registry: Registry) -> None:
    project = f"dxf{uuid.uuid4().hex[:8]}"
    api(auth_tls_registry, "POST", "/projects", json={"project_name": project, "metadata": {"public": "false"}})
    robot = api(auth_tls_registry, "POST", "/robots", json={
        "name": f"puller{uuid.uuid4().hex[:6]}", "level": "project", "duration": -1, "disable": False,
        "permissions": [{"kind": "project", "namespace": project,
                         "access": [{"resource": "repository", "action": "pull"}]}]}).json()
    repo = f"{project}/blobs"
    blobs = [os.urandom(70_000), os.urandom(1000)]

    seen = len(auth_tls_registry.access_log())
    with dxf_client(auth_tls_registry, repo, "admin", ADMIN_PASSWORD) as pusher:
        digests = [pusher.push_blob(data=iter([b]), digest="sha256:" + hashlib.sha256(b).hexdigest())
                   for b in blobs]
        pusher.set_alias("v1", *digests)
        assert pusher.token, "the push went through a bearer token"
    # Two tokens: pull for the first HEAD, then pull,push as the upload's challenge names, which serves
    # every request after it (HEADs included) without another 401.
    pushed = [(e["method"], e["path"], e["status"]) for e in auth_tls_registry.access_log()[seen:]]
    assert [p for _, p, _ in pushed].count("/service/token") == 2, pushed
    assert [s for _, _, s in pushed].count(401) == 2, pushed

    with dxf_client(auth_tls_registry, repo, robot["name"], robot["secret"]) as puller:
        assert puller.get_alias("v1") == digests
        for digest, data in zip(digests, blobs, strict=True):
            assert b"".join(puller.pull_blob(digest)) == data
        assert puller.list_aliases() == ["v1"]
        # The robot may pull, not push: its upload is refused.
        with pytest.raises(DXFUnauthorizedError):
            puller.push_blob(data=iter([b"x"]), digest="sha256:" + hashlib.sha256(b"x").hexdigest())
