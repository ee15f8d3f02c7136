"""Results rendered for a terminal with rich. Pure presentation: no core calls."""

from __future__ import annotations

import contextlib
import functools
import json

from pydantic import BaseModel
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot.grammar import AuditList, ErrorResult, HelpResult, Message, Outcome, UsageProblem
from core.platform.config_report import ConfigReport
from core.platform.notifications import Notice
from core.platform.status import StatusReport


def progress_bar(console: Console):
    """A progress factory for long commands: a live counter on stderr when it is a terminal."""

    @contextlib.contextmanager
    def progress(description: str):
        if not console.is_terminal:
            yield lambda done: None
            return
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,} done"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(description, total=None)
            yield lambda done: bar.update(task, completed=done)

    return progress


def emit(outcome: Outcome, console: Console, err_console: Console) -> None:
    result = outcome.result
    if outcome.as_json:
        console.print_json(result.model_dump_json())
        return
    render(result, err_console if isinstance(result, (UsageProblem, ErrorResult)) else console)


@functools.singledispatch
def render(result: BaseModel, console: Console) -> None:
    console.print_json(result.model_dump_json())


@render.register
def _(result: StatusReport, console: Console) -> None:
    table = Table(title="finetune-ops status", show_header=False, title_justify="left")
    table.add_column("fact", style="bold")
    table.add_column("value")
    table.add_row("Feedback events", str(result.feedback_events))
    table.add_row("Datasets", f"{result.datasets} ({result.dataset_versions} versions)")
    jobs = ", ".join(f"{state} {n}" for state, n in result.jobs_by_state.items() if n) or "none"
    table.add_row("Jobs", jobs)
    models = ", ".join(f"{alias} → {version}" for alias, version in result.models_by_alias.items()) or "none"
    table.add_row("Models", models)
    table.add_row("Pending approvals", str(result.pending_approvals))
    table.add_row("Undelivered notifications", str(result.outbox_pending))
    table.add_row("Scheduler heartbeat", result.scheduler_heartbeat or "never (is `finetune serve` running?)")
    console.print(table)


@render.register
def _(result: HelpResult, console: Console) -> None:
    if result.topic:
        entry = result.commands[0]
        console.print(f"[bold]Usage:[/bold] {entry.usage}\n")
        console.print(entry.description or entry.summary)
        return
    console.print(f"[bold]Usage:[/bold] {result.prog} COMMAND [ARGS]...\n")
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column("command", style="bold cyan")
    table.add_column("what it does")
    for entry in result.commands:
        table.add_row(entry.name, entry.summary)
    console.print(table)
    console.print(f"\n`{result.prog} help COMMAND` shows how to use one.")


@render.register
def _(result: UsageProblem, console: Console) -> None:
    console.print(f"[red]Error:[/red] {result.message}", highlight=False, soft_wrap=True)
    if result.usage:
        console.print(f"Usage: {result.usage}", highlight=False, soft_wrap=True)
    console.print(f"Run `{result.prog} help` to list commands.", highlight=False)


@render.register
def _(result: ErrorResult, console: Console) -> None:
    console.print(f"[red]Error:[/red] {result.message}", highlight=False, soft_wrap=True)
    if result.hint:
        console.print(f"Fix: {result.hint}", highlight=False, soft_wrap=True)


@render.register
def _(result: Notice, console: Console) -> None:
    where = result.channel or "the default channel"
    console.print(f"Queued notice #{result.outbox_id} for {where}; `finetune serve` delivers it.")


@render.register
def _(result: AuditList, console: Console) -> None:
    table = Table(title="Audit log (newest first)", title_justify="left")
    for column in ("at (UTC)", "actor", "face", "command", "args", "outcome"):
        table.add_column(column)
    for e in result.entries:
        table.add_row(e.at, e.actor, e.face, e.command, json.dumps(e.args)[:60], e.outcome)
    console.print(table)


