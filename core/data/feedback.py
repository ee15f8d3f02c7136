"""Ingesting feedback events: parse, validate, redact, derive, store — all or nothing.

An event (JSONL line, CSV row, MCP batch item or Python dict):

    {"id"?, "agent", "intent"?, "messages": [{"role", "content"}...] | "prompt": str, "system"?,
     "output": str, "final"?: str, "rating"?: 1-5 | "up" | "down", "model"?, "template"?,
     "latency_ms"?, "cost_usd"?, "user"?, "created_at"?: ISO-8601 or epoch seconds, "tags"?: [str]}

Unknown fields are kept as metadata. A field map (`output=model_output,...`) reads
a log's own names. A thumbs-up rating is stored as 5 and thumbs-down as 1, so one
`min_rating` filter serves both scales.

The identity of an event is the hash of its content as given (before redaction),
so ingesting the same events again changes nothing. A whole file is one
transaction: with any bad line nothing is stored (unless `skip_invalid`, which
stores the good lines and reports each bad one).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, Literal, overload

from pydantic import BaseModel, Field

from core.data import db, edits
from core.data.db import EventValues
from core.data.pii import RedactionReport, Redactor, redact_into
from core.errors import InvalidInput
from core.platform import audit
from core.platform.actors import Actor
from core.platform.parallel import ordered_map
from core.platform.store import Store
from core.platform.timeutil import iso

FIELDS = (
    "id", "agent", "intent", "messages", "prompt", "system", "output", "final", "rating", "model",
    "template", "latency_ms", "cost_usd", "user", "created_at", "tags",
)  # fmt: skip
ROLES = ("user", "assistant", "system")
MAX_ERRORS_KEPT = 1000
CHUNK = 2000  # events per worker task: large enough to amortise pickling
PARALLEL_FROM_BYTES = 8 * 2**20


class LineError(BaseModel):
    line: int
    field: str | None
    message: str
    hint: str


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
        if ours not in FIELDS:
            raise InvalidInput(f"field map names unknown field {ours!r}.", hint=f"Map one of: {', '.join(FIELDS)}.")
        mapping[ours] = theirs
    return mapping


def check_field_map(mapping: dict[str, str]) -> dict[str, str]:
    for ours in mapping:
        if ours not in FIELDS:
            raise InvalidInput(f"field map names unknown field {ours!r}.", hint=f"Map one of: {', '.join(FIELDS)}.")
    return mapping


# Reading files -----------------------------------------------------------------------------------


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, raw bytes) per line; bytes are decoded by `prepare`, in the workers."""
    with open(path, "rb") as handle:
        yield from enumerate(handle, start=1)


def _decode_json_line(raw: bytes, number: int) -> Any:
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    raw = raw.strip()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        return LineError(
            line=number, field=None, message="the line is not valid UTF-8.", hint="Save the file as UTF-8."
        )
    except json.JSONDecodeError as exc:
        return LineError(
            line=number, field=None, message=f"not valid JSON ({exc.msg} at column {exc.colno}).",
            hint="Each line must be one complete JSON object.",
        )  # fmt: skip


def read_csv(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, row dict) per CSV record; the header is line 1. JSON-looking cells are parsed."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            number = reader.line_num
            if not any((value or "").strip() for value in row.values()):
                continue
            if None in row:
                yield number, LineError(
                    line=number, field=None, message="the row has more cells than the header has columns.",
                    hint="Quote cells that contain commas.",
                )  # fmt: skip
                continue
            yield number, {k: _csv_cell(k, v) for k, v in row.items() if v not in (None, "")}


def _csv_cell(name: str, value: str) -> Any:
    stripped = value.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return value
    if name == "tags" or name.endswith("tags"):
        return [t.strip() for t in stripped.split(",") if t.strip()]
    return value


