"""Amazon Bedrock model customization: training data to S3, a fine-tuning job, its state and metrics.

Layout in S3, under FINETUNE_BEDROCK_BUCKET (``bucket`` or ``bucket/prefix``)::

    <prefix>/jobs/<job id>/train.jsonl
    <prefix>/jobs/<job id>/validation.jsonl      (when there is a validation split)
    <prefix>/jobs/<job id>/output/               (Bedrock writes its artefacts here)

The Bedrock job is named after ours (``finetune-ops-<job id>``), tagged
``finetune-ops-job=<job id>``, and carries our idempotency key as its
``clientRequestToken``; a retried launch whose name is taken reuses the job when
that token matches. The provider job id is the job ARN Bedrock returns.

States: `STATUS_MAP` gives each documented job status one unified state.
``InProgress`` covers validation, data processing and training; when Bedrock
reports ``statusDetails``, `poll` refines it by the first sub-task that has not
completed: validation -> ``validating``, data processing -> ``queued``,
training -> ``running``. Without details it stays ``running``. ``Stopping`` is
still ``running`` (the job is active and may yet end otherwise); only
``Stopped`` is ``cancelled``.

Metrics: `poll` reports the job's final ``trainingMetrics`` / ``validationMetrics``;
`events` reads the step-wise CSV files Bedrock writes under the output prefix
(``step_wise_training_metrics.csv``, ``validation_metrics.csv``).

Errors become `ProviderError`s carrying the AWS request id. botocore retries
throttling and 5xx itself (standard mode, `MAX_ATTEMPTS`); what still fails is
marked transient for the poller's own, slower backoff. Bedrock has no seed
parameter, so `LaunchRequest.seed` is not sent.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from core.catalog.models import Catalog, ModelInfo, load_catalog
from core.platform.settings import Settings
from core.platform.timeutil import iso
from core.providers.base import (
    FineTuneProvider,
    LaunchRequest,
    ProviderError,
    ProviderEvent,
    ProviderJob,
    ProviderNotConfigured,
    ProviderRefused,
)
from core.providers.checks import bedrock_role, bedrock_storage, check_bedrock
from core.vocabulary import FINAL_JOB_STATES, CatalogProvider, JobState, Method, Provider

log = logging.getLogger(__name__)

JOB_TAG = "finetune-ops-job"
STEP_METRICS_FILE = "step_wise_training_metrics.csv"
VALIDATION_METRICS_FILE = "validation_metrics.csv"
MAX_ATTEMPTS = 3  # tries per call, the first included (botocore standard mode); the poller backs off beyond that
NAME_LIMIT = 63  # Bedrock's limit for job and custom model names

_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}, connect_timeout=10, read_timeout=60
)
_TOKEN = re.compile(r"[a-zA-Z0-9]([-a-zA-Z0-9]{0,254}[a-zA-Z0-9])?")  # Bedrock's clientRequestToken pattern
# statusDetails key, its label for people, the unified state while that stage is the first one unfinished.
_STAGES: tuple[tuple[str, str, JobState], ...] = (
    ("validationDetails", "validation", JobState.VALIDATING),
    ("dataProcessingDetails", "data processing", JobState.QUEUED),
    ("trainingDetails", "training", JobState.RUNNING),
)

_TRANSIENT_CODES = frozenset({
    "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown",
    "ServiceUnavailable", "ServiceUnavailableException", "InternalServerException", "InternalServerError",
    "InternalError", "InternalFailure", "RequestTimeout", "RequestTimeoutException",
})  # fmt: skip
_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})
_CREDENTIAL_CODES = frozenset({
    "UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "ExpiredToken", "ExpiredTokenException",
})  # fmt: skip
_CONFLICT_CODES = frozenset({"ResourceInUseException", "ConflictException"})
_NOT_STOPPABLE_CODES = _CONFLICT_CODES | {"ValidationException"}  # how Bedrock answers a stop of an ended job
_NETWORK_ERRORS = (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError)

_PERMISSIONS_HINT = (
    "Check that the AWS identity finetune-ops runs as may call the Bedrock customization APIs, use the bucket "
    "and iam:PassRole the role in FINETUNE_BEDROCK_ROLE_ARN, and that this role trusts bedrock.amazonaws.com "
    "and can read and write the bucket in FINETUNE_BEDROCK_BUCKET."
)


class BedrockProvider(FineTuneProvider):
    """Fine-tuning through Bedrock's model customization jobs (customizationType FINE_TUNING)."""

    name = Provider.BEDROCK
    STATUS_MAP: ClassVar[dict[str, JobState]] = {
        "InProgress": JobState.RUNNING,  # refined from statusDetails in `poll`
        "Completed": JobState.SUCCEEDED,
        "Failed": JobState.FAILED,
        "Stopping": JobState.RUNNING,  # still active; Stopped (or Completed, if it finished first) follows
        "Stopped": JobState.CANCELLED,
    }

    def __init__(self, settings: Settings, *, session: boto3.Session | None = None) -> None:
        check_bedrock(settings)
        self.bucket, self.prefix = bedrock_storage(settings)
        self.role_arn = bedrock_role(settings)
        self.catalog: Catalog = load_catalog(settings.catalog_file)
        options: dict[str, Any] = {"region_name": settings.aws_region, "config": _CLIENT_CONFIG}
        if settings.aws_endpoint_url:
            options["endpoint_url"] = settings.aws_endpoint_url
        try:
            session = session or boto3.Session()
            self.s3 = session.client("s3", **options)
            self.bedrock = session.client("bedrock", **options)
        except BotoCoreError as exc:
            raise ProviderNotConfigured(
                f"cannot set up AWS clients for Bedrock: {exc}",
                hint="Check the AWS profile and configuration this process runs with (AWS_PROFILE, ~/.aws/config).",
            ) from exc

    # FineTuneProvider ---------------------------------------------------------------------------

    def launch(self, request: LaunchRequest) -> ProviderJob:
        info = self.catalog.get(request.base_model)
        _check_method(request, info)
        hyperparameters = bedrock_hyperparameters(request.hyperparameters, info, self.catalog)
        folder = self._key("jobs", request.job_id)
        train_uri = self._upload(request.train_file, f"{folder}/train.jsonl", request.job_id)
        params: dict[str, Any] = {
            "jobName": bedrock_name(f"finetune-ops-{request.job_id}"),
            "customModelName": bedrock_name(f"{request.suffix or 'finetune-ops'}-{request.job_id}"),
            "roleArn": self.role_arn,
            "clientRequestToken": client_request_token(request.idempotency_key),
            "baseModelIdentifier": (info.provider_model_id if info else None) or request.base_model,
            "customizationType": "FINE_TUNING",
            "trainingDataConfig": {"s3Uri": train_uri},
            "outputDataConfig": {"s3Uri": f"s3://{self.bucket}/{folder}/output/"},
            "hyperParameters": hyperparameters,
            "jobTags": [{"key": JOB_TAG, "value": request.job_id}],
        }
        if request.validation_file is not None:
            uri = self._upload(request.validation_file, f"{folder}/validation.jsonl", request.job_id)
            params["validationDataConfig"] = {"validators": [{"s3Uri": uri}]}
        note = _legacy_note(info)
        try:
            response = self.bedrock.create_model_customization_job(**params)
        except ClientError as exc:
            if _code(exc) in _CONFLICT_CODES:
                return self._already_created(params, exc, request.job_id)
            raise aws_error(exc, action="create the customization job", job=request.job_id) from exc
        except BotoCoreError as exc:
            raise aws_error(exc, action="create the customization job", job=request.job_id) from exc
        arn = response["jobArn"]
        log.info("job %s: Bedrock job %s created (AWS request id %s)", request.job_id, arn, _request_id(response))
        return ProviderJob(provider_job_id=arn, status=JobState.VALIDATING, provider_status="InProgress", detail=note)

    def poll(self, provider_job_id: str) -> ProviderJob:
        return self._job(self._describe(provider_job_id))

    def events(self, provider_job_id: str, *, after: str | None = None) -> list[ProviderEvent]:
        output = self._describe(provider_job_id).get("outputDataConfig", {}).get("s3Uri")
        if not output:
            return []
        bucket, prefix = _split_s3_uri(output)
        found: dict[str, ProviderEvent] = {}
        for obj in self._list(bucket, prefix, provider_job_id):
            kind = _metrics_kind(obj["Key"])
            if kind:
                text = self._read(bucket, obj["Key"], provider_job_id)
                for event in metric_events(text, kind=kind, at=iso(obj["LastModified"])):
                    found[event.id] = event
        ordered = sorted(found.values(), key=lambda e: (e.step, e.id.startswith("validation")))
        ids = [event.id for event in ordered]
        return ordered[ids.index(after) + 1 :] if after in ids else ordered

    def cancel(self, provider_job_id: str) -> ProviderJob:
        try:
            self.bedrock.stop_model_customization_job(jobIdentifier=provider_job_id)
        except ClientError as exc:
            ended = self._ended(provider_job_id) if _code(exc) in _NOT_STOPPABLE_CODES else None
            if ended is not None:
                return ended  # it finished before the stop arrived; nothing is left to cancel
            raise aws_error(exc, action="stop the customization job", provider_job_id=provider_job_id) from exc
        except BotoCoreError as exc:
            raise aws_error(exc, action="stop the customization job", provider_job_id=provider_job_id) from exc
        return self.poll(provider_job_id)

    # Helpers ------------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    def _ended(self, provider_job_id: str) -> ProviderJob | None:
        """The job, when it has already ended; None when it has not or cannot be read."""
        try:
            job = self.poll(provider_job_id)
        except ProviderError:
            return None
        return job if job.status in FINAL_JOB_STATES else None

    def _upload(self, path: Path, key: str, job_id: str) -> str:
        if not path.is_file():
            raise ProviderError(f"{path} does not exist.", hint="Export the dataset version again.", job=job_id)
        try:
            with path.open("rb") as body:
                self.s3.upload_fileobj(body, self.bucket, key)
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(exc, action=f"upload {path.name} to s3://{self.bucket}/{key}", job=job_id) from exc
        return f"s3://{self.bucket}/{key}"

    def _already_created(self, params: dict[str, Any], conflict: ClientError, job_id: str) -> ProviderJob:
        """The job name is taken: a retried launch finds its own job; anything else is a real clash."""
        try:
            job = self._describe(params["jobName"])
        except ProviderError:
            job = {}
        if job.get("clientRequestToken") == params["clientRequestToken"]:
            log.info("job %s: Bedrock job %s already exists for this launch; reusing it", job_id, job["jobArn"])
            return self._job(job)
        raise aws_error(conflict, action="create the customization job", job=job_id) from conflict

    def _describe(self, provider_job_id: str) -> dict[str, Any]:
        try:
            job: dict[str, Any] = self.bedrock.get_model_customization_job(jobIdentifier=provider_job_id)
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(exc, action="read the customization job", provider_job_id=provider_job_id) from exc
        return job

    def _job(self, job: dict[str, Any]) -> ProviderJob:
        provider_status = job["status"]
        status = self.unified(provider_status)
        details = job.get("statusDetails") or {}
        if provider_status == "InProgress":
            status = in_progress_state(details) or status
        return ProviderJob(
            provider_job_id=job["jobArn"],
            status=status,
            provider_status=provider_status,
            detail=describe_details(details),
            model_id=job.get("outputModelArn") if provider_status == "Completed" else None,
            metrics=job_metrics(job),
            error=(job.get("failureMessage") or "Bedrock gave no reason.") if provider_status == "Failed" else None,
        )

    def _list(self, bucket: str, prefix: str, provider_job_id: str) -> list[dict[str, Any]]:
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            return [obj for page in pages for obj in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(exc, action=f"list s3://{bucket}/{prefix}", provider_job_id=provider_job_id) from exc

    def _read(self, bucket: str, key: str, provider_job_id: str) -> str:
        try:
            text: str = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8-sig")
        except (ClientError, BotoCoreError) as exc:
            raise aws_error(exc, action=f"read s3://{bucket}/{key}", provider_job_id=provider_job_id) from exc
        return text


# Settings ---------------------------------------------------------------------------------------


# Requests ---------------------------------------------------------------------------------------


def bedrock_name(text: str) -> str:
    """A job or custom-model name Bedrock accepts: letters, digits and single hyphens, at most 63 characters.

    Long names keep a hash of the whole text, so two long ids never share a name.
    """
    name = re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9-]", "-", text)).strip("-") or "finetune-ops"
    if len(name) <= NAME_LIMIT:
        return name
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{name[: NAME_LIMIT - 9].rstrip('-')}-{digest}"


