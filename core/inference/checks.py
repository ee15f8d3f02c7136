"""Whether each chat backend can be built, decided from the settings alone: no network, no SDK import.

`core.inference.BACKENDS` pairs each backend's factory with its check; the
engine runs it before the backend's first call, and `check_configured` lets a
caller (an evaluation about to run) ask first. A check raises
ProviderNotConfigured naming the setting to set. OpenAI and Azure OpenAI use
the same checks as their training (`core.providers.checks`); Bedrock answers
chats without the bucket and role that training needs, so it has its own.
"""

from __future__ import annotations

import re
import urllib.parse

from core.platform.settings import Settings
from core.providers.base import ProviderNotConfigured
from core.providers.checks import check_azure, check_openai, require_sdk

__all__ = ["check_anthropic", "check_azure", "check_bedrock_chat", "check_compatible", "check_openai"]

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")


def check_anthropic(settings: Settings) -> None:
    require_sdk("anthropic", provider="Anthropic", package="anthropic")
    if settings.anthropic_api_key is None:
        raise ProviderNotConfigured(
            "Anthropic is not configured: ANTHROPIC_API_KEY is not set.",
            hint="Set ANTHROPIC_API_KEY to a key from the Claude Console (and ANTHROPIC_BASE_URL for a gateway).",
        )
    if settings.anthropic_base_url is not None:
        _http_url("ANTHROPIC_BASE_URL", settings.anthropic_base_url, example="https://api.anthropic.com")


def check_bedrock_chat(settings: Settings) -> None:
    """The SDK and a region; AWS credentials come from the AWS chain and are checked on the first call."""
    require_sdk("boto3", provider="Bedrock", package="boto3")
    if not _REGION.fullmatch(settings.aws_region.strip()):
        raise ProviderNotConfigured(
            f"AWS_REGION={settings.aws_region!r} is not an AWS region.",
            hint="Set AWS_REGION to the region whose Bedrock models you call, e.g. us-east-1.",
        )
    if settings.aws_endpoint_url is not None:
        _http_url(
            "AWS_ENDPOINT_URL", settings.aws_endpoint_url, example="https://bedrock-runtime.us-east-1.amazonaws.com"
        )


def check_compatible(settings: Settings) -> str:
    """The OpenAI SDK and FINETUNE_COMPATIBLE_BASE_URL, which is returned."""
    require_sdk("openai", provider="OpenAI-compatible chat", package="openai")
    if settings.compatible_base_url is None:
        raise ProviderNotConfigured(
            "compatible:MODEL needs an OpenAI-compatible server: FINETUNE_COMPATIBLE_BASE_URL is not set.",
            hint="Set FINETUNE_COMPATIBLE_BASE_URL to the server's /v1 URL, e.g. http://127.0.0.1:11434/v1 (Ollama).",
        )
    return _http_url("FINETUNE_COMPATIBLE_BASE_URL", settings.compatible_base_url, example="http://127.0.0.1:11434/v1")


def _http_url(setting: str, value: str, *, example: str) -> str:
    text = value.strip()
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - reading it checks the port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in text):
        raise ProviderNotConfigured(
            f"{setting}={value!r} is not an http(s) URL.",
            hint=f"Set {setting} to a URL such as {example}.",
        )
    return text
