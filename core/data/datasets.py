"""Datasets: curated, immutable, versioned selections of feedback.

`build_dataset` applies a recipe (filters, deduplication, quality floor, seeded
split) to the feedback store and records the result as a new immutable
version: the feedback ids it chose, their split, counts and stats, and a
content hash. Building the same recipe over the same data returns the existing
version instead of a copy. Versions are named `NAME@N` (`support@3`); `NAME`
alone means its latest version.

Quality score (0–1), documented because filters use it:

    quality = 0.6 × rating_score + 0.4 × approval_score
    rating_score   = (rating − 1) / 4, or 0.5 when unrated
    approval_score = 1.0 when the user gave a final text (a human approved or corrected it),
                     0.5 when only the AI draft is known

Rejected drafts are left out unless the recipe asks for them
(`include_rejected`): an event rated 2 or lower (thumbs down is 1) whose draft
the user did not correct (no final text, or the draft unchanged) teaches the
model the very answer the user turned down. Examples whose training text is
empty or longer than 100,000 characters fail the length sanity check and are
dropped before scoring. A version's stats say how many candidates were left
out, per reason (`left_out`).

`edit_phrases` selects the edited events whose edit operations deleted or
added one of the phrases, matched as edit-pattern mining matches them
(`core.analytics.patterns`): the very examples behind a pattern, which the
`openai-dpo` export turns into preference pairs (draft rejected, final chosen).

The split is deterministic and stratified by agent: within each agent,
examples are ordered by SHA-256(seed, feedback id) and the first 80 % (by
default) go to train, the next 10 % to validation, the rest to test.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from core.data import db, dedupe
from core.data.examples import Example
from core.data.pii import RedactionReport
from core.errors import InvalidInput, NotFound
from core.platform import audit
from core.platform.actors import Actor
from core.platform.store import Store
from core.platform.timeutil import iso

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SPLITS = ("train", "validation", "test")
MAX_COMPLETION_CHARS = 100_000
MAX_SEED = 2**63 - 1  # the largest integer SQLite stores
REJECTED_AT = 2.0  # a rating at or below this turns the draft down (thumbs down is stored as 1)
MAX_EDIT_PHRASES = 50
MAX_EDIT_PHRASE_CHARS = 256
LEFT_OUT = ("rejected_drafts", "length", "low_quality", "exact_duplicates", "near_duplicates")
"""Why a candidate is left out of a version, in the order the reasons are checked."""


class DatasetFilters(BaseModel):
    """What a version selects. Every field is optional; lists match any of their values."""

    agents: list[str] = Field(default_factory=list)
    intents: list[str] = Field(default_factory=list)
    templates: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list, description="Keep events carrying any of these tags.")
    since: str | None = Field(default=None, description="ISO-8601 date or time, inclusive.")
    until: str | None = Field(default=None, description="ISO-8601 date or time, exclusive.")
    min_rating: float | None = Field(default=None, ge=1, le=5)
    min_acceptance: float | None = Field(default=None, ge=0, le=1)
    min_quality: float = Field(default=0.0, ge=0, le=1)
    edited_only: bool = Field(default=False, description="Keep only events the user edited.")
    include_rejected: bool = Field(
        default=False,
        description="Keep rejected drafts too: events rated 2 or lower (or thumbs down) that the user did not correct.",
    )
    edit_phrases: list[str] = Field(
        default_factory=list,
        max_length=MAX_EDIT_PHRASES,
        exclude_if=lambda phrases: not phrases,  # recipes without it keep the content hash they always had
        description="Keep only edited events whose edits deleted or added any of these phrases, compared as edit "
        "patterns compare them (lowercase words, punctuation trimmed, within one sentence): the examples behind "
        "the patterns `finetune analytics patterns` lists, as preference pairs of draft and final.",
    )

    @field_validator("edit_phrases")
    @classmethod
    def _phrases(cls, given: list[str]) -> list[str]:
        from core.analytics.patterns import normalise_phrase  # the one definition of a phrase; analytics reads data

        phrases = []
        for text in given:
            phrase = normalise_phrase(text) if isinstance(text, str) else ""
            if not phrase or len(phrase) > MAX_EDIT_PHRASE_CHARS:
                raise ValueError(f"{text!r} is no phrase of 1 to {MAX_EDIT_PHRASE_CHARS} characters of words")
            if phrase not in phrases:
                phrases.append(phrase)
        return sorted(phrases)

    @field_validator("since", "until")
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
        except (ValueError, OverflowError):  # not a time, or one that falls outside the calendar in UTC
            raise ValueError(f"{value!r} is not an ISO-8601 date or time (e.g. 2026-11-01)") from None


class Recipe(BaseModel):
    filters: DatasetFilters = Field(default_factory=DatasetFilters)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    dedupe: bool = True
    near_duplicate_threshold: float = Field(default=0.8, gt=0, le=1)

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, split: tuple[float, float, float]) -> tuple[float, float, float]:
        finite = all(math.isfinite(part) for part in split)
        if not finite or any(part < 0 for part in split) or abs(sum(split) - 1) > 1e-6 or split[0] <= 0:
            raise ValueError(f"split {split} must be three non-negative shares summing to 1, train > 0")
        return split


_RECIPE_HINTS = {
    "since": "Give an ISO-8601 date or time, e.g. 2026-11-01 or 2026-11-01T09:00:00Z.",
    "until": "Give an ISO-8601 date or time, e.g. 2026-12-01 or 2026-12-01T09:00:00Z.",
    "min_rating": "Give a rating from 1 to 5 (thumbs up counts as 5, thumbs down as 1).",
    "min_acceptance": "Give the share of the draft the user kept, from 0 to 1.",
    "min_quality": "Give a quality score from 0 to 1.",
    "seed": f"Give a whole number from 0 to {MAX_SEED}.",
    "split": "Give three finite train,validation,test shares summing to 1, train above 0, e.g. 0.8,0.1,0.1.",
    "near_duplicate_threshold": "Give a similarity above 0 and at most 1, e.g. 0.8.",
    "edit_phrases": f"Give up to {MAX_EDIT_PHRASES} phrases of words, e.g. 'let me analyze this'.",
}


def recipe_from(
    *,
    filters: DatasetFilters | dict[str, Any] | None = None,
    seed: int = 0,
    split: tuple[float, float, float] | None = None,
    dedupe: bool = True,
) -> Recipe:
    """A recipe from plain values, checked before anything is built; InvalidInput naming the field otherwise."""
    given: dict[str, Any] = {"filters": filters or {}, "seed": seed, "dedupe": dedupe}
    if split is not None:
        given["split"] = split
    try:
        return Recipe.model_validate(given)
    except ValidationError as exc:
        raise _invalid_recipe(exc) from None


def _invalid_recipe(exc: ValidationError) -> InvalidInput:
    first = exc.errors()[0]
    path = [str(part) for part in first["loc"] if isinstance(part, str)]
    field = ".".join(path) or "recipe"
    message = str(first["msg"]).removeprefix("Value error, ")
    shown = repr(first["input"])
    return InvalidInput(
        f"`{field}` is {shown[:80]}: {message[:1].lower()}{message[1:]}.",
        hint=_RECIPE_HINTS.get(path[-1] if path else "", "Check the recipe's filters, seed and split."),
        field=field,
    )


class DatasetVersion(BaseModel):
    id: str
    dataset: str
    version: int
    recipe: Recipe
    counts: dict[str, Any]
    stats: dict[str, Any]
    redaction_report: RedactionReport
    content_hash: str
    created_by: str
    created_at: str
    reused: bool = Field(default=False, description="True when this build matched an existing version.")


class DatasetSummary(BaseModel):
    name: str
    versions: int
    latest: str | None
    latest_examples: int
    created_at: str


class DatasetList(BaseModel):
    datasets: list[DatasetSummary]


class VersionDiff(BaseModel):
    a: str
    b: str
    added: int
    removed: int
    kept: int
    moved_split: int
    sample_added: list[str]
    sample_removed: list[str]
    recipe_changes: dict[str, list[Any]]
    count_changes: dict[str, list[Any]]


# Scoring --------------------------------------------------------------------------------------------


def quality(rating: float | None, has_final: bool) -> float:
    rating_score = 0.5 if rating is None else (rating - 1) / 4
    approval_score = 1.0 if has_final else 0.5
    return round(0.6 * rating_score + 0.4 * approval_score, 4)


def split_key(seed: int, feedback_id: str) -> str:
    return hashlib.sha256(f"{seed}:{feedback_id}".encode()).hexdigest()


def split_sizes(n: int, shares: tuple[float, float, float]) -> tuple[int, int, int]:
    """Rounded sizes that add up to n, with at least one training example when n > 0."""
    validation, test = round(n * shares[1]), round(n * shares[2])
    while n and n - validation - test < 1:
        if test >= validation and test:
            test -= 1
        else:
            validation -= 1
    return n - validation - test, validation, test


# Building ------------------------------------------------------------------------------------------


def _prompt_text(messages_json: str) -> str:
    return "\n".join(m["content"] for m in json.loads(messages_json))


def rejected_draft(rating: float | None, draft: str, final: str | None) -> bool:
    """Whether the user turned the draft down (rated 2 or lower, thumbs down too) and did not correct it."""
    return rating is not None and rating <= REJECTED_AT and (final is None or final == draft)


def _select(
    store: Store, recipe: Recipe, on_progress: Callable[[int], None] | None
) -> tuple[dict[str, int], RedactionReport]:
    """Fill temp table `pick` with the chosen examples; return counts and the redaction report."""
    db.start_picking(store)
    counts = {"candidates": 0, **dict.fromkeys(LEFT_OUT, 0)}
    seen: set[int] = set()
    report = RedactionReport()
    filters = recipe.filters
    chosen = filters.model_dump(exclude={"min_quality", "include_rejected", "edit_phrases"})
    candidates = db.feedback_candidates(store, **chosen)
    if filters.edit_phrases:
        candidates = (row for row in candidates if _shows_phrases(row["edit_ops"], filters.edit_phrases))
    for ordinal, row in enumerate(candidates):
        counts["candidates"] += 1
        if on_progress and counts["candidates"] % 5000 == 0:
            on_progress(counts["candidates"])
        if not filters.include_rejected and rejected_draft(row["rating"], row["ai_output"], row["final_output"]):
            counts["rejected_drafts"] += 1
            continue
        completion = row["final_output"] if row["final_output"] is not None else row["ai_output"]
        if not completion.strip() or len(completion) > MAX_COMPLETION_CHARS:
            counts["length"] += 1
            continue
        score = quality(row["rating"], row["final_output"] is not None)
        if score < recipe.filters.min_quality:
            counts["low_quality"] += 1
            continue
        sig = None
        if recipe.dedupe:
            prompt = _prompt_text(row["input_messages"])
            key = dedupe.exact_key(prompt, completion)
            if key in seen:
                counts["exact_duplicates"] += 1
                continue
            seen.add(key)
            signature = dedupe.signature(prompt + "\n" + completion)
            sig = dedupe.pack(signature)
            db.add_band_keys(store, ordinal, dedupe.band_keys(signature))
        db.add_pick(
            store, ordinal=ordinal, feedback_id=row["id"], agent=row["agent"], quality=score,
            split_key=split_key(recipe.seed, row["id"]), sig=sig,
        )  # fmt: skip
        report.add(json.loads(row["redactions"] or "{}"))
    if recipe.dedupe:
        counts["near_duplicates"] = _drop_near_duplicates(store, recipe.near_duplicate_threshold)
        if counts["near_duplicates"]:
            report = _redactions_of_kept(store)
    return counts, report


def _shows_phrases(ops_json: str | None, phrases: list[str]) -> bool:
    from core.analytics.patterns import edits_show

    return edits_show(ops_json, phrases)


def _drop_near_duplicates(store: Store, threshold: float) -> int:
    """Within each LSH bucket keep the best-scoring example and drop those similar to a kept one."""
    dropped = 0
    for ordinals in db.band_groups(store):
        kept: list[tuple[int, ...]] = []
        for ordinal, _, blob in db.kept_picks(store, ordinals):
            sig = dedupe.unpack(blob)
            if any(dedupe.similarity(sig, other) >= threshold for other in kept):
                db.drop_pick(store, ordinal)
                dropped += 1
            else:
                kept.append(sig)
    return dropped


def _redactions_of_kept(store: Store) -> RedactionReport:
    report = RedactionReport()
    for redactions in db.kept_redactions(store):
        report.add(json.loads(redactions or "{}"))
    return report


def _assign_splits(store: Store, shares: tuple[float, float, float]) -> dict[str, dict[str, int]]:
    db.add_split_column(store)
    by_agent: dict[str, dict[str, int]] = {}
    for agent, n in db.kept_agents(store):
        train, validation, _ = split_sizes(n, shares)
        ordered = db.kept_ordinals_by_split_key(store, agent)
        assignments = [
            ("train" if i < train else "validation" if i < train + validation else "test", ordinal)
            for i, ordinal in enumerate(ordered)
        ]
        db.set_splits(store, assignments)
        by_agent[agent] = {s: sum(1 for a, _ in assignments if a == s) for s in SPLITS}
    return by_agent


def _content_hash(store: Store, recipe: Recipe) -> str:
    digest = hashlib.sha256(recipe.model_dump_json().encode())
    for feedback_hash, split in db.kept_content_hashes(store):
        digest.update(f"{feedback_hash}:{split}\n".encode())
    return digest.hexdigest()


def _stats(store: Store, counts: dict[str, int]) -> dict[str, Any]:
    n, mean_chars, max_chars, total_chars, edited, acceptance, mean_quality = db.kept_stats(store)
    return {
        "left_out": {reason: counts[reason] for reason in LEFT_OUT},
        "examples": n,
        "edited": edited or 0,
        "mean_completion_chars": round(mean_chars or 0, 1),
        "max_completion_chars": max_chars or 0,
        "estimated_tokens": round((total_chars or 0) / 4),  # ~4 characters per token; exports count exactly
        "mean_acceptance": round(acceptance, 4) if acceptance is not None else None,
        "mean_quality": round(mean_quality, 4) if mean_quality is not None else None,
    }


def build_dataset(
    store: Store,
    *,
    name: str,
    actor: Actor,
    recipe: Recipe | None = None,
    description: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> DatasetVersion:
    """Build a new immutable version of dataset `name` (created on first build)."""
    if not NAME.match(name or ""):
        raise InvalidInput(
            f"dataset name {name!r} is not allowed.",
            hint="Use 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit (e.g. support-replies).",
        )
    recipe = recipe or Recipe()
    with store.write():
        counts, report = _select(store, recipe, on_progress)
        by_agent = _assign_splits(store, recipe.split)
        kept = sum(sum(v.values()) for v in by_agent.values())
        if kept == 0:
            left_out = ", ".join(f"{counts[reason]} {reason}" for reason in LEFT_OUT if counts[reason])
            raise InvalidInput(
                f"the recipe selects no examples ({counts['candidates']} candidates matched the filters"
                + (f"; left out: {left_out}" if left_out else "")
                + ").",
                hint="Loosen the filters (agents, dates, min rating/acceptance/quality, include_rejected) "
                "or ingest feedback first.",
            )
        content_hash = _content_hash(store, recipe)
        dataset = db.ensure_dataset(store, name=name, description=description, created_by=str(actor), created_at=iso())
        existing = db.version_with_hash(store, dataset, content_hash)
        if existing:
            version = get_version(store, existing)
            return version.model_copy(update={"reused": True})
        number = db.next_version_number(store, dataset)
        version_id = f"{name}@{number}"
        version_counts: dict[str, Any] = {
            **counts,
            "examples": kept,
            "splits": {s: sum(v[s] for v in by_agent.values()) for s in SPLITS},
            "by_agent": by_agent,
        }
        db.insert_version(
            store, version_id=version_id, dataset_id=dataset, number=number, recipe_json=recipe.model_dump_json(),
            seed=recipe.seed, counts_json=json.dumps(version_counts), stats_json=json.dumps(_stats(store, counts)),
            content_hash=content_hash, redaction_report_json=report.model_dump_json(), created_by=str(actor),
            created_at=iso(),
        )  # fmt: skip
        audit.record(store, actor, "build_dataset", {"name": name, "recipe": recipe.model_dump()}, detail=version_id)
    db.drop_picks(store)
    return get_version(store, version_id)


# Reading -------------------------------------------------------------------------------------------


def resolve_version(store: Store, ref: str) -> str:
    """`name@N` or `name` (latest) -> version id; NotFound with the known ids otherwise."""
    ref = (ref or "").strip()
    if "@" in ref:
        if db.version_exists(store, ref):
            return ref
    else:
        latest = db.latest_version_id(store, ref)
        if latest:
            return latest
    known = db.recent_version_ids(store)
    raise NotFound(
        f"no dataset version {ref!r}.",
        hint=f"Known versions: {', '.join(known)}." if known else "Build one first: finetune data build NAME.",
        version=ref,
    )


def stored_recipe(text: str) -> Recipe:
    """A version's recipe as it was built. Versions recorded before rejected drafts were left out by
    default kept them, so a stored recipe without `include_rejected` says True: provenance is never
    rewritten by a later default."""
    data = json.loads(text)
    filters = data.setdefault("filters", {})
    if isinstance(filters, dict):
        filters.setdefault("include_rejected", True)
    return Recipe.model_validate(data)


def get_version(store: Store, ref: str) -> DatasetVersion:
    row = db.version_row(store, resolve_version(store, ref))
    return DatasetVersion(
        id=row["id"], dataset=row["dataset_id"], version=row["version"],
        recipe=stored_recipe(row["filters"]), counts=json.loads(row["counts"]),
        stats=json.loads(row["token_stats"]), redaction_report=RedactionReport.model_validate_json(row["redaction_report"]),
        content_hash=row["content_hash"], created_by=row["created_by"], created_at=row["created_at"],
    )  # fmt: skip


def recent_versions(store: Store, *, limit: int = 100) -> list[str]:
    """The ids of the most recently built versions of every dataset, newest first."""
    return db.recent_version_ids(store, limit)


def list_datasets(store: Store) -> DatasetList:
    summaries = []
    for row in db.dataset_summaries(store):
        latest = f"{row['name']}@{row['latest_version']}" if row["latest_version"] else None
        summaries.append(
            DatasetSummary(
                name=row["name"],
                versions=row["versions"],
                latest=latest,
                latest_examples=db.example_count(store, latest) if latest else 0,
                created_at=row["created_at"],
            )
        )
    return DatasetList(datasets=summaries)


def examples(store: Store, version_id: str, *, split: str | None = None) -> Iterator[Example]:
    """Stream a version's examples in a stable order (by feedback id)."""
    for feedback_id, agent, system, messages, output, final in db.version_examples(store, version_id, split=split):
        yield Example(
            id=feedback_id, agent=agent, system=system, messages=tuple(json.loads(messages)), output=output, final=final
        )


