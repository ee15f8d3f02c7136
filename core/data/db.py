"""All of the data capability's SQL: feedback, datasets, their versions and examples, exports.

Functions take the `Store` and plain values and return rows, ids or counts; the
service modules (`feedback`, `datasets`, `exports`) decide what to do and hold
the transactions (`store.write()`): every function here runs on the calling
thread's connection, so inside a `write()` block it is part of that transaction.

An ingest stages its events in a database file of its own, attached as
`stage` (see "staging an ingest" below), and publishes them into `feedback` at
once.

Building a version works in two temporary tables of the building connection:
`pick` (one row per candidate example that survived the filters: its feedback
id, agent, quality, split key, MinHash signature, whether it was dropped as a
near duplicate, and later its split) and `bands` (the LSH band keys of each
pick, to find near-duplicate candidates).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from core.platform.store import Store

# ---------------------------------------------------------------- feedback

FEEDBACK_COLUMNS = (
    "id", "content_hash", "agent", "intent", "system_prompt", "input_messages", "ai_output", "final_output",
    "rating", "model", "template", "latency_ms", "cost_usd", "user", "tags", "metadata", "acceptance",
    "edit_ops", "redactions", "created_at", "ingested_at", "model_version", "arm",
)  # fmt: skip

EventValues = tuple[Any, ...]
"""One feedback row in `FEEDBACK_COLUMNS` order, ready to insert."""


def event_values(row: dict[str, Any]) -> EventValues:
    """A prepared event as the values of one feedback row (pure: runs in worker processes)."""
    dumps = json.dumps
    return (
        row["id"], row["content_hash"], row["agent"], row["intent"], row["system_prompt"],
        dumps(row["messages"], ensure_ascii=False), row["ai_output"], row["final_output"], row["rating"],
        row["model"], row["template"], row["latency_ms"], row["cost_usd"], row["user"], dumps(row["tags"]),
        dumps(row["metadata"], ensure_ascii=False, default=str), row["acceptance"], dumps(row["edit_ops"]),
        dumps(row["redactions"]), row["created_at"], row["ingested_at"], row["model_version"], row["arm"],
    )  # fmt: skip


# ---------------------------------------------------------------- staging an ingest
#
# An ingest stages its new events in a database file of its own, attached to the
# ingesting connection as `stage` (`core.data.staging` owns the file). Writing
# there takes no lock on the store, and nothing else ever reads it; publishing
# copies the staged rows into `feedback` in one write transaction.

_STAGED_COLUMNS = ("line", *FEEDBACK_COLUMNS)
_LOOKUP_CHUNK = 500  # ids or hashes per lookup, well within SQLite's limit on parameters


def attach_stage(store: Store, path: str) -> None:
    """Attach the staging file at `path` as `stage` and create its table (outside any transaction)."""
    conn = store.db.conn
    conn.execute("ATTACH DATABASE ? AS stage", (path,))
    conn.execute("PRAGMA stage.journal_mode = MEMORY")  # scratch data: a crash loses nothing worth keeping
    conn.execute("PRAGMA stage.synchronous = OFF")
    columns = ", ".join(
        "id TEXT PRIMARY KEY" if c == "id" else "content_hash TEXT NOT NULL UNIQUE" if c == "content_hash" else c
        for c in _STAGED_COLUMNS
    )
    conn.execute(f"CREATE TABLE stage.events ({columns})")


def detach_stage(store: Store) -> None:
    store.db.conn.execute("DETACH DATABASE stage")


def known_events(store: Store, ids: list[str], hashes: list[str]) -> tuple[dict[str, str], set[str]]:
    """Of these ids and content hashes, those already stored or staged: {id: its content hash}, {hash}."""
    conn = store.db.conn
    by_id: dict[str, str] = {}
    known_hashes: set[str] = set()
    for part in _chunks(ids):
        marks = ", ".join("?" * len(part))
        for table in ("main.feedback", "stage.events"):
            sql = f"SELECT id, content_hash FROM {table} WHERE id IN ({marks})"
            by_id.update((str(i), str(h)) for i, h in conn.execute(sql, part))
    for part in _chunks(hashes):
        marks = ", ".join("?" * len(part))
        for table in ("main.feedback", "stage.events"):
            sql = f"SELECT content_hash FROM {table} WHERE content_hash IN ({marks})"
            known_hashes.update(str(h) for (h,) in conn.execute(sql, part))
    return by_id, known_hashes


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _LOOKUP_CHUNK):
        yield values[start : start + _LOOKUP_CHUNK]


def feedback_stored(store: Store, event_id: str) -> bool:
    """Whether a published feedback event has this id."""
    return store.scalar("SELECT 1 FROM feedback WHERE id = ?", (event_id,)) is not None


def known_agents(store: Store, limit: int) -> list[str]:
    """The distinct agents of stored feedback, alphabetically: one index step per agent, never a full scan."""
    rows = store.query(
        """WITH RECURSIVE seen(agent) AS (
               SELECT min(agent) FROM feedback
               UNION ALL
               SELECT (SELECT min(agent) FROM feedback WHERE agent > seen.agent) FROM seen
               WHERE seen.agent IS NOT NULL
           )
           SELECT agent FROM seen WHERE agent IS NOT NULL LIMIT ?""",
        (limit,),
    )
    return [str(row["agent"]) for row in rows]


def stage_events(store: Store, rows: list[tuple[int, EventValues]]) -> None:
    """Stage (line, row values) pairs of new events, in a transaction of the staging file alone."""
    if not rows:
        return
    conn = store.db.conn
    sql = f"INSERT INTO stage.events ({', '.join(_STAGED_COLUMNS)}) VALUES ({', '.join('?' * len(_STAGED_COLUMNS))})"
    conn.execute("BEGIN")
    try:
        conn.executemany(sql, ((line, *values) for line, values in rows))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def staged_id_conflicts(store: Store) -> list[tuple[int, str]]:
    """(line, id) of staged events whose id was stored since, with other content, in line order."""
    rows = store.db.conn.execute(
        "SELECT s.line, s.id FROM stage.events s JOIN main.feedback f ON f.id = s.id"
        " WHERE f.content_hash != s.content_hash ORDER BY s.rowid"
    ).fetchall()
    return [(int(line), str(event_id)) for line, event_id in rows]


def unstage(store: Store, ids: list[str]) -> None:
    for part in _chunks(ids):
        store.db.conn.execute(f"DELETE FROM stage.events WHERE id IN ({', '.join('?' * len(part))})", part)


_PUBLISH_CACHE_KIB = 32 * 1024  # page cache while publishing: the indexes' pages stay in memory


def publish_staged(store: Store) -> int:
    """Copy the staged events into `feedback`, in line order; how many were new (inside a write transaction).

    Events are staged in line order, so rowid order is line order, and no sort holds up the writer.
    """
    conn = store.db.conn
    columns = ", ".join(FEEDBACK_COLUMNS)
    cache = conn.execute("PRAGMA main.cache_size").fetchone()[0]
    conn.execute(f"PRAGMA main.cache_size = -{_PUBLISH_CACHE_KIB}")
    try:
        cursor = conn.execute(
            f"INSERT OR IGNORE INTO main.feedback ({columns}) SELECT {columns} FROM stage.events ORDER BY rowid"
        )
        return int(cursor.rowcount)
    finally:
        conn.execute(f"PRAGMA main.cache_size = {int(cache)}")


def feedback_candidates(
    store: Store,
    *,
    agents: list[str],
    intents: list[str],
    templates: list[str],
    models: list[str],
    tags: list[str],
    since: str | None,
    until: str | None,
    min_rating: float | None,
    min_acceptance: float | None,
    edited_only: bool,
) -> Iterator[dict[str, Any]]:
    """Stream the feedback events that match, oldest first, with what curation reads of them."""
    where, params = _feedback_where(
        {"agent": agents, "intent": intents, "template": templates, "model": models},
        tags=tags, since=since, until=until, min_rating=min_rating, min_acceptance=min_acceptance,
        edited_only=edited_only,
    )  # fmt: skip
    sql = (
        "SELECT rowid, id, agent, rating, input_messages, ai_output, final_output, redactions, edit_ops FROM feedback"
        f"{where} ORDER BY created_at, id"
    )
    cursor = store.db.conn.execute(sql, params)
    columns = [d[0] for d in cursor.description]
    for row in cursor:
        yield dict(zip(columns, row, strict=False))


def _feedback_where(
    any_of: dict[str, list[str]],
    *,
    tags: list[str],
    since: str | None,
    until: str | None,
    min_rating: float | None,
    min_acceptance: float | None,
    edited_only: bool,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in any_of.items():
        if values:
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    if tags:
        clauses.append(f"EXISTS (SELECT 1 FROM json_each(feedback.tags) WHERE value IN ({', '.join('?' * len(tags))}))")
        params.extend(tags)
    if since:
        clauses.append("created_at >= ?")
        params.append(since)
    if until:
        clauses.append("created_at < ?")
        params.append(until)
    if min_rating is not None:
        clauses.append("rating >= ?")
        params.append(min_rating)
    if min_acceptance is not None:
        clauses.append("acceptance >= ?")
        params.append(min_acceptance)
    if edited_only:
        clauses.append("final_output IS NOT NULL AND final_output != ai_output")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


# ---------------------------------------------------------------- building a version (temporary tables)


def start_picking(store: Store) -> None:
    """Create empty `pick` and `bands` tables on this connection (dropping any left from before)."""
    conn = store.db.conn
    drop_picks(store)
    conn.execute(
        "CREATE TEMP TABLE pick (ord INTEGER PRIMARY KEY, feedback_id TEXT, agent TEXT, quality REAL,"
        " skey TEXT, sig BLOB, dropped INTEGER DEFAULT 0)"
    )
    conn.execute("CREATE TEMP TABLE bands (band INTEGER, key INTEGER, ord INTEGER)")


def drop_picks(store: Store) -> None:
    conn = store.db.conn
    conn.execute("DROP TABLE IF EXISTS temp.pick")
    conn.execute("DROP TABLE IF EXISTS temp.bands")


def add_band_keys(store: Store, ordinal: int, keys: Iterable[int]) -> None:
    """Record pick `ordinal`'s LSH key of each band."""
    store.db.conn.executemany(
        "INSERT INTO bands VALUES (?, ?, ?)", [(band, key, ordinal) for band, key in enumerate(keys)]
    )


