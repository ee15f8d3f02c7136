"""The model registry: registered models, immutable versions, aliases with canaries, and the ledger of every move.

A registered model (one per agent or use case) has versions `name:v1`,
`name:v2`, ... whose lineage (dataset version -> job -> provider model id,
cost, training metrics) never changes once written; the database refuses to
rewrite or delete them. Aliases (`production`, `candidate`, any user-defined
name) each point at one stable version and, optionally, at a canary that
serves `canary_share`% of callers (see `core.registry.resolve`).

Every alias move and canary change is a row of the promotions ledger (who,
through which face, when, from -> to, the canary and its share, the approval
that allowed it), written in the transaction that makes the move, with its
notification and its audit row; `history(store, name, at=...)` reads back what
served each alias at any moment and who put it there.

The actions go through the policy: moving an alias that is not protected is
direct for an operator (Operation.MOVE_ALIAS); changing a protected one
(FINETUNE_PROTECTED_ALIASES, `production` by default) and retiring a version
wait for an approval (Operation.MOVE_PROTECTED_ALIAS, Operation.RETIRE_VERSION)
from as many people as FINETUNE_APPROVALS_NEEDED asks (`production=2` by
default), and the change happens when it is approved, inside the deciding
transaction (`on_alias_decided`, `on_retire_decided`). The request carries
what deciders need: the alias before and after and the incoming version's
lineage (`core.registry.facts`). A request records the alias's state when it
was asked; if the alias moved meanwhile, approving it is refused (Conflict) and
the request can only be rejected, so nobody approves a change whose premise is
gone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.errors import Conflict, InvalidInput, NotFound
from core.platform import approvals, audit, events, outbox
from core.platform.actors import Actor
from core.platform.policy import POLICY, authorize
from core.platform.store import Store
from core.platform.timeutil import iso, parse_iso
from core.registry import db, deployments, gate, rollouts
from core.registry.deployments import Deployment
from core.registry.facts import lineage_facts
from core.registry.rollouts import Rollout, RolloutStep
from core.services import Services
from core.vocabulary import Action, AliasMove, ApprovalNeed, Face, Operation

PRODUCTION = "production"
CANDIDATE = "candidate"  # the alias a newly trained version takes

_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,39}")
_VERSION = re.compile(r"(?:(?P<name>.+):)?v?(?P<number>[0-9]{1,9})")
_LIST_LIMIT = 10
_REASON_SHOWN = 1000  # characters of a reason an approval request shows; the ledger keeps it whole


# Results -------------------------------------------------------------------------------------------------


class ModelVersion(BaseModel):
    id: str
    name: str
    version: int
    provider: str
    provider_model_id: str | None
    job_id: str | None
    dataset_version_id: str | None
    base_model: str | None
    status: str = Field(description="registered, or retired")
    metrics: dict[str, float]
    cost_usd: float | None
    created_at: str
    retired_at: str | None


class AliasState(BaseModel):
    model_name: str
    alias: str
    version_id: str = Field(description="The stable version.")
    canary_version_id: str | None
    canary_share: int = Field(description="Percent of callers (0-100) the canary serves.")
    updated_at: str


class RegistryChange(BaseModel):
    """What an action did: applied at once, or waiting for an approval."""

    applied: bool
    alias: AliasState | None = Field(default=None, description="The alias as it stands now.")
    version: ModelVersion | None = Field(default=None, description="The retired version, for retirements.")
    approval: approvals.Approval | None = None
    rollout: Rollout | None = Field(default=None, description="The staged rollout a deploy with a plan started.")


class LedgerEntry(BaseModel):
    model_name: str
    alias: str
    move: AliasMove | None = Field(description="None for rows written before moves had kinds.")
    from_version_id: str | None
    to_version_id: str
    canary_version_id: str | None
    canary_share: int
    actor: str
    face: str | None
    approval_id: str | None
    approved_by: str | None
    reason: str | None
    at: str


class AliasAt(BaseModel):
    """What served one alias at a moment, and the ledger row that put it there."""

    alias: str
    version_id: str
    canary_version_id: str | None
    canary_share: int
    since: str
    put_by: str
    face: str | None
    approval_id: str | None
    approved_by: str | None


class History(BaseModel):
    model_name: str
    at: str | None = Field(description="The moment asked about (UTC); None: now.")
    aliases: list[AliasAt]
    moves: list[LedgerEntry] = Field(description="Every ledger row up to `at`, oldest first.")


class _State(BaseModel):
    model_config = ConfigDict(frozen=True)

    version_id: str
    canary_version_id: str | None = None
    canary_share: int = 0


class _AliasChange(BaseModel):
    """One alias change, as proposed: stored in an approval's payload and applied when it is approved."""

    model_config = ConfigDict(frozen=True)

    name: str
    alias: str
    move: AliasMove
    before: _State | None
    after: _State
    reason: str | None = None
    rollout: RolloutStep | None = None  # the staged rollout's stage this change is, if it is one

    def describe(self) -> str:
        after = self.after.version_id
        if self.after.canary_version_id:
            after += f" with canary {self.after.canary_version_id} at {self.after.canary_share}%"
        before = _describe_state(self.before)
        step = f" ({self.rollout.describe()})" if self.rollout else ""
        return f"{self.move} {self.name}@{self.alias}: {before} -> {after}{step}"