def client_request_token(idempotency_key: str) -> str:
    """The key itself when Bedrock accepts it (letters, digits, inner hyphens, <= 256); else its SHA-256."""
    if _TOKEN.fullmatch(idempotency_key):
        return idempotency_key
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


def bedrock_hyperparameters(values: dict[str, Any], info: ModelInfo | None, catalog: Catalog) -> dict[str, str]:
    """finetune-ops hyperparameters as Bedrock's string map under Bedrock's names (None means "service default").

    Names come from the catalog entry; for a model the catalog does not know,
    from all Bedrock entries together. Bedrock names given directly pass through.
    """
    names = _names(info) if info else _bedrock_names(catalog)
    accepted = set(names.values())
    result: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if key in names:
            name, ours = names[key], key
        elif key in accepted or info is None:
            name, ours = key, next((k for k, v in names.items() if v == key), key)
        else:
            known = ", ".join(sorted({*names, *accepted}))
            raise ProviderError(
                f"Bedrock does not take hyperparameter {key!r} for {info.id}.",
                hint=f"Use one of: {known}.",
            )
        integer = bool(info and ours in info.hyperparameters and info.hyperparameters[ours].integer)
        result[name] = plain_decimal(value, integer=integer, name=key)
    return result


def _names(info: ModelInfo) -> dict[str, str]:
    """The catalog entry's finetune-ops -> Bedrock hyperparameter names."""
    return {str(ours): theirs for ours, theirs in info.provider_hyperparameter_names.items()}


