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

Examples whose training text is empty or longer than 100,000 characters fail
the length sanity check and are dropped before scoring.

The split is deterministic and stratified by agent: within each agent,
examples are ordered by SHA-256(seed, feedback id) and the first 80 % (by
default) go to train, the next 10 % to validation, the rest to test.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from core.data import dedupe
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

    @field_validator("since", "until")
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO-8601 date or time (e.g. 2026-11-01)") from None
        return iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


class Recipe(BaseModel):
    filters: DatasetFilters = Field(default_factory=DatasetFilters)
    seed: int = 0
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    dedupe: bool = True
    near_duplicate_threshold: float = Field(default=0.8, gt=0, le=1)

    @model_validator(mode="after")
    def _split_sums_to_one(self) -> Recipe:
        if any(part < 0 for part in self.split) or abs(sum(self.split) - 1) > 1e-6 or self.split[0] <= 0:
            raise ValueError(f"split {self.split} must be three non-negative shares summing to 1, train > 0")
        return self


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


def _where(filters: DatasetFilters) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for column, values in (
        ("agent", filters.agents),
        ("intent", filters.intents),
        ("template", filters.templates),
        ("model", filters.models),
    ):
        if values:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    if filters.tags:
        clauses.append(
            f"EXISTS (SELECT 1 FROM json_each(feedback.tags) WHERE value IN ({', '.join('?' * len(filters.tags))}))"
        )
        params.extend(filters.tags)
    if filters.since:
        clauses.append("created_at >= ?")
        params.append(filters.since)
    if filters.until:
        clauses.append("created_at < ?")
        params.append(filters.until)
    if filters.min_rating is not None:
        clauses.append("rating >= ?")
        params.append(filters.min_rating)
    if filters.min_acceptance is not None:
        clauses.append("acceptance >= ?")
        params.append(filters.min_acceptance)
    if filters.edited_only:
        clauses.append("final_output IS NOT NULL AND final_output != ai_output")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _candidates(store: Store, filters: DatasetFilters) -> Iterator[dict[str, Any]]:
    where, params = _where(filters)
    sql = (
        "SELECT rowid, id, agent, rating, input_messages, ai_output, final_output, redactions FROM feedback"
        f"{where} ORDER BY created_at, id"
    )
    cursor = store.db.conn.execute(sql, params)
    columns = [d[0] for d in cursor.description]
    for row in cursor:
        yield dict(zip(columns, row, strict=False))


def _prompt_text(messages_json: str) -> str:
    return "\n".join(m["content"] for m in json.loads(messages_json))


def _select(
    store: Store, recipe: Recipe, on_progress: Callable[[int], None] | None
) -> tuple[dict[str, int], RedactionReport]:
    """Fill temp table `pick` with the chosen examples; return counts and the redaction report."""
    conn = store.db.conn
    conn.execute("DROP TABLE IF EXISTS temp.pick")
    conn.execute("DROP TABLE IF EXISTS temp.bands")
    conn.execute(
        "CREATE TEMP TABLE pick (ord INTEGER PRIMARY KEY, feedback_id TEXT, agent TEXT, quality REAL,"
        " skey TEXT, sig BLOB, dropped INTEGER DEFAULT 0)"
    )
    conn.execute("CREATE TEMP TABLE bands (band INTEGER, key INTEGER, ord INTEGER)")
    counts = {"candidates": 0, "length": 0, "low_quality": 0, "exact_duplicates": 0, "near_duplicates": 0}
    seen: set[int] = set()
    report = RedactionReport()
    for ordinal, row in enumerate(_candidates(store, recipe.filters)):
        counts["candidates"] += 1
        if on_progress and counts["candidates"] % 5000 == 0:
            on_progress(counts["candidates"])
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
            conn.executemany(
                "INSERT INTO bands VALUES (?, ?, ?)",
                [(b, k, ordinal) for b, k in enumerate(dedupe.band_keys(signature))],
            )
        conn.execute(
            "INSERT INTO pick (ord, feedback_id, agent, quality, skey, sig) VALUES (?, ?, ?, ?, ?, ?)",
            (ordinal, row["id"], row["agent"], score, split_key(recipe.seed, row["id"]), sig),
        )
        report.add(json.loads(row["redactions"] or "{}"))
    if recipe.dedupe:
        counts["near_duplicates"] = _drop_near_duplicates(conn, recipe.near_duplicate_threshold)
        if counts["near_duplicates"]:
            report = _redactions_of_kept(conn)
    return counts, report


