"""Staged rollouts: a new version reaches a model alias's callers in steps, `10,50,100` with a hold between them.

`request_deploy(..., plan=[10, 50, 100], every=timedelta(hours=24))` starts one
(`start`): a rollout row, and stage 1 proposed as the alias's canary at the
first share through the registry's normal path, so it moves at once or waits
for an approval as the policy says for that alias. Every alias change a
rollout makes carries the rollout's id and stage (`RolloutStep`); when the
change is applied, at once or inside the transaction that approves it, the
rollout records the stage as live and the moment the next one is due
(`on_alias_applied`). A rejected or expired stage approval cancels the rollout
(`on_stage_refused`).

`finetune serve` runs `advance_due` every minute: for each running rollout
whose hold has passed it asks the guards (`ROLLOUT_GUARDS`), then proposes the
next stage: a higher canary share, or at 100 a promotion of the canary, which
completes the rollout. What approving a protected alias's rollout approves is
FINETUNE_ROLLOUT_APPROVAL, fixed for each rollout when it starts: `plan` (its
first stage's approval covers every stage, so later stages are applied by the
scheduler under that approval) or `stage` (each stage is a new request, made
on behalf of the rollout's requester so that four eyes still holds). An
unprotected alias's stages are applied by the scheduler directly.

A rollout never fights a person: any other change of its alias (a rollback, a
deploy, a promotion by hand) supersedes it in the transaction that makes the
change, and it never moves the alias again. Operators pause, resume and cancel
rollouts; stopping one leaves the alias as it is (a rollback ends its canary).

All state lives in the `rollouts` table, so a serve that stops between stages
loses nothing, and two advances at the same moment move the alias once: each
re-reads the rollout in its own write transaction before proposing a stage.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from core.errors import Conflict, FinetuneError, InvalidInput, NotFound
from core.platform import approvals, audit, events, outbox
from core.platform.actors import SCHEDULER, Actor
from core.platform.policy import authorize
from core.platform.store import Store
from core.platform.timeutil import iso, parse_iso
from core.services import Services
from core.vocabulary import (
    ACTIVE_ROLLOUT_STATES,
    AliasMove,
    ApprovalState,
    GuardDecision,
    Operation,
    Role,
    RolloutApproval,
    RolloutState,
)

if TYPE_CHECKING:
    from core.registry.service import RegistryChange, _AliasChange, _State

# `core.registry.service` imports this module for its models and hooks; the functions here that act through the
# service import it when they run.

log = logging.getLogger(__name__)

MAX_STAGES = 20
MIN_HOLD = timedelta(minutes=1)
MAX_HOLD = timedelta(days=30)
GUARD_RETRY = timedelta(minutes=10)  # a guard that says "hold" is asked again this much later
PLAN_EXAMPLE = "10,50,100"
HOLD_EXAMPLE = "30m, 24h or 2d"

_HOLD_UNITS = {"m": 60, "h": 3600, "d": 86400}
_HOLD = re.compile(r"(?:[0-9]{1,6}[mhd])+")
_HOLD_PART = re.compile(r"([0-9]{1,6})([mhd])")


# Results -------------------------------------------------------------------------------------------------


class RolloutStep(BaseModel):
    """Which stage of which rollout an alias change is: carried by the change, recorded when it is applied."""

    model_config = ConfigDict(frozen=True)

    id: str
    stage: int
    stages: int

    def describe(self) -> str:
        return f"rollout {self.id}, stage {self.stage} of {self.stages}"


class Rollout(BaseModel):
    id: str
    model_name: str
    alias: str
    version_id: str = Field(description="The version being rolled out.")
    stages: list[int] = Field(description="Canary shares in order; the last, 100, promotes the version.")
    hold: str = Field(description="The wait between stages, e.g. 1d or 30m.")
    hold_seconds: int
    approval_mode: RolloutApproval = Field(
        description="plan: approving the first stage approved them all; stage: each stage waits for an approval."
    )
    stage: int = Field(description="The live stage, counting from 1; 0 until the first stage is live.")
    share: int = Field(description="The canary share live now (0 before the first stage).")
    status: RolloutState
    status_reason: str | None = Field(description="Why it stopped, waits or was held (a guard's reason, who).")
    approval_id: str | None = Field(description="The approval the next stage waits on, if any.")
    plan_approval_id: str | None = Field(description="The approval of the first stage, which covers a plan.")
    next_at: str | None = Field(description="When the next stage is due (UTC), while running.")
    requested_by: str
    requested_by_identity: str = Field(description="Who asked, as four eyes compares them (slack:U1, os:alice).")
    reason: str | None
    created_at: str
    updated_at: str

    def progress(self) -> str:
        """`stage 2 of 3`."""
        return f"stage {self.stage} of {len(self.stages)}"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_ROLLOUT_STATES


# Guards --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuardVerdict:
    """A guard's answer before the next stage: pass, hold (ask again later) or halt (stop the rollout), and why."""

    decision: GuardDecision
    reason: str = ""


