"""Data commands: list and show dataset versions, validate exports; in a terminal, ingest, build, export, diff.

Commands that read or write files on this machine (ingest, export, validate FILE)
are terminal-only: a Slack user must not make the server read its files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bot.commands import CONTEXT, Invocation, json_option
from core.data import (
    DatasetList,
    DatasetValidation,
    DatasetVersion,
    ExportResult,
    IngestReport,
    ValidationReport,
    VersionDiff,
    datasets,
    exports,
    feedback,
)
from core.vocabulary import ExportTarget, values


def _split_list(given: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in given for part in value.split(",") if part.strip()]


def _split_ratio(text: str | None) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not three numbers, e.g. 0.8,0.1,0.1", param_hint="'--split'") from None
    if len(parts) != 3:
        raise click.BadParameter("give train,validation,test shares, e.g. 0.8,0.1,0.1", param_hint="'--split'")
    return parts


TARGET = click.Choice(values(ExportTarget))


# Shared with Slack ------------------------------------------------------------------------------


@click.command("datasets", context_settings=CONTEXT, short_help="List datasets and their latest versions.")
@json_option
@click.pass_obj
def datasets_command(inv: Invocation) -> DatasetList:
    """List every dataset with its number of versions and its latest version's size."""
    return datasets.list_datasets(inv.store)


@click.command("dataset", context_settings=CONTEXT, short_help="Show a dataset version: recipe, counts, stats.")
@click.argument("version")
@json_option
@click.pass_obj
def dataset_command(inv: Invocation, version: str) -> DatasetVersion:
    """Show VERSION (`name@N`, or `name` for its latest): recipe, counts per split and agent, stats, redactions."""
    return datasets.get_version(inv.store, version)


@click.command("validate", context_settings=CONTEXT, short_help="Validate a dataset version's export for a target.")
@click.argument("version")
@click.argument("target", type=TARGET)
@click.option("--model", help="Base model whose limits apply (default: the target's default model).")
@json_option
@click.pass_obj
def validate_command(inv: Invocation, version: str, target: str, model: str | None) -> DatasetValidation:
    """Export VERSION for TARGET if needed, then check every line against the provider's rules."""
    return exports.validate_dataset(
        inv.store, version=version, target=target, model=model, actor=inv.actor, data_dir=inv.settings.data_dir,
        catalog=inv.services.catalog,
    )  # fmt: skip


SHARED: tuple[click.Command, ...] = (datasets_command, dataset_command, validate_command)


# Terminal only -----------------------------------------------------------------------------------


@click.group("data", context_settings=CONTEXT, short_help="Ingest feedback; build, export and validate datasets.")
def data_group() -> None:
    """Feedback files in, validated provider files out."""


