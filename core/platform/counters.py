"""Running totals kept with the writes that change them, so reading them costs the same at any size.

A writer bumps a counter inside the transaction that adds or removes the rows
it counts (`bump(store, "feedback_events", n)` in the ingest's publishing
transaction), so the total and the rows commit together. Readers get one
primary-key lookup instead of a scan of a table that may hold millions of rows.
"""

from __future__ import annotations

from core.platform.store import Store

FEEDBACK_EVENTS = "feedback_events"


def bump(store: Store, name: str, delta: int) -> None:
    """Add `delta` to counter `name`. Call inside the writer's `store.write()` block."""
    if delta == 0:
        return
    with store.write() as db:
        db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (name, delta),
        )


def value(store: Store, name: str) -> int:
    """The counter's current total; 0 for one never bumped."""
    found = store.scalar("SELECT value FROM counters WHERE name = ?", (name,))
    return int(found or 0)
