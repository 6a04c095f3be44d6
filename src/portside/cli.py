"""The `portside` command."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from portside import __version__
from portside.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:  # the management commands import these when they run, so `serve` starts lean
    from portside.audit.recorder import AuditRecorder
    from portside.management.projects import ProjectService
    from portside.management.robots import CreatedRobot, RobotService
    from portside.management.users import UserService
    from portside.metadata.accounts import UserRow
    from portside.metadata.projects import ProjectRow

app = typer.Typer(help="Portside: a private OCI container registry.", no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]})

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML configuration file", envvar="PORTSIDE_CONFIG")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"portside {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Portside: a private OCI container registry."""


def _settings(config: Path | None, **flags: object) -> Settings:
    try:
        return load_settings(config, **flags)
    except ConfigError as exc:
        typer.echo(f"portside: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 5000]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where metadata and blobs live [default: ./data]")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes [default: one per core]")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate chain (leaf first)")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Open registry for throwaway local use: "
                                          "no accounts, anyone may push and delete")] = False,
) -> None:
    """Start the registry."""
    from portside.server import serve as run

    tls = {"cert": tls_cert, "key": tls_key} if tls_cert or tls_key else None
    auth = {"mode": "none"} if no_auth else None
    settings = _settings(config, host=host, port=port, data_dir=data_dir, workers=workers, tls=tls, auth=auth)
    run(settings)


@app.command()
def migrate(
    config: ConfigOption = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where metadata and blobs live")] = None,
) -> None:
    """Bring the metadata database schema up to date (serve does this on start)."""
    from portside.metadata.database import migrate as run
    from portside.storage.private import make_private

    settings = _settings(config, data_dir=data_dir)
    make_private(settings)
    run(settings.database_url)
    typer.echo("database schema is up to date")


@app.command()
def worker(
    config: ConfigOption = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where metadata and blobs live")] = None,
) -> None:
    """Run job workers and the scheduler without serving HTTP (for scaled deployments; pair with
    `jobs.run_in_server: false` on the serving replicas)."""
    from portside.worker import run_worker

    asyncio.run(run_worker(_settings(config, data_dir=data_dir)))


@app.command("config")
def show_config(config: ConfigOption = None) -> None:
    """Print the effective configuration as JSON."""
    typer.echo(_settings(config).to_json(indent=2))


# -- first setup without the API: users, projects, robots ---------------------------------------

DataDirOption = Annotated[Path | None, typer.Option(help="Where metadata and blobs live")]
CLI_ACTOR = "cli"  # the audit log's username for changes made here

