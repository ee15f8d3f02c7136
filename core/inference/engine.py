"""The inference engine: a bounded queue of chat calls, batched per target, answered on worker threads.

`submit` queues a call and returns a `Future`; `chat` awaits one from an event
loop, which never blocks (generation runs on the engine's threads, not the
loop's and not asyncio's default pool). At most `concurrency` batches run at
once (FINETUNE_INFERENCE_CONCURRENCY): a worker thread takes the oldest call
and every waiting call of the same target the backend can batch with it (its
`batch_key`), up to the backend's `max_batch`, and answers them in one
`generate`. Workers start when calls arrive and end when the queue is empty,
so an idle engine holds no thread. When `max_waiting` calls already wait,
`submit` refuses with `InferenceBusy` instead of letting latency grow without
bound.

Every answer leaves with its cost: its token usage times the catalog's
inference prices (`core.inference.pricing`), or None with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from core.catalog.models import Catalog, load_catalog
from core.errors import FinetuneError, InvalidInput
from core.inference.base import (
    DEFAULT_MAX_NEW_TOKENS,
    BackendFactory,
    ChatBackend,
    ChatCall,
    ChatRequest,
    ChatResult,
    InferenceBusy,
    ModelUnavailable,
    Outcome,
    Target,
    TextSink,
)
from core.inference.pricing import priced
from core.platform.settings import Settings
from core.vocabulary import ChatProvider

log = logging.getLogger(__name__)

MAX_WAITING = 64  # calls queued beyond the running batches before new ones are refused


@dataclass(frozen=True, slots=True)
class _Job:
    target: Target
    backend: ChatBackend
    call: ChatCall
    key: tuple[Target, Hashable]
    future: Future[ChatResult]
    submitted: float


class InferenceEngine:
    """Answers chat calls for any target whose provider has a backend; built once per composition root."""

    def __init__(
        self,
        settings: Settings,
        *,
        backends: Mapping[ChatProvider, BackendFactory],
        concurrency: int,
        max_waiting: int = MAX_WAITING,
        catalog: Catalog | None = None,
    ) -> None:
        self._settings = settings
        # The composition root's catalog when it has one; else the same one, read with the user's overrides.
        self._catalog = catalog if catalog is not None else load_catalog(settings.catalog_file)
        self._factories = dict(backends)
        self._concurrency = concurrency
        self._max_waiting = max_waiting
        self._backends: dict[ChatProvider, ChatBackend] = {}
        self._pending: deque[_Job] = deque()
        self._workers = 0
        self._lock = threading.Lock()

    def backend(self, provider: ChatProvider) -> ChatBackend:
        """The backend answering `provider`'s targets, built on first use."""
        with self._lock:
            found = self._backends.get(provider)
            if found is None:
                factory = self._factories.get(provider)
                if factory is None:
                    served = ", ".join(sorted(self._factories)) or "none"
                    raise InvalidInput(
                        f"no chat backend answers {provider} models here (backends: {served}).",
                        hint=f"Call {provider} models through {provider}'s own API.",
                    )
                found = self._backends[provider] = factory(self._settings)
            return found

    def submit(self, target: Target, request: ChatRequest, *, on_text: TextSink | None = None) -> Future[ChatResult]:
        """Queue one call; its future holds the answer, or the FinetuneError that refused it."""
        return self.submit_call(target, ChatCall(request, on_text))

    def submit_call(self, target: Target, call: ChatCall) -> Future[ChatResult]:
        backend = self.backend(target.provider)
        future: Future[ChatResult] = Future()
        job = _Job(target, backend, call, (target, backend.batch_key(call.request)), future, time.monotonic())
        with self._lock:
            if len(self._pending) >= self._max_waiting:
                raise InferenceBusy(
                    f"{len(self._pending)} chat calls are already waiting for a model.",
                    hint="Retry in a few seconds, or raise FINETUNE_INFERENCE_CONCURRENCY if the machine has room.",
                    transient=True,
                )
            self._pending.append(job)
            if self._workers < self._concurrency:
                self._workers += 1
                threading.Thread(target=self._work, name="finetune-inference", daemon=True).start()
        return future

    async def chat(self, target: Target, request: ChatRequest, *, on_text: TextSink | None = None) -> ChatResult:
        """The answer, awaited without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(target, request, on_text=on_text))

    def generate(
        self,
        target: Target,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
    ) -> ChatResult:
        """Answer one conversation and wait for it (for callers without an event loop)."""
        request = ChatRequest.build(
            messages, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, stop=stop, seed=seed
        )
        return self.submit(target, request).result()

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        """Free every backend's models (calls still queued keep the backend they were queued with)."""
        with self._lock:
            backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            backend.close()

    # Workers ---------------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                batch = self._take_batch()
                if not batch:
                    self._workers -= 1
                    return
            self._answer(batch)

    def _take_batch(self) -> list[_Job]:
        """The oldest live call and the waiting calls that may share its batch (lock held)."""
        while self._pending:
            first = self._pending.popleft()
            if not first.future.set_running_or_notify_cancel():
                continue  # its caller gave up while it waited
            limit = first.backend.max_batch
            batch = [first]
            for job in list(self._pending):
                if len(batch) >= limit:
                    break
                if job.key == first.key:
                    self._pending.remove(job)
                    if job.future.set_running_or_notify_cancel():
                        batch.append(job)
            return batch
        return []

    def _answer(self, batch: list[_Job]) -> None:
        target, backend = batch[0].target, batch[0].backend
        try:
            outcomes = backend.generate(target, [job.call for job in batch])
        except FinetuneError as exc:
            outcomes = [exc] * len(batch)
        except Exception as exc:
            log.exception("chat generation for %s failed", target.name)
            outcomes = [_unexpected(target, exc)] * len(batch)
        for job, outcome in zip(batch, outcomes, strict=True):
            _settle(job, outcome if isinstance(outcome, FinetuneError) else priced(outcome, target, self._catalog))


def _settle(job: _Job, outcome: Outcome) -> None:
    if isinstance(outcome, FinetuneError):
        job.future.set_exception(outcome)
    else:
        job.future.set_result(replace(outcome, latency_ms=round((time.monotonic() - job.submitted) * 1000, 3)))


def _unexpected(target: Target, exc: Exception) -> ModelUnavailable:
    return ModelUnavailable(
        f"{target.name} failed while answering: {type(exc).__name__}.",
        hint="The server log has the details; the request can be retried.",
        model=target.name,
    )
