"""The /v2 dispatcher: split `<name>/<resource>/<arg>` off the path, pick the handler, map errors.

Names contain slashes, so one regular expression anchored at the end finds the resource; the name
is whatever precedes it and is then checked against the spec's grammar.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from portside.errors import PortsideError, Unauthorized
from portside.oci.names import check_name
from portside.registry import blobs, listings, manifests, uploads
from portside.registry.authz import authenticate, authorize, authorize_catalog, challenge, required_actions
from portside.registry.errors import API_VERSION_HEADER, error_response, render
from portside.services import Services

log = logging.getLogger("portside.registry")

Handler = Callable[[Request, Services, str, str], Awaitable[Response]]

_PATH = re.compile(
    r"^(?P<name>.+)/(?:"
    r"(?P<uploads>blobs/uploads)/(?P<upload>[^/]*)"
    r"|(?P<blobs>blobs)/(?P<digest>[^/]+)"
    r"|(?P<manifests>manifests)/(?P<reference>[^/]+)"
    r"|(?P<tags>tags/list)"
    r"|(?P<referrers>referrers)/(?P<subject>[^/]+)"
    r")$"
)

_HANDLERS: dict[str, dict[str, Handler]] = {
    "uploads": {"POST": uploads.start_upload, "GET": uploads.upload_status, "PATCH": uploads.patch_upload,
                "PUT": uploads.finish_upload, "DELETE": uploads.cancel_upload},
    "blobs": {"GET": blobs.get_blob, "HEAD": blobs.get_blob, "DELETE": blobs.delete_blob},
    "manifests": {"GET": manifests.get_manifest, "HEAD": manifests.get_manifest,
                  "PUT": manifests.put_manifest, "DELETE": manifests.delete_manifest},
    "tags": {"GET": listings.list_tags},
    "referrers": {"GET": listings.list_referrers},
}
_ARG = {"uploads": "upload", "blobs": "digest", "manifests": "reference", "tags": "tags", "referrers": "subject"}


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _guarded(request: Request, call: Callable[[], Awaitable[Response]]) -> Response:
    try:
        response = await call()
    except Unauthorized as exc:
        return render(exc, challenge(request, _services(request), exc))
    except PortsideError as exc:
        return render(exc)
    except ClientDisconnect:
        return Response(status_code=400)  # nobody is listening; the write was rolled back
    response.headers.update(API_VERSION_HEADER)
    return response


async def base(request: Request) -> Response:
    async def call() -> Response:
        services = _services(request)
        principal = await authenticate(request, services)
        if principal.is_anonymous:
            raise Unauthorized("authentication required")
        return JSONResponse({})

    return await _guarded(request, call)


async def catalog(request: Request) -> Response:
    async def call() -> Response:
        services = _services(request)
        await authorize_catalog(request, services)
        return await listings.catalog(request, services)

    return await _guarded(request, call)


async def dispatch(request: Request) -> Response:
    path = request.path_params["path"]
    match = _PATH.match(path)
    if match is None:
        return error_response("NAME_UNKNOWN", 404, f"no registry endpoint at /v2/{path}")
    resource = next(k for k in _HANDLERS if match.group(k) is not None)
    handler = _HANDLERS[resource].get(request.method)
    if handler is None:
        allowed = ", ".join(sorted(_HANDLERS[resource]))
        return error_response("UNSUPPORTED", 405, f"{request.method} is not supported here; use {allowed}",
                              headers={"Allow": allowed})
    name = match.group("name")
    arg = match.group(_ARG[resource]) or ""

    async def call() -> Response:
        check_name(name)
        services = _services(request)
        await authorize(request, services, name, required_actions(resource, request.method))
        return await handler(request, services, name, arg)

    return await _guarded(request, call)


ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]

routes = [
    Route("/v2/", base, methods=["GET", "HEAD"]),
    Route("/v2/_catalog", catalog, methods=["GET"]),
    Route("/v2/{path:path}", dispatch, methods=ALL_METHODS),
]
