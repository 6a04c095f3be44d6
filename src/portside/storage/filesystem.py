"""Blob store on a local filesystem.

Layout under the root:

    blobs/<algorithm>/<first two hex>/<hex>    committed content, immutable once renamed into place
    uploads/<id>/data                          bytes received so far for an upload
    uploads/<id>/session                       what a resumable upload is for (JSON), absent for one-shot uploads

Uploads are hashed as they arrive. Each process keeps the running hash of the uploads it touched,
checked against the file's size and mtime, and re-hashes from disk when another worker or a
restart got there first. Commit = verify the digest, fsync the data, rename it into place, fsync
the directory. The data's fsync starts as soon as the digest checks out and runs while the caller
opens its database transaction; publishing waits for it, so nothing is linked before it is durable.

What may wait on the disk (writing and hashing data, re-hashing, fsync, waiting for another
request's lock) runs in threads. The small metadata calls of an upload (mkdir, open, a non-blocking
flock, fstat, a session file of a hundred bytes) run on the event loop: on a local filesystem each
takes microseconds, and a hand-off to a thread and back costs 0.2-0.3 ms, several times per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import anyio
import anyio.to_thread

from portside.errors import BlobUnknown, DigestMismatch, UploadInvalid, UploadRangeInvalid, UploadUnknown
from portside.oci.digest import Digest, new_hasher
from portside.storage.ports import UploadSession

# Received bytes go to a thread (hash, then write) in batches: the first as soon as 256 KiB have
# arrived, so hashing and writing overlap with receiving the rest; while a batch is being written,
# the next grows, up to 2 MiB, before reading waits for the thread. Batches are the received
# pieces themselves, never joined: no copy, and at most about 4 MiB held per upload.
WRITE_BATCH = 256 << 10
WRITE_BACKLOG = 2 << 20
WRITE_INLINE = 64 << 10  # a last batch this small is written on the loop: cheaper than the hand-off
READ_CHUNK = 1 << 20
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


@dataclass
class _HashState:
    size: int
    mtime_ns: int
    algorithm: str
    hasher: hashlib._Hash


class FilesystemBlobStore:
    name = "filesystem"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs"
        self._uploads = self.root / "uploads"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._uploads.mkdir(parents=True, exist_ok=True)
        self._hashes: dict[str, _HashState] = {}
        self._syncing: dict[str, asyncio.Future[None]] = {}  # upload id -> fsync of its verified data

    # -- committed content -------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> Path:
        return self._blobs / digest.algorithm / digest.encoded[:2] / digest.encoded

    async def stat(self, digest: Digest) -> int | None:
        try:
            return (await anyio.to_thread.run_sync(os.stat, self.blob_path(digest))).st_size
        except FileNotFoundError:
            return None

    def local_path(self, digest: Digest) -> Path | None:
        return self.blob_path(digest)

    async def redirect_url(self, digest: Digest) -> str | None:
        return None

    async def read(self, digest: Digest, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        try:
            f = await anyio.open_file(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise BlobUnknown(f"blob {digest} is not in storage") from None
        async with f:
            await f.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                want = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await f.read(want)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    async def put_bytes(self, digest: Digest, data: bytes) -> None:
        await anyio.to_thread.run_sync(self._put_bytes_sync, digest, data)

    def _put_bytes_sync(self, digest: Digest, data: bytes) -> None:
        target = self.blob_path(digest)
        # Staged like an upload session, so a crash here leaves a directory GC's upload purge removes.
        staging = self._uploads / f"put-{uuid.uuid4()}"
        staging.mkdir()
        tmp = staging / "data"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self._publish(tmp, target)
        staging.rmdir()

    async def delete(self, digest: Digest) -> bool:
        try:
            await anyio.to_thread.run_sync(os.unlink, self.blob_path(digest))
            return True
        except FileNotFoundError:
            return False

    async def iter_digests(self) -> AsyncIterator[tuple[Digest, int, float]]:
        entries = await anyio.to_thread.run_sync(self._scan_blobs)
        for entry in entries:
            yield entry

    def _scan_blobs(self) -> list[tuple[Digest, int, float]]:
        found = []
        for algo_dir in self._blobs.iterdir():
            for prefix in algo_dir.iterdir():
                for blob in prefix.iterdir():
                    st = blob.stat()
                    found.append((Digest(algo_dir.name, blob.name), st.st_size, st.st_mtime))
        return found

    # -- uploads -------------------------------------------------------------------------------

    def _data_path(self, upload_id: str) -> Path:
        if not upload_id or "/" in upload_id or upload_id.startswith("."):
            raise UploadUnknown(f"upload {upload_id!r} is unknown")
        return self._uploads / upload_id / "data"

    async def create_upload(self, upload_id: str, session: UploadSession | None = None) -> None:
        path = self._data_path(upload_id)
        path.parent.mkdir()
        if session is not None:
            # Not synced: a crash loses open sessions anyway (their clients start over), and a
            # torn file reads as an unknown upload that the purge of old uploads removes.
            (path.parent / "session").write_bytes(json.dumps({
                "repository": session.repository, "algorithm": session.algorithm,
                "started_at": session.started_at.isoformat(),
            }).encode())
        path.touch()

    async def upload_session(self, upload_id: str) -> UploadSession | None:
        path = self._data_path(upload_id).parent / "session"
        try:
            found = json.loads(path.read_bytes())
            return UploadSession(str(found["repository"]), str(found["algorithm"]),
                                 datetime.fromisoformat(found["started_at"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    async def upload_size(self, upload_id: str) -> int:
        try:
            return os.stat(self._data_path(upload_id)).st_size
        except FileNotFoundError:
            raise UploadUnknown(f"upload {upload_id} is unknown or finished") from None

    async def append(
        self, upload_id: str, algorithm: str, chunks: AsyncIterable[bytes], expected_offset: int | None
    ) -> int:
        f = await self._open_locked(upload_id)
        try:
            state = await self._current_hash(upload_id, f, algorithm)
            if expected_offset is not None and expected_offset != state.size:
                raise UploadRangeInvalid(
                    f"chunk starts at byte {expected_offset} but the upload has {state.size} bytes; "
                    "resume from the offset in the Range header",
                    state.size,
                )
            start_size, start_hasher = state.size, state.hasher.copy()
            try:
                await self._stream_into(f, state, chunks)
            except BaseException:
                # Broken or cancelled stream: roll back so the upload stays a clean prefix.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._truncate, f, start_size)
                self._hashes.pop(upload_id, None)
                state.size, state.hasher = start_size, start_hasher
                raise
            state.mtime_ns = os.fstat(f.fileno()).st_mtime_ns
            self._hashes[upload_id] = state
            return state.size
        finally:
            f.close()

    async def _stream_into(self, f: BinaryIO, state: _HashState, chunks: AsyncIterable[bytes]) -> None:
        writer = _BatchWriter(f, state)
        try:
            async for chunk in chunks:
                await writer.add(chunk)
            await writer.finish()  # written with writev on the descriptor: nothing waits in f's buffer
        finally:
            await writer.abandon()  # stopped mid-stream: the thread must finish before any rollback

    async def verify_upload(self, upload_id: str, algorithm: str, expected: Digest) -> int:
        f = await self._open_locked(upload_id)
        try:
            state = await self._current_hash(upload_id, f, algorithm)
            if expected.algorithm == state.algorithm:
                actual = state.hasher.hexdigest()
            else:
                other = await anyio.to_thread.run_sync(self._hash_file, f, expected.algorithm, state.size)
                actual = other.hexdigest()
        finally:
            f.close()
        if actual != expected.encoded:
            self._remove_upload(upload_id)
            raise DigestMismatch(
                f"uploaded content has digest {expected.algorithm}:{actual}, not the declared {expected}; "
                "the upload was discarded"
            )
        sync = asyncio.get_running_loop().run_in_executor(None, _fsync_file, self._data_path(upload_id))
        sync.add_done_callback(lambda done: done.cancelled() or done.exception())  # never an unread error
        self._syncing[upload_id] = sync
        return state.size

    async def publish_upload(self, upload_id: str, digest: Digest, size: int) -> None:
        sync = self._syncing.pop(upload_id, None)
        if sync is not None:
            await sync

        def publish() -> None:
            path = self._data_path(upload_id)
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                raise UploadUnknown(f"upload {upload_id} is unknown or finished") from None
            with f:
                # The upload lock, so no chunk lands between this check and the rename. Never wait for
                # it: the caller holds a database transaction, and a chunk can take minutes.
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise UploadInvalid(
                        f"upload {upload_id} is receiving another request; nothing was published"
                    ) from None
                if not path.exists():
                    raise UploadUnknown(f"upload {upload_id} is unknown or finished")
                if os.fstat(f.fileno()).st_size != size:
                    raise UploadInvalid(
                        f"upload {upload_id} changed after its digest was checked (a chunk arrived during the "
                        "closing PUT); nothing was published"
                    )
                if sync is None:  # verified elsewhere (or by a request that lost a race): sync here
                    os.fsync(f.fileno())
                self._publish(path, self.blob_path(digest))
                self._remove_upload(upload_id)

        await anyio.to_thread.run_sync(publish)

    async def cancel_upload(self, upload_id: str) -> None:
        await anyio.to_thread.run_sync(self._remove_upload, upload_id)

    async def iter_uploads(self) -> AsyncIterator[tuple[str, float]]:
        def last_active(upload: Path) -> float:
            times = [upload.stat().st_mtime]
            with contextlib.suppress(FileNotFoundError):
                times.append((upload / "data").stat().st_mtime)  # appends touch the file, not the directory
            return max(times)

        def scan() -> list[tuple[str, float]]:
            found = []
            for p in self._uploads.iterdir():
                try:
                    if p.is_dir():
                        found.append((p.name, last_active(p)))
                except FileNotFoundError:
                    continue  # finished while we looked
            return found

        for entry in await anyio.to_thread.run_sync(scan):
            yield entry

    # -- helpers -------------------------------------------------------------------------------

    async def _open_locked(self, upload_id: str) -> BinaryIO:
        path = self._data_path(upload_id)
        try:
            f = open(path, "r+b")  # noqa: SIM115 - closed by the caller
        except FileNotFoundError:
            raise UploadUnknown(f"upload {upload_id} is unknown or finished") from None
        try:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another request is appending: wait for it in a thread
                await anyio.to_thread.run_sync(fcntl.flock, f.fileno(), fcntl.LOCK_EX)
            if not path.exists():  # committed or cancelled while we waited for the lock
                raise UploadUnknown(f"upload {upload_id} is unknown or finished")
        except BaseException:
            f.close()
            raise
        return f

    async def _current_hash(self, upload_id: str, f: BinaryIO, algorithm: str) -> _HashState:
        st = os.fstat(f.fileno())
        f.seek(0, os.SEEK_END)
        state = self._hashes.get(upload_id)
        if state and (state.size, state.mtime_ns, state.algorithm) == (st.st_size, st.st_mtime_ns, algorithm):
            return state
        # Another worker appended last, or this process restarted: hash what is on disk.
        if st.st_size == 0:
            hasher = new_hasher(algorithm)
        else:
            hasher = await anyio.to_thread.run_sync(self._hash_file, f, algorithm, st.st_size)
        state = _HashState(st.st_size, st.st_mtime_ns, algorithm, hasher)
        self._hashes[upload_id] = state
        return state

    @staticmethod
    def _hash_file(f: BinaryIO, algorithm: str, size: int) -> hashlib._Hash:
        hasher = new_hasher(algorithm)
        f.seek(0)
        remaining = size
        while remaining > 0:
            chunk = f.read(min(READ_CHUNK, remaining))
            if not chunk:
                break
            hasher.update(chunk)
            remaining -= len(chunk)
        f.seek(0, os.SEEK_END)
        return hasher

    @staticmethod
    def _truncate(f: BinaryIO, size: int) -> None:
        f.flush()
        f.truncate(size)
        f.seek(0, os.SEEK_END)

    def _publish(self, source: Path, target: Path) -> None:
        # Always replace: the same digest means the same bytes, and a fresh file here cannot be
        # one that a concurrent garbage collection is about to unlink.
        try:
            os.replace(source, target)
        except FileNotFoundError:  # the first blob under this prefix
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _remove_upload(self, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)
        self._syncing.pop(upload_id, None)
        folder = self._data_path(upload_id).parent
        try:  # the files an upload has (rmtree takes ten times as long for these two)
            for name in ("data", "session"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(folder / name)
            os.rmdir(folder)
        except FileNotFoundError:
            pass
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)


class _BatchWriter:
    """Hashes and appends an upload's bytes in a thread, one batch at a time and in order, while the
    loop receives the next. A finished batch starts the next at once, so bytes received reach the
    disk even if the client then stalls. The state's size counts only what has been written."""

    def __init__(self, f: BinaryIO, state: _HashState) -> None:
        self.f, self.state = f, state
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.pending: asyncio.Future[None] | None = None  # the batch in the thread
        self._pending_size = 0
        self._stopped = False
        self._error: BaseException | None = None

    def _write(self, batch: list[bytes]) -> None:
        for piece in batch:
            self.state.hasher.update(piece)
        _write_all(self.f.fileno(), batch)

    def _take(self) -> list[bytes]:
        batch, self.buffer, self.buffered = self.buffer, [], 0
        return batch

    def _start_batch(self, at_least: int) -> None:
        if self.pending is None and not self._stopped and self.buffered >= at_least:
            self._pending_size = self.buffered
            self.pending = asyncio.get_running_loop().run_in_executor(None, self._write, self._take())
            self.pending.add_done_callback(self._written)

    def _collect(self) -> None:
        """Account for a finished batch and start the next; raise a failed batch's error."""
        done = self.pending
        if done is not None and done.done():
            self.pending = None
            error = done.exception()
            if error is not None:
                self._error = error
            else:
                self.state.size += self._pending_size
                self._start_batch(WRITE_BATCH)
        if self._error is not None:
            raise self._error

    def _written(self, _done: asyncio.Future[None]) -> None:
        with contextlib.suppress(BaseException):  # kept in _error: the stream's next step raises it
            self._collect()

    async def _wait(self) -> None:
        if self.pending is not None:
            # Not cancelled with the request: a rollback must not race the thread (see abandon).
            await asyncio.wait([self.pending])
        self._collect()

    async def add(self, chunk: bytes) -> None:
        self._collect()
        if chunk:
            self.buffer.append(chunk)
            self.buffered += len(chunk)
        self._start_batch(WRITE_BATCH)
        while self.pending is not None and self.buffered >= WRITE_BACKLOG:
            await self._wait()

    async def finish(self) -> None:
        while self.pending is not None:
            await self._wait()
        self._collect()
        if self.buffered > WRITE_INLINE:
            self._start_batch(1)
            await self._wait()
        elif self.buffered:
            size = self.buffered
            self._write(self._take())
            self.state.size += size

    async def abandon(self) -> None:
        self._stopped = True
        if self.pending is not None and not self.pending.done():
            with anyio.CancelScope(shield=True):
                await asyncio.wait([self.pending])


def _write_all(fd: int, pieces: list[bytes]) -> None:
    """Append `pieces` to `fd` with as few writev(2) calls as the kernel allows. A batch written in
    one call lands in the page cache as large folios, where piece by piece it lands in small ones:
    sending a 100 MiB blob written piece by piece cost the sendfile pump about 12% more CPU, most
    of it in looking up pages."""
    views = [memoryview(piece) for piece in pieces if piece]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:  # a short write: go on from inside this piece
            views[0] = views[0][written:]


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
