"""The timed workloads. Each returns a JSON-ready dict of raw figures for one server and one round."""

from __future__ import annotations

import hashlib
import re
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from portbench.client import Blob, Fetched, HTTPFailure, Registry, get_discard, image_manifest
from portbench.servers import RssMonitor, find_tool

MiB = 1024 * 1024
Sample = dict[str, Any]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks; q in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# ---------------------------------------------------------------------------------------------
# Push


def derive_blobs(base: bytes, size: int, count: int, label: str) -> list[Blob]:
    """`count` distinct blobs of `size` bytes: `base` with a unique 64-byte prefix each."""
    return [Blob.of(f"{label}/{i}".encode().ljust(64, b"\0") + base[64:size]) for i in range(count)]


def push(reg: Registry, repo: str, blobs: Sequence[Blob], mode: str, config: Blob, tag: str,
         single_post: bool, chunk_size: int = 10 * MiB) -> Sample:
    """Upload `blobs` one after another in `mode`, then PUT a manifest naming them; MiB/s over all of it."""
    method = {"mono": "POST ?digest=" if single_post else "POST + PUT ?digest= (no single-POST support)",
              "postput": "POST + PUT ?digest=",
              "chunked": f"POST + PATCH {chunk_size // MiB} MiB chunks + PUT ?digest="}[mode]
    started = time.perf_counter()
    for blob in blobs:
        if mode == "mono" and single_post:
            if not reg.single_post(repo, blob):
                raise HTTPFailure(f"POST /v2/{repo}/blobs/uploads/?digest=", detail="202 instead of 201")
        elif mode in ("mono", "postput"):
            reg.post_put(repo, blob)
        else:
            reg.chunked(repo, blob, chunk_size)
    reg.put_manifest(repo, tag, image_manifest((config.digest, config.size), [(b.digest, b.size) for b in blobs]))
    seconds = time.perf_counter() - started
    total = sum(b.size for b in blobs)
    return {"seconds": seconds, "bytes": total, "mibs": total / MiB / seconds, "method": method}


# ---------------------------------------------------------------------------------------------
# Large pull


def pull(port: int, path: str, size: int, clients: int = 20) -> Sample:
    """`clients` threads each GET `path` at once over raw sockets, discarding into a reused 1 MiB buffer."""
    buffers = [bytearray(MiB) for _ in range(clients)]
    results: list[Fetched | BaseException | None] = [None] * clients
    gate = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        gate.wait()
        try:
            results[i] = get_discard(port, path, buffers[i])
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    cpu = time.process_time()
    started = time.perf_counter()
    gate.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    good = [r for r in results if isinstance(r, Fetched) and r.status == 200 and r.size == size]
    failures = [repr(r) if not isinstance(r, Fetched) else f"HTTP {r.status}, {r.size} of {size} bytes"
                for r in results if r not in good]
    latencies = [r.seconds for r in good]
    received = sum(r.size for r in good)
    return {
        "clients": clients, "wall_seconds": wall, "bytes": received, "mibs": received / MiB / wall,
        "latencies": latencies, "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
        "client_cpu_seconds": cpu, "failures": failures,
    }


# ---------------------------------------------------------------------------------------------
# Small requests with wrk

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(text: str) -> Sample:
    """Requests/sec, the --latency percentiles in ms, and the error lines of wrk's report."""
    out: Sample = {}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(rps.group(1)) if rps else float("nan")
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        out[f"p{pct}_ms"] = float(value) * _UNITS[unit]
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    out["requests"] = int(total.group(1)) if total else 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx_3xx"] = int(non2xx.group(1)) if non2xx else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                    (int(g) for g in sock.groups()), strict=True)) if sock else {}
    return out


def wrk(url: str, script: Path, seconds: int, connections: int = 64, threads: int = 2,
        warmup: int = 1) -> Sample:
    binary = find_tool("wrk") or "wrk"

    def run(duration: int) -> str:
        cmd = [binary, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency",
               "-s", str(script), url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"wrk exited with {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    if warmup:
        run(warmup)
    raw = run(seconds)
    return {**parse_wrk(raw), "seconds": seconds, "connections": connections, "threads": threads, "raw": raw}


# ---------------------------------------------------------------------------------------------
# Listing

_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def walk_pages(reg: Registry, path: str, n: int = 100) -> Sample:
    """Follow the Link header from `path?n=` to the end; time each page's request and response."""
    url: str | None = f"{path}?n={n}"
    times: list[float] = []
    items = 0
    while url:
        started = time.perf_counter()
        response = reg.http.get(url)
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise HTTPFailure(f"GET {url}", response)
        body = response.json()
        items += len(body.get("repositories") or body.get("tags") or [])
        link = _NEXT.search(response.headers.get("link", ""))
        url = link.group(1) if link else None
        if len(times) > 100_000:
            raise RuntimeError(f"GET {path}: more than 100,000 pages; is the Link header looping?")
    return {"page_seconds": times, "pages": len(times), "items": items,
            "median_ms": statistics.median(times) * 1000 if times else float("nan")}


def count_catalog(reg: Registry) -> int:
    return int(walk_pages(reg, "/v2/_catalog", n=1000)["items"])


# ---------------------------------------------------------------------------------------------
# Memory during a streamed push


def stream_chunks(size: int, block: bytes, label: str) -> Iterator[bytes]:
    """`size` bytes, made one `block` at a time with a distinct prefix; nothing is kept."""
    for i in range(size // len(block)):
        yield f"{label}/{i}".encode().ljust(32, b"\0") + block[32:]


def stream_digest(size: int, block: bytes, label: str) -> str:
    hasher = hashlib.sha256()
    for chunk in stream_chunks(size, block, label):
        hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def streamed_push(reg: Registry, repo: str, size: int, block: bytes, label: str,
                  monitor: RssMonitor, key: str) -> Sample:
    """Push `size` generated bytes in one streamed PATCH; RSS growth = peak during it minus just before."""
    digest = stream_digest(size, block, label)  # a first pass, untimed, so the push itself hashes nothing
    baseline = monitor.sample()[key]
    started_at = time.monotonic()
    started = time.perf_counter()
    reg.streamed(repo, size, stream_chunks(size, block, label), digest)
    seconds = time.perf_counter() - started
    after = monitor.sample()[key]
    peak = monitor.peak(key, started_at)
    return {"bytes": size, "seconds": seconds, "mibs": size / MiB / seconds, "rss_before": baseline,
            "rss_peak": peak, "rss_after": after, "growth_mib": max(0, peak - baseline) / MiB}


# ---------------------------------------------------------------------------------------------
# Seeding (untimed)


def run_parallel(base_url: str, jobs: Sequence[Callable[[Registry], None]], workers: int,
                 on_error: Callable[[BaseException], None], attempts: int = 3) -> int:
    """Run each job with a per-thread client, retrying a failed job; returns how many failed for good."""
    local = threading.local()
    clients: list[Registry] = []
    lock = threading.Lock()

    def client() -> Registry:
        reg: Registry | None = getattr(local, "reg", None)
        if reg is None:
            reg = Registry(base_url)
            local.reg = reg
            with lock:
                clients.append(reg)
        return reg

    def attempt(job: Callable[[Registry], None]) -> bool:
        for _ in range(attempts):
            try:
                job(client())
                return True
            except Exception as exc:
                on_error(exc)
        return False

    try:
        with ThreadPoolExecutor(workers) as pool:
            return sum(not ok for ok in pool.map(attempt, jobs))
    finally:
        for reg in clients:
            reg.close()