PASS = GuardVerdict(GuardDecision.PASS)

RolloutGuard = Callable[[Services, Rollout], GuardVerdict]


def _acceptance(svc: Services, rollout: Rollout) -> GuardVerdict:
    """The evaluation capability's acceptance guard (`core.evaluation.guard`), imported when first asked: the
    statistics it needs load only in a process that advances rollouts."""
    from core.evaluation.guard import acceptance_guard

    return acceptance_guard(svc, rollout)


# Every guard asked before a rollout's next stage, by name; the first halt stops it, else the first hold waits.
# `acceptance` compares the canary's online acceptance with the stable version's by the sequential test: hold
# while the feedback is too thin to tell, halt on a significant drop. A guard that raises counts as hold (and is
# logged): a rollout never advances unchecked.
ROLLOUT_GUARDS: dict[str, RolloutGuard] = {"acceptance": _acceptance}


# Checking plans and holds --------------------------------------------------------------------------------


def check_plan(plan: object, *, argument: str = "plan") -> list[int]:
    """`plan` as a list of canary shares: 1 to 20 whole percentages from 1 to 100, increasing, ending at 100."""
    if not isinstance(plan, list | tuple) or not all(type(share) is int for share in plan):
        raise InvalidInput(
            f"`{argument}` must be a list of whole percentages, got {plan!r}.",
            hint=f"For example {PLAN_EXAMPLE}: 10% of callers, then half, then everyone.",
        )
    if not 1 <= len(plan) <= MAX_STAGES:
        raise InvalidInput(
            f"`{argument}` has {len(plan)} stages; a plan has 1 to {MAX_STAGES}.", hint=f"For example {PLAN_EXAMPLE}."
        )
    for number, share in enumerate(plan, start=1):
        if not 1 <= share <= 100:
            raise InvalidInput(
                f"`{argument}` stage {number} is {share}%; each stage's share must be from 1 to 100.",
                hint=f"For example {PLAN_EXAMPLE}.",
            )
        if number > 1 and share <= plan[number - 2]:
            raise InvalidInput(
                f"`{argument}` stage {number} ({share}%) is not above stage {number - 1} ({plan[number - 2]}%):"
                " each stage must send more callers than the one before.",
                hint=f"List the shares in increasing order, e.g. {PLAN_EXAMPLE}.",
            )
    if plan[-1] != 100:
        raise InvalidInput(
            f"`{argument}` ends at {plan[-1]}%; its last stage must be 100, which promotes the version.",
            hint=f"Add 100 at the end: {','.join(map(str, [*plan, 100]))}.",
        )
    return list(plan)


def parse_plan(text: str, *, argument: str = "plan") -> list[int]:
    """`10,50,100` (or `10%, 50%, 100%`) as a checked plan."""
    shares: list[int] = []
    for number, part in enumerate(str(text).split(","), start=1):
        digits = part.strip().removesuffix("%").strip()
        if not digits.isascii() or not digits.isdigit() or len(digits) > 3:
            shown = part.strip()[:20] or "nothing"
            raise InvalidInput(
                f"`{argument}` must be canary shares separated by commas; stage {number} is {shown!r}.",
                hint=f"For example {PLAN_EXAMPLE}.",
            )
        shares.append(int(digits))
    return check_plan(shares, argument=argument)


