"""A tiny, deliberately plain OCI client for tests: push blobs and manifests with httpx."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    digest = sha256(data)
    r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data,
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return digest


def push_manifest(client: httpx.Client, repo: str, ref: str, manifest: dict[str, Any] | bytes,
                  media_type: str = OCI_MANIFEST) -> httpx.Response:
    body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    return client.put(f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": media_type})


@dataclass
class Image:
    config: bytes
    layers: list[bytes]
    manifest: dict[str, Any]

    @property
    def body(self) -> bytes:
        return json.dumps(self.manifest).encode()

    @property
    def digest(self) -> str:
        return sha256(self.body)


def make_image(n_layers: int = 2, layer_size: int = 1024, **manifest_extra: Any) -> Image:
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                         "salt": os.urandom(8).hex()}).encode()
    layers = [os.urandom(layer_size) for _ in range(n_layers)]
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
        **manifest_extra,
    }
    return Image(config, layers, manifest)


def push_image(client: httpx.Client, repo: str, ref: str, image: Image | None = None) -> Image:
    image = image or make_image()
    push_blob(client, repo, image.config)
    for layer in image.layers:
        push_blob(client, repo, layer)
    r = push_manifest(client, repo, ref, image.body)
    assert r.status_code == 201, r.text
    return image
