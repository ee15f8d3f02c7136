"""The effective settings, secrets masked, for `finetune config`."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr

from core.platform.settings import Settings


class ConfigEntry(BaseModel):
    env: str
    value: str | None
    description: str
    secret: bool


class ConfigReport(BaseModel):
    entries: list[ConfigEntry]


def describe_settings(settings: Settings) -> ConfigReport:
    entries = []
    for name, env in Settings.env_names().items():
        value = getattr(settings, name)
        secret = isinstance(value, SecretStr) or "SecretStr" in str(Settings.model_fields[name].annotation)
        if value is None:
            shown = None
        elif isinstance(value, SecretStr):
            shown = "********" if value.get_secret_value() else ""
        elif isinstance(value, list):
            shown = ",".join(value)
        else:
            shown = str(value)
        entries.append(
            ConfigEntry(env=env, value=shown, description=Settings.model_fields[name].description or "", secret=secret)
        )
    return ConfigReport(entries=entries)
