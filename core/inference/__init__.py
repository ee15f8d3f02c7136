"""Chat inference behind one contract: messages in; text, token counts, latency and cost out.

`BACKENDS` is the explicit dict from every provider that can answer chats
here to the factory of its backend (local models for now; cloud providers join
behind the same `ChatBackend`). `build_engine(settings)` makes the one
`InferenceEngine` of a composition root: a bounded queue, batches per target,
FINETUNE_INFERENCE_CONCURRENCY batches at once. `target_for` turns what a
caller asks for (a version id, a model name, name@alias) into the local
version that answers them.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.inference.base import (
    DEFAULT_MAX_NEW_TOKENS,
    MAX_NEW_TOKENS,
    MAX_STOPS,
    MAX_TEMPERATURE,
    BackendFactory,
    ChatBackend,
    ChatCall,
    ChatMessage,
    ChatRequest,
    ChatResult,
    FinishReason,
    InferenceBusy,
    MessageRole,
    ModelUnavailable,
    Outcome,
    Target,
    TextSink,
)
from core.inference.engine import MAX_WAITING, InferenceEngine
from core.inference.local import LocalBackend, local_backend
from core.inference.targets import CallableModel, callable_models, target_for, version_target
from core.platform.settings import Settings
from core.vocabulary import Provider

BACKENDS: dict[Provider, BackendFactory] = {
    Provider.LOCAL: local_backend,
}


def build_engine(settings: Settings, *, backends: Mapping[Provider, BackendFactory] | None = None) -> InferenceEngine:
    """The composition root's inference engine; backends are built on their first call."""
    return InferenceEngine(
        settings, backends=BACKENDS if backends is None else backends, concurrency=settings.inference_concurrency
    )


__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_NEW_TOKENS",
    "MAX_NEW_TOKENS",
    "MAX_STOPS",
    "MAX_TEMPERATURE",
    "MAX_WAITING",
    "BackendFactory",
    "CallableModel",
    "ChatBackend",
    "ChatCall",
    "ChatMessage",
    "ChatRequest",
    "ChatResult",
    "FinishReason",
    "InferenceBusy",
    "InferenceEngine",
    "LocalBackend",
    "MessageRole",
    "ModelUnavailable",
    "Outcome",
    "Target",
    "TextSink",
    "build_engine",
    "callable_models",
    "local_backend",
    "target_for",
    "version_target",
]
