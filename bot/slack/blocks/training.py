"""Training results in Slack: jobs (a job's detail with its loss curve attached), launches, approvals."""

from __future__ import annotations

from bot.commands.training import limit_text, price_text
from bot.slack.blocks.kit import Attachment, Block, SlackMessage, context, header, render, section
from bot.slack.blocks.notifications import decision_buttons, mention, slack_date
from core.catalog import BaseModelList
from core.platform import Approval, ApprovalList
from core.training import Job, JobDetail, JobEvents, JobList, LaunchResult
from reports.charts import loss_curve_png

APPROVALS_WITH_BUTTONS = 10  # pending requests listed with their buttons; Slack allows 50 blocks per message


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
    """Each pending request with what it is and its Approve and Reject buttons (the first few; the rest listed)."""
    text = f"{len(result.approvals)} approval(s) waiting"
    if not result.approvals:
        return SlackMessage(text, [section("No approvals waiting.")])
    blocks: list[Block] = []
    for a in result.approvals[:APPROVALS_WITH_BUTTONS]:
        cost = f" · ${a.estimated_cost_usd:,.2f}" if a.estimated_cost_usd is not None else ""
        progress = f" · {a.progress()}" if a.progress() else ""
        requester = mention(f"{a.requested_via}:{a.requested_by}")
        blocks.append(
            section(
                f"`{a.id}` *{a.description or f'{a.action} {a.subject_id}'}*{cost}{progress}\n"
                f"by {requester} · expires {slack_date(a.expires_at) if a.expires_at else 'never'}"
            )
        )
        blocks.append(decision_buttons(a.id))
    rest = result.approvals[APPROVALS_WITH_BUTTONS:]
    if rest:
        blocks.append(context(f"And {len(rest)} more: " + ", ".join(f"`{a.id}`" for a in rest[:20])))
    return SlackMessage(text, blocks)


@render.register
def _(result: Approval) -> SlackMessage:
    progress = result.progress()
    if progress:
        voters = ", ".join(mention(v) for v in result.approved_by)
        return SlackMessage(
            f"{result.id}: {progress}",
            [section(f"`{result.id}` is still pending: {progress} ({voters}); it needs another approver.")],
        )
    deciders = result.approved_by if result.status == "approved" and result.approved_by else [result.decided_by or "?"]
    who = ", ".join(mention(d) for d in deciders)
    return SlackMessage(f"{result.id} {result.status}", [section(f"`{result.id}` *{result.status}* by {who}")])


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
