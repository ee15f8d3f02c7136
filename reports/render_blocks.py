"""The digest as Slack Block Kit, within Slack's limits, with a button for each next action.

Pure: a digest in, (fallback text, blocks) out. Slack allows 50 blocks a
message, 3,000 characters a section's text, 10 fields of 2,000 characters, 150
characters a header and 75 a button's label; long lists end with "and N more"
instead of being cut mid-line. Each button's `action_id` is
`digest_<kind>:<n>` (unique in its block) and its value is `model@alias`;
`bot.slack.listeners.digest` answers them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reports.digest import Digest, NextAction
from reports.text import acceptance_change, day, experiment_values, headline_facts, job_text, move_text, pct, usd

Block = dict[str, Any]
MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_FIELD = 2000
MAX_FIELDS = 10
MAX_HEADER = 150
MAX_BUTTON_TEXT = 75
MAX_CONTEXT_ELEMENTS = 10
MAX_FALLBACK = 3000  # the notification text; Slack truncates far later, people read far less
BUTTONS_PER_BLOCK = 5
MAX_LINE = 600  # characters of one listed item (an alert's message can be long)
MORE_ROOM = 40  # kept free in a section for "…and N more"
ACTION_PREFIX = "digest_"
JOB_ICONS = {"succeeded": ":white_check_mark:", "failed": ":x:", "cancelled": ":no_entry_sign:"}
TONE_ICONS = {"good": ":large_green_circle:", "bad": ":red_circle:", "neutral": ""}


def action_id(action: NextAction, number: int) -> str:
    return f"{ACTION_PREFIX}{action.kind}:{number}"


def escape(text: str) -> str:
    """Text safe inside mrkdwn: Slack reads &, < and > as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def digest_blocks(digest: Digest, *, page_url: str | None = None) -> tuple[str, list[Block]]:
    """(fallback text, blocks) of the digest; `page_url` links its HTML page when serve is reachable."""
    week = digest.week
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Weekly digest {week.week}"[:MAX_HEADER]}},
        _context(f"{week.start} to {week.end} ({escape(week.timezone)})" + "".join(f" · {escape(n)}" for n in digest.notes)),
        _fields(headline_facts(digest)),
        {"type": "divider"},
        _section("Acceptance by agent", _agent_lines(digest), empty="No feedback this week."),
    ]  # fmt: skip
    if digest.alerts:
        lines = [f"*{a.severity}* `{escape(a.agent)}` ({a.kind}): {escape(a.message)}" for a in digest.alerts]
        blocks.append(_section(":rotating_light: Open alerts", lines))
    if digest.actions:
        blocks.append(_section("Next actions", [f"{escape(a.label)}: {escape(a.reason)}" for a in digest.actions]))
        blocks += _buttons(digest.actions)
    blocks.append(_section("What users edit most (all feedback so far)", _pattern_lines(digest), empty="None yet."))
    if digest.costs is not None:
        blocks.append(_section("Spend", _cost_lines(digest)))
    jobs = [f"{JOB_ICONS.get(job.status, '')} *{job.status}* {escape(job_text(job))}" for job in digest.jobs]
    blocks.append(_section("Jobs finished", jobs, empty="None."))
    moves = [f"*{m.move}* {escape(move_text(m))} ({day(m.at)})" for m in digest.moves]
    blocks.append(_section("Deployments and rollbacks", moves, empty="None."))
    if digest.experiments:
        lines = [
            f"`{e.id}` {escape(e.title)}: *{e.verdict}*, {escape(experiment_values(e))}" for e in digest.experiments
        ]
        blocks.append(_section("A/B experiments", lines))
    approvals = [
        f"`{a.id}` {escape(a.description)} ({escape(a.requested_by)}" + (f", {a.progress})" if a.progress else ")")
        for a in digest.approvals
    ]
    blocks.append(_section("Pending approvals", approvals, empty="None."))
    footer = "Charts attached below."
    if page_url:
        footer += f" Full page: <{page_url}|{week.week}.html>"
    blocks.append(_context(footer))
    return _fallback(digest), blocks[:MAX_BLOCKS]