def read_events(path: Path, *, fmt: str | None = None) -> Iterator[tuple[int, Any]]:
    fmt = fmt or {".csv": "csv"}.get(path.suffix.lower(), "jsonl")
    if fmt not in ("jsonl", "csv"):
        raise InvalidInput(f"unknown format {fmt!r}.", hint="Use --format jsonl or --format csv.")
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}.", hint="Check the path.")
    return read_csv(path) if fmt == "csv" else read_jsonl(path)


# One event ---------------------------------------------------------------------------------------


class _Bad(Exception):
    def __init__(self, field: str | None, message: str, hint: str) -> None:
        self.field, self.message, self.hint = field, message, hint


@overload
def _text(event: dict[str, Any], name: str, *, required: Literal[True], keep_empty: bool = False) -> str: ...
@overload
def _text(event: dict[str, Any], name: str, *, required: bool = False, keep_empty: bool = False) -> str | None: ...
def _text(event: dict[str, Any], name: str, *, required: bool = False, keep_empty: bool = False) -> str | None:
    """The text field `name`; None when absent or blank (unless `keep_empty`); _Bad when `required` and not given."""
    value = event.get(name)
    if value is None:
        if required:
            raise _Bad(name, "is missing.", f"Every event needs `{name}`.")
        return None
    if not isinstance(value, str):
        raise _Bad(name, f"must be a string, got {type(value).__name__}.", f"Give `{name}` as text.")
    if not value.strip() and not keep_empty:
        if required:
            raise _Bad(name, "is empty.", f"Give a non-empty `{name}`.")
        return None
    return value


def _number(event: dict[str, Any], name: str) -> float | None:
    value = event.get(name)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _Bad(name, f"must be a number, got {value!r}.", f"Give `{name}` as a number, e.g. 1250.") from None
    if number < 0:
        raise _Bad(name, f"must not be negative, got {value!r}.", f"Give `{name}` as zero or more.")
    return number


