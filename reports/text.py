"""Numbers as the digest's renderers write them: percentages, points of change, money, and which way is good."""

from __future__ import annotations

from typing import Literal

from reports.digest import Digest, ExperimentLine, JobLine, MoveLine

Tone = Literal["good", "bad", "neutral"]
FLAT_POINTS = 1.0  # a change of acceptance within one point reads as no change


def pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def usd(amount: float | None) -> str:
    """`$412.30`, `$0.0042` below a cent, `-` when unknown."""
    if amount is None:
        return "-"
    return f"${amount:,.2f}" if abs(amount) >= 0.01 or amount == 0 else f"${amount:,.4f}"


def points(change: float | None) -> str:
    """A change of a share, in percentage points: `+3.4 pts`, `-12.0 pts`, `-` when unknown."""
    return "-" if change is None else f"{change * 100:+.1f} pts"


def relative(now: float | None, before: float | None) -> str | None:
    """`+12%` against the earlier value; None when there is nothing to compare with."""
    if now is None or before is None or before == 0:
        return None
    return f"{(now - before) / before:+.0%}"


def arrow(change: float | None, *, flat: float = 0.0) -> str:
    """▲, ▼, or nothing for no change (within `flat`) or an unknown one."""
    if change is None or abs(change) <= flat:
        return ""
    return "▲" if change > 0 else "▼"


def acceptance_change(change: float | None) -> tuple[str, Tone]:
    """`▼ -3.4 pts` and its tone: acceptance going up is good."""
    if change is None:
        return "no week before", "neutral"
    shown = f"{arrow(change, flat=FLAT_POINTS / 100)} {points(change)}".strip()
    if abs(change) <= FLAT_POINTS / 100:
        return shown, "neutral"
    return shown, "good" if change > 0 else "bad"


def count(number: int, word: str) -> str:
    """`1 alert`, `3 alerts`."""
    return f"{number:,} {word}{'' if number == 1 else 's'}"


def day(moment: str) -> str:
    """A stored UTC time as `2026-01-14 09:30 UTC`."""
    return f"{moment[:16].replace('T', ' ')} UTC"


def job_text(job: JobLine) -> str:
    """`job_1: gpt-4.1-mini on support@3 via openai -> ft:..., est. $4.20` (its state is shown beside it)."""
    cost = f", est. {usd(job.estimated_cost_usd)}" if job.estimated_cost_usd is not None else ""
    model = f" -> {job.model_id}" if job.model_id else ""
    error = f": {job.error}" if job.error else ""
    return f"{job.id}: {job.base_model} on {job.dataset_version} via {job.provider}{model}{cost}{error}"


def move_text(move: MoveLine) -> str:
    """`support@production: support:v1 -> support:v2 by slack:U1` (the kind of move is shown beside it)."""
    approval = f", approval {move.approval_id}" if move.approval_id else ""
    if move.canary_version and move.from_version == move.to_version:
        change = f"{move.canary_version} at {move.canary_share}% beside {move.to_version}"
    else:
        canary = f", canary {move.canary_version} at {move.canary_share}%" if move.canary_version else ""
        change = f"{move.from_version or 'nothing'} -> {move.to_version}{canary}"
    return f"{move.model}@{move.alias}: {change} by {move.actor}{approval}"


def experiment_values(line: ExperimentLine) -> str:
    """`treatment 58.8% (n=590) against control 52.1% (n=2,410), +6.7 pts`."""

    def shown(value: float | None) -> str:
        if value is None:
            return "-"
        return pct(value) if line.rate else f"{value:.3g}"

    difference = ""
    if line.difference is not None:
        difference = f", {points(line.difference)}" if line.rate else f", {line.difference:+.3g}"
    return (
        f"treatment {shown(line.treatment_value)} (n={line.treatment_n:,}) against control"
        f" {shown(line.control_value)} (n={line.control_n:,}){difference}"
    )


def headline_facts(digest: Digest) -> list[tuple[str, str, str, Tone]]:
    """The numbers a reader takes in first: (label, value, its change or context, tone of that change)."""
    head = digest.headline
    change = None
    if head.acceptance is not None and head.previous_acceptance is not None:
        change = head.acceptance - head.previous_acceptance
    moved, tone = acceptance_change(change)
    drafts = relative(head.events, head.previous_events)
    facts: list[tuple[str, str, str, Tone]] = [
        ("Acceptance", pct(head.acceptance), moved, tone),
        ("Drafts", f"{head.events:,}", f"{arrow(head.events - head.previous_events)} {drafts} vs week before".strip()
         if drafts else "no week before", "neutral"),
        ("Open alerts", f"{head.open_alerts}", "regressions to look at" if head.open_alerts else "none open",
         "bad" if head.open_alerts else "good"),
    ]  # fmt: skip
    if head.spend_usd is not None:
        spent = relative(head.spend_usd, head.previous_spend_usd)
        facts.append(("Spend", usd(head.spend_usd), f"{spent} vs week before" if spent else "training + inference",
                      "neutral"))  # fmt: skip
    facts.append((
        "Jobs finished", f"{head.jobs_succeeded + head.jobs_failed}",
        f"{head.jobs_succeeded} succeeded, {head.jobs_failed} failed", "bad" if head.jobs_failed else "neutral",
    ))  # fmt: skip
    facts.append(("Alias moves", f"{head.deployments + head.rollbacks}", f"{count(head.rollbacks, 'rollback')}",
                  "bad" if head.rollbacks else "neutral"))  # fmt: skip
    facts.append(("Pending approvals", f"{head.pending_approvals}", "waiting for a decision"
                  if head.pending_approvals else "nothing waiting", "neutral"))  # fmt: skip
    return facts
