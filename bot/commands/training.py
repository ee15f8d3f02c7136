"""Training commands: launch, watch and cancel fine-tuning jobs; list and decide approvals."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import click

from bot.commands import CONTEXT, Invocation, idempotency_key, json_option
from core import actions
from core.catalog import BaseModelEntry, BaseModelList, list_base_models
from core.platform import Approval, ApprovalList, approvals
from core.training import Job, JobDetail, JobEvents, JobList, LaunchResult, jobs
from core.vocabulary import JobState, Method, Provider, values

PROVIDERS = click.Choice(values(Provider))
METHODS = click.Choice(values(Method))


def _launch(
    inv: Invocation, version: str, provider: str, base_model: str, method: str, key: str | None, **hyperparameters: Any
) -> LaunchResult:
    return jobs.launch_job(
        inv.services, dataset_version=version, provider=provider, base_model=base_model, actor=inv.actor,
        method=method, hyperparameters=hyperparameters, key=key or inv.request_key,
    )  # fmt: skip


def launch_options(func: Callable[..., Any]) -> Callable[..., Any]:
    decorators: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--method", type=METHODS, default="supervised", show_default=True, help="Training method."),
        click.option("--epochs", type=int, help="Epochs (default: suggested from the data)."),
        click.option("--batch-size", "batch_size", type=int, help="Batch size."),
        click.option("--learning-rate", "learning_rate", type=float, help="Learning rate (Bedrock, local)."),
        click.option(
            "--lr-multiplier",
            "learning_rate_multiplier",
            type=float,
            help="Learning-rate multiplier (OpenAI, Claude).",
        ),
        click.option("--warmup-steps", "warmup_steps", type=int, help="Warm-up steps."),
        click.option(
            "--key",
            callback=idempotency_key,
            help="Idempotency key: launching again with the same key returns the same job.",
        ),
        json_option,
        click.pass_obj,
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@click.group(
    "jobs",
    context_settings=CONTEXT,
    invoke_without_command=True,
    short_help="Fine-tuning jobs: list, launch, show, events, cancel.",
)
@click.option("--status", type=click.Choice(values(JobState)), help="Only jobs in this state.")
@json_option
@click.pass_context
def jobs_group(ctx: click.Context, status: str | None) -> JobList | None:
    """Without a subcommand, list recent jobs."""
    if ctx.invoked_subcommand is None:
        return jobs.list_jobs(ctx.obj.store, status=status)
    return None


@jobs_group.command("list", context_settings=CONTEXT, short_help="Recent jobs, newest first.")
@click.option("--status", type=click.Choice(values(JobState)), help="Only jobs in this state.")
@json_option
@click.pass_obj
def jobs_list(inv: Invocation, status: str | None) -> JobList:
    """List recent jobs, newest first (the same as `jobs` alone)."""
    return jobs.list_jobs(inv.store, status=status)


@jobs_group.command("launch", context_settings=CONTEXT, short_help="Launch a fine-tuning job (approval above budget).")
@click.argument("version")
@click.option("--provider", type=PROVIDERS, required=True, help="Where to train.")
@click.option("--base-model", required=True, help="Base model id from the catalog.")
@launch_options
def jobs_launch(
    inv: Invocation, version: str, provider: str, base_model: str, method: str, key: str | None, **hyperparameters: Any
) -> LaunchResult:
    """Launch VERSION on PROVIDER: validates the export, estimates the cost, and launches at once when the
    estimate is within FINETUNE_AUTO_APPROVE_USD, else asks an approver."""
    return _launch(inv, version, provider, base_model, method, key, **hyperparameters)


@click.command(
    "launch", context_settings=CONTEXT, short_help="Launch: launch VERSION PROVIDER BASE_MODEL [--epochs N]."
)
@click.argument("version")
@click.argument("provider", type=PROVIDERS)
@click.argument("base_model")
@launch_options
def launch_command(
    inv: Invocation, version: str, provider: str, base_model: str, method: str, key: str | None, **hyperparameters: Any
) -> LaunchResult:
    """The short form of `jobs launch`: VERSION PROVIDER BASE_MODEL."""
    return _launch(inv, version, provider, base_model, method, key, **hyperparameters)


@jobs_group.command("show", context_settings=CONTEXT, short_help="A job's state, model and error.")
@click.argument("job_id")
@json_option
@click.pass_obj
def jobs_show(inv: Invocation, job_id: str) -> JobDetail:
    """Show JOB_ID: state, provider status, estimated cost, trained model, error, and its latest losses."""
    return jobs.job_detail(inv.store, job_id)


@jobs_group.command("events", context_settings=CONTEXT, short_help="A job's events and training metrics.")
@click.argument("job_id")
@json_option
@click.pass_obj
def jobs_events(inv: Invocation, job_id: str) -> JobEvents:
    """List JOB_ID's status changes, provider messages and step metrics, oldest first."""
    return jobs.job_events(inv.store, job_id)