@render.register
def _(result: ConfigReport, console: Console) -> None:
    table = Table(title="Settings (environment or .env)", title_justify="left")
    for column in ("variable", "value", "meaning"):
        table.add_column(column)
    for e in result.entries:
        table.add_row(e.env, "[dim]unset[/dim]" if e.value is None else e.value, e.description)
    console.print(table)


@render.register
def _(result: Message, console: Console) -> None:
    console.print(result.text, highlight=False)


# Data ---------------------------------------------------------------------------------------------

from core.data.datasets import DatasetList, DatasetVersion, VersionDiff  # noqa: E402
from core.data.exports import DatasetValidation, ExportResult  # noqa: E402
from core.data.feedback import IngestReport  # noqa: E402
from core.data.validation import ValidationReport  # noqa: E402


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


# Jobs and approvals ---------------------------------------------------------------------------------

from core.platform.approvals import Approval, ApprovalList  # noqa: E402
from core.training.jobs import Job, JobDetail, JobEvents, JobList, LaunchResult  # noqa: E402


def _job_line(job: Job) -> str:
    cost = f"${job.estimated_cost_usd:,.2f}" if job.estimated_cost_usd is not None else "cost unknown"
    return f"{job.id}  {job.status}  {job.base_model} on {job.dataset_version} via {job.provider}  ({cost})"


@render.register
def _(result: Job, console: Console) -> None:
    console.print(f"[bold]{_job_line(result)}[/bold]", highlight=False)
    for label, value in (("provider job", result.provider_job_id), ("provider status", result.provider_status),
                         ("detail", result.status_detail), ("model", result.model_id), ("error", result.error),
                         ("approval", result.approval_id), ("hyperparameters", result.hyperparameters),
                         ("requested", f"{result.created_at[:19]} by {result.requested_by}"),
                         ("finished", result.finished_at)):  # fmt: skip
        if value:
            console.print(f"  {label}: {value}", highlight=False)


@render.register
def _(result: LaunchResult, console: Console) -> None:
    if not result.created:
        console.print("This key already launched a job; nothing new was started.")
    render(result.job, console)
    if result.approval is not None:
        console.print(
            f"Waiting for approval {result.approval.id}: an approver runs `finetune approve {result.approval.id}`."
        )


@render.register
def _(result: JobList, console: Console) -> None:
    if not result.jobs:
        console.print("No jobs yet. Launch one: finetune jobs launch VERSION --provider P --base-model M")
    for job in result.jobs:
        console.print(_job_line(job), highlight=False)


@render.register
def _(result: JobEvents, console: Console) -> None:
    for event in result.events:
        metrics = ", ".join(f"{k} {v:g}" for k, v in (event.metrics or {}).items())
        step = f"step {event.step} " if event.step is not None else ""
        console.print(f"{event.at[:19]}  {event.kind:<8} {step}{event.message or ''}{metrics}", highlight=False)


@render.register
def _(result: ApprovalList, console: Console) -> None:
    if not result.approvals:
        console.print("No approvals waiting.")
    for a in result.approvals:
        cost = f"${a.estimated_cost_usd:,.2f}" if a.estimated_cost_usd is not None else "cost unknown"
        console.print(
            f"{a.id}  {a.action} {a.subject_id}  {cost}  by {a.requested_via}:{a.requested_by}  expires {a.expires_at[:19]}",
            highlight=False,
        )


@render.register
def _(result: Approval, console: Console) -> None:
    console.print(
        f"{result.id}: {result.status} by {result.decided_by}" + (f" ({result.reason})" if result.reason else ""),
        highlight=False,
    )


@render.register
def _(result: JobDetail, console: Console) -> None:
    render(result.job, console)
    for name, points in result.events.loss_series().items():
        tail = ", ".join(f"{step}: {value:.3f}" for step, value in points[-5:])
        console.print(f"  {name} (last steps): {tail}", highlight=False)
