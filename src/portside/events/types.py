"""The events the domain publishes. Plain frozen values that round-trip through JSON, so the outbox
can hold them and a job in another process can read them back."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    # Harbor's webhook event types keep Harbor's names, so policies written for Harbor read the same.
    PUSH_ARTIFACT = "PUSH_ARTIFACT"
    PULL_ARTIFACT = "PULL_ARTIFACT"
    DELETE_ARTIFACT = "DELETE_ARTIFACT"
    QUOTA_EXCEED = "QUOTA_EXCEED"
    QUOTA_WARNING = "QUOTA_WARNING"
    TAG_RETENTION = "TAG_RETENTION"
    SCANNING_COMPLETED = "SCANNING_COMPLETED"
    SCANNING_FAILED = "SCANNING_FAILED"
    SCANNING_STOPPED = "SCANNING_STOPPED"
    REPLICATION = "REPLICATION"
    # Portside's own: changes the audit log records that no Harbor webhook carries.
    CREATE_TAG = "CREATE_TAG"
    DELETE_TAG = "DELETE_TAG"
    DELETE_REPOSITORY = "DELETE_REPOSITORY"
    GC_FINISHED = "GC_FINISHED"
    # Management changes (projects, users, robots, members, policies): `detail` holds `operation`,
    # `resource_type` and `resource`, as the audit log names them.
    MANAGEMENT = "MANAGEMENT"


# The types a webhook policy may subscribe to (Harbor's list, in Harbor's order).
WEBHOOK_TYPES: tuple[EventType, ...] = (
    EventType.PUSH_ARTIFACT, EventType.PULL_ARTIFACT, EventType.DELETE_ARTIFACT, EventType.QUOTA_EXCEED,
    EventType.QUOTA_WARNING, EventType.TAG_RETENTION, EventType.SCANNING_COMPLETED, EventType.SCANNING_FAILED,
    EventType.SCANNING_STOPPED, EventType.REPLICATION,
)


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change, as the HTTP surfaces know it: domain services take one and put it in the
    events they publish (`operator`, `client_ip`). Jobs act as themselves (`Actor("retention")`)."""

    name: str
    client_ip: str = ""


@dataclass(frozen=True, slots=True)
class Resource:
    """One artifact an event is about."""

    digest: str = ""
    tag: str = ""
    media_type: str = ""
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    operator: str  # who: a user or robot name, or the job ("retention", "gc") that acted
    project: str = ""
    project_id: int | None = None
    repository: str = ""  # the full name, project included ("library/nginx")
    public: bool = False  # the project's visibility when it happened (Harbor's repo_type)
    resources: tuple[Resource, ...] = ()
    # Facts of this type only (quota figures, a retention run's summary, a scan's overview), JSON-able.
    detail: Mapping[str, Any] = field(default_factory=dict)
    client_ip: str = ""
    occurred_at: datetime = field(default_factory=_now)
    id: str = field(default_factory=_new_id)

    def to_json(self) -> str:
        return json.dumps({
            "id": self.id, "type": self.type.value, "operator": self.operator, "project": self.project,
            "project_id": self.project_id, "repository": self.repository, "public": self.public,
            "resources": [{"digest": r.digest, "tag": r.tag, "media_type": r.media_type, "size": r.size}
                          for r in self.resources],
            "detail": dict(self.detail), "client_ip": self.client_ip,
            "occurred_at": self.occurred_at.isoformat(),
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Event:
        d = json.loads(text)
        return cls(
            id=d["id"], type=EventType(d["type"]), operator=d["operator"], project=d["project"],
            project_id=d["project_id"], repository=d["repository"], public=d["public"],
            resources=tuple(Resource(**r) for r in d["resources"]), detail=d["detail"],
            client_ip=d["client_ip"], occurred_at=datetime.fromisoformat(d["occurred_at"]),
        )
