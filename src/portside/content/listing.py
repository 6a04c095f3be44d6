"""Paged listings: tags, the catalog, and referrers of a manifest."""

from __future__ import annotations

from dataclasses import dataclass

from portside.errors import RepositoryUnknown
from portside.metadata.queries import ReferrerRow, RegistryQueries
from portside.oci.digest import Digest


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    more: bool  # another page follows the last item


class ListingService:
    def __init__(self, queries: RegistryQueries, *, max_page: int) -> None:
        self.queries = queries
        self.max_page = max_page

    def page_size(self, requested: int | None) -> int:
        return self.max_page if requested is None else min(requested, self.max_page)

    async def tags(self, name: str, n: int | None, last: str | None) -> Page:
        size = self.page_size(n)
        found = await self.queries.list_tags(name, size + 1, last)
        if found is None:
            raise RepositoryUnknown(f"repository {name} is not known to the registry")
        return Page(found[:size], len(found) > size)

    async def repositories(self, n: int | None, last: str | None, project_ids: set[int] | None = None) -> Page:
        """Repository names in order; with `project_ids`, only those projects' repositories."""
        size = self.page_size(n)
        found = await self.queries.list_repositories(size + 1, last, project_ids)
        return Page(found[:size], len(found) > size)

    async def referrers(self, name: str, subject: Digest, artifact_type: str | None) -> list[ReferrerRow]:
        return await self.queries.referrers(name, str(subject), artifact_type)