def check_hold(every: object, *, argument: str = "every") -> timedelta:
    """`every` as the hold between stages: a timedelta, or text such as 30m, 24h, 2d or 1d12h."""
    hold = parse_hold(every, argument=argument) if isinstance(every, str) else every
    if not isinstance(hold, timedelta):
        raise InvalidInput(f"`{argument}` must be a duration, got {every!r}.", hint=f"For example {HOLD_EXAMPLE}.")
    if not MIN_HOLD <= hold <= MAX_HOLD:
        raise InvalidInput(
            f"`{argument}` is {format_hold(hold)}; the hold between stages must be from 1 minute to 30 days.",
            hint=f"For example {HOLD_EXAMPLE}.",
        )
    return hold


def parse_hold(text: str, *, argument: str = "every") -> timedelta:
    """`30m`, `24h`, `2d` or a sum such as `1d12h`, as a checked hold."""
    compact = str(text).strip().lower()
    if not _HOLD.fullmatch(compact):
        raise InvalidInput(
            f"`{argument}` must be a duration in minutes (m), hours (h) or days (d), got {str(text)[:40]!r}.",
            hint=f"For example {HOLD_EXAMPLE}.",
        )
    seconds = sum(int(count) * _HOLD_UNITS[unit] for count, unit in _HOLD_PART.findall(compact))
    return check_hold(timedelta(seconds=seconds), argument=argument)


def format_hold(hold: timedelta) -> str:
    """`1d12h`, `30m`: the hold as `every` takes it (seconds only when it has some)."""
    seconds = int(hold.total_seconds())
    if seconds <= 0:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# Starting ------------------------------------------------------------------------------------------------


def start(
    svc: Services, *, actor: Actor, name: str, version: int | str, alias: str, plan: object, every: object,
    reason: str | None = None,
) -> RegistryChange:  # fmt: skip
    """Start a staged rollout of `version` behind `name@alias` and propose its first stage.

    Everything is checked before anything is written; the rollout row and its first stage (applied, or its
    approval request) commit together.
    """
    from core.registry import service

    if plan is None or every is None:
        missing = "plan" if plan is None else "every"
        raise InvalidInput(
            f"`{missing}` is missing: a staged rollout needs both `plan` (the canary shares) and `every` (the hold"
            " between stages).",
            hint=f"For example plan {PLAN_EXAMPLE} with every 24h.",
        )
    stages, hold = check_plan(plan), check_hold(every)
    store = svc.store
    alias = service._check_alias(alias)
    target = service._deployable(store, name, version)
    before = _stable_before(service._state(store, name, alias), name=name, alias=alias, version_id=target.id)
    now = iso(svc.clock())
    with store.write():
        _refuse_second(store, name, alias)
        rollout = _insert(
            store, name=name, alias=alias, version_id=target.id, stages=stages, hold=hold,
            mode=svc.settings.rollout_approval, actor=actor, reason=reason, now=now,
        )  # fmt: skip
        change = service._change(svc, actor, _stage_change(rollout, 1, before))
        if change.approval is not None:
            _set(store, rollout, actor=str(actor), now=now, approval_id=change.approval.id)
        args = {"model": name, "alias": alias, "version": target.id, "plan": stages, "every": format_hold(hold)}
        audit.record(store, actor, "start_rollout", args, detail=f"rollout {rollout.id}")
    return change.model_copy(update={"rollout": get(store, rollout.id)})


def _stable_before(before: _State | None, *, name: str, alias: str, version_id: str) -> _State:
    """The alias a rollout starts from: it must serve a stable version, and not already the incoming one."""
    if before is None:
        raise Conflict(
            f"{name}@{alias} has no version yet, so a rollout of {version_id} has no callers to move from.",
            hint=f"Deploy a first version to {alias} without a plan.",
        )
    if before.version_id == version_id:
        raise Conflict(f"{version_id} is already the stable version of {name}@{alias}.", hint="Pick a newer version.")
    return before


def _refuse_second(store: Store, name: str, alias: str) -> None:
    running = _active_row(store, name, alias)
    if running is not None:
        raise Conflict(
            f"{name}@{alias} already has rollout {running['id']} ({running['status']}); an alias runs one at a time.",
            hint=f"Cancel it first: `finetune models rollout {name} --alias {alias} cancel`.",
            rollout=running["id"],
        )


