"""Features: what each room plugs into a process, and the builder they plug their services into.

A feature is one `Feature` value, declared in its room (`lifecycle/feature.py`, `management/feature.py`):
the services it adds, the /api/v2.0 routers it brings, the job handlers and schedule launchers it runs,
its background tasks and its event subscribers. `app.FEATURES` lists them in order; the server,
`portside worker` and the CLI all build from that one list, so a feature is wired once.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

from portside.config import Settings
from portside.events.subscribers import Subscriber
from portside.jobs.queue import JobQueue
from portside.jobs.scheduler import Launcher
from portside.jobs.worker import Handler
from portside.metadata.database import Database
from portside.services import Services
from portside.storage.ports import BlobStore

if TYPE_CHECKING:
    from portside.auth.sessions import SessionService
    from portside.auth.tokens import TokenService

T = TypeVar("T")
Background = Coroutine[Any, Any, None]


def _no_services(builder: ServiceBuilder) -> None:
    return None


def _none(_: object) -> Mapping[str, Any]:
    return {}


def _no_tasks(_: Services) -> list[Background]:
    return []


def _no_subscribers(_: Services) -> list[Subscriber]:
    return []


@dataclass(frozen=True)
class Feature:
    name: str
    # Adds this feature's services to the builder; may use those of features listed before it.
    install: Callable[[ServiceBuilder], None] = _no_services
    # Modules whose `router` joins /api/v2.0; imported when that app is first built, not at start-up.
    routers: tuple[str, ...] = ()
    # Job task name -> handler, for every process that runs jobs.
    handlers: Callable[[Services], Mapping[str, Handler]] = _none
    # Schedule vendor type -> launcher, for the cron scheduler (made before any feature's services).
    launchers: Callable[[ServiceBuilder], Mapping[str, Launcher]] = _none
    # Coroutines run for as long as the services are (in each server worker and in `portside worker`).
    background: Callable[[Services], list[Background]] = _no_tasks
    # What receives the domain's events after commit (see `portside.events.subscribers`).
    subscribers: Callable[[Services], list[Subscriber]] = _no_subscribers


class ServiceBuilder:
    """The services of one process while they are being made: the infrastructure every feature gets,
    then what each feature adds in turn. `freeze` hands back the finished `Services`, which nothing
    changes afterwards."""

    def __init__(self, settings: Settings, db: Database, store: BlobStore, jobs: JobQueue,
                 tokens: TokenService | None, sessions: SessionService | None) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.jobs = jobs
        self.tokens, self.sessions = tokens, sessions
        self._made: dict[str, object] = {"settings": settings, "db": db, "store": store, "jobs": jobs,
                                         "tokens": tokens, "sessions": sessions}

    def add(self, name: str, service: object) -> None:
        if name in self._made:
            raise ValueError(f"two features add the service {name!r}")
        self._made[name] = service

    def get(self, name: str, kind: type[T]) -> T:
        """A service an earlier feature added (feature order is `app.FEATURES`)."""
        service = self._made.get(name)
        if not isinstance(service, kind):
            raise LookupError(f"no {kind.__name__} service {name!r} yet: list the feature adding it earlier")
        return service

    def freeze(self) -> Services:
        missing = [f.name for f in fields(Services) if f.name not in self._made]
        if missing:
            raise LookupError(f"no feature adds the services {', '.join(missing)}")
        # What no field names (the query objects services share) stays here, out of the handlers' reach.
        return Services(**{f.name: self._made[f.name] for f in fields(Services)})  # type: ignore[arg-type]
