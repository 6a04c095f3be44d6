"""A local user cannot read the registry's data: the data directory is 0700 (also one made before by
someone else's umask), the database and upload files 0600."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.auth.conftest import fetch_token, http_client
from tests.conftest import ADMIN_PASSWORD
from tests.servers import RunningServer


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_files_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)  # as an older version (or a shared umask) left it
    server = RunningServer(data_dir, f"sqlite:///{data_dir / 'portside.db'}", auth=True,
                           env={"PORTSIDE_ADMIN_PASSWORD": ADMIN_PASSWORD}).start()
    try:
        token = fetch_token(server, ("admin", ADMIN_PASSWORD), "repository:library/secret:push,pull")
        with http_client(server, headers={"Authorization": f"Bearer {token}"}) as c:
            r = c.post("/v2/library/secret/blobs/uploads/")
            assert r.status_code == 202, r.text
            r = c.patch(r.headers["location"], content=b"private layer bytes",
                        headers={"Content-Type": "application/octet-stream"})
            assert r.status_code == 202, r.text
        assert mode(data_dir) == 0o700
        assert mode(data_dir / "portside.db") == 0o600
        uploads = [p for p in (data_dir / "storage" / "uploads").rglob("*") if p.is_file()]
        assert uploads
        for path in uploads:
            assert mode(path) & 0o077 == 0, (path, oct(mode(path)))
        for path in data_dir.rglob("*"):  # nothing the server made is open to others either
            if path == server.log_path:  # the test's own file
                continue
            assert mode(path) & 0o077 == 0, (path, oct(mode(path)))
    finally:
        server.stop()
