"""Real clients with credentials: skopeo (--src-creds/--dest-creds), oras-py (login, push, pull),
@sigstore/oci (npm; attach a bundle to an image), buildah and podman (push, pull) and containerd's ctr
(--user), as users and as robots (whose `robot$project+name` names must survive every layer), into a
private project."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from oras.client import OrasClient

from tests.auth.conftest import Account, Harbor, Team, bearer_client, granted, unique
from tests.conftest import ADMIN_PASSWORD
from tests.oci_client import sha256
from tests.servers import RunningServer

pytestmark = pytest.mark.interop

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"



def write_layout(root: Path, tag: str) -> dict[str, bytes]:
    """A one-layer linux/amd64 OCI image layout at `root`; returns its blobs by digest."""
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w") as tar:
        data = f"hello from {unique('')}\n".encode()
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(data), 1_700_000_000
        tar.addfile(info, io.BytesIO(data))
    layer = gzip.compress(tar_buf.getvalue(), mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [sha256(tar_buf.getvalue())]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(layer),
                    "size": len(layer)}],
    }).encode()
    blobs = {sha256(b): b for b in (layer, config, manifest)}
    (root / "blobs" / "sha256").mkdir(parents=True)
    for digest, data in blobs.items():
        (root / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha256(manifest), "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return blobs


def read_blobs(root: Path) -> dict[str, bytes]:
    return {f"sha256:{p.name}": p.read_bytes() for p in (root / "blobs" / "sha256").iterdir()}


class Skopeo:
    def __init__(self, home: Path) -> None:
        binary = shutil.which("skopeo")
        if binary is None:
            pytest.fail("skopeo is not installed (apt-get install skopeo)", pytrace=False)
        self.binary = binary
        (home / "registries.conf").write_text("")
        (home / "auth.json").write_text('{"auths": {}}')
        for d in ("run", "config", "tmp"):
            (home / d).mkdir(exist_ok=True)
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
                    "XDG_RUNTIME_DIR": str(home / "run"), "XDG_CONFIG_HOME": str(home / "config"),
                    "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"),
                    "REGISTRY_AUTH_FILE": str(home / "auth.json"), "TMPDIR": str(home / "tmp")}

    def copy(self, *args: str) -> subprocess.CompletedProcess[str]:
        # An argument list, no shell: `robot$...` names need no quoting and are never expanded.
        return subprocess.run([self.binary, "--insecure-policy", "copy", "--quiet", *args], env=self.env,
                              capture_output=True, text=True, timeout=120)


@pytest.fixture
def skopeo(tmp_path: Path) -> Skopeo:
    home = tmp_path / "skopeo-home"
    home.mkdir()
    return Skopeo(home)


def creds(account: Account) -> str:
    return f"{account.name}:{account.secret}"


def roundtrip(skopeo: Skopeo, server: RunningServer, account: Account, repo: str, tmp_path: Path) -> None:
    src, out = tmp_path / f"src-{unique('')}", tmp_path / f"out-{unique('')}"
    blobs = write_layout(src, "v1")
    ref = f"docker://{server.host}/{repo}:v1"
    pushed = skopeo.copy("--dest-tls-verify=false", "--dest-creds", creds(account), f"oci:{src}:v1", ref)
    assert pushed.returncode == 0, pushed.stderr
    pulled = skopeo.copy("--src-tls-verify=false", "--src-creds", creds(account), ref, f"oci:{out}:v1")
    assert pulled.returncode == 0, pulled.stderr
    assert read_blobs(out) == blobs


def test_skopeo_with_user_credentials(skopeo: Skopeo, auth_server: RunningServer, team: Team,
                                      tmp_path: Path) -> None:
    roundtrip(skopeo, auth_server, team.users["developer"], f"{team.private}/skopeo-user", tmp_path)


def test_skopeo_with_robot_credentials(skopeo: Skopeo, auth_server: RunningServer, harbor: Harbor,
                                       tmp_path: Path) -> None:
    project = harbor.project()
    robot = harbor.robot(project, ("pull", "push"), level="project", name=unique("skopeo"))
    assert "$" in robot.name and "+" in robot.name
    roundtrip(skopeo, auth_server, robot, f"{project}/skopeo-robot", tmp_path)


def test_skopeo_refused_push_leaves_nothing(skopeo: Skopeo, auth_server: RunningServer, harbor: Harbor,
                                            team: Team, tmp_path: Path) -> None:
    src = tmp_path / "src"
    blobs = write_layout(src, "v1")
    repo = f"{team.private}/{unique('refused')}"
    guest = team.users["guest"]
    r = skopeo.copy("--dest-tls-verify=false", "--dest-creds", creds(guest), f"oci:{src}:v1",
                    f"docker://{auth_server.host}/{repo}:v1")
    assert r.returncode != 0
    assert any(w in r.stderr.lower() for w in ("unauthorized", "denied", "authentication required")), r.stderr
    assert not harbor.exists(repo)
    for digest in blobs:
        assert not harbor.exists(repo, blob=digest)
    # Wrong password: refused before anything is sent.
    r = skopeo.copy("--dest-tls-verify=false", "--dest-creds", f"{guest.name}:Wrong{guest.secret}",
                    f"oci:{src}:v1", f"docker://{auth_server.host}/{repo}:v1")
    assert r.returncode != 0
    assert not harbor.exists(repo)


def oras_client(server: RunningServer, account: Account, config: Path, backend: str) -> OrasClient:
    client = OrasClient(hostname=server.host, insecure=True, auth_backend=backend)
    result = client.login(username=account.name, password=account.secret, hostname=server.host,
                          config_path=str(config))  # not ~/.docker/config.json
    assert "Succeeded" in json.dumps(result)
    return client


def oras_push(client: OrasClient, directory: Path, name: str, target: str) -> int:
    cwd = os.getcwd()
    os.chdir(directory)  # oras-py records file names relative to the working directory
    try:
        status: int = client.push(files=[name], target=target).status_code
        return status
    finally:
        os.chdir(cwd)


def oras_roundtrip(server: RunningServer, account: Account, repo: str, tmp_path: Path) -> None:
    """Push with oras-py's Basic backend, pull with its (default) token backend.

    oras-py's token backend keeps the first token it got (pull scope, from a HEAD) and only fetches a
    new one after a 403, while registries (Distribution, Harbor, Portside) answer a token lacking a
    scope with 401 + error="insufficient_scope": its pushes then fail against Harbor as well
    (oras-project/oras-py#67). Pulls only ever need the first token."""
    work = tmp_path / unique("oras")
    (work / "in").mkdir(parents=True)
    artifact = work / "in" / "model.bin"
    artifact.write_bytes(os.urandom(50_000))
    target = f"{server.host}/{repo}:v1"
    pusher = oras_client(server, account, work / "docker-config.json", "basic")
    assert oras_push(pusher, work / "in", "model.bin", target) == 201

    puller = oras_client(server, account, work / "docker-config.json", "token")
    files = puller.pull(target=target, outdir=str(work / "out"))
    assert [Path(f).name for f in files] == ["model.bin"]
    assert (work / "out" / "model.bin").read_bytes() == artifact.read_bytes()
    assert puller.auth.token, "the pull went through a bearer token"
    assert granted(puller.auth.token) == {f"repository:{repo}": {"pull"}}


def test_oras_with_user_login(auth_server: RunningServer, team: Team, tmp_path: Path) -> None:
    oras_roundtrip(auth_server, team.users["maintainer"], f"{team.private}/oras-user", tmp_path)


def test_oras_with_robot_login(auth_server: RunningServer, harbor: Harbor, tmp_path: Path) -> None:
    project = harbor.project()
    robot = harbor.robot(project, ("pull", "push"), level="project", name=unique("oras"))
    oras_roundtrip(auth_server, robot, f"{project}/oras-robot", tmp_path)
    # The robot's login does not open a project it has no permission in.
    other = harbor.project()
    client = oras_client(auth_server, robot, tmp_path / "other-config.json", "basic")
    (tmp_path / "x.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="DENIED"):  # oras-py raises on the refused upload session
        oras_push(client, tmp_path, "x.bin", f"{auth_server.host}/{other}/nope:v1")
    assert not harbor.exists(f"{other}/nope")


# -- @sigstore/oci (npm) ---------------------------------------------------------------------------------

NODE_CLIENTS = Path(__file__).parents[1] / "interop" / "node"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def node_script(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (NODE_CLIENTS / "node_modules" / "@sigstore" / "oci").is_dir():
        pytest.fail("node and the npm clients are needed: run scripts/test (it runs "
                    "`npm ci --prefix tests/interop/node`)", pytrace=False)
    return subprocess.run([node, str(NODE_CLIENTS / script), *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env})


def test_sigstore_oci_attaches_a_bundle(auth_server: RunningServer, harbor: Harbor, team: Team,
                                        tmp_path: Path) -> None:
    """@sigstore/oci signs in by POSTing an upload, fetches a token for exactly the challenged scope and
    uses it for every request after (HEADs included): the challenge must name pull as well as push."""
    repo = f"{team.private}/{unique('sigstore')}"
    image = harbor.seed(repo)
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"mediaType": SIGSTORE_BUNDLE, "note": unique("signed")}))
    proc = node_script("attach.mjs", f"{auth_server.host}/{repo}", "v1", SIGSTORE_BUNDLE, str(bundle),
                       env={"PORTSIDE_USER": "admin", "PORTSIDE_PASSWORD": ADMIN_PASSWORD})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["image"] == image.digest
    assert result["artifact"]["subjectDigest"] == image.digest  # the registry answered OCI-Subject
    with bearer_client(auth_server, harbor.admin_token(repo, "pull")) as c:
        listed = c.get(f"/v2/{repo}/referrers/{image.digest}").json()["manifests"]
        assert [(d["digest"], d["artifactType"]) for d in listed] == [(result["artifact"]["digest"], SIGSTORE_BUNDLE)]
        assert c.get(f"/v2/{repo}/blobs/{sha256(bundle.read_bytes())}").content == bundle.read_bytes()