def add_pick(
    store: Store, *, ordinal: int, feedback_id: str, agent: str, quality: float, split_key: str, sig: bytes | None
) -> None:
    store.db.conn.execute(
        "INSERT INTO pick (ord, feedback_id, agent, quality, skey, sig) VALUES (?, ?, ?, ?, ?, ?)",
        (ordinal, feedback_id, agent, quality, split_key, sig),
    )


def band_groups(store: Store) -> list[list[int]]:
    """The ordinals of picks sharing a band key, one list per shared key."""
    groups = store.db.conn.execute(
        "SELECT group_concat(ord) FROM bands GROUP BY band, key HAVING count(*) > 1"
    ).fetchall()
    return [[int(o) for o in members.split(",")] for (members,) in groups]


def kept_picks(store: Store, ordinals: list[int]) -> list[tuple[int, float, bytes]]:
    """(ordinal, quality, signature) of the picks in `ordinals` not dropped yet, best quality first."""
    rows = store.db.conn.execute(
        f"SELECT ord, quality, sig FROM pick WHERE dropped = 0 AND ord IN ({','.join('?' * len(ordinals))})"
        " ORDER BY quality DESC, ord",
        ordinals,
    ).fetchall()
    return [(int(ordinal), float(quality), bytes(sig)) for ordinal, quality, sig in rows]


