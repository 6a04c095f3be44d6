"""Does a list endpoint answer a page over 100,000 rows in about the time it takes over 100 rows?

Starts a Portside (SQLite) in a temporary directory, creates two projects through the API, stops it,
writes 100 and 100,000 audit entries and artifacts (one tagged manifest each, in one repository)
straight into its database, starts it again and times page 1 of each listing with httpx.
Run by hand, not a test:

    .venv/bin/python bench/listing.py [--runs 7] [--rows 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, insert, select

from portside.metadata.database import migrate
from portside.metadata.models import AuditLog, Manifest, Repository, Tag, table

PASSWORD = "Bench-Listing-1"
API = "/api/v2.0"
BATCH = 5000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path, url: str) -> None:
        self.data_dir, self.db_url, self.port = data_dir, url, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "PORTSIDE_DATABASE__URL": self.db_url, "PORTSIDE_LOG__ACCESS_LOG": "false",
               "PORTSIDE_ADMIN_PASSWORD": PASSWORD}
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen([sys.executable, "-m", "portside", "serve", "--host", "127.0.0.1", "--port",
                                      str(self.port), "--data-dir", str(self.data_dir)],
                                     env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become ready: see " + str(self.data_dir / "server.log"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)


def seed(db_url: str, project_id: int, project: str, rows: int) -> None:
    """`rows` audit entries of the project and `rows` tagged artifacts in `project/app`."""
    engine = create_engine(db_url)
    start = datetime.now(UTC) - timedelta(seconds=rows + 60)  # within the audit retention window
    with engine.begin() as conn:
        repo_id = conn.execute(insert(table(Repository)).values(
            name=f"{project}/app", project_id=project_id, description="", created_at=start, updated_at=start,
            pull_count=0).returning(table(Repository).c.id)).scalar_one()
        for first in range(0, rows, BATCH):
            span = range(first, min(rows, first + BATCH))
            conn.execute(insert(table(AuditLog)), [
                {"project_id": project_id, "operation": "create" if i % 3 else "delete", "resource_type": "artifact",
                 "resource": f"{project}/app:v{i}", "username": "admin", "client_ip": "", "success": True,
                 "detail": "", "op_time": start + timedelta(seconds=i)} for i in span])
            conn.execute(insert(table(Manifest)), [
                {"repository_id": repo_id, "digest": "sha256:" + hashlib.sha256(f"{project}{i}".encode()).hexdigest(),
                 "media_type": "application/vnd.oci.image.manifest.v1+json", "size": 2, "content": b"{}",
                 "pushed_at": start + timedelta(seconds=i)} for i in span])
        manifests = table(Manifest)
        ids = [r.id for r in conn.execute(select(manifests.c.id).where(manifests.c.repository_id == repo_id))]
        for first in range(0, len(ids), BATCH):
            conn.execute(insert(table(Tag)), [{"repository_id": repo_id, "name": f"v{n}", "manifest_id": mid,
                                               "updated_at": start} for n, mid in enumerate(ids[first:first + BATCH],
                                                                                           first)])
    engine.dispose()


def timed(client: httpx.Client, path: str, page_size: int, runs: int) -> float:
    """Median seconds for page 1 over `runs` requests (after one untimed warm-up)."""
    samples = []
    for n in range(runs + 1):
        t0 = time.perf_counter()
        r = client.get(path, params={"page": 1, "page_size": page_size})
        elapsed = time.perf_counter() - t0
        r.raise_for_status()
        assert len(r.json()) == page_size, (path, len(r.json()))
        if n:
            samples.append(elapsed)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="portside-listing-") as tmp:
        data_dir = Path(tmp)
        db_url = f"sqlite:///{data_dir / 'portside.db'}"
        migrate(db_url)
        server = Server(data_dir, db_url)
        sizes = {"small": 100, "large": args.rows}
        server.start()
        try:
            with httpx.Client(base_url=server.url, auth=("admin", PASSWORD), timeout=120) as c:
                for name in sizes:
                    c.post(f"{API}/projects", json={"project_name": f"bench-{name}"}).raise_for_status()
                ids = {name: c.get(f"{API}/projects/bench-{name}").json()["project_id"] for name in sizes}
        finally:
            server.stop()
        t0 = time.perf_counter()
        for name, rows in sizes.items():
            seed(db_url, ids[name], f"bench-{name}", rows)
        print(f"seeded {sum(sizes.values())} audit entries and artifacts in {time.perf_counter() - t0:.1f} s")
        server.start()
        try:
            with httpx.Client(base_url=server.url, auth=("admin", PASSWORD), timeout=120) as c:
                listings = {
                    "project audit logs": "/projects/bench-{name}/logs",
                    "repository artifacts": "/projects/bench-{name}/repositories/app/artifacts",
                    "project artifacts": "/projects/bench-{name}/artifacts",
                }
                print(f"{'listing':<22} {'page_size':>9} {'100 rows':>10} {f'{args.rows:,} rows':>14} {'ratio':>6}")
                for label, template in listings.items():
                    for page_size in (10, 100):
                        small, large = (timed(c, API + template.format(name=name), page_size, args.runs)
                                        for name in sizes)
                        print(f"{label:<22} {page_size:>9} {small * 1000:>8.1f}ms {large * 1000:>12.1f}ms "
                              f"{large / small:>6.2f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
