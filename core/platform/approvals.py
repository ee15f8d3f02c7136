"""Approvals: costly or irreversible actions wait for an authorised human.

An approval names an action (`launch`, later `deploy`, `rollback`, ...) and its
subject. Deciding checks that the decider is an approver (an admin), is not the
requester when four-eyes is on, and that the request is still pending and not
expired; the decision and the action's state change commit in one transaction
(the action's handler runs inside it). Every step is audited and announced
through the outbox.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from core.errors import Conflict, NotFound, PermissionDenied
from core.platform import audit, events, outbox
from core.platform.actors import Actor
from core.platform.store import Store
from core.platform.timeutil import iso, parse_iso, utcnow
from core.vocabulary import Action, ApprovalState, Face


class Approval(BaseModel):
    id: str
    action: Action
    subject_id: str | None
    payload: dict[str, Any]
    estimated_cost_usd: float | None
    status: ApprovalState
    requested_by: str
    requested_via: Face
    decided_by: str | None
    decided_at: str | None
    reason: str | None
    expires_at: str | None
    created_at: str


class ApprovalList(BaseModel):
    approvals: list[Approval]


# What an action does inside the deciding transaction: handler(store, approval, approved).
DecisionHandler = Callable[[Store, "Approval", bool], None]


def _row(row: dict[str, Any]) -> Approval:
    return Approval(**{**row, "payload": json.loads(row["payload"])})


def request(
    store: Store, *, action: Action, subject_id: str, summary: str, actor: Actor, ttl_hours: float,
    payload: dict[str, Any] | None = None, cost_usd: float | None = None,
) -> Approval:  # fmt: skip
    """Open an approval request (inside the caller's transaction) and announce it."""
    approval_id = "ap_" + uuid.uuid4().hex[:12]
    now = utcnow()
    with store.write() as db:
        db.table("approvals").insert(
            {
                "id": approval_id, "action": action, "subject_id": subject_id, "payload": json.dumps(payload or {}),
                "estimated_cost_usd": cost_usd, "status": ApprovalState.PENDING, "requested_by": actor.id,
                "requested_via": actor.face, "expires_at": iso(now + timedelta(hours=ttl_hours)), "created_at": iso(now),
            }
        )  # fmt: skip
        outbox.enqueue(
            store,
            events.ApprovalRequested(
                approval_id=approval_id, action=action, subject_id=subject_id, description=summary,
                requested_by=str(actor), cost_usd=cost_usd,
            ),
        )  # fmt: skip
        audit.record(
            store, actor, "request_approval", {"approval": approval_id, "action": action, "subject": subject_id}
        )
    return get(store, approval_id)


def get(store: Store, approval_id: str) -> Approval:
    rows = store.query("SELECT * FROM approvals WHERE id = ?", (approval_id,))
    if not rows:
        raise NotFound(
            f"no approval {approval_id!r}.", hint="List pending ones with `finetune approvals`.", approval=approval_id
        )
    return _row(rows[0])


def pending(store: Store) -> ApprovalList:
    rows = store.query("SELECT * FROM approvals WHERE status = ? ORDER BY created_at", (ApprovalState.PENDING,))
    return ApprovalList(approvals=[_row(r) for r in rows])


def pending_count(store: Store) -> int:
    return int(store.scalar("SELECT count(*) FROM approvals WHERE status = ?", (ApprovalState.PENDING,)))


def cancel_pending(store: Store, approval_id: str) -> bool:
    """Withdraw a request whose subject went away (a job cancelled before it was decided).

    Call inside the caller's `store.write()`; True when a pending request was cancelled.
    """
    cursor = store.db.execute(
        "UPDATE approvals SET status = ? WHERE id = ? AND status = ?",
        (ApprovalState.CANCELLED, approval_id, ApprovalState.PENDING),
    )
    return cursor.rowcount == 1


def decide(
    store: Store,
    *,
    approval_id: str,
    actor: Actor,
    approve: bool,
    four_eyes: bool,
    on_decided: DecisionHandler,
    reason: str | None = None,
) -> Approval:
    """Approve or reject; the action's own state change commits with the decision."""
    if not actor.is_admin:
        raise PermissionDenied(
            f"{actor} may not decide approvals.", hint="Ask an approver, or add your Slack user id to FINETUNE_ADMINS."
        )
    with store.write() as db:
        approval = get(store, approval_id)
        if approval.status != ApprovalState.PENDING:
            raise Conflict(
                f"approval {approval_id} is already {approval.status} (by {approval.decided_by or 'expiry'}).",
                hint="Nothing to do; request a new one if the action is still wanted.",
            )
        if approval.expires_at and parse_iso(approval.expires_at) < utcnow():
            db.execute("UPDATE approvals SET status = ? WHERE id = ?", (ApprovalState.EXPIRED, approval_id))
            on_decided(store, approval.model_copy(update={"status": ApprovalState.EXPIRED}), False)
            raise Conflict(
                f"approval {approval_id} expired at {approval.expires_at}.", hint="Request the action again."
            )
        if four_eyes and approval.requested_by == actor.id:
            raise PermissionDenied(
                f"{actor} requested {approval_id} and may not approve it too (four eyes).",
                hint="Ask another approver.",
            )
        status = ApprovalState.APPROVED if approve else ApprovalState.REJECTED
        db.execute(
            "UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, reason = ? WHERE id = ?",
            (status, str(actor), iso(), reason, approval_id),
        )
        decided = get(store, approval_id)
        on_decided(store, decided, approve)
        outbox.enqueue(
            store,
            events.ApprovalDecided(
                approval_id=approval_id, action=approval.action, subject_id=approval.subject_id, status=status,
                decided_by=str(actor), reason=reason,
            ),
        )  # fmt: skip
        audit.record(store, actor, "approve" if approve else "reject", {"approval": approval_id, "reason": reason})
    return decided
