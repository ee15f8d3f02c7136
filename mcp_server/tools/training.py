"""Training tools: what can be trained, plan (cost, hyperparameters), launch, watch and cancel fine-tuning jobs."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import AfterValidator, Field

from core import catalog
from core.catalog import BaseModelList, CostEstimate, HyperparameterName
from core.training import HyperparameterSuggestion, Job, JobEvents, JobList, LaunchResult, jobs, planning
from core.vocabulary import JobState, Method, Provider
from mcp_server.tools import (
    CALLS_PROVIDER,
    ID_LIMIT,
    READS,
    RECORDS,
    STOPS_AT_PROVIDER,
    Toolbox,
    Version,
    call_core,
)

TOOLS = Toolbox()


BaseModelId = Annotated[
    str, Field(description="Base model id from the catalog (see list_base_models).", max_length=ID_LIMIT)
]
TrainingMethod = Annotated[Method, Field(description="Training method: supervised (SFT) or dpo (preferences).")]
JobId = Annotated[
    str, Field(description="The job id (job_...), as launch_job or list_jobs return it.", max_length=ID_LIMIT)
]


def _non_empty_key(key: str | None) -> str | None:
    if key is not None and not key.strip():
        raise ValueError("the idempotency key is empty; pass a non-empty key, or leave `key` out")
    return key


@TOOLS.tool(title="List base models", effect=READS)
def list_base_models(
    ctx: Context,
    provider: Annotated[Provider | None, Field(description="Only the models this provider trains.")] = None,
) -> BaseModelList:
    """What can be fine-tuned: every base model in the catalog with the providers that train it, its methods,
    export target, token limit per example, and the training price per 1M tokens with the date it was read."""
    return call_core(
        ctx, "list_base_models", {"provider": provider},
        lambda svc, actor: catalog.list_base_models(svc.catalog, provider=provider),
    )  # fmt: skip


@TOOLS.tool(title="Estimate training cost", effect=RECORDS)
def estimate_cost(
    ctx: Context,
    version: Version,
    base_model: BaseModelId,
    epochs: Annotated[
        int | None, Field(description="Epochs to price (default: the number suggested from the data).", ge=1)
    ] = None,
    method: TrainingMethod = Method.SUPERVISED,
) -> CostEstimate:
    """Estimate what fine-tuning `base_model` on a dataset version costs: billed tokens (training tokens x
    epochs; epochs default to the suggested number) times the catalog's dated price. Exports the version for
    the model first if needed."""
    args = {"version": version, "base_model": base_model, "epochs": epochs}
    return call_core(ctx, "estimate_cost", args, lambda svc, actor: planning.estimate_version_cost(
        svc.store, version=version, base_model=base_model, epochs=epochs, method=method, actor=actor,
        data_dir=svc.data_dir, catalog=svc.catalog,
    ))  # fmt: skip


@TOOLS.tool(title="Suggest hyperparameters", effect=RECORDS)
def suggest_hyperparameters(
    ctx: Context, version: Version, base_model: BaseModelId, method: TrainingMethod = Method.SUPERVISED
) -> HyperparameterSuggestion:
    """Suggest epochs, batch size, learning rate and warm-up for training `base_model` on a dataset version, from
    its size and token stats, within the provider's documented ranges, with one reason per choice. Exports the
    version for the model first if needed."""
    args = {"version": version, "base_model": base_model}
    return call_core(ctx, "suggest_hyperparameters", args, lambda svc, actor: planning.suggest_for_version(
        svc.store, version=version, base_model=base_model, method=method, actor=actor, data_dir=svc.data_dir,
        catalog=svc.catalog,
    ))  # fmt: skip


@TOOLS.tool(title="Launch fine-tuning job", effect=CALLS_PROVIDER)
def launch_job(
    ctx: Context,
    version: Version,
    provider: Annotated[Provider, Field(description="Where to train; it must train the base model's family.")],
    base_model: BaseModelId,
    method: TrainingMethod = Method.SUPERVISED,
    hyperparameters: Annotated[
        dict[HyperparameterName, float] | None,
        Field(
            description="Overrides of the suggested values, by name: epochs, batch_size, learning_rate, "
            'learning_rate_multiplier, warmup_steps, ... e.g. {"epochs": 2}. Omitted ones are suggested.'
        ),
    ] = None,
    key: Annotated[
        str | None,
        AfterValidator(_non_empty_key),
        Field(description="Idempotency key: a retry with the same key returns the same job.", max_length=ID_LIMIT),
    ] = None,
) -> LaunchResult:
    """Launch fine-tuning of `base_model` on a dataset version (name@N) at a provider. The export is validated
    first and the cost estimated: within the team's auto-approve budget the job starts at once; above it the
    job waits in pending_approval and an approval request goes to Slack (returned as `approval`). Pass the same
    `key` to retry safely: it never starts a second job."""
    args = {"version": version, "provider": provider, "base_model": base_model, "key": key}
    return call_core(ctx, "launch_job", args, lambda svc, actor: jobs.launch_job(
        svc, dataset_version=version, provider=provider, base_model=base_model, actor=actor,
        method=method, hyperparameters={str(k): v for k, v in (hyperparameters or {}).items()}, key=key,
    ))  # fmt: skip


@TOOLS.tool(title="Job status", effect=READS)
def job_status(ctx: Context, job_id: JobId) -> Job:
    """A job's unified state (pending_approval, submitting, validating, queued, running, succeeded, failed,
    cancelled), provider status, estimated cost, trained model id and error."""
    return call_core(ctx, "job_status", {"job_id": job_id}, lambda svc, actor: jobs.get_job(svc.store, job_id))


@TOOLS.tool(title="List jobs", effect=READS)
def list_jobs(
    ctx: Context, status: Annotated[JobState | None, Field(description="Only jobs in this state.")] = None
) -> JobList:
    """Recent fine-tuning jobs, newest first, optionally only those in one state."""
    return call_core(ctx, "list_jobs", {"status": status}, lambda svc, actor: jobs.list_jobs(svc.store, status=status))


@TOOLS.tool(title="Job events", effect=READS)
def job_events(ctx: Context, job_id: JobId) -> JobEvents:
    """A job's status changes, provider messages and step-wise training metrics, oldest first."""
    return call_core(ctx, "job_events", {"job_id": job_id}, lambda svc, actor: jobs.job_events(svc.store, job_id))


@TOOLS.tool(title="Cancel job", effect=STOPS_AT_PROVIDER)
def cancel_job(ctx: Context, job_id: JobId) -> Job:
    """Cancel a job at its provider, or before it reaches one (a pending approval is withdrawn)."""
    return call_core(
        ctx, "cancel_job", {"job_id": job_id}, lambda svc, actor: jobs.cancel_job(svc, job_id=job_id, actor=actor)
    )