def _describe_state(state: _State | None) -> str:
    if state is None:
        return "nothing"
    if state.canary_version_id:
        return f"{state.version_id} with canary {state.canary_version_id} at {state.canary_share}%"
    return state.version_id


# Reading -------------------------------------------------------------------------------------------------


def get_version(store: Store, version_id: str) -> ModelVersion:
    row = db.version(store, version_id)
    if row is None:
        raise NotFound(
            f"no model version {version_id!r}.", hint="List a model's versions with its name.", version=version_id
        )
    return _version(row)


def list_models(store: Store) -> list[str]:
    """The name of every registered model, in alphabetical order."""
    return db.model_names(store)


def list_versions(store: Store, name: str) -> list[ModelVersion]:
    _require_model(store, name)
    return [_version(row) for row in db.versions(store, name)]


def list_aliases(store: Store, name: str) -> list[AliasState]:
    _require_model(store, name)
    return [_alias(row) for row in db.aliases(store, name)]


def alias_state(store: Store, name: str, alias: str) -> AliasState | None:
    """What `name@alias` serves now (stable version and canary), or None when it serves nothing."""
    row = db.alias(store, name, alias)
    return _alias(row) if row else None


def version_of_job(store: Store, job_id: str) -> ModelVersion | None:
    """The version a fine-tuning job registered, once it has."""
    row = db.version_of_job(store, job_id)
    return _version(row) if row else None


class ModelSummary(BaseModel):
    name: str
    versions: int = Field(description="How many versions the model has.")
    latest: str | None = Field(description="Its newest version's id.")
    aliases: list[AliasState] = Field(description="Its aliases and the versions each serves.")


class ModelList(BaseModel):
    models: list[ModelSummary]


class ModelDetail(BaseModel):
    name: str
    versions: list[ModelVersion] = Field(description="Every version, oldest first, with its lineage.")
    aliases: list[AliasState]
    rollouts: list[Rollout] = Field(default_factory=list, description="Its staged rollouts still in progress.")
    deployments: list[Deployment] = Field(
        default_factory=list, description="Each version's newest provider deployment: kind, status, ARN, price."
    )


def models_overview(store: Store) -> ModelList:
    """Every registered model with its number of versions, its newest one and its aliases."""
    summaries = []
    for name in list_models(store):
        versions = list_versions(store, name)
        summaries.append(
            ModelSummary(
                name=name,
                versions=len(versions),
                latest=versions[-1].id if versions else None,
                aliases=list_aliases(store, name),
            )
        )
    return ModelList(models=summaries)


def describe_model(store: Store, name: str) -> ModelDetail:
    """One model: every version with its lineage, and its aliases."""
    return ModelDetail(
        name=name, versions=list_versions(store, name), aliases=list_aliases(store, name),
        rollouts=rollouts.active_rollouts(store, name), deployments=deployments.for_model(store, name),
    )  # fmt: skip


def history(store: Store, name: str, at: datetime | str | None = None) -> History:
    """What served each alias of `name` at `at` (default: now), who put it there, and every move until then."""
    _require_model(store, name)
    until = _moment(at)
    moves = [_entry(row) for row in db.ledger(store, name, until=until)]
    latest = {move.alias: move for move in moves}  # oldest first, so the last row of each alias wins
    return History(
        model_name=name, at=until, moves=moves,
        aliases=[
            AliasAt(
                alias=m.alias, version_id=m.to_version_id, canary_version_id=m.canary_version_id,
                canary_share=m.canary_share, since=m.at, put_by=m.actor, face=m.face, approval_id=m.approval_id,
                approved_by=m.approved_by,
            )
            for m in sorted(latest.values(), key=lambda m: m.alias)
        ],
    )  # fmt: skip


