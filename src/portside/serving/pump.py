"""Moving file bytes to client sockets with sendfile(2), off the event loop.

One pump thread drives every large transfer, the way nginx's event loop does: epoll says which
connections can take more, and each gets up to TURN_BYTES per turn, so one fast reader cannot
starve the others. The server runs one pump, in the supervisor, for all its workers
(`shared_pump.py`); a worker without it runs its own. With 20 processes pulling one 100 MiB blob
at once, one blocked thread per transfer cost the server about a tenth more CPU (each return from
sendfile woke a thread and took the GIL).

The pump never waits for the disk: before each turn it checks, with RWF_NOWAIT reads, that the
pages it is about to send are in the page cache. A transfer that would read from the disk moves to
a thread of its own, so one cold blob cannot hold up the hot ones. A small cached file skips both:
the caller sends it in one non-blocking call.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the supervisor hosts a pump too, and stays lean: no asyncio there
    import asyncio

log = logging.getLogger("portside.serving")

STALL_SECONDS = 120  # a client that takes nothing for this long loses the connection
TURN_BYTES = 2 << 20
INLINE_MAX = 256 * 1024  # a cached file this small is sent by the caller: no hand-off at all
_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


def cached(in_fd: int, start: int, end: int) -> bool:
    """Whether the pages holding bytes `start` and `end - 1` are in the page cache; never waits."""
    if _NOWAIT is None or end <= start:
        return False
    try:
        for at in (start, end - 1):
            os.preadv(in_fd, [bytearray(1)], at, _NOWAIT)
    except OSError:  # EAGAIN: not cached; EOPNOTSUPP: a filesystem that cannot tell
        return False
    return True


def send_if_cached(out_fd: int, in_fd: int, count: int) -> int:
    """One non-blocking sendfile of a small cached file on the calling thread; returns the bytes
    sent (0: too large, not cached, or the socket is full). A vanished client raises."""
    if count > INLINE_MAX or not cached(in_fd, 0, count):
        return 0
    try:
        return os.sendfile(out_fd, in_fd, 0, count)
    except BlockingIOError:
        return 0


def copy_file_to_socket(out_fd: int, in_fd: int, count: int, offset: int = 0) -> None:
    """Send bytes `offset` up to `count` of the file `in_fd` to the non-blocking socket `out_fd`
    (blocks the thread)."""
    poller = select.poll()
    poller.register(out_fd, select.POLLOUT)
    while offset < count:
        try:
            sent = os.sendfile(out_fd, in_fd, offset, count - offset)
        except BlockingIOError:
            if not poller.poll(STALL_SECONDS * 1000):
                raise TimeoutError(f"client read nothing for {STALL_SECONDS} s") from None
            continue
        if sent == 0:
            raise EOFError(f"the file ended after {offset} of {count} bytes")
        offset += sent


def settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    """Complete `future` with `error`, or with None; a future already done (cancelled) stays as it is."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


Finished = Callable[[BaseException | None], None]  # called once when a transfer ends: None, or why it failed
Watcher = Callable[[int], None]  # called on the pump thread with the epoll events of a watched descriptor


@dataclass(eq=False)
class Transfer:
    """One file being sent to one socket; the pump owns both descriptors until it ends."""

    out_fd: int
    in_fd: int
    offset: int
    count: int
    finished: Finished
    last_progress: float
    abandoned: bool = False  # nobody waits for it any more: end it at the next look
    closed: bool = False


