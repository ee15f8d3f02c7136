"""Data results in Slack: datasets, a version, a version's validation."""

from __future__ import annotations

from bot.slack.blocks.kit import SlackMessage, context, fields, header, render, section
from core.data import DatasetList, DatasetValidation, DatasetVersion


@render.register
def _(result: DatasetList) -> SlackMessage:
    if not result.datasets:
        return SlackMessage(
            "No datasets yet.", [section("No datasets yet. Build one from a terminal: `finetune data build NAME`.")]
        )
    lines = [
        f"*{d.name}*: latest `{d.latest}` ({d.latest_examples} examples), {d.versions} version(s)"
        for d in result.datasets
    ]
    return SlackMessage(f"{len(result.datasets)} dataset(s)", [header("Datasets"), section("\n".join(lines))])


@render.register
def _(result: DatasetVersion) -> SlackMessage:
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
    return SlackMessage(
        text,
        [
            header(f"Dataset {result.id}"),
            *fields(facts),
            context(f"Built {result.created_at[:19]} UTC by {result.created_by} · hash `{result.content_hash[:12]}`"),
        ],
    )


@render.register
def _(result: DatasetValidation) -> SlackMessage:
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
    return SlackMessage(
        text,
        [
            section(f"{icon} *{result.version}* for `{result.target}` ({result.model})"),
            section("\n".join(lines)),
        ],
    )