user_app = typer.Typer(help="Local user accounts.", no_args_is_help=True)
project_app = typer.Typer(help="Projects.", no_args_is_help=True)
robot_app = typer.Typer(help="Robot accounts.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(project_app, name="project")
app.add_typer(robot_app, name="robot")

T = TypeVar("T")


@dataclass
class _Admin:
    """The management services over the database `serve` uses, for one command."""

    users: UserService
    project_admin: ProjectService
    robots: RobotService
    audit: AuditRecorder

    def record(self, operation: str, resource_type: str, resource: str, project_id: int | None = None,
               detail: str = "") -> None:
        from portside.audit.recorder import AuditEvent

        self.audit.record(AuditEvent(operation, resource_type, resource, CLI_ACTOR, project_id, detail=detail))


def _administer(config: Path | None, data_dir: Path | None, action: Callable[[_Admin], Awaitable[T]]) -> T:
    """Migrate the schema (so a fresh data directory works), open the database from the same settings
    as `serve`, run `action` with the management services, and write its audit entries."""
    from portside.app import build
    from portside.errors import PortsideError
    from portside.metadata.database import migrate as run_migrations
    from portside.storage.private import make_private

    settings = _settings(config, data_dir=data_dir)
    make_private(settings)
    run_migrations(settings.database_url)

    async def main() -> T:
        # The same services `serve` builds (whose database tells running servers to drop cached answers);
        # nothing here signs, so no keys are loaded.
        services = await build(settings, signing=False)
        admin = _Admin(services.user_admin, services.project_admin, services.robot_admin, services.audit)
        try:
            result = await action(admin)
            await admin.audit.flush()
            return result
        finally:
            await services.db.close()

    try:
        return asyncio.run(main())
    except PortsideError as exc:
        typer.echo(f"portside: {exc.message}", err=True)
        raise typer.Exit(1) from None


def _new_password(password: str | None, what: str = "Password") -> str:
    if password is not None:
        return password
    value: str = typer.prompt(what, hide_input=True, confirmation_prompt=True)
    return value


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Argument(help="The username")],
    password: Annotated[str | None, typer.Option(help="The password (prompted for when not given)")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user a system administrator")] = False,
    email: Annotated[str, typer.Option(help="E-mail address")] = "",
    realname: Annotated[str, typer.Option(help="Full name")] = "",
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a local user."""
    secret = _new_password(password)

    async def action(a: _Admin) -> UserRow:
        user = await a.users.create(name, secret, email=email, realname=realname, sysadmin=admin)
        a.record("create", "user", user.username, detail="sysadmin" if admin else "")
        return user

    user = _administer(config, data_dir, action)
    typer.echo(f"created user {user.username} (id {user.id}{', system administrator' if user.sysadmin else ''})")


@user_app.command("passwd")
def user_passwd(
    name: Annotated[str, typer.Argument(help="The username")],
    password: Annotated[str | None, typer.Option(help="The new password (prompted for when not given)")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Set a user's password (no old password needed: this is the operator's reset)."""
    secret = _new_password(password, "New password")

    async def action(a: _Admin) -> None:
        user = await a.users.by_name(name)
        await a.users.change_password(user, secret, old_password=None)
        a.record("update", "user", user.username, detail="password reset")

    _administer(config, data_dir, action)
    typer.echo(f"password of {name} changed")


@user_app.command("list")
def user_list(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """List the local users."""

    async def action(a: _Admin) -> list[UserRow]:
        return await a.users.list_all()

    users = _administer(config, data_dir, action)
    typer.echo(f"{'ID':>5}  {'USERNAME':<32} {'ADMIN':<6} EMAIL")
    for u in users:
        typer.echo(f"{u.id:>5}  {u.username:<32} {'yes' if u.sysadmin else 'no':<6} {u.email}")


@project_app.command("create")
def project_create(
    name: Annotated[str, typer.Argument(help="The project name")],
    public: Annotated[bool, typer.Option("--public", help="Anyone may pull from it")] = False,
    owner: Annotated[str | None, typer.Option(help="A user to make its project admin")] = None,
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a project."""

    async def action(a: _Admin) -> ProjectRow:
        from portside.auth.principal import Principal

        principal = None
        if owner is not None:
            user = await a.users.by_name(owner)
            principal = Principal("user", user.username, user.id, sysadmin=user.sysadmin)
        project = await a.project_admin.create(name, public=public, metadata=None, storage_limit=None,
                                               owner=principal)
        a.record("create", "project", project.name, project.id)
        return project

    project = _administer(config, data_dir, action)
    typer.echo(f"created {'public' if project.public else 'private'} project {project.name} (id {project.id})")


@project_app.command("list")
def project_list(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """List the projects."""

    async def action(a: _Admin) -> list[tuple[ProjectRow, int]]:
        from portside.auth.principal import Principal

        everyone = Principal("user", CLI_ACTOR, sysadmin=True)
        every = await a.project_admin.list_visible(everyone)
        details = await a.project_admin.details(everyone, every)
        return [(p, details[p.id].repo_count) for p in every]

    rows = _administer(config, data_dir, action)
    typer.echo(f"{'ID':>5}  {'NAME':<32} {'PUBLIC':<7} REPOSITORIES")
    for project, repositories in rows:
        typer.echo(f"{project.id:>5}  {project.name:<32} {'yes' if project.public else 'no':<7} {repositories}")


def _access(permission: str) -> dict[str, str]:
    """`pull`, `push`, `delete` (on repositories) or `resource:action`."""
    resource, sep, action = permission.partition(":")
    if not sep:
        resource, action = "repository", permission
    return {"resource": resource, "action": action}


@robot_app.command("create")
def robot_create(
    name: Annotated[str, typer.Argument(help="The robot's short name (it becomes robot$<project>+<name>)")],
    project: Annotated[str, typer.Option(help="The project it works in")],
    permission: Annotated[list[str], typer.Option(
        help="pull, push, delete, or resource:action (e.g. artifact:read); repeat for several")],
    duration: Annotated[int, typer.Option(help="Days until it expires; -1 for never")] = -1,
    description: Annotated[str, typer.Option(help="What it is for")] = "",
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a project robot account and print its secret (shown this once only)."""
    permissions = [{"kind": "project", "namespace": project, "access": [_access(p) for p in permission]}]

    async def action(a: _Admin) -> CreatedRobot:
        created = await a.robots.create(name=name, level="project", permissions=permissions, duration=duration,
                                        description=description, creator=CLI_ACTOR)
        a.record("create", "robot", created.robot.name, created.robot.project_id)
        return created

    created = _administer(config, data_dir, action)
    typer.echo(f"created robot account {created.robot.name} (id {created.robot.id})")
    typer.echo(f"secret: {created.secret}")
    typer.echo("Store the secret now: it is not stored in clear and will not be shown again.")


def main() -> None:
    app()
