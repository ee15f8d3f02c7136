"""Training results on a terminal: jobs, launches, events, approvals."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bot.commands.training import limit_text, price_text
from bot.terminal.output import render
from core.catalog import BaseModelList
from core.platform import Approval, ApprovalList
from core.training import Job, JobDetail, JobEvents, JobList, LaunchResult


def _job_line(job: Job) -> str:
    cost = f"${job.estimated_cost_usd:,.2f}" if job.estimated_cost_usd is not None else "cost unknown"
    return f"{job.id}  {job.status}  {job.base_model} on {job.dataset_version} via {job.provider}  ({cost})"


@render.register
def _(result: Job, console: Console) -> None:
    console.print(f"[bold]{_job_line(result)}[/bold]", highlight=False)
    for label, value in (("provider job", result.provider_job_id), ("provider status", result.provider_status),
                         ("detail", result.status_detail), ("model", result.model_id), ("error", result.error),
                         ("approval", result.approval_id), ("hyperparameters", result.hyperparameters),
                         ("requested", f"{result.created_at[:19]} by {result.requested_by}"),
                         ("finished", result.finished_at)):  # fmt: skip
        if value:
            console.print(f"  {label}: {value}", highlight=False)


@render.register
def _(result: LaunchResult, console: Console) -> None:
    if not result.created:
        console.print("This key already launched a job; nothing new was started.")
    render(result.job, console)
    if result.approval is not None:
        console.print(
            f"Waiting for approval {result.approval.id}: an approver runs `finetune approve {result.approval.id}`."
        )


@render.register
def _(result: JobList, console: Console) -> None:
    if not result.jobs:
        console.print("No jobs yet. Launch one: finetune jobs launch VERSION --provider P --base-model M")
    for job in result.jobs:
        console.print(_job_line(job), highlight=False)


@render.register
def _(result: JobEvents, console: Console) -> None:
    for event in result.events:
        metrics = ", ".join(f"{k} {v:g}" for k, v in (event.metrics or {}).items())
        step = f"step {event.step} " if event.step is not None else ""
        console.print(f"{event.at[:19]}  {event.kind:<8} {step}{event.message or ''}{metrics}", highlight=False)


@render.register
def _(result: ApprovalList, console: Console) -> None:
    if not result.approvals:
        console.print("No approvals waiting.")
    for a in result.approvals:
        cost = f"${a.estimated_cost_usd:,.2f}" if a.estimated_cost_usd is not None else "cost unknown"
        progress = f"  {a.progress()}" if a.progress() else ""
        console.print(
            f"{a.id}  {a.action} {a.subject_id}  {cost}  by {a.requested_via}:{a.requested_by}"
            f"  expires {(a.expires_at or 'never')[:19]}{progress}",
            highlight=False,
        )


@render.register
def _(result: Approval, console: Console) -> None:
    progress = result.progress()
    if progress:
        console.print(
            f"{result.id}: pending, {progress} ({', '.join(result.approved_by)}); waiting for another approver",
            highlight=False,
        )
        return
    deciders = result.approved_by if result.status == "approved" and result.approved_by else [result.decided_by]
    console.print(
        f"{result.id}: {result.status} by {', '.join(map(str, deciders))}"
        + (f" ({result.reason})" if result.reason else ""),
        highlight=False,
    )


@render.register
def _(result: JobDetail, console: Console) -> None:
    render(result.job, console)
    for name, points in result.events.loss_series().items():
        tail = ", ".join(f"{step}: {value:.3f}" for step, value in points[-5:])
        console.print(f"  {name} (last steps): {tail}", highlight=False)


@render.register
def _(result: BaseModelList, console: Console) -> None:
    if not result.models:
        console.print("No base models for that provider in the catalog.")
        return
    table = Table(title=f"Base models (catalog of {result.as_of})", title_justify="left")
    for column in ("model", "providers", "methods", "export target", "tokens/example", "training price"):
        table.add_column(column, overflow="fold")
    for m in result.models:
        model = m.id + (" [dim](legacy)[/dim]" if m.status != "live" else "")
        targets = ", ".join(f"{target}" for target in dict.fromkeys(m.export_targets.values()))
        table.add_row(model, ", ".join(m.providers), ", ".join(m.methods), targets, limit_text(m), price_text(m))
    console.print(table)