RECENT_MOVES_MAX = 1000


def recent_moves(store: Store, *, limit: int) -> list[LedgerEntry]:
    """The newest `limit` alias moves across every model, newest first."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= RECENT_MOVES_MAX:
        raise InvalidInput(
            f"`limit` must be a whole number from 1 to {RECENT_MOVES_MAX}, got {limit!r}.",
            hint="For example 10 for the latest ten moves.",
        )
    return [_entry(row) for row in db.recent_ledger(store, limit=limit)]


# Registering ---------------------------------------------------------------------------------------------


def register_version(
    store: Store, *, name: str, provider: str, provider_model_id: str | None, job_id: str | None,
    dataset_version_id: str | None, base_model: str | None, metrics: dict[str, float], cost_usd: float | None,
    actor: Actor, reason: str, now: str,
) -> ModelVersion:  # fmt: skip
    """Add the next version of model `name` (registering the model on first use) and point `candidate` at it.

    Runs inside the caller's transaction (a job's final state commits with its version).
    """
    with store.write():
        db.ensure_model(store, name, actor=str(actor), now=now)
        version_id = db.insert_version(
            store, name=name, provider=provider, provider_model_id=provider_model_id, job_id=job_id,
            dataset_version_id=dataset_version_id, base_model=base_model, metrics=metrics, cost_usd=cost_usd, now=now,
        )  # fmt: skip
        before = _state(store, name, CANDIDATE)
        change = _AliasChange(
            name=name, alias=CANDIDATE, move=AliasMove.REGISTER, before=before, after=_State(version_id=version_id),
            reason=reason,
        )  # fmt: skip
        _apply(store, change, actor=str(actor), face=actor.face, approval_id=None, now=now)
    return get_version(store, version_id)


# Acting on aliases ---------------------------------------------------------------------------------------


def request_deploy(
    svc: Services, *, actor: Actor, name: str, version: int | str, alias: str = PRODUCTION,
    canary_share: int | None = None, reason: str | None = None, plan: Sequence[int] | None = None,
    every: timedelta | str | None = None,
) -> RegistryChange:  # fmt: skip
    """Point `name@alias` at `version`; with `canary_share`, run it as the alias's canary for that share instead.

    A plain deploy replaces the stable version and ends any canary. A canary needs a stable version to run beside.
    With `plan` (canary shares ending at 100) and `every` (the hold between them), a staged rollout starts
    instead: see `core.registry.rollouts`.
    """
    if plan is not None or every is not None:
        if canary_share is not None:
            raise InvalidInput(
                "`canary_share` and `plan` cannot go together: a plan sets the canary's share at every stage.",
                hint="Drop `canary_share`, or drop `plan` and `every`.",
            )
        return rollouts.start(
            svc, actor=actor, name=name, version=version, alias=alias, plan=plan, every=every, reason=reason
        )
    store = svc.store
    alias = _check_alias(alias)
    target = _deployable(store, name, version)
    before = _state(store, name, alias)
    if canary_share is None:
        change = _AliasChange(
            name=name, alias=alias, move=AliasMove.DEPLOY, before=before, after=_State(version_id=target.id),
            reason=reason,
        )  # fmt: skip
        return _change(svc, actor, change)
    share = _check_share(canary_share, "canary_share")
    if before is None:
        raise Conflict(
            f"{name}@{alias} has no version yet, so {target.id} has nothing to be a canary beside.",
            hint=f"Deploy a first version to {alias} without a canary share.",
        )
    if before.version_id == target.id:
        raise Conflict(f"{target.id} is already the stable version of {name}@{alias}.", hint="Pick a newer version.")
    after = _State(version_id=before.version_id, canary_version_id=target.id, canary_share=share)
    change = _AliasChange(name=name, alias=alias, move=AliasMove.CANARY, before=before, after=after, reason=reason)
    return _change(svc, actor, change)


def set_canary_share(
    svc: Services, *, actor: Actor, name: str, alias: str, share: int, reason: str | None = None,
) -> RegistryChange:  # fmt: skip
    """Send `share`% of `name@alias`'s callers to its canary (0 pauses it; 100 sends everyone)."""
    share = _check_share(share, "share")
    before = _with_canary(svc.store, name, _check_alias(alias))
    after = before.model_copy(update={"canary_share": share})
    change = _AliasChange(name=name, alias=alias, move=AliasMove.CANARY, before=before, after=after, reason=reason)
    return _change(svc, actor, change)


