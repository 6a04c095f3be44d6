"""Configuration: one validated object, from defaults < YAML file < PORTSIDE_* environment < CLI flags.

Nested fields use `__` in environment variables, e.g. PORTSIDE_DATABASE__URL=postgresql://...
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

# How `portside serve` hands the validated settings to its worker processes (JSON).
SETTINGS_ENV = "PORTSIDE_INTERNAL_SETTINGS_JSON"

_yaml_file: ContextVar[Path | None] = ContextVar("portside_yaml_file", default=None)


class ConfigError(Exception):
    """A configuration problem, worded for the person starting the server."""


class DatabaseSettings(BaseModel):
    url: str | None = Field(None, description="sqlite:///path or postgresql://user:pass@host:port/db")
    pool_size: int = Field(10, ge=1, le=200)


class FilesystemStorageSettings(BaseModel):
    driver: Literal["filesystem"] = "filesystem"
    root: Path | None = Field(None, description="defaults to <data_dir>/storage")


class RegistrySettings(BaseModel):
    max_manifest_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_list_page: int = Field(10_000, ge=1)
    pull_flush_seconds: float = Field(5.0, gt=0)


class LogSettings(BaseModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    access_log: bool = True


class AuthSettings(BaseModel):
    mode: Literal["token", "none"] = Field(
        "token", description="token: users, robots and bearer tokens; none: an open registry for local use"
    )
    service: str = Field("portside", description="the `service` named in bearer challenges and tokens")
    realm: str | None = Field(None, description="token endpoint URL; default: <this server>/service/token")
    token_ttl_seconds: int = Field(1800, ge=30, le=86400)
    token_key_file: Path | None = Field(None, description="PEM EC P-256 key; default: generated and stored in the DB")
    auto_create_projects: bool = Field(False, description="create a missing project on first push")
    session_ttl_seconds: int = Field(8 * 3600, ge=60)


class AuditSettings(BaseModel):
    retention_days: int = Field(90, ge=1)
    log_pulls: bool = True
    flush_seconds: float = Field(1.0, gt=0)


class JobsSettings(BaseModel):
    run_in_server: bool = Field(True, description="run job workers and the scheduler inside `portside serve`")
    poll_seconds: float = Field(1.0, gt=0)
    max_concurrent: dict[str, int] = Field(default_factory=lambda: {"default": 5, "gc": 1},
                                           description="running tasks per kind, like Harbor's max_concurrent")
    stale_seconds: float = Field(120, ge=10, description="a running task silent this long is re-queued")


class TLSSettings(BaseModel):
    cert: Path | None = None
    key: Path | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> TLSSettings:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls.cert and tls.key must be given together")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PORTSIDE_", env_nested_delimiter="__", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(5000, ge=0, le=65535)
    workers: int = Field(0, ge=0, le=256, description="0 = one per CPU core")
    data_dir: Path = Path("./data")
    database: DatabaseSettings = DatabaseSettings()
    storage: FilesystemStorageSettings = FilesystemStorageSettings()
    registry: RegistrySettings = RegistrySettings()
    log: LogSettings = LogSettings()
    tls: TLSSettings = TLSSettings()
    auth: AuthSettings = AuthSettings()
    audit: AuditSettings = AuditSettings()
    jobs: JobsSettings = JobsSettings()
    admin_password: SecretStr | None = Field(None, description="initial admin password (PORTSIDE_ADMIN_PASSWORD)")
    admin_password_file: Path | None = Field(None, description="file holding it, e.g. a mounted Kubernetes secret")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

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
            return self.admin_password.get_secret_value()
        if self.admin_password_file is not None:
            try:
                return self.admin_password_file.read_text().strip()
            except OSError as exc:
                path = self.admin_password_file
                raise ConfigError(f"cannot read admin_password_file {path}: {exc.strerror}") from None
        return None

    def for_workers(self) -> str:
        """JSON for worker processes: everything but the initial admin secret, which only start-up needs."""
        return self.model_dump_json(exclude={"admin_password", "admin_password_file"})

    @classmethod
    def for_this_worker(cls) -> Settings:
        """The settings `for_workers()` put in the environment."""
        return cls.model_validate_json(os.environ[SETTINGS_ENV])

    @property
    def worker_count(self) -> int:
        return self.workers or (os.cpu_count() or 1)


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _yaml_file.get()
        if path is None:
            return {}
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of settings at the top level")
        return data


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; flags given as `overrides` (None means not given) win over everything."""
    token = _yaml_file.set(config_file)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    finally:
        _yaml_file.reset(token)


def _describe(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)
