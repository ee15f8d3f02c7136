"""Training results in Slack: jobs (a job's detail with its loss curve attached), launches, approvals."""

from __future__ import annotations

from bot.commands.training import limit_text, price_text
from bot.slack.blocks.kit import Attachment, SlackMessage, context, header, render, section
from core.catalog import BaseModelList
from core.platform import Approval, ApprovalList
from core.training import Job, JobDetail, JobEvents, JobList, LaunchResult
from reports.charts import loss_curve_png


def _job_text(job: Job) -> str:
    cost = f"${job.estimated_cost_usd:,.2f}" if job.estimated_cost_usd is not None else "cost unknown"
    text = f"*{job.id}* `{job.status}`: {job.base_model} on `{job.dataset_version}` via {job.provider} ({cost})"
    if job.model_id:
        text += f"\nModel: `{job.model_id}`"
    if job.error:
        text += f"\nError: {job.error}"
    return text


@render.register
def _(result: Job) -> SlackMessage:
    return SlackMessage(
        f"{result.id}: {result.status}",
        [
            section(_job_text(result)),
            context(f"Requested {result.created_at[:19]} UTC by {result.requested_by}"),
        ],
    )


@render.register
def _(result: LaunchResult) -> SlackMessage:
    blocks = [section(_job_text(result.job))]
    if not result.created:
        blocks.insert(0, context("This request already launched a job; nothing new was started."))
    if result.approval is not None:
        blocks.append(
            section(
                f":raised_hand: Waiting for approval `{result.approval.id}`: an approver runs `/finetune approve {result.approval.id}`."
            )
        )
    return SlackMessage(f"{result.job.id}: {result.job.status}", blocks)


@render.register
def _(result: JobList) -> SlackMessage:
    lines = "\n".join(_job_text(job).split("\n")[0] for job in result.jobs) or "No jobs yet."
    return SlackMessage(f"{len(result.jobs)} job(s)", [header("Fine-tuning jobs"), section(lines)])


@render.register
def _(result: JobEvents) -> SlackMessage:
    lines = [f"`{e.at[:19]}` {e.kind} {e.message or ''} {e.metrics or ''}" for e in result.events[-30:]] or [
        "No events yet."
    ]
    return SlackMessage(f"Events of {result.job_id}", [section("\n".join(lines))])


@render.register
def _(result: ApprovalList) -> SlackMessage:
    lines = [
        f"`{a.id}` {a.action} {a.subject_id} (${a.estimated_cost_usd or 0:,.2f}) by {a.requested_by}"
        for a in result.approvals
    ]
    return SlackMessage(
        f"{len(result.approvals)} approval(s) waiting", [section("\n".join(lines) or "No approvals waiting.")]
    )


@render.register
def _(result: Approval) -> SlackMessage:
    return SlackMessage(
        f"{result.id} {result.status}", [section(f"`{result.id}` *{result.status}* by {result.decided_by}")]
    )


@render.register
def _(result: JobDetail) -> SlackMessage:
    message = render(result.job)
    series = result.events.loss_series()
    if series:
        latest = ", ".join(
            f"{name.replace('_', ' ')} {points[-1][1]:.3f} at step {points[-1][0]}" for name, points in series.items()
        )
        blocks = [*(message.blocks or []), context(f"Latest: {latest}. Loss curve attached.")]
        message = SlackMessage(message.text, blocks, files=_loss_curve(result))
    return message


def _loss_curve(detail: JobDetail) -> list[Attachment]:
    job = detail.job
    png = loss_curve_png(detail.events.loss_series(), title=f"{job.id}: {job.base_model}")
    if png is None:
        return []
    return [Attachment(filename=f"{job.id}-loss.png", title=f"Loss curve of {job.id}", content=png)]


@render.register
def _(result: BaseModelList) -> SlackMessage:
    lines = [
        f"`{m.id}`{' (legacy)' if m.status != 'live' else ''}: {', '.join(m.providers)} · {', '.join(m.methods)}"
        f" · {', '.join(dict.fromkeys(m.export_targets.values()))} · {limit_text(m)} tokens/example · {price_text(m)}"
        for m in result.models
    ]
    chunks = ["\n".join(lines[i : i + 10]) for i in range(0, len(lines), 10)]  # a section holds 3,000 characters
    sections = [section(chunk) for chunk in chunks] or [section("No base models for that provider in the catalog.")]
    blocks = [header("Base models"), *sections, context(f"Catalog of {result.as_of}; prices per 1M training tokens.")]
    return SlackMessage(f"{len(result.models)} base model(s)", blocks)