def promote_canary(
    svc: Services, *, actor: Actor, name: str, alias: str = PRODUCTION, reason: str | None = None,
) -> RegistryChange:  # fmt: skip
    """Make `name@alias`'s canary its stable version, for every caller."""
    before = _with_canary(svc.store, name, _check_alias(alias))
    assert before.canary_version_id is not None  # _with_canary refuses an alias without one
    after = _State(version_id=before.canary_version_id)
    change = _AliasChange(name=name, alias=alias, move=AliasMove.PROMOTE, before=before, after=after, reason=reason)
    return _change(svc, actor, change)


def rollback(
    svc: Services, *, actor: Actor, name: str, alias: str = PRODUCTION, to: int | str | None = None,
    reason: str | None = None, automatic: bool = False,
) -> RegistryChange:  # fmt: skip
    """Undo `name@alias`'s latest change: end its canary if one runs, else go back to its previous version.

    The previous version is the one the alias pointed at before its current one, by the ledger. `to` names
    another version instead (any canary ends too). `automatic`: the scheduler's canary guard ending a canary it
    found significantly worse; with FINETUNE_CANARY_AUTO_ROLLBACK on, that needs no approval.
    """
    store = svc.store
    alias = _check_alias(alias)
    before = _state(store, name, alias)
    if before is None:
        _require_model(store, name)
        raise Conflict(
            f"{name}@{alias} points at no version, so there is nothing to roll back.", hint=_aliases_hint(store, name)
        )
    if to is not None:
        after = _State(version_id=_deployable(store, name, to).id)
    elif before.canary_version_id:
        after = _State(version_id=before.version_id)
    else:
        after = _State(version_id=_previous(store, name, alias, before.version_id))
    change = _AliasChange(name=name, alias=alias, move=AliasMove.ROLLBACK, before=before, after=after, reason=reason)
    guarded = automatic and actor.face is Face.SCHEDULER and to is None and before.canary_version_id is not None
    return _change(svc, actor, change, direct=guarded and svc.settings.canary_auto_rollback)


def _change(
    svc: Services, actor: Actor, change: _AliasChange, *, preapproval: str | None = None, direct: bool = False
) -> RegistryChange:
    """Apply the change at once, or ask for an approval when the policy wants one for this alias.

    Protected aliases are FINETUNE_PROTECTED_ALIASES; FINETUNE_APPROVALS_NEEDED says how many people approve.
    `preapproval` names an approval that already allows the change (a staged rollout's approved plan): it is
    applied at once, and its ledger row names that approval. `direct`: a setting lets this change skip its approval.
    """
    if change.before == change.after:
        raise Conflict(
            f"{change.name}@{change.alias} is already {_describe_state(change.after)}.", hint="Nothing to change."
        )
    settings = svc.settings
    operation = Operation.MOVE_PROTECTED_ALIAS if change.alias in settings.protected_aliases else Operation.MOVE_ALIAS
    authorize(actor, operation)
    store = svc.store
    checked = gate.require(settings, store, change)  # FINETUNE_REQUIRE_EVALUATION: refused unless it passes
    args = {"model": change.name, "alias": change.alias, "after": change.after.model_dump(), "reason": change.reason}
    with store.write():
        needs_approval = POLICY[operation].approval is not ApprovalNeed.NEVER and preapproval is None and not direct
        if needs_approval or deployments.missing(svc, _arriving(change)):  # a new deployment costs money
            action = Action(change.move)
            approval = approvals.request(
                store, action=action, subject_id=f"{change.name}@{change.alias}", summary=change.describe(),
                actor=actor, ttl_hours=settings.approval_ttl_hours, payload=change.model_dump(mode="json"),
                facts=_change_facts(store, change) | deployments.approval_facts(svc, _arriving(change))
                | ({gate.FACT: checked.reason} if checked else {}),
                needed=approvals.approvals_needed(settings, action, change.alias), now=svc.clock(),
            )  # fmt: skip
            audit.record(store, actor, f"request_{change.move}", args, detail=f"waiting for approval {approval.id}")
            return RegistryChange(applied=False, alias=_alias_or_none(store, change), approval=approval)
        _apply(store, change, actor=str(actor), face=actor.face, approval_id=preapproval, now=iso(svc.clock()))
        audit.record(store, actor, str(change.move), args)
    return RegistryChange(applied=True, alias=_alias_or_none(store, change))


