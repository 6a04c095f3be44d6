"""Hand-written OCI image layouts (oci-layout, index.json, blobs/sha256/...) for skopeo's `oci:` transport.

Images are real: layers are gzip'd tar files, configs carry the layers' diff_ids, an index carries a
platform per manifest. `Layout.blobs` remembers every blob written, so a copy that went through the
registry and came back can be compared byte for byte.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.oci_client import sha256

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "2024-01-01T00:00:00Z"



def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def make_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar holding `files` (directories implied by paths are added first)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(p).parent) for p in files} - {"."})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tar.addfile(info)
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Image:
    """One image manifest and what it points at."""

    manifest: bytes
    config: bytes
    layers: list[bytes]  # gzip'd, as stored
    files: dict[str, bytes]  # what unpacking all layers in order must produce
    arch: str

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": OCI_MANIFEST, "digest": self.digest, "size": len(self.manifest), **extra}


def make_image(arch: str = "amd64", n_layers: int = 3, salt: str | None = None) -> Image:
    """A linux/<arch> image with `n_layers` real tar+gzip layers; later layers add and override files."""
    salt = salt or os.urandom(6).hex()
    layers: list[bytes] = []
    diff_ids: list[str] = []
    history: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    for i in range(n_layers):
        content = {
            f"layer{i}/hello.txt": f"layer {i} of {arch} image {salt}\n".encode(),
            f"layer{i}/noise.bin": os.urandom(2048 + 512 * i),
            "etc/portside-release": f"{arch} {salt} layer {i}\n".encode(),  # overridden by each layer
        }
        tar = make_tar(content)
        files.update(content)
        diff_ids.append(sha256(tar))
        layers.append(gzip.compress(tar, mtime=0))
        history.append({"created": CREATED, "created_by": f"portside interop layer {i}"})
    config = canonical_json({
        "created": CREATED,
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/",
                   "Labels": {"org.example.salt": salt}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    })
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": sha256(b), "size": len(b)} for b in layers],
        "annotations": {"org.opencontainers.image.created": CREATED},
    }, indent=3).encode()  # deliberately not canonical: the registry must keep the bytes it was given
    return Image(manifest, config, layers, files, arch)


@dataclass
class Index:
    body: bytes
    images: list[Image]

    @property
    def digest(self) -> str:
        return sha256(self.body)


def make_index(arches: tuple[str, ...] = ("amd64", "arm64")) -> Index:
    images = [make_image(arch, n_layers=2) for arch in arches]
    body = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [img.descriptor(platform={"architecture": img.arch, "os": "linux"}) for img in images],
        "annotations": {"org.opencontainers.image.created": CREATED},
    }, indent=2).encode()
    return Index(body, images)


@dataclass
class Layout:
    """An OCI image layout directory; `blobs` is every blob we wrote, by digest."""

    path: Path
    blobs: dict[str, bytes] = field(default_factory=dict)

    def ref(self, tag: str) -> str:
        return f"oci:{self.path}:{tag}"

    def _put(self, data: bytes) -> str:
        digest = sha256(data)
        target = self.path / "blobs" / "sha256" / digest.split(":", 1)[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self.blobs[digest] = data
        return digest

    def _tag(self, descriptor: dict[str, Any], tag: str) -> None:
        index_path = self.path / "index.json"
        index = json.loads(index_path.read_text())
        index["manifests"].append({**descriptor, "annotations": {REF_NAME: tag}})
        index_path.write_text(json.dumps(index))

    def add_image(self, image: Image, tag: str | None = None) -> None:
        self._put(image.config)
        for layer in image.layers:
            self._put(layer)
        self._put(image.manifest)
        if tag:
            self._tag(image.descriptor(), tag)

    def add_index(self, index: Index, tag: str) -> None:
        for image in index.images:
            self.add_image(image)
        self._put(index.body)
        self._tag({"mediaType": OCI_INDEX, "digest": index.digest, "size": len(index.body)}, tag)


def new_layout(path: Path) -> Layout:
    path.mkdir(parents=True)
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    (path / "index.json").write_text(json.dumps(index))
    return Layout(path)


def read_layout(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, bytes]]:
    """A layout written by someone else: (tag -> descriptor from index.json, digest -> blob bytes)."""
    assert json.loads((path / "oci-layout").read_text())["imageLayoutVersion"] == "1.0.0"
    index = json.loads((path / "index.json").read_text())
    tags = {d["annotations"][REF_NAME]: d for d in index["manifests"] if REF_NAME in d.get("annotations", {})}
    blobs = {}
    for algo_dir in (path / "blobs").iterdir():
        for blob in algo_dir.iterdir():
            data = blob.read_bytes()
            digest = f"{algo_dir.name}:{blob.name}"
            assert sha256(data) == digest, f"{blob} does not hash to its name"
            blobs[digest] = data
    return tags, blobs
