"""Data tools: ingest feedback, build, export and validate dataset versions; the versions' resources."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context

from core.data import (
    DatasetFilters,
    DatasetList,
    DatasetValidation,
    DatasetVersion,
    ExportResult,
    IngestReport,
    Recipe,
    datasets,
    exports,
    feedback,
)
from core.platform import Actor
from core.services import Services
from mcp_server.tools import Toolbox, call_core, read_resource

TOOLS = Toolbox()


@TOOLS.tool(title="Ingest feedback")
def ingest_feedback(
    ctx: Context,
    events: list[dict[str, Any]],
    field_map: dict[str, str] | None = None,
    skip_invalid: bool = False,
) -> IngestReport:
    """Store feedback events about an agent's outputs, in one transaction. Each event: agent, messages (list of
    {role, content}) or prompt, output (the AI draft), and optionally final (the user's edited version), rating
    (1-5, "up" or "down"), intent, system, model, template, latency_ms, cost_usd, user, created_at, tags; other
    fields are kept as metadata. field_map maps our names to yours, e.g. {"output": "model_output"}. A bad event
    rejects the batch unless skip_invalid. Re-sending events changes nothing. PII is redacted."""
    args = {"events": len(events), "field_map": field_map, "skip_invalid": skip_invalid}
    return call_core(ctx, "ingest_feedback", args, lambda svc, actor: feedback.ingest_batch(
        svc.store, events, actor=actor, field_map=field_map, skip_invalid=skip_invalid,
        redact=svc.settings.redact_at_ingest,
    ))  # fmt: skip


@TOOLS.tool(title="List datasets")
def list_datasets(ctx: Context) -> DatasetList:
    """Every dataset with its number of versions and its latest version (name@N) and size."""
    return call_core(ctx, "list_datasets", {}, lambda svc, actor: datasets.list_datasets(svc.store))


@TOOLS.tool(title="Build dataset version")
def build_dataset(
    ctx: Context,
    name: str,
    filters: DatasetFilters | None = None,
    seed: int = 0,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    dedupe: bool = True,
) -> DatasetVersion:
    """Build a new immutable version of dataset `name` from stored feedback: filter (agents, intents, templates,
    models, tags, since/until, min_rating, min_acceptance, min_quality, edited_only), drop exact and near
    duplicates, split train/validation/test by agent with `seed`. The same recipe over the same data returns the
    existing version (reused=true)."""

    def build(svc: Services, actor: Actor) -> DatasetVersion:
        recipe = Recipe(filters=filters or DatasetFilters(), seed=seed, split=split, dedupe=dedupe)
        return datasets.build_dataset(svc.store, name=name, actor=actor, recipe=recipe)

    return call_core(ctx, "build_dataset", {"name": name}, build)


@TOOLS.tool(title="Export dataset version")
def export_dataset(
    ctx: Context, version: str, target: exports.Target, model: str | None = None, epochs: int | None = None
) -> ExportResult:
    """Write a dataset version (name@N, or name for the latest) in a provider's format: openai (chat SFT),
    openai-dpo, bedrock-nova, bedrock-claude, bedrock-llama or hf-chat (local LoRA). Returns the file paths,
    rows per split, token stats, a cost estimate for `model` over `epochs` and the redaction report."""
    args = {"version": version, "target": target, "model": model}
    return call_core(ctx, "export_dataset", args, lambda svc, actor: exports.export_dataset(
        svc.store, version=version, target=target, model=model, epochs=epochs, actor=actor, data_dir=svc.data_dir,
        catalog=svc.catalog,
    ))  # fmt: skip


@TOOLS.tool(title="Validate dataset version")
def validate_dataset(ctx: Context, version: str, target: exports.Target, model: str | None = None) -> DatasetValidation:
    """Check a dataset version's export for a target against every rule the provider documents (exporting it
    first if needed). Returns per-split reports: errors with line numbers, kinds and fixes, and token stats."""
    args = {"version": version, "target": target, "model": model}
    return call_core(ctx, "validate_dataset", args, lambda svc, actor: exports.validate_dataset(
        svc.store, version=version, target=target, model=model, actor=actor, data_dir=svc.data_dir,
        catalog=svc.catalog,
    ))  # fmt: skip


@TOOLS.resource("finetune://datasets/{version}/stats", name="dataset-version-stats", mime_type="application/json")
def version_stats(ctx: Context, version: str) -> str:
    """A dataset version's recipe, counts per split and agent, stats and redaction report."""
    return read_resource(ctx, lambda svc: datasets.get_version(svc.store, version).model_dump_json(indent=2))


@TOOLS.resource(
    "finetune://datasets/{version}/validation/{target}", name="dataset-validation-report", mime_type="application/json"
)
def validation_report(ctx: Context, version: str, target: str) -> str:
    """The stored validation report of a dataset version's export for a target."""
    return read_resource(
        ctx,
        lambda svc: exports.stored_validation(svc.store, version=version, target=target).model_dump_json(indent=2),
    )
