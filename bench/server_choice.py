"""Which ASGI server? The same Portside app under `portside serve` and under Granian, side by side.

    .venv/bin/pip install granian   # not a Portside dependency; only this comparison needs it
    .venv/bin/python bench/server_choice.py [--seconds 5] [--workers 2]

`portside serve` runs uvicorn (uvloop, httptools) workers whose blob bodies go out with sendfile(2)
(src/portside/serving/sendfile.py); Granian serves the same FileResponse through its own ASGI
`pathsend`, which reads the file into userspace buffers and writes them out. Reports manifest GET
req/s and p99 (wrk, 64 connections) and the aggregate MiB/s of 10 curl clients pulling a 100 MiB
blob at once. It reports; it does not pass or fail.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(server: str, data: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PORTSIDE_LOG__ACCESS_LOG": "false"}
    if server == "portside":
        args = [str(VENV / "portside"), "serve", "--no-auth", "--port", str(port), "--data-dir", str(data),
                "--workers", str(workers)]
    else:
        from portside.config import SETTINGS_ENV, load_settings
        from portside.metadata.database import migrate

        settings = load_settings(None, port=port, data_dir=data, workers=workers, auth={"mode": "none"})
        data.mkdir(parents=True, exist_ok=True)
        migrate(settings.database_url)
        env[SETTINGS_ENV] = settings.for_workers()
        args = [str(VENV / "granian"), "portside.app:app_from_environment", "--factory", "--interface", "asgi",
                "--port", str(port), "--workers", str(workers), "--no-ws", "--log-level", "warning"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server} did not start")


def seed(base: str, layer: bytes) -> None:
    with httpx.Client(base_url=base, timeout=120) as c:
        config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        for blob in (config, layer):
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            assert c.post("/v2/bench/app/blobs/uploads/", params={"digest": digest}, content=blob).status_code == 201
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                "digest": "sha256:" + hashlib.sha256(layer).hexdigest(), "size": len(layer)}]}
        r = c.put("/v2/bench/app/manifests/latest", content=json.dumps(manifest).encode(),
                  headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201, r.text


def wrk(base: str, seconds: int) -> tuple[float, str]:
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", "-H", f"Accept: {OCI_MANIFEST}",
                          f"{base}/v2/bench/app/manifests/latest"], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    return rps, p99


def pull(base: str, digest: str, clients: int) -> float:
    """curl (C, not Python threads) so the client is not what limits the figure."""
    url = f"{base}/v2/bench/app/blobs/{digest}"
    start_time = time.perf_counter()
    procs = [subprocess.Popen(["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", url],
                              stdout=subprocess.PIPE, text=True) for _ in range(clients)]
    total = sum(int(p.communicate()[0] or 0) for p in procs)
    return total / (1 << 20) / (time.perf_counter() - start_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None or not (VENV / "granian").exists():
        sys.exit("needs wrk (apt-get install wrk) and granian in .venv (.venv/bin/pip install granian)")
    layer = os.urandom(100 << 20)
    digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    rows = []
    for server in ("portside", "granian"):
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            proc = start(server, Path(tmp) / "data", port, args.workers)
            try:
                base = f"http://127.0.0.1:{port}"
                seed(base, layer)
                rps, p99 = wrk(base, args.seconds)
                mib_s = pull(base, digest, 10)
                rows.append((server, rps, p99, mib_s))
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    print(f"{'server':10} {'manifest GET req/s':>20} {'p99':>10} {'pull 10x100MiB MiB/s':>22}")
    for server, rps, p99, mib_s in rows:
        print(f"{server:10} {rps:20.0f} {p99:>10} {mib_s:22.0f}")


if __name__ == "__main__":
    main()