# -- buildah ---------------------------------------------------------------------------------------------


class Buildah:
    """The real buildah, as root without a daemon: vfs storage under `home`, its own (empty) registries
    configuration and auth file, no signature policy checks."""

    def __init__(self, home: Path) -> None:
        binary = shutil.which("buildah")
        if binary is None:
            pytest.fail("buildah is not installed: run scripts/test (it installs it), or apt-get install buildah",
                        pytrace=False)
        self.binary, self.home = binary, home
        (home / "policy.json").write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
        (home / "registries.conf").write_text("")
        (home / "auth.json").write_text('{"auths": {}}')
        (home / "run").mkdir()
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
                    "XDG_RUNTIME_DIR": str(home / "run"), "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"),
                    "REGISTRY_AUTH_FILE": str(home / "auth.json"), "TMPDIR": str(home)}

    def __call__(self, *args: str, store: str = "build") -> str:
        cmd = [self.binary, "--root", str(self.home / store / "root"), "--runroot", str(self.home / store / "run"),
               "--storage-driver", "vfs", *args]
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
        return proc.stdout.strip()


@pytest.fixture(scope="session")
def buildah_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Buildah, str]:
    """(buildah, image id): a one-file image built from scratch, once per session."""
    home = tmp_path_factory.mktemp("buildah")
    buildah = Buildah(home)
    (home / "hello.txt").write_text(f"hello from {unique('')}\n")
    policy = ["--signature-policy", str(home / "policy.json")]
    container = buildah("from", *policy, "scratch")
    buildah("copy", container, str(home / "hello.txt"), "/hello.txt")
    buildah("config", "--os", "linux", "--arch", "amd64", "--cmd", "/hello", container)
    image_id = buildah("commit", "--quiet", *policy, container, "localhost/portside-test:v1")
    return buildah, image_id


