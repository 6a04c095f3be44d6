"""Start real `portside serve` processes for tests, on SQLite or on the suite's PostgreSQL server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_admin_url() -> str:
    url = os.environ.get("PORTSIDE_TEST_POSTGRES")
    if url:
        return url
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([str(root / "scripts" / "postgres"), "start"], check=True, capture_output=True, text=True)
    url = out.stdout.strip().splitlines()[-1]
    os.environ["PORTSIDE_TEST_POSTGRES"] = url
    return url


def new_postgres_database() -> str:
    """A fresh, empty database on the test server; returns its URL."""
    admin = postgres_admin_url()
    name = f"portside_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + "/" + name


def database_url(backend: str, data_dir: Path) -> str:
    if backend == "postgres":
        return new_postgres_database()
    return f"sqlite:///{data_dir / 'portside.db'}"


class RunningServer:
    """A `portside serve` child process; `url` is its base URL."""

    def __init__(self, data_dir: Path, database_url: str, *, workers: int = 2, port: int | None = None,
                 tls: tuple[Path, Path] | None = None, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, ca_file: Path | None = None, auth: bool = False) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        self.workers = workers
        self.port = port or free_port()
        self.tls = tls
        self.extra_args = extra_args or []
        self.env = env or {}
        self.ca_file = ca_file
        self.auth = auth  # False: an open registry (--no-auth), as the core and interop tests use
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> RunningServer:
        args = [sys.executable, "-m", "portside", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--workers", str(self.workers), *self.extra_args]
        if not self.auth:
            args.append("--no-auth")
        if self.tls:
            args += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        env = {**os.environ, "PORTSIDE_DATABASE__URL": self.database_url, "PORTSIDE_LOG__ACCESS_LOG": "false",
               **self.env}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        verify: str | bool = str(self.ca_file) if self.ca_file else False
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1, verify=verify).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup runs, as in a crash."""
        self.stop(signal.SIGKILL)
