"""The `portside` command and the server process: configuration, health, logs, graceful shutdown."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from portside.config import SETTINGS_ENV, ConfigError, load_settings
from tests.oci_client import push_blob
from tests.servers import RunningServer, free_port


def portside(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "portside", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_version_and_help_on_every_command() -> None:
    assert portside("--version").stdout.startswith("portside ")
    for command in ([], ["serve"], ["migrate"], ["config"]):
        result = portside(*command, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout, command


def test_bad_configuration_names_the_field(tmp_path: Path) -> None:
    config = tmp_path / "portside.yaml"
    config.write_text("port: not-a-number\ndatabase:\n  pool_size: 0\n")
    result = portside("config", "--config", str(config))
    assert result.returncode == 2
    assert "port" in result.stderr and "database.pool_size" in result.stderr
    config.write_text("unknown_setting: 1\n")
    assert "unknown_setting" in portside("config", "--config", str(config)).stderr
    config.write_text("port: [unclosed\n")
    assert "not valid YAML" in portside("config", "--config", str(config)).stderr


def test_precedence_defaults_file_environment_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "portside.yaml"
    config.write_text("port: 6000\nworkers: 3\nlog:\n  format: json\n")
    monkeypatch.delenv("PORTSIDE_PORT", raising=False)
    settings = load_settings(config)
    assert (settings.port, settings.workers, settings.log.format, settings.host) == (6000, 3, "json", "127.0.0.1")
    monkeypatch.setenv("PORTSIDE_PORT", "7000")
    monkeypatch.setenv("PORTSIDE_LOG__LEVEL", "debug")
    settings = load_settings(config)
    assert (settings.port, settings.log.level, settings.log.format) == (7000, "debug", "json")
    assert load_settings(config, port=8000).port == 8000
    with pytest.raises(ConfigError, match="tls"):
        load_settings(None, tls={"cert": str(config)})


def test_workers_rebuild_the_settings_without_the_admin_secret_or_pydantic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"PORTSIDE_ADMIN_PASSWORD": "Initial-Secret-1", "PORTSIDE_AUTH__SERVICE": "svc.example",
           "PORTSIDE_JOBS__MAX_CONCURRENT__GC": "2"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(None, data_dir=tmp_path, tls={"cert": tmp_path / "c.pem", "key": tmp_path / "k.pem"},
                             auth={"mode": "none"})
    assert settings.initial_admin_password() == "Initial-Secret-1" and "Initial-Secret-1" not in repr(settings)
    assert (settings.auth.service, settings.auth.mode) == ("svc.example", "none")
    assert settings.jobs.max_concurrent == {"gc": 2}
    shown = portside("config")
    assert shown.returncode == 0 and "Initial-Secret-1" not in shown.stdout
    assert json.loads(shown.stdout)["admin_password"] == "**********"
    # What a worker process does with the JSON `serve` leaves in its environment: the same settings,
    # minus the secret, with the app built, and pydantic (about 9 MiB a process) never imported.
    script = (
        "import sys, json\n"
        "from portside.app import create_app\n"
        "from portside.config import Settings\n"
        "import portside.serving.worker\n"
        "s = Settings.for_this_worker()\n"
        "create_app(s)\n"
        "print(json.dumps({'pydantic': sorted(m for m in sys.modules if m.startswith('pydantic')),\n"
        "  'same': repr(s), 'secret': s.admin_password, 'cert': str(s.tls.cert), 'gc': s.jobs.max_concurrent}))\n"
    )
    worker_env = {k: v for k, v in os.environ.items() if k not in env}
    worker = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={**worker_env, SETTINGS_ENV: settings.for_workers()})
    assert worker.returncode == 0, worker.stderr
    seen = json.loads(worker.stdout)
    assert seen["pydantic"] == [] and seen["secret"] is None
    assert seen["same"] == repr(settings) and seen["cert"] == str(tmp_path / "c.pem") and seen["gc"] == {"gc": 2}


@pytest.fixture
def json_server(tmp_path: Path) -> Iterator[RunningServer]:
    srv = RunningServer(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'p.db'}", workers=1,
                        env={"PORTSIDE_LOG__FORMAT": "json", "PORTSIDE_LOG__ACCESS_LOG": "true"}).start()
    yield srv
    srv.stop()


def test_json_access_log_health_and_readiness(json_server: RunningServer) -> None:
    with httpx.Client(base_url=json_server.url) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json() == {"status": "ready"}
        assert c.get("/v2/acme/app/tags/list?secret=do-not-log").status_code == 404
        spec = c.get("/api/v2.0/openapi.json").json()
        assert "/projects" in spec["paths"] and "/system/gc/schedule" in spec["paths"]
        assert "swagger-ui" in c.get("/api/v2.0/docs").text.lower()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in json_server.log().splitlines() if x.startswith("{")]
        access = [x for x in lines
                  if x.get("logger") == "portside.access" and x.get("path") == "/v2/acme/app/tags/list"]
        if access:
            break
        time.sleep(0.1)
    assert access, json_server.log()
    entry = access[0]
    assert entry["status"] == 404 and entry["method"] == "GET" and "duration_ms" in entry
    assert "do-not-log" not in json_server.log(), "query strings can carry secrets; they are not logged"


def test_sigterm_lets_an_in_flight_upload_finish(tmp_path: Path) -> None:
    srv = RunningServer(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'p.db'}", workers=1).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            location = c.post("/v2/acme/app/blobs/uploads/").headers["location"]
            chunk = os.urandom(256 * 1024)
            sent = threading.Event()

            def body() -> Iterator[bytes]:
                for i in range(20):
                    if i == 2:
                        sent.set()
                    time.sleep(0.05)
                    yield chunk

            result: dict[str, httpx.Response] = {}
            thread = threading.Thread(target=lambda: result.update(r=c.patch(location, content=body())))
            thread.start()
            sent.wait(10)
            assert srv.proc is not None
            os.killpg(srv.proc.pid, signal.SIGTERM)
            thread.join(30)
            assert result["r"].status_code == 202, "the request in flight completed"
            assert result["r"].headers["range"] == f"0-{20 * len(chunk) - 1}"
        assert srv.proc.wait(30) is not None
    finally:
        srv.stop()
    srv = RunningServer(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'p.db'}", workers=1).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            digest = "sha256:" + hashlib.sha256(chunk * 20).hexdigest()
            r = c.put(location, params={"digest": digest})
            assert r.status_code == 201, r.text
            assert c.head(f"/v2/acme/app/blobs/{digest}").status_code == 200
    finally:
        srv.stop()


def test_port_flag_is_respected(tmp_path: Path) -> None:
    port = free_port()
    srv = RunningServer(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'p.db'}", workers=1, port=port).start()
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        srv.stop()


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(p) for p in f.read().split()}


def test_a_worker_that_dies_is_replaced_and_the_server_keeps_serving(tmp_path: Path) -> None:
    srv = RunningServer(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'p.db'}", workers=2).start()
    try:
        assert srv.proc is not None
        workers = _children(srv.proc.pid)
        assert len(workers) == 2
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = _children(srv.proc.pid)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"no replacement worker: children are {_children(srv.proc.pid)}")
        for _ in range(20):  # both workers answer (the kernel spreads connections across them)
            assert httpx.get(f"{srv.url}/v2/").status_code == 200
        assert srv.proc.poll() is None
        assert "starting a new one" in srv.log()
    finally:
        srv.stop()


def _fds_open_on(pid: int, path: Path) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}") == str(path)
    return count


def test_the_supervisor_sends_blob_bodies_and_finishes_them_when_a_worker_dies(tmp_path: Path) -> None:
    # The server's one sendfile pump lives in the supervisor: the workers hand it each blob body.
    # It holds the connection while it sends, so a pull in flight survives the worker's death.
    srv = RunningServer(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'p.db'}", workers=2).start()
    try:
        assert srv.proc is not None
        data = os.urandom(48 * 1024 * 1024)
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            digest = push_blob(c, "acme/app", data)
        blob_file = tmp_path / "data" / "storage" / "blobs" / "sha256" / digest[7:9] / digest[7:]
        assert blob_file.read_bytes() == data
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # a slow reader: the body waits
            sock.connect(("127.0.0.1", srv.port))
            sock.sendall(f"GET /v2/acme/app/blobs/{digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            received = bytearray()
            while b"\r\n\r\n" not in received:
                received += sock.recv(65536)
            head, _, body = bytes(received).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            deadline = time.monotonic() + 10
            while not _fds_open_on(srv.proc.pid, blob_file) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _fds_open_on(srv.proc.pid, blob_file) == 1, "the supervisor's pump is sending the file"
            for worker in _children(srv.proc.pid):
                os.kill(worker, signal.SIGKILL)
            rest = bytearray(body)
            while chunk := sock.recv(1024 * 1024):
                rest += chunk
        assert bytes(rest) == data  # the whole body, then the connection closes
        assert _fds_open_on(srv.proc.pid, blob_file) == 0
        deadline = time.monotonic() + 30
        while len(_children(srv.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert httpx.get(f"{srv.url}/v2/acme/app/blobs/{digest}", timeout=60).content == data  # new workers
    finally:
        srv.stop()


def test_a_port_already_taken_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    first = RunningServer(tmp_path / "one", f"sqlite:///{tmp_path / 'one' / 'p.db'}", workers=1).start()
    try:
        done = portside("serve", "--no-auth", "--port", str(first.port), "--data-dir", str(tmp_path / "two"))
        assert done.returncode == 1
        assert f"cannot listen on 127.0.0.1:{first.port}" in done.stderr
        assert httpx.get(f"{first.url}/healthz").status_code == 200
    finally:
        first.stop()


def test_login_throttle_refuses_with_429_past_the_hard_limit() -> None:
    import asyncio

    from portside.auth.throttle import LoginThrottle
    from portside.errors import TooManyRequests

    throttle = LoginThrottle(free_failures=1, max_delay=0.01, hard_limit=3)

    async def scenario() -> None:
        for _ in range(3):
            await throttle.before_attempt("10.0.0.1|bob")
            throttle.failed("10.0.0.1|bob")
        with pytest.raises(TooManyRequests) as refused:
            await throttle.before_attempt("10.0.0.1|bob")
        assert refused.value.retry_after >= 1
        await throttle.before_attempt("10.0.0.2|bob")  # another client is not affected
        throttle.succeeded("10.0.0.1|bob")
        await throttle.before_attempt("10.0.0.1|bob")

    asyncio.run(scenario())


def test_the_supervisor_raises_its_open_files_limit_for_the_workers_to_inherit() -> None:
    # Each pull in flight holds descriptors in the supervisor's pump: a soft limit of 1,024 would cap
    # the server near 500 concurrent pulls while the hard limit allows far more.
    script = (
        "import resource\n"
        "from portside.serving.supervisor import raise_open_files_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "print(raise_open_files_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    returned, soft, hard = (int(x) for x in out.stdout.split())
    assert soft == returned > 256
    assert soft == hard or hard == -1  # -1: unlimited, capped at the kernel's fs.nr_open