def _drop_near_duplicates(conn, threshold: float) -> int:
    """Within each LSH bucket keep the best-scoring example and drop those similar to a kept one."""
    dropped = 0
    groups = conn.execute("SELECT group_concat(ord) FROM bands GROUP BY band, key HAVING count(*) > 1").fetchall()
    for (members,) in groups:
        ords = [int(o) for o in members.split(",")]
        rows = conn.execute(
            f"SELECT ord, quality, sig FROM pick WHERE dropped = 0 AND ord IN ({','.join('?' * len(ords))})"
            " ORDER BY quality DESC, ord",
            ords,
        ).fetchall()
        kept: list[tuple[int, ...]] = []
        for ordinal, _, blob in rows:
            sig = dedupe.unpack(blob)
            if any(dedupe.similarity(sig, other) >= threshold for other in kept):
                conn.execute("UPDATE pick SET dropped = 1 WHERE ord = ?", (ordinal,))
                dropped += 1
            else:
                kept.append(sig)
    return dropped


def _redactions_of_kept(conn) -> RedactionReport:
    report = RedactionReport()
    for (redactions,) in conn.execute(
        "SELECT f.redactions FROM pick p JOIN feedback f ON f.id = p.feedback_id WHERE p.dropped = 0"
    ):
        report.add(json.loads(redactions or "{}"))
    return report


def _assign_splits(conn, shares: tuple[float, float, float]) -> dict[str, dict[str, int]]:
    conn.execute("ALTER TABLE pick ADD COLUMN split TEXT")
    by_agent: dict[str, dict[str, int]] = {}
    for agent, n in conn.execute(
        "SELECT agent, count(*) FROM pick WHERE dropped = 0 GROUP BY agent ORDER BY agent"
    ).fetchall():
        train, validation, _ = split_sizes(n, shares)
        ordered = conn.execute(
            "SELECT ord FROM pick WHERE dropped = 0 AND agent = ? ORDER BY skey", (agent,)
        ).fetchall()
        assignments = [
            ("train" if i < train else "validation" if i < train + validation else "test", ordinal)
            for i, (ordinal,) in enumerate(ordered)
        ]
        conn.executemany("UPDATE pick SET split = ? WHERE ord = ?", assignments)
        by_agent[agent] = {s: sum(1 for a, _ in assignments if a == s) for s in SPLITS}
    return by_agent


def _content_hash(conn, recipe: Recipe) -> str:
    digest = hashlib.sha256(recipe.model_dump_json().encode())
    for feedback_hash, split in conn.execute(
        "SELECT f.content_hash, p.split FROM pick p JOIN feedback f ON f.id = p.feedback_id"
        " WHERE p.dropped = 0 ORDER BY f.content_hash"
    ):
        digest.update(f"{feedback_hash}:{split}\n".encode())
    return digest.hexdigest()


