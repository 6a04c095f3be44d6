"""Portal sessions and registry tokens are signed with different keys: neither passes for the other,
and a cookie forged with the registry token key is refused."""

from __future__ import annotations

import time
import uuid

from portside.auth.sessions import SESSION_KEY_SETTING
from portside.auth.tokens import KEY_SETTING
from tests.auth.conftest import Harbor, execute, fetch_token, http_client, signing_key
from tests.conftest import ADMIN_PASSWORD
from tests.servers import RunningServer

API = "/api/v2.0"


def test_sessions_have_a_key_of_their_own(auth_server: RunningServer) -> None:
    rows = dict(execute(auth_server, "SELECT key, value FROM system_settings WHERE key IN (:a, :b)",
                        a=KEY_SETTING, b=SESSION_KEY_SETTING))
    assert set(rows) == {KEY_SETTING, SESSION_KEY_SETTING}
    assert rows[KEY_SETTING] != rows[SESSION_KEY_SETTING]


def current(auth_server: RunningServer, cookie: str) -> int:
    with http_client(auth_server) as c:
        c.cookies.set("sid", cookie)
        return c.get(f"{API}/users/current").status_code


def test_a_cookie_signed_with_the_token_key_is_refused(auth_server: RunningServer, harbor: Harbor) -> None:
    import jwt

    ((user_id, generation),) = execute(auth_server, "SELECT id, session_generation FROM users WHERE username = 'admin'")
    assert current(auth_server, harbor.api.cookies["sid"]) == 200  # the real session works
    now = int(time.time())
    claims = {"aud": "portside-portal", "iat": now, "exp": now + 600, "csrf": uuid.uuid4().hex}
    for subject in ({"sub": "admin"}, {"sub": str(user_id), "gen": generation}):
        forged = jwt.encode({**claims, **subject}, signing_key(auth_server), algorithm="ES256")
        harbor.secrets.add(forged)
        assert current(auth_server, forged) == 401


def test_a_registry_token_is_not_a_session(auth_server: RunningServer, harbor: Harbor) -> None:
    token = fetch_token(auth_server, ("admin", ADMIN_PASSWORD), "repository:library/x:pull", secrets=harbor.secrets)
    assert current(auth_server, token) == 401


def test_an_upgraded_data_directory_gets_a_session_key(fresh_server: RunningServer) -> None:
    """A database from before session keys existed gets one on the next start; sign-in works."""
    server = fresh_server
    server.auth, server.env = True, {"PORTSIDE_ADMIN_PASSWORD": ADMIN_PASSWORD}
    server.start()
    server.stop()
    execute(server, "DELETE FROM system_settings WHERE key = :k", k=SESSION_KEY_SETTING)
    server.start()
    assert execute(server, "SELECT value FROM system_settings WHERE key = :k", k=SESSION_KEY_SETTING)
    with http_client(server) as c:
        assert c.post("/c/login", data={"principal": "admin", "password": ADMIN_PASSWORD}).status_code == 200
        assert c.get(f"{API}/users/current").status_code == 200
