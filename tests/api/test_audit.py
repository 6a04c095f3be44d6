"""/api/v2.0/audit-logs and /projects/{project_name}/logs through HTTP; retention in-process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from portside.audit.recorder import FLUSH_BATCH, AuditEvent, AuditRecorder
from portside.listquery import ListQuery
from portside.metadata.audit import AuditQueries
from portside.metadata.database import Database, migrate
from tests.api.accounts import API, Accounts, error_message, wait_for
from tests.servers import RunningServer

AUDIT_KEYS = {"id", "username", "resource", "resource_type", "operation", "op_time"}


@pytest.fixture
def accounts(auth_server: RunningServer, admin: httpx.Client) -> Iterator[Accounts]:
    a = Accounts(auth_server, admin)
    yield a
    a.close()


def logs(client: httpx.Client, url: str, **params: Any) -> list[dict[str, Any]]:
    r = client.get(url, params={"page_size": 100, **params})
    assert r.status_code == 200, r.text
    return list(r.json())


def busy_project(accounts: Accounts, entries: int = 3) -> tuple[str, list[dict[str, Any]]]:
    """A project with `entries` audit entries: its creation and member additions."""
    project, _ = accounts.project()
    for _ in range(entries - 1):
        accounts.member(project, accounts.user(), "guest")
    found = wait_for(lambda: logs(accounts.admin, f"{API}/projects/{project}/logs"), lambda e: len(e) >= entries)
    assert len(found) == entries, found
    return project, found


def test_shape_sort_and_filters(accounts: Accounts) -> None:
    admin = accounts.admin
    project, entries = busy_project(accounts)
    assert all(set(e) == AUDIT_KEYS for e in entries)
    assert all(e["op_time"].endswith("Z") for e in entries)
    created = [e for e in entries if e["resource_type"] == "project"]
    assert created == [{**created[0], "resource": project, "operation": "create", "username": "admin"}]

    # Newest first by default; sort=op_time for oldest first.
    times = [(e["op_time"], e["id"]) for e in entries]
    assert times == sorted(times, reverse=True)
    oldest_first = logs(admin, f"{API}/projects/{project}/logs", sort="op_time")
    assert [e["id"] for e in oldest_first] == [e["id"] for e in reversed(entries)]
    assert oldest_first[0]["resource_type"] == "project"

    everywhere = logs(admin, f"{API}/audit-logs", q=f"resource=~{project}")
    assert {e["id"] for e in everywhere} == {e["id"] for e in entries}
    assert logs(admin, f"{API}/audit-logs", q=f"resource={project},operation=create,resource_type=project,"
                                                f"username=admin") == created
    assert len(logs(admin, f"{API}/audit-logs", q=f"resource=~{project},resource_type=member")) == 2
    assert logs(admin, f"{API}/audit-logs", q=f"resource=~{project},operation=delete") == []
    either = logs(admin, f"{API}/audit-logs", q=f"resource=~{project},resource_type={{project member}}")
    assert len(either) == 3

    now = datetime.now(UTC)
    window = f"[{(now - timedelta(hours=1)):%Y-%m-%d %H:%M:%S}~{(now + timedelta(hours=1)):%Y-%m-%d %H:%M:%S}]"
    assert len(logs(admin, f"{API}/audit-logs", q=f"resource=~{project},op_time={window}")) == 3
    assert logs(admin, f"{API}/audit-logs", q=f"resource=~{project},op_time=[2000-01-01 00:00:00~2000-01-02 "
                                                f"00:00:00]") == []
    iso_window = f"[{(now - timedelta(hours=1)):%Y-%m-%dT%H:%M:%SZ}~]"
    assert len(logs(admin, f"{API}/audit-logs", q=f"resource=~{project},op_time={iso_window}")) == 3


def test_paging(accounts: Accounts) -> None:
    project, entries = busy_project(accounts)
    url = f"{API}/projects/{project}/logs"
    first = accounts.admin.get(url, params={"page": 1, "page_size": 2})
    assert first.headers["x-total-count"] == "3"
    assert 'rel="next"' in first.headers["link"]
    second = accounts.admin.get(url, params={"page": 2, "page_size": 2})
    assert 'rel="prev"' in second.headers["link"] and 'rel="next"' not in second.headers["link"]
    assert [e["id"] for e in first.json() + second.json()] == [e["id"] for e in entries]
    error_message(accounts.admin.get(url, params={"page_size": 1000}), 400)


def test_bad_queries(accounts: Accounts) -> None:
    admin = accounts.admin
    error_message(admin.get(f"{API}/audit-logs", params={"q": "colour=red"}), 400)
    error_message(admin.get(f"{API}/audit-logs", params={"q": "op_time=[yesterday~today]"}), 400)
    error_message(admin.get(f"{API}/audit-logs", params={"q": "op_time=~2020"}), 400)
    error_message(admin.get(f"{API}/audit-logs", params={"q": "operation=[a~b]"}), 400)
    error_message(admin.get(f"{API}/audit-logs", params={"sort": "-client_ip"}), 400)
    error_message(admin.get(f"{API}/audit-logs", params={"q": "nonsense"}), 400)


def test_who_sees_what(accounts: Accounts, anon: httpx.Client) -> None:
    mine, _ = busy_project(accounts, entries=1)
    theirs, _ = busy_project(accounts, entries=1)
    guest, limited, outsider = accounts.user(), accounts.user(), accounts.user()
    accounts.member(mine, guest, "guest")
    accounts.member(mine, limited, "limitedGuest")
    wait_for(lambda: logs(accounts.admin, f"{API}/projects/{mine}/logs"), lambda e: len(e) >= 3)

    # Project logs: members with audit-log:list only; private projects are invisible to others.
    assert len(logs(guest.client, f"{API}/projects/{mine}/logs")) == 3
    error_message(limited.client.get(f"{API}/projects/{mine}/logs"), 403)
    error_message(outsider.client.get(f"{API}/projects/{mine}/logs"), 404)
    error_message(guest.client.get(f"{API}/projects/{theirs}/logs"), 404)
    error_message(anon.get(f"{API}/projects/{mine}/logs"), 401)

    # The global log: everything for administrators, the caller's projects' entries for others.
    seen = logs(guest.client, f"{API}/audit-logs")
    assert {e["resource"] for e in seen if e["resource_type"] == "project"} == {mine}
    assert not any(theirs in e["resource"] for e in seen)
    assert any(theirs in e["resource"] for e in logs(accounts.admin, f"{API}/audit-logs", q=f"resource=~{theirs}"))
    assert logs(outsider.client, f"{API}/audit-logs") == []
    assert logs(limited.client, f"{API}/audit-logs") == []
    error_message(anon.get(f"{API}/audit-logs"), 401)


def test_public_project_logs_are_for_members(accounts: Accounts, anon: httpx.Client) -> None:
    project, _ = accounts.project(public=True)
    outsider = accounts.user()
    error_message(outsider.client.get(f"{API}/projects/{project}/logs"), 403)
    error_message(anon.get(f"{API}/projects/{project}/logs"), 401)


def test_retention_purges_old_entries(tmp_path: Path) -> None:
    """Entries older than audit.retention_days are deleted by the recorder's purge (it runs hourly
    in the server); called directly here on a fresh SQLite database."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    migrate(url)

    async def scenario() -> tuple[int, list[str], int]:
        db = Database(url, pool_size=2)
        try:
            recorder = AuditRecorder(db, retention_days=30)
            now = datetime.now(UTC)
            for name, age in [("ancient", 400), ("old", 31), ("recent", 29), ("today", 0)]:
                recorder.record(AuditEvent("create", "project", name, "admin", op_time=now - timedelta(days=age)))
            recorder.record(AuditEvent("pull", "artifact", "p/r:latest", "admin"))
            await recorder.flush()
            purged = await recorder.purge_expired()
            rows, total = await AuditQueries(db).search(ListQuery(sort=(("op_time", False),), limit=100))
            again = await recorder.purge_expired()
            return purged, [r.resource for r in rows], total + again * 1000
        finally:
            await db.close()

    purged, kept, total = asyncio.run(scenario())
    assert purged == 2
    assert kept == ["recent", "today", "p/r:latest"]
    assert total == 3  # and a second purge finds nothing more


