"""Helpers for the sendfile pump tests: sockets that fill up, readers on threads, files sent at once."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

Send = Callable[[int, int, int, int], Awaitable[None]]


def read_all(sock: socket.socket, size: int, into: bytearray, pause: float = 0.0) -> None:
    """Receive into `into` until it holds `size` bytes or the peer closes."""
    while len(into) < size:
        got = sock.recv(256 * 1024)
        if not got:
            return
        into.extend(got)
        time.sleep(pause)


def sender_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair whose first end is non-blocking with a small send buffer: full often, so a
    pump must come back to it."""
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    ours.setblocking(False)
    return ours, theirs


def random_files(folder: Path, count: int, size: int) -> list[Path]:
    """`count` files of random bytes, each a little larger than the one before."""
    files = []
    for i in range(count):
        path = folder / f"blob{i}"
        path.write_bytes(os.urandom(size + i * 1000))
        files.append(path)
    return files


def send_files_at_once(send: Send, files: list[Path], skip: int) -> list[bytes]:
    """Send every file, less its first `skip` bytes, to a reader of its own, all at once through
    `send(out_fd, in_fd, offset, count)` (which owns both descriptors); return what each reader got.
    Whatever `send` raises is raised here.
    Each reader pauses a little longer than the one before, so the sockets fill at different rates."""
    pairs = [sender_pair() for _ in files]
    received = [bytearray() for _ in files]
    readers = [threading.Thread(daemon=True, target=read_all, args=(theirs, f.stat().st_size - skip, into, 0.001 * i))
               for i, ((_, theirs), f, into) in enumerate(zip(pairs, files, received, strict=True))]
    try:
        for reader in readers:
            reader.start()

        async def send_all() -> None:
            await asyncio.gather(*(send(os.dup(ours.fileno()), os.open(f, os.O_RDONLY), skip, f.stat().st_size)
                                   for (ours, _), f in zip(pairs, files, strict=True)))

        asyncio.run(asyncio.wait_for(send_all(), 30))  # a broken sender fails the test, not hangs it
        for reader in readers:
            reader.join(10)
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()
    return [bytes(into) for into in received]
