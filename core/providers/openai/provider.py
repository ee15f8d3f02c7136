"""OpenAI and Azure OpenAI fine-tuning, through the official `openai` client.

Both platforms speak the same fine-tuning API, so one class serves both. The
registry builds it as "openai" (api.openai.com, or OPENAI_BASE_URL) and as
"azure" (an Azure OpenAI resource, AZURE_OPENAI_*).

Idempotency: the API takes no idempotency key when a job is created. So
`launch` first lists the most recent jobs whose metadata carries our job id
(the API filters on metadata) and reuses one that was created for this job and
this idempotency key; only when there is none does it upload the files and
create the job. The key also goes out as an `Idempotency-Key` header, which
costs nothing where the server ignores it.

Retries: the client itself retries timeouts, connection errors, 408, 409, 429
and 5xx (`MAX_RETRIES` times, with its own capped backoff). What still fails
is raised as a transient `ProviderError` for the poller's backoff; there is no
second retry loop here.

Paused jobs: OpenAI documents `pausing` and `paused` beside the statuses its
OpenAPI enum lists. A `pausing` job is still training until its checkpoint is
saved, so it counts as `running`; a `paused` job holds no compute and waits for
`resume`, like a queued job, so it counts as `queued`. Both stay active (the
poller keeps watching) and the job's detail says it is paused.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, cast

import openai
from openai.types.fine_tuning import (
    DpoHyperparametersParam,
    FineTuningJob,
    FineTuningJobEvent,
    SupervisedHyperparametersParam,
)
from openai.types.fine_tuning.job_create_params import Method as MethodParam
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from core.errors import InvalidInput
from core.platform.settings import Settings
from core.platform.timeutil import iso
from core.providers.base import (
    FineTuneProvider,
    LaunchRequest,
    ProviderError,
    ProviderEvent,
    ProviderJob,
    ProviderRefused,
    WebhookEvent,
)
from core.providers.checks import check_azure, check_openai
from core.vocabulary import JobState, Method, Provider

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
MAX_RETRIES = 2  # the client's own retries of transient failures; the poller backs off after that
TIMEOUT_SECONDS = 60.0
UPLOAD_TIMEOUT_SECONDS = 600.0  # training files can be hundreds of megabytes
PAGE_SIZE = 100
MAX_PAGES = 100  # a stop for a server whose cursor never runs out
RECENT_JOBS = 100  # how far back `launch` looks for a job it already created

JOB_METADATA_KEY = "finetune_ops_job"
LAUNCH_METADATA_KEY = "finetune_ops_launch"

# finetune-ops hyperparameter name -> the API's name, per training method.
HYPERPARAMETER_NAMES: dict[Method, dict[str, str]] = {
    Method.SUPERVISED: {
        "epochs": "n_epochs",
        "batch_size": "batch_size",
        "learning_rate_multiplier": "learning_rate_multiplier",
    },
    Method.DPO: {
        "epochs": "n_epochs",
        "batch_size": "batch_size",
        "learning_rate_multiplier": "learning_rate_multiplier",
        "beta": "beta",
    },
}
INTEGER_HYPERPARAMETERS = frozenset({"n_epochs", "batch_size"})

ALTERNATIVES = (
    "Azure OpenAI (the same API: set AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY and launch with provider "
    "'azure'), AWS Bedrock (Nova, Llama; provider 'bedrock') or local LoRA training (provider 'local')"
)

# Errors that say this organisation may not fine-tune at all, whatever their HTTP status.
_NOT_AVAILABLE = re.compile(
    r"fine[- ]?tun\w*.{0,80}?\b(not|no longer)\s+(available|enabled|allowed|permitted|supported)"
    r"|\b(not|no longer)\s+(available|enabled|allowed|permitted)\b.{0,80}?fine[- ]?tun",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class ProviderCheckpoint:
    """A model checkpoint the platform saved during training, with the metrics at that step."""

    id: str
    step: int
    model_id: str  # usable like a fine-tuned model
    at: str  # ISO-8601 UTC
    metrics: dict[str, float] = field(default_factory=dict)


class OpenAIProvider(FineTuneProvider):
    """Fine-tuning jobs on OpenAI or Azure OpenAI; `name` says which."""

    STATUS_MAP: ClassVar[dict[str, JobState]] = {
        "validating_files": JobState.VALIDATING,
        "queued": JobState.QUEUED,
        "running": JobState.RUNNING,
        "pausing": JobState.RUNNING,  # still training until the checkpoint is saved
        "paused": JobState.QUEUED,  # holds no compute; waits for resume
        "succeeded": JobState.SUCCEEDED,
        "failed": JobState.FAILED,
        "cancelled": JobState.CANCELLED,
        # Azure OpenAI's older API versions use their own words for the first stages.
        "created": JobState.VALIDATING,
        "pending": JobState.QUEUED,
    }
    DETAILS: ClassVar[dict[str, str]] = {
        "pausing": "pausing: saving a checkpoint",
        "paused": "paused: resume to continue training",
    }

    def __init__(self, client: openai.OpenAI, *, name: Provider = Provider.OPENAI) -> None:
        self.client = client
        self.name = Provider(name)

    @property
    def label(self) -> str:
        return "Azure OpenAI" if self.name == Provider.AZURE else "OpenAI"

    # Launch ---------------------------------------------------------------------------------------

    def launch(self, request: LaunchRequest) -> ProviderJob:
        method = _checked_method(request)
        earlier = self._earlier_launch(request)
        if earlier is not None:
            log.info("%s: reusing %s, created earlier for %s", self.name, earlier.id, request.job_id)
            return self._job(earlier)
        training_file = self._upload(request.train_file, job_id=request.job_id)
        validation_file = (
            self._upload(request.validation_file, job_id=request.job_id) if request.validation_file else None
        )
        with self._api("create the fine-tuning job", job=request.job_id):
            created = self.client.fine_tuning.jobs.create(
                model=request.base_model,
                training_file=training_file,
                validation_file=validation_file or openai.omit,
                method=method,
                suffix=request.suffix if request.suffix is not None else openai.omit,
                seed=request.seed if request.seed is not None else openai.omit,
                metadata={JOB_METADATA_KEY: request.job_id, LAUNCH_METADATA_KEY: request.idempotency_key},
                extra_headers={"Idempotency-Key": request.idempotency_key},
            )
        log.info("%s: created %s for %s (request id %s)", self.name, created.id, request.job_id, created._request_id)
        return self._job(created)

    def _earlier_launch(self, request: LaunchRequest) -> FineTuningJob | None:
        """The most recent job this launch already created (a retry after a lost reply), if any."""
        with self._api("look for an earlier launch", job=request.job_id):
            page = self.client.fine_tuning.jobs.list(limit=RECENT_JOBS, metadata={JOB_METADATA_KEY: request.job_id})
        for job in page.data:
            metadata = job.metadata or {}
            if (
                metadata.get(JOB_METADATA_KEY) == request.job_id
                and metadata.get(LAUNCH_METADATA_KEY, request.idempotency_key) == request.idempotency_key
            ):
                return job
        return None

    def _upload(self, path: Path, *, job_id: str) -> str:
        with self._api(f"upload {path.name}", job=job_id):
            uploaded = self.client.files.create(file=path, purpose="fine-tune", timeout=UPLOAD_TIMEOUT_SECONDS)
        log.info("%s: uploaded %s as %s (request id %s)", self.name, path.name, uploaded.id, uploaded._request_id)
        return uploaded.id

    # Watching and steering a job --------------------------------------------------------------------

    def poll(self, provider_job_id: str) -> ProviderJob:
        _require_id(provider_job_id)
        with self._api("read the fine-tuning job", provider_job=provider_job_id):
            job = self.client.fine_tuning.jobs.retrieve(provider_job_id)
        reply = self._job(job)
        if reply.status == JobState.SUCCEEDED:
            reply = _with_metrics(reply, self._final_metrics(provider_job_id))
        return reply

    def cancel(self, provider_job_id: str) -> ProviderJob:
        _require_id(provider_job_id)
        with self._api("cancel the fine-tuning job", provider_job=provider_job_id):
            return self._job(self.client.fine_tuning.jobs.cancel(provider_job_id))

    def pause(self, provider_job_id: str) -> ProviderJob:
        _require_id(provider_job_id)
        with self._api("pause the fine-tuning job", provider_job=provider_job_id):
            return self._job(self.client.fine_tuning.jobs.pause(provider_job_id))

    def resume(self, provider_job_id: str) -> ProviderJob:
        _require_id(provider_job_id)
        with self._api("resume the fine-tuning job", provider_job=provider_job_id):
            return self._job(self.client.fine_tuning.jobs.resume(provider_job_id))

    def events(self, provider_job_id: str, *, after: str | None = None) -> list[ProviderEvent]:
        """Events newer than `after`, oldest first.

        The API lists events newest first and its `after` cursor walks back in
        time, so this reads from the newest until it meets `after` (or the list
        ends) and turns the result around.
        """
        _require_id(provider_job_id)
        newer: list[ProviderEvent] = []
        with self._api("read the job's events", provider_job=provider_job_id):
            for event in self._each(self.client.fine_tuning.jobs.list_events, provider_job_id):
                if event.id == after:
                    break
                newer.append(_event(event))
        newer.reverse()
        return newer

    def checkpoints(self, provider_job_id: str) -> list[ProviderCheckpoint]:
        """The job's saved checkpoints with their metrics, earliest step first."""
        _require_id(provider_job_id)
        with self._api("read the job's checkpoints", provider_job=provider_job_id):
            found = [_checkpoint(c) for c in self._each(self.client.fine_tuning.jobs.checkpoints.list, provider_job_id)]
        return sorted(found, key=lambda c: c.step)

    def _final_metrics(self, provider_job_id: str) -> dict[str, float]:
        """Metrics of the last checkpoint; a platform without checkpoints gives none rather than failing the job."""
        try:
            found = self.checkpoints(provider_job_id)
        except ProviderError as exc:
            if exc.transient:
                raise
            log.warning("%s: no checkpoint metrics for %s: %s", self.name, provider_job_id, exc)
            return {}
        return found[-1].metrics if found else {}

    # Webhooks ---------------------------------------------------------------------------------------

    def verify_webhook(self, payload: bytes, headers: Mapping[str, str], secret: str) -> WebhookEvent:
        """Check a webhook's signature with the client's own check.

        Returns {"type": "fine_tuning.job.succeeded" (or another event type), "job_id": the provider job id,
        "event_id": the delivery's event id, for dropping repeats}.
        """
        if not secret:
            raise ProviderError(
                f"no webhook secret was given, so the {self.label} webhook cannot be verified.",
                hint="Pass the signing secret shown when the webhook endpoint was created (whsec_...).",
            )
        try:
            event = self.client.webhooks.unwrap(payload, headers, secret=secret)
        except ValueError as exc:  # a bad signature, a stale timestamp, a missing header, a body that is not JSON
            raise ProviderError(
                f"rejected a {self.label} webhook: {exc}.",
                hint="Check that the webhook secret matches the endpoint's and that the body reaches us unchanged.",
            ) from exc
        data = getattr(event, "data", None)
        return {"type": event.type, "job_id": getattr(data, "id", None), "event_id": getattr(event, "id", None)}

    # Helpers -----------------------------------------------------------------------------------------

    def _job(self, job: FineTuningJob) -> ProviderJob:
        status = job.status
        return ProviderJob(
            provider_job_id=job.id,
            status=self.unified(status),
            provider_status=status,
            detail=self.DETAILS.get(status) or _estimated_finish(job),
            model_id=job.fine_tuned_model,
            error=_error_text(job.error),
            trained_tokens=job.trained_tokens,
        )

    def _each(self, list_method: Callable[..., Any], provider_job_id: str) -> Iterator[Any]:
        """Every item of a job's cursor-paged list, page by page, until it is exhausted or stops moving."""
        cursor: str | openai.Omit = openai.omit
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = list_method(provider_job_id, limit=PAGE_SIZE, after=cursor)
            fresh = [item for item in page.data if item.id not in seen]
            yield from fresh
            seen.update(item.id for item in fresh)
            if not fresh or page.has_more is False:
                return
            cursor = page.data[-1].id
        log.warning("%s: stopped paging %s after %d pages", self.name, provider_job_id, MAX_PAGES)

    @contextmanager
    def _api(self, action: str, **ids: Any) -> Iterator[None]:
        """Turn the client's errors into ProviderErrors: transient or final, refused, with the request id."""
        try:
            yield
        except openai.APIStatusError as exc:
            raise self._status_error(exc, action, ids) from exc
        except openai.APIConnectionError as exc:  # timeouts included
            raise ProviderError(
                f"{self.label} could not be reached to {action}: {exc}",
                hint="The client already retried; the poller tries again later.",
                transient=True,
                **ids,
            ) from exc

    def _status_error(self, exc: openai.APIStatusError, action: str, ids: dict[str, Any]) -> ProviderError:
        status, request_id = exc.status_code, exc.request_id
        said = _api_message(exc)
        where = f"HTTP {status}" + (f", request id {request_id}" if request_id else "")
        if _is_refusal(exc, said):
            return self._refusal(action, said, where, request_id, ids)
        if status == 429 and exc.code == "insufficient_quota":
            return ProviderRefused(
                f"{self.label} refused to {action}: the account has no quota left ({where}): {said}",
                hint="Add credit or raise the quota, then launch again; retrying sooner will not help.",
                request_id=request_id,
                **ids,
            )
        transient = status in (408, 409, 429) or status >= 500
        hints = {
            401: f"Check {self._key_variable}; the key was not accepted.",
            404: "Check the id; it may belong to another organisation, project or resource.",
        }
        hint = "The client already retried; the poller tries again later." if transient else hints.get(status)
        return ProviderError(
            f"{self.label} failed to {action} ({where}): {said}",
            hint=hint,
            transient=transient,
            request_id=request_id,
            **ids,
        )

    def _refusal(
        self, action: str, said: str, where: str, request_id: str | None, ids: dict[str, Any]
    ) -> ProviderRefused:
        if self.name == Provider.AZURE:
            return ProviderRefused(
                f"Azure OpenAI refused to {action} ({where}): {said}",
                hint="Check the key's role on the resource and that its region offers fine-tuning of this model; "
                "or train with AWS Bedrock (Nova, Llama; provider 'bedrock') or local LoRA training (provider 'local').",
                request_id=request_id,
                **ids,
            )
        return ProviderRefused(
            f"OpenAI refused to {action} ({where}): {said.rstrip('.')}. OpenAI is winding down self-serve fine-tuning: it "
            "takes no new jobs from 2027-01-06, and many organisations are already refused.",
            hint=f"Train with another provider: {ALTERNATIVES}.",
            request_id=request_id,
            **ids,
        )

    @property
    def _key_variable(self) -> str:
        return "AZURE_OPENAI_API_KEY" if self.name == Provider.AZURE else "OPENAI_API_KEY"


