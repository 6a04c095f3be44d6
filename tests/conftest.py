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


ADMIN_PASSWORD = "Harbor12345"


@pytest.fixture(scope="session")
def auth_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A registry with authentication on (the default mode); its admin password is ADMIN_PASSWORD."""
    data_dir = tmp_path_factory.mktemp(f"auth-server-{backend}")
    srv = RunningServer(data_dir, database_url(backend, data_dir), auth=True,
                        env={"PORTSIDE_ADMIN_PASSWORD": ADMIN_PASSWORD}).start()
    yield srv
    srv.stop()


@pytest.fixture
def admin(auth_server: RunningServer) -> Iterator[httpx.Client]:
    """An httpx client signed in as the system administrator (Basic auth)."""
    with httpx.Client(base_url=auth_server.url, auth=("admin", ADMIN_PASSWORD), timeout=60) as c:
        yield c


@pytest.fixture
def anon(auth_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=auth_server.url, timeout=60) as c:
        yield c


@pytest.fixture
def project_name() -> str:
    """A project name no other test uses."""
    return f"p{uuid.uuid4().hex[:10]}"
