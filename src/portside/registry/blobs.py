"""GET/HEAD/DELETE /v2/<name>/blobs/<digest>."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from portside.errors import BlobUnknown
from portside.oci.digest import Digest
from portside.services import Services


async def get_blob(request: Request, services: Services, name: str, reference: str) -> Response:
    digest = Digest.parse(reference)
    size = await services.blobs.size(name, digest)
    headers = {
        "Docker-Content-Digest": str(digest),
        "Accept-Ranges": "bytes",
        "ETag": f'"{digest}"',
        "Cache-Control": "max-age=31536000",
    }
    if request.method == "HEAD":
        headers["Content-Length"] = str(size)
        return Response(status_code=200, headers=headers, media_type="application/octet-stream")
    url = await services.blobs.redirect_url(digest)
    if url is not None:
        return RedirectResponse(url, status_code=307, headers={"Docker-Content-Digest": str(digest)})
    missing = BlobUnknown(f"blob {digest} is recorded in {name} but missing from storage")
    path = services.blobs.local_path(digest)
    if path is None:
        raise missing
    try:
        # Inline: a stat of a file the store just named costs microseconds, FileResponse's own
        # stat would cost a trip to a worker thread and back.
        stat = path.stat()
    except FileNotFoundError:
        raise missing from None
    return FileResponse(path, headers=headers, media_type="application/octet-stream", stat_result=stat)


async def delete_blob(request: Request, services: Services, name: str, reference: str) -> Response:
    await services.blobs.delete(name, Digest.parse(reference))
    return Response(status_code=202, headers={"Content-Length": "0"})
