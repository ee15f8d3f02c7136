"""The contract every fine-tuning provider implements (the registry that names them is `core.providers.REGISTRY`).

A provider turns a `LaunchRequest` into a job on its platform and reports that
job as a `ProviderJob` whose `status` is one of the unified states
(`core.vocabulary.JobState`). Each provider maps every status its platform
documents to exactly one unified state in `STATUS_MAP` (a test checks the map
is complete). Errors are `ProviderError`s: `transient` ones (throttling, 5xx,
timeouts) are retried by the poller with backoff; the others are final.

A provider that announces job changes by webhook overrides `verify_webhook`;
the base refuses every webhook, so a provider without them can never be
tricked into acting on one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypedDict

from core.errors import FinetuneError
from core.platform.settings import Settings
from core.vocabulary import JobState, Method, Provider


class ProviderError(FinetuneError):
    """The provider refused or failed a call."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        transient: bool = False,
        request_id: str | None = None,
        **ids: object,
    ) -> None:
        super().__init__(message, hint=hint, **ids)
        self.transient = transient
        self.request_id = request_id


class ProviderNotConfigured(ProviderError):
    """Settings the provider needs are missing."""


class ProviderRefused(ProviderError):
    """The provider will not run this job for this account (permissions, wind-down, quota)."""


@dataclass(frozen=True)
class LaunchRequest:
    job_id: str  # ours; sent as metadata/tags so the provider's job points back to it
    idempotency_key: str  # a retried launch with the same key never creates a second job
    base_model: str  # the provider's own model id
    method: Method
    hyperparameters: dict[str, Any]  # finetune-ops names (epochs, batch_size, learning_rate, ...)
    train_file: Path
    validation_file: Path | None = None
    suffix: str | None = None
    seed: int | None = None


@dataclass(frozen=True)
class ProviderJob:
    provider_job_id: str
    status: JobState
    provider_status: str  # the provider's own word, kept for people and debugging
    detail: str | None = None  # sub-status or progress, e.g. Bedrock's statusDetails
    model_id: str | None = None  # the trained model (fine-tuned model id, custom model ARN) once succeeded
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    trained_tokens: int | None = None


@dataclass(frozen=True)
class ProviderEvent:
    id: str  # stable, so events are stored once
    at: str  # ISO-8601 UTC
    kind: str  # "message" or "metrics"
    message: str | None = None
    step: int | None = None
    metrics: dict[str, float] | None = None


class WebhookEvent(TypedDict):
    """What a verified webhook announces."""

    type: str  # the provider's event type, e.g. "fine_tuning.job.succeeded"
    job_id: str | None  # the provider's job id
    event_id: str | None  # the delivery's id, for dropping repeats


class FineTuneProvider(ABC):
    name: Provider  # which registry entry built it (one class may serve several, e.g. openai and azure)
    STATUS_MAP: ClassVar[dict[str, JobState]]  # every status the platform documents -> one unified state

    @abstractmethod
    def launch(self, request: LaunchRequest) -> ProviderJob: ...

    @abstractmethod
    def poll(self, provider_job_id: str) -> ProviderJob: ...

    @abstractmethod
    def events(self, provider_job_id: str, *, after: str | None = None) -> list[ProviderEvent]:
        """Events newer than the event id `after` (all when None), oldest first."""

    @abstractmethod
    def cancel(self, provider_job_id: str) -> ProviderJob: ...

    def verify_webhook(self, payload: bytes, headers: Mapping[str, str], secret: str) -> WebhookEvent:
        """Check a webhook's signature and say what it announces; ProviderError when it cannot be trusted."""
        raise ProviderNotConfigured(
            f"{self.name} sends no webhooks finetune-ops can verify.",
            hint="Its jobs are polled; there is nothing to set up for webhooks.",
        )

    def unified(self, provider_status: str) -> JobState:
        try:
            return self.STATUS_MAP[provider_status]
        except KeyError:
            # Transient on purpose: the job is still alive at the provider; keep it and keep asking.
            raise ProviderError(
                f"{self.name} reported a job status finetune-ops does not know: {provider_status!r}.",
                hint="Upgrade finetune-ops; until then the job is left as it was and polled again later.",
                transient=True,
            ) from None


ProviderFactory = Callable[[Settings], FineTuneProvider]
