"""The shared listing query (metadata/listing.py): `q`, `sort` and paging done in SQL, one policy for
unknown keys. Paging in-process on a fresh SQLite database; the 400s through HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from portside.audit.recorder import AuditEvent, AuditRecorder
from portside.listquery import ListQuery, Term
from portside.metadata.audit import AuditQueries
from portside.metadata.database import Database, migrate
from tests.api.accounts import API, error_message


def test_pages_are_cut_in_sql_with_a_total_and_a_stable_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    migrate(url)
    start = datetime(2026, 1, 1, tzinfo=UTC)

    async def scenario() -> list[tuple[list[str], int]]:
        db = Database(url, pool_size=2)
        try:
            recorder = AuditRecorder(db, retention_days=100_000)
            for i in range(250):  # two entries per second: op_time alone does not order them
                recorder.record(AuditEvent("create" if i % 5 else "delete", "project", f"p{i:03}", "admin",
                                           op_time=start + timedelta(seconds=i // 2)))
            await recorder.flush()
            queries = AuditQueries(db)
            out = []
            for query in (ListQuery(offset=200, limit=100, sort=(("op_time", False),)),
                          ListQuery(offset=0, limit=3),
                          ListQuery(limit=2, sort=(("operation", False), ("resource", True))),
                          ListQuery(limit=100, terms=(Term("operation", "exact", ("delete",)),
                                                      Term("op_time", "range", ("", "2026-01-01 00:00:09"))))):
                rows, total = await queries.search(query)
                out.append(([r.resource for r in rows], total))
            return out
        finally:
            await db.close()

    last_page, newest, multi_key, filtered = asyncio.run(scenario())
    assert last_page == ([f"p{i:03}" for i in range(200, 250)], 250)
    assert newest == (["p249", "p248", "p247"], 250)  # newest first; equal times by id, descending too
    assert multi_key == (["p249", "p248"], 250)  # operation ascending ("create" < "delete"), then resource desc
    assert filtered == (["p015", "p010", "p005", "p000"], 4)


def test_unknown_keys_are_refused_naming_the_allowed_ones(api: httpx.Client, project_name: str) -> None:
    assert api.post(f"{API}/projects", json={"project_name": project_name}).status_code == 201
    for url in (f"{API}/audit-logs", f"{API}/projects/{project_name}/logs",
                f"{API}/projects/{project_name}/artifacts", f"{API}/projects/{project_name}/repositories",
                f"{API}/repositories"):
        message = error_message(api.get(url, params={"sort": "-colour"}), 400)
        assert "colour" in message and "id" in message, message
        message = error_message(api.get(url, params={"q": "colour=blue"}), 400)
        assert "colour" in message and "use one of" in message, message
