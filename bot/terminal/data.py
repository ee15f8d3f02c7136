"""Data results on a terminal: ingest reports, datasets and versions, exports, validation, diffs."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from bot.terminal.output import render
from core.data import (
    DatasetList,
    DatasetValidation,
    DatasetVersion,
    ExportResult,
    IngestReport,
    ValidationReport,
    VersionDiff,
)


def _redactions(by_type: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(by_type.items())) or "none"


@render.register
def _(result: IngestReport, console: Console) -> None:
    console.print(
        f"{result.source}: {result.lines} events read, [bold]{result.ingested} new[/bold], "
        f"{result.duplicates} already stored, {result.skipped} skipped.",
        highlight=False,
    )
    console.print(f"Redacted: {_redactions(result.redactions.by_type)}", highlight=False)
    for error in result.errors[:20]:
        where = f"line {error.line}" + (f", {error.field}" if error.field else "")
        console.print(f"  [yellow]skipped[/yellow] {where}: {error.message} {error.hint}", highlight=False)
    if result.error_count > 20:
        console.print(f"  … and {result.error_count - 20} more (use --json for all).")


@render.register
def _(result: DatasetList, console: Console) -> None:
    if not result.datasets:
        console.print("No datasets yet. Build one: finetune data build NAME")
        return
    table = Table(title="Datasets", title_justify="left")
    for column in ("name", "versions", "latest", "examples", "created (UTC)"):
        table.add_column(column)
    for d in result.datasets:
        table.add_row(d.name, str(d.versions), d.latest or "-", str(d.latest_examples), d.created_at[:19])
    console.print(table)


@render.register
def _(result: DatasetVersion, console: Console) -> None:
    note = " (an identical version already existed: nothing new was written)" if result.reused else ""
    console.print(f"[bold]{result.id}[/bold]{note}", highlight=False)
    counts = result.counts
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "Examples",
        f"{counts.get('examples')} (" + ", ".join(f"{s} {n}" for s, n in counts.get("splits", {}).items()) + ")",
    )
    table.add_row("Candidates", str(counts.get("candidates")))
    table.add_row("Dropped", f"exact duplicates {counts.get('exact_duplicates')}, near duplicates {counts.get('near_duplicates')}, "
                  f"length {counts.get('length')}, low quality {counts.get('low_quality')}")  # fmt: skip
    table.add_row("By agent", ", ".join(f"{a} {sum(v.values())}" for a, v in counts.get("by_agent", {}).items()))
    table.add_row("Stats", ", ".join(f"{k} {v}" for k, v in result.stats.items()))
    table.add_row("Redactions", _redactions(result.redaction_report.by_type))
    filters = {k: v for k, v in result.recipe.filters.model_dump().items() if v not in (None, [], False, 0.0)}
    table.add_row("Recipe", f"filters {filters or 'none'}, seed {result.recipe.seed}, split {result.recipe.split}, "
                  f"dedupe {result.recipe.dedupe}")  # fmt: skip
    table.add_row("Content hash", result.content_hash[:16])
    table.add_row("Created", f"{result.created_at[:19]} by {result.created_by}")
    console.print(table)


@render.register
def _(result: ExportResult, console: Console) -> None:
    console.print(
        f"Exported [bold]{result.version}[/bold] for {result.target} ({result.model}) to {result.directory}",
        highlight=False,
    )
    console.print(
        "  "
        + ", ".join(f"{split} {n}" for split, n in result.counts.items())
        + (f"; {result.skipped} not applicable" if result.skipped else "")
    )
    stats = result.token_stats
    kind = "exact" if stats.exact else "estimated"
    console.print(f"  tokens ({kind}): total {stats.total}, mean {stats.mean:.0f}, p95 {stats.p95}, max {stats.max}")
    if result.cost is not None and result.cost.usd is not None:
        console.print(
            f"  cost estimate: ${result.cost.usd:,.2f} ({result.cost.billed_tokens:,} billed tokens, prices as of {result.cost.price_as_of})"
        )
    console.print(f"  redacted on export: {_redactions(result.redactions.by_type)}")


@render.register
def _(result: ValidationReport, console: Console) -> None:
    verdict = "[green]valid[/green]" if result.ok else f"[red]{result.error_count} error(s)[/red]"
    console.print(f"{result.source} against {result.target}: {result.examples} examples, {verdict}", highlight=False)
    for kind, n in sorted(result.errors_by_kind.items(), key=lambda kv: -kv[1]):
        console.print(f"  {kind}: {n}")
    for issue in result.errors[:50]:
        where = f"line {issue.line}" if issue.line else "dataset"
        console.print(f"  {where}: [{issue.kind}] {issue.message} Fix: {issue.hint}", highlight=False)
    if result.error_count > 50:
        console.print(f"  … {result.error_count - 50} more (use --json for all kept errors).")
    if result.token_stats:
        s = result.token_stats
        console.print(
            f"  tokens ({'exact' if s.exact else 'estimated'}): total {s.total}, mean {s.mean:.0f}, max {s.max}"
        )


@render.register
def _(result: DatasetValidation, console: Console) -> None:
    console.print(
        f"[bold]{result.version}[/bold] for {result.target} ({result.model}): {'valid' if result.ok else 'INVALID'}"
    )
    for split, report in result.reports.items():
        console.print(f"[bold]{split}[/bold]:", highlight=False)
        render(report, console)


@render.register
def _(result: VersionDiff, console: Console) -> None:
    console.print(
        f"{result.a} → {result.b}: +{result.added} −{result.removed}, {result.kept} kept, {result.moved_split} moved split"
    )
    for key, (before, after) in {**result.recipe_changes, **result.count_changes}.items():
        console.print(f"  {key}: {before} → {after}", highlight=False)
    if result.sample_added:
        console.print(f"  e.g. added: {', '.join(result.sample_added)}")
    if result.sample_removed:
        console.print(f"  e.g. removed: {', '.join(result.sample_removed)}")