def _fallback(digest: Digest) -> str:
    return f"Weekly digest {digest.summary()}"[:MAX_FALLBACK]


def _agent_lines(digest: Digest) -> list[str]:
    lines = []
    for agent in digest.agents:
        change, tone = acceptance_change(agent.change)
        icon = {"good": ":small_green_triangle:", "bad": ":small_red_triangle_down:"}.get(tone, "")
        lines.append(
            f"`{escape(agent.agent)}` *{pct(agent.acceptance)}* {icon} {change.lstrip('▲▼ ')}"
            f" · {agent.events:,} drafts · {pct(agent.unedited_share)} unedited"
        )
    return lines


def _pattern_lines(digest: Digest) -> list[str]:
    return [
        f"`{escape(p.agent)}` users {p.kind} “{escape(p.phrase)}” in {p.frequency:.0%} of edited drafts ({p.category})"
        for p in digest.patterns
    ]


def _cost_lines(digest: Digest) -> list[str]:
    costs = digest.costs
    assert costs is not None
    estimated = " (partly estimated)" if costs.training_estimated else ""
    lines = [
        f"*{usd(costs.total_usd)}*: training {usd(costs.training_usd)}{estimated},"
        f" inference {usd(costs.inference_usd)}; the week before {usd(costs.previous_total_usd)}"
    ]
    lines += [
        f"{row.kind} `{escape(row.model)}`{' ' + escape(row.version) if row.version else ''}: {usd(row.usd)}"
        + (" (est.)" if row.estimated else "")
        for row in costs.rows
    ]
    return lines


def _section(title: str, lines: list[str], *, empty: str | None = None) -> Block:
    """`*title*` and as many whole lines as fit in a section's text, then how many more there are."""
    text = f"*{title}*"
    if not lines:
        text += f"\n{empty or 'None.'}"
    for number, line in enumerate(lines):
        line = line if len(line) <= MAX_LINE else _cut(line, MAX_LINE - 1) + "…"
        if len(text) + 1 + len(line) > MAX_SECTION - MORE_ROOM:
            text += f"\n…and {len(lines) - number} more"
            break
        text += f"\n{line}"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, never inside an escaped character (`&amp;`)."""
    cut = text[:limit]
    ampersand = cut.rfind("&")
    return cut[:ampersand] if ampersand != -1 and ";" not in cut[ampersand:] else cut


def _fields(facts: Sequence[tuple[str, str, str, str]]) -> Block:
    items = [
        {"type": "mrkdwn", "text": f"*{label}*\n{TONE_ICONS.get(tone, '')} *{value}* {change}".replace("\n ", "\n")[:MAX_FIELD]}
        for label, value, change, tone in facts[:MAX_FIELDS]
    ]  # fmt: skip
    return {"type": "section", "fields": items}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:MAX_SECTION]}]}


def _buttons(actions: list[NextAction]) -> list[Block]:
    buttons = [_button(action, number) for number, action in enumerate(actions)]
    return [
        {
            "type": "actions",
            "block_id": f"digest_actions:{start}",
            "elements": buttons[start : start + BUTTONS_PER_BLOCK],
        }
        for start in range(0, len(buttons), BUTTONS_PER_BLOCK)
    ]


def _button(action: NextAction, number: int) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": action.label[:MAX_BUTTON_TEXT]},
        "action_id": action_id(action, number),
        "value": action.value[:2000],
    }
    if action.kind == "rollback":
        button["style"] = "danger"
        button["confirm"] = {
            "title": {"type": "plain_text", "text": "Request the rollback?"},
            "text": {
                "type": "mrkdwn",
                "text": f"Roll back `{escape(action.value)}`: approvers decide where the alias is protected."[:300],
            },
            "confirm": {"type": "plain_text", "text": "Request it"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
    else:
        button["style"] = "primary"
    return button
