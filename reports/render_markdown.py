"""The digest as Markdown: what `finetune report weekly` prints, and what an agent reads beside the model."""

from __future__ import annotations

from reports.digest import Digest
from reports.text import acceptance_change, day, experiment_values, headline_facts, job_text, move_text, pct, usd


def render_markdown(digest: Digest) -> str:
    week = digest.week
    lines = [
        f"# Weekly digest {week.week}",
        "",
        f"{week.start} to {week.end} ({week.timezone}). Generated {day(digest.generated_at)}.",
        *(f"\n> {note}" for note in digest.notes),
        "",
        "| | | |",
        "|---|---|---|",
        *(f"| **{label}** | {value} | {change} |" for label, value, change, _ in headline_facts(digest)),
        "",
    ]
    lines += _acceptance(digest) + _alerts(digest) + _actions(digest) + _patterns(digest) + _costs(digest)
    lines += _jobs(digest) + _moves(digest) + _experiments(digest) + _approvals(digest)
    return "\n".join(lines).rstrip() + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _acceptance(digest: Digest) -> list[str]:
    lines = ["## Acceptance by agent", ""]
    if not digest.agents:
        return [*lines, "No feedback this week.", ""]
    lines += ["| agent | drafts | acceptance | change | unedited | rating |", "|---|---:|---:|---:|---:|---:|"]
    for agent in digest.agents:
        change, _ = acceptance_change(agent.change)
        rating = f"{agent.rating:.2f}" if agent.rating is not None else "-"
        lines.append(
            f"| {_cell(agent.agent)} | {agent.events:,} | {pct(agent.acceptance)} | {change} |"
            f" {pct(agent.unedited_share)} | {rating} |"
        )
    return [*lines, ""]


def _alerts(digest: Digest) -> list[str]:
    if not digest.alerts:
        return ["## Open alerts", "", "None.", ""]
    lines = ["## Open alerts", ""]
    lines += [f"- **{alert.severity}** `{alert.agent}` ({alert.kind}): {alert.message}" for alert in digest.alerts]
    return [*lines, ""]


def _actions(digest: Digest) -> list[str]:
    if not digest.actions:
        return []
    lines = ["## Next actions", ""]
    lines += [f"- {action.label}: `{action.command}`. {action.reason}" for action in digest.actions]
    return [*lines, ""]


def _patterns(digest: Digest) -> list[str]:
    lines = ["## What users edit most", "", "Counted over all feedback so far.", ""]
    if not digest.patterns:
        return [*lines, "No edit patterns yet.", ""]
    lines += ["| agent | users | phrase | share of edited drafts | category |", "|---|---|---|---:|---|"]
    for pattern in digest.patterns:
        lines.append(
            f"| {_cell(pattern.agent)} | {pattern.kind} | `{_cell(pattern.phrase)}` | {pattern.frequency:.0%}"
            f" ({pattern.support:,}) | {pattern.category} |"
        )
    return [*lines, ""]


def _costs(digest: Digest) -> list[str]:
    costs = digest.costs
    if costs is None:
        return []
    estimated = " (training partly estimated)" if costs.training_estimated else ""
    lines = [
        "## Spend",
        "",
        f"{usd(costs.total_usd)} in all: training {usd(costs.training_usd)}{estimated},"
        f" inference {usd(costs.inference_usd)}; the week before {usd(costs.previous_total_usd)}.",
        "",
    ]
    if costs.rows:
        lines += ["| kind | model | version | amount |", "|---|---|---|---:|"]
        for row in costs.rows:
            amount = usd(row.usd) + (" (est.)" if row.estimated else "")
            lines.append(f"| {row.kind} | {_cell(row.model)} | {_cell(row.version or '-')} | {amount} |")
        lines.append("")
    if costs.unpriced_events:
        lines += [f"{costs.unpriced_events:,} drafts reported no cost and are left out.", ""]
    return lines


def _jobs(digest: Digest) -> list[str]:
    lines = ["## Fine-tuning jobs finished", ""]
    if not digest.jobs:
        return [*lines, "None.", ""]
    return [*lines, *(f"- **{job.status}** {job_text(job)}" for job in digest.jobs), ""]


def _moves(digest: Digest) -> list[str]:
    lines = ["## Deployments and rollbacks", ""]
    if not digest.moves:
        return [*lines, "None.", ""]
    return [*lines, *(f"- {day(move.at)} **{move.move}** {move_text(move)}" for move in digest.moves), ""]


def _experiments(digest: Digest) -> list[str]:
    if not digest.experiments:
        return []
    lines = ["## A/B experiments", ""]
    for line in digest.experiments:
        lines.append(
            f"- `{line.id}` {line.title} ({line.status}, {line.metric}): **{line.verdict}**;"
            f" {experiment_values(line)}. {line.reason}"
        )
    return [*lines, ""]


def _approvals(digest: Digest) -> list[str]:
    lines = ["## Pending approvals", ""]
    if not digest.approvals:
        return [*lines, "None.", ""]
    for approval in digest.approvals:
        progress = f" ({approval.progress})" if approval.progress else ""
        lines.append(
            f"- `{approval.id}` {approval.description}, requested by {approval.requested_by}{progress}:"
            f" `finetune approve {approval.id}`"
        )
    return [*lines, ""]
