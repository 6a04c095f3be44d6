#!/usr/bin/env python3
"""Side-by-side benchmark of Portside, CNCF Distribution and nginx on this machine.

    .venv/bin/python bench/run.py [--rounds 3] [--quick] [--out bench/results/latest.json]

It starts the three servers on 127.0.0.1 with their state in a temporary directory, seeds them,
runs the workloads in interleaved rounds (Portside, Distribution, nginx, Portside, ...), prints a
table of medians (min..max over rounds) with Portside's ratios to the others, and writes every raw
sample to --out. It reports figures; it never passes or fails. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from portbench import report
from portbench.client import (
    EMPTY_DIGEST,
    MANIFEST_ACCEPT,
    Blob,
    HTTPFailure,
    Registry,
    image_manifest,
)
from portbench.servers import (
    REPO_ROOT,
    Distribution,
    Nginx,
    Portside,
    RssMonitor,
    ServerProcess,
    export_source,
    find_tool,
    missing_tools,
    portside_binary,
)
from portbench.workloads import (
    MiB,
    Sample,
    count_catalog,
    derive_blobs,
    pull,
    push,
    run_parallel,
    streamed_push,
    walk_pages,
    wrk,
)

BENCH = Path(__file__).resolve().parent
PULL_REPO = "bench/pull"
TINY_REPO = "bench/tiny"
TAGS_REPO = "bench/tags"
STREAM_REPO = "bench/stream"
PUSH_SETS = (("1m", 20, MiB), ("100m", 3, 100 * MiB))
PUSH_MODES = ("mono", "postput", "chunked")
TAG_COUNT = 1_000
CATALOG_SIZES = (1_000, 10_000)
LIST_WALKS = 5  # walks of the 10-page listings per round; the 100-page catalog is walked once
SETTLE_SECONDS = 0.5  # after the sync before each timed sample: let the flusher threads go idle


def push_repo(size: str, mode: str) -> str:
    return f"bench/push-{size}-{mode}"


class Bench:
    def __init__(self, args: argparse.Namespace, workroot: Path) -> None:
        self.args = args
        self.workroot = workroot
        self.wrk_seconds = 3 if args.quick else 10
        self.stream_bytes = (512 if args.quick else 2048) * MiB
        self.portside_commit = ""
        source: Path | None = None
        if args.portside_rev:
            source = workroot / "portside-source"
            self.portside_commit = export_source(args.portside_rev, source)
        self.portside = Portside(workroot / "portside", source)
        self.distribution = Distribution(workroot / "distribution")
        self.nginx = Nginx(workroot / "nginx")
        self.servers: dict[str, ServerProcess] = {s.key: s for s in (self.portside, self.distribution, self.nginx)}
        self.registries = ("portside", "distribution")
        self.clients: dict[str, Registry] = {}
        self.monitor: RssMonitor | None = None
        self.samples: dict[str, dict[str, list[float]]] = {}
        self.rounds: list[dict[str, dict[str, Any]]] = []
        self.catalog_10k: list[dict[str, Any]] = []
        self.setup_info: dict[str, Any] = {}
        self.errors: list[dict[str, Any]] = []
        self.dead: set[str] = set()
        self.started = time.monotonic()
        self.load_at_start = loadavg()
        self.working_tree = "working tree at " + _first_line(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"])
        self.single_post: dict[str, bool] = {}

    # -- bookkeeping -----------------------------------------------------------------------------

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {message}", flush=True)

    def error(self, server: str, workload: str, round_no: int | None, exc: BaseException | str) -> None:
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        entry = {"server": server, "workload": workload, "round": round_no, "error": text,
                 "at_seconds": round(time.monotonic() - self.started, 1)}
        if not isinstance(exc, str | HTTPFailure):
            entry["traceback"] = "".join(traceback.format_exception(exc))[-2000:]
        self.errors.append(entry)
        self.log(f"  ERROR {server} {workload}: {text[:300]}")

    def add(self, figure: str, server: str, value: float) -> None:
        self.samples.setdefault(figure, {}).setdefault(server, []).append(value)

    def check_alive(self, workload: str, round_no: int | None) -> None:
        for key, server in self.servers.items():
            if key not in self.dead and not server.alive():
                self.dead.add(key)
                code = server.proc.returncode if server.proc else None
                self.error(key, workload, round_no, f"process exited (code {code}); log tail:\n{server.log_tail()}")

    def attempt(self, server: str, workload: str, round_no: int | None, call: Callable[[], Sample]) -> Sample | None:
        if server in self.dead:
            return None
        settle()
        try:
            return call()
        except Exception as exc:
            self.error(server, workload, round_no, exc)
            return None
        finally:
            self.check_alive(workload, round_no)

    # -- setup -----------------------------------------------------------------------------------

    def setup(self) -> None:
        rng = random.Random(20_261_127)
        self.base = rng.randbytes(100 * MiB)
        self.block = rng.randbytes(MiB)
        self.pull_blob = Blob.of(self.base)
        self.empty = Blob.of(b"")
        assert self.empty.digest == EMPTY_DIGEST
        self.config = Blob.of(json.dumps({"architecture": "amd64", "os": "linux",
                                          "rootfs": {"type": "layers", "diff_ids": []}}).encode())
        self.tiny_layer = Blob.of(rng.randbytes(1024))
        self.pull_manifest = image_manifest((self.config.digest, self.config.size),
                                            [(self.pull_blob.digest, self.pull_blob.size)])
        self.tiny_manifest = image_manifest((self.config.digest, self.config.size),
                                            [(self.tiny_layer.digest, self.tiny_layer.size)])
        self.blob_path = f"/v2/{PULL_REPO}/blobs/{self.pull_blob.digest}"
        self.head_path = f"/v2/{PULL_REPO}/blobs/{EMPTY_DIGEST}"
        self.manifest_path = f"/v2/{PULL_REPO}/manifests/latest"

        blobs_dir = self.nginx.www / "v2" / PULL_REPO / "blobs"
        blobs_dir.mkdir(parents=True)
        (blobs_dir / self.pull_blob.digest).write_bytes(self.base)
        (blobs_dir / EMPTY_DIGEST).write_bytes(b"")
        manifests_dir = self.nginx.www / "v2" / PULL_REPO / "manifests"
        manifests_dir.mkdir(parents=True)
        (manifests_dir / "latest").write_bytes(self.pull_manifest)

        for server in self.servers.values():
            self.log(f"starting {server.label} on {server.url}")
            server.start()
        self.monitor = RssMonitor({key: s.pid for key, s in self.servers.items()})
        self.monitor.start()

        for key in self.registries:
            started = time.perf_counter()
            reg = self.clients[key] = Registry(self.servers[key].url)
            self.single_post[key] = reg.single_post("bench/probe", self.tiny_layer)
            reg.push_image(PULL_REPO, self.config, [self.pull_blob], "latest")
            reg.post_put(PULL_REPO, self.empty)
            for repo in (TINY_REPO, STREAM_REPO, *(push_repo(s, m) for s, _, _ in PUSH_SETS for m in PUSH_MODES)):
                reg.push_image(repo, self.config, [self.tiny_layer], "seed")
            reg.push_image(TAGS_REPO, self.config, [self.tiny_layer], "t0000")
            self.setup_info[key] = {"single_post_supported": self.single_post[key],
                                    "fixed_repos_seconds": time.perf_counter() - started}
            self.seed_tags(key)
            self.seed_catalog(key, CATALOG_SIZES[0])
        self.sanity_check()

    def seed_tags(self, key: str) -> None:
        started = time.perf_counter()
        manifest = self.tiny_manifest

        def job(tag: str) -> Callable[[Registry], None]:
            def run(reg: Registry) -> None:
                reg.put_manifest(TAGS_REPO, tag, manifest)
            return run

        failed = run_parallel(self.servers[key].url, [job(f"t{i:04d}") for i in range(1, TAG_COUNT)], 8,
                              lambda exc: self.error(key, "seed tags", None, exc))
        seconds = time.perf_counter() - started
        self.setup_info[key]["seed_tags"] = {"tags": TAG_COUNT, "seconds": seconds, "failed": failed}
        self.log(f"{self.servers[key].label}: tagged {TAG_COUNT:,} tags in {seconds:.1f} s")

    def seed_catalog(self, key: str, total: int) -> None:
        """Add repositories catalog/rNNNNN up to `total`, each holding the tiny image.

        Each costs two cross-repository blob mounts and a manifest PUT. (An empty image index would
        be one request, but Distribution leaves a repository without layers out of its catalog.)
        """
        reg = self.clients[key]
        have = count_catalog(reg)
        started = time.perf_counter()
        info = self.setup_info[key]
        existing = info.setdefault("catalog_seeded", 0)
        names = [f"catalog/r{i:05d}" for i in range(existing, existing + max(0, total - have))]
        manifest, config, layer = self.tiny_manifest, self.config.digest, self.tiny_layer.digest

        def job(name: str) -> Callable[[Registry], None]:
            def run(reg: Registry) -> None:
                reg.mount(name, config, TINY_REPO)
                reg.mount(name, layer, TINY_REPO)
                reg.put_manifest(name, "latest", manifest)
            return run

        failed = run_parallel(self.servers[key].url, [job(n) for n in names], 16,
                              lambda exc: self.error(key, f"seed catalog to {total:,}", None, exc))
        seeded = len(names)
        self.setup_info[key]["catalog_seeded"] = existing + seeded
        seconds = time.perf_counter() - started
        now = count_catalog(reg)
        self.setup_info[key][f"seed_catalog_{total}"] = {"added": seeded, "seconds": seconds, "failed": failed,
                                                         "repositories": now}
        self.log(f"{self.servers[key].label}: catalog {have:,} -> {now:,} repositories "
                 f"({seeded:,} added in {seconds:.1f} s, {failed} failed)")
        if now != total:
            self.error(key, f"seed catalog to {total:,}", None, f"_catalog lists {now:,} repositories, not {total:,}")

    def sanity_check(self) -> None:
        """Each server answers the exact requests wrk and the pull clients will send."""
        for key, server in self.servers.items():
            reg = self.clients.get(key) or Registry(server.url)
            try:
                got = reg.get(self.manifest_path, accept=MANIFEST_ACCEPT)
                if got.status_code != 200 or got.content != self.pull_manifest:
                    self.error(key, "sanity", None, f"manifest GET: HTTP {got.status_code}, {len(got.content)} bytes")
                head = reg.http.head(self.head_path)
                if head.status_code != 200 or head.headers.get("content-length") != "0":
                    self.error(key, "sanity", None, f"blob HEAD: HTTP {head.status_code} {dict(head.headers)}")
                head = reg.http.head(self.blob_path)
                if head.headers.get("content-length") != str(self.pull_blob.size):
                    self.error(key, "sanity", None, f"large blob HEAD: HTTP {head.status_code}")
            finally:
                if key not in self.clients:
                    reg.close()

    # -- rounds ----------------------------------------------------------------------------------

    def run_round(self, round_no: int) -> None:
        raw: dict[str, dict[str, Any]] = {}
        self.rounds.append(raw)
        started_at = time.monotonic()
        self.log(f"round {round_no}: pushes")
        for size_name, count, size in PUSH_SETS:
            for mode in PUSH_MODES:
                blobs = derive_blobs(self.base, size, count, f"r{round_no}-{size_name}-{mode}")
                workload = f"push_{size_name}_{mode}"
                for key in self.registries:
                    reg = self.clients[key]
                    sample = self.attempt(key, workload, round_no, partial(
                        push, reg, push_repo(size_name, mode), blobs, mode, self.config,
                        f"r{round_no}", self.single_post[key]))
                    if sample:
                        raw.setdefault(workload, {})[key] = sample
                        self.add(workload, key, sample["mibs"])
                del blobs

        self.log(f"round {round_no}: large pull")
        for key, server in self.servers.items():
            sample = self.attempt(key, "pull", round_no,
                                  partial(pull, server.port, self.blob_path, self.pull_blob.size))
            if sample:
                raw.setdefault("pull", {})[key] = sample
                if sample["failures"]:
                    self.error(key, "pull", round_no, f"{len(sample['failures'])} of 20 GETs failed: "
                               f"{sample['failures'][:3]}")
                if sample["latencies"]:
                    self.add("pull_mibs", key, sample["mibs"])
                    self.add("pull_p50", key, sample["p50"])
                    self.add("pull_p99", key, sample["p99"])

        for workload, path, script in (("manifest", self.manifest_path, "manifest_get.lua"),
                                       ("head", self.head_path, "blob_head.lua")):
            self.log(f"round {round_no}: {workload} with wrk ({self.wrk_seconds} s each)")
            for key, server in self.servers.items():
                sample = self.attempt(key, workload, round_no, partial(
                    wrk, server.url + path, BENCH / "wrk" / script, self.wrk_seconds))
                if sample:
                    raw.setdefault(workload, {})[key] = sample
                    bad = sample["non_2xx_3xx"] + sum(sample["socket_errors"].values())
                    if bad:
                        self.error(key, workload, round_no, f"wrk saw {sample['non_2xx_3xx']} non-2xx/3xx "
                                   f"responses and socket errors {sample['socket_errors']} "
                                   f"in {sample['requests']} requests")
                    self.add(f"{workload}_rps", key, sample["rps"])
                    self.add(f"{workload}_p50_ms", key, sample.get("p50_ms", float("nan")))
                    self.add(f"{workload}_p99_ms", key, sample.get("p99_ms", float("nan")))

        self.log(f"round {round_no}: listings")
        for workload, path, figure in (("tags", f"/v2/{TAGS_REPO}/tags/list", "tags_page_ms"),
                                       ("catalog_1k", "/v2/_catalog", "catalog_1k_page_ms")):
            for key in self.registries:
                sample = self.attempt(key, workload, round_no, partial(self.walks, key, path))
                if sample:
                    raw.setdefault(workload, {})[key] = sample
                    self.add(figure, key, sample["median_ms"])

        self.log(f"round {round_no}: streamed push of {self.stream_bytes // MiB} MiB")
        monitor = self.monitor
        assert monitor is not None
        for key in self.registries:
            sample = self.attempt(key, "stream", round_no, partial(
                streamed_push, self.clients[key], STREAM_REPO, self.stream_bytes, self.block,
                f"r{round_no}-stream", monitor, key))
            if sample:
                raw.setdefault("stream", {})[key] = sample
                self.add("stream_mibs", key, sample["mibs"])
                self.add("stream_rss_growth_mib", key, sample["growth_mib"])

        for key in self.servers:
            peak = monitor.peak(key, started_at)
            raw.setdefault("rss_round_peak", {})[key] = peak
            self.add("rss_round_peak_mib", key, peak / MiB)
        self.log(f"round {round_no} done in {time.monotonic() - started_at:.0f} s")

    def walks(self, key: str, path: str, times: int = LIST_WALKS) -> Sample:
        walks = [walk_pages(self.clients[key], path) for _ in range(times)]
        pages = [t for w in walks for t in w["page_seconds"]]
        ordered = sorted(pages)
        median = (ordered[len(ordered) // 2] + ordered[(len(ordered) - 1) // 2]) / 2
        return {"walks": times, "pages_per_walk": walks[0]["pages"], "items_per_walk": walks[0]["items"],
                "page_seconds": pages, "median_ms": median * 1000}

    def run_catalog_10k(self) -> None:
        for key in self.registries:
            if key not in self.dead:
                self.seed_catalog(key, CATALOG_SIZES[1])
        for round_no in range(1, self.args.rounds + 1):
            self.log(f"catalog at {CATALOG_SIZES[1]:,}: round {round_no}")
            raw: dict[str, Any] = {}
            self.catalog_10k.append(raw)
            for key in self.registries:
                sample = self.attempt(key, "catalog_10k", round_no,
                                      partial(self.walks, key, "/v2/_catalog", times=1))
                if sample:
                    raw[key] = sample
                    self.add("catalog_10k_page_ms", key, sample["median_ms"])
                    at_1k = self.rounds[round_no - 1].get("catalog_1k", {}).get(key)
                    if at_1k:
                        self.add("catalog_ratio", key, sample["median_ms"] / at_1k["median_ms"])

    # -- whole run -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.setup()
        for round_no in range(1, self.args.rounds + 1):
            self.run_round(round_no)
        self.run_catalog_10k()
        monitor = self.monitor
        assert monitor is not None
        monitor.sample()
        for key in self.servers:
            self.add("rss_peak_mib", key, monitor.peak(key) / MiB)
        return self.results()

    def stop(self) -> None:
        for reg in self.clients.values():
            reg.close()
        if self.monitor is not None:
            self.monitor.stop()
        for server in self.servers.values():
            server.stop()

    def results(self) -> dict[str, Any]:
        summary = report.summarize(self.samples)
        monitor = self.monitor
        assert monitor is not None
        rss = {key: [[round(t - self.started, 2), b] for t, b in values] for key, values in monitor.samples.items()}
        return {
            "meta": {**machine_info(self.args), "portside_flags": self.portside.flags,
                     "portside_commit": self.portside_commit or self.working_tree,
                     "loadavg_at_start": self.load_at_start, "loadavg_at_end": loadavg()},
            "summary": summary,
            "targets": report.targets(summary),
            "setup": self.setup_info,
            "rounds": self.rounds,
            "catalog_10k_rounds": self.catalog_10k,
            "rss_samples_bytes": rss,
            "errors": self.errors,
            "server_logs": {key: log_excerpt(s.log_text()) for key, s in self.servers.items()},
        }


def settle() -> None:
    """Write back every dirty page before a timed sample, untimed. Distribution never fsyncs: without
    this, the kernel writes its pushed data back tens of seconds later, in the middle of whichever
    server is being measured then, and Portside's fsyncs wait behind the journal that carries it."""
    os.sync()
    time.sleep(SETTLE_SECONDS)


