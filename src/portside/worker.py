"""`portside worker`: the job workers and the cron scheduler in a process of their own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from portside.app import build_services, build_worker, load_signing
from portside.config import Settings
from portside.logs import configure_logging
from portside.metadata.changes import listen_for_changes
from portside.metadata.database import migrate
from portside.storage.private import make_private

log = logging.getLogger("portside")


async def run_worker(settings: Settings) -> None:
    configure_logging(settings.log)
    make_private(settings)
    await asyncio.to_thread(migrate, settings.database_url)
    services = build_services(settings)
    signing = await load_signing(settings, services.accounts)
    if signing is not None:
        services.tokens, services.sessions = signing
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(build_worker(services).run()),
             asyncio.create_task(services.scheduler.run(settings.jobs.poll_seconds)),
             asyncio.create_task(services.audit.run(settings.audit.flush_seconds))]
    listen = services.db.listen_url()
    if listen is not None:
        tasks.append(asyncio.create_task(listen_for_changes(listen, services.db.changes)))
    log.info("portside worker running; data in %s", settings.data_dir.absolute())
    await stop.wait()
    log.info("portside worker stopping")
    for task in tasks:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    await services.audit.flush()
    await services.db.close()