def test_a_full_batch_is_written_without_waiting_for_the_interval(tmp_path: Path) -> None:
    """A busy worker must not hold an interval's worth of events in memory: once a batch is full,
    the recorder writes it at once (the interval here is a minute)."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    migrate(url)

    async def scenario() -> tuple[int, int]:
        db = Database(url, pool_size=2)
        recorder = AuditRecorder(db, retention_days=30)
        runner = asyncio.create_task(recorder.run(60))
        try:
            await asyncio.sleep(0.2)  # the first pass (a purge of nothing) is done
            for i in range(FLUSH_BATCH - 1):
                recorder.record(AuditEvent("pull", "artifact", f"p/r:{i}", "admin"))
            await asyncio.sleep(0.5)
            _, before = await AuditQueries(db).search(ListQuery(sort=(("op_time", False),), limit=1))
            recorder.record(AuditEvent("pull", "artifact", "p/r:last", "admin"))
            for _ in range(100):
                await asyncio.sleep(0.05)
                _, after = await AuditQueries(db).search(ListQuery(sort=(("op_time", False),), limit=1))
                if after:
                    break
            return before, after
        finally:
            runner.cancel()
            await db.close()

    before, after = asyncio.run(scenario())
    assert before == 0  # a partial batch waits for the interval
    assert after == FLUSH_BATCH
