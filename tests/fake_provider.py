"""A scriptable in-process provider for testing the jobs service without a network.

It is a test double, not a provider: it is never in `core.providers.REGISTRY`;
tests put it in the registry they hand to `Services`. It speaks OpenAI's
status words, so it stands in for the openai (and azure) entries.
"""

from __future__ import annotations

from typing import Any, ClassVar

from core.providers.base import FineTuneProvider, LaunchRequest, ProviderError, ProviderEvent, ProviderJob
from core.vocabulary import JobState, Provider


class FakeProvider(FineTuneProvider):
    name = Provider.OPENAI
    STATUS_MAP: ClassVar[dict[str, JobState]] = {
        "validating_files": JobState.VALIDATING,
        "queued": JobState.QUEUED,
        "running": JobState.RUNNING,
        "succeeded": JobState.SUCCEEDED,
        "failed": JobState.FAILED,
        "cancelled": JobState.CANCELLED,
    }

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}  # provider job id -> state
        self.by_key: dict[str, str] = {}
        self.launches: list[LaunchRequest] = []
        self.fail_next: list[ProviderError] = []  # raised by the next calls, in order
        self.events_by_job: dict[str, list[ProviderEvent]] = {}

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    def _job(self, job_id: str) -> ProviderJob:
        state = self.jobs[job_id]
        return ProviderJob(
            provider_job_id=job_id, status=self.unified(state["status"]), provider_status=state["status"],
            model_id=state.get("model"), error=state.get("error"), metrics=state.get("metrics", {}),
        )  # fmt: skip

    def launch(self, request: LaunchRequest) -> ProviderJob:
        self._maybe_fail()
        self.launches.append(request)
        if request.idempotency_key not in self.by_key:
            job_id = f"ftjob-{len(self.jobs) + 1}"
            self.jobs[job_id] = {"status": "validating_files"}
            self.by_key[request.idempotency_key] = job_id
        return self._job(self.by_key[request.idempotency_key])

    def poll(self, provider_job_id: str) -> ProviderJob:
        self._maybe_fail()
        return self._job(provider_job_id)

    def events(self, provider_job_id: str, *, after: str | None = None) -> list[ProviderEvent]:
        events = self.events_by_job.get(provider_job_id, [])
        ids = [e.id for e in events]
        return events[ids.index(after) + 1 :] if after in ids else events

    def cancel(self, provider_job_id: str) -> ProviderJob:
        self._maybe_fail()
        self.jobs[provider_job_id]["status"] = "cancelled"
        return self._job(provider_job_id)

    def advance(self, job_id: str, status: str, **fields: Any) -> None:
        self.jobs[job_id].update(status=status, **fields)
