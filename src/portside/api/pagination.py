"""Harbor's paging: `page`/`page_size` query parameters, `X-Total-Count` and `Link` headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, Request, Response

from portside.api.params import Page, PageSize
from portside.api.query import list_terms
from portside.listquery import ListQuery, parse_sort

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Paging:
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    def slice(self, items: list[T]) -> list[T]:
        return items[self.offset:self.offset + self.page_size]


def paging(page: Page = 1, page_size: PageSize = 10) -> Paging:
    return Paging(page, page_size)


PagingDep = Annotated[Paging, Depends(paging)]


def list_query(paging: PagingDep, q: str | None = None, sort: str | None = None) -> ListQuery:
    """`q`, `sort`, `page` and `page_size` as one value for the listing's query (metadata/listing.py)."""
    return ListQuery(list_terms(q), parse_sort(sort), paging.offset, paging.page_size)


ListQueryDep = Annotated[ListQuery, Depends(list_query)]


def set_list_headers(request: Request, response: Response, query: ListQuery, total: int) -> None:
    set_page_headers(request, response, Paging(query.offset // query.limit + 1, query.limit), total)


def set_page_headers(request: Request, response: Response, paging: Paging, total: int) -> None:
    response.headers["X-Total-Count"] = str(total)
    links = []
    params = dict(request.query_params)

    def link(page: int, rel: str) -> str:
        query = urlencode({**params, "page": page, "page_size": paging.page_size})
        return f'<{request.url.path}?{query}>; rel="{rel}"'

    if paging.page > 1:
        links.append(link(paging.page - 1, "prev"))
    if paging.offset + paging.page_size < total:
        links.append(link(paging.page + 1, "next"))
    if links:
        response.headers["Link"] = ", ".join(links)
