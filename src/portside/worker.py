"""`portside worker`: the job workers and the cron scheduler in a process of their own."""

from __future__ import annotations

import asyncio
import logging
import signal

from portside.app import build, running
from portside.config import Settings
from portside.logs import configure_logging
from portside.metadata.database import migrate
from portside.storage.private import make_private

log = logging.getLogger("portside")


async def run_worker(settings: Settings) -> None:
    configure_logging(settings.log)
    make_private(settings)
    await asyncio.to_thread(migrate, settings.database_url)
    services = await build(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running(services, run_jobs=True):
        log.info("portside worker running; data in %s", settings.data_dir.absolute())
        await stop.wait()
        log.info("portside worker stopping")
