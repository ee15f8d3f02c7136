"""Settings, loaded once in the composition root and passed down.

Every field is read from the environment (or a ``.env`` file in the working
directory) under the name given as its alias. Nothing else in the project reads
``os.environ``. Secrets are ``SecretStr`` so they never print by accident.

An empty value means unset, for every setting: a `.env` copied from
`.env.example` with blanks left blank behaves like no `.env` at all.
"""

from __future__ import annotations

import difflib
import ipaddress
import itertools
import math
import os
import re
import urllib.parse
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.platform.identity import canonical, parse_identities, parse_identity, parse_people, parse_tokens
from core.vocabulary import CHAT_PROVIDERS, Commitment, Provider, Role, RolloutApproval

DATA_DIR_NAME = ".finetune"  # the folder `finetune` looks for, walking up from the working directory
DB_NAME = "finetune.db"
USER_DATA_DIR_NAME = "finetune-ops"  # under $XDG_DATA_HOME, or ~/.local/share
DEFAULT_MCP_TOKEN_NAME = "default"  # the name FINETUNE_MCP_TOKEN goes by
MIN_PUBLIC_TOKEN_LENGTH = 32  # a token guarding /mcp off loopback is at least this long

_HOST = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(:[0-9]{1,5})?")
MIN_WEBHOOK_SECRET_LENGTH = 32  # FINETUNE_WEBHOOK_SECRET signs every delivery: too long to guess
CHAT_PROVIDER_NAMES = tuple(provider.value for provider in CHAT_PROVIDERS)  # PROVIDER in FINETUNE_JUDGE_MODEL
GENERATE_WEBHOOK_SECRET = 'python -c "import secrets; print(secrets.token_hex(32))"'


def parse_webhook_urls(text: str) -> list[str]:
    """FINETUNE_WEBHOOK_URLS as a list of http(s) URLs, repeats dropped; ValueError naming the bad entry."""
    urls: list[str] = []
    entries = [part.strip() for part in text.split(",") if part.strip()]
    for number, entry in enumerate(entries, start=1):
        _check_webhook_url(entry, f"entry {number} ({redact_url(entry)})")
        if entry not in urls:
            urls.append(entry)
    return urls


def _check_webhook_url(entry: str, where: str) -> None:
    example = "e.g. https://hooks.example.com/finetune"
    if any(char.isspace() or not char.isprintable() for char in entry):
        raise ValueError(f"{where} contains spaces or control characters; percent-encode them (%20)")
    try:
        parts = urllib.parse.urlsplit(entry)
        parts.port  # noqa: B018 - reading it checks the port
    except ValueError as exc:
        raise ValueError(f"{where} is not a URL ({exc}); {example}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{where} must start with http:// or https://, {example}")
    if not parts.hostname:
        raise ValueError(f"{where} names no host; {example}")
    if "@" in parts.netloc:
        raise ValueError(
            f"{where} carries credentials (user:password@); remove them: receivers check the Finetune-Signature "
            "header instead"
        )


