from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import RunningServer, database_url

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One running registry per metadata backend, shared by the tests (each uses its own repository)."""
    data_dir = tmp_path_factory.mktemp(f"server-{backend}")
    srv = RunningServer(data_dir, database_url(backend, data_dir)).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture
def repo() -> str:
    """A repository name no other test uses."""
    return f"test/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def fresh_server(backend: str, tmp_path: Path) -> Iterator[RunningServer]:
    """A registry of the test's own, for tests that restart or kill it."""
    data_dir = tmp_path / "data"
    srv = RunningServer(data_dir, database_url(backend, data_dir))
    yield srv
    srv.stop()
