"""The lifecycle room's features: quotas, tag immutability, garbage collection and retention.

Each is one `Feature` (see `portside.features`): its services, its /api/v2.0 router, and for GC and
retention the job that does the work and the launcher the cron scheduler fires.
"""

from __future__ import annotations

from collections.abc import Mapping

from portside.features import Feature, ServiceBuilder
from portside.jobs.scheduler import Launcher, Scheduler
from portside.jobs.worker import Handler
from portside.lifecycle.gc import GarbageCollector
from portside.lifecycle.gc_jobs import GC_TASK, GC_VENDOR, GcService, gc_handler, gc_launcher
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
from portside.metadata.projects import ProjectQueries
from portside.metadata.retention import RetentionQueries
from portside.services import Services


def _install_quotas(b: ServiceBuilder) -> None:
    b.add("quotas", QuotaService(b.db))


QUOTAS = Feature("quotas", install=_install_quotas, routers=("portside.api.quotas",))


def _install_immutability(b: ServiceBuilder) -> None:
    b.add("immutability", ImmutabilityService(b.db))


IMMUTABILITY = Feature("immutability", install=_install_immutability, routers=("portside.api.immutable",))


def _install_gc(b: ServiceBuilder) -> None:
    b.add("gc", GarbageCollector(b.db, b.store))
    b.add("gc_admin", GcService(b.jobs, b.get("scheduler", Scheduler)))


def _gc_handlers(services: Services) -> Mapping[str, Handler]:
    return {GC_TASK: gc_handler(services.gc)}


def _gc_launchers(b: ServiceBuilder) -> Mapping[str, Launcher]:
    return {GC_VENDOR: gc_launcher(b.jobs)}


GC = Feature("gc", install=_install_gc, routers=("portside.api.gc",), handlers=_gc_handlers,
             launchers=_gc_launchers)


def _install_retention(b: ServiceBuilder) -> None:
    queries = RetentionQueries(b.db)
    b.add("retention", RetentionService(b.db, queries, b.get("projects", ProjectQueries), b.jobs,
                                        b.get("scheduler", Scheduler)))
    b.add("retention_runner", RetentionRunner(b.db, queries, b.get("immutability", ImmutabilityService)))


def _retention_handlers(services: Services) -> Mapping[str, Handler]:
    return {RETENTION_TASK: retention_handler(services.retention_runner)}


def _retention_launchers(b: ServiceBuilder) -> Mapping[str, Launcher]:
    return {RETENTION_VENDOR: retention_launcher(b.jobs, RetentionQueries(b.db))}


RETENTION = Feature("retention", install=_install_retention, routers=("portside.api.retention",),
                    handlers=_retention_handlers, launchers=_retention_launchers)
