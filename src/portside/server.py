"""Run the ASGI app on Granian: migrations first, then N worker processes.

Granian serves files through ASGI `http.response.pathsend`, so blob bytes go from disk to socket
without passing through Python. On SIGTERM/SIGINT it stops accepting and lets in-flight requests
finish; an upload cut short stays resumable because its bytes and session are on disk.
"""

from __future__ import annotations

import logging
import os

from portside.app import SETTINGS_ENV
from portside.bootstrap import bootstrap
from portside.config import Settings
from portside.logs import configure_logging
from portside.metadata.database import migrate

log = logging.getLogger("portside")


def serve(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    configure_logging(settings.log)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.storage_root.mkdir(parents=True, exist_ok=True)
    migrate(settings.database_url)
    if settings.open_registry:
        log.warning("authentication is OFF (--no-auth): anyone who can reach this port may push, pull and delete")
    else:
        bootstrap(settings)
    os.environ[SETTINGS_ENV] = settings.for_workers()
    scheme = "https" if settings.tls.cert else "http"
    log.info(
        "portside listening on %s://%s:%d with %d worker(s); data in %s",
        scheme, settings.host, settings.port, settings.worker_count, settings.data_dir.absolute(),
    )
    tls: dict[str, object] = {}
    if settings.tls.cert and settings.tls.key:
        from granian.constants import SSLProtocols

        tls = {"ssl_cert": settings.tls.cert, "ssl_key": settings.tls.key, "ssl_protocol_min": SSLProtocols.tls12}
    Granian(
        "portside.app:app_from_environment",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.worker_count,
        loop=Loops.auto,
        http=HTTPModes.auto,
        websockets=False,
        log_level=settings.log.level,  # type: ignore[arg-type]
        respawn_failed_workers=True,
        workers_kill_timeout=30,
        **tls,  # type: ignore[arg-type]
    ).serve()
