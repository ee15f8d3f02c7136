"""Chat inference behind one contract: messages in; text, token counts, latency and cost out.

`BACKENDS` is the explicit dict from every provider that can answer chats
here to its backend's factory: local models (`core.inference.local`), OpenAI,
Azure OpenAI and any OpenAI-compatible server (`openai_chat`), Anthropic
(`anthropic_chat`) and Bedrock's Converse (`bedrock_chat`). Each cloud entry
pairs a settings-only check (a missing key names the setting, before any
call; `check_configured`) with a factory that imports its SDK when first
called. `build_engine(settings)` makes the one `InferenceEngine` of a
composition root: a bounded queue, batches per target,
FINETUNE_INFERENCE_CONCURRENCY batches at once; cloud backends retry
transient failures (`remote`) and every answer is priced from the catalog
(`pricing`). `target_for` turns what a caller asks for (a version id, a model
name, name@alias) into the local version that answers them; `chat_target`
does so for a version of any provider, and for a base model named
PROVIDER:MODEL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.catalog.models import Catalog
from core.errors import InvalidInput
from core.inference.base import (
    DEFAULT_MAX_NEW_TOKENS,
    MAX_NEW_TOKENS,
    MAX_STOPS,
    MAX_TEMPERATURE,
    BackendFactory,
    ChatBackend,
    ChatCall,
    ChatMessage,
    ChatRefused,
    ChatRequest,
    ChatResult,
    ChatUnanswered,
    FinishReason,
    InferenceBusy,
    MessageRole,
    ModelUnavailable,
    Outcome,
    Target,
    TextSink,
)
from core.inference.checks import check_anthropic, check_azure, check_bedrock_chat, check_compatible, check_openai
from core.inference.engine import MAX_WAITING, InferenceEngine
from core.inference.local import LocalBackend, local_backend
from core.inference.pricing import TokenRates, Unpriced, price_for
from core.inference.remote import RetryPolicy
from core.inference.targets import (
    CallableModel,
    any_version_target,
    callable_models,
    chat_target,
    target_for,
    version_target,
)
from core.platform.settings import Settings
from core.vocabulary import CHAT_PROVIDERS, ChatOnlyProvider, ChatProvider, Provider


@dataclass(frozen=True)
class BackendEntry:
    """One chat backend: whether the settings let it be built (no network), and how to build it."""

    check: Callable[[Settings], object]  # raises ProviderNotConfigured naming the setting to set
    build: BackendFactory

    def __call__(self, settings: Settings) -> ChatBackend:
        self.check(settings)
        return self.build(settings)


def _openai(settings: Settings) -> ChatBackend:
    from core.inference.openai_chat import openai_backend

    return openai_backend(settings)


def _azure(settings: Settings) -> ChatBackend:
    from core.inference.openai_chat import azure_backend

    return azure_backend(settings)


def _compatible(settings: Settings) -> ChatBackend:
    from core.inference.openai_chat import compatible_backend

    return compatible_backend(settings)


def _anthropic(settings: Settings) -> ChatBackend:
    from core.inference.anthropic_chat import anthropic_backend

    return anthropic_backend(settings)


def _bedrock(settings: Settings) -> ChatBackend:
    from core.inference.bedrock_chat import bedrock_backend

    return bedrock_backend(settings)


BACKENDS: dict[ChatProvider, BackendFactory] = {
    Provider.LOCAL: local_backend,
    Provider.OPENAI: BackendEntry(check=check_openai, build=_openai),
    Provider.AZURE: BackendEntry(check=check_azure, build=_azure),
    Provider.BEDROCK: BackendEntry(check=check_bedrock_chat, build=_bedrock),
    ChatOnlyProvider.ANTHROPIC: BackendEntry(check=check_anthropic, build=_anthropic),
    ChatOnlyProvider.COMPATIBLE: BackendEntry(check=check_compatible, build=_compatible),
}


def check_configured(
    provider: ChatProvider, settings: Settings, *, backends: Mapping[ChatProvider, BackendFactory] | None = None
) -> None:
    """ProviderNotConfigured (naming the setting to set) unless `provider`'s chats can be answered; no network.

    A bare factory (the local backend, a test double) is simply built: that checks what it needs.
    """
    found = (BACKENDS if backends is None else backends).get(provider)
    if found is None:
        raise InvalidInput(
            f"no chat backend answers {provider} models here.",
            hint=f"Name one of: {', '.join(p.value for p in CHAT_PROVIDERS)}.",
        )
    if isinstance(found, BackendEntry):
        found.check(settings)
    else:
        found(settings).close()


def build_engine(
    settings: Settings,
    *,
    backends: Mapping[ChatProvider, BackendFactory] | None = None,
    catalog: Catalog | None = None,
) -> InferenceEngine:
    """The composition root's inference engine; backends are built on their first call."""
    return InferenceEngine(
        settings,
        backends=BACKENDS if backends is None else backends,
        concurrency=settings.inference_concurrency,
        catalog=catalog,
    )


__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_NEW_TOKENS",
    "MAX_NEW_TOKENS",
    "MAX_STOPS",
    "MAX_TEMPERATURE",
    "MAX_WAITING",
    "BackendEntry",
    "BackendFactory",
    "CallableModel",
    "ChatBackend",
    "ChatCall",
    "ChatMessage",
    "ChatRefused",
    "ChatRequest",
    "ChatResult",
    "ChatUnanswered",
    "FinishReason",
    "InferenceBusy",
    "InferenceEngine",
    "LocalBackend",
    "MessageRole",
    "ModelUnavailable",
    "Outcome",
    "RetryPolicy",
    "Target",
    "TextSink",
    "TokenRates",
    "Unpriced",
    "any_version_target",
    "build_engine",
    "callable_models",
    "chat_target",
    "check_configured",
    "local_backend",
    "price_for",
    "target_for",
    "version_target",
]