# Building requests and reading replies ------------------------------------------------------------------


def _checked_method(request: LaunchRequest) -> MethodParam:
    """The API's `method` argument for this request, once the request is checked (InvalidInput names what is wrong)."""
    if request.method not in HYPERPARAMETER_NAMES:
        raise InvalidInput(
            f"method {str(request.method)!r} is not offered by OpenAI fine-tuning here.",
            hint=f"Use one of: {', '.join(HYPERPARAMETER_NAMES)}.",
            job=request.job_id,
        )
    if not request.job_id or not request.idempotency_key:
        raise InvalidInput("a launch needs a job id and an idempotency key.", hint="Launch through core.jobs.")
    for path in (request.train_file, request.validation_file):
        if path is not None and not path.is_file():
            raise InvalidInput(
                f"training data file {path} does not exist.", hint="Export the dataset again.", job=request.job_id
            )
    method = Method(request.method)
    names = HYPERPARAMETER_NAMES[method]
    unknown = sorted(set(request.hyperparameters) - set(names))
    if unknown:
        raise InvalidInput(
            f"OpenAI {method} fine-tuning takes no hyperparameter {', '.join(unknown)}.",
            hint=f"It takes: {', '.join(names)}.",
            job=request.job_id,
        )
    hyperparameters = {names[key]: _api_value(names[key], value) for key, value in request.hyperparameters.items()}
    # The names come from HYPERPARAMETER_NAMES (the API's own) and the values from the catalog's checked ranges;
    # the casts say so to the client's TypedDicts, which cannot see it.
    if method is Method.DPO:
        return {"type": "dpo", "dpo": {"hyperparameters": cast(DpoHyperparametersParam, hyperparameters)}}
    return {
        "type": "supervised",
        "supervised": {"hyperparameters": cast(SupervisedHyperparametersParam, hyperparameters)},
    }


