"""The local chat backend: registered local versions (base model + adapter) and local base models.

The models themselves are loaded and run by `core.providers.local.inference`
(the only place that imports torch, transformers and peft); this backend says
which calls may share a batch. Greedy calls of one target always may (a row
decodes the same alone or beside others); sampled calls may when they sample
alike and name no seed; a seeded call runs alone so that its seed repeats.
Local answers cost nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

from core.inference.base import ChatBackend, ChatCall, ChatRequest, Outcome, Target
from core.platform.settings import Settings
from core.providers.checks import require_sdk
from core.vocabulary import Provider

if TYPE_CHECKING:
    from core.providers.local.inference import LocalGenerator

MAX_BATCH = 8  # conversations decoded together in one generate call


class LocalBackend(ChatBackend):
    provider = Provider.LOCAL
    max_batch = MAX_BATCH

    def __init__(self) -> None:
        self._generator: LocalGenerator | None = None
        self._lock = threading.Lock()

    @property
    def generator(self) -> LocalGenerator:
        """Built on first use, on a worker thread: importing torch takes seconds the event loop must not wait."""
        with self._lock:
            if self._generator is None:
                from core.providers.local.inference import LocalGenerator

                self._generator = LocalGenerator()
            return self._generator

    def batch_key(self, request: ChatRequest) -> Hashable:
        if request.greedy:
            return "greedy"
        if request.seed is not None:
            return id(request)  # unique while it waits: runs alone
        return ("sample", request.temperature, request.top_p)

    def generate(self, target: Target, calls: Sequence[ChatCall]) -> list[Outcome]:
        from core.providers.local.inference import ModelRef

        return self.generator.generate(ModelRef(target.model, target.base_model), calls, name=target.name)

    def close(self) -> None:
        with self._lock:
            generator, self._generator = self._generator, None
        if generator is not None:
            generator.close()


def local_backend(settings: Settings) -> ChatBackend:
    """The local backend, once torch, transformers and peft are known to be installed (imported on first call)."""
    for module in ("torch", "transformers", "peft"):
        require_sdk(module, provider="Local inference", package=module)
    return LocalBackend()
