"""Platform results in Slack: status, notices, the audit log."""

from __future__ import annotations

from bot.commands.platform import AuditList
from bot.slack.blocks.kit import SlackMessage, context, fields, header, render, section
from core.platform import Notice, StatusReport


@render.register
def _(result: StatusReport) -> SlackMessage:
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
    return SlackMessage(
        text, [header("finetune-ops status"), *fields(facts), context(f"Scheduler heartbeat: {heartbeat}")]
    )


@render.register
def _(result: Notice) -> SlackMessage:
    where = f"<#{result.channel}>" if result.channel else "the team channel"
    text = f"Queued notice #{result.outbox_id} for {where}."
    return SlackMessage(text, [section(f":white_check_mark: {text}")])


@render.register
def _(result: AuditList) -> SlackMessage:
    lines = [f"`{e.at[:19]}` {e.face}:{e.actor} *{e.command}* → {e.outcome}" for e in result.entries] or ["(empty)"]
    return SlackMessage("Audit log", [header("Audit log (newest first)"), section("\n".join(lines))])
