"""Fixtures for interop tests: Portside over plain HTTP and over TLS (per backend), and a skopeo runner."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD
from tests.interop.pki import Pki, pki_fixture  # noqa: F401  (the `pki` fixture)
from tests.servers import RunningServer, database_url

# JSON access log on, so tests can see which requests a client really made (e.g. a cross-repo mount).
SERVER_ENV = {"PORTSIDE_LOG__ACCESS_LOG": "true", "PORTSIDE_LOG__FORMAT": "json"}


@dataclass
class Registry:
    """A running Portside as a client sees it: address, scheme and the trust a client needs."""

    server: RunningServer
    ca_cert: Path | None = None  # None: plain HTTP

    @property
    def tls(self) -> bool:
        return self.ca_cert is not None

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def url(self) -> str:
        return self.server.url

    def docker_ref(self, repo: str, ref: str = "") -> str:
        sep = "@" if ref.startswith("sha256:") else ":"
        return f"docker://{self.host}/{repo}{sep + ref if ref else ''}"

    def skopeo_args(self, role: str) -> list[str]:
        """Trust flags for skopeo; role is "dest", "src" or "" (inspect, list-tags)."""
        prefix = f"--{role}-" if role else "--"
        if self.ca_cert is None:
            return [f"{prefix}tls-verify=false"]
        return [f"{prefix}cert-dir={self.ca_cert.parent}"]

    def http(self) -> httpx.Client:
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(self.ca_cert)) if self.ca_cert else False
        )
        return httpx.Client(base_url=self.url, verify=verify, timeout=60)

    def access_log(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.server.log().splitlines():
            if line.startswith("{"):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("logger") == "portside.access":
                    entries.append(entry)
        return entries


def _start(backend: str, data_dir: Path, pki: Pki | None) -> RunningServer:
    return RunningServer(
        data_dir, database_url(backend, data_dir), env=SERVER_ENV,
        tls=pki.server_tls if pki else None, ca_file=pki.ca_cert if pki else None,
    ).start()


@pytest.fixture(scope="session")
def plain_registry(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    srv = _start(backend, tmp_path_factory.mktemp(f"interop-http-{backend}"), None)
    yield Registry(srv)
    srv.stop()


@pytest.fixture(scope="session")
def tls_registry(backend: str, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    srv = _start(backend, tmp_path_factory.mktemp(f"interop-https-{backend}"), pki)
    yield Registry(srv, pki.ca_cert)
    srv.stop()


@pytest.fixture(scope="session")
def auth_tls_registry(backend: str, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Authentication on, over TLS: for clients that send credentials only over HTTPS (python-dxf)."""
    data_dir = tmp_path_factory.mktemp(f"interop-auth-{backend}")
    srv = RunningServer(
        data_dir, database_url(backend, data_dir),
        env={**SERVER_ENV, "PORTSIDE_ADMIN_PASSWORD": ADMIN_PASSWORD}, tls=pki.server_tls, ca_file=pki.ca_cert,
        auth=True,
    ).start()
    yield Registry(srv, pki.ca_cert)
    srv.stop()


@pytest.fixture(params=["http", "https"])
def registry(request: pytest.FixtureRequest, backend: str) -> Registry:
    """Each test that takes this runs once over plain HTTP and once over TLS (full chain, root-only trust).

    `backend` is named here so pytest parametrizes by it; the servers themselves are looked up lazily so
    an HTTP-only run never starts a TLS server.
    """
    name = "plain_registry" if request.param == "http" else "tls_registry"
    reg: Registry = request.getfixturevalue(name)
    return reg


@pytest.fixture
def repo() -> str:
    return f"interop/{uuid.uuid4().hex[:10]}"


class SkopeoError(AssertionError):
    pass


class Skopeo:
    """Runs the real skopeo binary, isolated from the user's auth/registries config, with no policy checks."""

    def __init__(self, binary: str, home: Path) -> None:
        self.binary = binary
        registries_conf = home / "registries.conf"
        registries_conf.write_text("")  # no mirrors, no search registries, nothing marked insecure
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(home / "run"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "CONTAINERS_REGISTRIES_CONF": str(registries_conf),
            "REGISTRY_AUTH_FILE": str(home / "auth.json"),
            "TMPDIR": str(home / "tmp"),
        }
        for d in ("run", "config", "tmp"):
            (home / d).mkdir(exist_ok=True)
        (home / "auth.json").write_text('{"auths": {}}')

    def run(self, *args: str, check: bool = True, timeout: float = 120,
            registry: Registry | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "--insecure-policy", *args]
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            server_log = registry.server.log()[-4000:] if registry else "(not captured)"
            raise SkopeoError(
                f"{' '.join(cmd)}\nexited with {proc.returncode}\n--- stderr:\n{proc.stderr}\n"
                f"--- stdout:\n{proc.stdout}\n--- server log (tail):\n{server_log}"
            )
        return proc

    def copy(self, src: str, dest: str, *flags: str, registry: Registry | None = None) -> None:
        self.run("copy", "--quiet", *flags, src, dest, registry=registry)

    def inspect_raw(self, registry: Registry, repo: str, ref: str) -> bytes:
        proc = self.run("inspect", "--raw", *registry.skopeo_args(""), registry.docker_ref(repo, ref),
                        registry=registry)
        return proc.stdout.encode()

    def inspect(self, registry: Registry, repo: str, ref: str, *flags: str) -> dict[str, Any]:
        proc = self.run(*flags, "inspect", *registry.skopeo_args(""), registry.docker_ref(repo, ref),
                        registry=registry)
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    def list_tags(self, registry: Registry, repo: str) -> list[str]:
        proc = self.run("list-tags", *registry.skopeo_args(""), registry.docker_ref(repo), registry=registry)
        out = json.loads(proc.stdout)
        assert out["Repository"] == f"{registry.host}/{repo}", out
        tags: list[str] = out["Tags"]
        return tags


def _require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(
            f"{binary} is not installed, and the interop tests need the real binary. "
            f"Run scripts/test (it installs it), or: apt-get install {binary}",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    return Skopeo(_require("skopeo"), tmp_path_factory.mktemp("skopeo-home"))


@pytest.fixture(scope="session")
def umoci() -> str:
    return _require("umoci")