def _stage_change(rollout: Rollout, stage: int, current: _State) -> _AliasChange:
    """The alias change that makes `stage` live: the canary at its share, or the version promoted at 100."""
    from core.registry import service

    share = rollout.stages[stage - 1]
    step = RolloutStep(id=rollout.id, stage=stage, stages=len(rollout.stages))
    if share == 100:  # the last stage: everyone gets the version (a one-stage plan is a plain deploy)
        move = AliasMove.PROMOTE if stage > 1 else AliasMove.DEPLOY
        after = service._State(version_id=rollout.version_id)
    else:
        move = AliasMove.CANARY
        after = service._State(version_id=current.version_id, canary_version_id=rollout.version_id, canary_share=share)
    why = step.describe() + (f": {rollout.reason}" if rollout.reason else "")
    return service._AliasChange(
        name=rollout.model_name, alias=rollout.alias, move=move, before=current, after=after, reason=why, rollout=step
    )


# Reading -------------------------------------------------------------------------------------------------


def get(store: Store, rollout_id: str) -> Rollout:
    rows = _select(store, "id = ?", (rollout_id,))
    if not rows:
        raise NotFound(f"no rollout {rollout_id!r}.", hint="A model's rollouts show with `models show`.")
    return _rollout(rows[0])


def get_rollout(store: Store, name: str, *, alias: str) -> Rollout:
    """`name@alias`'s active rollout, else its latest one."""
    from core.registry import service

    service._require_model(store, name)
    rows = _select(store, "model_name = ? AND alias = ?", (name, service._check_alias(alias)), newest_first=True)
    if not rows:
        raise NotFound(
            f"{name}@{alias} has had no staged rollout.",
            hint=f"Start one: `finetune deploy {name} VERSION --alias {alias} --plan {PLAN_EXAMPLE} --every 24h`.",
        )
    active = [row for row in rows if row["status"] in ACTIVE_ROLLOUT_STATES]
    return _rollout((active or rows)[0])


def active_rollouts(store: Store, name: str) -> list[Rollout]:
    """The rollouts of model `name` that have not ended, by alias."""
    return [_rollout(row) for row in _select(store, f"model_name = ? AND status IN ({_ACTIVE})", (name, *_ACTIVE_ARGS))]


# Pausing, resuming, cancelling ---------------------------------------------------------------------------


def pause(svc: Services, *, actor: Actor, name: str, alias: str, reason: str | None = None) -> Rollout:
    """Stop advancing `name@alias`'s rollout; a stage approval it waits on is withdrawn. The alias stays."""

    def check(rollout: Rollout) -> None:
        if rollout.status is RolloutState.PAUSED:
            raise Conflict(f"rollout {rollout.id} is already paused.", hint="Resume it, or cancel it.")
        if rollout.stage == 0:
            raise Conflict(
                f"rollout {rollout.id} waits for the approval of its first stage ({rollout.approval_id}):"
                " nothing runs yet to pause.",
                hint="Cancel it, or reject that approval.",
            )

    return _control(svc, actor, name, alias, check, RolloutState.PAUSED, "pause", reason)


def resume(svc: Services, *, actor: Actor, name: str, alias: str, reason: str | None = None) -> Rollout:
    """Advance a paused rollout again: its next stage comes when its hold has passed (at once if it has)."""

    def check(rollout: Rollout) -> None:
        if rollout.status is not RolloutState.PAUSED:
            raise Conflict(f"rollout {rollout.id} is {rollout.status}, not paused.", hint="Nothing to resume.")

    return _control(svc, actor, name, alias, check, RolloutState.RUNNING, "resume", reason)


def cancel(svc: Services, *, actor: Actor, name: str, alias: str, reason: str | None = None) -> Rollout:
    """End `name@alias`'s rollout for good; a stage approval it waits on is withdrawn. The alias stays as it is."""
    return _control(svc, actor, name, alias, lambda rollout: None, RolloutState.CANCELLED, "cancel", reason)


_DONE = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}