def _rating(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("up", "thumbs_up", "+1", "👍"):
            return 5.0
        if lowered in ("down", "thumbs_down", "-1", "👎"):
            return 1.0
    try:
        rating = float(value)
    except (TypeError, ValueError):
        rating = None
    if rating is None or isinstance(value, bool) or not 1 <= rating <= 5:
        raise _Bad("rating", f"{value!r} is not a rating.", 'Use a number from 1 to 5, "up" or "down".')
    return rating


def _timestamp(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _Bad("created_at", f"{value!r} is not a time.", 'Use ISO-8601 ("2026-11-23T10:00:00Z") or epoch seconds.')
    is_epoch = isinstance(value, (int, float)) or (
        isinstance(value, str) and value.strip().replace(".", "", 1).isdigit()
    )
    if is_epoch:
        seconds = float(value)
        if seconds > 1e11:  # milliseconds
            seconds /= 1000
        try:
            return iso(datetime.fromtimestamp(seconds, tz=UTC))
        except (OverflowError, OSError, ValueError):
            raise _Bad(
                "created_at", f"{value!r} is not a valid epoch time.", "Use epoch seconds or ISO-8601."
            ) from None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)  # naive times are taken as UTC
            return iso(moment)
    raise _Bad("created_at", f"{value!r} is not a time.", 'Use ISO-8601 ("2026-11-23T10:00:00Z") or epoch seconds.')


def _messages(event: dict[str, Any]) -> list[dict[str, str]]:
    messages, prompt = event.get("messages"), event.get("prompt")
    if messages is None and prompt is None:
        raise _Bad(
            "messages", "neither `messages` nor `prompt` is given.", "Give the conversation as `messages` or `prompt`."
        )
    if messages is not None and prompt is not None:
        raise _Bad("prompt", "both `messages` and `prompt` are given.", "Give one of them.")
    if prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise _Bad("prompt", "must be a non-empty string.", "Give the user's request as text.")
        return [{"role": "user", "content": prompt}]
    if not isinstance(messages, list) or not messages:
        raise _Bad("messages", "must be a non-empty list.", 'Give e.g. [{"role": "user", "content": "..."}].')
    out = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _Bad(
                where, "must be an object with `role` and `content`.", 'e.g. {"role": "user", "content": "..."}.'
            )
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise _Bad(f"{where}.role", f"{role!r} is not a role.", f"Use one of: {', '.join(ROLES)}.")
        if not isinstance(content, str):
            raise _Bad(f"{where}.content", "must be a string.", "Give the message text as a string.")
        out.append({"role": role, "content": content})
    return out


def _tags(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [t.strip() for t in value.split(",")]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise _Bad("tags", "must be a list of strings.", 'e.g. ["billing", "refund"].')
    return sorted({t for t in value if t})


def content_hash(row: dict[str, Any]) -> str:
    """SHA-256 of an event's identifying fields, in a fixed order, before redaction."""
    digest = hashlib.sha256()
    for name in IDENTITY:
        value = row[name]
        if isinstance(value, str):
            text = value
        elif isinstance(value, (list, dict)):
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        else:
            text = "\x00" if value is None else repr(value)  # None differs from "", 5.0 from "5.0"
        digest.update(name.encode() + b"\x1f" + text.encode() + b"\x1e")
    return digest.hexdigest()


IDENTITY = (
    "agent", "intent", "system_prompt", "messages", "ai_output", "final_output", "rating", "model", "template",
    "latency_ms", "cost_usd", "user", "created_at", "tags",
)  # fmt: skip


def normalise(raw: Any, field_map: dict[str, str]) -> dict[str, Any]:
    """Validate one raw event (after mapping) into a storable row, before redaction. Raises _Bad."""
    if not isinstance(raw, dict):
        raise _Bad(None, f"an event must be a JSON object, got {type(raw).__name__}.", "Write one object per line.")
    event = dict(raw)
    for ours, theirs in field_map.items():
        if theirs in event:
            event[ours] = event.pop(theirs)
    messages = _messages(event)
    system = _text(event, "system")
    if system is None and messages and messages[0]["role"] == "system":
        system = messages.pop(0)["content"]
    row: dict[str, Any] = {
        "agent": _text(event, "agent", required=True).strip(),
        "intent": _text(event, "intent"),
        "system_prompt": system,
        "messages": messages,
        "ai_output": _text(event, "output", required=True),
        "final_output": _text(event, "final", keep_empty=True),  # "" = the user deleted everything
        "rating": _rating(event.get("rating")),
        "model": _text(event, "model"),
        "template": _text(event, "template"),
        "latency_ms": _number(event, "latency_ms"),
        "cost_usd": _number(event, "cost_usd"),
        "user": _text(event, "user"),
        "created_at": _timestamp(event.get("created_at")),
        "tags": _tags(event.get("tags")),
        "metadata": {k: v for k, v in event.items() if k not in FIELDS},
    }
    given_id = event.get("id")
    if given_id is not None and (not isinstance(given_id, (str, int)) or str(given_id).strip() == ""):
        raise _Bad("id", f"{given_id!r} is not an id.", "Give `id` as a non-empty string, or leave it out.")
    row["content_hash"] = content_hash(row)
    row["id"] = str(given_id) if given_id is not None else "fb_" + row["content_hash"][:20]
    return row


def _redact_row(row: dict[str, Any], redactor: Redactor) -> dict[str, int]:
    counts: dict[str, int] = {}

    def clean(text: str | None) -> str | None:
        return redact_into(redactor, text, counts)

    row["system_prompt"] = clean(row["system_prompt"])
    row["ai_output"] = clean(row["ai_output"])
    row["final_output"] = clean(row["final_output"])
    row["messages"] = [{**m, "content": clean(m["content"])} for m in row["messages"]]
    return counts


def prepare(
    item: tuple[int, Any], field_map: dict[str, str], redactor: Redactor | None, ingested_at: str
) -> tuple[int, dict[str, Any] | LineError | None]:
    """One event -> (line, row with derived fields), (line, LineError) or (line, None) for a blank line.

    Pure, so it runs in worker processes. `raw` is a JSONL line's bytes, a CSV row's dict, an in-memory
    event, or a LineError from the reader.
    """
    number, raw = item
    if isinstance(raw, bytes):
        raw = _decode_json_line(raw, number)
    if raw is None or isinstance(raw, LineError):  # a blank line, or one that could not be read
        return number, raw
    try:
        row = normalise(raw, field_map)
    except _Bad as bad:
        field = bad.field
        if field is not None:
            root = field.split("[")[0].split(".")[0]
            if root in field_map:
                field = field.replace(root, f"{field_map[root]} (mapped to {root})", 1)
        return number, LineError(
            line=number, field=field, message=f"`{field}` {bad.message}" if field else bad.message, hint=bad.hint
        )
    row["redactions"] = _redact_row(row, redactor) if redactor is not None else {}
    summary = edits.compare(row["ai_output"], row["final_output"])
    row["acceptance"] = summary.acceptance
    row["edit_ops"] = [op.model_dump() for op in summary.ops]
    row["created_at"] = row["created_at"] or ingested_at
    row["ingested_at"] = ingested_at
    return number, row


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
    """Store events given as (line number, raw event) pairs, in one transaction."""
    field_map = check_field_map(field_map or {})
    workers = workers if workers is not None else 1
    report = IngestReport(
        source=source, lines=0, ingested=0, duplicates=0, skipped=0, error_count=0, errors=[],
        redactions=RedactionReport(),
    )  # fmt: skip
    try:
        with store.write():
            for chunk in _prepared_chunks(items, field_map, redact, workers):
                batch = []
                for number, prepared in chunk:
                    if prepared is None:
                        continue
                    report.lines += 1
                    if isinstance(prepared, LineError):
                        _add_error(report, prepared)
                    elif skip_invalid or not report.error_count:  # once rejected, only keep checking lines
                        batch.append((number, *prepared))
                _store_batch(store, batch, report)
                if on_progress:
                    on_progress(report.lines)
            if report.error_count and not skip_invalid:
                raise IngestRejected(report)
            report.skipped = report.error_count
            audit.record(
                store, actor, "ingest",
                {"source": source, "field_map": field_map, "skip_invalid": skip_invalid, "redact": redact},
                detail=f"{report.ingested} new, {report.duplicates} duplicate, {report.skipped} skipped",
            )  # fmt: skip
    except IngestRejected:
        audit.record(
            store, actor, "ingest", {"source": source}, outcome="error", detail=f"{report.error_count} invalid"
        )
        raise
    if on_progress:
        on_progress(report.lines)
    return report


def _store_batch(store: Store, batch: list[tuple[int, EventValues, dict[str, int]]], report: IngestReport) -> None:
    """Insert a batch at once; if some rows were already stored, redo it row by row to tell which."""
    if not batch:
        return
    if db.insert_new_events(store, [values for _, values, _ in batch]):
        report.ingested += len(batch)
        for _, _, redactions in batch:
            report.redactions.add(redactions)
        return
    for number, values, redactions in batch:
        if db.insert_event(store, values):
            report.ingested += 1
            report.redactions.add(redactions)
        elif conflict := _id_conflict(store, values[0], values[1]):
            _add_error(
                report,
                LineError(line=number, field="id", message=conflict, hint="Give each distinct event its own id."),
            )
        else:
            report.duplicates += 1


def _add_error(report: IngestReport, error: LineError) -> None:
    report.error_count += 1
    if len(report.errors) < MAX_ERRORS_KEPT:
        report.errors.append(error)


def _id_conflict(store: Store, event_id: str, event_hash: str) -> str | None:
    stored = db.stored_content_hash(store, event_id)
    if stored is not None and stored != event_hash:
        return f"`id` {event_id!r} was already ingested with different content; stored events are never overwritten."
    return None


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
) -> IngestReport:
    """Events given in memory (MCP, Python); 'line' numbers are 1-based positions in the list."""
    return ingest(
        store, enumerate(events, start=1), actor=actor, source="batch", field_map=field_map,
        skip_invalid=skip_invalid, redact=redact, workers=1,
    )  # fmt: skip