def _api_value(name: str, value: Any) -> Any:
    """Whole numbers where the API wants integers (catalog ranges give floats); "auto" as it is."""
    if name in INTEGER_HYPERPARAMETERS and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _require_id(provider_job_id: str) -> None:
    if not provider_job_id:
        raise InvalidInput(
            f"expected an OpenAI fine-tuning job id (ftjob-...) but received {provider_job_id!r}.",
            hint="Launch the job first; its provider job id is set then.",
        )


def _event(event: FineTuningJobEvent) -> ProviderEvent:
    data = event.data if isinstance(event.data, dict) else {}
    at = iso(datetime.fromtimestamp(event.created_at, UTC))
    if "step" in data and "train_loss" in data:
        return ProviderEvent(
            id=event.id, at=at, kind="metrics", message=event.message, step=int(data["step"]), metrics=_numbers(data)
        )
    return ProviderEvent(id=event.id, at=at, kind="message", message=event.message)


def _checkpoint(checkpoint: FineTuningJobCheckpoint) -> ProviderCheckpoint:
    metrics = checkpoint.metrics.model_dump(exclude_none=True) if checkpoint.metrics is not None else {}
    return ProviderCheckpoint(
        id=checkpoint.id,
        step=checkpoint.step_number,
        model_id=checkpoint.fine_tuned_model_checkpoint,
        at=iso(datetime.fromtimestamp(checkpoint.created_at, UTC)),
        metrics=_numbers(metrics),
    )


