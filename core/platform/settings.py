"""Settings, loaded once in the composition root and passed down.

Every field is read from the environment (or a ``.env`` file in the working
directory) under the name given as its alias. Nothing else in the project reads
``os.environ``. Secrets are ``SecretStr`` so they never print by accident.
"""

from __future__ import annotations

import ipaddress
import zoneinfo
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _env(name: str, doc: str, **kwargs: Any) -> Any:
    """A field read from environment variable ``name``; ``doc`` is its one-line description."""
    return Field(
        validation_alias=AliasChoices(name, name.lower()),
        description=doc,
        json_schema_extra={"env": name},
        **kwargs,
    )


class Settings(BaseSettings):
    """All configuration of finetune-ops. `finetune config` prints it, secrets masked."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    data_dir: Path = _env(
        "FINETUNE_DATA_DIR", "Directory holding finetune.db and artefacts.", default=Path(".finetune")
    )
    host: str = _env("FINETUNE_HOST", "Interface `finetune serve` listens on.", default="127.0.0.1")
    port: int = _env("FINETUNE_PORT", "Port `finetune serve` listens on.", default=8080, ge=0, le=65535)
    mcp_token: SecretStr | None = _env(
        "FINETUNE_MCP_TOKEN", "Bearer token required on /mcp (mandatory off loopback).", default=None
    )
    timezone: str = _env("FINETUNE_TIMEZONE", "IANA time zone for schedules and digests.", default="UTC")
    admins: Annotated[list[str], NoDecode] = _env(
        "FINETUNE_ADMINS", "Comma-separated Slack user ids allowed to run admin commands.", default_factory=list
    )
    heartbeat_seconds: int = _env(
        "FINETUNE_HEARTBEAT_SECONDS", "How often the scheduler records its heartbeat.", default=30, ge=1
    )
    outbox_seconds: float = _env(
        "FINETUNE_OUTBOX_SECONDS", "How often serve delivers pending notifications.", default=2.0, gt=0
    )
    poll_seconds: float = _env(
        "FINETUNE_POLL_SECONDS", "How often serve polls providers for active jobs.", default=30.0, gt=0
    )
    log_level: str = _env("FINETUNE_LOG_LEVEL", "Logging level (DEBUG, INFO, WARNING, ERROR).", default="INFO")

    redact_at_ingest: bool = _env(
        "FINETUNE_REDACT_AT_INGEST", "Redact PII when feedback is ingested (exports are always redacted).", default=True
    )
    catalog_file: Path | None = _env(
        "FINETUNE_CATALOG_FILE",
        "JSON file whose entries override the bundled model catalog (prices, limits, hyperparameter ranges).",
        default=None,
    )

    auto_approve_usd: float = _env(
        "FINETUNE_AUTO_APPROVE_USD",
        "Jobs estimated at or below this cost launch at once; above it they wait for an approver.",
        default=10.0,
        ge=0,
    )
    four_eyes: bool = _env(
        "FINETUNE_FOUR_EYES", "An approval must be decided by someone other than its requester.", default=True
    )
    approval_ttl_hours: float = _env(
        "FINETUNE_APPROVAL_TTL_HOURS", "Hours an approval request stays open before it expires.", default=24, gt=0
    )
    bedrock_bucket: str | None = _env(
        "FINETUNE_BEDROCK_BUCKET",
        "S3 bucket (optionally bucket/prefix) for Bedrock training data and output.",
        default=None,
    )
    bedrock_role_arn: str | None = _env(
        "FINETUNE_BEDROCK_ROLE_ARN", "IAM role Bedrock assumes to read training data and write output.", default=None
    )
    aws_region: str = _env("AWS_REGION", "AWS region for Bedrock and S3.", default="us-east-1")
    aws_endpoint_url: str | None = _env(
        "AWS_ENDPOINT_URL", "Endpoint for AWS APIs (S3-compatible stores, local emulators).", default=None
    )
    openai_api_key: SecretStr | None = _env("OPENAI_API_KEY", "OpenAI API key.", default=None)
    openai_base_url: str | None = _env("OPENAI_BASE_URL", "OpenAI API base URL (default: OpenAI's).", default=None)
    openai_webhook_secret: SecretStr | None = _env(
        "OPENAI_WEBHOOK_SECRET",
        "Signing secret (whsec_...) of the OpenAI webhook pointed at /webhooks/openai.",
        default=None,
    )
    azure_openai_endpoint: str | None = _env(
        "AZURE_OPENAI_ENDPOINT", "Azure OpenAI resource endpoint, e.g. https://NAME.openai.azure.com.", default=None
    )
    azure_openai_api_key: SecretStr | None = _env("AZURE_OPENAI_API_KEY", "Azure OpenAI API key.", default=None)
    azure_openai_api_version: str = _env(
        "AZURE_OPENAI_API_VERSION", "Azure OpenAI API version for fine-tuning calls.", default="2025-04-01-preview"
    )

    slack_bot_token: SecretStr | None = _env("SLACK_BOT_TOKEN", "Slack bot token (xoxb-...).", default=None)
    slack_signing_secret: SecretStr | None = _env(
        "SLACK_SIGNING_SECRET", "Slack signing secret; verifies every HTTP request.", default=None
    )
    slack_app_token: SecretStr | None = _env(
        "SLACK_APP_TOKEN", "Slack app-level token (xapp-...); when set, Socket Mode is used.", default=None
    )
    slack_api_url: str = _env(
        "SLACK_API_URL", "Slack Web API base URL (self-hosted gateways, tests).", default="https://slack.com/api/"
    )
    slack_channel: str | None = _env(
        "FINETUNE_SLACK_CHANNEL", "Channel id that receives notifications and approvals.", default=None
    )

    @field_validator("admins", mode="before")
    @classmethod
    def _split_admins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'UTC' or 'Europe/Paris'") from None
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "finetune.db"

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def host_is_loopback(self) -> bool:
        return is_loopback(self.host)

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name -> environment variable name, for docs and `finetune config`."""
        return {name: _env_name(field.json_schema_extra) for name, field in cls.model_fields.items()}


def _env_name(extra: object) -> str:
    """The variable `_env` recorded in a field's schema extras."""
    if not isinstance(extra, dict) or not isinstance(extra.get("env"), str):
        raise TypeError("every Settings field is declared with _env(NAME, ...)")
    return str(extra["env"])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
