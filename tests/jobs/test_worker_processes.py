"""`portside worker` processes run the jobs and the schedule while the HTTP server runs none: two of
them against one PostgreSQL database fire a per-second schedule exactly once per tick."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.servers import RunningServer, new_postgres_database

ADMIN_PASSWORD = "Harbor12345"


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[RunningServer, list[subprocess.Popen[bytes]]]]:
    url = new_postgres_database()
    env = {"PORTSIDE_JOBS__RUN_IN_SERVER": "false", "PORTSIDE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    server = RunningServer(tmp_path / "web", url, workers=1, auth=True, env=env).start()
    workers = []
    for i in range(2):
        log = open(tmp_path / f"worker-{i}.log", "wb")  # noqa: SIM115 - lives as long as the process
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "portside", "worker", "--data-dir", str(tmp_path / f"worker-{i}")],
            env={**os.environ, **env, "PORTSIDE_DATABASE__URL": url, "PORTSIDE_JOBS__POLL_SECONDS": "0.2"},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    yield server, workers
    for proc in workers:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    server.stop()


def test_two_worker_processes_fire_each_tick_once(
        deployment: tuple[RunningServer, list[subprocess.Popen[bytes]]]) -> None:
    server, workers = deployment
    with httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=30) as admin:
        r = admin.put("/api/v2.0/system/gc/schedule", json={
            "schedule": {"type": "Custom", "cron": "*/2 * * * * *"}, "parameters": {"dry_run": True}})
        assert r.status_code == 200, r.text
        time.sleep(9)
        assert admin.put("/api/v2.0/system/gc/schedule", json={"schedule": {"type": "None"}}).status_code == 200
        time.sleep(2)
        runs = admin.get("/api/v2.0/system/gc", params={"page_size": 100}).json()
    assert all(p.poll() is None for p in workers), "the workers keep running"
    assert len(runs) >= 3, runs
    ticks = [datetime.strptime(r["creation_time"], "%Y-%m-%dT%H:%M:%SZ") for r in runs]
    seconds = sorted(t.timestamp() for t in ticks)
    assert all(b - a >= 1 for a, b in itertools.pairwise(seconds)), f"a tick fired twice: {seconds}"
    assert {r["job_kind"] for r in runs} == {"SCHEDULE"}
    assert all(r["job_status"] == "Success" for r in runs), "the workers, not the server, ran them"
