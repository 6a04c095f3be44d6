"""Local users: creation with Harbor's password rules, password changes, admin flag, and the end of
their portal sessions (a password change or losing the admin flag ends them too)."""

from __future__ import annotations

import re
from typing import Any

from portside.auth.passwords import check_password_strength, hash_secret, verify_secret
from portside.errors import Denied, Invalid, NotFound
from portside.metadata.accounts import AccountQueries
from portside.metadata.accounts import UserRow as UserRow  # the row type the API shows
from portside.metadata.database import Database

USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,255}$")


class UserService:
    def __init__(self, db: Database, accounts: AccountQueries) -> None:
        self.db = db
        self.accounts = accounts

    async def create(self, username: str, password: str, *, email: str = "", realname: str = "",
                     comment: str = "", sysadmin: bool = False) -> UserRow:
        if not USERNAME.match(username) or username.startswith("robot$"):
            raise Invalid(f"invalid username {username!r}: letters, digits and . _ @ - only")
        problem = check_password_strength(password)
        if problem:
            raise Invalid(problem)
        async with self.db.write(conflict=f"user {username!r} already exists") as conn:
            await self.accounts.create_user(conn, username, hash_secret(password), sysadmin=sysadmin,
                                            email=email, realname=realname, comment=comment)
        user = await self.accounts.user_by_name(username)
        assert user is not None
        return user

    async def list_all(self) -> list[UserRow]:
        async with self.db.read() as conn:
            return await self.accounts.list_users(conn)

    async def exists(self, username: str) -> bool:
        return await self.accounts.user_by_name(username) is not None

    async def get(self, user_id: int) -> UserRow:
        user = await self.accounts.user_by_id(user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return user

    async def by_name(self, username: str) -> UserRow:
        user = await self.accounts.user_by_name(username)
        if user is None:
            raise NotFound(f"user {username!r} not found")
        return user

    async def change_password(self, user: UserRow, new_password: str, *, old_password: str | None) -> None:
        """Users give their old password; administrators resetting someone else's pass None."""
        if old_password is not None and not verify_secret(user.password_hash, old_password):
            raise Denied("the old password is wrong")
        problem = check_password_strength(new_password)
        if problem:
            raise Invalid(problem)
        async with self.db.write() as conn:
            await self.accounts.update_user(conn, user.id, password_hash=hash_secret(new_password), end_sessions=True)

    async def update_profile(self, user: UserRow, *, email: str | None, realname: str | None,
                             comment: str | None) -> None:
        given = {"email": email, "realname": realname, "comment": comment}
        values: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if values:
            async with self.db.write() as conn:
                await self.accounts.update_user(conn, user.id, **values)

    async def set_sysadmin(self, user: UserRow, sysadmin: bool) -> None:
        async with self.db.write() as conn:
            # Revoking the flag ends the sessions signed in as an administrator; granting needs no new sign-in.
            await self.accounts.update_user(conn, user.id, sysadmin=sysadmin, end_sessions=not sysadmin)

    async def end_sessions(self, user_id: int) -> None:
        """Sign the user out of the portal everywhere (every session cookie stops working)."""
        async with self.db.write() as conn:
            await self.accounts.update_user(conn, user_id, end_sessions=True)

    async def delete(self, user: UserRow) -> None:
        async with self.db.write() as conn:
            await self.accounts.delete_user(conn, user.id)
