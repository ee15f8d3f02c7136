"""Ingesting feedback events: read, validate, redact, derive, stage, publish — all or nothing.

What an event holds, and how each field is checked and bounded, is
`core.data.fields`; how files are read (JSONL or CSV, UTF-8 or UTF-16/32) is
`core.data.sources`. A field map (`output=model_output,...`) reads a log's own
names.

The identity of an event is the hash of its content as given (before
redaction), so ingesting the same events again changes nothing, and an event
id already stored with other content is refused, never overwritten. When
redaction is on, every stored text is redacted: messages, output, final,
system, the identifiers (agent, intent, user, template, model), tags and
metadata.

All or nothing without locking others out: valid events are staged in a file of
the ingest's own (`core.data.staging`) while the input is read, so the store's
write lock is never held for long; once every line has been read, one short
transaction publishes them, bumps the `feedback_events` counter and writes the
audit row. With any bad line nothing is published (unless `skip_invalid`,
which publishes the good lines and reports each bad one).

Outcomes (`record_outcomes`) are the batches that applications (`POST
/v1/feedback`) and agents that serve drafts (MCP `record_outcomes`) send as
they go: at most `MAX_OUTCOMES` events each, naming the version and arm that
served them, through the same ingest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from core.data import db, edits
from core.data.db import EventValues
from core.data.fields import FIELDS, BadField, normalise, redact_row
from core.data.pii import RedactionReport, Redactor
from core.data.sources import BLANK, LineError, decode_json_line, read_events
from core.data.staging import staging_area
from core.errors import InvalidInput
from core.platform import audit, counters
from core.platform.actors import Actor
from core.platform.parallel import ordered_map
from core.platform.store import Store
from core.platform.timeutil import iso

__all__ = [
    "FIELDS",
    "MAX_OUTCOMES",
    "IngestRejected",
    "IngestReport",
    "LineError",
    "TooManyEvents",
    "check_field_map",
    "ingest",
    "ingest_batch",
    "ingest_file",
    "parse_field_map",
    "prepare",
    "read_events",
    "record_outcomes",
]

MAX_ERRORS_KEPT = 1000
CHUNK = 2000  # events per worker task: large enough to amortise pickling
PARALLEL_FROM_BYTES = 8 * 2**20
MAX_OUTCOMES = 1000  # events per outcome batch: a few seconds of an application's traffic


class IngestReport(BaseModel):
    source: str
    lines: int = Field(description="Events read (blank lines excluded).")
    ingested: int = Field(description="New events stored.")
    duplicates: int = Field(description="Events already stored (same content); nothing changed for them.")
    skipped: int = Field(description="Invalid events left out (only with skip_invalid).")
    error_count: int
    errors: list[LineError] = Field(description=f"The first {MAX_ERRORS_KEPT} errors, in line order.")
    redactions: RedactionReport


class IngestRejected(InvalidInput):
    """The input had invalid events, so nothing was stored."""

    def __init__(self, report: IngestReport) -> None:
        first = report.errors[0]
        where = f"line {first.line}" + (f", field `{first.field}`" if first.field else "")
        super().__init__(
            f"{report.error_count} invalid event(s) in {report.source}; nothing was stored. First: {where}: "
            f"{first.message}",
            hint=f"{first.hint} Or pass --skip-invalid to store the valid events and report the rest.",
        )
        self.report = report


class TooManyEvents(InvalidInput):
    """An outcome batch holds more events than one batch may."""

    def __init__(self, count: int) -> None:
        super().__init__(
            f"`events` holds {count:,} events; a batch takes at most {MAX_OUTCOMES:,}.",
            hint=f"Send them in batches of at most {MAX_OUTCOMES:,}; re-sending an event stores nothing twice.",
            count=count,
        )


# Field maps ------------------------------------------------------------------------------------


def parse_field_map(text: str | None) -> dict[str, str]:
    """`output=model_output,final=final_output` -> {"output": "model_output", ...} (ours = theirs)."""
    if not text:
        return {}
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        ours, sep, theirs = part.partition("=")
        ours, theirs = ours.strip(), theirs.strip()
        if not sep or not ours or not theirs:
            raise InvalidInput(
                f"cannot read field map entry {part!r}.",
                hint="Write OURS=THEIRS pairs, e.g. output=model_output,final=edited.",
            )
        mapping[ours] = theirs
    return check_field_map(mapping)


def check_field_map(mapping: dict[str, str]) -> dict[str, str]:
    for ours in mapping:
        if ours not in FIELDS:
            raise InvalidInput(f"field map names unknown field {ours!r}.", hint=f"Map one of: {', '.join(FIELDS)}.")
    return mapping


# One event ---------------------------------------------------------------------------------------


def prepare(
    item: tuple[int, Any], field_map: dict[str, str], redactor: Redactor | None, ingested_at: str
) -> tuple[int, dict[str, Any] | LineError | None]:
    """One event -> (line, row with derived fields), (line, LineError) or (line, None) for a blank line.

    Pure, so it runs in worker processes. `raw` is a JSONL line's bytes, a CSV row's dict, an in-memory
    event, or a LineError from the reader.
    """
    number, raw = item
    if isinstance(raw, bytes):
        raw = decode_json_line(raw, number)
    if raw is BLANK:
        return number, None
    if isinstance(raw, LineError):
        return number, raw
    try:
        row = normalise(raw, field_map)
    except BadField as bad:
        return number, _line_error(number, bad, field_map)
    row["redactions"] = redact_row(row, redactor) if redactor is not None else {}
    summary = edits.compare(row["ai_output"], row["final_output"])
    row["acceptance"] = summary.acceptance
    row["edit_ops"] = [op.model_dump() for op in summary.ops]
    row["created_at"] = row["created_at"] or ingested_at
    row["ingested_at"] = ingested_at
    return number, row


def _line_error(number: int, bad: BadField, field_map: dict[str, str]) -> LineError:
    """The error of a line, naming the field as the input does (`model_output (mapped to output)`)."""
    field = bad.field
    if field is not None:
        root = field.split("[")[0].split(".")[0]
        if root in field_map:
            field = field.replace(root, f"{field_map[root]} (mapped to {root})", 1)
    return LineError(
        line=number, field=field, message=f"`{field}` {bad.message}" if field else bad.message, hint=bad.hint
    )


Prepared = tuple[EventValues, dict[str, int]] | LineError | None
"""A prepared event: its row values and redaction counts, why it is invalid, or None for a blank line."""
_Chunk = tuple[list[tuple[int, Any]], dict[str, str], bool, str]


def _prepare_chunk(args: _Chunk) -> list[tuple[int, Prepared]]:
    """Worker: prepare a chunk; valid events come back as (line, (row values, redactions))."""
    chunk, field_map, redact, ingested_at = args
    redactor = Redactor() if redact else None
    out: list[tuple[int, Prepared]] = []
    for item in chunk:
        number, prepared = prepare(item, field_map, redactor, ingested_at)
        if isinstance(prepared, dict):
            out.append((number, (db.event_values(prepared), prepared["redactions"])))
        else:
            out.append((number, prepared))
    return out


def _prepared_chunks(
    items: Iterable[tuple[int, Any]], field_map: dict[str, str], redact: bool, workers: int
) -> Iterator[list[tuple[int, Prepared]]]:
    """Prepared chunks of events, in input order."""
    ingested_at = iso()
    remaining = iter(items)
    chunks = ((chunk, field_map, redact, ingested_at) for chunk in iter(lambda: list(islice(remaining, CHUNK)), []))
    return ordered_map(_prepare_chunk, chunks, workers=workers)


# Staging and publishing --------------------------------------------------------------------------


def ingest(
    store: Store,
    items: Iterable[tuple[int, Any]],
    *,
    actor: Actor,
    source: str,
    field_map: dict[str, str] | None = None,
    skip_invalid: bool = False,
    redact: bool = True,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Store events given as (line number, raw event) pairs: staged while read, published in one transaction."""
    field_map = check_field_map(field_map or {})
    report = IngestReport(
        source=source, lines=0, ingested=0, duplicates=0, skipped=0, error_count=0, errors=[],
        redactions=RedactionReport(),
    )  # fmt: skip
    try:
        with staging_area(store):
            for chunk in _prepared_chunks(items, field_map, redact, workers or 1):
                _stage_chunk(store, chunk, report, skip_invalid=skip_invalid)
                if on_progress:
                    on_progress(report.lines)
            if report.error_count and not skip_invalid:
                raise IngestRejected(report)
            _publish(store, report, actor=actor, skip_invalid=skip_invalid, args={
                "source": source, "field_map": field_map, "skip_invalid": skip_invalid, "redact": redact,
            })  # fmt: skip
    except IngestRejected:
        audit.record(
            store, actor, "ingest", {"source": source}, outcome="error", detail=f"{report.error_count} invalid"
        )
        raise
    if on_progress:
        on_progress(report.lines)
    return report


