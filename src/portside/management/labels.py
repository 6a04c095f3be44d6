"""Labels: Harbor's global labels (scope `g`) and project labels (scope `p`), and the labels on artifacts.

A label's scope and project never change after creation. A project label may only go on artifacts of
its own project; a global one on any artifact. Who may do what is decided by the API layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from portside.errors import Conflict, Invalid, NotFound, WriteConflict
from portside.metadata.artifacts import ArtifactRow
from portside.metadata.database import Database
from portside.metadata.labels import GLOBAL as GLOBAL  # the scopes and row type the API shows
from portside.metadata.labels import PROJECT as PROJECT
from portside.metadata.labels import LabelQueries
from portside.metadata.labels import LabelRow as LabelRow

MAX_NAME, MAX_COLOR, MAX_DESCRIPTION = 128, 32, 2048
SCOPES = (GLOBAL, PROJECT)


@dataclass(frozen=True, slots=True)
class LabelSpec:
    name: str
    description: str = ""
    color: str = ""


def _checked(spec: LabelSpec) -> LabelSpec:
    name = spec.name.strip()
    if not name:
        raise Invalid("a label needs a name")
    if len(name) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise Invalid(f"invalid label name: at most {MAX_NAME} printable characters")
    if len(spec.color) > MAX_COLOR:
        raise Invalid(f"invalid label color: at most {MAX_COLOR} characters, such as #0095D3")
    if len(spec.description) > MAX_DESCRIPTION:
        raise Invalid(f"the label description is longer than {MAX_DESCRIPTION} characters")
    return LabelSpec(name, spec.description, spec.color)


def check_scope(scope: str, project_id: int | None) -> None:
    if scope not in SCOPES:
        raise Invalid(f"invalid label scope {scope!r}: g (global) or p (project)")
    if scope == PROJECT and (project_id is None or project_id <= 0):
        raise Invalid("a project label (scope p) needs the project_id of its project")
    if scope == GLOBAL and project_id not in (None, 0):
        raise Invalid("a global label (scope g) belongs to no project: leave project_id out")


class LabelService:
    def __init__(self, db: Database, queries: LabelQueries) -> None:
        self.db = db
        self.queries = queries

    async def get(self, label_id: int) -> LabelRow:
        async with self.db.read() as conn:
            found = await self.queries.label(conn, label_id)
        if found is None:
            raise NotFound(f"label {label_id} not found")
        return found

    async def labels(self, scope: str, project_id: int | None) -> list[LabelRow]:
        check_scope(scope, project_id if scope == PROJECT else None)  # a project_id beside scope g is moot
        async with self.db.read() as conn:
            return await self.queries.labels(conn, scope=scope, project_id=project_id)

    async def create(self, spec: LabelSpec, scope: str, project_id: int | None) -> LabelRow:
        """Create a label; the caller has checked the project exists and may hold labels."""
        check_scope(scope, project_id)
        spec = _checked(spec)
        owner = project_id if scope == PROJECT else None
        try:
            async with self.db.write(content=False) as conn:
                await self._unique(conn, spec.name, owner, None)
                label_id = await self.queries.create(conn, name=spec.name, description=spec.description,
                                                     color=spec.color, scope=scope, project_id=owner)
        except WriteConflict:  # a concurrent create took the name, or the project was just deleted
            async with self.db.read() as conn:
                if await self.queries.by_name(conn, spec.name, owner) is None:
                    raise NotFound(f"project {project_id} not found") from None
            raise Conflict(f"a label named {spec.name!r} already exists in this scope") from None
        return await self.get(label_id)

    async def update(self, label: LabelRow, spec: LabelSpec) -> LabelRow:
        spec = _checked(spec)
        taken = f"a label named {spec.name!r} already exists in this scope"
        async with self.db.write(content=False, conflict=taken) as conn:
            if await self.queries.label(conn, label.id) is None:
                raise NotFound(f"label {label.id} not found")
            await self._unique(conn, spec.name, label.project_id, label.id)
            await self.queries.update(conn, label.id, name=spec.name, description=spec.description,
                                      color=spec.color)
        return await self.get(label.id)

    async def _unique(self, conn: AsyncConnection, name: str, project_id: int | None, own_id: int | None) -> None:
        existing = await self.queries.by_name(conn, name, project_id)
        if existing is not None and existing.id != own_id:
            raise Conflict(f"a label named {name!r} already exists in this scope")

    async def delete(self, label: LabelRow) -> None:
        """Delete the label; it leaves every artifact that carried it (cascade)."""
        async with self.db.write(content=False) as conn:
            await self.queries.delete(conn, label.id)

    # -- on artifacts --------------------------------------------------------------------------

    async def add_to(self, art: ArtifactRow, label_id: int) -> LabelRow:
        label = await self.get(label_id)
        if label.scope == PROJECT and label.project_id != art.project_id:
            raise Invalid(f"label {label_id} belongs to another project: use a global label or one of this project")
        try:
            async with self.db.write(content=False) as conn:
                if await self.queries.is_on(conn, art.id, label_id):
                    raise Conflict(f"artifact {art.digest} already has label {label_id}")
                await self.queries.add_to(conn, art.id, label_id)
        except WriteConflict:  # added meanwhile, or the artifact or label just deleted
            async with self.db.read() as conn:
                if await self.queries.is_on(conn, art.id, label_id):
                    raise Conflict(f"artifact {art.digest} already has label {label_id}") from None
            raise NotFound(f"artifact {art.digest} or label {label_id} was deleted meanwhile") from None
        return label

    async def remove_from(self, art: ArtifactRow, label_id: int) -> None:
        async with self.db.write(content=False) as conn:
            if not await self.queries.remove_from(conn, art.id, label_id):
                raise NotFound(f"artifact {art.digest} has no label {label_id}")

    async def of_artifacts(self, manifest_ids: list[int]) -> dict[int, list[LabelRow]]:
        if not manifest_ids:
            return {}
        async with self.db.read() as conn:
            return await self.queries.of_artifacts(conn, manifest_ids)
