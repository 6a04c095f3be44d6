"""Blob bodies with sendfile(2): the ASGI `http.response.pathsend` extension, added to uvicorn.

Starlette's FileResponse sends `{"type": "http.response.pathsend", "path": ...}` when the server
offers the extension. Here the kernel then copies the file straight from the page cache to the
socket: no blob byte enters Python, and one copy fewer than read()+write(). uvloop has no
`loop.sendfile`; a small cached file goes out from the event loop in one non-blocking call, and
anything larger is handed to the server's sendfile pump (`pump.py`, hosted by the supervisor:
`shared_pump.py`) on duplicates of the connection's and the file's descriptors. The event loop
does not write to the connection in the meantime: the response is this request's, and uvicorn
starts the next pipelined request only after this one completes.

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
import socket
from contextlib import suppress
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from portside.serving.deadlines import DeadlineProtocol
from portside.serving.pump import SendfilePump, new_pump, send_if_cached
from portside.serving.shared_pump import PumpClient

log = logging.getLogger("portside.serving")
PATHSEND = "http.response.pathsend"
_pump: SendfilePump | PumpClient | None = None


def share_pump(channel: socket.socket) -> None:
    """Send this process's files through the supervisor's pump, on `channel` (see shared_pump.py)."""
    global _pump
    _pump = PumpClient(channel, fallback=new_pump)


def _pump_instance() -> SendfilePump | PumpClient:
    global _pump
    if _pump is None:
        _pump = new_pump()
    return _pump


async def send_file(transport: asyncio.Transport, path: str, count: int) -> None:
    # The status line and headers must leave uvicorn's write buffer before the file's bytes.
    while not transport.is_closing():
        if not transport.get_write_buffer_size():
            break
        await asyncio.sleep(0.001)
    else:
        raise ConnectionError("client went away")
    sock = transport.get_extra_info("socket")
    # Our own descriptors: if the connection is closed meanwhile, its number cannot be reused under us.
    out_fd, in_fd = os.dup(sock.fileno()), -1
    try:
        in_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        sent = send_if_cached(out_fd, in_fd, count)
        if sent < count:
            handed = _pump_instance().send(out_fd, in_fd, sent, count)
            out_fd = in_fd = -1  # the pump's now: it closes them when the transfer ends
            await handed
    finally:
        for fd in (out_fd, in_fd):
            if fd >= 0:
                os.close(fd)


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


class PathsendProtocol(DeadlineProtocol):
    """uvicorn's httptools protocol (with deadlines.py's), offering `http.response.pathsend` on plain-TCP
    connections."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if not self.config.is_ssl:
            cycle.scope.setdefault("extensions", {})[PATHSEND] = {}
            cycle.send = _pathsend_aware(cycle)  # type: ignore[method-assign]
        super()._start_asgi_task(cycle, app)
