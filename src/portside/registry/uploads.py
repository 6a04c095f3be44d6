"""Blob uploads: POST (start, monolithic, mount), PATCH (chunks), PUT (finish), GET (status), DELETE."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from portside.errors import UploadInvalid, UploadRangeInvalid
from portside.numbers import parse_int
from portside.oci.digest import Digest
from portside.oci.names import check_name
from portside.registry.authz import allowed
from portside.registry.errors import render
from portside.services import Services

_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


def _upload_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
        "Content-Length": "0",
    }


def _blob_created(name: str, digest: Digest) -> Response:
    return Response(
        status_code=201,
        headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": str(digest),
                 "Content-Length": "0"},
    )


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


def _chunk_start(request: Request) -> int | None:
    """The first byte a chunk claims to start at (from Content-Range), checked against its length."""
    raw = request.headers.get("content-range")
    if raw is None:
        return None
    match = _CONTENT_RANGE.match(raw.strip())
    if not match:
        raise UploadInvalid(f"Content-Range {raw!r} is not of the form <start>-<end>")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise UploadInvalid(f"Content-Range {raw!r} ends before it starts")
    length = request.headers.get("content-length")
    if length is not None and parse_int(length, low=0) not in (None, end - start + 1):
        raise UploadInvalid(f"Content-Range {raw!r} covers {end - start + 1} bytes but Content-Length is {length}")
    return start


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


async def _refuse_range(request: Request, name: str, upload_id: str, exc: UploadRangeInvalid) -> Response:
    """416 for a chunk at the wrong offset. Its body was never read: read it to the end first, or the
    server may drop the connection under a client that is about to reuse it for the next request."""
    async for _ in request.stream():
        pass
    return render(exc, _upload_headers(name, upload_id, exc.current_size))


async def start_upload(request: Request, services: Services, name: str, _: str) -> Response:
    q = request.query_params
    mount, source = q.get("mount"), q.get("from")
    if mount:
        digest = Digest.parse(mount)
        if (source and await allowed(request, services, check_name(source), "pull")
                and await services.blobs.mount(name, digest, source)):
            return _blob_created(name, digest)
    if q.get("digest"):
        digest = Digest.parse(q["digest"])
        await services.uploads.monolithic(name, digest, _body(request))
        return _blob_created(name, digest)
    upload_id = await services.uploads.start(name, q.get("digest-algorithm") or "sha256")
    return Response(status_code=202, headers=_upload_headers(name, upload_id, 0))


async def upload_status(request: Request, services: Services, name: str, upload_id: str) -> Response:
    size = await services.uploads.size(name, upload_id)
    return Response(status_code=204, headers=_upload_headers(name, upload_id, size))


async def patch_upload(request: Request, services: Services, name: str, upload_id: str) -> Response:
    try:
        start = _chunk_start(request)
        size = await services.uploads.append(name, upload_id, _body(request), start)
    except UploadRangeInvalid as exc:
        return await _refuse_range(request, name, upload_id, exc)
    return Response(status_code=202, headers=_upload_headers(name, upload_id, size))


async def finish_upload(request: Request, services: Services, name: str, upload_id: str) -> Response:
    raw = request.query_params.get("digest")
    if not raw:
        raise UploadInvalid("the closing PUT needs ?digest=<digest of the whole blob>")
    digest = Digest.parse(raw)
    body = _body(request) if _has_body(request) else None
    try:
        await services.uploads.finish(name, upload_id, digest, body, _chunk_start(request) if body else None)
    except UploadRangeInvalid as exc:
        return await _refuse_range(request, name, upload_id, exc)
    return _blob_created(name, digest)


async def cancel_upload(request: Request, services: Services, name: str, upload_id: str) -> Response:
    await services.uploads.cancel(name, upload_id)
    return Response(status_code=204)
