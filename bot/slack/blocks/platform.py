"""Platform results in Slack: status, notices, the audit log."""

from __future__ import annotations

from bot.commands.platform import AuditList
from bot.slack.blocks.kit import SlackMessage, context, fields, header, render, section
from core.platform import Notice, StatusReport, outbox


@render.register
def _(result: StatusReport) -> SlackMessage:
    jobs = ", ".join(f"{state} {n}" for state, n in result.jobs_by_state.items() if n) or "none"
    models = "\n".join(f"`{alias}` → {version}" for alias, version in result.models_by_alias.items()) or "none"
    heartbeat = {
        "missing": "never (is `finetune serve` running?)",
        "stale": f"{result.scheduler_heartbeat} :warning: stale: is `finetune serve` running?",
    }.get(result.scheduler_health, result.scheduler_heartbeat or "")
    facts = [
        ("Feedback events", str(result.feedback_events)),
        ("Datasets", f"{result.datasets} ({result.dataset_versions} versions)"),
        ("Jobs", jobs),
        ("Models", models),
        ("Pending approvals", str(result.pending_approvals)),
        *([("Spend this month", result.spend.summary())] if result.spend is not None else []),
        ("Undelivered notifications", str(result.outbox_pending)),
        ("Dead notifications", str(result.outbox_dead)),
    ]
    text = "finetune-ops status: " + "; ".join(f"{label}: {value}" for label, value in facts)
    blocks = [header("finetune-ops status"), *fields(facts)]
    if result.dead_letters:
        blocks.append(section("*Dead notifications* (`/finetune outbox`)\n" + _entries(result.dead_letters)))
    blocks.append(context(f"Scheduler heartbeat: {heartbeat} · Database: `{result.database}`"))
    return SlackMessage(text, blocks)


def _entries(entries: list[outbox.OutboxEntry]) -> str:
    return "\n".join(
        f"`#{e.id}` {e.state} {e.kind} ({e.attempts} attempts): {e.summary[:80]}"
        + (f"\n      _{e.last_error[:200]}_" if e.last_error else "")
        for e in entries
    )


@render.register
def _(result: outbox.OutboxList) -> SlackMessage:
    title = f"Outbox: {result.pending} undelivered, {result.dead} dead"
    if not result.entries:
        return SlackMessage(f"{title}: nothing waiting.", [section(f"{title}: nothing waiting.")])
    hint = "`/finetune outbox retry ID` tries one again; `/finetune outbox discard ID` drops it."
    return SlackMessage(title, [header(title), section(_entries(result.entries)), context(hint)])


@render.register
def _(result: outbox.OutboxChange) -> SlackMessage:
    verb = "will be tried again now" if result.action == "retry" else "is discarded"
    text = f"Notification #{result.id} {verb}: {result.summary[:200]}"
    return SlackMessage(text, [section(f":white_check_mark: {text}")])


@render.register
def _(result: Notice) -> SlackMessage:
    where = f"<#{result.channel}>" if result.channel else "the team channel"
    text = f"Queued notice #{result.outbox_id} for {where}."
    return SlackMessage(text, [section(f":white_check_mark: {text}")])


@render.register
def _(result: AuditList) -> SlackMessage:
    lines = [f"`{e.at[:19]}` {e.face}:{e.actor} *{e.command}* → {e.outcome}" for e in result.entries] or ["(empty)"]
    return SlackMessage("Audit log", [header("Audit log (newest first)"), section("\n".join(lines))])