def _control(
    svc: Services, actor: Actor, name: str, alias: str, check: Callable[[Rollout], None], status: RolloutState,
    verb: str, reason: str | None,
) -> Rollout:  # fmt: skip
    from core.registry import service

    authorize(actor, Operation.CONTROL_ROLLOUT)
    store = svc.store
    service._require_model(store, name)
    alias = service._check_alias(alias)
    with store.write():
        row = _active_row(store, name, alias)
        if row is None:
            raise Conflict(
                f"{name}@{alias} has no rollout in progress to {verb}.",
                hint=f"`finetune models rollout {name} --alias {alias}` shows its latest one.",
            )
        rollout = _rollout(row)
        check(rollout)
        why = f"{_DONE[verb]} by {actor}" + (f": {reason}" if reason else "")
        if rollout.approval_id:
            _withdraw(store, rollout.approval_id, why=f"rollout {rollout.id} {why}")
        next_at = None if status is RolloutState.CANCELLED else rollout.next_at
        rollout = _set(
            store, rollout, actor=str(actor), now=iso(svc.clock()), status=status, approval_id=None,
            status_reason=why, next_at=next_at,
        )  # fmt: skip
        audit.record(store, actor, f"{verb}_rollout", {"model": name, "alias": alias, "rollout": rollout.id})
    return rollout


# Advancing -----------------------------------------------------------------------------------------------


def advance_due(svc: Services, *, now: datetime | None = None) -> int:
    """Propose the next stage of every running rollout whose hold has passed; how many advanced.

    Each rollout advances in its own transaction; one that cannot propose its stage (its version was retired,
    say) is halted with the reason, and an unexpected failure is logged and tried again on the next run.
    """
    moment = now or svc.clock()
    advanced = 0
    for row in _select(svc.store, "status = ? AND next_at <= ?", (RolloutState.RUNNING, iso(moment))):
        rollout = _rollout(row)
        try:
            advanced += _advance(svc, rollout, now=moment)
        except FinetuneError as exc:
            log.warning("rollout %s halted: %s", rollout.id, exc.message)
            _stop_if_unchanged(svc.store, rollout, RolloutState.HALTED, f"stage {rollout.stage + 1}: {exc}", moment)
        except Exception:
            log.exception("rollout %s could not advance; trying again on the next run", rollout.id)
    return advanced


def _advance(svc: Services, rollout: Rollout, *, now: datetime) -> bool:
    """Ask the guards, then propose the rollout's next stage, unless another advance got there first."""
    from core.registry import service

    verdict = _ask_guards(svc, rollout)
    store = svc.store
    with store.write():
        fresh = get(store, rollout.id)
        if not _unchanged(fresh, rollout) or fresh.next_at is None or parse_iso(fresh.next_at) > now:
            return False  # advanced, paused or stopped meanwhile
        if verdict.decision is GuardDecision.HALT:
            _stop(store, fresh, RolloutState.HALTED, verdict.reason, now)
            return False
        if verdict.decision is GuardDecision.HOLD:
            _set(store, fresh, actor=str(SCHEDULER), now=iso(now), next_at=iso(now + GUARD_RETRY),
                 status_reason=verdict.reason, announce=fresh.status_reason != verdict.reason)  # fmt: skip
            return False
        current = service._state(store, fresh.model_name, fresh.alias)
        if current is None or (current.canary_version_id, current.canary_share) != (fresh.version_id, fresh.share):
            shown = service._describe_state(current)
            _stop(
                store, fresh, RolloutState.SUPERSEDED, f"the alias is {shown}, not what stage {fresh.stage} left", now
            )
            return False
        stage = fresh.stage + 1
        actor, plan_approval = _stage_actor(svc, fresh)
        change = service._change(svc, actor, _stage_change(fresh, stage, current), preapproval=plan_approval)
        if change.approval is not None:
            _set(store, fresh, actor=str(SCHEDULER), now=iso(now), status=RolloutState.WAITING_APPROVAL,
                 approval_id=change.approval.id, status_reason=f"stage {stage} waits for approval")  # fmt: skip
        args = {"rollout": fresh.id, "stage": stage, "share": fresh.stages[stage - 1]}
        audit.record(
            store, SCHEDULER, "advance_rollout", args, detail=f"{fresh.id}: stage {stage} of {len(fresh.stages)}"
        )
    return True


def _ask_guards(svc: Services, rollout: Rollout) -> GuardVerdict:
    """The first halt of any guard, else the first hold, else pass. A guard that fails holds the rollout."""
    held: GuardVerdict | None = None
    for name, guard in ROLLOUT_GUARDS.items():
        try:
            verdict = guard(svc, rollout)
        except Exception:
            log.exception("rollout guard %s failed on %s; holding the rollout", name, rollout.id)
            verdict = GuardVerdict(GuardDecision.HOLD, "could not tell (see the serve log)")
        if verdict.decision is GuardDecision.PASS:
            continue
        named = GuardVerdict(verdict.decision, f"guard {name}: {verdict.reason or verdict.decision}")
        if named.decision is GuardDecision.HALT:
            return named
        held = held or named
    return held or PASS


