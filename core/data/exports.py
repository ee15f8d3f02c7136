"""Exporting a dataset version for a provider, and validating what was exported.

An export writes one JSONL file per non-empty split plus `metadata.json`
(counts, token stats, cost estimate, redaction report, content hashes) into
`DATA_DIR/exports/VERSION/TARGET[--MODEL]/`. Text is always redacted on the way
out, whatever was done at ingest. The files are written to a temporary
directory and moved into place at the end, so an interrupted export leaves no
half-written directory behind. Work is spread over processes (redaction and
token counting are the cost) and streams, so memory stays flat.

Token counts, limits and prices come from the catalog the caller passes (the
Services' one, with FINETUNE_CATALOG_FILE applied); the model is resolved once
and its `Tokenizer` travels to the worker processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from pydantic import BaseModel, Field

from core.catalog import pricing
from core.catalog.models import Catalog
from core.catalog.pricing import CostEstimate, estimate_cost
from core.data import datasets, db, formats, tokens
from core.data.examples import Example
from core.data.pii import RedactionReport, Redactor, redact_into
from core.data.targets import TARGETS, require_target
from core.data.tokens import Tokenizer
from core.data.validation import ValidationReport, validate_file
from core.errors import InvalidInput, NotFound
from core.platform import audit
from core.platform.actors import Actor
from core.platform.parallel import ordered_map
from core.platform.store import Store
from core.platform.timeutil import iso
from core.vocabulary import ExportTarget

CHUNK = 1000
MAX_EPOCHS = pricing.MAX_EPOCHS
PARALLEL_FROM_EXAMPLES = 5000
Target = ExportTarget
DEFAULT_MODELS: dict[str, str] = {spec.name.value: spec.default_model for spec in TARGETS.values()}

Processed = tuple[str | None, int, dict[str, int]]
"""One example after export: (JSONL line, or None when the target has no row for it; tokens; redaction counts)."""


class ExportResult(BaseModel):
    version: str
    target: str
    model: str
    directory: str
    files: dict[str, str] = Field(description="split -> JSONL path")
    counts: dict[str, int] = Field(description="rows written per split")
    skipped: int = Field(description="examples the target cannot use (e.g. unedited ones for DPO)")
    train_tokens: int = Field(description="tokens in the training split (what one epoch trains on)")
    token_stats: tokens.TokenStats
    cost: CostEstimate | None
    redactions: RedactionReport
    content_hash: str = Field(description="SHA-256 over the exported files")
    created_at: str


class DatasetValidation(BaseModel):
    version: str
    target: str
    model: str
    ok: bool
    reports: dict[str, ValidationReport]


def default_model(target: str) -> str:
    """The catalog id whose tokenizer and limits apply to `target` when no model is given."""
    return require_target(target).default_model


def _export_chunk(args: tuple[list[Example], str, Tokenizer]) -> list[Processed]:
    """Worker: redact, convert and count one chunk."""
    chunk, target, tokenizer = args
    rules = require_target(target).rules
    redactor = Redactor()
    out: list[Processed] = []
    for example in chunk:
        example, counts = redact_example(example, redactor)
        row = formats.to_row(example, target)
        if row is None:
            out.append((None, 0, counts))
            continue
        out.append((json.dumps(row, ensure_ascii=False), rules.count(row, tokenizer), counts))
    return out


def redact_example(example: Example, redactor: Redactor) -> tuple[Example, dict[str, int]]:
    counts: dict[str, int] = {}

    def clean(text: str) -> str:
        return redact_into(redactor, text, counts)

    redacted = Example(
        id=example.id, agent=example.agent, system=redact_into(redactor, example.system, counts),
        output=clean(example.output), final=redact_into(redactor, example.final, counts),
        messages=tuple({**m, "content": clean(m["content"])} for m in example.messages),
    )  # fmt: skip
    return redacted, counts


def _processed(items: Iterable[Example], target: str, tokenizer: Tokenizer, workers: int) -> Iterator[Processed]:
    iter_items = iter(items)
    chunks = ((chunk, target, tokenizer) for chunk in iter(lambda: list(islice(iter_items, CHUNK)), []))
    for result in ordered_map(_export_chunk, chunks, workers=workers):
        yield from result


def export_dataset(
    store: Store,
    *,
    version: str,
    target: str,
    actor: Actor,
    data_dir: Path,
    catalog: Catalog,
    model: str | None = None,
    epochs: int | None = None,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Export version `version` for `target` (and `model`, default the target's), redacted; the export is stored."""
    check_epochs(epochs)
    dataset_version = datasets.get_version(store, version)
    spec = require_target(target)
    model = model or spec.default_model
    if workers is None:  # starting workers costs about a second: worth it for large versions only
        size = sum(dataset_version.counts.get("splits", {}).values())
        workers = 1 if size < PARALLEL_FROM_EXAMPLES else min(2, os.cpu_count() or 1)
    final_dir = (
        data_dir
        / "exports"
        / dataset_version.id
        / (target if model == spec.default_model else f"{target}--{_safe(model)}")
    )
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=final_dir.parent))
    try:
        job = _Job(dataset_version.id, target, tokens.resolve(model, catalog=catalog), workers, on_progress)
        result = _write(store, job, staging)
        cost = _cost(model, result.train_tokens, epochs, result.stats.exact, catalog)
        export = ExportResult(
            version=dataset_version.id, target=target, model=model, directory=str(final_dir),
            files={split: str(final_dir / f"{split}.jsonl") for split in result.counts},
            counts=result.counts, skipped=result.skipped, train_tokens=result.train_tokens, token_stats=result.stats,
            cost=cost, redactions=result.redactions, content_hash=result.digest, created_at=iso(),
        )  # fmt: skip
        metadata = {
            **export.model_dump(mode="json"),
            "dataset_content_hash": dataset_version.content_hash,
            "recipe": dataset_version.recipe.model_dump(mode="json"),
            "ingest_redactions": dataset_version.redaction_report.model_dump(),
        }
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=2, ensure_ascii=False))
        if final_dir.exists():
            shutil.rmtree(final_dir)
        staging.rename(final_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    with store.write():
        db.save_export(
            store, version_id=dataset_version.id, target=target, model=model, directory=str(final_dir),
            metadata_json=export.model_dump_json(), created_by=str(actor), created_at=export.created_at,
        )  # fmt: skip
        audit.record(
            store,
            actor,
            "export_dataset",
            {"version": dataset_version.id, "target": target, "model": model},
            detail=str(final_dir),
        )
    return export


def check_epochs(epochs: int | None) -> None:
    """InvalidInput unless `epochs` is None (one epoch) or a whole number from 1 to MAX_EPOCHS."""
    if epochs is None:
        return
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= MAX_EPOCHS:
        shown = repr(epochs) if len(repr(epochs)) <= 40 else repr(epochs)[:40] + "…"
        raise InvalidInput(
            f"`epochs` must be a whole number from 1 to {MAX_EPOCHS}, got {shown}.",
            hint="Pass the epoch count the job will run (Bedrock allows at most 10, Nova 5), or leave it out for 1.",
            field="epochs",
        )


def _safe(model: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in model)


@dataclass(frozen=True)
class _Job:
    """What one export writes: which version, in which format, counted with which tokenizer, how."""

    version_id: str
    target: str
    tokenizer: Tokenizer
    workers: int
    on_progress: Callable[[int], None] | None


@dataclass(frozen=True)
class _Written:
    counts: dict[str, int]
    skipped: int
    stats: tokens.TokenStats
    redactions: RedactionReport
    digest: str
    train_tokens: int


def _write(store: Store, job: _Job, staging: Path) -> _Written:
    stats = tokens.TokenStatsBuilder(exact=job.tokenizer.exact)
    redactions = RedactionReport()
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    skipped = done = train_tokens = 0
    for split in datasets.SPLITS:
        path = staging / f"{split}.jsonl"
        written = 0
        with open(path, "w", encoding="utf-8") as handle:
            examples = datasets.examples(store, job.version_id, split=split)
            for line, n_tokens, redacted in _processed(examples, job.target, job.tokenizer, job.workers):
                redactions.add(redacted)
                done += 1
                if job.on_progress and done % 1000 == 0:
                    job.on_progress(done)
                if line is None:
                    skipped += 1
                    continue
                handle.write(line + "\n")
                digest.update(line.encode() + b"\n")
                written += 1
                stats.add(n_tokens)
                if split == "train":
                    train_tokens += n_tokens
        if written:
            counts[split] = written
        else:
            path.unlink()
    if not counts.get("train"):
        raise InvalidInput(
            f"{job.version_id} has no training rows for target {job.target!r} ({skipped} examples do not apply).",
            hint="For openai-dpo, build a version of edited examples (--edited-only); otherwise check the recipe.",
        )
    return _Written(counts, skipped, stats.build(), redactions, digest.hexdigest(), train_tokens)


def _cost(model: str, train_tokens: int, epochs: int | None, exact: bool, catalog: Catalog) -> CostEstimate | None:
    try:
        return estimate_cost(
            base_model=model, training_tokens=train_tokens, epochs=epochs or 1, exact_tokens=exact, catalog=catalog
        )
    except InvalidInput:
        return None  # a model outside the catalog: the export is still useful, its cost unknown


def get_export(store: Store, *, version: str, target: str, model: str | None = None) -> ExportResult | None:
    """The stored export of `version` for `target` and `model` (default the target's), if there is one."""
    metadata = db.export_metadata(
        store, version_id=datasets.resolve_version(store, version), target=target, model=model or default_model(target)
    )
    return ExportResult.model_validate_json(metadata) if metadata is not None else None


def validate_dataset(
    store: Store,
    *,
    version: str,
    target: str,
    actor: Actor,
    data_dir: Path,
    catalog: Catalog,
    model: str | None = None,
) -> DatasetValidation:
    """Validate a version's export for `target` (exporting it first if needed); the report is stored."""
    model = model or default_model(target)
    export = get_export(store, version=version, target=target, model=model)
    if export is None or not all(Path(p).exists() for p in export.files.values()):
        export = export_dataset(
            store, version=version, target=target, model=model, actor=actor, data_dir=data_dir, catalog=catalog
        )
    reports = {
        split: validate_file(Path(path), target=target, model=model, training_file=split == "train", catalog=catalog)
        for split, path in export.files.items()
    }
    result = DatasetValidation(
        version=export.version, target=target, model=model, ok=all(r.ok for r in reports.values()), reports=reports
    )
    with store.write():
        db.save_export_validation(
            store, version_id=export.version, target=target, model=model, validation_json=result.model_dump_json()
        )
        audit.record(store, actor, "validate_dataset", {"version": export.version, "target": target, "model": model},
                     outcome="ok" if result.ok else "invalid")  # fmt: skip
    return result


def validate_any_file(path: Path, *, target: str, catalog: Catalog, model: str | None = None) -> ValidationReport:
    """Validate any JSONL file; without a model, the target's default model sets the tokenizer and limits."""
    return validate_file(path, target=target, model=model or default_model(target), catalog=catalog)


def stored_validation(store: Store, *, version: str, target: str, model: str | None = None) -> DatasetValidation:
    """The stored report of the last `validate_dataset` of `version` for `target` (and `model`)."""
    version_id = datasets.resolve_version(store, version)
    validation = db.export_validation(store, version_id=version_id, target=target, model=model or default_model(target))
    if validation is None:
        raise NotFound(
            f"{version_id} has not been validated for {target!r}.",
            hint=f"Run: finetune validate {version_id} {target}",
        )
    return DatasetValidation.model_validate_json(validation)
