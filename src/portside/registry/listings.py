"""GET /v2/<name>/tags/list, GET /v2/_catalog and GET /v2/<name>/referrers/<digest>."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portside.oci import mediatypes as mt
from portside.oci.digest import Digest
from portside.registry.pagination import link_header, page_params
from portside.services import Services


async def list_tags(request: Request, services: Services, name: str, _: str) -> Response:
    n, last = page_params(request)
    page = await services.listing.tags(name, n, last)  # n=0 still checks that the repository exists
    return JSONResponse({"name": name, "tags": page.items}, headers=link_header(request.url.path, page, n))


async def catalog(request: Request, services: Services) -> Response:
    """Every repository: only system administrators get here (authz.authorize_catalog)."""
    n, last = page_params(request)
    if n == 0:
        return JSONResponse({"repositories": []})
    page = await services.listing.repositories(n, last)
    return JSONResponse({"repositories": page.items}, headers=link_header(request.url.path, page, n))


async def list_referrers(request: Request, services: Services, name: str, reference: str) -> Response:
    subject = Digest.parse(reference)
    artifact_type = request.query_params.get("artifactType") or None
    rows = await services.listing.referrers(name, subject, artifact_type)
    descriptors: list[dict[str, Any]] = []
    for row in rows:
        d: dict[str, Any] = {"mediaType": row.media_type, "digest": row.digest, "size": row.size}
        if row.artifact_type:
            d["artifactType"] = row.artifact_type
        if row.annotations:
            d["annotations"] = row.annotations
        descriptors.append(d)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return JSONResponse(
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors},
        headers=headers, media_type=mt.OCI_INDEX,
    )
