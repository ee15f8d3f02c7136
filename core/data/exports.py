"""Exporting a dataset version for a provider, and validating what was exported.

An export writes one JSONL file per non-empty split plus `metadata.json`
(counts, token stats, cost estimate, redaction report, content hashes) into
`DATA_DIR/exports/VERSION/TARGET[--MODEL]/`. Text is always redacted on the way
out, whatever was done at ingest. The files are written to a temporary
directory and moved into place at the end, so an interrupted export leaves no
half-written directory behind. Work is spread over processes (redaction and
token counting are the cost) and streams, so memory stays flat.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from core.catalog.models import Catalog
from core.catalog.pricing import CostEstimate, estimate_cost
from core.data import datasets, formats, tokens
from core.data.examples import Example
from core.data.pii import RedactionReport, Redactor, redact_into
from core.data.validation import ValidationReport, count_row_tokens, validate_file
from core.errors import InvalidInput, NotFound
from core.platform import audit
from core.platform.actors import Actor
from core.platform.parallel import ordered_map
from core.platform.store import Store
from core.platform.timeutil import iso

CHUNK = 1000
PARALLEL_FROM_EXAMPLES = 5000
Target = Literal["openai", "openai-dpo", "bedrock-nova", "bedrock-claude", "bedrock-llama", "hf-chat"]
DEFAULT_MODELS: dict[str, str] = {
    "openai": "gpt-4o-mini-2024-07-18",
    "openai-dpo": "gpt-4o-mini-2024-07-18",
    "bedrock-nova": "amazon.nova-micro-v1:0",
    "bedrock-claude": "anthropic.claude-3-haiku-20240307-v1:0",
    "bedrock-llama": "meta.llama3-1-8b-instruct-v1:0",
    "hf-chat": "HuggingFaceTB/SmolLM2-135M-Instruct",
}


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
    if target not in DEFAULT_MODELS:
        raise InvalidInput(f"unknown target {target!r}.", hint=f"Use one of: {', '.join(DEFAULT_MODELS)}.")
    return DEFAULT_MODELS[target]


def _export_chunk(args) -> list[tuple[str | None, int, dict[str, int]]]:
    """Worker: redact, convert and count one chunk -> (JSONL line or None, tokens, redaction counts)."""
    chunk, target, model = args
    redactor = Redactor()
    out = []
    for example in chunk:
        example, counts = redact_example(example, redactor)
        row = formats.to_row(example, target)
        if row is None:
            out.append((None, 0, counts))
            continue
        out.append((json.dumps(row, ensure_ascii=False), count_row_tokens(row, target=target, model=model), counts))
    return out


def redact_example(example: Example, redactor: Redactor) -> tuple[Example, dict[str, int]]:
    counts: dict[str, int] = {}

    def clean(text: str | None) -> str | None:
        return redact_into(redactor, text, counts)

    redacted = Example(
        id=example.id, agent=example.agent, system=clean(example.system), output=clean(example.output),
        final=clean(example.final), messages=tuple({**m, "content": clean(m["content"])} for m in example.messages),
    )  # fmt: skip
    return redacted, counts


def _processed(
    items: Iterable[Example], target: str, model: str, workers: int
) -> Iterator[tuple[str | None, int, dict]]:
    iter_items = iter(items)
    chunks = ((chunk, target, model) for chunk in iter(lambda: list(islice(iter_items, CHUNK)), []))
    for result in ordered_map(_export_chunk, chunks, workers=workers):
        yield from result


def export_dataset(
    store: Store,
    *,
    version: str,
    target: str,
    actor: Actor,
    data_dir: Path,
    model: str | None = None,
    epochs: int | None = None,
    catalog: Catalog | None = None,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ExportResult:
    dataset_version = datasets.get_version(store, version)
    formats.require_target(target)
    model = model or default_model(target)
    if workers is None:  # starting workers costs about a second: worth it for large versions only
        size = sum(dataset_version.counts.get("splits", {}).values())
        workers = 1 if size < PARALLEL_FROM_EXAMPLES else min(2, os.cpu_count() or 1)
    final_dir = (
        data_dir
        / "exports"
        / dataset_version.id
        / (target if model == default_model(target) else f"{target}--{_safe(model)}")
    )
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=final_dir.parent))
    try:
        result = _write(store, dataset_version.id, target, model, staging, final_dir, workers, on_progress)
        train_tokens = result["train_tokens"]
        cost = _cost(model, train_tokens, epochs, result["stats"].exact, catalog)
        export = ExportResult(
            version=dataset_version.id, target=target, model=model, directory=str(final_dir),
            files={split: str(final_dir / f"{split}.jsonl") for split in result["counts"]},
            counts=result["counts"], skipped=result["skipped"], train_tokens=train_tokens, token_stats=result["stats"], cost=cost,
            redactions=result["redactions"], content_hash=result["hash"], created_at=iso(),
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
    with store.write() as db:
        db["dataset_exports"].upsert(
            {
                "dataset_version_id": dataset_version.id, "target": target, "model": model,
                "directory": str(final_dir), "metadata": export.model_dump_json(), "validation": None,
                "created_by": str(actor), "created_at": export.created_at,
            },
            pk=("dataset_version_id", "target", "model"),
        )  # fmt: skip
        audit.record(
            store,
            actor,
            "export_dataset",
            {"version": dataset_version.id, "target": target, "model": model},
            detail=str(final_dir),
        )
    return export


def _safe(model: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in model)


def _write(store, version_id, target, model, staging: Path, final_dir: Path, workers, on_progress) -> dict:
    stats = tokens.TokenStatsBuilder(exact=tokens.is_exact(model))
    redactions = RedactionReport()
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    skipped = done = train_tokens = 0
    for split in datasets.SPLITS:
        path = staging / f"{split}.jsonl"
        written = 0
        with open(path, "w", encoding="utf-8") as handle:
            for line, n_tokens, redacted in _processed(
                datasets.examples(store, version_id, split=split), target, model, workers
            ):
                redactions.add(redacted)
                done += 1
                if on_progress and done % 1000 == 0:
                    on_progress(done)
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
            f"{version_id} has no training rows for target {target!r} ({skipped} examples do not apply).",
            hint="For openai-dpo, build a version of edited examples (--edited-only); otherwise check the recipe.",
        )
    return {
        "counts": counts,
        "skipped": skipped,
        "stats": stats.build(),
        "redactions": redactions,
        "hash": digest.hexdigest(),
        "train_tokens": train_tokens,
    }


def _cost(
    model: str, train_tokens: int, epochs: int | None, exact: bool, catalog: Catalog | None
) -> CostEstimate | None:
    try:
        return estimate_cost(
            base_model=model, training_tokens=train_tokens, epochs=epochs or 1, exact_tokens=exact, catalog=catalog
        )
    except InvalidInput:
        return None  # a model outside the catalog: the export is still useful, its cost unknown


def get_export(store: Store, *, version: str, target: str, model: str | None = None) -> ExportResult | None:
    version_id = datasets.resolve_version(store, version)
    rows = store.query(
        "SELECT metadata FROM dataset_exports WHERE dataset_version_id = ? AND target = ? AND model = ?",
        (version_id, target, model or default_model(target)),
    )
    return ExportResult.model_validate_json(rows[0]["metadata"]) if rows else None


def validate_dataset(
    store: Store,
    *,
    version: str,
    target: str,
    actor: Actor,
    data_dir: Path,
    model: str | None = None,
    catalog: Catalog | None = None,
) -> DatasetValidation:
    """Validate a version's export for `target` (exporting it first if needed); the report is stored."""
    model = model or default_model(target)
    export = get_export(store, version=version, target=target, model=model)
    if export is None or not all(Path(p).exists() for p in export.files.values()):
        export = export_dataset(
            store, version=version, target=target, model=model, actor=actor, data_dir=data_dir, catalog=catalog
        )
    reports = {
        split: validate_file(Path(path), target=target, model=model, training_file=split == "train")
        for split, path in export.files.items()
    }
    result = DatasetValidation(
        version=export.version, target=target, model=model, ok=all(r.ok for r in reports.values()), reports=reports
    )
    with store.write() as db:
        db.execute(
            "UPDATE dataset_exports SET validation = ? WHERE dataset_version_id = ? AND target = ? AND model = ?",
            (result.model_dump_json(), export.version, target, model),
        )
        audit.record(store, actor, "validate_dataset", {"version": export.version, "target": target, "model": model},
                     outcome="ok" if result.ok else "invalid")  # fmt: skip
    return result


def validate_any_file(path: Path, *, target: str, catalog: Catalog, model: str | None = None) -> ValidationReport:
    """Validate any JSONL file; without a model, the target's default model sets the tokenizer and limits."""
    return validate_file(path, target=target, model=model or default_model(target), catalog=catalog)


def stored_validation(store: Store, *, version: str, target: str, model: str | None = None) -> DatasetValidation:
    version_id = datasets.resolve_version(store, version)
    rows = store.query(
        "SELECT validation FROM dataset_exports WHERE dataset_version_id = ? AND target = ? AND model = ?",
        (version_id, target, model or default_model(target)),
    )
    if not rows or not rows[0]["validation"]:
        raise NotFound(
            f"{version_id} has not been validated for {target!r}.",
            hint=f"Run: finetune validate {version_id} {target}",
        )
    return DatasetValidation.model_validate_json(rows[0]["validation"])
