"""Daily rollups of feedback: one row per local day, agent, model version, intent and template.

Each row holds what acceptance analytics and regression checks read, as sums
that add up across rows and runs: events; the count, sum and sum of squares of
acceptance; unedited drafts (kept whole, without any edit operation); ratings
(count and sum) and their thumbs equivalents (4-5 up, 1-2 down); the count and
sum of latency and of cost. Days are calendar days in FINETUNE_TIMEZONE.

Rollups are kept incrementally by the scheduler (`roll_up`), so ingest never
waits on them: each run aggregates only the feedback rows written since its
watermark (a feedback rowid), in batches, and adds each batch's sums and moves
the watermark in one short transaction. The aggregation reads outside the
write lock; if another run moved the watermark meanwhile, the batch is dropped
and nothing is counted twice. Events that arrive late for an old day land in
that day's row. Changing FINETUNE_TIMEZONE rebuilds the rollups from scratch,
since every day boundary moves.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from core.analytics import db
from core.errors import InvalidInput
from core.platform.store import Store
from core.platform.timeutil import iso

WATERMARK = "rollups"
BATCH_ROWS = 100_000  # feedback rows aggregated per transaction
_SPAN = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))  # where offsets are tracked exactly
_PROBE = timedelta(days=7)  # offsets are probed weekly; each change found is then bisected to the second


@dataclass(frozen=True)
class RollupRun:
    """What one run folded in."""

    rows_read: int
    groups_written: int
    last_rowid: int
    rebuilt: bool


def roll_up(store: Store, *, timezone: str, batch_rows: int = BATCH_ROWS) -> RollupRun:
    """Fold every feedback row written since the last run into the rollups; idempotent."""
    tz = _zone(timezone)
    rebuilt = _reset_if_zone_changed(store, timezone)
    read = written = 0
    upto = db.last_feedback_rowid(store)
    after = db.watermark(store, WATERMARK).last_rowid
    while after < upto:
        high = min(upto, after + batch_rows)
        rows = db.aggregate_feedback(store, after=after, upto=high, day_sql=day_sql(tz))
        with store.write():
            if not db.move_watermark(store, WATERMARK, expected=after, last_rowid=high, detail=timezone):
                break  # another run got here first: it counts these rows
            db.fold_into_rollups(store, rows)
        read += sum(row[len(db.DIMENSIONS)] for row in rows)
        written += len(rows)
        after = high
    return RollupRun(rows_read=read, groups_written=written, last_rowid=after, rebuilt=rebuilt)


def rebuild_rollups(store: Store, *, timezone: str, batch_rows: int = BATCH_ROWS) -> RollupRun:
    """Drop the rollups and fold in every feedback row again."""
    _zone(timezone)
    with store.write():
        db.clear_rollups(store)
        db.move_watermark(
            store, WATERMARK, expected=db.watermark(store, WATERMARK).last_rowid, last_rowid=0, detail=timezone
        )
    run = roll_up(store, timezone=timezone, batch_rows=batch_rows)
    return RollupRun(
        rows_read=run.rows_read, groups_written=run.groups_written, last_rowid=run.last_rowid, rebuilt=True
    )


def _reset_if_zone_changed(store: Store, timezone: str) -> bool:
    """Start over when the rollups were made in another time zone; True if they were."""
    if db.watermark(store, WATERMARK).detail in (None, timezone):
        return False  # the usual case: no write lock taken
    with store.write():
        mark = db.watermark(store, WATERMARK)
        if mark.last_rowid == 0 or mark.detail == timezone:
            return False
        db.clear_rollups(store)
        db.move_watermark(store, WATERMARK, expected=mark.last_rowid, last_rowid=0, detail=timezone)
        return True


# Local days --------------------------------------------------------------------------------------------


def _zone(timezone: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"`timezone` {timezone!r} is not an IANA time zone.",
            hint="Set FINETUNE_TIMEZONE to a zone name such as Europe/Berlin or UTC.",
            argument="timezone",
        ) from None


def local_day(moment: datetime, timezone: str) -> date:
    """The calendar day `moment` falls on in `timezone`."""
    return moment.astimezone(_zone(timezone)).date()


def today(clock_now: datetime, timezone: str) -> date:
    """Today in `timezone`, by the given clock reading."""
    return local_day(clock_now, timezone)


@functools.lru_cache(maxsize=16)
def day_sql(tz: zoneinfo.ZoneInfo) -> str:
    """SQL for the local day of a row's `created_at` (a UTC ISO time) in `tz`.

    SQLite knows no time zones, so the zone's UTC offsets from 1970 to 2100 become
    a balanced tree of comparisons on the ISO text (which sorts as time), each leaf
    shifting the time by its offset: about a dozen comparisons per row at most,
    all in C. Times outside that span take the offset at its nearest end. Offsets
    are probed a week apart (then bisected), so a zone that changed its offset and
    changed it back within one week would miss that week's detour; tzdata has
    no such zone since 1970.
    """
    return _tree(_offsets(tz))


def _tree(segments: list[tuple[str, int]]) -> str:
    if len(segments) == 1:
        minutes = segments[0][1]
        return f"date(created_at, '{minutes:+d} minutes')" if minutes else "date(created_at)"
    middle = len(segments) // 2
    return (
        f"CASE WHEN created_at < '{segments[middle][0]}' THEN {_tree(segments[:middle])}"
        f" ELSE {_tree(segments[middle:])} END"
    )


def _offsets(tz: zoneinfo.ZoneInfo) -> list[tuple[str, int]]:
    """(UTC ISO start, offset in minutes) of each stretch of constant offset; the first starts at the beginning."""

    def offset(moment: datetime) -> int:
        delta = moment.astimezone(tz).utcoffset() or timedelta(0)
        return round(delta.total_seconds() / 60)

    start, end = _SPAN
    segments = [("", offset(start))]
    moment = start
    while moment < end:
        step = moment + _PROBE
        if offset(step) != segments[-1][1]:
            change = _first_change(offset, moment, step)
            segments.append((iso(change), offset(change)))
        moment = step
    return segments


def _first_change(offset: Callable[[datetime], int], low: datetime, high: datetime) -> datetime:
    """The first second in (low, high] whose offset differs from low's (bisection)."""
    before = offset(low)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if offset(middle) == before:
            low = middle
        else:
            high = middle
    return high
