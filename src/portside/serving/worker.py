"""One server worker process: the app on uvicorn (uvloop, httptools), on the socket the supervisor holds.

Settings arrive as JSON in the environment (see `portside.server`). uvicorn handles SIGTERM: the
worker stops accepting, lets requests in flight finish, runs the app's shutdown, and exits.
"""

from __future__ import annotations

import argparse
import gc
import socket
import sys

import uvicorn

from portside.app import create_app
from portside.config import Settings
from portside.logs import configure
from portside.serving.sendfile import PathsendProtocol, share_pump

GRACEFUL_SECONDS = 25  # under the supervisor's grace period, so the app's shutdown still runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portside.serving.worker")
    parser.add_argument("--fd", type=int, required=True, help="the listening socket, inherited")
    parser.add_argument("--pump-fd", type=int, help="a channel to the supervisor's sendfile pump, inherited")
    args = parser.parse_args(argv)
    if args.pump_fd is not None:
        share_pump(socket.socket(fileno=args.pump_fd))
    settings = Settings.for_this_worker()
    configure(settings.log.format, settings.log.level)
    configure(settings.log.format, "debug" if settings.log.level == "debug" else "warning", loggers=("uvicorn",))
    sock = socket.socket(fileno=args.fd)
    config = uvicorn.Config(
        create_app(settings),
        loop="uvloop",
        http=PathsendProtocol.with_deadlines(settings.server.request_header_timeout_seconds,
                                             settings.server.request_body_idle_timeout_seconds),
        lifespan="on",
        access_log=False,  # Portside's own access log (settings.log.access_log) is the app's middleware
        log_config=None,
        server_header=False,
        timeout_keep_alive=settings.server.keepalive_timeout_seconds,  # type: ignore[arg-type]
        # X-Forwarded-* only from the configured proxies: uvicorn's default believes any local client
        proxy_headers=bool(settings.server.trusted_proxies),
        forwarded_allow_ips=settings.server.trusted_proxies,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        ssl_certfile=str(settings.tls.cert) if settings.tls.cert else None,
        ssl_keyfile=str(settings.tls.key) if settings.tls.key else None,
    )
    server = uvicorn.Server(config)
    # Everything built so far lives as long as the process: keep the cyclic GC from re-walking it
    # (a full collection over it stalled requests for tens of milliseconds).
    gc.freeze()
    server.run(sockets=[sock])
    return 0 if server.started else 3


if __name__ == "__main__":
    sys.exit(main())