def _bedrock_names(catalog: Catalog) -> dict[str, str]:
    names: dict[str, str] = {}
    for info in catalog.models.values():
        if info.provider == CatalogProvider.BEDROCK:
            names.update(_names(info))
    return names


def plain_decimal(value: Any, *, integer: bool = False, name: str = "value") -> str:
    """Plain decimal text, never exponent form: 1e-05 -> "0.00001", 2.0 -> "2"."""
    if isinstance(value, bool):
        raise ProviderError(f"hyperparameter {name}={value!r} is not a number.", hint="Give a number.")
    try:
        number = Decimal(value if isinstance(value, str) else repr(value) if isinstance(value, float) else int(value))
    except (InvalidOperation, TypeError, ValueError):
        raise ProviderError(f"hyperparameter {name}={value!r} is not a number.", hint="Give a number.") from None
    if not number.is_finite():
        raise ProviderError(f"hyperparameter {name}={value!r} is not a finite number.", hint="Give a number.")
    if integer and number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def _check_method(request: LaunchRequest, info: ModelInfo | None) -> None:
    if request.method != Method.SUPERVISED or (info is not None and request.method not in info.methods):
        raise ProviderError(
            f"Bedrock fine-tuning here supports supervised training only, not {str(request.method)!r}.",
            hint="Launch with method 'supervised', or use the openai provider for DPO.",
            job=request.job_id,
        )


