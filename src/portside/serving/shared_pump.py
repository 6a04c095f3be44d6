"""One sendfile pump for the whole server: workers hand their transfers to the supervisor's.

Pumps in separate workers compete with each other and with the clients for the cores. With 20
processes pulling one 100 MiB blob from two workers, one shared pump gave 2,892 MiB/s against
2,568 with a pump in each worker (medians of 12, alternating; nginx 2,805), and the clients spent
less CPU per byte. So the supervisor hosts one pump (a thread; it needs no app code), and each
worker sends it a transfer's socket and file descriptors over a Unix socket of its own (SCM_RIGHTS):

    worker -> pump   SEND   id, offset, count   + [socket, file]
    worker -> pump   DROP   id                    (the request was cancelled)
    pump -> worker   id, outcome, message         (once per SEND)

The worker keeps its own copies of the descriptors until the outcome arrives: when the pump could
not take a transfer at all (out of descriptors, say), the worker sends it itself. A worker that has
no channel, or whose channel breaks, uses a pump of its own (`pump.py`).
If a worker dies, its transfers in flight still finish: the pump holds the connections.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import struct
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from portside.serving.pump import SendfilePump, Transfer, settle

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger("portside.serving")

_REQUEST = struct.Struct("<BQQQ")  # kind, id, offset, count
_SEND, _DROP = 1, 2
_REPLY = struct.Struct("<QB")  # id, outcome; then the message, UTF-8
_DONE, _GONE, _STALLED, _FAILED, _REFUSED = 0, 1, 2, 3, 4  # refused: not started, nothing sent
_MESSAGE_MAX = 200


def _outcome(error: BaseException | None) -> int:
    if error is None:
        return _DONE
    if isinstance(error, TimeoutError):
        return _STALLED
    if isinstance(error, ConnectionError) or (isinstance(error, OSError) and error.errno == errno.EPIPE):
        return _GONE
    return _FAILED


def _error(outcome: int, message: str) -> BaseException | None:
    if outcome == _DONE:
        return None
    if outcome == _STALLED:
        return TimeoutError(message)
    if outcome == _GONE:
        return ConnectionError(message)
    return OSError(message)


class _Channel:
    """The pump's end of one worker's Unix socket."""

    def __init__(self, pump: SendfilePump, sock: socket.socket) -> None:
        self.pump = pump
        self.sock = sock
        self.transfers: dict[int, Transfer] = {}  # by the worker's id
        self.unsent: list[bytes] = []  # replies the socket had no room for yet
        self.lock = threading.Lock()  # replies come from the pump thread and from copying threads
        self.closed = False
        self.want_writable = False  # whether epoll also watches for room to write
        sock.setblocking(False)
        pump.watch(sock.fileno(), select.EPOLLIN, self.on_events)

    def on_events(self, events: int) -> None:
        if events & select.EPOLLOUT:
            with self.lock:
                self._flush()
        if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
            self._receive()

    def _receive(self) -> None:
        while True:
            try:
                data, fds, flags, _addr = socket.recv_fds(self.sock, _REQUEST.size, 2)
            except BlockingIOError:
                return
            except OSError:
                data, fds, flags = b"", [], 0
            if not data:  # the worker has gone; its transfers in flight still finish
                self.close()
                for fd in fds:
                    os.close(fd)
                return
            self._handle(data, fds, truncated=bool(flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC)))

    def _handle(self, data: bytes, fds: list[int], truncated: bool = False) -> None:
        if len(data) != _REQUEST.size:
            log.warning("sendfile pump: a malformed request from a worker (%d bytes); ignored", len(data))
            for fd in fds:
                os.close(fd)
            return
        kind, ident, offset, count = _REQUEST.unpack(data)
        if kind == _DROP:
            with self.lock:
                transfer = self.transfers.get(ident)
            if transfer is not None:
                self.pump.abandon(transfer)
            return
        if kind != _SEND or len(fds) != 2 or truncated:
            # Truncated: the descriptors did not fit this process (its open-files limit).
            for fd in fds:
                os.close(fd)
            self.reply(ident, OSError(f"the sendfile pump cannot take this request (kind {kind}, "
                                      f"{len(fds)} descriptors{', truncated' if truncated else ''})"), refused=True)
            return

        def finished(error: BaseException | None) -> None:
            with self.lock:
                self.transfers.pop(ident, None)
            self.reply(ident, error)

        try:
            transfer = self.pump.start(fds[0], fds[1], offset, count, finished)
        except OSError as exc:  # epoll could not take it (out of memory or watches)
            for fd in fds:
                os.close(fd)
            self.reply(ident, exc, refused=True)
            return
        with self.lock:
            if not transfer.closed:
                self.transfers[ident] = transfer

    def reply(self, ident: int, error: BaseException | None, refused: bool = False) -> None:
        outcome = _REFUSED if refused else _outcome(error)
        message = _REPLY.pack(ident, outcome) + str(error or "").encode()[:_MESSAGE_MAX]
        with self.lock:
            if self.closed:
                return
            self.unsent.append(message)
            self._flush()

    def _flush(self) -> None:
        while self.unsent and not self.closed:
            try:
                self.sock.send(self.unsent[0])
            except BlockingIOError:
                if not self.want_writable:
                    self.want_writable = True
                    self.pump.rewatch(self.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)
                return
            except OSError:  # the worker has gone
                self.unsent.clear()
                return
            self.unsent.pop(0)
        if self.want_writable:
            self.want_writable = False
            with suppress(OSError, ValueError):
                self.pump.rewatch(self.sock.fileno(), select.EPOLLIN)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.unsent.clear()
        self.pump.unwatch(self.sock.fileno())
        self.sock.close()


class PumpHost:
    """The supervisor's pump, and a channel to it for each worker it starts."""

    def __init__(self, pump: SendfilePump) -> None:
        self.pump = pump

    def channel(self) -> socket.socket:
        """A new worker's end of a channel to the pump; the caller passes it to the worker and
        then closes its own copy."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        _Channel(self.pump, ours)
        return theirs


@dataclass(eq=False)
class _Handed:
    """A transfer the worker has handed to the pump: its own copies of the descriptors stay open
    until the outcome, in case the pump refuses it."""

    done: asyncio.Future[None]
    out_fd: int
    in_fd: int
    offset: int
    count: int

    def close(self) -> None:
        for fd in (self.out_fd, self.in_fd):
            with suppress(OSError):
                os.close(fd)


class PumpClient:
    """A worker's way to the supervisor's pump, with the interface of `SendfilePump.send`."""

    def __init__(self, sock: socket.socket, fallback: Callable[[], SendfilePump]) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self._new_fallback = fallback
        self._fallback: SendfilePump | None = None
        self.broken = False
        self.refused = 0  # transfers the pump could not take, sent by this worker itself
        self._waiting: dict[int, _Handed] = {}
        self._next_id = 0
        self._reading: asyncio.AbstractEventLoop | None = None

    def send(self, out_fd: int, in_fd: int, offset: int, count: int) -> asyncio.Future[None]:
        """Hand the transfer to the shared pump; both descriptors are given up either way."""
        import asyncio

        if self.broken:
            return self.fallback().send(out_fd, in_fd, offset, count)
        loop = asyncio.get_running_loop()
        if self._reading is not loop:
            loop.add_reader(self.sock.fileno(), self._on_readable)
            self._reading = loop
        self._next_id += 1
        ident = self._next_id
        try:
            socket.send_fds(self.sock, [_REQUEST.pack(_SEND, ident, offset, count)], [out_fd, in_fd])
        except OSError as exc:  # full (the pump is far behind) or gone: this worker sends it itself
            if not isinstance(exc, BlockingIOError):
                self._break(exc)
            return self.fallback().send(out_fd, in_fd, offset, count)
        done: asyncio.Future[None] = loop.create_future()
        self._waiting[ident] = _Handed(done, out_fd, in_fd, offset, count)
        done.add_done_callback(lambda future: self._dropped(ident) if future.cancelled() else None)
        return done

    def fallback(self) -> SendfilePump:
        """This worker's own pump, started the first time the shared one cannot take a transfer."""
        if self._fallback is None:
            self._fallback = self._new_fallback()
        return self._fallback

    def _dropped(self, ident: int) -> None:
        handed = self._waiting.pop(ident, None)
        if handed is None:
            return
        handed.close()
        if not self.broken:
            with suppress(OSError):
                self.sock.send(_REQUEST.pack(_DROP, ident, 0, 0))

    def _on_readable(self) -> None:
        while True:
            try:
                data = self.sock.recv(_REPLY.size + _MESSAGE_MAX)
            except BlockingIOError:
                return
            except OSError as exc:
                self._break(exc)
                return
            if not data:
                self._break(ConnectionError("the sendfile pump closed its channel"))
                return
            ident, outcome = _REPLY.unpack_from(data)
            handed = self._waiting.pop(ident, None)
            if handed is None:
                continue
            if outcome == _REFUSED and not handed.done.done():
                self._send_here(handed, data[_REPLY.size:].decode(errors="replace"))
                continue
            handed.close()
            settle(handed.done, _error(outcome, data[_REPLY.size:].decode(errors="replace")))

    def _send_here(self, handed: _Handed, why: str) -> None:
        """The pump could not take the transfer (and sent nothing): this worker's own pump sends it."""
        self.refused += 1
        log.warning("the shared sendfile pump refused a transfer (%s); this worker sends it", why)
        try:
            inner = self.fallback().send(handed.out_fd, handed.in_fd, handed.offset, handed.count)
        except OSError as exc:
            handed.close()
            settle(handed.done, exc)
            return
        # The inner transfer is cancelled only with the outer one, which is then done already.
        inner.add_done_callback(lambda inner: settle(handed.done, None if inner.cancelled() else inner.exception()))
        handed.done.add_done_callback(lambda outer: inner.cancel() if outer.cancelled() else None)

    def _break(self, why: BaseException) -> None:
        """The shared pump is gone (with whatever it was sending): fail those, and send locally."""
        if self.broken:
            return
        self.broken = True
        log.error("the shared sendfile pump is unreachable (%s); this worker sends files itself", why)
        if self._reading is not None:
            self._reading.remove_reader(self.sock.fileno())
        waiting, self._waiting = self._waiting, {}
        for handed in waiting.values():
            handed.close()
            settle(handed.done, ConnectionError("the sendfile pump went away mid-transfer"))
        self.sock.close()