def drop_pick(store: Store, ordinal: int) -> None:
    store.db.conn.execute("UPDATE pick SET dropped = 1 WHERE ord = ?", (ordinal,))


def kept_redactions(store: Store) -> Iterator[str | None]:
    """The stored redaction counts (JSON) of every kept pick."""
    for (redactions,) in store.db.conn.execute(
        "SELECT f.redactions FROM pick p JOIN feedback f ON f.id = p.feedback_id WHERE p.dropped = 0"
    ):
        yield redactions


def add_split_column(store: Store) -> None:
    store.db.conn.execute("ALTER TABLE pick ADD COLUMN split TEXT")


def kept_agents(store: Store) -> list[tuple[str, int]]:
    """(agent, kept picks) per agent, by agent."""
    rows = store.db.conn.execute(
        "SELECT agent, count(*) FROM pick WHERE dropped = 0 GROUP BY agent ORDER BY agent"
    ).fetchall()
    return [(str(agent), int(n)) for agent, n in rows]


def kept_ordinals_by_split_key(store: Store, agent: str) -> list[int]:
    rows = store.db.conn.execute(
        "SELECT ord FROM pick WHERE dropped = 0 AND agent = ? ORDER BY skey", (agent,)
    ).fetchall()
    return [int(ordinal) for (ordinal,) in rows]


def set_splits(store: Store, assignments: list[tuple[str, int]]) -> None:
    """Write (split, ordinal) pairs."""
    store.db.conn.executemany("UPDATE pick SET split = ? WHERE ord = ?", assignments)


