"""Configuration: one object, from defaults < YAML file < PORTSIDE_* environment < CLI flags.

Nested fields use `__` in environment variables, e.g. PORTSIDE_DATABASE__URL=postgresql://...

The settings are frozen standard-library dataclasses, so that worker processes read them back
without importing pydantic (about 9 MiB of memory in each). `load_settings` builds and validates
them with pydantic and pydantic-settings in the process that starts the server; the bounds below are
`annotated_types` constraints, which pydantic enforces.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args, get_type_hints

from annotated_types import Ge, Gt, Le

# How `portside serve` hands the validated settings to its worker processes (JSON).
SETTINGS_ENV = "PORTSIDE_INTERNAL_SETTINGS_JSON"
SECRET_MASK = "**********"


class ConfigError(Exception):
    """A configuration problem, worded for the person starting the server."""


class _Section:
    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}  # unknown keys are errors


@dataclass(frozen=True)
class DatabaseSettings(_Section):
    url: str | None = None  # sqlite:///path or postgresql://user:pass@host:port/db
    pool_size: Annotated[int, Ge(1), Le(200)] = 10


@dataclass(frozen=True)
class FilesystemStorageSettings(_Section):
    driver: Literal["filesystem"] = "filesystem"
    root: Path | None = None  # defaults to <data_dir>/storage


@dataclass(frozen=True)
class RegistrySettings(_Section):
    max_manifest_bytes: Annotated[int, Ge(1024)] = 4 * 1024 * 1024
    max_list_page: Annotated[int, Ge(1)] = 10_000
    pull_flush_seconds: Annotated[float, Gt(0)] = 5.0


@dataclass(frozen=True)
class ApiSettings(_Section):
    max_body_bytes: Annotated[int, Ge(1024)] = 1024 * 1024  # request bodies of /api/v2.0 and /c


@dataclass(frozen=True)
class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    access_log: bool = True


@dataclass(frozen=True)
class AuthSettings(_Section):
    # token: users, robots and bearer tokens; none: an open registry for local use
    mode: Literal["token", "none"] = "token"
    service: str = "portside"  # the `service` named in bearer challenges and tokens
    realm: str | None = None  # token endpoint URL; default: <this server>/service/token
    token_ttl_seconds: Annotated[int, Ge(30), Le(86400)] = 1800
    token_key_file: Path | None = None  # PEM EC P-256 key; default: generated and stored in the DB
    auto_create_projects: bool = False  # create a missing project on first push
    session_ttl_seconds: Annotated[int, Ge(60)] = 8 * 3600


@dataclass(frozen=True)
class AuditSettings(_Section):
    retention_days: Annotated[int, Ge(1)] = 90
    log_pulls: bool = True
    flush_seconds: Annotated[float, Gt(0)] = 1.0


def _default_concurrency() -> dict[str, int]:
    return {"default": 5, "gc": 1}


@dataclass(frozen=True)
class JobsSettings(_Section):
    run_in_server: bool = True  # run job workers and the scheduler inside `portside serve`
    poll_seconds: Annotated[float, Gt(0)] = 1.0
    # running tasks per kind, like Harbor's max_concurrent
    max_concurrent: dict[str, int] = field(default_factory=_default_concurrency)
    stale_seconds: Annotated[float, Ge(10)] = 120  # a running task silent this long is re-queued


@dataclass(frozen=True)
class TLSSettings(_Section):
    cert: Path | None = None
    key: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls.cert and tls.key must be given together")


@dataclass(frozen=True)
class ServerSettings(_Section):
    # Proxies whose X-Forwarded-For/-Proto are believed: comma-separated addresses or networks, `*` for
    # any. None by default: a client cannot choose the address the audit log and login throttle see.
    forwarded_allow_ips: str = ""
    keepalive_timeout_seconds: Annotated[float, Gt(0)] = 15.0  # an idle connection between requests
    # a request head not complete this long after it began (or after the connection opened), or a
    # request body with no bytes for this long, closes the connection (slowloris)
    request_header_timeout_seconds: Annotated[float, Gt(0)] = 30.0
    request_body_idle_timeout_seconds: Annotated[float, Gt(0)] = 60.0

    def __post_init__(self) -> None:
        for entry in self.trusted_proxies:
            if entry != "*":
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"forwarded_allow_ips: {entry!r} is not an IP address or network") from None

    @property
    def trusted_proxies(self) -> list[str]:
        return [p.strip() for p in self.forwarded_allow_ips.split(",") if p.strip()]


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: Annotated[int, Ge(0), Le(65535)] = 5000
    workers: Annotated[int, Ge(0), Le(256)] = 0  # 0 = one per CPU core
    data_dir: Path = Path("./data")
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    storage: FilesystemStorageSettings = field(default_factory=FilesystemStorageSettings)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    log: LogSettings = field(default_factory=LogSettings)
    tls: TLSSettings = field(default_factory=TLSSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    jobs: JobsSettings = field(default_factory=JobsSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    admin_password: str | None = field(default=None, repr=False)  # initial admin password
    admin_password_file: Path | None = None  # file holding it, e.g. a mounted Kubernetes secret

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.data_dir / 'portside.db').absolute()}"

    @property
    def storage_root(self) -> Path:
        return (self.storage.root or self.data_dir / "storage").absolute()

    @property
    def open_registry(self) -> bool:
        return self.auth.mode == "none"

    def initial_admin_password(self) -> str | None:
        if self.admin_password is not None:
            return self.admin_password
        if self.admin_password_file is not None:
            try:
                return self.admin_password_file.read_text().strip()
            except OSError as exc:
                path = self.admin_password_file
                raise ConfigError(f"cannot read admin_password_file {path}: {exc.strerror}") from None
        return None

    def to_json(self, *, indent: int | None = None) -> str:
        """Every setting as JSON, the admin password masked (what `portside config` prints)."""
        data = asdict(self)
        if data["admin_password"] is not None:
            data["admin_password"] = SECRET_MASK
        return json.dumps(data, indent=indent, default=str)

    def for_workers(self) -> str:
        """JSON for worker processes: everything but the initial admin secret, which only start-up needs."""
        data = asdict(self)
        del data["admin_password"], data["admin_password_file"]
        return json.dumps(data, default=str)

    @classmethod
    def for_this_worker(cls) -> Settings:
        """The settings `for_workers()` put in the environment (validated already: no pydantic here)."""
        settings: Settings = _from_plain(cls, json.loads(os.environ[SETTINGS_ENV]))
        return settings

    @property
    def worker_count(self) -> int:
        return self.workers or (os.cpu_count() or 1)


def _from_plain(cls: Any, data: dict[str, Any]) -> Any:
    """Rebuild a settings dataclass from the JSON `asdict` gave: nested sections and paths."""
    hints = get_type_hints(cls)
    values = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value, kind = data[f.name], hints[f.name]
        if isinstance(kind, type) and is_dataclass(kind):
            value = _from_plain(kind, value)
        elif value is not None and Path in (get_args(kind) or (kind,)):
            value = Path(value)
        values[f.name] = value
    return cls(**values)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; flags given as `overrides` (None means not given) win over everything.
    Raises ConfigError naming every invalid setting."""
    from portside.config_loading import load  # pydantic: only where settings are first built

    return load(config_file, overrides)