def diff_versions(store: Store, a: str, b: str, *, sample: int = 5) -> VersionDiff:
    va, vb = get_version(store, a), get_version(store, b)
    kept, moved = db.kept_and_moved(store, va.id, vb.id)
    ra, rb = _flatten(va.recipe.model_dump()), _flatten(vb.recipe.model_dump())
    ca, cb = (
        _flatten({k: v for k, v in va.counts.items() if k != "by_agent"}),
        _flatten({k: v for k, v in vb.counts.items() if k != "by_agent"}),
    )
    return VersionDiff(
        a=va.id, b=vb.id, added=db.count_only_in(store, vb.id, va.id), removed=db.count_only_in(store, va.id, vb.id),
        kept=kept, moved_split=moved,
        sample_added=db.sample_only_in(store, vb.id, va.id, sample),
        sample_removed=db.sample_only_in(store, va.id, vb.id, sample),
        recipe_changes={k: [ra.get(k), rb.get(k)] for k in sorted(ra.keys() | rb.keys()) if ra.get(k) != rb.get(k)},
        count_changes={k: [ca.get(k), cb.get(k)] for k in sorted(ca.keys() | cb.keys()) if ca.get(k) != cb.get(k)},
    )  # fmt: skip


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value if not isinstance(value, (list, tuple)) else list(value)
    return flat