def kept_content_hashes(store: Store) -> Iterator[tuple[str, str]]:
    """(feedback content hash, split) of every kept pick, by content hash."""
    yield from store.db.conn.execute(
        "SELECT f.content_hash, p.split FROM pick p JOIN feedback f ON f.id = p.feedback_id"
        " WHERE p.dropped = 0 ORDER BY f.content_hash"
    )


def kept_stats(store: Store) -> tuple[Any, ...]:
    """(examples, mean and max completion chars, total chars, edited, mean acceptance, mean quality) of the kept picks."""
    row: tuple[Any, ...] = store.db.conn.execute(
        "SELECT count(*), avg(length(coalesce(f.final_output, f.ai_output))), max(length(coalesce(f.final_output, f.ai_output))),"
        " sum(length(coalesce(f.final_output, f.ai_output)) + length(f.input_messages) + length(coalesce(f.system_prompt, ''))),"
        " sum(f.final_output IS NOT NULL AND f.final_output != f.ai_output), avg(f.acceptance), avg(p.quality)"
        " FROM pick p JOIN feedback f ON f.id = p.feedback_id WHERE p.dropped = 0"
    ).fetchone()
    return row


# ---------------------------------------------------------------- datasets and versions


def ensure_dataset(store: Store, *, name: str, description: str | None, created_by: str, created_at: str) -> str:
    """The id of dataset `name`, created when it does not exist yet."""
    row = store.db.execute("SELECT id FROM datasets WHERE name = ?", (name,)).fetchone()
    if row:
        return str(row[0])
    store.db.table("datasets").insert(
        {"id": name, "name": name, "description": description, "created_by": created_by, "created_at": created_at}
    )
    return name


def version_with_hash(store: Store, dataset_id: str, content_hash: str) -> str | None:
    row = store.db.execute(
        "SELECT id FROM dataset_versions WHERE dataset_id = ? AND content_hash = ?", (dataset_id, content_hash)
    ).fetchone()
    return None if row is None else str(row[0])


def next_version_number(store: Store, dataset_id: str) -> int:
    latest = store.db.execute(
        "SELECT max(version) FROM dataset_versions WHERE dataset_id = ?", (dataset_id,)
    ).fetchone()
    return int(latest[0] or 0) + 1


def insert_version(
    store: Store,
    *,
    version_id: str,
    dataset_id: str,
    number: int,
    recipe_json: str,
    seed: int,
    counts_json: str,
    stats_json: str,
    content_hash: str,
    redaction_report_json: str,
    created_by: str,
    created_at: str,
) -> None:
    """Record a version and its examples (the kept picks, with their splits)."""
    store.db.table("dataset_versions").insert(
        {
            "id": version_id, "dataset_id": dataset_id, "version": number,
            "filters": recipe_json, "split_seed": seed, "counts": counts_json,
            "token_stats": stats_json, "content_hash": content_hash,
            "redaction_report": redaction_report_json, "created_by": created_by, "created_at": created_at,
        }
    )  # fmt: skip
    store.db.conn.execute(
        "INSERT INTO dataset_examples (dataset_version_id, feedback_id, split, quality)"
        " SELECT ?, feedback_id, split, quality FROM pick WHERE dropped = 0",
        (version_id,),
    )


def version_exists(store: Store, version_id: str) -> bool:
    return bool(store.scalar("SELECT 1 FROM dataset_versions WHERE id = ?", (version_id,)))


def latest_version_id(store: Store, dataset_id: str) -> str | None:
    latest = store.scalar(
        "SELECT id FROM dataset_versions WHERE dataset_id = ? ORDER BY version DESC LIMIT 1", (dataset_id,)
    )
    return None if latest is None else str(latest)


def recent_version_ids(store: Store, limit: int = 10) -> list[str]:
    rows = store.query("SELECT id FROM dataset_versions ORDER BY created_at DESC LIMIT ?", (limit,))
    return [str(row["id"]) for row in rows]


def version_row(store: Store, version_id: str) -> dict[str, Any]:
    """The stored row of an existing version."""
    row: dict[str, Any] = store.query("SELECT * FROM dataset_versions WHERE id = ?", (version_id,))[0]
    return row


def dataset_summaries(store: Store) -> list[dict[str, Any]]:
    """name, created_at, versions and latest_version of every dataset, by name."""
    rows: list[dict[str, Any]] = store.query(
        "SELECT d.name, d.created_at, count(v.id) AS versions, max(v.version) AS latest_version FROM datasets d"
        " LEFT JOIN dataset_versions v ON v.dataset_id = d.id GROUP BY d.id ORDER BY d.name"
    )
    return rows


