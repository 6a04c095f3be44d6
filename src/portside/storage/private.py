"""Keep the registry's files to the account that runs it: the database holds the signing keys and
password hashes, and the blob store holds private images.

Every process that creates data files sets a umask of 077 first, so files it makes are 0600 and
directories 0700; directories and database files made by earlier versions are narrowed on start.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from portside.config import Settings

PRIVATE_UMASK = 0o077


def sqlite_files(settings: Settings) -> list[Path]:
    """The SQLite database and the files beside it (none on PostgreSQL)."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return []
    db = Path(url.database)
    return [db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", ".writer-lock"))]


def make_private(settings: Settings) -> None:
    """Set the umask for this process and its children, create the data and storage directories
    0700, and narrow what already exists."""
    os.umask(PRIVATE_UMASK)
    for directory in (settings.data_dir, settings.storage_root):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
    for path in sqlite_files(settings):
        with contextlib.suppress(FileNotFoundError):
            path.chmod(0o600)
