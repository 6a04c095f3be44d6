"""The composition root: the only module that knows every concrete class."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from portside.api.guard import BodyGuard
from portside.audit.recorder import AuditRecorder
from portside.auth.access import AccessService
from portside.auth.sessions import SESSION_KEY_SETTING, SessionService, generate_session_key
from portside.auth.throttle import LoginThrottle
from portside.auth.tokens import KEY_SETTING, TokenService
from portside.config import Settings
from portside.content.artifacts import ArtifactService
from portside.content.blobs import BlobService
from portside.content.copy import ArtifactCopier
from portside.content.listing import ListingService
from portside.content.manifests import ManifestService, flush_pulls_forever
from portside.content.uploads import UploadService
from portside.jobs.queue import JobQueue
from portside.jobs.scheduler import Scheduler
from portside.jobs.worker import Handler, Worker
from portside.lifecycle.gc import GarbageCollector
from portside.lifecycle.gc_jobs import GC_TASK, GC_VENDOR, gc_handler, gc_launcher
from portside.lifecycle.immutability import ImmutabilityService
from portside.lifecycle.quotas import QuotaService
from portside.lifecycle.retention_jobs import (
    RETENTION_TASK,
    RETENTION_VENDOR,
    RetentionRunner,
    retention_handler,
    retention_launcher,
)
from portside.lifecycle.retention_service import RetentionService
from portside.logs import AccessLogMiddleware, configure_logging
from portside.management.labels import LabelService
from portside.management.members import MemberService
from portside.management.projects import ProjectService
from portside.management.robots import RobotService
from portside.management.users import UserService
from portside.metadata.accounts import AccountQueries
from portside.metadata.artifacts import ArtifactQueries
from portside.metadata.audit import AuditQueries
from portside.metadata.changes import ChangeCounter, listen_for_changes
from portside.metadata.database import Database
from portside.metadata.labels import LabelQueries
from portside.metadata.projects import ProjectQueries
from portside.metadata.queries import RegistryQueries
from portside.metadata.retention import RetentionQueries
from portside.metadata.statistics import StatisticsQueries
from portside.registry.routing import routes as registry_routes
from portside.registry.token import token
from portside.services import Services
from portside.storage.filesystem import FilesystemBlobStore


async def load_signing(settings: Settings, accounts: AccountQueries) -> tuple[TokenService, SessionService] | None:
    """The registry token signer and the portal session signer, each with its own key (None in open
    mode, where nothing is signed)."""
    if settings.open_registry:
        return None
    if settings.auth.token_key_file is not None:
        pem = settings.auth.token_key_file.read_text()
    else:
        pem = await accounts.get_setting(KEY_SETTING) or ""
        if not pem:
            raise RuntimeError("no token signing key: start through `portside serve`, which creates one")
    # `portside serve` creates it; a `portside worker` started on an older database makes it here.
    session_key = (await accounts.get_setting(SESSION_KEY_SETTING)
                   or await accounts.put_setting_once(SESSION_KEY_SETTING, generate_session_key()))
    return (TokenService(pem, service=settings.auth.service, ttl_seconds=settings.auth.token_ttl_seconds),
            SessionService(session_key, ttl_seconds=settings.auth.session_ttl_seconds))


def database_for(settings: Settings) -> Database:
    """The metadata database, with the change counter every process on this host shares."""
    changes = ChangeCounter(settings.data_dir.absolute() / ".portside-changes")
    return Database(settings.database_url, pool_size=settings.database.pool_size, changes=changes)


def build_services(settings: Settings) -> Services:
    db = database_for(settings)
    store = FilesystemBlobStore(settings.storage_root)
    jobs = JobQueue(db, stale_after=settings.jobs.stale_seconds)
    queries = RegistryQueries(db)
    accounts, projects = AccountQueries(db), ProjectQueries(db)
    quotas = QuotaService(db)
    immutability, retention_queries = ImmutabilityService(db), RetentionQueries(db)
    scheduler = Scheduler(db, {GC_VENDOR: gc_launcher(jobs),
                               RETENTION_VENDOR: retention_launcher(jobs, retention_queries)})
    return Services(
        settings=settings,
        db=db,
        store=store,
        blobs=BlobService(store, queries, quotas),
        uploads=UploadService(store, queries, quotas),
        manifests=ManifestService(store, queries, max_size=settings.registry.max_manifest_bytes,
                                  immutability=immutability, quotas=quotas),
        listing=ListingService(queries, max_page=settings.registry.max_list_page),
        accounts=accounts,
        projects=projects,
        access=AccessService(accounts, projects, None, LoginThrottle()),
        tokens=None,  # loaded from the database in the lifespan
        sessions=None,
        audit=AuditRecorder(db, retention_days=settings.audit.retention_days, log_pulls=settings.audit.log_pulls),
        project_admin=ProjectService(db, projects),
        user_admin=UserService(db, accounts),
        robot_admin=RobotService(db, accounts, projects),
        member_admin=MemberService(db, projects, accounts),
        audit_log=AuditQueries(db),
        statistics=StatisticsQueries(db),
        artifacts=ArtifactService(ArtifactQueries(db), store, immutability=immutability),
        jobs=jobs,
        scheduler=scheduler,
        gc=GarbageCollector(db, store),
        quotas=quotas,
        immutability=immutability,
        retention=RetentionService(db, retention_queries, projects, jobs, scheduler),
        retention_runner=RetentionRunner(db, retention_queries, immutability),
        labels=LabelService(db, LabelQueries(db)),
        copier=ArtifactCopier(queries, ArtifactQueries(db), quotas=quotas, immutability=immutability),
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


def job_handlers(services: Services) -> dict[str, Handler]:
    """Every kind of task this process can run, by name."""
    return {GC_TASK: gc_handler(services.gc), RETENTION_TASK: retention_handler(services.retention_runner)}


def build_worker(services: Services) -> Worker:
    jobs = services.settings.jobs
    return Worker(services.jobs, job_handlers(services), jobs.max_concurrent, poll_seconds=jobs.poll_seconds)


class BuiltOnFirstUse:
    """An ASGI app made on its first request, off the event loop. The management API's FastAPI
    and pydantic models cost each worker about a second of start-up and ~15 MiB that a worker
    serving only /v2 traffic (most of them, most of the time) never needs."""

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self._build = build
        self._app: ASGIApp | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            async with self._lock:
                if self._app is None:
                    self._app = await asyncio.to_thread(self._build)
        await self._app(scope, receive, send)


def management_api(services: Services) -> ASGIApp:
    from portside.api.app import build_api

    return build_api(services)


def portal_session_api(services: Services) -> ASGIApp:
    from portside.api.app import build_portal_session_api

    return build_portal_session_api(services)


def create_app(settings: Settings) -> Starlette:
    services = build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        signing = await load_signing(settings, services.accounts)
        if signing is not None:
            services.tokens, services.sessions = signing
            services.access.tokens = services.tokens
        background = [
            asyncio.create_task(flush_pulls_forever(services.manifests, settings.registry.pull_flush_seconds)),
            asyncio.create_task(services.audit.run(settings.audit.flush_seconds)),
        ]
        listen = services.db.listen_url()
        if listen is not None:
            background.append(asyncio.create_task(listen_for_changes(listen, services.db.changes)))
        if settings.jobs.run_in_server:
            background += [
                asyncio.create_task(build_worker(services).run()),
                asyncio.create_task(services.scheduler.run(settings.jobs.poll_seconds)),
            ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            await services.manifests.flush_pulls()
            await services.audit.flush()
            await services.db.close()

    middleware = [Middleware(AccessLogMiddleware)] if settings.log.access_log else []
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/service/token", token, methods=["GET", "POST"]),
            Mount("/api/v2.0", app=BodyGuard(BuiltOnFirstUse(lambda: management_api(services)), services,
                                             require_sign_in=True)),
            Mount("/c", app=BodyGuard(BuiltOnFirstUse(lambda: portal_session_api(services)), services,
                                      require_sign_in=False)),  # the sign-in form: capped only
            *registry_routes,
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.services = services
    return app


def app_from_environment() -> Starlette:
    """Entry point for server worker processes: settings arrive as JSON from the parent process."""
    settings = Settings.for_this_worker()
    configure_logging(settings.log)
    return create_app(settings)
