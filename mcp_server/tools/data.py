"""Data tools: ingest feedback, build, export and validate dataset versions; the versions' resources."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import ConfigDict, Field

from core.data import (
    DatasetFilters,
    DatasetList,
    DatasetValidation,
    DatasetVersion,
    ExportResult,
    IngestReport,
    datasets,
    exports,
    feedback,
)
from core.platform import Actor
from core.services import Services
from mcp_server.tools import ID_LIMIT, READS, RECORDS, Toolbox, Version, call_core, read_resource

TOOLS = Toolbox()


# What each filter means, for agents reading the schema (core's own descriptions win where it has one).
_FILTER_HELP = {
    "agents": "Keep events from any of these agents.",
    "intents": "Keep events with any of these intents.",
    "templates": "Keep events produced from any of these prompt templates.",
    "models": "Keep events produced by any of these models.",
    "tags": "Keep events carrying any of these tags.",
    "since": "ISO-8601 date or time, inclusive.",
    "until": "ISO-8601 date or time, exclusive.",
    "min_rating": "Minimum rating, 1-5 (thumbs up counts 5, down 1).",
    "min_acceptance": "Minimum share of the AI's draft the user kept, 0-1.",
    "min_quality": "Minimum quality score, 0-1.",
    "edited_only": "Keep only events the user edited (what DPO needs).",
}


def _describe_filters(schema: dict[str, Any]) -> None:
    for name, prop in schema.get("properties", {}).items():
        prop.setdefault("description", _FILTER_HELP.get(name, ""))


class Filters(DatasetFilters):
    """Which stored feedback a version selects; every field is optional and lists match any of their values."""

    model_config = ConfigDict(extra="forbid", title="DatasetFilters", json_schema_extra=_describe_filters)


Target = Annotated[
    exports.Target, Field(description="Export format: openai, openai-dpo, bedrock-nova, bedrock-claude, ...")
]
ModelId = Annotated[
    str | None,
    Field(
        description="Base model whose tokenizer, limits and price apply (default: the target's).", max_length=ID_LIMIT
    ),
]


@TOOLS.tool(title="Ingest feedback", effect=RECORDS)
def ingest_feedback(
    ctx: Context,
    events: Annotated[
        list[dict[str, Any]], Field(description="Feedback events, one object each (fields in the tool description).")
    ],
    field_map: Annotated[
        dict[str, str] | None,
        Field(description='Our field names to yours, e.g. {"output": "model_output"}, when your events use others.'),
    ] = None,
    skip_invalid: Annotated[
        bool, Field(description="Store the valid events and report the invalid ones, instead of rejecting all.")
    ] = False,
) -> IngestReport:
    """Store feedback events about an agent's outputs, in one transaction. Each event: agent, messages (list of
    {role, content}) or prompt, output (the AI draft), and optionally final (the user's edited version), rating
    (1-5, "up" or "down"), intent, system, model, template, latency_ms, cost_usd, user, created_at, tags,
    model_version (name:vN) and arm (stable or canary); other fields are kept as metadata. field_map maps our
    names to yours, e.g. {"output": "model_output"}. A bad event rejects the batch unless skip_invalid.
    Re-sending events changes nothing. PII is redacted."""
    args = {"events": len(events), "field_map": field_map, "skip_invalid": skip_invalid}
    return call_core(ctx, "ingest_feedback", args, lambda svc, actor: feedback.ingest_batch(
        svc.store, events, actor=actor, field_map=field_map, skip_invalid=skip_invalid,
        redact=svc.settings.redact_at_ingest,
    ), batch_item="event")  # fmt: skip


@TOOLS.tool(title="Record outcomes", effect=RECORDS)
def record_outcomes(
    ctx: Context,
    events: Annotated[
        list[dict[str, Any]],
        Field(
            description=f"What became of drafts you served, one object each, at most {feedback.MAX_OUTCOMES}.",
            max_length=feedback.MAX_OUTCOMES,
        ),
    ],
    skip_invalid: Annotated[
        bool, Field(description="Store the valid events and report the invalid ones, instead of rejecting all.")
    ] = False,
) -> IngestReport:
    """Record the outcomes of drafts that a model version served, for per-version and canary analysis. Each
    event is feedback as in ingest_feedback (agent, messages or prompt, output, final, rating, ...) plus
    model_version, the version that produced the draft (name:vN, as resolve_model answered it), and arm (stable
    or canary, as resolve_model answered it). At most 1000 events per call; a bad event rejects the batch unless
    skip_invalid. Re-sending events changes nothing. PII is redacted."""
    args = {"events": len(events), "skip_invalid": skip_invalid}
    return call_core(ctx, "record_outcomes", args, lambda svc, actor: feedback.record_outcomes(
        svc.store, events, actor=actor, source="record_outcomes", skip_invalid=skip_invalid,
        redact=svc.settings.redact_at_ingest,
    ), batch_item="event")  # fmt: skip


@TOOLS.tool(title="List datasets", effect=READS)
def list_datasets(ctx: Context) -> DatasetList:
    """Every dataset with its number of versions and its latest version (name@N) and size."""
    return call_core(ctx, "list_datasets", {}, lambda svc, actor: datasets.list_datasets(svc.store))


@TOOLS.tool(title="Build dataset version", effect=RECORDS)
def build_dataset(
    ctx: Context,
    name: Annotated[
        str, Field(description="Dataset name: lower-case letters, digits, - and _ (e.g. support).", max_length=64)
    ],
    filters: Annotated[Filters | None, Field(description="Which stored feedback to select (default: all).")] = None,
    seed: Annotated[int, Field(description="Seed of the train/validation/test split.")] = 0,
    split: Annotated[
        tuple[float, float, float], Field(description="Train, validation and test shares, e.g. [0.8, 0.1, 0.1].")
    ] = (0.8, 0.1, 0.1),
    dedupe: Annotated[bool, Field(description="Drop exact and near duplicates.")] = True,
) -> DatasetVersion:
    """Build a new immutable version of dataset `name` from stored feedback: filter (agents, intents, templates,
    models, tags, since/until, min_rating, min_acceptance, min_quality, edited_only), drop exact and near
    duplicates, split train/validation/test by agent with `seed`. The same recipe over the same data returns the
    existing version (reused=true)."""

    def build(svc: Services, actor: Actor) -> DatasetVersion:
        chosen = DatasetFilters.model_validate(filters.model_dump()) if filters else DatasetFilters()
        recipe = datasets.recipe_from(filters=chosen, seed=seed, split=split, dedupe=dedupe)
        return datasets.build_dataset(svc.store, name=name, actor=actor, recipe=recipe)

    return call_core(ctx, "build_dataset", {"name": name}, build)


@TOOLS.tool(title="Export dataset version", effect=RECORDS)
def export_dataset(
    ctx: Context,
    version: Version,
    target: Target,
    model: ModelId = None,
    epochs: Annotated[int | None, Field(description="Epochs for the cost estimate (default 1).", ge=1)] = None,
) -> ExportResult:
    """Write a dataset version (name@N, or name for the latest) in a provider's format: openai (chat SFT),
    openai-dpo, bedrock-nova, bedrock-claude, bedrock-llama or hf-chat (local LoRA). Returns the file paths,
    rows per split, token stats, a cost estimate for `model` over `epochs` and the redaction report."""
    args = {"version": version, "target": target, "model": model}
    return call_core(ctx, "export_dataset", args, lambda svc, actor: exports.export_dataset(
        svc.store, version=version, target=target, model=model, epochs=epochs, actor=actor, data_dir=svc.data_dir,
        catalog=svc.catalog,
    ))  # fmt: skip


@TOOLS.tool(title="Validate dataset version", effect=RECORDS)
def validate_dataset(ctx: Context, version: Version, target: Target, model: ModelId = None) -> DatasetValidation:
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
