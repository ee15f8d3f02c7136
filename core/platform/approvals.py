"""Approvals: costly or irreversible actions wait for an authorised human.

An approval names an action (`launch`, later `deploy`, `rollback`, ...) and its
subject. Deciding checks that the policy lets the decider decide (approvers and
admins, never over MCP), that they are not the requester (the same person, on
any face) when four-eyes is on, and that the request is still pending and not
expired; the decision and the action's state change commit in one transaction
(the action's handler runs inside it).

Some requests need more than one approver (`FINETUNE_APPROVALS_NEEDED`, e.g.
`production=2`): each approval is a vote of one person (a second vote of the
same person, on any face, is refused), the request stays pending until enough
people approved, and its Slack message is edited to show "1 of 2 approvals".
One rejection ends it. A request past its deadline is expired
for good, by the scheduler every minute or by the first attempt to decide it:
its action hears "no" (a waiting job is cancelled) in the same transaction.
Every step is audited and announced through the outbox.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from core.errors import Conflict, NotFound, PermissionDenied
from core.platform import audit, events, outbox
from core.platform.actors import SCHEDULER, Actor
from core.platform.policy import authorize
from core.platform.settings import Settings
from core.platform.store import Store
from core.platform.timeutil import iso, parse_iso, utcnow
from core.vocabulary import Action, ApprovalState, Face, IdentityKind, Operation

log = logging.getLogger(__name__)


class Approval(BaseModel):
    id: str
    action: Action
    subject_id: str | None
    payload: dict[str, Any]
    estimated_cost_usd: float | None
    status: ApprovalState
    requested_by: str
    requested_by_identity: str | None = None  # slack:U1, os:alice, ...: what four eyes compares
    requested_via: Face
    decided_by: str | None
    decided_at: str | None
    reason: str | None
    expires_at: str | None
    created_at: str
    description: str | None = None  # what the request says, for deciders
    facts: dict[str, str] = Field(default_factory=dict)  # what a decider needs: lineage, cost, versions
    approvals_needed: int = 1  # different people who must approve
    approved_by: list[str] = Field(default_factory=list)  # who approved so far (face:id), oldest first

    @property
    def approvals_missing(self) -> int:
        return max(self.approvals_needed - len(self.approved_by), 0)

    def progress(self) -> str | None:
        """`1 of 2 approvals` while a request that needs several approvers is pending; None otherwise."""
        if self.approvals_needed < 2 or self.status != ApprovalState.PENDING:
            return None
        return f"{len(self.approved_by)} of {self.approvals_needed} approvals"


class ApprovalList(BaseModel):
    approvals: list[Approval]


# What an action does inside the deciding transaction: handler(store, approval, approved).
DecisionHandler = Callable[[Store, "Approval", bool], None]


def _row(store: Store, row: dict[str, Any]) -> Approval:
    voters = store.query("SELECT voter FROM approval_votes WHERE approval_id = ? ORDER BY at, rowid", (row["id"],))
    return Approval(
        **{**row, "payload": json.loads(row["payload"]), "facts": json.loads(row["facts"] or "{}")},
        approved_by=[vote["voter"] for vote in voters],
    )


def approvals_needed(settings: Settings, action: Action, alias: str | None = None) -> int:
    """How many people must approve `action` (on `alias`): FINETUNE_APPROVALS_NEEDED's most specific entry
    (`production.rollback`, then `production`, then `rollback`), else one."""
    quorums = settings.approvals_needed
    keys = [f"{alias}.{action}", alias] if alias else []
    return next((quorums[key] for key in [*keys, str(action)] if key in quorums), 1)


def request_event(approval: Approval) -> events.ApprovalRequested:
    """The request as deciders read it, with the approvals it has so far (posted first, then edited in place)."""
    return events.ApprovalRequested(
        approval_id=approval.id, action=approval.action, subject_id=approval.subject_id,
        description=approval.description or f"{approval.action} {approval.subject_id}",
        requested_by=f"{approval.requested_via}:{approval.requested_by}", cost_usd=approval.estimated_cost_usd,
        expires_at=approval.expires_at, facts=approval.facts, approvals_needed=approval.approvals_needed,
        approved_by=approval.approved_by,
    )  # fmt: skip


def request(
    store: Store, *, action: Action, subject_id: str, summary: str, actor: Actor, ttl_hours: float,
    payload: dict[str, Any] | None = None, cost_usd: float | None = None, facts: dict[str, str] | None = None,
    needed: int = 1, now: datetime | None = None,
) -> Approval:  # fmt: skip
    """Open an approval request (inside the caller's transaction) and announce it with `facts` for deciders.

    `needed` different people must approve it (see `approvals_needed`). `now` is the caller's clock (the
    services' clock, which decides and expires it too).
    """
    approval_id = "ap_" + uuid.uuid4().hex[:12]
    now = now or utcnow()
    expires_at = iso(now + timedelta(hours=ttl_hours))
    with store.write() as db:
        db.table("approvals").insert(
            {
                "id": approval_id, "action": action, "subject_id": subject_id, "payload": json.dumps(payload or {}),
                "estimated_cost_usd": cost_usd, "status": ApprovalState.PENDING, "requested_by": actor.id,
                "requested_by_identity": actor.identity,
                "requested_via": actor.face, "expires_at": expires_at, "created_at": iso(now),
                "description": summary, "facts": json.dumps(facts or {}), "approvals_needed": max(needed, 1),
            }
        )  # fmt: skip
        approval = get(store, approval_id)
        outbox.enqueue(store, request_event(approval))
        audit.record(
            store, actor, "request_approval",
            {"approval": approval_id, "action": action, "subject": subject_id, "approvals_needed": needed},
        )  # fmt: skip
    return approval


def get(store: Store, approval_id: str) -> Approval:
    rows = store.query("SELECT * FROM approvals WHERE id = ?", (approval_id,))
    if not rows:
        raise NotFound(
            f"no approval {approval_id!r}.", hint="List pending ones with `finetune approvals`.", approval=approval_id
        )
    return _row(store, rows[0])


def pending(store: Store) -> ApprovalList:
    rows = store.query("SELECT * FROM approvals WHERE status = ? ORDER BY created_at", (ApprovalState.PENDING,))
    return ApprovalList(approvals=[_row(store, r) for r in rows])


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
    now: datetime | None = None,
) -> Approval:
    """Approve or reject; the action's own state change commits with the decision.

    A request past its deadline is expired for good first (its action hears
    "no" and Slack is told, all committed) and then refused with a Conflict.
    """
    authorize(actor, Operation.DECIDE)
    now = now or utcnow()
    with store.write():
        approval = get(store, approval_id)
        if approval.status != ApprovalState.PENDING:
            raise Conflict(
                f"approval {approval_id} is already {approval.status} (by {approval.decided_by or 'expiry'}).",
                hint="Nothing to do; request a new one if the action is still wanted.",
            )
        if not _overdue(approval, now):
            return _decide_pending(
                store, approval, actor=actor, approve=approve, four_eyes=four_eyes, on_decided=on_decided,
                reason=reason, now=now,
            )  # fmt: skip
        _expire(store, approval, on_decided=on_decided, now=now)
    # Raised only now, after the expiry above has committed.
    raise Conflict(f"approval {approval_id} expired at {approval.expires_at}.", hint="Request the action again.")


def _decide_pending(
    store: Store, approval: Approval, *, actor: Actor, approve: bool, four_eyes: bool, on_decided: DecisionHandler,
    reason: str | None, now: datetime,
) -> Approval:  # fmt: skip
    """Record the decision, run the action's state change, announce and audit it. Inside the caller's transaction.

    An approval short of its quorum is one person's vote: recorded, announced and audited, the request still pending.
    """
    if four_eyes and actor.is_same_person(approval.requested_by_identity):
        raise PermissionDenied(
            f"{actor} requested {approval.id} and may not approve it too (four eyes).", hint="Ask another approver."
        )
    if approve and _vote(store, approval, actor, now=now) < approval.approvals_needed:
        voted = get(store, approval.id)
        outbox.enqueue(store, request_event(voted))  # the request's message shows "1 of 2 approvals"
        audit.record(
            store, actor, "approve", {"approval": approval.id},
            detail=f"{len(voted.approved_by)} of {voted.approvals_needed} approvals; waiting for another approver",
        )  # fmt: skip
        return voted
    status = ApprovalState.APPROVED if approve else ApprovalState.REJECTED
    store.db.execute(
        "UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, reason = ? WHERE id = ?",
        (status, str(actor), iso(now), reason, approval.id),
    )
    decided = get(store, approval.id)
    on_decided(store, decided, approve)
    _announce_decision(
        store, approval,
        events.ApprovalDecided(
            approval_id=approval.id, action=approval.action, subject_id=approval.subject_id, status=status,
            decided_by=str(actor), reason=reason, approved_by=decided.approved_by,
        ),
    )  # fmt: skip
    audit.record(store, actor, "approve" if approve else "reject", {"approval": approval.id, "reason": reason})
    return decided


def _vote(store: Store, approval: Approval, actor: Actor, *, now: datetime) -> int:
    """Record `actor`'s approval; how many people have approved now. Refused when this person already has."""
    votes = store.query("SELECT person, voter_identity FROM approval_votes WHERE approval_id = ?", (approval.id,))
    if any(vote["person"] == actor.person or actor.is_same_person(vote["voter_identity"]) for vote in votes):
        raise PermissionDenied(
            f"{actor} already approved {approval.id}; it needs {approval.approvals_needed} different people.",
            hint="Ask another approver.",
            approval=approval.id,
        )
    store.db.execute(
        "INSERT INTO approval_votes (approval_id, person, voter, voter_identity, at) VALUES (?, ?, ?, ?, ?)",
        (approval.id, actor.person, str(actor), actor.identity, iso(now)),
    )
    return len(votes) + 1


def _announce_decision(store: Store, approval: Approval, decided: events.ApprovalDecided) -> None:
    """Tell the channel (its request message is edited) and, when they asked in Slack, the requester directly."""
    outbox.enqueue(store, decided)
    kind, _, user_id = (approval.requested_by_identity or "").partition(":")
    if kind == IdentityKind.SLACK and user_id:
        outbox.enqueue(store, events.ApprovalAnswered(**decided.model_dump(exclude={"kind"})), channel=user_id)


def _overdue(approval: Approval, now: datetime) -> bool:
    return approval.expires_at is not None and parse_iso(approval.expires_at) < now


def _expire(store: Store, approval: Approval, *, on_decided: DecisionHandler, now: datetime) -> bool:
    """Mark a pending request expired, let its action hear "no", announce it. Inside the caller's transaction.

    False when the request was no longer pending (decided or expired by someone else meanwhile).
    """
    cursor = store.db.execute(
        "UPDATE approvals SET status = ?, decided_at = ?, reason = ? WHERE id = ? AND status = ?",
        (ApprovalState.EXPIRED, iso(now), f"no decision by {approval.expires_at}", approval.id, ApprovalState.PENDING),
    )
    if cursor.rowcount != 1:
        return False
    expired = get(store, approval.id)
    on_decided(store, expired, False)
    _announce_decision(
        store, approval,
        events.ApprovalDecided(
            approval_id=approval.id, action=approval.action, subject_id=approval.subject_id,
            status=ApprovalState.EXPIRED, decided_by=None, reason=expired.reason,
        ),
    )  # fmt: skip
    audit.record(store, SCHEDULER, "expire_approval", {"approval": approval.id, "action": approval.action})
    return True


def expire_overdue(
    store: Store, *, on_decided: Callable[[Approval], DecisionHandler], now: datetime | None = None
) -> int:
    """Expire every pending request past its deadline, each in its own transaction; returns how many.

    `on_decided(approval)` names the handler of the approval's action (the registry in `core.actions`).
    """
    now = now or utcnow()
    rows = store.query(
        "SELECT * FROM approvals WHERE status = ? AND expires_at < ? ORDER BY expires_at",
        (ApprovalState.PENDING, iso(now)),
    )
    expired = 0
    for approval in (_row(store, row) for row in rows):
        try:
            with store.write():
                expired += _expire(store, approval, on_decided=on_decided(approval), now=now)
        except Exception:  # one request that cannot expire must not keep the others waiting
            log.exception("approval %s could not expire; trying again on the next run", approval.id)
    return expired
