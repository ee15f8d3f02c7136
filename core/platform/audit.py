"""The audit log: who did what, through which face, with what outcome, when (UTC).

State-changing core functions record their row inside their own transaction, so
a change and its audit row commit together. Faces record one row for every
other command (reads, refusals, errors) after it ends.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

from core.data import pii
from core.errors import InvalidInput
from core.platform.actors import Actor
from core.platform.policy import authorize
from core.platform.store import Store
from core.platform.timeutil import iso
from core.vocabulary import Face, Operation, values

_SECRET_KEY = re.compile(r"token|secret|password|passwd|api[_-]?key|authorization|credential", re.I)
MASK = "***"
MAX_TEXT = 500  # characters kept of one text: the row is evidence of the input, not a copy of it
MAX_ITEMS = 50  # items kept of one list


def scrub(value: Any, key: str = "") -> Any:
    """Mask secrets in audit arguments: values under secret-sounding keys, and PII and tokens in any text.

    Long texts are cut to MAX_TEXT characters once redacted, and long lists to MAX_ITEMS items: a
    megabyte argument costs the log a line.
    """
    if key and _SECRET_KEY.search(key):
        return MASK
    if isinstance(value, dict):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        kept = [scrub(v) for v in value[:MAX_ITEMS]]
        return [*kept, f"... {len(value) - MAX_ITEMS} more"] if len(value) > MAX_ITEMS else kept
    if isinstance(value, str):
        text = pii.redact(value[: 4 * MAX_TEXT]).text
        return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."
    return value


class AuditEntry(BaseModel):
    id: int
    at: str
    actor: str
    face: Face
    command: str
    args: dict[str, Any]
    outcome: str
    detail: str | None = None


def record(
    store: Store,
    actor: Actor,
    command: str,
    args: dict[str, Any] | None = None,
    *,
    outcome: str = "ok",
    detail: str | None = None,
) -> None:
    """Append one audit row. Inside a `store.write()` block it commits with the change."""
    with store.write() as db:
        db.table("audit_log").insert(
            {
                "at": iso(),
                "actor": actor.id,
                "face": actor.face,
                "request_id": actor.request_id,
                "command": command,
                "args": json.dumps(scrub(args or {}), sort_keys=True, default=str),
                "outcome": outcome,
                "detail": scrub(detail) if detail else None,
            }
        )


def recorded(store: Store, actor: Actor) -> bool:
    """Whether this invocation (its request id) already has an audit row."""
    return bool(store.scalar("SELECT 1 FROM audit_log WHERE request_id = ? LIMIT 1", (actor.request_id,)))


def recent(store: Store, *, actor: Actor, limit: int = 20, face: str | None = None) -> list[AuditEntry]:
    """The latest audit rows, newest first. The policy keeps it to admins: the log says who did what."""
    authorize(actor, Operation.AUDIT)
    if not 1 <= limit <= 1000:
        raise InvalidInput(f"`limit` must be between 1 and 1000, got {limit}.", hint="Use e.g. --limit 50.")
    if face is not None and face not in values(Face):
        raise InvalidInput(f"unknown face {face!r}.", hint=f"Use one of: {', '.join(values(Face))}.")
    where, params = ("WHERE face = ?", (face,)) if face else ("", ())
    rows = store.query(f"SELECT * FROM audit_log {where} ORDER BY id DESC LIMIT ?", (*params, limit))
    return [AuditEntry(**{**row, "args": json.loads(row["args"])}) for row in rows]
