"""GET/HEAD/PUT/DELETE /v2/<name>/manifests/<reference>."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from portside.audit.recorder import AuditEvent
from portside.clientinfo import client_ip
from portside.errors import ManifestNotAcceptable, TooLarge
from portside.numbers import parse_int
from portside.oci import mediatypes as mt
from portside.oci.manifest import strip_parameters
from portside.services import Services


def _acceptable(accept_headers: list[str], media_type: str) -> bool:
    """True unless the client listed manifest types and this one is not among them."""
    offered = {strip_parameters(part) for header in accept_headers for part in header.split(",")}
    offered.discard("")
    if not offered or media_type in offered:
        return True
    if offered & {"*/*", "application/*", "application/json"}:
        return True
    # A client that names no manifest type at all is not negotiating manifests.
    return not (offered & (mt.MANIFESTS | mt.SCHEMA1))


async def get_manifest(request: Request, services: Services, name: str, reference: str) -> Response:
    found = await services.manifests.get(name, reference)
    if not _acceptable(request.headers.getlist("accept"), found.media_type):
        raise ManifestNotAcceptable(
            f"manifest {reference} is {found.media_type}, which the request's Accept header does not list"
        )
    headers = {"Docker-Content-Digest": found.digest, "ETag": f'"{found.digest}"'}
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(found.content))
        return Response(status_code=200, headers=headers, media_type=found.media_type)
    services.manifests.record_pull(found.id)
    _audit(request, services, "pull", f"{name}:{reference}" if ":" not in reference else f"{name}@{reference}")
    return Response(found.content, status_code=200, headers=headers, media_type=found.media_type)


async def put_manifest(request: Request, services: Services, name: str, reference: str) -> Response:
    limit = services.manifests.max_size
    declared = request.headers.get("content-length")
    size = parse_int(declared, low=0) if declared else None
    if size is not None and size > limit:
        raise TooLarge(f"manifest is {declared} bytes; the limit is {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"manifest is over the {limit}-byte limit")
    result = await services.manifests.put(
        name, reference, bytes(body), request.headers.get("content-type"),
        tuple(request.query_params.getlist("tag")),
    )
    for tag in result.tags or ("",):
        _audit(request, services, "create", f"{name}:{tag}" if tag else f"{name}@{result.digest}")
    headers = {
        "Location": f"/v2/{name}/manifests/{result.digest}",
        "Docker-Content-Digest": result.digest,
        "Content-Length": "0",
    }
    if result.subject:
        headers["OCI-Subject"] = result.subject
    response = Response(status_code=201, headers=headers)
    if request.query_params.getlist("tag"):
        response.headers["OCI-Tag"] = ", ".join(result.tags)
    return response


async def delete_manifest(request: Request, services: Services, name: str, reference: str) -> Response:
    await services.manifests.delete(name, reference)
    _audit(request, services, "delete", f"{name}@{reference}" if ":" in reference else f"{name}:{reference}")
    return Response(status_code=202, headers={"Content-Length": "0"})


def _audit(request: Request, services: Services, operation: str, resource: str) -> None:
    principal = getattr(request.state, "principal", None)
    services.audit.record(AuditEvent(
        operation, "artifact", resource, principal.name if principal else "anonymous",
        client_ip=client_ip(request),
    ))
