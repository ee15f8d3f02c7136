"""Fine-tuning providers: one package per provider, one base class, one registry.

`REGISTRY` is an explicit dict from every `Provider` to a `ProviderEntry`: a
check that tells, from the settings alone (no network, no SDK import), whether
the provider can be built, and the factory that builds it; nothing registers
itself on import. A launch runs `check_configured` before it records anything.
Factories import their SDK (boto3, openai, torch) when called, so a command
that never trains never pays for it. Provider SDKs are imported only inside
this package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

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
from core.providers.checks import check_azure, check_bedrock, check_local, check_openai
from core.providers.deploy import NOTHING_TO_DEPLOY, DeployCapability, ModelDeployer
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
    from core.providers.local import LocalProvider

    return LocalProvider(settings)


def _bedrock_deployer(settings: Settings) -> ModelDeployer:
    from core.providers.bedrock.deploy import BedrockDeployer

    return BedrockDeployer(settings)


AZURE_DEPLOYMENT = "needs an Azure deployment made in Azure; this does not create one"


@dataclass(frozen=True)
class ProviderEntry:
    """One provider: whether the settings let it be built (checked without the network), and how to build it."""

    check: Callable[[Settings], None]  # raises ProviderNotConfigured naming the settings to set
    build: ProviderFactory
    deploy: DeployCapability = NOTHING_TO_DEPLOY  # what serving its trained models takes (core.providers.deploy)

    def __call__(self, settings: Settings) -> FineTuneProvider:
        self.check(settings)
        return self.build(settings)


REGISTRY: dict[Provider, ProviderEntry] = {
    Provider.OPENAI: ProviderEntry(check=check_openai, build=_openai),
    Provider.AZURE: ProviderEntry(
        check=check_azure, build=_azure, deploy=DeployCapability(made_elsewhere=AZURE_DEPLOYMENT)
    ),
    Provider.BEDROCK: ProviderEntry(
        check=check_bedrock, build=_bedrock, deploy=DeployCapability(build=_bedrock_deployer)
    ),
    Provider.LOCAL: ProviderEntry(check=check_local, build=_local),
}


def _factory(name: str, registry: Mapping[Provider, ProviderFactory] | None) -> ProviderFactory:
    factories: Mapping[Provider, ProviderFactory] = REGISTRY if registry is None else registry
    try:
        return factories[Provider(name)]
    except (ValueError, KeyError):
        raise InvalidInput(f"unknown provider {name!r}.", hint=f"Use {one_of(Provider)}.") from None


def build_provider(
    name: str, settings: Settings, registry: Mapping[Provider, ProviderFactory] | None = None
) -> FineTuneProvider:
    """The provider `name`, built from settings; ProviderNotConfigured names the settings it lacks."""
    return _factory(name, registry)(settings)


def check_configured(name: str, settings: Settings, registry: Mapping[Provider, ProviderFactory] | None = None) -> None:
    """ProviderNotConfigured (naming the settings to set) unless provider `name` can be built; no network.

    A registry entry that is a bare factory (a test double) is simply built.
    """
    factory = _factory(name, registry)
    if isinstance(factory, ProviderEntry):
        factory.check(settings)
    else:
        factory(settings)


__all__ = [
    "REGISTRY",
    "FineTuneProvider",
    "LaunchRequest",
    "ProviderEntry",
    "ProviderError",
    "ProviderEvent",
    "ProviderFactory",
    "ProviderJob",
    "ProviderNotConfigured",
    "ProviderRefused",
    "WebhookEvent",
    "build_provider",
    "check_configured",
]
