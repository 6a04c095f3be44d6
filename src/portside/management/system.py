"""What /statistics, /search and /health read across projects, for one caller."""

from __future__ import annotations

from dataclasses import dataclass

from portside.auth.principal import Principal
from portside.management.projects import ProjectService
from portside.metadata.database import Database
from portside.metadata.projects import ProjectRow
from portside.metadata.statistics import RepositoryHit, StatisticsQueries


@dataclass(frozen=True, slots=True)
class Counts:
    """Projects and repositories the caller sees, split public/private; totals for administrators only."""
    public_projects: int
    public_repositories: int
    private_projects: int
    private_repositories: int
    total_projects: int = 0
    total_repositories: int = 0
    total_storage: int = 0


class SystemService:
    def __init__(self, db: Database, statistics: StatisticsQueries, projects: ProjectService) -> None:
        self.db = db
        self.statistics = statistics
        self.projects = projects

    async def ping(self) -> None:
        """Raises when the database cannot answer."""
        await self.db.ping()

    async def counts(self, principal: Principal) -> Counts:
        seen = await self.projects.list_visible(principal)
        async with self.db.read() as conn:
            repo_counts = await self.statistics.repository_counts(conn)
            storage = await self.statistics.storage_consumption(conn) if principal.sysadmin else 0
        public = [p for p in seen if p.public]
        private = [p for p in seen if not p.public]
        counts = Counts(len(public), sum(repo_counts.get(p.id, 0) for p in public),
                        len(private), sum(repo_counts.get(p.id, 0) for p in private))
        if not principal.sysadmin:
            return counts
        # A system administrator sees every project.
        return Counts(counts.public_projects, counts.public_repositories, counts.private_projects,
                      counts.private_repositories, len(seen), sum(repo_counts.values()), storage)

    async def search(self, principal: Principal, text: str,
                     limit: int) -> tuple[list[ProjectRow], list[tuple[ProjectRow, RepositoryHit]]]:
        """Visible projects whose name holds `text`, and visible repositories whose name does (with their project)."""
        seen = {p.id: p for p in await self.projects.list_visible(principal)}
        async with self.db.read() as conn:
            hits = await self.statistics.search_repositories(conn, text, None if principal.sysadmin else set(seen),
                                                             limit=limit)
        projects = [p for p in seen.values() if text.lower() in p.name.lower()][:limit]
        return projects, [(seen[h.project_id], h) for h in hits if h.project_id in seen]
