"""The project service in-process on both databases: which projects a principal sees, and a page of
projects costing the same number of queries however many projects it holds."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert

from portside.auth.principal import ANONYMOUS, Principal, RobotGrant
from portside.auth.roles import Role
from portside.errors import Conflict, WriteConflict
from portside.management.projects import ProjectService
from portside.metadata.accounts import AccountQueries
from portside.metadata.database import Database, migrate
from portside.metadata.models import Repository, table
from portside.metadata.projects import ProjectQueries
from portside.metadata.queries import now
from tests.servers import database_url


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    url = database_url(backend, tmp_path)
    migrate(url)
    yield url


async def _seed(db: Database, count: int) -> tuple[ProjectService, int]:
    """`count` projects owned by a user who is a member of the odd ones; every project has two
    repositories, the even ones are public."""
    projects, accounts = ProjectQueries(db), AccountQueries(db)
    async with db.write() as conn:
        user_id = await accounts.create_user(conn, "owner", "x")
        for i in range(count):
            project_id = await projects.create(conn, f"p{i:02}", public=i % 2 == 0, owner_id=user_id)
            if i % 2:
                await projects.add_member(conn, project_id, user_id, Role.DEVELOPER)
            for r in range(2):
                await conn.execute(insert(table(Repository)).values(
                    name=f"p{i:02}/r{r}", project_id=project_id, created_at=now(), updated_at=now()))
    return ProjectService(db, projects), user_id


def _count_queries(db: Database) -> list[str]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    return seen


def test_visible_projects_follow_public_membership_and_robot_grants(db_url: str) -> None:
    async def scenario() -> None:
        db = Database(db_url)
        service, user_id = await _seed(db, 6)
        user = Principal("user", "owner", id=user_id)
        robot = Principal("robot", "robot$x", grants=(RobotGrant("project", "p01", frozenset()),))
        everywhere = Principal("robot", "robot$y", grants=(RobotGrant("project", "*", frozenset()),))
        names = {p: [r.name for r in await service.list_visible(p)]
                 for p in (ANONYMOUS, user, robot, everywhere)}
        assert names[ANONYMOUS] == ["p00", "p02", "p04"]
        assert names[user] == [f"p{i:02}" for i in range(6)]
        assert names[robot] == ["p00", "p01", "p02", "p04"]
        assert names[everywhere] == [f"p{i:02}" for i in range(6)]
        await db.close()

    asyncio.run(scenario())


def test_a_page_of_projects_costs_a_constant_number_of_queries(db_url: str) -> None:
    async def scenario() -> None:
        db = Database(db_url)
        service, user_id = await _seed(db, 12)
        user = Principal("user", "owner", id=user_id)
        every = await service.list_visible(user)
        selects = _count_queries(db)
        small = await service.details(user, every[:2])
        at_two = len(selects)
        large = await service.details(user, every)
        assert len(selects) - at_two == at_two, "twelve projects cost what two cost"
        assert {d.owner_name for d in large.values()} == {"owner"}
        assert all(d.repo_count == 2 for d in large.values())
        assert [large[p.id].role_id for p in every] == [None, Role.DEVELOPER] * 6
        assert small == {p.id: large[p.id] for p in every[:2]}
        await db.close()

    asyncio.run(scenario())


def test_a_broken_unique_rule_is_a_conflict_with_the_callers_message_and_writes_nothing(db_url: str) -> None:
    async def scenario() -> None:
        db = Database(db_url)
        service, _ = await _seed(db, 1)
        with pytest.raises(WriteConflict, match=r"^project 'p00' already exists$"):
            async with db.write(conflict="project 'p00' already exists") as conn:
                await service.projects.create(conn, "half", public=False, owner_id=None)
                await service.projects.create(conn, "p00", public=False, owner_id=None)
        assert [p.name for p in await service.list_visible(Principal("user", "admin", sysadmin=True))] == ["p00"]
        with pytest.raises(Conflict, match=r"^project 'p00' already exists$"):
            await service.create("p00", public=None, metadata=None, storage_limit=None, owner=None)
        await db.close()

    asyncio.run(scenario())