def _stats(conn) -> dict[str, Any]:
    row = conn.execute(
        "SELECT count(*), avg(length(coalesce(f.final_output, f.ai_output))), max(length(coalesce(f.final_output, f.ai_output))),"
        " sum(length(coalesce(f.final_output, f.ai_output)) + length(f.input_messages) + length(coalesce(f.system_prompt, ''))),"
        " sum(f.final_output IS NOT NULL AND f.final_output != f.ai_output), avg(f.acceptance), avg(p.quality)"
        " FROM pick p JOIN feedback f ON f.id = p.feedback_id WHERE p.dropped = 0"
    ).fetchone()
    n, mean_chars, max_chars, total_chars, edited, acceptance, mean_quality = row
    return {
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
    with store.write() as db:
        conn = db.conn
        counts, report = _select(store, recipe, on_progress)
        by_agent = _assign_splits(conn, recipe.split)
        kept = sum(sum(v.values()) for v in by_agent.values())
        if kept == 0:
            raise InvalidInput(
                f"the recipe selects no examples ({counts['candidates']} candidates matched the filters).",
                hint="Loosen the filters (agents, dates, min rating/acceptance/quality) or ingest feedback first.",
            )
        content_hash = _content_hash(conn, recipe)
        dataset = _ensure_dataset(db, name, actor, description)
        existing = db.execute(
            "SELECT id FROM dataset_versions WHERE dataset_id = ? AND content_hash = ?", (dataset, content_hash)
        ).fetchone()
        if existing:
            version = get_version(store, existing[0])
            return version.model_copy(update={"reused": True})
        number = (
            db.execute("SELECT max(version) FROM dataset_versions WHERE dataset_id = ?", (dataset,)).fetchone()[0] or 0
        ) + 1
        version_id = f"{name}@{number}"
        counts.update(
            examples=kept,
            splits={s: sum(v[s] for v in by_agent.values()) for s in SPLITS},
            by_agent=by_agent,
        )
        db["dataset_versions"].insert(
            {
                "id": version_id, "dataset_id": dataset, "version": number,
                "filters": recipe.model_dump_json(), "split_seed": recipe.seed, "counts": json.dumps(counts),
                "token_stats": json.dumps(_stats(conn)), "content_hash": content_hash,
                "redaction_report": report.model_dump_json(), "created_by": str(actor), "created_at": iso(),
            }
        )  # fmt: skip
        conn.execute(
            "INSERT INTO dataset_examples (dataset_version_id, feedback_id, split, quality)"
            " SELECT ?, feedback_id, split, quality FROM pick WHERE dropped = 0",
            (version_id,),
        )
        audit.record(store, actor, "build_dataset", {"name": name, "recipe": recipe.model_dump()}, detail=version_id)
    conn.execute("DROP TABLE IF EXISTS temp.pick")
    conn.execute("DROP TABLE IF EXISTS temp.bands")
    return get_version(store, version_id)


def _ensure_dataset(db, name: str, actor: Actor, description: str | None) -> str:
    row = db.execute("SELECT id FROM datasets WHERE name = ?", (name,)).fetchone()
    if row:
        return row[0]
    db["datasets"].insert(
        {"id": name, "name": name, "description": description, "created_by": str(actor), "created_at": iso()}
    )
    return name


# Reading -------------------------------------------------------------------------------------------


def resolve_version(store: Store, ref: str) -> str:
    """`name@N` or `name` (latest) -> version id; NotFound with the known ids otherwise."""
    ref = (ref or "").strip()
    if "@" in ref:
        if store.scalar("SELECT 1 FROM dataset_versions WHERE id = ?", (ref,)):
            return ref
    else:
        latest = store.scalar(
            "SELECT id FROM dataset_versions WHERE dataset_id = ? ORDER BY version DESC LIMIT 1", (ref,)
        )
        if latest:
            return latest
    known = [r["id"] for r in store.query("SELECT id FROM dataset_versions ORDER BY created_at DESC LIMIT 10")]
    raise NotFound(
        f"no dataset version {ref!r}.",
        hint=f"Known versions: {', '.join(known)}." if known else "Build one first: finetune data build NAME.",
        version=ref,
    )


def get_version(store: Store, ref: str) -> DatasetVersion:
    version_id = resolve_version(store, ref)
    row = store.query("SELECT * FROM dataset_versions WHERE id = ?", (version_id,))[0]
    return DatasetVersion(
        id=row["id"], dataset=row["dataset_id"], version=row["version"],
        recipe=Recipe.model_validate_json(row["filters"]), counts=json.loads(row["counts"]),
        stats=json.loads(row["token_stats"]), redaction_report=RedactionReport.model_validate_json(row["redaction_report"]),
        content_hash=row["content_hash"], created_by=row["created_by"], created_at=row["created_at"],
    )  # fmt: skip


def list_datasets(store: Store) -> DatasetList:
    rows = store.query(
        "SELECT d.name, d.created_at, count(v.id) AS versions, max(v.version) AS latest_version FROM datasets d"
        " LEFT JOIN dataset_versions v ON v.dataset_id = d.id GROUP BY d.id ORDER BY d.name"
    )
    summaries = []
    for row in rows:
        latest = f"{row['name']}@{row['latest_version']}" if row["latest_version"] else None
        examples = (
            store.scalar("SELECT count(*) FROM dataset_examples WHERE dataset_version_id = ?", (latest,))
            if latest
            else 0
        )
        summaries.append(
            DatasetSummary(
                name=row["name"],
                versions=row["versions"],
                latest=latest,
                latest_examples=examples,
                created_at=row["created_at"],
            )
        )
    return DatasetList(datasets=summaries)


def examples(store: Store, version_id: str, *, split: str | None = None) -> Iterator[Example]:
    """Stream a version's examples in a stable order (by feedback id)."""
    where, params = "e.dataset_version_id = ?", [version_id]
    if split:
        where += " AND e.split = ?"
        params.append(split)
    cursor = store.db.conn.execute(
        "SELECT f.id, f.agent, f.system_prompt, f.input_messages, f.ai_output, f.final_output"
        f" FROM dataset_examples e JOIN feedback f ON f.id = e.feedback_id WHERE {where} ORDER BY f.id",
        params,
    )
    for feedback_id, agent, system, messages, output, final in cursor:
        yield Example(
            id=feedback_id, agent=agent, system=system, messages=tuple(json.loads(messages)), output=output, final=final
        )


def diff_versions(store: Store, a: str, b: str, *, sample: int = 5) -> VersionDiff:
    va, vb = get_version(store, a), get_version(store, b)
    conn = store.db.conn
    query = (
        "SELECT count(*) FROM dataset_examples x WHERE x.dataset_version_id = ? AND NOT EXISTS"
        " (SELECT 1 FROM dataset_examples y WHERE y.dataset_version_id = ? AND y.feedback_id = x.feedback_id)"
    )
    sample_query = query.replace("count(*)", "x.feedback_id") + " ORDER BY x.feedback_id LIMIT ?"
    added = conn.execute(query, (vb.id, va.id)).fetchone()[0]
    removed = conn.execute(query, (va.id, vb.id)).fetchone()[0]
    kept, moved = conn.execute(
        "SELECT count(*), sum(x.split != y.split) FROM dataset_examples x JOIN dataset_examples y"
        " ON y.feedback_id = x.feedback_id AND y.dataset_version_id = ? WHERE x.dataset_version_id = ?",
        (vb.id, va.id),
    ).fetchone()
    ra, rb = _flatten(va.recipe.model_dump()), _flatten(vb.recipe.model_dump())
    ca, cb = (
        _flatten({k: v for k, v in va.counts.items() if k != "by_agent"}),
        _flatten({k: v for k, v in vb.counts.items() if k != "by_agent"}),
    )
    return VersionDiff(
        a=va.id, b=vb.id, added=added, removed=removed, kept=kept, moved_split=moved or 0,
        sample_added=[r[0] for r in conn.execute(sample_query, (vb.id, va.id, sample))],
        sample_removed=[r[0] for r in conn.execute(sample_query, (va.id, vb.id, sample))],
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