def _change_facts(store: Store, change: _AliasChange) -> dict[str, str]:
    """What deciders read: the alias before and after, why it was asked, and the lineage of the version the change
    brings in."""
    facts = {"From": _describe_state(change.before), "To": _describe_state(change.after)} | _reason_fact(change.reason)
    before = change.before.version_id if change.before else None
    incoming = change.after.canary_version_id or change.after.version_id
    if incoming == before and change.after.canary_version_id is None:
        return facts  # no version comes in: a canary ended or its share changed only
    facts["Version"] = incoming
    return facts | lineage_facts(store, incoming)


def _reason_fact(reason: str | None) -> dict[str, str]:
    """The requester's reason (the canary guard's evidence, for its rollbacks), as deciders read it."""
    if not reason:
        return {}
    return {"Reason": reason if len(reason) <= _REASON_SHOWN else reason[: _REASON_SHOWN - 1] + "…"}


def _arriving(change: _AliasChange) -> list[str]:
    """The versions the change brings into the alias: each may need a provider deployment before it serves."""
    before = {change.before.version_id, change.before.canary_version_id} if change.before else set()
    return [v for v in (change.after.version_id, change.after.canary_version_id) if v and v not in before]


def _apply(store: Store, change: _AliasChange, *, actor: str, face: str, approval_id: str | None, now: str) -> None:
    """Move the alias, write its ledger row and its notification. Inside the caller's transaction."""
    _check_applicable(store, change, approval_id)
    after = change.after
    db.set_alias(
        store, name=change.name, alias_name=change.alias, version_id=after.version_id,
        canary_version_id=after.canary_version_id, canary_share=after.canary_share, now=now,
    )  # fmt: skip
    from_id, step = (change.before.version_id if change.before else None), change.rollout
    db.add_ledger_row(
        store, name=change.name, alias_name=change.alias, move=change.move, from_version_id=from_id,
        to_version_id=after.version_id, canary_version_id=after.canary_version_id, canary_share=after.canary_share,
        actor=actor, face=face, approval_id=approval_id, reason=change.reason, now=now,
    )  # fmt: skip
    outbox.enqueue(
        store,
        events.AliasMoved(
            model_name=change.name, alias=change.alias, move=change.move, from_version_id=from_id,
            to_version_id=after.version_id, canary_version_id=after.canary_version_id,
            canary_share=after.canary_share, actor=actor, approval_id=approval_id,
            rollout_id=step.id if step else None, stage=step.stage if step else None,
            stages=step.stages if step else None,
        ),
    )  # fmt: skip
    rollouts.on_alias_applied(store, change, actor=actor, approval_id=approval_id, now=now)


def _check_applicable(store: Store, change: _AliasChange, approval_id: str | None) -> None:
    """Conflict when the alias moved since the change was asked, or a version it brings in was retired since."""
    current = _state(store, change.name, change.alias)
    if current != change.before:
        raise Conflict(
            f"{change.name}@{change.alias} changed since this was asked: it was {_describe_state(change.before)},"
            f" it is now {_describe_state(current)}.",
            hint="Reject the request and ask again from the alias as it stands.",
            approval=approval_id,
        )
    for version_id in filter(None, (change.after.version_id, change.after.canary_version_id)):
        _refuse_retired(store, version_id)  # retired since the request was made


def check_approvable(svc: Services, approval: approvals.Approval) -> None:
    """Before any approving vote: the change must still pass the evaluation policy (EvaluationRequired if not), so
    a request made before the policy applied, or before a newer evaluation failed, cannot be approved."""
    gate.require(svc.settings, svc.store, _AliasChange.model_validate(approval.payload))


def on_alias_decided(store: Store, approval: approvals.Approval, approved: bool) -> None:
    """An alias change was decided: approved, it happens now, in the deciding transaction; otherwise nothing moves
    (and a staged rollout whose stage it was is cancelled)."""
    change = _AliasChange.model_validate(approval.payload)
    if not approved:
        rollouts.on_stage_refused(store, change, approval)
        return
    _check_applicable(store, change, approval.id)  # refused now, not once a deployment is ready
    if deployments.hold(store, approval, _arriving(change)):
        return  # it moves once the incoming version's deployment is active (`deployments.poll_deployments`)
    apply_approved_change(store, approval, now=approval.decided_at or iso())


