"""The composition root: the only module that knows every concrete class."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from importlib import import_module

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
from portside.features import Background, Feature, ServiceBuilder
from portside.jobs.queue import JobQueue
from portside.jobs.scheduler import Scheduler
from portside.jobs.worker import Handler, Worker
from portside.lifecycle.feature import GC, IMMUTABILITY, QUOTAS, RETENTION
from portside.lifecycle.immutability import ImmutabilityService
from portside.lifecycle.quotas import QuotaService
from portside.logs import AccessLogMiddleware, configure_logging
from portside.management.audit_log import AuditLogService
from portside.management.feature import LABELS
from portside.management.members import MemberService
from portside.management.projects import ProjectService
from portside.management.robots import RobotService
from portside.management.system import SystemService
from portside.management.users import UserService
from portside.metadata.accounts import AccountQueries
from portside.metadata.artifacts import ArtifactQueries
from portside.metadata.audit import AuditQueries
from portside.metadata.changes import ChangeCounter, listen_for_changes
from portside.metadata.database import Database
from portside.metadata.projects import ProjectQueries
from portside.metadata.queries import RegistryQueries
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


def _install_registry(b: ServiceBuilder) -> None:
    """The registry itself: content, accounts and access, projects, users, robots, members, the audit log."""
    db, store, settings = b.db, b.store, b.settings
    queries = RegistryQueries(db)
    accounts, projects = AccountQueries(db), ProjectQueries(db)
    quotas, immutability = b.get("quotas", QuotaService), b.get("immutability", ImmutabilityService)
    b.add("blobs", BlobService(store, queries, quotas))
    b.add("uploads", UploadService(store, queries, quotas))
    b.add("manifests", ManifestService(store, queries, max_size=settings.registry.max_manifest_bytes,
                                       immutability=immutability, quotas=quotas))
    b.add("listing", ListingService(queries, max_page=settings.registry.max_list_page))
    b.add("accounts", accounts)
    b.add("projects", projects)
    b.add("access", AccessService(accounts, projects, b.tokens, LoginThrottle()))
    b.add("audit", AuditRecorder(db, retention_days=settings.audit.retention_days,
                                 log_pulls=settings.audit.log_pulls))
    project_admin = ProjectService(db, projects)
    b.add("project_admin", project_admin)
    b.add("user_admin", UserService(db, accounts))
    b.add("robot_admin", RobotService(db, accounts, projects))
    b.add("member_admin", MemberService(db, projects, accounts))
    b.add("audit_log", AuditLogService(db, AuditQueries(db), projects, b.get("access", AccessService)))
    b.add("system", SystemService(db, StatisticsQueries(db), project_admin))
    b.add("artifacts", ArtifactService(ArtifactQueries(db), store, immutability=immutability))
    b.add("copier", ArtifactCopier(queries, ArtifactQueries(db), quotas=quotas, immutability=immutability))


def _registry_background(services: Services) -> list[Background]:
    settings = services.settings
    tasks = [flush_pulls_forever(services.manifests, settings.registry.pull_flush_seconds),
             services.audit.run(settings.audit.flush_seconds)]
    listen = services.db.listen_url()
    if listen is not None:
        tasks.append(listen_for_changes(listen, services.db.changes))
    return tasks


# How long a stop waits for cancelled background tasks (flushers, job workers, the scheduler).
BACKGROUND_STOP_SECONDS = 10

REGISTRY = Feature(
    "registry",
    install=_install_registry,
    routers=tuple(f"portside.api.{name}" for name in (
        "artifact_extras",  # before artifacts, whose repository routes take the rest of the path
        "projects", "artifacts", "members", "robots", "users", "audit", "system", "ping", "repositories",
        "metadatas", "permissions", "project_artifacts")),
    background=_registry_background,
)

# Every feature of this build, in order: a feature may use the services of those before it, and its
# /api/v2.0 routes are matched before those of the features after it.
FEATURES: tuple[Feature, ...] = (QUOTAS, IMMUTABILITY, LABELS, REGISTRY, GC, RETENTION)


async def build(settings: Settings, features: tuple[Feature, ...] = FEATURES, *, signing: bool = True) -> Services:
    """Load the signing keys, then make every feature's services once. `signing=False` is for the
    commands that sign nothing (the CLI, first-start bootstrap): no keys are read or needed."""
    db = database_for(settings)
    try:
        keys = await load_signing(settings, AccountQueries(db)) if signing else None
    except BaseException:
        await db.close()
        raise
    tokens, sessions = keys if keys is not None else (None, None)
    jobs = JobQueue(db, stale_after=settings.jobs.stale_seconds)
    builder = ServiceBuilder(settings, db, FilesystemBlobStore(settings.storage_root), jobs, tokens, sessions)
    builder.add("scheduler", Scheduler(db, {vendor: launch for feature in features
                                            for vendor, launch in feature.launchers(builder).items()}))
    for feature in features:
        feature.install(builder)
    return builder.freeze()


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


def job_handlers(services: Services, features: tuple[Feature, ...] = FEATURES) -> dict[str, Handler]:
    """Every kind of task this process can run, by name."""
    return {task: handle for feature in features for task, handle in feature.handlers(services).items()}


def build_worker(services: Services, features: tuple[Feature, ...] = FEATURES) -> Worker:
    jobs = services.settings.jobs
    return Worker(services.jobs, job_handlers(services, features), jobs.max_concurrent,
                  poll_seconds=jobs.poll_seconds)


@contextlib.asynccontextmanager
async def running(services: Services, features: tuple[Feature, ...] = FEATURES, *,
                  run_jobs: bool) -> AsyncIterator[None]:
    """The features' background tasks (and with `run_jobs` the job workers and the cron scheduler)
    while the body runs; then what is buffered is written and the database closed."""
    background = [asyncio.create_task(work) for feature in features for work in feature.background(services)]
    if run_jobs:
        background += [asyncio.create_task(build_worker(services, features).run()),
                       asyncio.create_task(services.scheduler.run(services.settings.jobs.poll_seconds))]
    try:
        yield
    finally:
        for task in background:
            task.cancel()
        if background:
            # Bounded: a task that swallowed its cancellation must not hold the stop up for ever.
            await asyncio.wait(background, timeout=BACKGROUND_STOP_SECONDS)
        await services.manifests.flush_pulls()
        await services.audit.flush()
        await services.db.close()


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


def management_api(services: Services, features: tuple[Feature, ...]) -> ASGIApp:
    from portside.api.app import build_api

    return build_api(services, [import_module(module).router for feature in features
                                for module in feature.routers])


def portal_session_api(services: Services) -> ASGIApp:
    from portside.api.app import build_portal_session_api

    return build_portal_session_api(services)


def create_app(settings: Settings, features: tuple[Feature, ...] = FEATURES) -> Starlette:
    """The server's ASGI app. Its services are built in the lifespan, where the signing keys can be
    read from the database first; requests find them at `app.state.services`."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await build(settings, features)
        app.state.services = services
        async with running(services, features, run_jobs=settings.jobs.run_in_server):
            yield

    def services() -> Services:
        built: Services = app.state.services
        return built

    middleware = [Middleware(AccessLogMiddleware)] if settings.log.access_log else []
    limit = settings.api.max_body_bytes
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/service/token", token, methods=["GET", "POST"]),
            Mount("/api/v2.0", app=BodyGuard(BuiltOnFirstUse(lambda: management_api(services(), features)), limit,
                                             require_sign_in=True)),
            Mount("/c", app=BodyGuard(BuiltOnFirstUse(lambda: portal_session_api(services())), limit,
                                      require_sign_in=False)),  # the sign-in form: capped only
            *registry_routes,
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    return app


def app_from_environment() -> Starlette:
    """Entry point for server worker processes: settings arrive as JSON from the parent process."""
    settings = Settings.for_this_worker()
    configure_logging(settings.log)
    return create_app(settings)