def test_buildah_push_and_pull(buildah_image: tuple[Buildah, str], auth_server: RunningServer, harbor: Harbor,
                               team: Team) -> None:
    """A developer pushes (Docker v2 schema 2 and OCI), a pull-only robot pulls into an empty store."""
    buildah, image_id = buildah_image
    robot = harbor.robot(team.private, ("pull",), level="project", name=unique("buildah"))
    policy = ["--signature-policy", str(buildah.home / "policy.json")]
    developer = team.users["developer"]
    for fmt in ("v2s2", "oci"):
        ref = f"docker://{auth_server.host}/{team.private}/{unique('buildah')}:v1"
        buildah("push", *policy, "--tls-verify=false", "--creds", creds(developer), "--format", fmt,
                "localhost/portside-test:v1", ref)
        buildah("pull", *policy, "--tls-verify=false", "--creds", creds(robot), "--quiet", ref, store=fmt)
        assert buildah("images", "--quiet", "--no-trunc", store=fmt).splitlines() == [f"sha256:{image_id}"]


# -- podman ----------------------------------------------------------------------------------------------


class Podman:
    """The real podman, as root, never running a container: vfs storage and every state directory under
    `home` (nothing in /var/lib/containers or /run), its own empty registries configuration, no cgroups
    manager or journald needed (cgroupfs, file events)."""

    def __init__(self, home: Path, run_dir: Path) -> None:
        binary = shutil.which("podman")
        if binary is None:
            pytest.fail("podman is not installed: run scripts/test (it installs it), or apt-get install podman",
                        pytrace=False)
        self.binary, self.home, self.run_dir = binary, home, run_dir
        (home / "policy.json").write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
        (home / "registries.conf").write_text("")
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
                    "XDG_RUNTIME_DIR": str(run_dir), "XDG_CONFIG_HOME": str(home / "config"),
                    "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"), "TMPDIR": str(home)}

    def run(self, *args: str, store: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        base = self.home / store
        cmd = [self.binary, "--root", str(base / "root"), "--runroot", str(self.run_dir / store), "--tmpdir",
               str(base / "tmp"), "--volumepath", str(base / "volumes"), "--network-config-dir",
               str(base / "networks"), "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
               "--events-backend", "file", *args]
        return subprocess.run(cmd, env=self.env, input=stdin, capture_output=True, text=True, timeout=120)

    def __call__(self, *args: str, store: str, stdin: str | None = None) -> str:
        proc = self.run(*args, store=store, stdin=stdin)
        assert proc.returncode == 0, f"podman {' '.join(args)}\n{proc.stderr}"
        return proc.stdout.strip()

    def login(self, server: RunningServer, account: Account, auth_file: Path, store: str) -> None:
        # The secret on stdin, the name as one argv element: `robot$...` is never expanded.
        self("login", "--tls-verify=false", "--authfile", str(auth_file), "--username", account.name,
             "--password-stdin", server.host, store=store, stdin=account.secret)


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    # podman refuses a runroot path longer than 50 characters: pytest's tmp_path is longer.
    run_dir = Path(tempfile.mkdtemp(prefix="portside-podman-", dir="/tmp"))
    try:
        yield Podman(tmp_path, run_dir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def served_digest(harbor: Harbor, repo: str, tag: str) -> str:
    with bearer_client(harbor.server, harbor.admin_token(repo, "pull")) as c:
        r = c.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200, r.text
        assert r.headers["Docker-Content-Digest"] == sha256(r.content)
        return sha256(r.content)


def test_podman_login_push_and_pull(podman: Podman, auth_server: RunningServer, harbor: Harbor, team: Team,
                                    tmp_path: Path) -> None:
    """A developer logs in and pushes; a pull-only robot logs in (its `robot$` name stored in the auth
    file), pulls the same image into an empty store and is refused a push."""
    layout = tmp_path / "layout"
    write_layout(layout, "v1")
    policy = ["--signature-policy", str(tmp_path / "policy.json")]
    image_id = podman("pull", "--quiet", *policy, f"oci:{layout}:v1", store="source")

    repo = f"{team.private}/{unique('podman')}"
    ref = f"{auth_server.host}/{repo}"
    dev_auth = tmp_path / "developer-auth.json"
    podman.login(auth_server, team.users["developer"], dev_auth, "source")
    digest_file = tmp_path / "pushed.digest"
    podman("push", "--quiet", *policy, "--tls-verify=false", "--authfile", str(dev_auth), "--format", "oci",
           "--digestfile", str(digest_file), image_id, f"docker://{ref}:v1", store="source")
    pushed = digest_file.read_text().strip()
    assert served_digest(harbor, repo, "v1") == pushed

    robot = harbor.robot(team.private, ("pull",), level="project", name=unique("podman"))
    robot_auth = tmp_path / "robot-auth.json"
    podman.login(auth_server, robot, robot_auth, "pulled")
    stored = json.loads(robot_auth.read_text())["auths"][auth_server.host]["auth"]
    assert base64.b64decode(stored).decode().split(":", 1)[0] == robot.name
    podman("pull", "--quiet", *policy, "--tls-verify=false", "--authfile", str(robot_auth), f"{ref}:v1",
           store="pulled")
    listed = podman("images", "--format", "{{.Id}} {{.Digest}}", "--no-trunc", store="pulled").splitlines()
    assert listed == [f"{image_id} {pushed}"]

    refused = podman.run("push", *policy, "--tls-verify=false", "--authfile", str(robot_auth), f"{ref}:v1",
                         f"docker://{ref}:v2", store="pulled")
    assert refused.returncode != 0
    assert any(w in refused.stderr.lower() for w in ("denied", "unauthorized", "authentication required")), \
        refused.stderr
    assert not harbor.exists(repo, tag="v2")


# -- containerd's ctr ------------------------------------------------------------------------------------


@dataclass
class Containerd:
    """A private containerd (its own root, state and socket, no CRI plugin) and its `ctr` client."""

    ctr: str
    address: Path

    def run(self, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
        # An argument list, no shell: `--user robot$...:secret` reaches ctr unexpanded.
        return subprocess.run([self.ctr, "--address", str(self.address), "--namespace", namespace, *args],
                              capture_output=True, text=True, timeout=120,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})

    def __call__(self, namespace: str, *args: str) -> str:
        proc = self.run(namespace, *args)
        assert proc.returncode == 0, f"ctr {' '.join(args)}\n{proc.stderr}"
        return proc.stdout


CONTAINERD_CONFIG = """\
version = 2
root = "{home}/root"
state = "{home}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{home}/containerd.sock"
[ttrpc]
  address = "{home}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{home}/opt"
"""


@pytest.fixture(scope="session")
def containerd() -> Iterator[Containerd]:
    """Started once per session and stopped afterwards. Its home is short: a unix socket path has a
    108-byte limit that pytest's temporary directories can exceed."""
    binary, ctr = shutil.which("containerd"), shutil.which("ctr")
    if binary is None or ctr is None:
        pytest.fail("containerd is not installed: run scripts/test (it installs it), or apt-get install containerd",
                    pytrace=False)
    home = Path(tempfile.mkdtemp(prefix="portside-containerd-", dir="/tmp"))
    (home / "config.toml").write_text(CONTAINERD_CONFIG.format(home=home))
    with open(home / "containerd.log", "wb") as log:
        proc = subprocess.Popen([binary, "--config", str(home / "config.toml")], stdout=log, stderr=log,
                                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    client = Containerd(ctr, home / "containerd.sock")
    try:
        for _ in range(200):  # up to ~20 s for the socket to answer
            if proc.poll() is not None:
                pytest.fail(f"containerd exited:\n{(home / 'containerd.log').read_text()[-3000:]}", pytrace=False)
            if client.run("default", "version").returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"containerd did not answer:\n{(home / 'containerd.log').read_text()[-3000:]}",
                        pytrace=False)
        yield client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)


def oci_archive(layout: Path, archive: Path) -> None:
    with tarfile.open(archive, "w") as tar:
        for entry in sorted(layout.iterdir()):
            tar.add(entry, arcname=entry.name)


def test_ctr_push_and_pull(containerd: Containerd, auth_server: RunningServer, harbor: Harbor, team: Team,
                           tmp_path: Path) -> None:
    """ctr pushes as a developer (--user), pulls into an empty namespace as a pull-only robot and unpacks
    it, and is refused a push as that robot."""
    layout = tmp_path / "layout"
    blobs = write_layout(layout, "v1")
    manifest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    oci_archive(layout, tmp_path / "image.tar")
    repo = f"{team.private}/{unique('ctr')}"
    ref = f"{auth_server.host}/{repo}"
    source, pulled = unique("source"), unique("pulled")
    containerd(source, "images", "import", "--base-name", ref, "--no-unpack", str(tmp_path / "image.tar"))

    developer = team.users["developer"]
    containerd(source, "images", "push", "--plain-http", "--user", creds(developer), f"{ref}:v1")
    assert served_digest(harbor, repo, "v1") == manifest
    for digest in blobs.keys() - {manifest}:
        assert harbor.exists(repo, blob=digest)

    robot = harbor.robot(team.private, ("pull",), level="project", name=unique("ctr"))
    containerd(pulled, "images", "pull", "--plain-http", "--user", creds(robot), "--snapshotter", "native",
               f"{ref}:v1")
    assert containerd(pulled, "images", "ls", "--quiet").split() == [f"{ref}:v1"]
    assert manifest in containerd(pulled, "images", "ls")
    assert containerd(pulled, "images", "check", "--quiet").split() == [f"{ref}:v1"]  # every blob is local
    assert containerd(pulled, "snapshots", "--snapshotter", "native", "ls").splitlines()[1:], "unpacked"

    # Refused at the upload session (a bodyless POST): ctr reports the registry's error.
    other = f"{auth_server.host}/{team.private}/{unique('ctr-refused')}"
    containerd(pulled, "images", "tag", f"{ref}:v1", f"{other}:v1")
    refused = containerd.run(pulled, "images", "push", "--plain-http", "--user", creds(robot), f"{other}:v1")
    assert refused.returncode != 0
    assert "insufficient_scope" in refused.stderr or "denied" in refused.stderr.lower(), refused.stderr
    assert not harbor.exists(other.split("/", 1)[1])
    # Refused at the manifest PUT (every blob is there already). ctr streams the body through a pipe, and
    # when the 401 comes back before the body is read it may report the closed pipe instead of the error.
    containerd(pulled, "images", "tag", f"{ref}:v1", f"{ref}:v2")
    refused = containerd.run(pulled, "images", "push", "--plain-http", "--user", creds(robot), f"{ref}:v2")
    assert refused.returncode != 0
    assert "insufficient_scope" in refused.stderr or "closed pipe" in refused.stderr, refused.stderr
    assert not harbor.exists(repo, tag="v2")