def _numbers(data: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of an event's or checkpoint's data, except the step itself."""
    return {
        key: float(value)
        for key, value in data.items()
        if key != "step" and isinstance(value, int | float) and not isinstance(value, bool)
    }


def _with_metrics(reply: ProviderJob, metrics: dict[str, float]) -> ProviderJob:
    return replace(reply, metrics=metrics) if metrics else reply


def _estimated_finish(job: FineTuningJob) -> str | None:
    if job.status != "running" or not job.estimated_finish:
        return None
    return "estimated finish " + datetime.fromtimestamp(job.estimated_finish, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _error_text(error: Any) -> str | None:
    """The job's failure as one line: its message, with its code and parameter when given."""
    if error is None:
        return None
    if isinstance(error, dict):
        message, code, param = error.get("message"), error.get("code"), error.get("param")
    else:
        message, code, param = (getattr(error, key, None) for key in ("message", "code", "param"))
    if not message:
        return str(code) if code else None
    extra = ", ".join(part for part in (code, f"param {param}" if param else None) if part)
    return f"{message} ({extra})" if extra else str(message)


def _api_message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message") or body.get("detail") or body.get("title")
    return str(message) if message else exc.message


def _is_refusal(exc: openai.APIStatusError, message: str) -> bool:
    if exc.status_code == 403 or "permission_denied" in (exc.code, exc.type):
        return True
    return exc.status_code < 500 and bool(_NOT_AVAILABLE.search(message))


# Registry ---------------------------------------------------------------------------------------------


def openai_provider(settings: Settings) -> OpenAIProvider:
    check_openai(settings)
    assert settings.openai_api_key is not None  # check_openai says so otherwise
    client = openai.OpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url or OPENAI_BASE_URL,
        max_retries=MAX_RETRIES,
        timeout=TIMEOUT_SECONDS,
    )
    return OpenAIProvider(client, name=Provider.OPENAI)


def azure_provider(settings: Settings) -> OpenAIProvider:
    check_azure(settings)
    endpoint, key = settings.azure_openai_endpoint, settings.azure_openai_api_key
    assert endpoint is not None and key is not None  # check_azure says so otherwise
    client = openai.AzureOpenAI(
        azure_endpoint=endpoint,
        api_key=key.get_secret_value(),
        api_version=settings.azure_openai_api_version,
        max_retries=MAX_RETRIES,
        timeout=TIMEOUT_SECONDS,
    )
    return OpenAIProvider(client, name=Provider.AZURE)
