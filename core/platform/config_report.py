"""The effective settings, secrets masked, for `finetune config`."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

from core.platform.settings import Settings


class ConfigEntry(BaseModel):
    env: str
    value: str | None
    description: str
    secret: bool


class ConfigReport(BaseModel):
    entries: list[ConfigEntry]
    data_dir: str = Field(description="The data directory in use (finetune.db and artefacts).")
    data_dir_source: str = Field(
        description="Where it came from: FINETUNE_DATA_DIR, a .finetune/ found walking up, or the per-user default."
    )


def describe_settings(settings: Settings) -> ConfigReport:
    entries = []
    for name, env in Settings.env_names().items():
        value = getattr(settings, name)
        secret = isinstance(value, SecretStr) or "SecretStr" in str(Settings.model_fields[name].annotation)
        shown = _shown(value)
        if name == "data_dir":
            shown = f"{value} ({settings.data_dir_source})"
        entries.append(
            ConfigEntry(env=env, value=shown, description=Settings.model_fields[name].description or "", secret=secret)
        )
    return ConfigReport(entries=entries, data_dir=str(settings.data_dir), data_dir_source=settings.data_dir_source)


def _shown(value: object) -> str | None:
    """A setting as its variable would write it; a secret as ******** (or empty)."""
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return "********" if value.get_secret_value() else ""
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return ";".join(f"{key}={_shown(item)}" for key, item in value.items())
    return str(value)
