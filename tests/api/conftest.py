"""Fixtures shared by the management API tests: the administrator's session and a registry client,
both on the session's auth server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api.artifact_support import Registry, admin_session, registry_for
from tests.servers import RunningServer


@pytest.fixture
def api(auth_server: RunningServer) -> Iterator[httpx.Client]:
    with admin_session(auth_server) as c:
        yield c


@pytest.fixture
def registry(auth_server: RunningServer) -> Iterator[Registry]:
    with registry_for(auth_server) as reg:
        yield reg