def loadavg() -> str:
    """1, 5 and 15 minute load averages: other work on the machine shows up here."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def log_excerpt(text: str, limit: int = 60) -> list[str]:
    """Lines of a server log that look like trouble."""
    pattern = re.compile(r"error|traceback|exception|critical|fatal|panic|warn|respawn|killed|exited", re.I)
    expected = re.compile(r"authentication is OFF")  # we start it with --no-auth on purpose
    lines = [line for line in text.splitlines() if pattern.search(line) and not expected.search(line)]
    return lines[:limit] + ([f"... {len(lines) - limit} more"] if len(lines) > limit else [])


def _first_line(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except OSError as exc:
        return str(exc)
    return (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else ""


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "distribution": _first_line([find_tool("docker-registry") or "docker-registry", "--version"]),
        "nginx": _first_line([find_tool("nginx") or "nginx", "-v"]),
        "wrk": _first_line([find_tool("wrk") or "wrk", "-v"]),
        "rounds": args.rounds, "quick": args.quick,
        "wrk_seconds": 3 if args.quick else 10, "stream_mib": 512 if args.quick else 2048,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="3 s wrk runs and a 512 MiB streamed push instead of 10 s and 2 GiB")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "latest.json",
                        help="where to write the raw samples and medians as JSON")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where to make the temporary directory for the servers' data (default: $TMPDIR or /tmp)")
    parser.add_argument("--portside-rev", metavar="REV", default=None,
                        help="run Portside from this git revision's src/ (exported to the temporary directory) "
                             "instead of the working tree; the venv's dependencies are used either way")
    parser.add_argument("--keep", action="store_true", help="leave the servers' data behind for inspection")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    missing = missing_tools()
    if missing:
        for tool, package in missing:
            print(f"bench: `{tool}` is not installed; it comes with the Debian package {package}", file=sys.stderr)
        packages = " ".join(sorted({p for _, p in missing}))
        print(f"bench: install with `apt-get install {packages}` or run bench/setup.sh", file=sys.stderr)
        return 2
    if not portside_binary().exists():
        print(f"bench: {portside_binary()} not found; install Portside into .venv first "
              "(`.venv/bin/pip install -e '.[test]'`)", file=sys.stderr)
        return 2

    workroot = Path(tempfile.mkdtemp(prefix="portside-bench-", dir=args.workdir))
    try:
        bench = Bench(args, workroot)
    except (subprocess.CalledProcessError, OSError) as exc:
        shutil.rmtree(workroot, ignore_errors=True)
        print(f"bench: cannot prepare Portside {args.portside_rev or ''}: {exc}", file=sys.stderr)
        return 2
    try:
        results = bench.run()
    except BaseException as exc:
        bench.stop()
        cleanup(workroot, args.keep)
        if isinstance(exc, KeyboardInterrupt):
            print("bench: interrupted", file=sys.stderr)
            return 130
        raise
    bench.stop()
    try:
        print_results(args, results)
    finally:
        cleanup(workroot, args.keep)
    return 0


def cleanup(workroot: Path, keep: bool) -> None:
    if keep:
        print(f"bench: left the servers' data in {workroot}")
        return
    # Tens of thousands of small files: slow where the filesystem discards on every delete.
    print(f"bench: removing {workroot} ...", flush=True)
    shutil.rmtree(workroot, ignore_errors=True)


def print_results(args: argparse.Namespace, results: dict[str, Any]) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    meta = results["meta"]
    print()
    print(f"{meta['date']}  {meta['cores']} cores ({meta['cpu']}), {meta['memory_gib']} GiB, "
          f"kernel {meta['kernel']}; {meta['distribution']}; {meta['nginx']}; {meta['wrk']}; "
          f"Portside {meta['portside_commit']}; {args.rounds} round(s){' --quick' if args.quick else ''}; "
          f"load average {meta['loadavg_at_start']} at start, {meta['loadavg_at_end']} at end")
    print("Medians over rounds (min..max). P/D and P/N: Portside's median over Distribution's and nginx's.")
    print()
    print(report.table(results["summary"]))
    print()
    print("Targets (informational):")
    print(report.targets_text(results["targets"]))
    if results["errors"]:
        print()
        print(f"{len(results['errors'])} error(s) during the run:")
        for e in results["errors"]:
            print(f"  [{e['server']}] {e['workload']} round {e['round']}: {e['error'][:500]}")
    for key, lines in results["server_logs"].items():
        if lines:
            print()
            print(f"{key} log lines that look like trouble:")
            for line in lines[:20]:
                print(f"  {line}")
    print()
    print(f"raw samples and medians written to {args.out}")


if __name__ == "__main__":
    sys.exit(main())
