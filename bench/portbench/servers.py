"""The servers under test, each a child process in a session of its own, and a memory sampler.

Every server listens on 127.0.0.1 on a free port and keeps all of its state in a temporary
directory; `stop` signals the whole process group it started and nothing else.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import httpx

# The tools the benchmark runs, and the Debian package that brings each one.
TOOLS: dict[str, str] = {"docker-registry": "docker-registry", "nginx": "nginx-light", "wrk": "wrk"}

REPO_ROOT = Path(__file__).resolve().parents[2]


def find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        candidate = Path(folder, name)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def missing_tools() -> list[tuple[str, str]]:
    """(tool, Debian package) for every tool that is not installed."""
    return [(tool, package) for tool, package in TOOLS.items() if find_tool(tool) is None]


def portside_binary() -> Path:
    beside = Path(sys.executable).parent / "portside"
    return beside if beside.exists() else REPO_ROOT / ".venv" / "bin" / "portside"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One server under test. Subclasses say how to configure and start it."""

    key = ""
    label = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "server not started"
        return self.proc.pid

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def prepare(self) -> None:
        """Write configuration files before the process starts."""

    def start(self, timeout: float = 60.0) -> None:
        self.prepare()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), env=self.environment(), cwd=self.workdir, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/v2/", timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.label} did not answer on {self.url} within {timeout:.0f} s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


class Portside(ServerProcess):
    key = "portside"
    label = "Portside"

    def __init__(self, workdir: Path, source: Path | None = None) -> None:
        """`source`: a directory holding an exported `src/` to run instead of the installed Portside."""
        super().__init__(workdir)
        self.source = source
        self.flags = self.open_registry_flags()

    def _entry(self) -> list[str]:
        if self.source is None:
            return [str(portside_binary())]
        return [sys.executable, "-m", "portside"]

    def open_registry_flags(self) -> list[str]:
        """`--no-auth` where this version has token auth: Distribution runs without auth as well."""
        done = subprocess.run([*self._entry(), "serve", "--help"], capture_output=True, text=True,
                              check=False, env={**self.environment(), "COLUMNS": "200"})
        return ["--no-auth"] if "--no-auth" in done.stdout else []

    def command(self) -> list[str]:
        return [*self._entry(), "serve", "--port", str(self.port), "--data-dir", str(self.workdir / "data"),
                *self.flags]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTSIDE_")}
        env["PORTSIDE_LOG__ACCESS_LOG"] = "false"
        if self.source is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.source / "src"), env.get("PYTHONPATH")]))
        return env


def export_source(rev: str, into: Path) -> str:
    """Extract `src/` of git revision `rev` of this repository into `into`; returns the full commit id."""
    commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                            capture_output=True, text=True, check=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "--format=tar", commit, "src"],
                             capture_output=True, check=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


class Distribution(ServerProcess):
    key = "distribution"
    label = "Distribution"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    def prepare(self) -> None:
        root = self.workdir / "storage"
        root.mkdir(exist_ok=True)
        self.config_path.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
        )

    def command(self) -> list[str]:
        return [find_tool("docker-registry") or "docker-registry", "serve", str(self.config_path)]

    def environment(self) -> dict[str, str]:
        # REGISTRY_* variables would override the file.
        return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}


class Nginx(ServerProcess):
    """Static files under `www` (a /v2/-like tree); the ceiling for pulls and small GETs."""

    key = "nginx"
    label = "nginx"

    @property
    def www(self) -> Path:
        return self.workdir / "www"

    @property
    def config_path(self) -> Path:
        return self.workdir / "nginx.conf"

    def prepare(self) -> None:
        # The worker processes run as nobody: they must be able to reach the files.
        for folder in (self.workdir.parent, self.workdir, self.www):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)
        tmp = self.workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        temp_paths = "".join(
            f"  {kind}_temp_path {tmp / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.config_path.write_text(
            "worker_processes auto;\n"
            f"pid {self.workdir / 'nginx.pid'};\n"
            f"error_log {self.workdir / 'error.log'} error;\n"
            "events { worker_connections 4096; }\n"
            "http {\n"
            "  access_log off;\n"
            "  sendfile on;\n"
            "  tcp_nopush on;\n"
            "  keepalive_requests 1000000;\n"
            "  types { }\n"
            "  default_type application/octet-stream;\n"
            f"{temp_paths}"
            "  server {\n"
            f"    listen 127.0.0.1:{self.port};\n"
            f"    root {self.www};\n"
            "    location = /v2/ { default_type application/json; return 200 '{}'; }\n"
            "    location /v2/ { }\n"
            "  }\n"
            "}\n"
        )

    def command(self) -> list[str]:
        return [find_tool("nginx") or "nginx", "-p", str(self.workdir), "-e", str(self.workdir / "error.log"),
                "-c", str(self.config_path), "-g", "daemon off;"]

    def log_text(self) -> str:
        error_log = self.workdir / "error.log"
        extra = error_log.read_text(errors="replace") if error_log.exists() else ""
        return super().log_text() + extra


# ---------------------------------------------------------------------------------------------
# Memory


def _parent_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def _tree(root: int, children: dict[int, list[int]]) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class RssMonitor(threading.Thread):
    """Samples the summed VmRSS of each server's process tree every `interval` seconds."""

    def __init__(self, roots: dict[str, int], interval: float = 0.1) -> None:
        super().__init__(name="rss-monitor", daemon=True)
        self.roots = roots
        self.interval = interval
        self.samples: dict[str, list[tuple[float, int]]] = {key: [] for key in roots}
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._trees: dict[str, list[int]] = {}
        self._count = 0

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def sample(self) -> dict[str, int]:
        """Take one sample now (also callable from other threads); returns bytes per server."""
        with self._lock:
            if self._count % 10 == 0 or not self._trees:  # processes rarely come and go: rescan each second
                children = _parent_map()
                self._trees = {key: _tree(root, children) for key, root in self.roots.items()}
            self._count += 1
            now = time.monotonic()
            current = {key: sum(_rss_bytes(pid) for pid in pids) for key, pids in self._trees.items()}
            for key, rss in current.items():
                self.samples[key].append((now, rss))
        return current

    def peak(self, key: str, start: float | None = None, end: float | None = None) -> int:
        with self._lock:
            values = [rss for t, rss in self.samples[key]
                      if (start is None or t >= start) and (end is None or t <= end)]
        return max(values, default=0)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join()
