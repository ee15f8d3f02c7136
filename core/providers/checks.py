"""Whether each provider can be built from the settings, decided without the network or the provider's SDK.

`REGISTRY` pairs every provider's factory with its check; a launch runs the
check before it records anything, and the factory runs it again before it
builds. Each check raises ProviderNotConfigured naming the settings to set (or
the package to install). This module imports no SDK, so it can tell that one is
missing.
"""

from __future__ import annotations

import importlib.util
import re

from core.platform.settings import Settings
from core.providers.base import ProviderNotConfigured

__all__ = ["bedrock_role", "bedrock_storage", "check_azure", "check_bedrock", "check_local", "check_openai"]

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/.+")


def require_sdk(module: str, *, provider: str, package: str) -> None:
    """ProviderNotConfigured when `module` cannot be imported in this environment."""
    if importlib.util.find_spec(module) is None:
        raise ProviderNotConfigured(
            f"{provider} needs the `{package}` package, which is not installed where finetune-ops runs.",
            hint=f"Install it into the same environment: pip install '{package}'.",
        )


def check_openai(settings: Settings) -> None:
    require_sdk("openai", provider="OpenAI", package="openai")
    if settings.openai_api_key is None:
        raise ProviderNotConfigured(
            "OpenAI is not configured: OPENAI_API_KEY is not set.",
            hint="Set OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible endpoint), or use provider 'azure'.",
        )


def check_azure(settings: Settings) -> None:
    require_sdk("openai", provider="Azure OpenAI", package="openai")
    given = (("AZURE_OPENAI_ENDPOINT", settings.azure_openai_endpoint), ("AZURE_OPENAI_API_KEY", settings.azure_openai_api_key))  # fmt: skip
    missing = [env for env, value in given if not value]
    if missing:
        raise ProviderNotConfigured(
            f"Azure OpenAI is not configured: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set.",
            hint="Set AZURE_OPENAI_ENDPOINT (https://NAME.openai.azure.com) and AZURE_OPENAI_API_KEY; "
            "AZURE_OPENAI_API_VERSION picks the API version.",
        )


def check_bedrock(settings: Settings) -> None:
    """The SDK, the bucket and the role; AWS credentials come from the AWS chain and are checked on first use."""
    require_sdk("boto3", provider="Bedrock", package="boto3")
    bedrock_storage(settings)
    bedrock_role(settings)


# What the local trainer imports, by module name; all of it comes with the `local` extra.
LOCAL_MODULES = ("torch", "transformers", "peft", "accelerate", "tokenizers", "safetensors", "huggingface_hub")
LOCAL_EXTRA = "pip install 'finetune-ops[local]'"


def check_local(settings: Settings) -> None:
    """The `local` extra is installed: found by `find_spec`, so nothing as heavy as torch is imported to tell."""
    missing = [module for module in LOCAL_MODULES if importlib.util.find_spec(module) is None]
    if missing:
        raise ProviderNotConfigured(
            f"local training needs the `local` extra, which is not installed where finetune-ops runs "
            f"(missing: {', '.join(missing)}).",
            hint=f"Install it into the same environment: {LOCAL_EXTRA} (from a checkout: pip install -e '.[local]', "
            "or `python3 dev.py serve`, which installs it). It pins torch==2.13.0: see the README before installing "
            "another torch, which can download gigabytes.",
        )


def bedrock_storage(settings: Settings) -> tuple[str, str]:
    """(bucket, prefix) from FINETUNE_BEDROCK_BUCKET: ``bucket``, ``bucket/prefix`` or ``s3://bucket/prefix``."""
    if not settings.bedrock_bucket:
        raise ProviderNotConfigured(
            "Bedrock needs an S3 bucket for training data: FINETUNE_BEDROCK_BUCKET is not set.",
            hint="Set FINETUNE_BEDROCK_BUCKET to a bucket in AWS_REGION, optionally with a prefix: my-bucket/finetune.",
        )
    text = settings.bedrock_bucket.strip().removeprefix("s3://").strip("/")
    bucket, _, prefix = text.partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise ProviderNotConfigured(
            f"FINETUNE_BEDROCK_BUCKET={settings.bedrock_bucket!r} does not start with an S3 bucket name.",
            hint="Use a bucket name (3-63 lower-case letters, digits, dots, hyphens), optionally followed by /prefix.",
        )
    return bucket, prefix.strip("/")


def bedrock_role(settings: Settings) -> str:
    role = (settings.bedrock_role_arn or "").strip()
    if not role:
        raise ProviderNotConfigured(
            "Bedrock needs an IAM role to read training data and write output: FINETUNE_BEDROCK_ROLE_ARN is not set.",
            hint="Set FINETUNE_BEDROCK_ROLE_ARN to the ARN of a role that trusts bedrock.amazonaws.com "
            "and can read and write FINETUNE_BEDROCK_BUCKET.",
        )
    if not _ROLE_ARN.fullmatch(role):
        raise ProviderNotConfigured(
            f"FINETUNE_BEDROCK_ROLE_ARN={role!r} is not an IAM role ARN.",
            hint="It looks like arn:aws:iam::123456789012:role/BedrockFineTuning.",
        )
    return role
