"""The composition root: the only module that knows every concrete class."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from portside.config import Settings
from portside.content.blobs import BlobService
from portside.content.listing import ListingService
from portside.content.manifests import ManifestService, flush_pulls_forever
from portside.content.uploads import UploadService
from portside.logs import AccessLogMiddleware, configure_logging
from portside.metadata.database import Database
from portside.metadata.queries import RegistryQueries
from portside.registry.routing import routes as registry_routes
from portside.services import Services
from portside.storage.filesystem import FilesystemBlobStore

SETTINGS_ENV = "PORTSIDE_INTERNAL_SETTINGS_JSON"


def build_services(settings: Settings) -> Services:
    db = Database(settings.database_url, pool_size=settings.database.pool_size)
    store = FilesystemBlobStore(settings.storage_root)
    queries = RegistryQueries(db)
    return Services(
        settings=settings,
        db=db,
        store=store,
        blobs=BlobService(store, queries),
        uploads=UploadService(store, queries),
        manifests=ManifestService(store, queries, max_size=settings.registry.max_manifest_bytes),
        listing=ListingService(queries, max_page=settings.registry.max_list_page),
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    problems = []
    try:
        await services.db.ping()
    except Exception as exc:
        problems.append(f"database: {type(exc).__name__}")
    if not os.access(services.settings.storage_root, os.W_OK):
        problems.append("storage: not writable")
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})


def create_app(settings: Settings) -> Starlette:
    services = build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        flusher = asyncio.create_task(
            flush_pulls_forever(services.manifests, settings.registry.pull_flush_seconds)
        )
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(BaseException):
                await flusher
            await services.manifests.flush_pulls()
            await services.db.close()

    middleware = [Middleware(AccessLogMiddleware)] if settings.log.access_log else []
    app = Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz), *registry_routes],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.services = services
    return app


def app_from_environment() -> Starlette:
    """Entry point for server worker processes: settings arrive as JSON from the parent process."""
    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    configure_logging(settings.log)
    return create_app(settings)