@data_group.command("ingest", context_settings=CONTEXT, short_help="Ingest feedback events from JSONL or CSV.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), help="Default: from the file's extension.")
@click.option("--map", "field_map", help="Read the file's own field names: OURS=THEIRS,... e.g. output=model_output.")
@click.option("--skip-invalid", is_flag=True, help="Store the valid events and report the invalid ones.")
@click.option("--no-redact", is_flag=True, help="Keep PII at ingest (exports are redacted regardless).")
@json_option
@click.pass_obj
def ingest_command(
    inv: Invocation, file: Path, fmt: str | None, field_map: str | None, skip_invalid: bool, no_redact: bool
) -> IngestReport:
    """Ingest FILE in one transaction: a bad line rejects the whole file (unless --skip-invalid)."""
    with inv.progress(f"Ingesting {file.name}") as progress:
        return feedback.ingest_file(
            inv.store, file, actor=inv.actor, fmt=fmt, field_map=feedback.parse_field_map(field_map),
            skip_invalid=skip_invalid, redact=inv.settings.redact_at_ingest and not no_redact, on_progress=progress,
        )  # fmt: skip


data_group.add_command(datasets_command, "list")
data_group.add_command(dataset_command, "show")


@data_group.command("build", context_settings=CONTEXT, short_help="Build a new immutable dataset version.")
@click.argument("name")
@click.option("--agent", "agents", multiple=True, help="Only these agents (repeat or comma-separate).")
@click.option("--intent", "intents", multiple=True, help="Only these intents.")
@click.option("--template", "templates", multiple=True, help="Only these prompt templates.")
@click.option("--model", "models", multiple=True, help="Only events produced by these models.")
@click.option("--tag", "tags", multiple=True, help="Only events with any of these tags.")
@click.option("--since", help="From this ISO date/time (inclusive).")
@click.option("--until", help="Before this ISO date/time (exclusive).")
@click.option("--min-rating", type=click.FloatRange(1, 5), help="Minimum rating, 1-5 (thumbs up = 5, down = 1).")
@click.option("--min-acceptance", type=click.FloatRange(0, 1), help="Minimum share of the draft the user kept, 0-1.")
@click.option(
    "--min-quality", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Minimum quality score, 0-1."
)
@click.option("--edited-only", is_flag=True, help="Only events the user edited (what DPO needs).")
@click.option(
    "--edit-phrase", "edit_phrases", multiple=True, metavar="PHRASE",
    help="Only edited events whose edits deleted or added this phrase (repeatable; `analytics patterns` lists them).",
)  # fmt: skip
@click.option(
    "--include-rejected",
    is_flag=True,
    help="Keep drafts rated 2 or lower (or thumbs down) that the user left unedited.",
)
@click.option(
    "--seed", type=click.IntRange(0, datasets.MAX_SEED), default=0, show_default=True,
    help="Seed of the train/validation/test split.",
)  # fmt: skip
@click.option("--split", "split", help="Train,validation,test shares. [default: 0.8,0.1,0.1]")
@click.option("--no-dedupe", is_flag=True, help="Keep exact and near duplicates.")
@json_option
@click.pass_obj
def build_command(inv: Invocation, name: str, **options: Any) -> DatasetVersion:
    """Select feedback with the filters, drop duplicates, score, split by agent, and record a version."""
    lists = {name: _split_list(options[name]) for name in ("agents", "intents", "templates", "models", "tags")}
    given = ("since", "until", "min_rating", "min_acceptance", "min_quality", "edited_only", "include_rejected")
    filters = {**lists, **{name: options[name] for name in given}, "edit_phrases": list(options["edit_phrases"])}
    recipe = datasets.recipe_from(
        filters=filters, seed=options["seed"], split=_split_ratio(options["split"]), dedupe=not options["no_dedupe"]
    )
    with inv.progress(f"Building {name}") as progress:
        return datasets.build_dataset(inv.store, name=name, actor=inv.actor, recipe=recipe, on_progress=progress)


@data_group.command("export", context_settings=CONTEXT, short_help="Export a version for a provider target.")
@click.argument("version")
@click.option("--target", type=TARGET, required=True, help="Provider format.")
@click.option("--model", help="Base model for token counts, limits and price (default: the target's default).")
@click.option("--epochs", type=click.IntRange(1, exports.MAX_EPOCHS), help="Epochs for the cost estimate (default 1).")
@json_option
@click.pass_obj
def export_command(inv: Invocation, version: str, target: str, model: str | None, epochs: int | None) -> ExportResult:
    """Write VERSION's splits for TARGET (always redacted) with metadata.json: counts, tokens, cost, redactions."""
    with inv.progress(f"Exporting {version} for {target}") as progress:
        return exports.export_dataset(
            inv.store, version=version, target=target, model=model, epochs=epochs, actor=inv.actor,
            data_dir=inv.settings.data_dir, catalog=inv.services.catalog, on_progress=progress,
        )  # fmt: skip


@data_group.command("validate", context_settings=CONTEXT, short_help="Validate any JSONL file against a target.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target", type=TARGET, required=True, help="Provider format to check against.")
@click.option("--model", help="Base model whose tokenizer and limits apply (default: the target's default model).")
@json_option
@click.pass_obj
def validate_file_command(inv: Invocation, file: Path, target: str, model: str | None) -> ValidationReport:
    """Check every line of FILE (in the store or not); exits 1 when there are errors."""
    return exports.validate_any_file(file, target=target, model=model, catalog=inv.services.catalog)


@data_group.command("diff", context_settings=CONTEXT, short_help="Compare two dataset versions.")
@click.argument("a")
@click.argument("b")
@json_option
@click.pass_obj
def diff_command(inv: Invocation, a: str, b: str) -> VersionDiff:
    """What changed from version A to version B: examples added, removed, moved between splits; recipe and counts."""
    return datasets.diff_versions(inv.store, a, b)


TERMINAL: tuple[click.Command, ...] = (data_group,)
