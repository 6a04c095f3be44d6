"""First start: the admin account, the public `library` project and the token and session signing keys.

Runs once in the parent process before workers start; safe to run on every start and from several
replicas at once (each step checks before it writes).
"""

from __future__ import annotations

import asyncio
import logging

from portside.auth.passwords import generate_secret, hash_secret
from portside.auth.roles import Role
from portside.auth.sessions import SESSION_KEY_SETTING, generate_session_key
from portside.auth.tokens import KEY_SETTING, generate_key_pem
from portside.config import Settings
from portside.errors import WriteConflict
from portside.metadata.accounts import AccountQueries
from portside.metadata.projects import ProjectQueries

log = logging.getLogger("portside")
ADMIN = "admin"


async def _bootstrap(settings: Settings) -> str | None:
    from portside.app import build  # the parent process execs the supervisor next, dropping it again

    services = await build(settings, signing=False)  # the keys are made here, so none are loaded
    db = services.db
    accounts, projects = AccountQueries(db), ProjectQueries(db)
    generated = None
    try:
        if await accounts.user_by_name(ADMIN) is None:
            password = settings.initial_admin_password()
            if password is None:
                password = generated = generate_secret(20)
            try:
                async with db.write() as conn:
                    user_id = await accounts.create_user(conn, ADMIN, hash_secret(password), sysadmin=True,
                                                         realname="system admin", comment="created at first start")
                    if await projects.by_name("library", conn) is None:
                        library = await projects.create(conn, "library", public=True, owner_id=user_id,
                                                        settings={"public": "true"})
                        await projects.add_member(conn, library, user_id, Role.PROJECT_ADMIN)
            except WriteConflict:  # another replica created it first
                generated = None
        if settings.auth.token_key_file is None and await accounts.get_setting(KEY_SETTING) is None:
            await accounts.put_setting_once(KEY_SETTING, generate_key_pem())
        if await accounts.get_setting(SESSION_KEY_SETTING) is None:  # also on upgrade from before it existed
            await accounts.put_setting_once(SESSION_KEY_SETTING, generate_session_key())
    finally:
        await db.close()
    return generated


def bootstrap(settings: Settings) -> None:
    generated = asyncio.run(_bootstrap(settings))
    if generated:
        # Shown once, on the console of the first start only; never logged again or stored in clear.
        print(
            f"\n  Portside created the administrator account.\n  username: {ADMIN}\n  password: {generated}\n"
            "  Store it now: it will not be shown again (set PORTSIDE_ADMIN_PASSWORD to choose it).\n",
            flush=True,
        )
