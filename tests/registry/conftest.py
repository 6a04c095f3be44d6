from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.servers import RunningServer


@pytest.fixture(scope="session")
def shared_client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture
def client(shared_client: httpx.Client) -> httpx.Client:
    """One client per server for the whole module set: building an httpx.Client costs ~0.1 s
    (certificate loading), more than most of these tests take."""
    return shared_client
