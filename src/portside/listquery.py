"""What a caller asked of a list endpoint (Harbor's `q`, `sort`, `page`/`page_size`), as plain values:
the API builds it, metadata/listing.py turns it into SQL."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Term:
    """One `q` term: exact `k=v`, fuzzy `k=~v`, range `k=[a~b]` (two values, either may be empty),
    any-of `k={a b}`."""

    key: str
    kind: str  # "exact", "fuzzy", "range", "any"
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListQuery:
    terms: tuple[Term, ...] = ()
    sort: tuple[tuple[str, bool], ...] = ()  # (key, descending), most significant first; () for the default
    offset: int = 0
    limit: int = 10

    def term(self, key: str) -> Term | None:
        return next((t for t in self.terms if t.key == key), None)

    def has(self, *keys: str) -> bool:
        return any(t.key in keys for t in self.terms)

    def without(self, *keys: str) -> ListQuery:
        return ListQuery(tuple(t for t in self.terms if t.key not in keys), self.sort, self.offset, self.limit)


def parse_sort(sort: str | None) -> tuple[tuple[str, bool], ...]:
    """`sort=field1,-field2`: a comma list, `-` for descending."""
    fields = [f.strip() for f in (sort or "").split(",") if f.strip()]
    return tuple((f.lstrip("-").strip(), f.startswith("-")) for f in fields)


def matches(term: Term, text: str) -> bool:
    """`term` applied to a value computed outside SQL (text comparison)."""
    if term.kind == "exact":
        return text == term.values[0]
    if term.kind == "fuzzy":
        return term.values[0] in text
    if term.kind == "any":
        return text in term.values
    low, high = term.values
    return (not low or text >= low) and (not high or text <= high)
