"""skopeo (containers/image, the Go client behind podman/buildah) pushing to and pulling from Portside.

Every round trip starts from an OCI layout written by hand and ends in a layout skopeo wrote from the
registry; digests and bytes must come back unchanged.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.interop.conftest import Registry, Skopeo
from tests.interop.layouts import OCI_INDEX, OCI_MANIFEST, make_image, make_index, new_layout, read_layout

pytestmark = pytest.mark.interop

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def assert_same_layout(out: Path, tag: str, top_digest: str, expected: dict[str, bytes]) -> None:
    tags, blobs = read_layout(out)
    assert tags[tag]["digest"] == top_digest, f"{tag} came back as {tags[tag]['digest']}, pushed {top_digest}"
    assert sorted(blobs) == sorted(expected), "the layout that came back holds a different set of blobs"
    for digest, data in expected.items():
        assert blobs[digest] == data, f"blob {digest} changed on the way"


def test_image_roundtrip(registry: Registry, skopeo: Skopeo, umoci: str, repo: str, tmp_path: Path) -> None:
    """A 3-layer image: push, tag twice more, inspect, list tags, pull back byte-identical, unpack."""
    image = make_image("amd64", n_layers=3)
    src = new_layout(tmp_path / "src")
    src.add_image(image, "v1")

    digestfile = tmp_path / "pushed-digest"
    for tag in ("v1", "v2", "latest"):  # the 2nd and 3rd push find every blob already there
        skopeo.copy(src.ref("v1"), registry.docker_ref(repo, tag), "--digestfile", str(digestfile),
                    *registry.skopeo_args("dest"), registry=registry)
        assert digestfile.read_text().strip() == image.digest

    assert skopeo.inspect_raw(registry, repo, "v1") == image.manifest
    assert skopeo.inspect_raw(registry, repo, image.digest) == image.manifest
    info = skopeo.inspect(registry, repo, "v2")
    assert info["Digest"] == image.digest
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert info["Layers"] == [json.loads(image.manifest)["layers"][i]["digest"] for i in range(3)]
    assert info["Labels"] == json.loads(image.config)["config"]["Labels"]  # read from the config blob
    assert skopeo.list_tags(registry, repo) == ["latest", "v1", "v2"]

    out = tmp_path / "out"
    skopeo.copy(registry.docker_ref(repo, "v2"), f"oci:{out}:v2", *registry.skopeo_args("src"),
                registry=registry)
    assert_same_layout(out, "v2", image.digest, src.blobs)

    # umoci checks every layer against the config's diff_ids while unpacking.
    bundle = tmp_path / "bundle"
    proc = subprocess.run([umoci, "unpack", "--rootless", "--image", f"{out}:v2", str(bundle)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for path, data in image.files.items():  # later layers override etc/portside-release
        assert (bundle / "rootfs" / path).read_bytes() == data, path


def test_multi_arch_index_roundtrip(registry: Registry, skopeo: Skopeo, repo: str, tmp_path: Path) -> None:
    """An amd64+arm64 index with --all: the index, both manifests and every blob survive unchanged.

    Over TLS the copies also say --preserve-digests (skopeo then refuses any rewrite outright); over
    plain HTTP they do not, and the digests must come back the same regardless.
    """
    index = make_index(("amd64", "arm64"))
    src = new_layout(tmp_path / "src")
    src.add_index(index, "multi")
    flags = ["--all", *(["--preserve-digests"] if registry.tls else [])]

    skopeo.copy(src.ref("multi"), registry.docker_ref(repo, "multi"), *flags, *registry.skopeo_args("dest"),
                registry=registry)

    raw = skopeo.inspect_raw(registry, repo, "multi")
    assert raw == index.body
    assert json.loads(raw)["mediaType"] == OCI_INDEX
    for image in index.images:
        assert skopeo.inspect_raw(registry, repo, image.digest) == image.manifest
        # Platform selection through the index: the config skopeo resolves is this image's own.
        config = skopeo.run("--override-os", "linux", "--override-arch", image.arch, "inspect", "--config",
                            "--raw", *registry.skopeo_args(""), registry.docker_ref(repo, "multi"),
                            registry=registry).stdout.encode()
        assert config == image.config
    assert skopeo.list_tags(registry, repo) == ["multi"]

    out = tmp_path / "out"
    skopeo.copy(registry.docker_ref(repo, "multi"), f"oci:{out}:multi", *flags, *registry.skopeo_args("src"),
                registry=registry)
    assert_same_layout(out, "multi", index.digest, src.blobs)


def test_copy_between_repositories_mounts_blobs(registry: Registry, skopeo: Skopeo, repo: str,
                                                tmp_path: Path) -> None:
    """registry -> registry between two repositories: skopeo mounts every blob instead of uploading it."""
    index = make_index(("amd64", "arm64"))
    src = new_layout(tmp_path / "src")
    src.add_index(index, "1.0")
    skopeo.copy(src.ref("1.0"), registry.docker_ref(repo, "1.0"), "--all", *registry.skopeo_args("dest"),
                registry=registry)

    target = f"{repo}-copy"
    debug = skopeo.run("--debug", "copy", "--all", "--preserve-digests", *registry.skopeo_args("src"),
                       *registry.skopeo_args("dest"), registry.docker_ref(repo, "1.0"),
                       registry.docker_ref(target, "1.0"), registry=registry).stderr

    assert skopeo.inspect_raw(registry, target, "1.0") == index.body
    for image in index.images:
        assert skopeo.inspect_raw(registry, target, image.digest) == image.manifest
    out = tmp_path / "out"
    skopeo.copy(registry.docker_ref(target, "1.0"), f"oci:{out}:1.0", "--all", *registry.skopeo_args("src"),
                registry=registry)
    assert_same_layout(out, "1.0", index.digest, src.blobs)

    # containers/image asks for a mount (POST ?mount=&from=) for each layer its blob-info cache places in
    # the source repository, and uploads the rest; config blobs it always uploads. Which layers its cache
    # knows is the client's business (it is shared and sometimes misses one), so the server is held to
    # what skopeo actually asked: every mount it tried must succeed as a single POST answered 201.
    attempts = debug.count('msg="Trying to mount ')
    successes = debug.count('msg="... mount OK"')
    uploads = f"/v2/{target}/blobs/uploads/"
    log = [e for e in registry.access_log() if e["path"].startswith(uploads)]
    mounts = [e for e in log if e["method"] == "POST" and e["status"] == 201]
    sessions = [e for e in log if e["method"] == "POST" and e["status"] == 202]
    layers = {layer["digest"] for image in index.images for layer in json.loads(image.manifest)["layers"]}
    client_view = "\n".join(line for line in debug.splitlines() if "mount" in line.lower())
    detail = f"server saw {[(e['method'], e['status']) for e in log]}; skopeo said:\n{client_view}"
    assert attempts >= 1, "skopeo tried no cross-repository mount at all; " + detail
    assert successes == attempts, detail
    assert len(mounts) == successes, detail
    assert len(sessions) <= len(layers) - successes + len(index.images), detail
    assert all(e["status"] in (201, 202) for e in log), detail


def test_docker_schema2_conversion(registry: Registry, skopeo: Skopeo, repo: str, tmp_path: Path) -> None:
    """skopeo --format v2s2 pushes Docker media types (image and manifest list); Portside keeps them."""
    image = make_image("amd64", n_layers=2)
    index = make_index(("amd64", "arm64"))
    src = new_layout(tmp_path / "src")
    src.add_image(image, "oci")
    src.add_index(index, "oci-index")
    skopeo.copy(src.ref("oci"), registry.docker_ref(repo, "docker"), "--format", "v2s2",
                *registry.skopeo_args("dest"), registry=registry)

    raw = skopeo.inspect_raw(registry, repo, "docker")
    manifest = json.loads(raw)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == DOCKER_CONFIG
    assert [layer["mediaType"] for layer in manifest["layers"]] == [DOCKER_LAYER] * 2
    assert [layer["digest"] for layer in manifest["layers"]] == [
        layer["digest"] for layer in json.loads(image.manifest)["layers"]
    ]
    with registry.http() as http:
        r = http.get(f"/v2/{repo}/manifests/docker", headers={"Accept": DOCKER_MANIFEST})
        assert r.status_code == 200 and r.content == raw
        assert r.headers["content-type"] == DOCKER_MANIFEST
        # A client that only takes OCI manifests is not handed a Docker one.
        r = http.get(f"/v2/{repo}/manifests/docker", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 404, r.text
    info = skopeo.inspect(registry, repo, "docker")
    assert info["Architecture"] == "amd64"

    skopeo.copy(src.ref("oci-index"), registry.docker_ref(repo, "list"), "--all", "--format", "v2s2",
                *registry.skopeo_args("dest"), registry=registry)
    listing = json.loads(skopeo.inspect_raw(registry, repo, "list"))
    assert listing["mediaType"] == DOCKER_LIST
    assert [(m["mediaType"], m["platform"]["architecture"]) for m in listing["manifests"]] == [
        (DOCKER_MANIFEST, "amd64"), (DOCKER_MANIFEST, "arm64")]
    for image_in_list in index.images:
        config = skopeo.run("--override-arch", image_in_list.arch, "inspect", "--config", "--raw",
                            *registry.skopeo_args(""), registry.docker_ref(repo, "list"), registry=registry)
        assert config.stdout.encode() == image_in_list.config

    # skopeo delete resolves the tag and deletes the manifest by digest; the tag goes with it.
    skopeo.run("delete", *registry.skopeo_args(""), registry.docker_ref(repo, "docker"), registry=registry)
    gone = skopeo.run("inspect", "--raw", *registry.skopeo_args(""), registry.docker_ref(repo, "docker"),
                      check=False)
    assert gone.returncode != 0 and "manifest unknown" in gone.stderr, gone.stderr
    assert skopeo.list_tags(registry, repo) == ["list"]


def test_skopeo_refuses_tls_without_the_root(tls_registry: Registry, skopeo: Skopeo, repo: str) -> None:
    """Without --cert-dir the chain does not verify: trust really comes from our root CA alone."""
    proc = skopeo.run("list-tags", tls_registry.docker_ref(repo), check=False)
    assert proc.returncode != 0
    assert "certificate signed by unknown authority" in proc.stderr or "x509" in proc.stderr, proc.stderr