def example_count(store: Store, version_id: str) -> int:
    return int(store.scalar("SELECT count(*) FROM dataset_examples WHERE dataset_version_id = ?", (version_id,)))


ExampleRow = tuple[str, str, str | None, str, str, str | None]
"""(feedback id, agent, system prompt, input messages JSON, AI output, final output)."""


def version_examples(store: Store, version_id: str, *, split: str | None = None) -> Iterator[ExampleRow]:
    """Stream a version's examples, by feedback id."""
    where, params = "e.dataset_version_id = ?", [version_id]
    if split:
        where += " AND e.split = ?"
        params.append(split)
    cursor = store.db.conn.execute(
        "SELECT f.id, f.agent, f.system_prompt, f.input_messages, f.ai_output, f.final_output"
        f" FROM dataset_examples e JOIN feedback f ON f.id = e.feedback_id WHERE {where} ORDER BY f.id",
        params,
    )
    yield from cursor


_ONLY_IN = (
    "SELECT count(*) FROM dataset_examples x WHERE x.dataset_version_id = ? AND NOT EXISTS"
    " (SELECT 1 FROM dataset_examples y WHERE y.dataset_version_id = ? AND y.feedback_id = x.feedback_id)"
)


def count_only_in(store: Store, version_id: str, other_id: str) -> int:
    """Examples of `version_id` that `other_id` lacks."""
    return int(store.db.conn.execute(_ONLY_IN, (version_id, other_id)).fetchone()[0])


def sample_only_in(store: Store, version_id: str, other_id: str, limit: int) -> list[str]:
    """The first `limit` feedback ids (by id) of examples of `version_id` that `other_id` lacks."""
    sql = _ONLY_IN.replace("count(*)", "x.feedback_id") + " ORDER BY x.feedback_id LIMIT ?"
    return [str(row[0]) for row in store.db.conn.execute(sql, (version_id, other_id, limit))]


def kept_and_moved(store: Store, a: str, b: str) -> tuple[int, int]:
    """Examples in both versions, and how many of those changed split."""
    kept, moved = store.db.conn.execute(
        "SELECT count(*), sum(x.split != y.split) FROM dataset_examples x JOIN dataset_examples y"
        " ON y.feedback_id = x.feedback_id AND y.dataset_version_id = ? WHERE x.dataset_version_id = ?",
        (b, a),
    ).fetchone()
    return int(kept), int(moved or 0)


# ---------------------------------------------------------------- exports


def save_export(
    store: Store,
    *,
    version_id: str,
    target: str,
    model: str,
    directory: str,
    metadata_json: str,
    created_by: str,
    created_at: str,
) -> None:
    """Record an export (replacing an earlier one of the same version, target and model, and its validation)."""
    store.db.table("dataset_exports").upsert(
        {
            "dataset_version_id": version_id, "target": target, "model": model, "directory": directory,
            "metadata": metadata_json, "validation": None, "created_by": created_by, "created_at": created_at,
        },
        pk=("dataset_version_id", "target", "model"),
    )  # fmt: skip


def export_metadata(store: Store, *, version_id: str, target: str, model: str) -> str | None:
    """The stored export's metadata (JSON), or None when there is no such export."""
    rows = store.query(
        "SELECT metadata FROM dataset_exports WHERE dataset_version_id = ? AND target = ? AND model = ?",
        (version_id, target, model),
    )
    return str(rows[0]["metadata"]) if rows else None


def export_validation(store: Store, *, version_id: str, target: str, model: str) -> str | None:
    """The stored export's validation (JSON), or None when there is no such export or it was not validated."""
    rows = store.query(
        "SELECT validation FROM dataset_exports WHERE dataset_version_id = ? AND target = ? AND model = ?",
        (version_id, target, model),
    )
    return str(rows[0]["validation"]) if rows and rows[0]["validation"] else None


def save_export_validation(store: Store, *, version_id: str, target: str, model: str, validation_json: str) -> None:
    store.db.execute(
        "UPDATE dataset_exports SET validation = ? WHERE dataset_version_id = ? AND target = ? AND model = ?",
        (validation_json, version_id, target, model),
    )


def feedback_span(store: Store, version_id: str) -> tuple[str | None, str | None]:
    """When the oldest and the newest feedback event in a dataset version were written."""
    row = store.query(
        """SELECT min(f.created_at) AS first, max(f.created_at) AS last
           FROM dataset_examples de JOIN feedback f ON f.id = de.feedback_id
           WHERE de.dataset_version_id = ?""",
        (version_id,),
    )[0]
    return row["first"], row["last"]
