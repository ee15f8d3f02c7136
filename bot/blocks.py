"""Pure functions from results to Slack Block Kit. No I/O, no core calls.

`render(result)` returns `(text, blocks)`: `text` is the notification and
screen-reader fallback Slack requires beside blocks.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from pydantic import BaseModel

from bot.grammar import AuditList, ErrorResult, HelpResult, Message, Outcome, UsageProblem
from core.platform import events
from core.platform.notifications import Notice
from core.platform.outbox import OutboxMessage
from core.platform.status import StatusReport

Blocks = list[dict[str, Any]]
MAX_TEXT = 3000


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:MAX_TEXT]}}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def fields(pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Two-column facts; Slack allows ten fields per section."""
    items = [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in pairs]
    return [{"type": "section", "fields": items[i : i + 10]} for i in range(0, len(items), 10)]


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:MAX_TEXT]}]}


def code(text: str) -> str:
    return "```" + text.replace("```", "'''") + "```"


def render_outcome(outcome: Outcome) -> tuple[str, Blocks]:
    if outcome.as_json:
        payload = outcome.result.model_dump_json(indent=2)
        return payload[:MAX_TEXT], [section(code(payload[: MAX_TEXT - 6]))]
    return render(outcome.result)


@functools.singledispatch
def render(result: BaseModel) -> tuple[str, Blocks]:
    payload = json.dumps(result.model_dump(mode="json"), indent=2)
    return payload[:MAX_TEXT], [section(code(payload[: MAX_TEXT - 6]))]


@render.register
def _(result: StatusReport) -> tuple[str, Blocks]:
    jobs = ", ".join(f"{state} {n}" for state, n in result.jobs_by_state.items() if n) or "none"
    models = "\n".join(f"`{alias}` → {version}" for alias, version in result.models_by_alias.items()) or "none"
    heartbeat = result.scheduler_heartbeat or "never (is `finetune serve` running?)"
    facts = [
        ("Feedback events", str(result.feedback_events)),
        ("Datasets", f"{result.datasets} ({result.dataset_versions} versions)"),
        ("Jobs", jobs),
        ("Models", models),
        ("Pending approvals", str(result.pending_approvals)),
        ("Undelivered notifications", str(result.outbox_pending)),
    ]
    text = "finetune-ops status: " + "; ".join(f"{label}: {value}" for label, value in facts)
    return text, [header("finetune-ops status"), *fields(facts), context(f"Scheduler heartbeat: {heartbeat}")]


@render.register
def _(result: HelpResult) -> tuple[str, Blocks]:
    if result.topic:
        entry = result.commands[0]
        body = f"*Usage:* `{entry.usage}`\n{entry.description or entry.summary}"
        return f"Usage: {entry.usage}", [section(body)]
    lines = "\n".join(f"`{result.prog} {entry.name}`: {entry.summary}" for entry in result.commands)
    return (
        f"{result.prog} commands",
        [section(f"*{result.prog} commands*\n{lines}"), context(f"`{result.prog} help COMMAND` shows how to use one.")],
    )


@render.register
def _(result: UsageProblem) -> tuple[str, Blocks]:
    body = f":warning: {result.message}"
    if result.usage:
        body += f"\n*Usage:* `{result.usage}`"
    return result.message, [section(body), context(f"`{result.prog} help` lists every command.")]


@render.register
def _(result: ErrorResult) -> tuple[str, Blocks]:
    body = f":x: {result.message}"
    if result.hint:
        body += f"\n*Fix:* {result.hint}"
    return result.message, [section(body)]


@render.register
def _(result: Notice) -> tuple[str, Blocks]:
    where = f"<#{result.channel}>" if result.channel else "the team channel"
    text = f"Queued notice #{result.outbox_id} for {where}."
    return text, [section(f":white_check_mark: {text}")]


@render.register
def _(result: AuditList) -> tuple[str, Blocks]:
    lines = [f"`{e.at[:19]}` {e.face}:{e.actor} *{e.command}* → {e.outcome}" for e in result.entries] or ["(empty)"]
    return "Audit log", [header("Audit log (newest first)"), section("\n".join(lines))]


