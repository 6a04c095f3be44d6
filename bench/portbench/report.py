"""Figures, their medians over rounds, the ratios between servers, the table and the targets."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SERVERS = ("portside", "distribution", "nginx")
LABELS = {"portside": "Portside", "distribution": "Distribution", "nginx": "nginx"}


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    higher_is_better: bool


FIGURES: tuple[Figure, ...] = (
    Figure("push_1m_mono", "push 20 x 1 MiB, monolithic", "MiB/s", True),
    Figure("push_1m_postput", "push 20 x 1 MiB, POST+PUT", "MiB/s", True),
    Figure("push_1m_chunked", "push 20 x 1 MiB, chunked", "MiB/s", True),
    Figure("push_100m_mono", "push 3 x 100 MiB, monolithic", "MiB/s", True),
    Figure("push_100m_postput", "push 3 x 100 MiB, POST+PUT", "MiB/s", True),
    Figure("push_100m_chunked", "push 3 x 100 MiB, chunked", "MiB/s", True),
    Figure("pull_mibs", "pull 20 x 100 MiB concurrent", "MiB/s", True),
    Figure("pull_p50", "pull per-request p50", "s", False),
    Figure("pull_p99", "pull per-request p99", "s", False),
    Figure("manifest_rps", "manifest GET by tag, 64 conns", "req/s", True),
    Figure("manifest_p50_ms", "manifest GET p50", "ms", False),
    Figure("manifest_p99_ms", "manifest GET p99", "ms", False),
    Figure("head_rps", "blob HEAD, 64 conns", "req/s", True),
    Figure("head_p50_ms", "blob HEAD p50", "ms", False),
    Figure("head_p99_ms", "blob HEAD p99", "ms", False),
    Figure("tags_page_ms", "tags/list n=100 page, 1,000 tags", "ms", False),
    Figure("catalog_1k_page_ms", "_catalog n=100 page, 1,000 repos", "ms", False),
    Figure("catalog_10k_page_ms", "_catalog n=100 page, 10,000 repos", "ms", False),
    Figure("catalog_ratio", "_catalog page time 10,000 / 1,000", "x", False),
    Figure("stream_mibs", "streamed push (one PATCH)", "MiB/s", True),
    Figure("stream_rss_growth_mib", "RSS growth during streamed push", "MiB", False),
    Figure("rss_round_peak_mib", "peak RSS during a round", "MiB", False),
    Figure("rss_peak_mib", "peak RSS, whole run", "MiB", False),
)
BY_KEY = {f.key: f for f in FIGURES}
PUSH_KEYS = tuple(f.key for f in FIGURES if f.key.startswith("push_"))


@dataclass(frozen=True)
class Target:
    text: str
    figure: str
    versus: str | None  # a server whose median is multiplied by `factor`, or None for an absolute bound
    op: str  # ">=", "<=" or "<"
    factor: float


TARGETS: tuple[Target, ...] = (
    Target("large pull >= 0.95x nginx", "pull_mibs", "nginx", ">=", 0.95),
    Target("manifest GET >= 5x Distribution req/s", "manifest_rps", "distribution", ">=", 5.0),
    Target("manifest GET p99 <= Distribution's", "manifest_p99_ms", "distribution", "<=", 1.0),
    Target("blob HEAD >= 5x Distribution req/s", "head_rps", "distribution", ">=", 5.0),
    *(Target(f"{BY_KEY[k].label} >= 1.0x Distribution", k, "distribution", ">=", 1.0) for k in PUSH_KEYS),
    Target("_catalog page time at 10,000 / at 1,000 <= 1.2", "catalog_ratio", None, "<=", 1.2),
    Target("peak RSS (whole run) <= Distribution's", "rss_peak_mib", "distribution", "<=", 1.0),
    Target("RSS growth during the streamed push < 20 MiB", "stream_rss_growth_mib", None, "<", 20.0),
)


def summarize(samples: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Per figure and server: samples, median, min, max; per figure: Portside's ratio to the others."""
    out: dict[str, Any] = {}
    for fig in FIGURES:
        per_server = samples.get(fig.key, {})
        entry: dict[str, Any] = {"label": fig.label, "unit": fig.unit, "higher_is_better": fig.higher_is_better,
                                 "servers": {}}
        for server in SERVERS:
            values = [v for v in per_server.get(server, []) if not math.isnan(v)]
            if values:
                entry["servers"][server] = {"samples": values, "median": statistics.median(values),
                                            "min": min(values), "max": max(values)}
        medians = {s: v["median"] for s, v in entry["servers"].items()}
        for other in ("distribution", "nginx"):
            if "portside" in medians and medians.get(other):
                entry[f"portside_over_{other}"] = medians["portside"] / medians[other]
        out[fig.key] = entry
    return out


def _num(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _cell(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "-"
    if len(stats["samples"]) == 1 or stats["min"] == stats["max"]:
        return _num(stats["median"])
    return f"{_num(stats['median'])} ({_num(stats['min'])}..{_num(stats['max'])})"


def table(summary: dict[str, Any]) -> str:
    header = ["figure", "unit", "Portside", "Distribution", "nginx", "P/D", "P/N"]
    rows = [header]
    for fig in FIGURES:
        entry = summary[fig.key]
        servers = entry["servers"]
        ratios = [f"{entry[k]:.2f}x" if k in entry else "-"
                  for k in ("portside_over_distribution", "portside_over_nginx")]
        rows.append([fig.label, fig.unit, *(_cell(servers.get(s)) for s in SERVERS), *ratios])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w)
                                       for i, (c, w) in enumerate(zip(row, widths, strict=True))) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 1) + (":" if i >= 2 else "-")
                                        for i, w in enumerate(widths)) + "|")
    return "\n".join(lines)


def targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    for target in TARGETS:
        servers = summary[target.figure]["servers"]
        mine = servers.get("portside", {}).get("median")
        bound: float | None = target.factor
        if target.versus is not None:
            theirs = servers.get(target.versus, {}).get("median")
            bound = theirs * target.factor if theirs is not None else None
        met: bool | None = None
        if mine is not None and bound is not None:
            met = {">=": mine >= bound, "<=": mine <= bound, "<": mine < bound}[target.op]
        results.append({"target": target.text, "figure": target.figure, "portside": mine, "bound": bound,
                        "met": met})
    return results


def targets_text(rows: Sequence[dict[str, Any]]) -> str:
    lines = []
    for row in rows:
        state = {True: "met", False: "NOT met", None: "no data"}[row["met"]]
        unit = BY_KEY[row["figure"]].unit
        value = "-" if row["portside"] is None else _num(row["portside"])
        bound = "-" if row["bound"] is None else _num(row["bound"])
        lines.append(f"  {state:8} {row['target']}  (Portside {value} {unit}; bound {bound} {unit})")
    return "\n".join(lines)
