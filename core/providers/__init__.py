"""Fine-tuning providers: one package per provider, one base class, one registry.

`REGISTRY` is an explicit dict from every `Provider` to a factory that builds
it from settings; nothing registers itself on import. Factories import their
SDK (boto3, openai, torch) when called, so a command that never trains never
pays for it. Provider SDKs are imported only inside this package.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.errors import InvalidInput
from core.platform.settings import Settings
from core.providers.base import (
    FineTuneProvider,
    LaunchRequest,
    ProviderError,
    ProviderEvent,
    ProviderFactory,
    ProviderJob,
    ProviderNotConfigured,
    ProviderRefused,
    WebhookEvent,
)
from core.vocabulary import Provider, one_of


def _openai(settings: Settings) -> FineTuneProvider:
    from core.providers.openai import openai_provider

    return openai_provider(settings)


def _azure(settings: Settings) -> FineTuneProvider:
    from core.providers.openai import azure_provider

    return azure_provider(settings)


def _bedrock(settings: Settings) -> FineTuneProvider:
    from core.providers.bedrock import BedrockProvider

    return BedrockProvider(settings)


def _local(settings: Settings) -> FineTuneProvider:
    raise ProviderNotConfigured(
        "provider 'local' is not available here: local training is not part of this version of finetune-ops.",
        hint="Train on openai, azure or bedrock for now.",
    )


REGISTRY: dict[Provider, ProviderFactory] = {
    Provider.OPENAI: _openai,
    Provider.AZURE: _azure,
    Provider.BEDROCK: _bedrock,
    Provider.LOCAL: _local,
}


def build_provider(
    name: str, settings: Settings, registry: Mapping[Provider, ProviderFactory] | None = None
) -> FineTuneProvider:
    """The provider `name`, built from settings; ProviderNotConfigured names the settings it lacks."""
    factories = REGISTRY if registry is None else registry
    try:
        factory = factories[Provider(name)]
    except (ValueError, KeyError):
        raise InvalidInput(f"unknown provider {name!r}.", hint=f"Use {one_of(Provider)}.") from None
    return factory(settings)


__all__ = [
    "REGISTRY",
    "FineTuneProvider",
    "LaunchRequest",
    "ProviderError",
    "ProviderEvent",
    "ProviderFactory",
    "ProviderJob",
    "ProviderNotConfigured",
    "ProviderRefused",
    "WebhookEvent",
    "build_provider",
]