@render.register
def _(result: Message) -> tuple[str, Blocks]:
    return result.text, [section(result.text)]


# Data ---------------------------------------------------------------------------------------------

from core.data.datasets import DatasetList, DatasetVersion  # noqa: E402
from core.data.exports import DatasetValidation  # noqa: E402


@render.register
def _(result: DatasetList) -> tuple[str, Blocks]:
    if not result.datasets:
        return "No datasets yet.", [section("No datasets yet. Build one from a terminal: `finetune data build NAME`.")]
    lines = [
        f"*{d.name}*: latest `{d.latest}` ({d.latest_examples} examples), {d.versions} version(s)"
        for d in result.datasets
    ]
    return f"{len(result.datasets)} dataset(s)", [header("Datasets"), section("\n".join(lines))]


@render.register
def _(result: DatasetVersion) -> tuple[str, Blocks]:
    counts = result.counts
    splits = ", ".join(f"{s} {n}" for s, n in counts.get("splits", {}).items())
    facts = [
        ("Examples", f"{counts.get('examples')} ({splits})"),
        ("Candidates", str(counts.get("candidates"))),
        ("Duplicates dropped", f"{counts.get('exact_duplicates')} exact, {counts.get('near_duplicates')} near"),
        ("By agent", ", ".join(f"{a} {sum(v.values())}" for a, v in counts.get("by_agent", {}).items()) or "-"),
        ("Mean acceptance", str(result.stats.get("mean_acceptance"))),
        ("Edited examples", str(result.stats.get("edited"))),
        ("Estimated tokens", f"{result.stats.get('estimated_tokens'):,}"),
        ("Redactions", ", ".join(f"{k} {n}" for k, n in sorted(result.redaction_report.by_type.items())) or "none"),
    ]
    text = f"{result.id}: {counts.get('examples')} examples ({splits})"
    return text, [
        header(f"Dataset {result.id}"),
        *fields(facts),
        context(f"Built {result.created_at[:19]} UTC by {result.created_by} · hash `{result.content_hash[:12]}`"),
    ]


@render.register
def _(result: DatasetValidation) -> tuple[str, Blocks]:
    icon = ":white_check_mark:" if result.ok else ":x:"
    lines = []
    for split, report in result.reports.items():
        kinds = ", ".join(f"{k} {n}" for k, n in report.errors_by_kind.items())
        lines.append(
            f"*{split}*: {report.examples} examples, {report.error_count} error(s)" + (f" ({kinds})" if kinds else "")
        )
        for issue in report.errors[:5]:
            lines.append(f"  • line {issue.line}: {issue.message} _Fix:_ {issue.hint}")
    text = f"{result.version} for {result.target}: {'valid' if result.ok else 'invalid'}"
    return text, [
        section(f"{icon} *{result.version}* for `{result.target}` ({result.model})"),
        section("\n".join(lines)),
    ]


# Jobs and approvals ---------------------------------------------------------------------------------

from core.platform.approvals import Approval, ApprovalList  # noqa: E402
from core.training.jobs import Job, JobDetail, JobEvents, JobList, LaunchResult  # noqa: E402


def _job_text(job: Job) -> str:
    cost = f"${job.estimated_cost_usd:,.2f}" if job.estimated_cost_usd is not None else "cost unknown"
    text = f"*{job.id}* `{job.status}`: {job.base_model} on `{job.dataset_version}` via {job.provider} ({cost})"
    if job.model_id:
        text += f"\nModel: `{job.model_id}`"
    if job.error:
        text += f"\nError: {job.error}"
    return text


@render.register
def _(result: Job) -> tuple[str, Blocks]:
    return f"{result.id}: {result.status}", [
        section(_job_text(result)),
        context(f"Requested {result.created_at[:19]} UTC by {result.requested_by}"),
    ]