def _stage_actor(svc: Services, rollout: Rollout) -> tuple[Actor, str | None]:
    """Who proposes a later stage, and the approval that already allows it (a plan's).

    An unprotected alias: the scheduler, directly. A protected one: the scheduler under the plan's approval in
    `plan` mode; otherwise a new request on behalf of the requester, so they cannot approve it themselves.
    """
    if rollout.alias not in svc.settings.protected_aliases:
        return SCHEDULER, None
    if rollout.approval_mode is RolloutApproval.PLAN and rollout.plan_approval_id:
        return SCHEDULER, rollout.plan_approval_id
    face, _, actor_id = rollout.requested_by.partition(":")
    return Actor(actor_id, face, role=Role.OPERATOR, identity=rollout.requested_by_identity), None


# What the registry tells a rollout -----------------------------------------------------------------------


def on_alias_applied(store: Store, change: _AliasChange, *, actor: str, approval_id: str | None, now: str) -> None:
    """An alias change was applied (inside its transaction): a rollout's stage is live, or the rollout is overtaken.

    A change that is no stage of the alias's active rollout supersedes that rollout. A stage of a rollout that is
    no longer in progress is refused (Conflict), so nothing moves for a rollout that was stopped.
    """
    row = _active_row(store, change.name, change.alias)
    step = change.rollout
    if step is None:
        if row is not None:
            why = f"{change.move} by {actor} moved the alias outside the rollout"
            _stop(store, _rollout(row), RolloutState.SUPERSEDED, why, parse_iso(now))
        return
    rollout = _rollout(row) if row is not None and row["id"] == step.id else get(store, step.id)
    if not rollout.active or step.stage != rollout.stage + 1:
        raise Conflict(
            f"rollout {rollout.id} is {rollout.status} at {rollout.progress()}, so its stage {step.stage} cannot go"
            " live.",
            hint="Reject the request; the rollout's own state says what happened.",
            rollout=rollout.id,
        )
    last = step.stage == len(rollout.stages)
    _set(
        store, rollout, actor=actor, now=now, stage=step.stage, approval_id=None, status_reason=None,
        status=RolloutState.COMPLETED if last else RolloutState.RUNNING,
        next_at=None if last else iso(parse_iso(now) + timedelta(seconds=rollout.hold_seconds)),
        plan_approval_id=approval_id if step.stage == 1 else rollout.plan_approval_id,
    )  # fmt: skip


def on_stage_refused(store: Store, change: _AliasChange, approval: approvals.Approval) -> None:
    """A stage's approval was rejected or expired (inside the deciding transaction): the rollout is cancelled."""
    step = change.rollout
    if step is None:
        return
    rollout = get(store, step.id)
    if not rollout.active or rollout.approval_id != approval.id:
        return
    who = f" by {approval.decided_by}" if approval.decided_by else ""
    why = f"the approval of stage {step.stage} ({approval.id}) was {approval.status}{who}"
    why += f": {approval.reason}" if approval.reason else ""
    _stop(store, rollout, RolloutState.CANCELLED, why, parse_iso(approval.decided_at) if approval.decided_at else None)


# Writing -------------------------------------------------------------------------------------------------


def _stop(store: Store, rollout: Rollout, status: RolloutState, why: str, now: datetime | None) -> None:
    """End a rollout (halted, superseded, cancelled) with its reason; its pending stage approval is withdrawn."""
    if rollout.approval_id:
        _withdraw(store, rollout.approval_id, why=f"rollout {rollout.id} {status}: {why}")
    _set(store, rollout, actor=str(SCHEDULER), now=iso(now), status=status, status_reason=why, next_at=None,
         approval_id=None)  # fmt: skip
    audit.record(store, SCHEDULER, f"{status}_rollout", {"rollout": rollout.id}, detail=why)


def _stop_if_unchanged(store: Store, rollout: Rollout, status: RolloutState, why: str, now: datetime) -> None:
    with store.write():
        fresh = get(store, rollout.id)
        if _unchanged(fresh, rollout):
            _stop(store, fresh, status, why, now)


