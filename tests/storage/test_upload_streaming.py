"""The filesystem store's upload stream: batches hashed and written in a thread while more arrive.

Whatever the stream does (arrive in odd pieces, break, get cancelled, hit a failing disk), the
upload afterwards is a clean prefix whose running hash matches its bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from portside.errors import DigestMismatch
from portside.oci.digest import Digest
from portside.storage import filesystem
from portside.storage.filesystem import FilesystemBlobStore

KiB, MiB = 1024, 1024 * 1024


def digest_of(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


async def pieces(data: bytes, sizes: list[int], *, then_fail: bool = False) -> AsyncIterator[bytes]:
    """`data` in pieces of the given sizes (cycled), yielding to the loop between them."""
    at, i = 0, 0
    while at < len(data):
        size = sizes[i % len(sizes)]
        yield data[at:at + size]
        at, i = at + size, i + 1
        await asyncio.sleep(0)
    if then_fail:
        raise ConnectionError("client went away")


def on_disk(store: FilesystemBlobStore, upload_id: str) -> bytes:
    return (store.root / "uploads" / upload_id / "data").read_bytes()


async def new_upload(store: FilesystemBlobStore) -> str:
    upload_id = str(uuid.uuid4())
    await store.create_upload(upload_id)
    return upload_id


def test_odd_pieces_land_in_order_and_verify(tmp_path: Path) -> None:
    async def run() -> None:
        store = FilesystemBlobStore(tmp_path)
        data = os.urandom(5 * MiB + 333)
        upload_id = await new_upload(store)
        # 1 byte .. 300 KiB pieces: batches start at 256 KiB, so several are written while more arrive
        size = await store.append(upload_id, "sha256", pieces(data, [1, 70 * KiB, 300 * KiB, 4096, 129 * KiB]), 0)
        assert size == len(data)
        assert on_disk(store, upload_id) == data
        assert await store.verify_upload(upload_id, "sha256", digest_of(data)) == len(data)
        await store.publish_upload(upload_id, digest_of(data), len(data))
        assert store.blob_path(digest_of(data)).read_bytes() == data
        assert not (tmp_path / "uploads" / upload_id).exists()

    asyncio.run(run())


def test_a_broken_stream_rolls_back_to_the_last_acknowledged_chunk(tmp_path: Path) -> None:
    async def run() -> None:
        store = FilesystemBlobStore(tmp_path)
        data = os.urandom(4 * MiB)
        upload_id = await new_upload(store)
        first = 300 * KiB
        assert await store.append(upload_id, "sha256", pieces(data[:first], [64 * KiB]), 0) == first
        with pytest.raises(ConnectionError):
            await store.append(upload_id, "sha256", pieces(data[first:3 * MiB], [256 * KiB], then_fail=True), first)
        assert await store.upload_size(upload_id) == first
        assert on_disk(store, upload_id) == data[:first]
        # resumes from there, and the running hash still matches the bytes
        assert await store.append(upload_id, "sha256", pieces(data[first:], [1 * MiB]), first) == len(data)
        assert await store.verify_upload(upload_id, "sha256", digest_of(data)) == len(data)

    asyncio.run(run())


def test_a_cancelled_stream_leaves_no_write_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = filesystem._BatchWriter._write

    def slow_write(self: filesystem._BatchWriter, batch: list[bytes]) -> None:
        time.sleep(0.1)  # a slow disk: the batch is still being written when the request is cancelled
        real_write(self, batch)

    monkeypatch.setattr(filesystem._BatchWriter, "_write", slow_write)

    async def run() -> None:
        store = FilesystemBlobStore(tmp_path)
        data = os.urandom(2 * MiB)
        upload_id = await new_upload(store)
        arrived = asyncio.Event()

        async def stalls() -> AsyncIterator[bytes]:
            yield data[: 1 * MiB]  # a whole batch, handed to the thread
            yield data[1 * MiB: 1 * MiB + 10 * KiB]
            arrived.set()
            await asyncio.Event().wait()  # the client stalls; the request is cancelled
            yield b""

        task = asyncio.create_task(store.append(upload_id, "sha256", stalls(), 0))
        await arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.3)  # a write still running in a thread would land now
        assert await store.upload_size(upload_id) == 0
        with pytest.raises(DigestMismatch):
            await store.verify_upload(upload_id, "sha256", digest_of(data))

    asyncio.run(run())


def test_a_failing_write_fails_the_append_and_keeps_the_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def run() -> None:
        store = FilesystemBlobStore(tmp_path)
        data = os.urandom(3 * MiB)
        upload_id = await new_upload(store)
        assert await store.append(upload_id, "sha256", pieces(data[: 100 * KiB], [100 * KiB]), 0) == 100 * KiB

        real_write = filesystem._BatchWriter._write
        calls = 0

        def failing_write(self: filesystem._BatchWriter, batch: list[bytes]) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise OSError(28, "No space left on device")
            real_write(self, batch)

        monkeypatch.setattr(filesystem._BatchWriter, "_write", failing_write)
        with pytest.raises(OSError, match="No space left"):
            await store.append(upload_id, "sha256", pieces(data[100 * KiB:], [300 * KiB]), 100 * KiB)
        assert calls >= 2
        monkeypatch.setattr(filesystem._BatchWriter, "_write", real_write)
        assert on_disk(store, upload_id) == data[: 100 * KiB]
        assert await store.append(upload_id, "sha256", pieces(data[100 * KiB:], [512 * KiB]), 100 * KiB) == len(data)
        assert await store.verify_upload(upload_id, "sha256", digest_of(data)) == len(data)

    asyncio.run(run())


def test_a_batch_is_one_writev_and_short_writes_go_on_mid_piece(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One call per batch, not per piece: a batch written at once lands in the page cache as large
    # folios, which the sendfile pump sends with less work. The kernel may take less than asked
    # (a signal, a nearly full disk): the rest follows from inside the piece it stopped in.
    real_writev = os.writev
    calls: list[int] = []

    def short_writev(fd: int, buffers: list[memoryview]) -> int:
        calls.append(len(buffers))
        return real_writev(fd, [bytes(memoryview(b"".join(buffers))[:100_003])])

    monkeypatch.setattr(os, "writev", short_writev)

    async def run() -> None:
        store = FilesystemBlobStore(tmp_path)
        data = os.urandom(3 * MiB + 5)
        upload_id = await new_upload(store)
        assert await store.append(upload_id, "sha256", pieces(data, [64 * KiB, 1, 10 * KiB]), 0) == len(data)
        assert on_disk(store, upload_id) == data
        assert await store.verify_upload(upload_id, "sha256", digest_of(data)) == len(data)

    asyncio.run(run())
    assert max(calls) > 1  # several pieces in one call
    assert len(calls) < 3 * MiB // 100_003 + 40  # about one call per 100,003 bytes taken, not per piece