class SendfilePump:
    """Sends files to non-blocking sockets from one thread; see the module's docstring."""

    def __init__(self, threads: ThreadPoolExecutor) -> None:
        self._threads = threads
        self._epoll = select.epoll()
        self._transfers: dict[int, Transfer] = {}
        self._watchers: dict[int, Watcher] = {}
        self._lock = threading.Lock()
        self.handed_to_threads = 0  # transfers that needed the disk
        threading.Thread(target=self._run, name="sendfile-pump", daemon=True).start()

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._transfers)

    def start(self, out_fd: int, in_fd: int, offset: int, count: int, finished: Finished) -> Transfer:
        """Send bytes `offset` up to `count` of `in_fd` to `out_fd`, then call `finished` (from a
        pump or copying thread). Both descriptors belong to the pump from here on: it closes them
        when the transfer ends, however it ends."""
        transfer = Transfer(out_fd, in_fd, offset, count, finished, time.monotonic())
        with self._lock:
            self._transfers[out_fd] = transfer
        try:
            self._epoll.register(out_fd, select.EPOLLOUT)
        except BaseException:
            with self._lock:  # not taken after all: the caller still owns the descriptors
                del self._transfers[out_fd]
            raise
        return transfer

    @staticmethod
    def abandon(transfer: Transfer) -> None:
        """The requester has gone: the pump drops the transfer at its next turn or sweep."""
        transfer.abandoned = True

    def send(self, out_fd: int, in_fd: int, offset: int, count: int) -> asyncio.Future[None]:
        """`start`, for the running event loop: the future settles when the transfer ends, and
        cancelling it abandons the transfer."""
        import asyncio  # here, not at the top: see TYPE_CHECKING above

        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def finished(error: BaseException | None) -> None:
            with suppress(RuntimeError):  # the event loop is gone: nobody waits any more
                loop.call_soon_threadsafe(settle, done, error)

        transfer = self.start(out_fd, in_fd, offset, count, finished)
        done.add_done_callback(lambda future: self.abandon(transfer) if future.cancelled() else None)
        return done

    def watch(self, fd: int, events: int, watcher: Watcher) -> None:
        """Call `watcher` on the pump thread whenever `fd` has any of `events`."""
        with self._lock:
            self._watchers[fd] = watcher
        self._epoll.register(fd, events)

    def rewatch(self, fd: int, events: int) -> None:
        self._epoll.modify(fd, events)

    def unwatch(self, fd: int) -> None:
        with self._lock:
            self._watchers.pop(fd, None)
        with suppress(OSError, ValueError):
            self._epoll.unregister(fd)

    def _run(self) -> None:
        swept = time.monotonic()
        while True:
            for fd, events in self._epoll.poll(1.0):
                with self._lock:
                    transfer = self._transfers.get(fd)
                    watcher = self._watchers.get(fd) if transfer is None else None
                if transfer is not None:
                    try:
                        self._turn(transfer)
                    except Exception as exc:  # never lose the pump (and every transfer) to one surprise
                        self._end(transfer, exc)
                elif watcher is not None:
                    try:
                        watcher(events)
                    except Exception:
                        log.exception("sendfile pump: a watcher failed; it is no longer watched")
                        self.unwatch(fd)
            now = time.monotonic()
            if now - swept >= 1.0:
                swept = now
                self._sweep(now)

    def _turn(self, transfer: Transfer) -> None:
        if transfer.abandoned:
            self._end(transfer, None)
            return
        end = min(transfer.count, transfer.offset + TURN_BYTES)
        if not cached(transfer.in_fd, transfer.offset, end):
            self._to_thread(transfer)
            return
        try:
            while transfer.offset < end:
                sent = os.sendfile(transfer.out_fd, transfer.in_fd, transfer.offset, end - transfer.offset)
                if sent == 0:
                    raise EOFError(f"the file ended after {transfer.offset} of {transfer.count} bytes")
                transfer.offset += sent
                transfer.last_progress = time.monotonic()
        except BlockingIOError:
            return  # the socket is full: epoll says when it can take more
        except (OSError, EOFError) as exc:
            self._end(transfer, exc)
            return
        if transfer.offset >= transfer.count:
            self._end(transfer, None)

    def _sweep(self, now: float) -> None:
        with self._lock:
            transfers = list(self._transfers.values())
        for transfer in transfers:
            if transfer.abandoned:
                self._end(transfer, None)
            elif now - transfer.last_progress > STALL_SECONDS:
                self._end(transfer, TimeoutError(f"client read nothing for {STALL_SECONDS} s"))

    def _detach(self, transfer: Transfer) -> None:
        with self._lock:
            self._transfers.pop(transfer.out_fd, None)
        with suppress(OSError, ValueError):
            self._epoll.unregister(transfer.out_fd)

    def _to_thread(self, transfer: Transfer) -> None:
        self._detach(transfer)
        self.handed_to_threads += 1
        work = self._threads.submit(copy_file_to_socket, transfer.out_fd, transfer.in_fd,
                                    transfer.count, transfer.offset)

        def finished(work: Future[None]) -> None:
            self._close(transfer, work.exception())

        work.add_done_callback(finished)

    def _end(self, transfer: Transfer, error: BaseException | None) -> None:
        self._detach(transfer)
        self._close(transfer, error)

    @staticmethod
    def _close(transfer: Transfer, error: BaseException | None) -> None:
        # Once only: a second close could hit descriptor numbers another thread has reused since.
        # (One thread at a time owns a transfer: the pump, or after a hand-off the copying thread.)
        if transfer.closed:
            return
        transfer.closed = True
        for fd in (transfer.out_fd, transfer.in_fd):
            with suppress(OSError):
                os.close(fd)
        try:
            transfer.finished(error)
        except Exception:
            log.exception("sendfile pump: reporting the end of a transfer failed")


def new_pump() -> SendfilePump:
    """A pump with up to 128 threads for the transfers that must read from the disk."""
    return SendfilePump(ThreadPoolExecutor(max_workers=128, thread_name_prefix="sendfile"))
