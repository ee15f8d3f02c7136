"""The MCP server: one typed tool per core operation, for AI agents.

Each tool's docstring is its description and its return annotation its output
schema. Tools are thin: identify the caller, call one core function, return its
typed result. Errors an agent should read become `ToolError` with the core
error's message and fix; every call is audited with the client's name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError

from core import __version__
from core.catalog.models import load_catalog
from core.catalog.pricing import CostEstimate
from core.data import datasets, exports, feedback
from core.data.datasets import DatasetFilters, DatasetList, DatasetVersion, Recipe
from core.data.exports import DatasetValidation, ExportResult
from core.data.feedback import IngestReport
from core.errors import FinetuneError
from core.platform import audit, status
from core.platform.actors import Actor
from core.platform.settings import Settings
from core.platform.status import StatusReport
from core.platform.store import Store
from core.services import Services, build_services
from core.training import jobs, planning
from core.training.hyperparams import HyperparameterSuggestion
from core.training.jobs import Job, JobEvents, JobList, LaunchResult

log = logging.getLogger(__name__)

T = TypeVar("T")

INSTRUCTIONS = """finetune-ops turns feedback on what AI agents write into fine-tuned models, with humans approving
costly steps in Slack. Start with get_status to see feedback, datasets, jobs, models and pending approvals."""


def client_actor(ctx: Context | None) -> Actor:
    """The MCP client, named by what it declared at initialize (e.g. 'claude-desktop')."""
    name = None
    if ctx is not None:
        params = ctx.session.client_params
        if params is not None and params.client_info is not None:
            name = params.client_info.name
    return Actor(id=name or "anonymous-client", face="mcp")


def call_core(store: Store, ctx: Context | None, tool: str, args: dict[str, Any], fn: Callable[[Actor], T]) -> T:
    """Run one core call as the calling client: audit it and turn core errors into tool errors."""
    actor = client_actor(ctx)
    try:
        result = fn(actor)
    except FinetuneError as exc:
        audit.record(store, actor, tool, args, outcome="error", detail=exc.message)
        raise ToolError(str(exc)) from exc
    except Exception as exc:
        log.exception("MCP tool %s failed (request %s)", tool, actor.request_id)
        audit.record(store, actor, tool, args, outcome="error", detail=f"internal error {actor.request_id[:12]}")
        raise ToolError(
            f"Internal error in finetune-ops (reference {actor.request_id[:12]}); the server log has details."
        ) from exc
    if not audit.recorded(store, actor):
        audit.record(store, actor, tool, args)
    return result


def tool(server: MCPServer, *, title: str):
    """Register a tool named after its function, its docstring (whitespace folded) as the description."""

    def register(fn):
        server.add_tool(fn, name=fn.__name__, title=title, description=" ".join((fn.__doc__ or "").split()))
        return fn

    return register


def build_server(settings: Settings, store: Store) -> MCPServer:
    server = MCPServer(
        "finetune-ops",
        title="finetune-ops",
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level=settings.log_level.upper() if settings.log_level.upper() in _LEVELS else "INFO",
    )

    @tool(server, title="Status")
    def get_status(ctx: Context) -> StatusReport:
        """Where everything stands: feedback events, datasets and versions, fine-tuning jobs per state,
        models per alias, pending approvals, undelivered notifications and the scheduler's last heartbeat."""
        return call_core(store, ctx, "get_status", {}, lambda actor: status.get_status(store))

    register_data_tools(server, settings, store)
    register_job_tools(server, build_services(settings, store=store))
    return server