def _stage_chunk(store: Store, chunk: list[tuple[int, Prepared]], report: IngestReport, *, skip_invalid: bool) -> None:
    batch = []
    for number, prepared in chunk:
        if prepared is None:
            continue
        report.lines += 1
        if isinstance(prepared, LineError):
            _add_error(report, prepared)
        elif skip_invalid or not report.error_count:  # once rejected, only keep checking lines
            batch.append((number, *prepared))
    _stage_batch(store, batch, report)


def _stage_batch(store: Store, batch: list[tuple[int, EventValues, dict[str, int]]], report: IngestReport) -> None:
    """Stage the new events of a batch; count duplicates; refuse an id already used for other content."""
    if not batch:
        return
    known_ids, known_hashes = db.known_events(store, [v[0] for _, v, _ in batch], [v[1] for _, v, _ in batch])
    new: list[tuple[int, EventValues]] = []
    for number, values, redactions in batch:
        event_id, event_hash = values[0], values[1]
        stored_hash = known_ids.get(event_id)
        if stored_hash is not None and stored_hash != event_hash:
            _add_error(report, _id_conflict(number, event_id))
        elif stored_hash is not None or event_hash in known_hashes:
            report.duplicates += 1
        else:
            new.append((number, values))
            known_ids[event_id] = event_hash
            known_hashes.add(event_hash)
            report.ingested += 1
            report.redactions.add(redactions)
    db.stage_events(store, new)


