"""Harbor's `q` filter syntax: `k=v,k2=~fuzzy,k3=[a~b],k4={a b}` (exact, fuzzy, range, any-of)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from portside.api.textguard import storable
from portside.errors import Invalid
from portside.listquery import Term as ListTerm
from portside.numbers import parse_int


@dataclass(frozen=True, slots=True)
class Term:
    key: str
    kind: str  # "exact", "fuzzy", "range", "any"
    value: str | tuple[str, str] | tuple[str, ...]

    def matches(self, actual: object) -> bool:
        text = "" if actual is None else str(actual).lower() if isinstance(actual, bool) else str(actual)
        if self.kind == "exact":
            return text == self.value
        if self.kind == "fuzzy":
            return str(self.value) in text
        if self.kind == "any":
            return text in self.value
        assert isinstance(self.value, tuple)
        low, high = self.value[0], self.value[-1]  # range: a numeric value compares with numeric bounds
        number = parse_int(text)
        if number is not None:
            low_n, high_n = parse_int(str(low or "0")), parse_int(str(high or text))
            if low_n is None or high_n is None:
                raise Invalid(f"{self.key}=[{low}~{high}]: bounds of a numeric range must be 64-bit integers")
            return low_n <= number <= high_n
        return (not low or text >= low) and (not high or text <= high)


def parse_q(q: str | None) -> dict[str, Term]:
    terms: dict[str, Term] = {}
    if not q:
        return terms
    text = unquote(q)  # q arrives encoded once more (Harbor's clients)
    if not storable(text):  # textguard.py saw it before this second decoding
        raise Invalid("q holds a NUL character or a lone surrogate: not accepted")
    for part in _split(text):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise Invalid(f"invalid q term {part!r}: expected key=value")
        key = key.strip()
        if value.startswith("~"):
            terms[key] = Term(key, "fuzzy", value[1:])
        elif value.startswith("[") and value.endswith("]") and "~" in value:
            low, _, high = value[1:-1].partition("~")
            terms[key] = Term(key, "range", (low.strip(), high.strip()))
        elif (value.startswith("{") and value.endswith("}")) or (value.startswith("(") and value.endswith(")")):
            terms[key] = Term(key, "any", tuple(v for v in value[1:-1].split(" ") if v))
        else:
            terms[key] = Term(key, "exact", value)
    return terms


def _split(q: str) -> list[str]:
    """Split on commas that are not inside [], {} or ()."""
    parts, depth, current = [], 0, ""
    for ch in q:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current:
        parts.append(current)
    return [p for p in (s.strip() for s in parts) if p]


def _plain(value: str) -> str:
    return value.strip().strip("'\"")


def list_terms(q: str | None) -> tuple[ListTerm, ...]:
    """`q` as the plain terms metadata/listing.py turns into SQL (quotes around values dropped)."""
    out = []
    for term in parse_q(q).values():
        values = term.value if isinstance(term.value, tuple) else (term.value,)
        out.append(ListTerm(term.key, term.kind, tuple(_plain(v) for v in values)))
    return tuple(out)