def register_data_tools(server: MCPServer, settings: Settings, store: Store) -> None:
    data_dir = settings.data_dir

    def catalog():
        return load_catalog(settings.catalog_file)

    @tool(server, title="Ingest feedback")
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
        return call_core(
            store,
            ctx,
            "ingest_feedback",
            args,
            lambda actor: feedback.ingest_batch(
                store,
                events,
                actor=actor,
                field_map=field_map,
                skip_invalid=skip_invalid,
                redact=settings.redact_at_ingest,
            ),
        )

    @tool(server, title="List datasets")
    def list_datasets(ctx: Context) -> DatasetList:
        """Every dataset with its number of versions and its latest version (name@N) and size."""
        return call_core(store, ctx, "list_datasets", {}, lambda actor: datasets.list_datasets(store))

    @tool(server, title="Build dataset version")
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

        def build(actor: Actor):
            recipe = Recipe(filters=filters or DatasetFilters(), seed=seed, split=split, dedupe=dedupe)
            return datasets.build_dataset(store, name=name, actor=actor, recipe=recipe)

        return call_core(store, ctx, "build_dataset", {"name": name}, build)

    @tool(server, title="Export dataset version")
    def export_dataset(
        ctx: Context, version: str, target: exports.Target, model: str | None = None, epochs: int | None = None
    ) -> ExportResult:
        """Write a dataset version (name@N, or name for the latest) in a provider's format: openai (chat SFT),
        openai-dpo, bedrock-nova, bedrock-claude, bedrock-llama or hf-chat (local LoRA). Returns the file paths,
        rows per split, token stats, a cost estimate for `model` over `epochs` and the redaction report."""
        return call_core(store, ctx, "export_dataset", {"version": version, "target": target, "model": model},
                         lambda actor: exports.export_dataset(store, version=version, target=target, model=model,
                                                              epochs=epochs, actor=actor, data_dir=data_dir,
                                                              catalog=catalog()))  # fmt: skip

    @tool(server, title="Validate dataset version")
    def validate_dataset(
        ctx: Context, version: str, target: exports.Target, model: str | None = None
    ) -> DatasetValidation:
        """Check a dataset version's export for a target against every rule the provider documents (exporting it
        first if needed). Returns per-split reports: errors with line numbers, kinds and fixes, and token stats."""
        return call_core(store, ctx, "validate_dataset", {"version": version, "target": target, "model": model},
                         lambda actor: exports.validate_dataset(store, version=version, target=target, model=model,
                                                                actor=actor, data_dir=data_dir, catalog=catalog()))  # fmt: skip

    @tool(server, title="Estimate training cost")
    def estimate_cost(
        ctx: Context, version: str, base_model: str, epochs: int | None = None, method: str = "supervised"
    ) -> CostEstimate:
        """Estimate what fine-tuning `base_model` on a dataset version costs: billed tokens (training tokens x
        epochs; epochs default to the suggested number) times the catalog's dated price."""
        return call_core(store, ctx, "estimate_cost", {"version": version, "base_model": base_model, "epochs": epochs},
                         lambda actor: planning.estimate_version_cost(store, version=version, base_model=base_model,
                                                                      epochs=epochs, method=method, actor=actor,
                                                                      data_dir=data_dir, catalog=catalog()))  # fmt: skip

    @tool(server, title="Suggest hyperparameters")
    def suggest_hyperparameters(
        ctx: Context, version: str, base_model: str, method: str = "supervised"
    ) -> HyperparameterSuggestion:
        """Suggest epochs, batch size, learning rate and warm-up for training `base_model` on a dataset version, from
        its size and token stats, within the provider's documented ranges, with one reason per choice."""
        return call_core(store, ctx, "suggest_hyperparameters", {"version": version, "base_model": base_model},
                         lambda actor: planning.suggest_for_version(store, version=version, base_model=base_model,
                                                                    method=method, actor=actor, data_dir=data_dir,
                                                                    catalog=catalog()))  # fmt: skip

    @server.resource("finetune://datasets/{version}/stats", name="dataset-version-stats", mime_type="application/json")
    def version_stats(version: str) -> str:
        """A dataset version's recipe, counts per split and agent, stats and redaction report."""
        return _resource(lambda: datasets.get_version(store, version).model_dump_json(indent=2))

    @server.resource(
        "finetune://datasets/{version}/validation/{target}",
        name="dataset-validation-report",
        mime_type="application/json",
    )
    def validation_report(version: str, target: str) -> str:
        """The stored validation report of a dataset version's export for a target."""
        return _resource(
            lambda: exports.stored_validation(store, version=version, target=target).model_dump_json(indent=2)
        )


def register_job_tools(server: MCPServer, svc: Services) -> None:
    store = svc.store

    @tool(server, title="Launch fine-tuning job")
    def launch_job(
        ctx: Context,
        version: str,
        provider: Literal["openai", "azure", "bedrock", "local"],
        base_model: str,
        method: Literal["supervised", "dpo"] = "supervised",
        hyperparameters: dict[str, float] | None = None,
        key: str | None = None,
    ) -> LaunchResult:
        """Launch fine-tuning of `base_model` on a dataset version (name@N) at a provider. The export is validated
        first and the cost estimated: within the team's auto-approve budget the job starts at once; above it the
        job waits in pending_approval and an approval request goes to Slack (returned as `approval`). Pass the same
        `key` to retry safely: it never starts a second job. hyperparameters: epochs, batch_size, learning_rate,
        learning_rate_multiplier, warmup_steps (omitted ones are suggested from the data)."""
        args = {"version": version, "provider": provider, "base_model": base_model, "key": key}
        return call_core(store, ctx, "launch_job", args, lambda actor: jobs.launch_job(
            svc, dataset_version=version, provider=provider, base_model=base_model, actor=actor,
            method=method, hyperparameters=hyperparameters, key=key))  # fmt: skip

    @tool(server, title="Job status")
    def job_status(ctx: Context, job_id: str) -> Job:
        """A job's unified state (pending_approval, submitting, validating, queued, running, succeeded, failed,
        cancelled), provider status, estimated cost, trained model id and error."""
        return call_core(store, ctx, "job_status", {"job_id": job_id}, lambda actor: jobs.get_job(store, job_id))

    @tool(server, title="List jobs")
    def list_jobs(ctx: Context, status: str | None = None) -> JobList:
        """Recent fine-tuning jobs, newest first, optionally only those in one state."""
        return call_core(
            store, ctx, "list_jobs", {"status": status}, lambda actor: jobs.list_jobs(store, status=status)
        )

    @tool(server, title="Job events")
    def job_events(ctx: Context, job_id: str) -> JobEvents:
        """A job's status changes, provider messages and step-wise training metrics, oldest first."""
        return call_core(store, ctx, "job_events", {"job_id": job_id}, lambda actor: jobs.job_events(store, job_id))

    @tool(server, title="Cancel job")
    def cancel_job(ctx: Context, job_id: str) -> Job:
        """Cancel a job at its provider, or before it reaches one (a pending approval is withdrawn)."""
        return call_core(store, ctx, "cancel_job", {"job_id": job_id},
                         lambda actor: jobs.cancel_job(svc, job_id=job_id, actor=actor))  # fmt: skip


def _resource(read: Callable[[], str]) -> str:
    try:
        return read()
    except FinetuneError as exc:
        raise ResourceError(str(exc)) from exc


_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def run_stdio(settings: Settings, store: Store):
    """Serve MCP on stdin/stdout until the host closes the pipe. Only protocol goes to stdout."""
    build_server(settings, store).run("stdio")
    return None
