"""`portside serve`: prepare the data directory and database, then become the server supervisor.

Migrations and the first-start bootstrap run here, once, before any worker starts. This process
then execs `portside.serving.supervisor` (same PID, so signals and process managers see one
server), which drops every module loaded so far: the parent stays small for the server's lifetime.
"""

from __future__ import annotations

import logging
import os
import sys

from portside.bootstrap import bootstrap
from portside.config import SETTINGS_ENV, Settings
from portside.logs import configure_logging
from portside.metadata.database import migrate
from portside.storage.private import make_private

log = logging.getLogger("portside")

# glibc gives each thread that allocates its own malloc arena; the sendfile and database threads
# would each keep one. Two per process hold the workers' memory flat under load.
MALLOC_ARENAS = "2"


def prepare(settings: Settings) -> None:
    make_private(settings)  # before anything is created: the workers inherit the umask
    migrate(settings.database_url)
    if settings.open_registry:
        log.warning("authentication is OFF (--no-auth): anyone who can reach this port may push, pull and delete")
    else:
        bootstrap(settings)


def serve(settings: Settings) -> None:
    configure_logging(settings.log)
    prepare(settings)
    scheme = "https" if settings.tls.cert else "http"
    log.info(
        "portside listening on %s://%s:%d with %d worker(s); data in %s",
        scheme, settings.host, settings.port, settings.worker_count, settings.data_dir.absolute(),
    )
    os.environ[SETTINGS_ENV] = settings.for_workers()
    os.environ.setdefault("MALLOC_ARENA_MAX", MALLOC_ARENAS)
    argv = [
        sys.executable, "-m", "portside.serving.supervisor",
        "--host", settings.host, "--port", str(settings.port), "--workers", str(settings.worker_count),
        "--log-format", settings.log.format, "--log-level", settings.log.level,
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
