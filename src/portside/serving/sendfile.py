"""Blob bodies with sendfile(2): the ASGI `http.response.pathsend` extension, added to uvicorn.

Starlette's FileResponse sends `{"type": "http.response.pathsend", "path": ...}` when the server
offers the extension. Here the kernel then copies the file straight from the page cache to the
socket: no blob byte enters Python, and one copy fewer than read()+write(). uvloop has no
`loop.sendfile`, so a small thread pool does it on a duplicate of the connection's descriptor,
waiting with poll() when the socket is full. The event loop does not write to the connection in
the meantime: the response is this request's, and uvicorn starts the next pipelined request only
after this one completes.

A small file whose first and last pages are cached (RWF_NOWAIT reads tell, without waiting for
the disk) is first tried from the event loop in one non-blocking call: config blobs and small
layers then skip the round trip to a thread.

The response head waits for the message after it: when that is the file, the socket is corked
(TCP_CORK) for the head and the file together, as nginx's `tcp_nopush` does, and uncorked after.
With the head sent on its own ahead of the file, 20 processes pulling one 100 MiB blob at once
spent about 40% more CPU per byte received than from nginx, and the pull ran a quarter slower.

Over TLS the extension is not offered (the kernel cannot encrypt), and FileResponse streams instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import socket
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

log = logging.getLogger("portside.serving")
PATHSEND = "http.response.pathsend"
STALL_SECONDS = 120  # a client that takes nothing for this long loses the connection
INLINE_MAX = 256 * 1024  # a cached file this small is sent from the event loop: no thread round trip
_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)
_PROBE = bytearray(1)
_pool: ThreadPoolExecutor | None = None


def _pool_instance() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=128, thread_name_prefix="sendfile")
    return _pool


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


def send_if_cached(out_fd: int, in_fd: int, count: int) -> int:
    """One non-blocking sendfile of a small file whose first and last pages are in the page cache,
    on the calling thread; returns the bytes sent (0: not cached, or the socket is full)."""
    if count == 0 or count > INLINE_MAX or _NOWAIT is None:
        return 0
    try:
        for probe_at in (0, count - 1):  # RWF_NOWAIT: EAGAIN instead of waiting for the disk
            os.preadv(in_fd, [_PROBE], probe_at, _NOWAIT)
        return os.sendfile(out_fd, in_fd, 0, count)
    except BlockingIOError:
        return 0
    except OSError as exc:
        if isinstance(exc, ConnectionError):
            raise
        return 0  # a filesystem without RWF_NOWAIT: the thread sends it all


async def send_file(transport: asyncio.Transport, path: str, count: int) -> None:
    # The status line and headers must leave uvicorn's write buffer before the file's bytes.
    while transport.get_write_buffer_size():
        if transport.is_closing():
            raise ConnectionError("client went away")
        await asyncio.sleep(0.001)
    if transport.is_closing():
        raise ConnectionError("client went away")
    sock = transport.get_extra_info("socket")
    # Our own descriptor: if the connection is closed meanwhile, its number cannot be reused under us.
    out_fd = os.dup(sock.fileno())
    try:
        in_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            sent = send_if_cached(out_fd, in_fd, count)
            if sent < count:
                await asyncio.get_running_loop().run_in_executor(
                    _pool_instance(), copy_file_to_socket, out_fd, in_fd, count, sent)
        finally:
            os.close(in_fd)
    finally:
        os.close(out_fd)


def _cork(transport: asyncio.Transport, on: bool) -> None:
    """Hold back partial TCP segments (`on`) or push out what is held; a closed socket has nothing to do."""
    with suppress(OSError, ValueError):  # uvloop raises ValueError once the connection is closed
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, int(on))


def _sized_start(message: Any) -> bool:
    """A response head with a Content-Length: its body follows at once (a streamed body may not)."""
    return message["type"] == "http.response.start" and any(
        name.lower() == b"content-length" for name, _ in message.get("headers", ()))


def _pathsend_aware(cycle: RequestResponseCycle) -> Any:
    send = cycle.send
    held: list[Any] = []  # the response head, until the message after it says whether a file follows

    async def send_with_pathsend(message: Any) -> None:
        if _sized_start(message) and not held:
            held.append(message)
            return
        if message["type"] != PATHSEND:
            if held:
                await send(held.pop())
            await send(message)
            return
        file_follows = cycle.scope["method"] != "HEAD" and not cycle.disconnected
        corked = file_follows and bool(held)
        if corked:
            _cork(cycle.transport, True)
        try:
            if held:
                await send(held.pop())
            if cycle.chunked_encoding or not cycle.response_started:  # FileResponse always sets Content-Length
                raise RuntimeError("http.response.pathsend needs a started response with a Content-Length")
            if file_follows:
                await send_file(cycle.transport, message["path"], cycle.expected_content_length)
        except (ConnectionError, TimeoutError) as exc:  # the client left or stopped reading: not our fault
            log.debug("pathsend of %s stopped: %s", message["path"], exc)
            cycle.disconnected = True
            cycle.transport.close()
            return
        finally:
            if corked:
                _cork(cycle.transport, False)
        cycle.expected_content_length = 0
        await send({"type": "http.response.body", "body": b"", "more_body": False})  # uvicorn completes it

    return send_with_pathsend


class PathsendProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, offering `http.response.pathsend` on plain-TCP connections."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if not self.config.is_ssl:
            cycle.scope.setdefault("extensions", {})[PATHSEND] = {}
            cycle.send = _pathsend_aware(cycle)  # type: ignore[method-assign]
        super()._start_asgi_task(cycle, app)
