"""Building the settings from their sources, validated: defaults < YAML file < PORTSIDE_* environment
< CLI flags. pydantic-settings reads the environment and merges the sources; pydantic checks every
field of the `portside.config` dataclasses against its type and bounds."""

from __future__ import annotations

import dataclasses
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any, get_type_hints

import yaml
from pydantic import ValidationError, create_model
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from portside.config import ConfigError, Settings

_yaml_file: ContextVar[Path | None] = ContextVar("portside_yaml_file", default=None)


class _Sources(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PORTSIDE_", env_nested_delimiter="__", extra="forbid", hide_input_in_errors=True
    )

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


@cache
def _sources_model() -> type[_Sources]:
    """A pydantic-settings model with exactly the fields of `Settings`, types and bounds included."""
    hints = get_type_hints(Settings, include_extras=True)
    definitions: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        default = f.default
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        definitions[f.name] = (hints[f.name], default)
    return create_model("PortsideSettings", __base__=_Sources, **definitions)


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


def load(config_file: Path | None, overrides: dict[str, Any]) -> Settings:
    """The validated settings; `overrides` are CLI flags (None means not given)."""
    token = _yaml_file.set(config_file)
    try:
        loaded = _sources_model()(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    finally:
        _yaml_file.reset(token)
    return Settings(**{f.name: getattr(loaded, f.name) for f in dataclasses.fields(Settings)})


def _describe(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)
