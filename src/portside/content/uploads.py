"""Upload sessions: start, append chunks in order, finish with a verified digest, cancel."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import AsyncIterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from portside.errors import QuotaExceeded, UploadUnknown
from portside.metadata.queries import RegistryQueries
from portside.oci.digest import Digest, new_hasher
from portside.storage.ports import BlobStore, UploadSession

if TYPE_CHECKING:
    from portside.lifecycle.quotas import QuotaService


SESSIONS_REMEMBERED = 4096


class UploadService:
    def __init__(self, store: BlobStore, queries: RegistryQueries, quotas: QuotaService | None = None) -> None:
        self.store = store
        self.queries = queries
        self.quotas = quotas
        # A session never changes while it exists, so this worker remembers the ones it has seen
        # and skips reading them on each PATCH and PUT. Whether a remembered session still
        # exists (another worker may have finished it) the store answers: its files go at the end.
        self._sessions: OrderedDict[str, UploadSession] = OrderedDict()

    async def start(self, name: str, algorithm: str = "sha256") -> str:
        new_hasher(algorithm)  # refuse unknown algorithms before creating anything
        upload_id = str(uuid.uuid4())
        session = UploadSession(name, algorithm, datetime.now(UTC))
        await self.store.create_upload(upload_id, session)  # no database write: the session is a file
        self._remember(upload_id, session)
        return upload_id

    async def session(self, name: str, upload_id: str, *, remembered: bool = True) -> UploadSession:
        found = self._sessions.get(upload_id) if remembered else None
        if found is None:
            found = await self.store.upload_session(upload_id)
            if found is not None:
                self._remember(upload_id, found)
        if found is None or found.repository != name:
            raise UploadUnknown(f"upload {upload_id} is unknown to repository {name} (finished or cancelled?)")
        return found

    def _remember(self, upload_id: str, session: UploadSession) -> None:
        self._sessions[upload_id] = session
        if len(self._sessions) > SESSIONS_REMEMBERED:
            self._sessions.popitem(last=False)

    async def size(self, name: str, upload_id: str) -> int:
        await self.session(name, upload_id)
        return await self.store.upload_size(upload_id)

    async def append(
        self, name: str, upload_id: str, body: AsyncIterable[bytes], start: int | None
    ) -> int:
        row = await self.session(name, upload_id)
        return await self.store.append(upload_id, row.algorithm, body, start)

    async def finish(
        self, name: str, upload_id: str, digest: Digest, body: AsyncIterable[bytes] | None, start: int | None
    ) -> int:
        row = await self.session(name, upload_id)
        if body is not None:
            await self.store.append(upload_id, row.algorithm, body, start)
        try:
            size = await self.store.verify_upload(upload_id, row.algorithm, digest)
        except Exception:
            self._sessions.pop(upload_id, None)
            raise
        await self._publish(name, upload_id, digest, size)
        return size

    async def monolithic(self, name: str, digest: Digest, body: AsyncIterable[bytes]) -> int:
        """A whole blob in one request. It cannot be resumed, so it needs no session: only a
        directory under uploads/, which garbage collection removes if a crash leaves it behind."""
        new_hasher(digest.algorithm)
        upload_id = str(uuid.uuid4())
        await self.store.create_upload(upload_id)
        try:
            await self.store.append(upload_id, digest.algorithm, body, None)
            size = await self.store.verify_upload(upload_id, digest.algorithm, digest)
            await self._publish(name, upload_id, digest, size)
        except BaseException:
            await self.store.cancel_upload(upload_id)
            raise
        return size

    async def _publish(self, name: str, upload_id: str, digest: Digest, size: int) -> None:
        # Link and publish in one transaction: the blob row stays locked until the file is in place.
        # Publishing removes the upload, its session with it.
        try:
            async with self.queries.db.write(access=False) as conn:  # content only
                if self.quotas is not None:
                    await self.quotas.check_blob(conn, name, str(digest), size)
                await self.queries.link_blob(conn, name, str(digest), size)
                await self.store.publish_upload(upload_id, digest, size)
            self._sessions.pop(upload_id, None)
        except QuotaExceeded:
            self._sessions.pop(upload_id, None)
            await self.store.cancel_upload(upload_id)  # refused at this blob: nothing kept, nothing linked
            raise

    async def cancel(self, name: str, upload_id: str, *, missing_ok: bool = False) -> None:
        try:
            await self.session(name, upload_id, remembered=False)  # a 404 for a session finished elsewhere
        except UploadUnknown:
            if missing_ok:
                return
            raise
        self._sessions.pop(upload_id, None)
        await self.store.cancel_upload(upload_id)
