"""Parse and check manifest bodies: OCI image manifest and index, Docker schema 2 and manifest list.

`parse_manifest` takes the raw bytes and the request's Content-Type and returns what the registry needs
to store and cross-check: the blobs and child manifests it references, its subject, and the
artifactType the referrers API reports. Existence checks (I/O) belong to the caller.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from portside.errors import InvalidDigest, ManifestInvalid
from portside.oci import mediatypes as mt
from portside.oci.digest import Digest


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    config: Descriptor | None
    blobs: tuple[Descriptor, ...]  # config and layers that must exist in the repository
    children: tuple[Descriptor, ...]  # manifests an index lists
    subject: Descriptor | None
    artifact_type: str | None  # as the referrers API reports it
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES


def strip_parameters(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    declared = strip_parameters(content_type)
    if declared in mt.SCHEMA1:
        raise _schema1()
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestInvalid(f"manifest is not valid JSON: {exc}") from None
    except RecursionError:  # the decoder's nesting limit: no manifest nests anywhere near it
        raise ManifestInvalid("manifest JSON is nested too deeply") from None
    if not isinstance(doc, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    if doc.get("schemaVersion") == 1:
        raise _schema1()
    if doc.get("schemaVersion") != 2:
        raise ManifestInvalid("manifest schemaVersion must be 2")

    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise ManifestInvalid("manifest mediaType must be a string")
    media_type = _resolve_media_type(declared, body_type, doc)

    annotations = _annotations(doc.get("annotations"), "manifest annotations")
    subject = _descriptor(doc["subject"], "subject") if doc.get("subject") is not None else None
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid("artifactType must be a string")

    if media_type in mt.INDEXES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise ManifestInvalid("an index must have a 'manifests' array")
        children = tuple(_descriptor(e, f"manifests[{i}]") for i, e in enumerate(entries))
        return ParsedManifest(media_type, None, (), children, subject, artifact_type or None, annotations)

    config = _descriptor(doc.get("config"), "config")
    layers_doc = doc.get("layers", [])  # required by the spec, but an absent list means no layers
    if not isinstance(layers_doc, list):
        raise ManifestInvalid("an image manifest must have a 'layers' array")
    layers = tuple(_descriptor(e, f"layers[{i}]") for i, e in enumerate(layers_doc))
    # Foreign (non-distributable) layers live elsewhere, named by their urls.
    required = (config, *(d for d in layers if not (d.urls and d.media_type == mt.DOCKER_FOREIGN_LAYER)))
    return ParsedManifest(
        media_type, config, required, (), subject, artifact_type or config.media_type, annotations
    )


def _schema1() -> ManifestInvalid:
    return ManifestInvalid(
        "Docker schema 1 manifests are not supported: push with a client that writes "
        "schema 2 or OCI manifests (any docker since 1.10, podman, skopeo, crane)"
    )


def _resolve_media_type(declared: str, body_type: str | None, doc: dict[str, Any]) -> str:
    if declared in mt.MANIFESTS:
        if body_type is not None and body_type != declared:
            raise ManifestInvalid(
                f"Content-Type {declared!r} does not match the manifest's mediaType {body_type!r}"
            )
        return declared
    if body_type in mt.SCHEMA1:
        raise _schema1()
    if declared in ("", "application/json", "application/octet-stream") and body_type in mt.MANIFESTS:
        return body_type
    if not declared and body_type is None:
        # No declared type anywhere: infer from shape, as Distribution does for OCI content.
        return mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
    shown = declared or body_type
    raise ManifestInvalid(
        f"unsupported manifest media type {shown!r}: expected one of {sorted(mt.MANIFESTS)}"
    )


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{where} must be a descriptor object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestInvalid(f"{where}.mediaType must be a non-empty string")
    digest = value.get("digest")
    if not isinstance(digest, str):
        raise ManifestInvalid(f"{where}.digest must be a string")
    try:
        parsed = Digest.parse(digest)
    except InvalidDigest as exc:
        raise ManifestInvalid(f"{where}.digest: {exc.message}") from None
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid(f"{where}.size must be a non-negative integer")
    urls = value.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ManifestInvalid(f"{where}.urls must be an array of strings")
    artifact_type = value.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid(f"{where}.artifactType must be a string")
    annotations = _annotations(value.get("annotations"), f"{where}.annotations")
    return Descriptor(media_type, str(parsed), size, artifact_type, annotations or None, tuple(urls))


def _annotations(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ManifestInvalid(f"{where} must map strings to strings")
    return value