@render.register
def _(result: LaunchResult) -> tuple[str, Blocks]:
    blocks = [section(_job_text(result.job))]
    if not result.created:
        blocks.insert(0, context("This request already launched a job; nothing new was started."))
    if result.approval is not None:
        blocks.append(
            section(
                f":raised_hand: Waiting for approval `{result.approval.id}`: an approver runs `/finetune approve {result.approval.id}`."
            )
        )
    return f"{result.job.id}: {result.job.status}", blocks


@render.register
def _(result: JobList) -> tuple[str, Blocks]:
    lines = "\n".join(_job_text(job).split("\n")[0] for job in result.jobs) or "No jobs yet."
    return f"{len(result.jobs)} job(s)", [header("Fine-tuning jobs"), section(lines)]


@render.register
def _(result: JobEvents) -> tuple[str, Blocks]:
    lines = [f"`{e.at[:19]}` {e.kind} {e.message or ''} {e.metrics or ''}" for e in result.events[-30:]] or [
        "No events yet."
    ]
    return f"Events of {result.job_id}", [section("\n".join(lines))]


@render.register
def _(result: ApprovalList) -> tuple[str, Blocks]:
    lines = [
        f"`{a.id}` {a.action} {a.subject_id} (${a.estimated_cost_usd or 0:,.2f}) by {a.requested_by}"
        for a in result.approvals
    ]
    return f"{len(result.approvals)} approval(s) waiting", [section("\n".join(lines) or "No approvals waiting.")]


@render.register
def _(result: Approval) -> tuple[str, Blocks]:
    return f"{result.id} {result.status}", [section(f"`{result.id}` *{result.status}* by {result.decided_by}")]


@render.register
def _(result: JobDetail) -> tuple[str, Blocks]:
    text, blocks = render(result.job)
    series = result.events.loss_series()
    if series:
        latest = ", ".join(
            f"{name.replace('_', ' ')} {points[-1][1]:.3f} at step {points[-1][0]}" for name, points in series.items()
        )
        blocks.append(context(f"Latest: {latest}. Loss curve attached."))
    return text, blocks


# Notifications: typed events from the outbox -------------------------------------------------------

JOB_ICONS = {
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "cancelled": ":no_entry_sign:",
    "pending_approval": ":raised_hand:",
}


def render_message(message: OutboxMessage) -> tuple[str, Blocks | None]:
    """An outbox row as Slack text and blocks; rows written before typed events keep their stored text."""
    if message.event is None:
        return message.text, None
    return render(message.event)


@render.register
def _(event: events.Notice) -> tuple[str, Blocks]:
    text = f":loudspeaker: {event.text}"
    return text, [section(text)]


@render.register
def _(event: events.JobChanged) -> tuple[str, Blocks]:
    icon = JOB_ICONS.get(event.status, ":hourglass_flowing_sand:")
    text = f"{icon} Job {event.job_id}: {event.base_model} on {event.dataset_version} via {event.provider}: *{event.status}*"
    if event.detail:
        text += f" ({event.detail})"
    if event.model_id:
        text += f"\nModel: `{event.model_id}`"
    if event.error:
        text += f"\nError: {event.error}"
    return text, [section(text)]


@render.register
def _(event: events.ApprovalRequested) -> tuple[str, Blocks]:
    text = (
        f":raised_hand: Approval needed ({event.approval_id}): {event.description}. Requested by {event.requested_by}. "
        f"Approve with `/finetune approve {event.approval_id}` or `finetune approve {event.approval_id}`."
    )
    return text, [section(text)]


@render.register
def _(event: events.ApprovalDecided) -> tuple[str, Blocks]:
    verb = {"approved": ":white_check_mark: approved", "rejected": ":no_entry: rejected"}.get(
        event.status, event.status
    )
    who = f" by {event.decided_by}" if event.decided_by else ""
    text = f"{verb}{who}: {event.action} {event.subject_id}" + (f" ({event.reason})" if event.reason else "")
    return text, [section(text)]
