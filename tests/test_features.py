"""The features every process builds from (`portside.app.FEATURES`): one frozen set of services, the
signing keys loaded before it is made, and every /api/v2.0 router and job wired by exactly one feature."""

from __future__ import annotations

import asyncio
import dataclasses
import pkgutil
import typing
from importlib import import_module
from pathlib import Path

import pytest

import portside.api
from portside import services as services_module
from portside.app import FEATURES, build, job_handlers
from portside.bootstrap import _bootstrap
from portside.config import Settings, load_settings
from portside.features import Feature, ServiceBuilder
from portside.jobs.queue import JobQueue
from portside.lifecycle.gc_jobs import GC_TASK, GC_VENDOR
from portside.lifecycle.quotas import QuotaService
from portside.lifecycle.retention_jobs import RETENTION_TASK, RETENTION_VENDOR
from portside.metadata.database import Database, migrate
from portside.services import Services
from portside.storage.filesystem import FilesystemBlobStore


def settings_in(tmp_path: Path) -> Settings:
    return load_settings(None, data_dir=tmp_path / "data")


def test_services_are_built_once_from_the_features_and_frozen(tmp_path: Path) -> None:
    services = asyncio.run(build(settings_in(tmp_path), signing=False))
    try:
        hints = typing.get_type_hints(Services, vars(services_module))
        for field in dataclasses.fields(Services):
            kinds = typing.get_args(hints[field.name]) or (hints[field.name],)
            if field.name != "store":  # a Protocol (mypy checks the adapter against it)
                assert isinstance(getattr(services, field.name), kinds), field.name
        with pytest.raises(dataclasses.FrozenInstanceError):
            services.tokens = None  # type: ignore[misc]
        assert set(job_handlers(services)) == {GC_TASK, RETENTION_TASK}
        assert set(services.scheduler.launchers) == {GC_VENDOR, RETENTION_VENDOR}
        # The query objects the services share stay with the builder, out of the handlers' reach.
        assert not hasattr(services, "accounts") and not hasattr(services, "statistics")
    finally:
        asyncio.run(services.db.close())


def test_the_signing_keys_are_loaded_before_the_services_are_made(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    settings.data_dir.mkdir(parents=True)
    migrate(settings.database_url)
    with pytest.raises(RuntimeError, match="no token signing key"):
        asyncio.run(build(settings))
    asyncio.run(_bootstrap(settings))
    services = asyncio.run(build(settings))
    try:
        assert services.tokens is not None and services.sessions is not None
        assert services.access.tokens is services.tokens
    finally:
        asyncio.run(services.db.close())


def test_every_api_router_is_brought_by_exactly_one_feature() -> None:
    listed = [module for feature in FEATURES for module in feature.routers]
    with_router = {f"portside.api.{m.name}" for m in pkgutil.iter_modules(portside.api.__path__)
                   if hasattr(import_module(f"portside.api.{m.name}"), "router")}
    assert sorted(listed) == sorted(with_router - {"portside.api.session"})  # session: the portal's /c app
    assert len({feature.name for feature in FEATURES}) == len(FEATURES)


def test_a_feature_sees_only_the_services_of_features_before_it(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    builder = ServiceBuilder(settings, db, FilesystemBlobStore(tmp_path / "blobs"), JobQueue(db), None, None)
    with pytest.raises(LookupError, match="'quotas'"):
        builder.get("quotas", QuotaService)
    second = Feature("again", install=lambda b: b.add("db", db))
    with pytest.raises(ValueError, match="'db'"):
        second.install(builder)
    with pytest.raises(LookupError, match="blobs"):
        builder.freeze()
    asyncio.run(db.close())