@jobs_group.command("cancel", context_settings=CONTEXT, short_help="Cancel a job.")
@click.argument("job_id")
@json_option
@click.pass_obj
def jobs_cancel(inv: Invocation, job_id: str) -> Job:
    """Cancel JOB_ID at its provider (or before it reaches one)."""
    return jobs.cancel_job(inv.services, job_id=job_id, actor=inv.actor)


job_command = copy.copy(jobs_show)  # `job JOB` is `jobs show JOB`, one level up
job_command.name = "job"
job_command.short_help = "Show one job (same as `jobs show`)."


@click.command("approvals", context_settings=CONTEXT, short_help="Approval requests waiting for a decision.")
@json_option
@click.pass_obj
def approvals_command(inv: Invocation) -> ApprovalList:
    """List pending approval requests, oldest first."""
    return approvals.pending(inv.store)


def _decide(approve: bool) -> click.Command:
    verb = "approve" if approve else "reject"

    @click.command(verb, context_settings=CONTEXT, short_help=f"{verb.capitalize()} an approval request (approvers).")
    @click.argument("approval_id")
    @click.option("--reason", help="Why, for the record.")
    @json_option
    @click.pass_obj
    def decide(inv: Invocation, approval_id: str, reason: str | None) -> Approval:
        return actions.decide(inv.services, approval_id=approval_id, actor=inv.actor, approve=approve, reason=reason)

    decide.help = f"{verb.capitalize()} APPROVAL_ID. Approvers may, but not their own request (four eyes)."
    return decide


approve_command = _decide(True)
reject_command = _decide(False)


@click.command("catalog", context_settings=CONTEXT, short_help="Base models that can be fine-tuned, with prices.")
@click.option("--provider", type=PROVIDERS, help="Only the models this provider trains.")
@json_option
@click.pass_obj
def catalog_command(inv: Invocation, provider: str | None) -> BaseModelList:
    """List every base model in the catalog (FINETUNE_CATALOG_FILE applied): providers, methods, export target,
    token limit per example, and the training price per 1M tokens with the date it was read."""
    return list_base_models(inv.services.catalog, provider=provider)


def price_text(model: BaseModelEntry) -> str:
    """`$3.00 / 1M (2026-11-15)`, `free`, or `unknown`: a price is only as good as its date."""
    if model.training_usd_per_1m_tokens is None:
        return "unknown"
    if model.training_usd_per_1m_tokens == 0:
        return "free"
    return f"${model.training_usd_per_1m_tokens:,.2f} / 1M ({model.price_as_of})"


def limit_text(model: BaseModelEntry) -> str:
    return f"{model.max_example_tokens:,}" if model.max_example_tokens is not None else "unknown"


SHARED: tuple[click.Command, ...] = (
    jobs_group,
    launch_command,
    job_command,
    approvals_command,
    approve_command,
    reject_command,
    catalog_command,
)
TERMINAL: tuple[click.Command, ...] = ()