def apply_approved_change(store: Store, approval: approvals.Approval, *, now: str) -> None:
    """Make the change `approval` approved: the alias moves, its ledger row naming the approval. In the caller's
    transaction; Conflict when the alias moved since it was asked or a version it brings in was retired."""
    change = _AliasChange.model_validate(approval.payload)
    _apply(
        store, change, actor=f"{approval.requested_via}:{approval.requested_by}", face=approval.requested_via,
        approval_id=approval.id, now=now,
    )  # fmt: skip


# Retiring ------------------------------------------------------------------------------------------------


def retire(svc: Services, *, actor: Actor, name: str, version: int | str, reason: str | None = None) -> RegistryChange:
    """Retire a version for good: no alias may point at it again. Refused while an alias serves it."""
    store = svc.store
    target = _deployable(store, name, version)
    _refuse_serving(store, target.id)
    authorize(actor, Operation.RETIRE_VERSION)
    args = {"model": name, "version": target.id, "reason": reason}
    with store.write():
        if POLICY[Operation.RETIRE_VERSION].approval is not ApprovalNeed.NEVER:
            approval = approvals.request(
                store, action=Action.RETIRE, subject_id=target.id, summary=f"retire {target.id}", actor=actor,
                ttl_hours=svc.settings.approval_ttl_hours, payload={"version_id": target.id, "reason": reason},
                facts={"Version": target.id} | _reason_fact(reason) | lineage_facts(store, target.id),
                needed=approvals.approvals_needed(svc.settings, Action.RETIRE), now=svc.clock(),
            )  # fmt: skip
            audit.record(store, actor, "request_retire", args, detail=f"waiting for approval {approval.id}")
            return RegistryChange(applied=False, version=target, approval=approval)
        _retire(store, target.id, now=iso(svc.clock()))
        audit.record(store, actor, "retire", args)
    return RegistryChange(applied=True, version=get_version(store, target.id))


def on_retire_decided(store: Store, approval: approvals.Approval, approved: bool) -> None:
    """A retirement was decided: approved, the version is retired in the deciding transaction."""
    if approved:
        _retire(store, str(approval.payload["version_id"]), now=approval.decided_at or iso())


def _retire(store: Store, version_id: str, *, now: str) -> None:
    _refuse_serving(store, version_id)
    if not db.retire_version(store, version_id, now=now):
        raise Conflict(f"{version_id} is already retired.", hint="Nothing to do.", version=version_id)
    deployments.on_version_retired(store, version_id, now=now)  # its deployment is torn down after commit


# Checks --------------------------------------------------------------------------------------------------


def _require_model(store: Store, name: str) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"`name` must be a registered model's name, got {name!r}.", hint=_models_hint(store))
    if not db.model_exists(store, name):
        raise NotFound(f"no registered model {name!r}.", hint=_models_hint(store), model=name)


def _models_hint(store: Store) -> str:
    names = db.model_names(store)
    if not names:
        return "A model is registered when a fine-tuning job for its dataset succeeds; none has yet."
    more = f" (and {len(names) - _LIST_LIMIT} more)" if len(names) > _LIST_LIMIT else ""
    return f"Registered models: {', '.join(names[:_LIST_LIMIT])}{more}."


def _aliases_hint(store: Store, name: str) -> str:
    known = [row["alias"] for row in db.aliases(store, name)]
    return f"Its aliases: {', '.join(known)}." if known else f"{name} has no aliases yet: deploy a version first."


def _check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidInput(
            f"`alias` must be 1-40 lowercase letters, digits, '-' or '_', starting with a letter; got {alias!r}.",
            hint="For example production, candidate or staging.",
        )
    return alias


def _check_share(share: int, argument: str) -> int:
    if isinstance(share, bool) or not isinstance(share, int) or not 0 <= share <= 100:
        raise InvalidInput(
            f"`{argument}` must be a whole percentage from 0 to 100, got {share!r}.",
            hint="For example 10 sends one caller in ten to the canary.",
        )
    return share