def redact_url(url: str) -> str:
    """`url` fit to show or log: scheme and host only, since credentials, path and query may all hold a token."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "not a URL"
    if not parts.scheme or not host:
        return "not a URL"
    rest = "/…" if parts.path.strip("/") or parts.query or parts.fragment else ""
    return f"{parts.scheme}://{host}{rest}"


def _env(name: str, doc: str, **kwargs: Any) -> Any:
    """A field read from environment variable ``name``; ``doc`` is its one-line description."""
    return Field(
        validation_alias=AliasChoices(name, name.lower()),
        description=doc,
        json_schema_extra={"env": name},
        **kwargs,
    )


ALIAS_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")  # a model alias: production, candidate, staging, ...
MAX_APPROVALS_NEEDED = 10


_QUORUM_KEY = re.compile(rf"{ALIAS_NAME.pattern}(\.[a-z]+)?")  # an alias, an action, or alias.action


def parse_quorums(text: str) -> dict[str, int]:
    """`production=2,retire=2` as {"production": 2, "retire": 2}; ValueError naming the bad entry."""
    quorums: dict[str, int] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        key, sep, count = (piece.strip() for piece in entry.partition("="))
        if not sep or not _QUORUM_KEY.fullmatch(key) or not count.isdigit():
            raise ValueError(
                f"{entry!r} must be NAME=COUNT: an alias, an action or alias.action and a number, e.g. production=2"
            )
        if not 1 <= int(count) <= MAX_APPROVALS_NEEDED:
            raise ValueError(f"{entry!r}: the count must be from 1 to {MAX_APPROVALS_NEEDED}")
        quorums[key] = int(count)
    return quorums


def parse_hyperparameters(text: str) -> dict[str, float]:
    """`learning_rate=0.001,epochs=4` as {"learning_rate": 0.001, "epochs": 4.0}; ValueError naming the bad entry."""
    values: dict[str, float] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        name, sep, number = (piece.strip() for piece in entry.partition("="))
        try:
            value = float(number)
        except ValueError:
            value = math.nan
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name) or not math.isfinite(value):
            raise ValueError(f"{entry!r} must be NAME=NUMBER, e.g. learning_rate=0.001")
        values[name] = value
    return values


_ROLE_LIST_FORMS = "Slack user ids (U123 or slack:U123), slack-group:S123, os:NAME or mcp:TOKEN-NAME, comma-separated"


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
        "FINETUNE_DATA_DIR",
        "Directory holding finetune.db and artefacts. Unset: the nearest .finetune/ holding finetune.db in the "
        "working directory or above it, else $XDG_DATA_HOME/finetune-ops (~/.local/share/finetune-ops).",
        default=None,
        validate_default=False,  # None until `_resolve_data_dir` finds the directory
    )
    host: str = _env("FINETUNE_HOST", "Interface `finetune serve` listens on.", default="127.0.0.1")
    port: int = _env("FINETUNE_PORT", "Port `finetune serve` listens on.", default=8080, ge=0, le=65535)
    public_hosts: Annotated[list[str], NoDecode] = _env(
        "FINETUNE_PUBLIC_HOSTS",
        "Host names (optionally host:port) clients use to reach serve through a reverse proxy, comma-separated; "
        "/mcp accepts requests for these names, and only these, besides loopback.",
        default_factory=list,
    )
    public_url: str | None = _env(
        "FINETUNE_PUBLIC_URL",
        "Address people open `finetune serve` at in a browser, e.g. https://finetune.example.com; the weekly Slack "
        "digest links its page there (/reports/YYYY-Www.html).",
        default=None,
    )
    mcp_token: SecretStr | None = _env(
        "FINETUNE_MCP_TOKEN",
        "Bearer token required on /mcp, named `default` (mandatory off loopback, at least 32 characters).",
        default=None,
    )
    mcp_tokens: SecretStr | None = _env(
        "FINETUNE_MCP_TOKENS",
        "More /mcp bearer tokens, one per agent or host: NAME:TOKEN,NAME:TOKEN. A caller is mcp:NAME.",
        default=None,
    )
    app_tokens: SecretStr | None = _env(
        "FINETUNE_APP_TOKENS",
        "Bearer tokens of applications resolving models over /v1 (never valid on /mcp): NAME:TOKEN,NAME:TOKEN.",
        default=None,
    )
    webhook_urls: SecretStr | None = _env(
        "FINETUNE_WEBHOOK_URLS",
        "http(s) URLs that receive a signed POST for every model version registered and every alias move, "
        "comma-separated (kept secret: such URLs often carry tokens).",
        default=None,
    )
    webhook_secret: SecretStr | None = _env(
        "FINETUNE_WEBHOOK_SECRET",
        f"Key that signs every webhook delivery (header Finetune-Signature), at least {MIN_WEBHOOK_SECRET_LENGTH} "
        "characters; required with FINETUNE_WEBHOOK_URLS.",
        default=None,
    )
    timezone: str = _env("FINETUNE_TIMEZONE", "IANA time zone for schedules, digests and spend periods.", default="UTC")

    admins: Annotated[list[str], NoDecode] = _env(
        "FINETUNE_ADMINS", f"Identities with the admin role: {_ROLE_LIST_FORMS}.", default_factory=list
    )
    approvers: Annotated[list[str], NoDecode] = _env(
        "FINETUNE_APPROVERS", "Identities with the approver role (decide approvals), same forms.", default_factory=list
    )
    operators: Annotated[list[str], NoDecode] = _env(
        "FINETUNE_OPERATORS",
        "Identities with the operator role (ingest, build, export, validate, launch, cancel their own jobs).",
        default_factory=list,
    )
    viewers: Annotated[list[str], NoDecode] = _env(
        "FINETUNE_VIEWERS",
        "Identities with the viewer role (read only), e.g. to lower an OS user.",
        default_factory=list,
    )
    default_slack_role: Role = _env(
        "FINETUNE_DEFAULT_SLACK_ROLE", "Role of Slack users listed in no role list.", default=Role.VIEWER
    )
    cli_role: Role = _env(
        "FINETUNE_CLI_ROLE",
        "Role of OS users (CLI, stdio MCP) listed in no role list; whoever runs the CLI owns the database file.",
        default=Role.ADMIN,
    )
    people: Annotated[dict[str, list[str]], NoDecode] = _env(
        "FINETUNE_PEOPLE",
        "One person's identities across faces, e.g. alice=slack:U1,os:alice,mcp:alice-laptop;bob=slack:U2. "
        "Four eyes and the daily limit compare people.",
        default_factory=dict,
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
    regression_drop_points: float = _env(
        "FINETUNE_REGRESSION_DROP_POINTS",
        "Drop of an agent's mean acceptance, in percentage points, that the daily regression check alerts on "
        "(when also significant).",
        default=10.0,
        gt=0,
        le=100,
    )
    regression_window_days: int = _env(
        "FINETUNE_REGRESSION_WINDOW_DAYS",
        "Recent completed days the daily regression check looks at.",
        default=7,
        ge=2,
        le=90,
    )
    regression_baseline_days: int = _env(
        "FINETUNE_REGRESSION_BASELINE_DAYS",
        "Days before those that set the baseline the recent days are compared with.",
        default=30,
        ge=2,
        le=365,
    )
    regression_spike_percent: float = _env(
        "FINETUNE_REGRESSION_SPIKE_PERCENT",
        "Rise of an agent's mean latency or cost per event, in percent, that the daily regression check alerts on "
        "(when also significant).",
        default=50.0,
        gt=0,
    )
    minutes_saved_per_accepted_draft: float = _env(
        "FINETUNE_MINUTES_SAVED_PER_ACCEPTED_DRAFT",
        "Minutes of a person's work one accepted draft saves; with FINETUNE_COST_PER_MINUTE_USD it values the "
        "acceptance lift in `analytics costs` ROI.",
        default=3.0,
        ge=0,
    )
    cost_per_minute_usd: float = _env(
        "FINETUNE_COST_PER_MINUTE_USD",
        "What a minute of that work costs, in USD (the default, $0.75, is $45 an hour).",
        default=0.75,
        ge=0,
    )
    retrain_min_corrections: int = _env(
        "FINETUNE_RETRAIN_MIN_CORRECTIONS",
        "New corrections (a final that differs from the draft, passing the agent's last dataset recipe and "
        "FINETUNE_RETRAIN_MIN_QUALITY) since an agent's last dataset version that make the scheduler propose "
        "retraining it.",
        default=50,
        ge=1,
    )
    retrain_min_quality: float = _env(
        "FINETUNE_RETRAIN_MIN_QUALITY",
        "Least quality score (0-1, the dataset builder's score) a correction needs to count toward retraining; "
        "the agent's last recipe's min_quality applies too, whichever is higher.",
        default=0.0,
        ge=0,
        le=1,
    )
    retrain_provider: Provider = _env(
        "FINETUNE_RETRAIN_PROVIDER",
        "Provider of a retraining job for an agent that has no job yet (otherwise its last job's provider).",
        default=Provider.LOCAL,
    )
    retrain_base_model: str = _env(
        "FINETUNE_RETRAIN_BASE_MODEL",
        "Base model of a retraining job for an agent that has no job yet (otherwise its last job's); default on "
        "local means FINETUNE_LOCAL_BASE_MODEL.",
        default="default",
        min_length=1,
    )
    retrain_hyperparameters: Annotated[dict[str, float], NoDecode] = _env(
        "FINETUNE_RETRAIN_HYPERPARAMETERS",
        "Hyperparameters every retraining job asks for, e.g. learning_rate=0.001,epochs=4 (checked against the base "
        "model's ranges at launch); the others are suggested for the new version's size. Empty: all suggested.",
        default_factory=dict,
    )
    inference_concurrency: int = _env(
        "FINETUNE_INFERENCE_CONCURRENCY",
        "Batches of chat calls to local models that serve generates at once; more calls wait in a queue.",
        default=1,
        ge=1,
        le=64,
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
    monthly_budget_usd: float | None = _env(
        "FINETUNE_MONTHLY_BUDGET_USD",
        "Estimated cost of the jobs launched this calendar month (FINETUNE_TIMEZONE) beyond which every launch "
        "waits for an approver.",
        default=None,
        ge=0,
    )
    user_daily_limit_usd: float | None = _env(
        "FINETUNE_USER_DAILY_LIMIT_USD",
        "Estimated cost one person may launch per day beyond which their launches wait for an approver.",
        default=None,
        ge=0,
    )
    four_eyes: bool = _env(
        "FINETUNE_FOUR_EYES", "An approval must be decided by someone other than its requester.", default=True
    )
    approval_ttl_hours: float = _env(
        "FINETUNE_APPROVAL_TTL_HOURS", "Hours an approval request stays open before it expires.", default=24, gt=0
    )
    approvals_needed: Annotated[dict[str, int], NoDecode] = _env(
        "FINETUNE_APPROVALS_NEEDED",
        "How many approvers (different people) an approval needs, by alias, action or alias.action, e.g. "
        "production=2,production.rollback=1,retire=2 (the most specific entry wins); anything not named needs one.",
        default_factory=lambda: {"production": 2},
    )
    protected_aliases: Annotated[list[str], NoDecode] = _env(
        "FINETUNE_PROTECTED_ALIASES",
        "Model aliases that move only through an approval, comma-separated.",
        default_factory=lambda: ["production"],
    )
    rollout_approval: RolloutApproval = _env(
        "FINETUNE_ROLLOUT_APPROVAL",
        "What approving a staged rollout (deploy --plan) of a protected alias approves: plan (its first stage "
        "approves every stage; later stages advance after their hold) or stage (each stage waits for its own).",
        default=RolloutApproval.PLAN,
    )
    loop_alias: str = _env(
        "FINETUNE_LOOP_ALIAS",
        "The alias a run of the closed loop aims its candidate at: evaluated against it, then canaried behind it.",
        default="production",
    )
    loop_canary_plan: str = _env(
        "FINETUNE_LOOP_CANARY_PLAN",
        "The canary shares (percent, ending at 100) a loop run rolls its candidate out through, e.g. 10,50,100.",
        default="10,50,100",
    )
    loop_canary_every: str = _env(
        "FINETUNE_LOOP_CANARY_EVERY",
        "How long each canary stage of a loop run holds before the next (e.g. 24h, 30m); the acceptance guard "
        "watches it throughout.",
        default="24h",
    )
    loop_eval_limit: int = _env(
        "FINETUNE_LOOP_EVAL_LIMIT",
        "Examples of the test split a loop run's automatic evaluation measures and judges (1-5000).",
        default=100, ge=1, le=5000,
    )  # fmt: skip
    loop_eval_max_cost_usd: float | None = _env(
        "FINETUNE_LOOP_EVAL_MAX_COST_USD",
        "The cost cap of a loop run's automatic evaluation (answers and judge), in USD; empty for none (a cap "
        "needs every model's price in the catalog).",
        default=5.0, gt=0,
    )  # fmt: skip
    canary_auto_rollback: bool = _env(
        "FINETUNE_CANARY_AUTO_ROLLBACK",
        "Let the scheduler roll back a canary whose acceptance is significantly worse than its stable version's "
        "(always-valid sequential test) without an approval; off, it requests the rollback from approvers.",
        default=False,
    )
    require_evaluation: Annotated[list[str], NoDecode] = _env(
        "FINETUNE_REQUIRE_EVALUATION",
        "Model aliases a version may enter (deploy, canary, promotion) only after a finished evaluation against the "
        "alias's current version that passes FINETUNE_EVALUATION_MARGIN, comma-separated, e.g. production; empty: "
        "none. Rollbacks are never held back.",
        default_factory=list,
    )
    evaluation_margin: float = _env(
        "FINETUNE_EVALUATION_MARGIN",
        "How far below its baseline a candidate may fall and still pass FINETUNE_REQUIRE_EVALUATION, on both "
        "measures the evaluation's verdict weighs: the judge's win rate (against 50%) and the mean acceptance of "
        "its outputs (0.02 = 2 points).",
        default=0.02,
        ge=0,
        lt=0.5,
    )
    local_base_model: str | None = _env(
        "FINETUNE_LOCAL_BASE_MODEL",
        "Base model of local jobs launched with --base-model default: a directory holding a Hugging Face model, "
        "the id of one already in the Hugging Face cache (never downloaded), or tiny.",
        default=None,
    )
    local_runs_dir: Path | None = _env(
        "FINETUNE_LOCAL_RUNS_DIR",
        "Where local training runs keep their adapters, logs and progress. Unset: DATA_DIR/local/runs.",
        default=None,
    )
    local_merge: bool = _env(
        "FINETUNE_LOCAL_MERGE",
        "Also save each local run's adapter merged into a full copy of its base model (as much disk again as the "
        "base model); the hyperparameter merge=1 asks it for one job.",
        default=False,
    )
    bedrock_bucket: str | None = _env(
        "FINETUNE_BEDROCK_BUCKET",
        "S3 bucket (optionally bucket/prefix) for Bedrock training data and output.",
        default=None,
    )
    bedrock_role_arn: str | None = _env(
        "FINETUNE_BEDROCK_ROLE_ARN", "IAM role Bedrock assumes to read training data and write output.", default=None
    )
    bedrock_model_units: int = _env(
        "FINETUNE_BEDROCK_MODEL_UNITS",
        "Model units of the provisioned throughput a Bedrock custom model gets when it cannot be deployed on demand.",
        default=1,
        ge=1,
    )
    bedrock_commitment: Commitment = _env(
        "FINETUNE_BEDROCK_COMMITMENT",
        "Commitment term of that provisioned throughput: none (hourly, deletable at any time), 1-month or 6-months.",
        default=Commitment.NONE,
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
        "AZURE_OPENAI_API_VERSION",
        "Azure OpenAI API version for fine-tuning and chat calls.",
        default="2025-04-01-preview",
    )
    anthropic_api_key: SecretStr | None = _env(
        "ANTHROPIC_API_KEY",
        "Anthropic API key: chats with Claude models (anthropic:MODEL), e.g. the judge.",
        default=None,
    )
    anthropic_base_url: str | None = _env(
        "ANTHROPIC_BASE_URL", "Anthropic API base URL (default: Anthropic's).", default=None
    )
    compatible_base_url: str | None = _env(
        "FINETUNE_COMPATIBLE_BASE_URL",
        "Base URL of an OpenAI-compatible chat server that answers compatible:MODEL (Ollama, vLLM, another "
        "finetune serve), e.g. http://127.0.0.1:11434/v1.",
        default=None,
    )
    compatible_api_key: SecretStr | None = _env(
        "FINETUNE_COMPATIBLE_API_KEY", "Bearer key of that server, when it asks for one.", default=None
    )
    judge_model: str = _env(
        "FINETUNE_JUDGE_MODEL",
        "Model that judges answers in evaluations unless one is named, as PROVIDER:MODEL "
        f"({', '.join(CHAT_PROVIDER_NAMES)}).",
        default="anthropic:claude-sonnet-5-5",
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

    _data_dir_source: str = PrivateAttr(default="FINETUNE_DATA_DIR")

    @model_validator(mode="before")
    @classmethod
    def _empty_means_unset(cls, data: Any) -> Any:
        """`NAME=` (or only spaces) leaves the setting at its default, whatever its type."""
        if not isinstance(data, dict):
            return data
        return {key: value for key, value in data.items() if not _blank(value)}

    @field_validator("admins", "approvers", "operators", "viewers", mode="before")
    @classmethod
    def _identity_list(cls, value: object) -> object:
        if isinstance(value, str):
            return canonical(parse_identities(value))
        if isinstance(value, (list, tuple)):
            return canonical(parse_identity(str(item)) for item in value)
        return value

    @field_validator("people", mode="before")
    @classmethod
    def _people(cls, value: object) -> object:
        if isinstance(value, str):
            return {name: canonical(ids) for name, ids in parse_people(value).items()}
        if isinstance(value, dict):
            text = ";".join(f"{name}={','.join(map(str, ids))}" for name, ids in value.items())
            return {name: canonical(ids) for name, ids in parse_people(text).items()}
        return value

    @field_validator("mcp_tokens", "app_tokens")
    @classmethod
    def _token_list(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_tokens(value.get_secret_value())
        return value

    @field_validator("webhook_urls")
    @classmethod
    def _webhook_urls(cls, value: SecretStr | None) -> SecretStr | None:
        urls = parse_webhook_urls(value.get_secret_value()) if value is not None else []
        return SecretStr(",".join(urls)) if urls else None

    @field_validator("webhook_secret")
    @classmethod
    def _long_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        length = len(value.get_secret_value()) if value is not None else MIN_WEBHOOK_SECRET_LENGTH
        if length < MIN_WEBHOOK_SECRET_LENGTH:
            raise ValueError(
                f"must be at least {MIN_WEBHOOK_SECRET_LENGTH} characters (it has {length}); "
                f"generate one with {GENERATE_WEBHOOK_SECRET}"
            )
        return value

    @model_validator(mode="after")
    def _webhooks_signed(self) -> Settings:
        if self.webhook_urls is not None and self.webhook_secret is None:
            raise ValueError(
                "FINETUNE_WEBHOOK_URLS is set but FINETUNE_WEBHOOK_SECRET is not, and every delivery is signed with "
                f"it: generate one with {GENERATE_WEBHOOK_SECRET} and set FINETUNE_WEBHOOK_SECRET"
            )
        return self

    @field_validator("public_hosts", mode="before")
    @classmethod
    def _host_names(cls, value: object) -> object:
        parts = value.split(",") if isinstance(value, str) else value
        if not isinstance(parts, (list, tuple)):
            return value
        hosts = [str(part).strip().lower() for part in parts if str(part).strip()]
        for host in hosts:
            if not _HOST.fullmatch(host):
                raise ValueError(
                    f"{host!r} is not a host name; write the name clients use, e.g. finetune.example.com "
                    "or finetune.example.com:8443 (no scheme, no path)"
                )
        return hosts

    @field_validator("retrain_hyperparameters", mode="before")
    @classmethod
    def _hyperparameters(cls, value: object) -> object:
        return parse_hyperparameters(value) if isinstance(value, str) else value

    @field_validator("approvals_needed", mode="before")
    @classmethod
    def _quorums(cls, value: object) -> object:
        return parse_quorums(value) if isinstance(value, str) else value

    @field_validator("protected_aliases", "require_evaluation", mode="before")
    @classmethod
    def _alias_names(cls, value: object) -> object:
        parts = value.split(",") if isinstance(value, str) else value
        if not isinstance(parts, (list, tuple)):
            return value
        names = [str(part).strip() for part in parts if str(part).strip()]
        for name in names:
            if not ALIAS_NAME.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not an alias name: 1-40 lowercase letters, digits, '-' or '_', starting with a letter"
                )
        return names

    @field_validator("loop_alias")
    @classmethod
    def _loop_alias(cls, value: str) -> str:
        if not ALIAS_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not an alias name: 1-40 lowercase letters, digits, '-' or '_'")
        return value

    @field_validator("loop_canary_plan")
    @classmethod
    def _loop_plan(cls, value: str) -> str:
        try:
            shares = [int(part) for part in value.split(",")]
        except ValueError:
            raise ValueError(f"{value!r} is not a list of percentages such as 10,50,100") from None
        if not shares or shares[-1] != 100 or any(not 0 < a < b for a, b in itertools.pairwise(shares)):
            raise ValueError(f"{value!r}: shares must rise from above 0 and end at 100, e.g. 10,50,100")
        return ",".join(str(share) for share in shares)

    @field_validator("loop_canary_every")
    @classmethod
    def _loop_every(cls, value: str) -> str:
        if not re.fullmatch(r"([0-9]{1,6}[mhd])+", value.strip().lower()):
            raise ValueError(f"{value!r} is not a duration such as 30m, 24h, 2d or 1d12h")
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'UTC' or 'Europe/Paris'") from None
        return value

    @field_validator("judge_model")
    @classmethod
    def _provider_and_model(cls, value: str) -> str:
        provider, sep, model = value.strip().partition(":")
        if not sep or provider not in CHAT_PROVIDER_NAMES or not model.strip():
            raise ValueError(
                f"{value!r} must be PROVIDER:MODEL with PROVIDER one of {', '.join(CHAT_PROVIDER_NAMES)}, "
                "e.g. anthropic:claude-sonnet-5-5 or openai:gpt-4.1-mini"
            )
        return f"{provider}:{model.strip()}"

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urllib.parse.urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            raise ValueError(
                f"{value!r} is not an http(s) address without credentials; write it as e.g. "
                "https://finetune.example.com"
            )
        return value.strip().rstrip("/")

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _one_default_token(self) -> Settings:
        if self.mcp_token is not None and DEFAULT_MCP_TOKEN_NAME in self._named_tokens():
            raise ValueError(
                f"FINETUNE_MCP_TOKENS names a token {DEFAULT_MCP_TOKEN_NAME!r}, which is what FINETUNE_MCP_TOKEN "
                "is called; rename that entry"
            )
        return self

    @model_validator(mode="after")
    def _resolve_data_dir(self) -> Settings:
        given: Path | None = self.data_dir
        if given is not None:
            found, source = given.expanduser().absolute(), "FINETUNE_DATA_DIR"
        else:
            found, source = discover_data_dir(Path.cwd(), os.environ)
        object.__setattr__(self, "data_dir", found)  # frozen: set once, while the model is being built
        self._data_dir_source = source
        return self

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_NAME

    @property
    def data_dir_source(self) -> str:
        """Where the data directory came from: FINETUNE_DATA_DIR, a .finetune/ found above, or the per-user default."""
        return self._data_dir_source

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def host_is_loopback(self) -> bool:
        return is_loopback(self.host)

    def mcp_tokens_by_name(self) -> dict[str, str]:
        """Every /mcp bearer token by its name: FINETUNE_MCP_TOKEN as `default`, then FINETUNE_MCP_TOKENS."""
        tokens = {DEFAULT_MCP_TOKEN_NAME: self.mcp_token.get_secret_value()} if self.mcp_token else {}
        return {**tokens, **self._named_tokens()}

    def app_tokens_by_name(self) -> dict[str, str]:
        """Every application's /v1 bearer token by its name (FINETUNE_APP_TOKENS)."""
        return parse_tokens(self.app_tokens.get_secret_value()) if self.app_tokens else {}

    def _named_tokens(self) -> dict[str, str]:
        return parse_tokens(self.mcp_tokens.get_secret_value()) if self.mcp_tokens else {}

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name -> environment variable name, for docs and `finetune config`."""
        return {name: _env_name(field.json_schema_extra) for name, field in cls.model_fields.items()}


def _blank(value: object) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return isinstance(value, str) and not value.strip()


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


# The data directory -------------------------------------------------------------------------------


def discover_data_dir(cwd: Path, environ: Mapping[str, str]) -> tuple[Path, str]:
    """(directory, where it came from) when FINETUNE_DATA_DIR is unset, the way git finds its repository.

    The nearest `.finetune/` holding finetune.db in `cwd` or above it; else the per-user directory.
    """
    for folder in (cwd, *cwd.parents):
        if (folder / DATA_DIR_NAME / DB_NAME).is_file():
            return folder / DATA_DIR_NAME, f"found walking up from {cwd}"
    return user_data_dir(environ), f"per-user default (no {DATA_DIR_NAME}/{DB_NAME} in {cwd} or above)"


def user_data_dir(environ: Mapping[str, str]) -> Path:
    """$XDG_DATA_HOME/finetune-ops, else ~/.local/share/finetune-ops."""
    xdg = environ.get("XDG_DATA_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / USER_DATA_DIR_NAME
    try:
        home = Path.home()
    except RuntimeError:
        raise ValueError(
            "FINETUNE_DATA_DIR is unset and this user has no home directory to keep the data in; "
            "set FINETUNE_DATA_DIR (or XDG_DATA_HOME)"
        ) from None
    return home / ".local" / "share" / USER_DATA_DIR_NAME


# Names that are no setting ------------------------------------------------------------------------


def unknown_setting_warnings(*, env_file: Path = Path(".env")) -> list[str]:
    """One line per FINETUNE_* name in the environment or `env_file` that is no setting, with the closest one."""
    found = dict.fromkeys(os.environ, "environment")
    if env_file.is_file():
        found.update(dict.fromkeys(dotenv_values(env_file), str(env_file)))
    return unknown_names(found)


def unknown_names(found: Mapping[str, str]) -> list[str]:
    """Warnings for the FINETUNE_* names in `found` (name -> where it was set) that no setting reads."""
    known = sorted(Settings.env_names().values())
    lines = []
    for name, where in sorted(found.items()):
        upper = name.upper()
        if not upper.startswith("FINETUNE_") or upper in known:
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
        advice = f"did you mean {close[0]}?" if close else "`finetune config` lists every setting."
        lines.append(f"{name} (in the {where}) is not a setting; {advice}")
    return lines
