"""The `portside` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from portside import __version__
from portside.config import ConfigError, Settings, load_settings

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

    settings = _settings(config, data_dir=data_dir)
    run(settings.database_url)
    typer.echo("database schema is up to date")


@app.command("config")
def show_config(config: ConfigOption = None) -> None:
    """Print the effective configuration as JSON."""
    typer.echo(_settings(config).model_dump_json(indent=2))


def main() -> None:
    app()
