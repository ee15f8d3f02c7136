"""Training tools: plan (cost, hyperparameters), launch, watch and cancel fine-tuning jobs."""

from __future__ import annotations

from typing import Literal

from mcp.server.mcpserver import Context

from core.catalog import CostEstimate
from core.training import HyperparameterSuggestion, Job, JobEvents, JobList, LaunchResult, jobs, planning
from mcp_server.tools import Toolbox, call_core

TOOLS = Toolbox()


@TOOLS.tool(title="Estimate training cost")
def estimate_cost(
    ctx: Context, version: str, base_model: str, epochs: int | None = None, method: str = "supervised"
) -> CostEstimate:
    """Estimate what fine-tuning `base_model` on a dataset version costs: billed tokens (training tokens x
    epochs; epochs default to the suggested number) times the catalog's dated price."""
    args = {"version": version, "base_model": base_model, "epochs": epochs}
    return call_core(ctx, "estimate_cost", args, lambda svc, actor: planning.estimate_version_cost(
        svc.store, version=version, base_model=base_model, epochs=epochs, method=method, actor=actor,
        data_dir=svc.data_dir, catalog=svc.catalog,
    ))  # fmt: skip


@TOOLS.tool(title="Suggest hyperparameters")
def suggest_hyperparameters(
    ctx: Context, version: str, base_model: str, method: str = "supervised"
) -> HyperparameterSuggestion:
    """Suggest epochs, batch size, learning rate and warm-up for training `base_model` on a dataset version, from
    its size and token stats, within the provider's documented ranges, with one reason per choice."""
    args = {"version": version, "base_model": base_model}
    return call_core(ctx, "suggest_hyperparameters", args, lambda svc, actor: planning.suggest_for_version(
        svc.store, version=version, base_model=base_model, method=method, actor=actor, data_dir=svc.data_dir,
        catalog=svc.catalog,
    ))  # fmt: skip


@TOOLS.tool(title="Launch fine-tuning job")
def launch_job(
    ctx: Context,
    version: str,
    provider: Literal["openai", "azure", "bedrock", "local"],
    base_model: str,
    method: Literal["supervised", "dpo"] = "supervised",
    hyperparameters: dict[str, float] | None = None,
    key: str | None = None,
) -> LaunchResult:
    """Launch fine-tuning of `base_model` on a dataset version (name@N) at a provider. The export is validated
    first and the cost estimated: within the team's auto-approve budget the job starts at once; above it the
    job waits in pending_approval and an approval request goes to Slack (returned as `approval`). Pass the same
    `key` to retry safely: it never starts a second job. hyperparameters: epochs, batch_size, learning_rate,
    learning_rate_multiplier, warmup_steps (omitted ones are suggested from the data)."""
    args = {"version": version, "provider": provider, "base_model": base_model, "key": key}
    return call_core(ctx, "launch_job", args, lambda svc, actor: jobs.launch_job(
        svc, dataset_version=version, provider=provider, base_model=base_model, actor=actor,
        method=method, hyperparameters=hyperparameters, key=key,
    ))  # fmt: skip


@TOOLS.tool(title="Job status")
def job_status(ctx: Context, job_id: str) -> Job:
    """A job's unified state (pending_approval, submitting, validating, queued, running, succeeded, failed,
    cancelled), provider status, estimated cost, trained model id and error."""
    return call_core(ctx, "job_status", {"job_id": job_id}, lambda svc, actor: jobs.get_job(svc.store, job_id))


@TOOLS.tool(title="List jobs")
def list_jobs(ctx: Context, status: str | None = None) -> JobList:
    """Recent fine-tuning jobs, newest first, optionally only those in one state."""
    return call_core(ctx, "list_jobs", {"status": status}, lambda svc, actor: jobs.list_jobs(svc.store, status=status))


@TOOLS.tool(title="Job events")
def job_events(ctx: Context, job_id: str) -> JobEvents:
    """A job's status changes, provider messages and step-wise training metrics, oldest first."""
    return call_core(ctx, "job_events", {"job_id": job_id}, lambda svc, actor: jobs.job_events(svc.store, job_id))


@TOOLS.tool(title="Cancel job")
def cancel_job(ctx: Context, job_id: str) -> Job:
    """Cancel a job at its provider, or before it reaches one (a pending approval is withdrawn)."""
    return call_core(
        ctx, "cancel_job", {"job_id": job_id}, lambda svc, actor: jobs.cancel_job(svc, job_id=job_id, actor=actor)
    )