def _legacy_note(info: ModelInfo | None) -> str | None:
    if info is None or info.status != "legacy":
        return None
    name = info.display_name or info.id
    note = f"{name} is a legacy model on Bedrock; prefer Amazon Nova or Meta Llama for new work."
    log.warning(note)
    return note


# Responses --------------------------------------------------------------------------------------


def in_progress_state(details: dict[str, Any]) -> JobState | None:
    """validating / queued / running from statusDetails: the first sub-task not yet completed; None without details."""
    present = [(state, details[key].get("status")) for key, _, state in _STAGES if details.get(key)]
    for state, sub_status in present:
        if sub_status != "Completed":
            return state
    return JobState.RUNNING if present else None


def describe_details(details: dict[str, Any]) -> str | None:
    parts = [f"{label} {details[key].get('status', '?')}" for key, label, _ in _STAGES if details.get(key)]
    return ", ".join(parts) or None


def job_metrics(job: dict[str, Any]) -> dict[str, float]:
    metrics = {}
    loss = (job.get("trainingMetrics") or {}).get("trainingLoss")
    if loss is not None:
        metrics["train_loss"] = float(loss)
    for index, validator in enumerate(job.get("validationMetrics") or []):
        if validator.get("validationLoss") is not None:
            metrics["valid_loss" if index == 0 else f"valid_loss_{index + 1}"] = float(validator["validationLoss"])
    return metrics


