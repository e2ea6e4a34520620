"""Environments for child processes without the caller's own settings of the project."""

from __future__ import annotations

import os

from pydantic_settings import BaseSettings

from rates.settings import StackSettings
from schemas.settings import CommonSettings


def _settings_classes(root: type[BaseSettings] = CommonSettings) -> list[type[BaseSettings]]:
    """``root`` and every class derived from it (every process's settings)."""
    found: list[type[BaseSettings]] = [root]
    for child in root.__subclasses__():
        found += _settings_classes(child)
    return found


def setting_names() -> frozenset[str]:
    """The environment name of every field of every settings class, upper-cased."""
    assert issubclass(StackSettings, CommonSettings)  # imported: every class is defined now
    names = set()
    for cls in _settings_classes():
        prefix = cls.model_config.get("env_prefix", "")
        for name, info in cls.model_fields.items():
            alias = info.validation_alias
            names.add((alias if isinstance(alias, str) else prefix + name).upper())
    return frozenset(names)


#: Every variable a process of the project reads as a setting.
SETTINGS = setting_names()


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any setting of the project, then ``overrides``.

    Settings are read case-insensitively, so any spelling is removed. Metrics ports default
    to 0 (none: several processes may run at once), logs to INFO, output unbuffered.
    """
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS}
    env.update(
        CONNECTOR_METRICS_PORT="0",
        WORKER_METRICS_PORT="0",
        HISTORY_METRICS_PORT="0",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env
