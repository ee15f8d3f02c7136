"""The app's Home tab in Slack: what waits for a decision, what trains, what serves, and who moved it.

`home_view` is a pure function from `HomeFacts` (read from the core by
`bot.slack.listeners.home`) to the view that `views.publish` takes. Every list
is capped at `LIST_CAP` entries with the `/finetune` command that shows them
all, and every line is clipped, so the view stays within Slack's limits
(100 blocks, 3,000 characters a text) whatever the database holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.commands.registry import alias_text, serving_text
from bot.slack.blocks.kit import MAX_TEXT, Block, Blocks, context, header, section
from bot.slack.blocks.notifications import decision_buttons, face_of, mention, slack_date
from core.platform import Approval
from core.registry import PRODUCTION, AliasState, LedgerEntry
from core.training import Job

LIST_CAP = 10  # entries per list; the rest is one "and N more" line
MAX_BLOCKS = 100  # Slack's limit for a Home tab view
LINE_MAX = 280  # characters of one line: ten of them fit a 3,000-character section


@dataclass(frozen=True)
class ModelAliases:
    name: str
    aliases: list[AliasState]


@dataclass(frozen=True)
class HomeFacts:
    """What the Home tab shows; each list is newest first (models by name) and holds at most LIST_CAP entries."""

    approvals: list[Approval] = field(default_factory=list)
    approvals_total: int = 0
    jobs: list[Job] = field(default_factory=list)
    jobs_total: int = 0
    models: list[ModelAliases] = field(default_factory=list)
    models_total: int = 0
    moves: list[LedgerEntry] = field(default_factory=list)
    updated_at: str | None = None  # UTC ISO time the facts were read


def home_view(facts: HomeFacts) -> Block:
    """The Home tab as `views.publish` takes it."""
    updated = f"Updated {slack_date(facts.updated_at)}" if facts.updated_at else "Updated just now"
    blocks: Blocks = [
        header("finetune-ops"),
        context(f"{updated} · refreshed each time you open this tab · `/finetune help` lists every command"),
        *_approvals(facts),
        {"type": "divider"},
        *_jobs(facts),
        {"type": "divider"},
        *_models(facts),
        {"type": "divider"},
        *_moves(facts),
    ]
    return {"type": "home", "blocks": blocks[:MAX_BLOCKS]}


def problem_view(message: str) -> Block:
    """A Home tab that says why the usual one cannot be shown, and what to do."""
    return {"type": "home", "blocks": [header("finetune-ops"), section(f":warning: {plain(message)}")]}


# Sections ------------------------------------------------------------------------------------------------


def _approvals(facts: HomeFacts) -> Blocks:
    blocks: Blocks = [header(f"Pending approvals ({facts.approvals_total})")]
    if not facts.approvals:
        return [*blocks, section("No pending approvals: nothing waits for a decision.")]
    shown = facts.approvals[:LIST_CAP]
    for approval in shown:
        blocks += [section(approval_text(approval)), decision_buttons(approval.id)]
    return blocks + _more(facts.approvals_total, len(shown), "`/finetune approvals` lists them all.")


def approval_text(approval: Approval) -> str:
    """What is asked, by whom through which face, what it costs, when it expires, and how many approved so far."""
    requester = f"{approval.requested_via}:{approval.requested_by}"
    what = approval.description or f"{approval.action} {approval.subject_id or ''}".strip()
    details = [
        f"`{approval.action}` `{clip(approval.subject_id or 'no subject', 80, escape=True)}`",
        f"by {who(requester)} via {face_of(requester)}",
        f"expires {slack_date(approval.expires_at)}" if approval.expires_at else "never expires",
    ]
    if approval.estimated_cost_usd is not None:
        details.insert(1, f"est. ${approval.estimated_cost_usd:,.2f}")
    if approval.approvals_needed > 1:
        details.append(f"*{len(approval.approved_by)} of {approval.approvals_needed} approvals*")
    lines = [f"*{clip(what, 200, escape=True)}* (`{approval.id}`)", " · ".join(details)]
    if approval.facts:
        lines.append(clip(" · ".join(f"{k}: {v}" for k, v in approval.facts.items()), LINE_MAX, escape=True))
    return "\n".join(lines)


def _jobs(facts: HomeFacts) -> Blocks:
    blocks: Blocks = [header(f"Running jobs ({facts.jobs_total})")]
    if not facts.jobs:
        empty = "No jobs running. `/finetune launch VERSION PROVIDER BASE_MODEL` starts one."
        return [*blocks, section(empty)]
    shown = [job_line(job) for job in facts.jobs[:LIST_CAP]]
    return blocks + packed(shown) + _more(facts.jobs_total, len(shown), "`/finetune jobs list` lists every job.")


def job_line(job: Job) -> str:
    """`job_1 *running* · openai · gpt-4o-mini · started DATE`."""
    model = clip(job.base_model, 80, escape=True)
    return f"`{job.id}` *{job.status}* · {job.provider} · {model} · started {slack_date(job.created_at)}"


def _models(facts: HomeFacts) -> Blocks:
    blocks: Blocks = [header(f"Models ({facts.models_total})")]
    if not facts.models:
        empty = "No models yet: a model is registered when a fine-tuning job succeeds."
        return [*blocks, section(empty)]
    shown = [model_line(model) for model in facts.models[:LIST_CAP]]
    return blocks + packed(shown) + _more(facts.models_total, len(shown), "`/finetune models list` lists every model.")


def model_line(model: ModelAliases) -> str:
    """`*support* · production -> support:v2 with canary support:v3 at 10% · candidate -> support:v3`."""
    ordered = sorted(model.aliases, key=lambda a: (a.alias != PRODUCTION, a.alias))  # production first
    line = f"*{clip(model.name, 80, escape=True)}*"
    if not ordered:
        return f"{line} · no aliases yet"
    for shown, alias in enumerate(ordered):
        part = f" · `{clip(alias_text(alias), 200, escape=True)}`"
        if len(line) + len(part) > LINE_MAX:
            return f"{line} · and {len(ordered) - shown} more aliases"
        line += part
    return line


def _moves(facts: HomeFacts) -> Blocks:
    blocks: Blocks = [header("Latest alias moves")]
    if not facts.moves:
        empty = "No alias moves yet. `/finetune deploy MODEL VERSION` points an alias at a version."
        return [*blocks, section(empty)]
    blocks += packed([move_line(move) for move in facts.moves[:LIST_CAP]])
    return [*blocks, context("`/finetune models history MODEL` shows every move of a model.")]


def move_line(move: LedgerEntry) -> str:
    """`support@production` deploy: support:v1 → support:v2 by @alice, date (approval ap_1)."""
    serving = serving_text(move.to_version_id, move.canary_version_id, move.canary_share)
    where = clip(f"{move.model_name}@{move.alias}", 90, escape=True)
    before = clip(move.from_version_id or "nothing", 80, escape=True)
    text = f"`{where}` {move.move or 'move'}: {before} → {clip(serving, 150, escape=True)}"
    approved = f" (approval `{move.approval_id}`)" if move.approval_id else ""
    return f"{text} by {who(move.actor)} {slack_date(move.at)}{approved}"


def packed(lines: list[str]) -> Blocks:
    """Lines in as few sections as hold them whole (a section holds MAX_TEXT characters): no line is cut."""
    chunks: list[str] = []
    for line in lines:
        if chunks and len(chunks[-1]) + 1 + len(line) <= MAX_TEXT:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line)
    return [section(chunk) for chunk in chunks]


def _more(total: int, shown: int, how: str) -> Blocks:
    return [context(f"and {total - shown} more · {how}")] if total > shown else []


# Text ----------------------------------------------------------------------------------------------------


def plain(text: str) -> str:
    """Text from the database shown as it is: Slack reads `<`, `>` and `&` as markup (links, mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def who(actor: str) -> str:
    """An actor as `mention` shows it (a Slack user notified by name), its stored text kept as text."""
    return mention(clip(actor, 80, escape=True))


def clip(text: str, limit: int, *, escape: bool = False) -> str:
    """At most `limit` characters, an ellipsis marking a cut; `escape` makes it `plain` first."""
    clipped = text if len(text) <= limit else text[: limit - 1] + "…"
    return plain(clipped) if escape else clipped