def _publish(store: Store, report: IngestReport, *, actor: Actor, skip_invalid: bool, args: dict[str, Any]) -> None:
    """Make every staged event visible at once, with the counter and the audit row."""
    with store.write():
        raced = db.staged_id_conflicts(store)  # stored by another process since they were staged
        for number, event_id in raced:
            _add_error(report, _id_conflict(number, event_id))
        if raced and not skip_invalid:
            raise IngestRejected(report)
        db.unstage(store, [event_id for _, event_id in raced])
        staged = report.ingested - len(raced)
        report.ingested = db.publish_staged(store)
        report.duplicates += staged - report.ingested  # stored by another process since they were staged
        report.skipped = report.error_count
        counters.bump(store, counters.FEEDBACK_EVENTS, report.ingested)
        audit.record(
            store, actor, "ingest", args,
            detail=f"{report.ingested} new, {report.duplicates} duplicate, {report.skipped} skipped",
        )  # fmt: skip


def _id_conflict(number: int, event_id: str) -> LineError:
    return LineError(
        line=number, field="id",
        message=f"`id` {event_id!r} was already ingested with different content; stored events are never overwritten.",
        hint="Give each distinct event its own id.",
    )  # fmt: skip


def _add_error(report: IngestReport, error: LineError) -> None:
    report.error_count += 1
    if len(report.errors) < MAX_ERRORS_KEPT:
        report.errors.append(error)


# Entry points ------------------------------------------------------------------------------------


def ingest_file(
    store: Store,
    path: Path,
    *,
    actor: Actor,
    fmt: str | None = None,
    field_map: dict[str, str] | None = None,
    skip_invalid: bool = False,
    redact: bool = True,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    path = Path(path)
    items = read_events(path, fmt=fmt)
    if workers is None:  # starting workers costs about a second: worth it for large files only
        workers = 1 if path.stat().st_size < PARALLEL_FROM_BYTES else min(2, os.cpu_count() or 1)
    return ingest(
        store, items, actor=actor, source=str(path), field_map=field_map,
        skip_invalid=skip_invalid, redact=redact, workers=workers, on_progress=on_progress,
    )  # fmt: skip


def ingest_batch(
    store: Store,
    events: list[dict[str, Any]],
    *,
    actor: Actor,
    field_map: dict[str, str] | None = None,
    skip_invalid: bool = False,
    redact: bool = True,
    source: str = "batch",
) -> IngestReport:
    """Events given in memory (MCP, HTTP, Python); 'line' numbers are 1-based positions in the list."""
    return ingest(
        store, enumerate(events, start=1), actor=actor, source=source, field_map=field_map,
        skip_invalid=skip_invalid, redact=redact, workers=1,
    )  # fmt: skip


def record_outcomes(
    store: Store, events: list[Any], *, actor: Actor, source: str, skip_invalid: bool = False, redact: bool = True
) -> IngestReport:
    """Store the outcomes of served drafts: one batch of at most MAX_OUTCOMES events, ingested like any other."""
    if len(events) > MAX_OUTCOMES:
        raise TooManyEvents(len(events))
    return ingest_batch(store, events, actor=actor, skip_invalid=skip_invalid, redact=redact, source=source)