def _metrics_kind(key: str) -> str | None:
    if key.endswith(STEP_METRICS_FILE):
        return "train"
    if key.endswith(VALIDATION_METRICS_FILE):
        return "validation"
    return None


_COLUMN_NAMES = {
    "train": {"training_loss": "train_loss", "epoch_number": "epoch", "perplexity": "perplexity"},
    "validation": {"validation_loss": "valid_loss", "epoch_number": "epoch", "perplexity": "valid_perplexity"},
}


def metric_events(text: str, *, kind: str, at: str) -> list[ProviderEvent]:
    """One metrics event per CSV row (step_number plus loss columns); rows without a step are skipped."""
    events = []
    for row in csv.DictReader(io.StringIO(text)):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        try:
            step = int(float(row.pop("step_number")))
        except (KeyError, ValueError):
            continue
        metrics = {}
        for column, value in row.items():
            try:
                metrics[_COLUMN_NAMES[kind].get(column, column)] = float(value)
            except ValueError:
                continue
        event_id = f"step-{step}" if kind == "train" else f"validation-step-{step}"
        events.append(ProviderEvent(id=event_id, at=at, kind="metrics", step=step, metrics=metrics))
    return events


def _split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


# Errors -----------------------------------------------------------------------------------------


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _request_id(response: Mapping[str, Any]) -> str | None:
    request_id = response.get("ResponseMetadata", {}).get("RequestId")
    return str(request_id) if request_id else None


def aws_error(exc: Exception, *, action: str, **ids: Any) -> ProviderError:
    """The ProviderError for a failed AWS call: transient for throttling, 5xx and network trouble."""
    if isinstance(exc, NoCredentialsError):
        hint = "Give this process AWS credentials (an instance or task role, AWS_PROFILE, or an access key pair)."
        return ProviderNotConfigured(f"Bedrock could not {action}: no AWS credentials found.", hint=hint, **ids)
    if isinstance(exc, _NETWORK_ERRORS):
        hint = "AWS was unreachable; it is tried again later."
        return ProviderError(f"Bedrock could not {action}: {exc}", hint=hint, transient=True, **ids)
    if not isinstance(exc, ClientError):
        return ProviderError(f"Bedrock could not {action}: {exc}", **ids)
    code, request_id = _code(exc), _request_id(exc.response)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    text = f"Bedrock could not {action}: {code}: {exc.response.get('Error', {}).get('Message') or exc}"
    text += f" (AWS request id {request_id})" if request_id else ""
    log.warning("%s", text)
    refusal = _refusal(code, status)
    if refusal:
        kind, hint = refusal
        return kind(text, hint=hint, request_id=request_id, aws_code=code, **ids)
    transient = code in _TRANSIENT_CODES or status >= 500 or status == 429
    return ProviderError(
        text,
        hint="It is tried again later." if transient else None,
        transient=transient,
        request_id=request_id,
        aws_code=code,
        **ids,
    )


def _refusal(code: str, status: int) -> tuple[type[ProviderError], str] | None:
    """Errors no retry can fix: credentials, permissions, quota, a bucket that is not there."""
    if code in _CREDENTIAL_CODES:
        return ProviderRefused, "AWS rejected the credentials; renew or replace them."
    if code in _DENIED_CODES or status == 403:
        return ProviderRefused, _PERMISSIONS_HINT
    if code == "ServiceQuotaExceededException":
        return ProviderRefused, "Wait for running jobs to finish, or ask AWS for a higher quota."
    if code == "NoSuchBucket":
        return ProviderNotConfigured, "Create the bucket, or point FINETUNE_BEDROCK_BUCKET at one that exists."
    return None