def _unchanged(fresh: Rollout, seen: Rollout) -> bool:
    return (fresh.status, fresh.stage, fresh.approval_id) == (seen.status, seen.stage, seen.approval_id)


def _withdraw(store: Store, approval_id: str, *, why: str) -> None:
    """Withdraw a pending stage approval; its Slack message loses its buttons and says why."""
    if not approvals.cancel_pending(store, approval_id):
        return
    approval = approvals.get(store, approval_id)
    outbox.enqueue(
        store,
        events.ApprovalDecided(
            approval_id=approval.id, action=approval.action, subject_id=approval.subject_id,
            status=ApprovalState.CANCELLED, decided_by=None, reason=why,
        ),
    )  # fmt: skip


def _set(store: Store, rollout: Rollout, *, actor: str, now: str, announce: bool = True, **changes: Any) -> Rollout:
    """Write `changes` to the rollout's row and announce its new state. Inside the caller's transaction."""
    with store.write():
        _update(store, rollout.id, changes, now=now)
        changed = get(store, rollout.id)
        if announce:
            outbox.enqueue(
                store,
                events.RolloutChanged(
                    rollout_id=changed.id, model_name=changed.model_name, alias=changed.alias,
                    version_id=changed.version_id, status=changed.status, stage=changed.stage,
                    stages=len(changed.stages), share=changed.share, next_at=changed.next_at,
                    approval_id=changed.approval_id, actor=actor, reason=changed.status_reason,
                ),
            )  # fmt: skip
    return changed


# Storage: every statement on the `rollouts` table --------------------------------------------------------

_ACTIVE_ARGS = tuple(sorted(ACTIVE_ROLLOUT_STATES))
_ACTIVE = ", ".join("?" for _ in _ACTIVE_ARGS)
_COLUMNS = frozenset({"status", "stage", "approval_id", "plan_approval_id", "next_at", "status_reason"})


def _insert(
    store: Store, *, name: str, alias: str, version_id: str, stages: list[int], hold: timedelta,
    mode: RolloutApproval, actor: Actor, reason: str | None, now: str,
) -> Rollout:  # fmt: skip
    """A new rollout, waiting for its first stage. Inside the caller's transaction."""
    rollout_id = "ro_" + uuid.uuid4().hex[:12]
    store.db.execute(
        "INSERT INTO rollouts (id, model_name, alias, version_id, stages, hold_seconds, approval_mode, stage, status,"
        " requested_by, requested_by_identity, requested_via, reason, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)",
        (rollout_id, name, alias, version_id, json.dumps(stages), int(hold.total_seconds()), mode,
         RolloutState.WAITING_APPROVAL, str(actor), actor.identity, actor.face, reason, now, now),
    )  # fmt: skip
    return get(store, rollout_id)


def _select(
    store: Store, where: str, params: tuple[object, ...], *, newest_first: bool = False
) -> list[dict[str, Any]]:
    order = "created_at DESC, rowid DESC" if newest_first else "alias, next_at, created_at"
    return store.query(f"SELECT * FROM rollouts WHERE {where} ORDER BY {order}", params)


def _update(store: Store, rollout_id: str, changes: dict[str, Any], *, now: str) -> None:
    assert set(changes) <= _COLUMNS, set(changes) - _COLUMNS  # names from this module only, never from input
    assignments = ", ".join(f"{column} = ?" for column in changes)
    store.db.execute(
        f"UPDATE rollouts SET {assignments}, updated_at = ? WHERE id = ?", (*changes.values(), now, rollout_id)
    )


def _active_row(store: Store, name: str, alias: str) -> dict[str, Any] | None:
    rows = _select(store, f"model_name = ? AND alias = ? AND status IN ({_ACTIVE})", (name, alias, *_ACTIVE_ARGS))
    return rows[0] if rows else None


def _rollout(row: dict[str, Any]) -> Rollout:
    stages = json.loads(row["stages"])
    fields = {key: value for key, value in row.items() if key in Rollout.model_fields}
    return Rollout(
        **fields
        | {
            "stages": stages,
            "hold": format_hold(timedelta(seconds=row["hold_seconds"])),
            "share": stages[row["stage"] - 1] if row["stage"] else 0,
        }
    )