def _version_id(store: Store, name: str, version: int | str) -> str:
    """`version` (3, "3", "v3" or "name:v3") as the id `name:v3`."""
    _require_model(store, name)
    number: int | None = None
    if isinstance(version, int) and not isinstance(version, bool):
        number = version
    elif isinstance(version, str) and (match := _VERSION.fullmatch(version)) and match["name"] in (None, name):
        number = int(match["number"])
    if number is not None and number >= 1:
        return f"{name}:v{number}"
    raise InvalidInput(
        f"`version` must be a version of {name}: a number, vN or {name}:vN; got {version!r}.",
        hint=f"For example {name}:v1.",
    )


def _deployable(store: Store, name: str, version: int | str) -> ModelVersion:
    """The named version of `name`, refused when it does not exist or is retired."""
    version_id = _version_id(store, name, version)
    row = db.version(store, version_id)
    if row is None:
        known = [r["id"] for r in db.versions(store, name)]
        raise NotFound(
            f"{name} has no version {version_id!r}.",
            hint=f"Its versions: {', '.join(known[-_LIST_LIMIT:])}." if known else f"{name} has no versions yet.",
            version=version_id,
        )
    _refuse_retired(store, version_id)
    return _version(row)


def _refuse_retired(store: Store, version_id: str) -> None:
    row = db.version(store, version_id)
    if row is not None and row["status"] == db.RETIRED:
        raise Conflict(
            f"{version_id} was retired at {row['retired_at']} and may serve no alias.",
            hint="Pick a version that is not retired.",
            version=version_id,
        )


def _refuse_serving(store: Store, version_id: str) -> None:
    serving = db.aliases_serving(store, version_id)
    if serving:
        raise Conflict(
            f"{version_id} still serves {', '.join(serving)}, so it cannot be retired.",
            hint="Deploy or roll back those aliases to another version first.",
            version=version_id,
        )


def _with_canary(store: Store, name: str, alias: str) -> _State:
    state = _state(store, name, alias)
    if state is None or state.canary_version_id is None:
        _require_model(store, name)
        raise Conflict(
            f"{name}@{alias} runs no canary.",
            hint=f"Start one with a deploy to {alias} with a canary share.",
        )
    return state


def _previous(store: Store, name: str, alias: str, current: str) -> str:
    previous = db.previous_version(store, name, alias, current)
    if previous is None:
        raise Conflict(
            f"the ledger shows no version {name}@{alias} pointed at before {current}.",
            hint="Name the version to go back to (`to`).",
        )
    return previous


def _moment(at: datetime | str | None) -> str | None:
    """`at` as the store's ISO text; a naive datetime is taken as UTC."""
    if at is None:
        return None
    if isinstance(at, str):
        try:
            at = parse_iso(at)
        except ValueError:
            raise InvalidInput(
                f"`at` must be an ISO-8601 time, got {at!r}.", hint="For example 2026-11-23T10:00:00Z."
            ) from None
    if not isinstance(at, datetime):
        raise InvalidInput(f"`at` must be a time, got {at!r}.", hint="For example 2026-11-23T10:00:00Z.")
    return iso(at if at.tzinfo else at.replace(tzinfo=UTC))


# Rows ----------------------------------------------------------------------------------------------------


def _state(store: Store, name: str, alias: str) -> _State | None:
    row = db.alias(store, name, alias)
    if row is None:
        return None
    return _State(
        version_id=row["model_version_id"], canary_version_id=row["canary_version_id"],
        canary_share=row["canary_share"] if row["canary_version_id"] else 0,
    )  # fmt: skip


def _alias_or_none(store: Store, change: _AliasChange) -> AliasState | None:
    row = db.alias(store, change.name, change.alias)
    return _alias(row) if row else None


def _alias(row: dict[str, Any]) -> AliasState:
    return AliasState(
        model_name=row["model_name"], alias=row["alias"], version_id=row["model_version_id"],
        canary_version_id=row["canary_version_id"], canary_share=row["canary_share"], updated_at=row["updated_at"],
    )  # fmt: skip


def _version(row: dict[str, Any]) -> ModelVersion:
    return ModelVersion(**{**row, "metrics": json.loads(row["metrics"] or "{}")})


def _entry(row: dict[str, Any]) -> LedgerEntry:
    fields = {k: v for k, v in row.items() if k in LedgerEntry.model_fields}
    return LedgerEntry(**fields | {"canary_share": row["canary_share"] or 0})
