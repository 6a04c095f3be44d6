"""The server's parent process: one listening socket, N worker processes, restarts, graceful stop.

`portside serve` prepares the data directory, then execs this module, so the process that stays
up for the server's lifetime holds only the standard library (about 17 MiB, not the ~100 MiB the
app's imports cost). Each worker (`portside.serving.worker`) inherits the socket and runs the app;
the kernel spreads connections across them. The supervisor also hosts the server's one sendfile
pump, which sends the workers' blob bodies (`shared_pump.py`).

On SIGTERM or SIGINT the workers are told to stop: each stops accepting, lets requests in flight
finish, and exits; a worker still running after the grace period is killed.
"""

from __future__ import annotations

import argparse
import logging
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from portside.logs import configure
from portside.serving.pump import new_pump
from portside.serving.shared_pump import PumpHost

log = logging.getLogger("portside")

QUICK_DEATH_SECONDS = 10.0  # a worker dying sooner than this after its start counts as a failed start
MAX_QUICK_DEATHS = 5  # in a row, in one slot: give up rather than restart forever
RESTART_DELAY_SECONDS = 1.0


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to the hard limit, as Go programs (Distribution
    among them) do at start; the workers inherit it. Every pull in flight holds two descriptors in
    the supervisor's pump and a connection in a worker, and a soft limit of 1,024 (systemd's default)
    would cap the server near 500 concurrent pulls. Returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:  # the kernel still caps descriptors at fs.nr_open
        try:
            target = int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            target = 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as exc:
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)
        return soft
    return target


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    def __init__(self, sock: socket.socket, workers: int, grace_seconds: float) -> None:
        self.sock = sock
        self.count = workers
        self.grace_seconds = grace_seconds
        self.procs: dict[int, subprocess.Popen[bytes]] = {}  # slot -> process
        self.started: dict[int, float] = {}
        self.quick_deaths: dict[int, int] = {}
        self.stopping = False
        # The one sendfile pump of the server (shared_pump.py).
        self.pump = PumpHost(new_pump())

    def spawn(self, slot: int) -> None:
        with self.pump.channel() as channel:
            args = [sys.executable, "-m", "portside.serving.worker", "--fd", str(self.sock.fileno()),
                    "--pump-fd", str(channel.fileno())]
            self.procs[slot] = subprocess.Popen(args, pass_fds=(self.sock.fileno(), channel.fileno()))
        self.started[slot] = time.monotonic()

    def request_stop(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        for slot in range(self.count):
            self.spawn(slot)
        code = 0
        while not self.stopping:
            time.sleep(0.2)
            for slot, proc in list(self.procs.items()):
                status = proc.poll()
                if status is None or self.stopping:
                    continue
                lived = time.monotonic() - self.started[slot]
                self.quick_deaths[slot] = self.quick_deaths.get(slot, 0) + 1 if lived < QUICK_DEATH_SECONDS else 0
                if self.quick_deaths[slot] >= MAX_QUICK_DEATHS:
                    log.error("worker %d keeps failing to start (exit status %s); stopping the server", slot + 1,
                              status)
                    self.stopping, code = True, 1
                    break
                log.warning("worker %d (pid %d) exited with status %s; starting a new one", slot + 1, proc.pid,
                            status)
                time.sleep(RESTART_DELAY_SECONDS)
                self.spawn(slot)
        self.stop_workers()
        return code

    def stop_workers(self) -> None:
        self.sock.close()  # the workers hold their own copies until they stop accepting
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        for proc in self.procs.values():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d still busy after %.0f s; killing it", proc.pid, self.grace_seconds)
                proc.kill()
                proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portside.serving.supervisor")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--grace-seconds", type=float, default=30.0)
    parser.add_argument("--log-format", default="text")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    configure(args.log_format, args.log_level)
    raise_open_files_limit()
    try:
        sock = listen(args.host, args.port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, exc.strerror or exc)
        return 1
    return Supervisor(sock, args.workers, args.grace_seconds).run()


if __name__ == "__main__":
    sys.exit(main())
