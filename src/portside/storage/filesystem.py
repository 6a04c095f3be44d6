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

WRITE_BUFFER = 1 << 20  # hand the disk and the hasher 1 MiB at a time
READ_CHUNK = 1 << 20


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
        described = None if session is None else json.dumps({
            "repository": session.repository, "algorithm": session.algorithm,
            "started_at": session.started_at.isoformat(),
        }).encode()

        def create() -> None:
            path.parent.mkdir()
            if described is not None:
                # Not synced: a crash loses open sessions anyway (their clients start over), and a
                # torn file reads as an unknown upload that the purge of old uploads removes.
                (path.parent / "session").write_bytes(described)
            path.touch()

        await anyio.to_thread.run_sync(create)

    async def upload_session(self, upload_id: str) -> UploadSession | None:
        path = self._data_path(upload_id).parent / "session"
        try:
            raw = await anyio.to_thread.run_sync(path.read_bytes)
            found = json.loads(raw)
            return UploadSession(str(found["repository"]), str(found["algorithm"]),
                                 datetime.fromisoformat(found["started_at"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    async def upload_size(self, upload_id: str) -> int:
        try:
            return (await anyio.to_thread.run_sync(os.stat, self._data_path(upload_id))).st_size
        except FileNotFoundError:
            raise UploadUnknown(f"upload {upload_id} is unknown or finished") from None

    async def append(
        self, upload_id: str, algorithm: str, chunks: AsyncIterable[bytes], expected_offset: int | None
    ) -> int:
        f = await self._open_locked(upload_id)
        try:
            state = await anyio.to_thread.run_sync(self._current_hash, upload_id, f, algorithm)
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
        buffer = bytearray()

        def flush(data: bytes, last: bool) -> None:
            state.hasher.update(data)
            f.write(data)
            if last:
                f.flush()

        async for chunk in chunks:
            buffer += chunk
            if len(buffer) >= WRITE_BUFFER:
                data, buffer = bytes(buffer), bytearray()
                await anyio.to_thread.run_sync(flush, data, False)
                state.size += len(data)
        await anyio.to_thread.run_sync(flush, bytes(buffer), True)  # the rest, and Python's buffer to the OS
        state.size += len(buffer)

    async def verify_upload(self, upload_id: str, algorithm: str, expected: Digest) -> int:
        f = await self._open_locked(upload_id)
        try:
            size = await anyio.to_thread.run_sync(self._verify_sync, upload_id, f, algorithm, expected)
        finally:
            f.close()
        sync = asyncio.get_running_loop().run_in_executor(None, _fsync_file, self._data_path(upload_id))
        sync.add_done_callback(lambda done: done.cancelled() or done.exception())  # never an unread error
        self._syncing[upload_id] = sync
        return size

    def _verify_sync(self, upload_id: str, f: BinaryIO, algorithm: str, expected: Digest) -> int:
        state = self._current_hash(upload_id, f, algorithm)
        if expected.algorithm == state.algorithm:
            actual = state.hasher.hexdigest()
        else:
            actual = self._hash_file(f, expected.algorithm, state.size).hexdigest()
        if actual != expected.encoded:
            self._remove_upload(upload_id)
            raise DigestMismatch(
                f"uploaded content has digest {expected.algorithm}:{actual}, not the declared {expected}; "
                "the upload was discarded"
            )
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

        def open_and_lock() -> BinaryIO:
            try:
                f = open(path, "r+b")  # noqa: SIM115 - closed by the caller
            except FileNotFoundError:
                raise UploadUnknown(f"upload {upload_id} is unknown or finished") from None
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            if not path.exists():  # committed or cancelled while we waited for the lock
                f.close()
                raise UploadUnknown(f"upload {upload_id} is unknown or finished")
            return f

        return await anyio.to_thread.run_sync(open_and_lock)

    def _current_hash(self, upload_id: str, f: BinaryIO, algorithm: str) -> _HashState:
        st = os.fstat(f.fileno())
        state = self._hashes.get(upload_id)
        if state and (state.size, state.mtime_ns, state.algorithm) == (st.st_size, st.st_mtime_ns, algorithm):
            f.seek(0, os.SEEK_END)
            return state
        hasher = self._hash_file(f, algorithm, st.st_size)
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
        shutil.rmtree(self._data_path(upload_id).parent, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
