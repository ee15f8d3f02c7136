"""Provider deployments of model versions: what a version needs before an application can call it.

Some providers serve a trained model only through a deployment of its own:
a Bedrock custom model is invoked through an on-demand custom model deployment
(where its base model allows one, per the catalog's `deployment.on_demand`) or
else a provisioned throughput of FINETUNE_BEDROCK_MODEL_UNITS model units for
FINETUNE_BEDROCK_COMMITMENT. Which providers create one is
`core.providers.REGISTRY[...].deploy`: OpenAI needs nothing, Azure OpenAI needs
a deployment made in Azure (deciders are told; nothing is created), a local
version is served from its adapter.

Because a deployment costs money, moving any alias to a version that has no
active deployment waits for an approval whose facts say what will be created
(`missing`, `approval_facts`, called from the registry's `_change`). Approved,
the alias does not move yet: `hold` (inside the deciding transaction) records
the change as waiting; `after_alias_approved` (after commit) asks the provider
for the deployment, idempotently (our deployment id is its request token); the
scheduler's `poll_deployments` reads creating deployments and, once one is
active, applies the waiting changes through the registry's own apply (with its
premise check: a change whose alias moved meanwhile is dropped with a notice,
and the deployment kept for a later move). A failed deployment leaves the
alias as it was and says why. Retiring a version tears its deployment down
(`on_version_retired` in the retiring transaction, the provider call after
commit or on the next poll). Resolution answers an active deployment's ARN,
since that is what Bedrock invokes.

Provider calls never run inside a transaction. Transient provider errors back
off like job polling (`core.training.jobs`): later each time, capped.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field

from core.catalog.models import DeploymentInfo
from core.errors import Conflict, FinetuneError, NotFound
from core.platform import approvals, audit, counters, events, outbox
from core.platform.actors import SCHEDULER
from core.platform.store import Store
from core.platform.timeutil import iso
from core.providers import REGISTRY, ProviderEntry, ProviderError, ProviderFactory
from core.providers.deploy import (
    NOTHING_TO_DEPLOY,
    DeployCapability,
    DeploymentRequest,
    ModelDeployer,
    ProviderDeployment,
)
from core.registry import db
from core.services import Services
from core.vocabulary import Commitment, DeploymentKind, DeploymentState, Provider

log = logging.getLogger(__name__)

BACKOFF_CAP_SECONDS = 900
SUBMIT_GRACE_SECONDS = 120  # the poller leaves a creation just asked for to the process that asked
HOURS_PER_MONTH = 730  # how AWS turns hourly prices into monthly ones
DELETE_REQUESTED = "DeleteRequested"  # provider_status once the provider was asked to delete it
LIVE = (DeploymentState.CREATING, DeploymentState.ACTIVE, DeploymentState.DELETING)


class Deployment(BaseModel):
    """A version's deployment at its provider: what applications call, and what it costs."""

    id: str
    model_version_id: str
    provider: str
    kind: DeploymentKind
    status: DeploymentState
    provider_model_id: str = Field(description="The trained model it serves (a Bedrock custom model ARN).")
    provider_arn: str | None = Field(description="What applications call once it is active.")
    provider_status: str | None
    model_units: int | None = Field(description="Provisioned throughput only.")
    hourly_usd: float | None = Field(description="Provisioned throughput: its price per hour, when the catalog knows.")
    commitment: Commitment | None
    approval_id: str | None = Field(description="The approval that asked for it.")
    error: str | None
    created_at: str
    updated_at: str

    def describe(self) -> str:
        """`support:v2 deployment dp_1: provisioned active arn:... $21.18/hour (error)`, for any face."""
        price = f"  ${self.hourly_usd:,.2f}/hour" if self.hourly_usd is not None else ""
        error = f"  ({self.error})" if self.error else ""
        arn = self.provider_arn or "-"
        return f"{self.model_version_id} deployment {self.id}: {self.kind} {self.status}  {arn}{price}{error}"


class DeploymentPlan(BaseModel):
    """What would be created for a version: its kind, size and price."""

    version_id: str
    provider: Provider
    model_id: str
    kind: DeploymentKind
    model_units: int | None = None
    hourly_usd: float | None = None
    commitment: Commitment | None = None
    catalog: DeploymentInfo | None = None
    base_model: str | None = None


# Asking: what a move to these versions would need ------------------------------------------------------


def capability(provider: str, registry: Mapping[Provider, ProviderFactory] | None = None) -> DeployCapability:
    """What serving `provider`'s models takes, by its registry entry (the given registry's, else the real one's).

    A bare factory (a test double) in both says nothing of deployments: nothing is deployed for it.
    """
    try:
        name = Provider(provider)
    except ValueError:
        return NOTHING_TO_DEPLOY
    for entries in (registry, REGISTRY):
        entry = entries.get(name) if entries is not None else None
        if isinstance(entry, ProviderEntry):
            return entry.deploy
    return NOTHING_TO_DEPLOY


def missing(svc: Services, versions: Iterable[str]) -> bool:
    """Whether any of `versions` needs a deployment this project creates and has no active one (costs money)."""
    return any(_needs(svc.store, version_id, svc.providers) for version_id in versions)


def approval_facts(svc: Services, versions: Iterable[str]) -> dict[str, str]:
    """What deciders read about the deployments a move brings: what will be created, or what must exist elsewhere."""
    found = {version_id: _fact(svc, version_id) for version_id in versions}
    texts = {version_id: text for version_id, text in found.items() if text}
    if len(texts) == 1:
        return {"Deployment": next(iter(texts.values()))}
    return {f"Deployment of {version_id}": text for version_id, text in texts.items()}


def _fact(svc: Services, version_id: str) -> str | None:
    row = db.version(svc.store, version_id)
    if row is None:
        return None
    found = capability(row["provider"], svc.providers)
    if not found.creates:
        return found.made_elsewhere
    live = _live(svc.store, version_id)
    if live is not None and live.status is DeploymentState.ACTIVE:
        return None
    if live is not None:
        return f"waits for {live.id}, the {_kind_text(live.kind)} being created since {live.created_at[:16]}"
    return describe_plan(_plan(svc, version_id))


def describe_plan(plan: DeploymentPlan) -> str:
    """`on-demand deployment (...)` or `provisioned throughput: 1 model unit, $X/hour (~$Y/month), no commitment`."""
    if plan.kind is DeploymentKind.ON_DEMAND:
        return f"on-demand deployment (pay per token at the catalog's inference price: {_token_prices(plan)})"
    units = plan.model_units or 1
    size = f"{units} model unit" + ("s" if units != 1 else "")
    if plan.hourly_usd is not None:
        price = f"${plan.hourly_usd:,.2f}/hour (~${plan.hourly_usd * HOURS_PER_MONTH:,.0f}/month)"
    else:
        price = (
            f"price unknown (the catalog has no provisioned-throughput price for {plan.base_model or 'its base model'};"
            " set deployment.provisioned_usd_per_model_unit_hour with FINETUNE_CATALOG_FILE)"
        )
    return f"provisioned throughput: {size}, {price}, {_commitment_text(plan.commitment)}"


def _token_prices(plan: DeploymentPlan) -> str:
    info = plan.catalog
    if (
        info is None
        or info.inference_usd_per_1m_input_tokens is None
        or info.inference_usd_per_1m_output_tokens is None
    ):
        return f"unknown for {plan.base_model or 'its base model'}"
    return (
        f"${info.inference_usd_per_1m_input_tokens:g} per 1M input tokens,"
        f" ${info.inference_usd_per_1m_output_tokens:g} per 1M output tokens"
    )


def _commitment_text(commitment: Commitment | None) -> str:
    if commitment in (None, Commitment.NONE):
        return "no commitment"
    return f"{commitment} commitment"


def _kind_text(kind: DeploymentKind) -> str:
    return "on-demand deployment" if kind is DeploymentKind.ON_DEMAND else "provisioned throughput"


def _plan(svc: Services, version_id: str) -> DeploymentPlan:
    """The deployment `version_id` would get: on demand where its base model allows, else provisioned throughput."""
    row = db.version(svc.store, version_id) or {}
    if not row.get("provider_model_id"):
        raise Conflict(
            f"{version_id} has no provider model id, so {row.get('provider', 'its provider')} has nothing to deploy.",
            hint="Deploy a version whose training job finished with a model.",
            version=version_id,
        )
    base_model = row.get("base_model")
    found = svc.catalog.get(base_model) if base_model else None
    info = found.deployment if found else None
    common = {"version_id": version_id, "provider": Provider(row["provider"]), "model_id": row["provider_model_id"],
              "catalog": info, "base_model": base_model}  # fmt: skip
    if info is not None and info.on_demand:
        return DeploymentPlan(kind=DeploymentKind.ON_DEMAND, **common)
    units, commitment = svc.settings.bedrock_model_units, svc.settings.bedrock_commitment
    unit_price = info.hourly_usd(commitment) if info else None
    hourly = round(unit_price * units, 6) if unit_price is not None else None
    return DeploymentPlan(
        kind=DeploymentKind.PROVISIONED, model_units=units, hourly_usd=hourly, commitment=commitment, **common
    )


def _needs(store: Store, version_id: str, registry: Mapping[Provider, ProviderFactory] | None = None) -> bool:
    row = db.version(store, version_id)
    if row is None or not capability(row["provider"], registry).creates:
        return False
    live = _live(store, version_id)
    return live is None or live.status is not DeploymentState.ACTIVE


# Deciding: an approved move waits for its deployment ---------------------------------------------------


def hold(store: Store, approval: approvals.Approval, versions: Iterable[str]) -> bool:
    """Inside the deciding transaction: record the approved change as waiting when a version lacks its deployment.

    True when it waits (the alias moves once the deployment is active); False when it may move now.
    """
    waiting = [version_id for version_id in versions if _needs(store, version_id)]
    now = approval.decided_at or iso()
    for version_id in waiting:
        store.db.execute(
            "INSERT INTO deployment_waits (approval_id, model_version_id, change, status, created_at)"
            " VALUES (?, ?, ?, 'waiting', ?) ON CONFLICT DO NOTHING",
            (approval.id, version_id, json.dumps(approval.payload), now),
        )
    if waiting:
        text = (
            f"{approval.subject_id}: approved ({approval.id}); it changes once the deployment of"
            f" {', '.join(waiting)} is active."
        )
        outbox.enqueue(store, events.Notice(text=text, sent_by=str(SCHEDULER)))
    return bool(waiting)


def after_alias_approved(svc: Services, approval: approvals.Approval) -> None:
    """After the approval commits: ask the provider for each deployment the approved change waits on."""
    for version_id in _waiting_versions(svc.store, approval.id):
        ensure(svc, version_id, approval_id=approval.id)


def ensure(svc: Services, version_id: str, *, approval_id: str | None) -> Deployment | None:
    """The version's live deployment, created (and asked of its provider) when it has none. Safe to repeat."""
    store = svc.store
    live = _live(store, version_id)
    if live is None:
        try:
            plan = _plan(svc, version_id)
        except Conflict as exc:
            _fail_waits(store, version_id, reason=str(exc))
            return None
        live = _insert(svc, plan, approval_id=approval_id)
    if live.status is DeploymentState.CREATING and live.provider_arn is None:
        _submit(svc, live)
    return get(store, live.id)


def _insert(svc: Services, plan: DeploymentPlan, *, approval_id: str | None) -> Deployment:
    now = svc.clock()
    with svc.store.write() as sql:
        sql.execute(
            "INSERT INTO deployments (id, model_version_id, provider, kind, status, provider_model_id, model_units,"
            " hourly_usd, commitment, approval_id, next_poll_at, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            ("dep_" + uuid.uuid4().hex[:12], plan.version_id, plan.provider, plan.kind, DeploymentState.CREATING,
             plan.model_id, plan.model_units, plan.hourly_usd, plan.commitment, approval_id,
             iso(now + timedelta(seconds=SUBMIT_GRACE_SECONDS)), iso(now), iso(now)),
        )  # fmt: skip
        live = _live(svc.store, plan.version_id)  # ours, or the one another process inserted first
    assert live is not None  # the live-deployment index lets exactly one row through
    return live


def _submit(svc: Services, deployment: Deployment) -> None:
    """Ask the provider to create it; the deployment id is the request token, so asking twice makes one."""
    request = DeploymentRequest(
        deployment_id=deployment.id, model_id=deployment.provider_model_id, kind=deployment.kind,
        model_units=deployment.model_units or 1, commitment=deployment.commitment or Commitment.NONE,
    )  # fmt: skip
    try:
        reply = deployer(svc, deployment.provider).create(request)
    except ProviderError as exc:
        _provider_trouble(svc, deployment, exc)
        return
    _record(svc, deployment, reply)


def deployer(svc: Services, provider: str) -> ModelDeployer:
    """The provider's deployer, built from settings (ProviderNotConfigured names what is missing)."""
    build = capability(provider, svc.providers).build
    if build is None:
        raise ProviderError(f"{provider} creates no deployments.", hint="Nothing to deploy for its versions.")
    return build(svc.settings)


# Polling --------------------------------------------------------------------------------------------------


def poll_deployments(svc: Services) -> int:
    """Scheduler entry point: submit what was never submitted, read what is on its way; how many were looked at."""
    store = svc.store
    grace = iso(svc.clock() - timedelta(seconds=SUBMIT_GRACE_SECONDS))
    for version_id, approval_id in _orphan_waits(store, before=grace):
        ensure(svc, version_id, approval_id=approval_id)  # approved, but the process that should have asked died
    due = [row["id"] for row in store.query(
        "SELECT id FROM deployments WHERE status IN (?, ?) AND next_poll_at <= ? ORDER BY next_poll_at",
        (DeploymentState.CREATING, DeploymentState.DELETING, iso(svc.clock())),
    )]  # fmt: skip
    for deployment_id in due:
        try:
            poll(svc, deployment_id)
        except Exception:  # one deployment that cannot be polled must not keep the others waiting
            log.exception("deployment %s could not be polled; trying again on the next run", deployment_id)
    return len(due)


def poll(svc: Services, deployment_id: str) -> Deployment:
    """Move one deployment along: submit it, read it, or see its deletion through."""
    deployment = get(svc.store, deployment_id)
    if deployment.status is DeploymentState.DELETING:
        _poll_deletion(svc, deployment)
    elif deployment.status is DeploymentState.CREATING and deployment.provider_arn is None:
        _submit(svc, deployment)
    elif deployment.status is DeploymentState.CREATING:
        _poll_creation(svc, deployment)
    return get(svc.store, deployment_id)


def _poll_creation(svc: Services, deployment: Deployment) -> None:
    assert deployment.provider_arn is not None
    try:
        reply = deployer(svc, deployment.provider).read(deployment.kind, deployment.provider_arn)
    except ProviderError as exc:
        _provider_trouble(svc, deployment, exc)
        return
    if reply is None:
        _fail(svc, deployment, f"{deployment.provider} no longer has {deployment.provider_arn}.")
    else:
        _record(svc, deployment, reply)


def _record(svc: Services, deployment: Deployment, reply: ProviderDeployment) -> None:
    """What the provider said: still creating, active (waiting changes apply), or failed."""
    if reply.status is DeploymentState.ACTIVE:
        _activate(svc, deployment, reply)
    elif reply.status is DeploymentState.FAILED:
        _fail(svc, deployment, reply.error or "the provider gave no reason.", arn=reply.arn)
    else:
        with svc.store.write():
            _update(svc.store, deployment.id, provider_arn=reply.arn, provider_status=reply.provider_status,
                    poll_failures=0, next_poll_at=iso(svc.clock()), now=iso(svc.clock()))  # fmt: skip


def _activate(svc: Services, deployment: Deployment, reply: ProviderDeployment) -> None:
    """Active: record it and apply every change waiting on it, oldest first, all in one transaction."""
    store, now = svc.store, iso(svc.clock())
    with store.write():
        _update(store, deployment.id, status=DeploymentState.ACTIVE, provider_arn=reply.arn,
                provider_status=reply.provider_status, poll_failures=0, error=None, now=now)  # fmt: skip
        counters.bump(store, db.ALIAS_COUNTER, 1)  # resolution now answers the deployment's ARN
        audit.record(store, SCHEDULER, "deployment_active", {"deployment": deployment.id, "arn": reply.arn})
        for approval_id in _waits_on(store, deployment.model_version_id):
            _apply_waiting(store, approval_id, deployment, now=now)


def _apply_waiting(store: Store, approval_id: str, deployment: Deployment, *, now: str) -> None:
    """Apply one waiting change once all its deployments are active; drop it when its premise is gone."""
    from core.registry import service  # the registry's own apply; it imports this module

    if _unmet(store, approval_id, now_active=deployment.model_version_id):
        return  # another version it brings in is not deployed yet; that one's activation applies it
    approval = approvals.get(store, approval_id)
    try:
        with store.write():  # a savepoint: a dropped change leaves nothing behind
            service.apply_approved_change(store, approval, now=now)
    except FinetuneError as exc:  # the alias moved meanwhile, or a version it brings in was retired
        _resolve_all(store, approval_id, status="dropped", detail=exc.message, now=now)
        outbox.enqueue(store, events.Notice(text=_dropped_text(approval, deployment, exc), sent_by=str(SCHEDULER)))
        return
    _resolve_all(store, approval_id, status="applied", detail=None, now=now)


def _dropped_text(approval: approvals.Approval, deployment: Deployment, exc: FinetuneError) -> str:
    return (
        f"{deployment.id} for {deployment.model_version_id} is active, but the change approved in {approval.id}"
        f" ({approval.description or approval.subject_id}) was dropped: {exc.message} The deployment is kept for a"
        " later move."
    )


def _fail(svc: Services, deployment: Deployment, error: str, *, arn: str | None = None) -> None:
    """Failed: record why, leave every alias as it was, and say so."""
    store, now = svc.store, iso(svc.clock())
    with store.write():
        _update(store, deployment.id, status=DeploymentState.FAILED, provider_arn=arn or deployment.provider_arn,
                error=error, now=now)  # fmt: skip
        waits = _waits_on(store, deployment.model_version_id)
        _resolve_version_waits(store, deployment.model_version_id, status="failed", detail=error, now=now)
        audit.record(store, SCHEDULER, "deployment_failed", {"deployment": deployment.id}, detail=error)
        text = (
            f"Deployment {deployment.id} ({_kind_text(deployment.kind)}) of {deployment.model_version_id} failed:"
            f" {error} No alias moved" + (f"; approval {', '.join(waits)} did not take effect." if waits else ".")
        )
        outbox.enqueue(store, events.Notice(text=text, sent_by=str(SCHEDULER)))


def _provider_trouble(svc: Services, deployment: Deployment, exc: ProviderError) -> None:
    """Transient: try again later. Final while creating: the deployment failed. Deleting: keep trying, slowly."""
    if deployment.status is DeploymentState.CREATING and not exc.transient:
        _fail(svc, deployment, str(exc))
        return
    with svc.store.write():
        failures = int(svc.store.scalar("SELECT poll_failures FROM deployments WHERE id = ?", (deployment.id,))) + 1
        delay = min(BACKOFF_CAP_SECONDS, 5 * 2 ** min(failures, 10))
        _update(svc.store, deployment.id, poll_failures=failures, error=str(exc)[:500],
                next_poll_at=iso(svc.clock() + timedelta(seconds=delay)), now=iso(svc.clock()))  # fmt: skip
        if failures == 1 and not exc.transient:
            text = f"{deployment.id} of {deployment.model_version_id} could not be deleted yet: {exc}"
            outbox.enqueue(svc.store, events.Notice(text=text, sent_by=str(SCHEDULER)))
    log.warning("deployment %s: provider error (%s); next try in %ss", deployment.id, exc, delay)


# Retiring -------------------------------------------------------------------------------------------------


def on_version_retired(store: Store, version_id: str, *, now: str) -> None:
    """Inside the retiring transaction: its deployment is to be torn down, and nothing waits on it any more."""
    store.db.execute(
        "UPDATE deployments SET status = ?, provider_status = NULL, poll_failures = 0, next_poll_at = ?,"
        " updated_at = ? WHERE model_version_id = ? AND status IN (?, ?)",
        (DeploymentState.DELETING, now, now, version_id, DeploymentState.CREATING, DeploymentState.ACTIVE),
    )
    _resolve_version_waits(store, version_id, status="dropped", detail=f"{version_id} was retired", now=now)
    counters.bump(store, db.ALIAS_COUNTER, 1)


def after_retire_approved(svc: Services, approval: approvals.Approval) -> None:
    """After a retirement commits: ask the provider to delete the version's deployment now."""
    live = _live(svc.store, str(approval.payload.get("version_id")))
    if live is not None and live.status is DeploymentState.DELETING:
        _poll_deletion(svc, live)


def _poll_deletion(svc: Services, deployment: Deployment) -> None:
    """Ask once for the deletion, then read until the provider no longer has it."""
    try:
        found = _find(svc, deployment)
        if found is not None and deployment.provider_status != DELETE_REQUESTED:
            deployer(svc, deployment.provider).delete(deployment.kind, found.arn)
    except ProviderError as exc:
        _provider_trouble(svc, deployment, exc)
        return
    now = iso(svc.clock())
    with svc.store.write():
        if found is None:
            _update(svc.store, deployment.id, status=DeploymentState.DELETED, error=None, now=now)
            audit.record(svc.store, SCHEDULER, "deployment_deleted", {"deployment": deployment.id})
        else:
            _update(svc.store, deployment.id, provider_arn=found.arn, provider_status=DELETE_REQUESTED,
                    poll_failures=0, error=None, next_poll_at=now, now=now)  # fmt: skip


def _find(svc: Services, deployment: Deployment) -> ProviderDeployment | None:
    """The deployment at its provider, by ARN, or by name when its creation was never recorded."""
    found = deployer(svc, deployment.provider)
    if deployment.provider_arn is None:  # never recorded: the provider may still hold it under the name it got
        return found.find(deployment.kind, deployment.id)
    return found.read(deployment.kind, deployment.provider_arn)


# Reading --------------------------------------------------------------------------------------------------


def get(store: Store, deployment_id: str) -> Deployment:
    rows = store.query("SELECT * FROM deployments WHERE id = ?", (deployment_id,))
    if not rows:
        raise NotFound(
            f"no deployment {deployment_id!r}.", hint="`finetune models show NAME` lists its versions' deployments."
        )
    return Deployment(**rows[0])


def for_model(store: Store, name: str) -> list[Deployment]:
    """The newest deployment of each version of model `name` that has one, oldest version first."""
    rows = store.query(
        "SELECT d.* FROM deployments d JOIN model_versions v ON v.id = d.model_version_id WHERE v.name = ?"
        " AND d.rowid = (SELECT max(rowid) FROM deployments WHERE model_version_id = d.model_version_id)"
        " ORDER BY v.version",
        (name,),
    )
    return [Deployment(**row) for row in rows]


def serving_arns(store: Store) -> dict[str, str]:
    """Version id -> the ARN applications call, for every version with an active deployment."""
    rows = store.query(
        "SELECT model_version_id, provider_arn FROM deployments WHERE status = ? AND provider_arn IS NOT NULL",
        (DeploymentState.ACTIVE,),
    )
    return {row["model_version_id"]: row["provider_arn"] for row in rows}


# Statements -----------------------------------------------------------------------------------------------


def _live(store: Store, version_id: str) -> Deployment | None:
    rows = store.query(
        "SELECT * FROM deployments WHERE model_version_id = ? AND status IN (?, ?, ?)", (version_id, *LIVE)
    )
    return Deployment(**rows[0]) if rows else None


def _update(store: Store, deployment_id: str, *, now: str, **fields: Any) -> None:
    assignments = ", ".join(f"{name} = ?" for name in fields)
    store.db.execute(
        f"UPDATE deployments SET {assignments}, updated_at = ? WHERE id = ?",
        (*fields.values(), now, deployment_id),
    )


def _waiting_versions(store: Store, approval_id: str) -> list[str]:
    rows = store.query(
        "SELECT model_version_id FROM deployment_waits WHERE approval_id = ? AND status = 'waiting'", (approval_id,)
    )
    return [row["model_version_id"] for row in rows]


def _waits_on(store: Store, version_id: str) -> list[str]:
    """The approvals whose changes wait on `version_id`'s deployment, oldest first."""
    rows = store.query(
        "SELECT approval_id FROM deployment_waits WHERE model_version_id = ? AND status = 'waiting'"
        " ORDER BY created_at, rowid",
        (version_id,),
    )
    return [row["approval_id"] for row in rows]


def _orphan_waits(store: Store, *, before: str) -> list[tuple[str, str]]:
    """Changes approved before `before` still waiting on a version with no live deployment (never recorded)."""
    rows = store.query(
        "SELECT w.model_version_id, min(w.approval_id) AS approval_id FROM deployment_waits w"
        " WHERE w.status = 'waiting' AND w.created_at <= ? AND NOT EXISTS (SELECT 1 FROM deployments d"
        " WHERE d.model_version_id = w.model_version_id AND d.status IN (?, ?, ?)) GROUP BY w.model_version_id",
        (before, *LIVE),
    )
    return [(row["model_version_id"], row["approval_id"]) for row in rows]


def _unmet(store: Store, approval_id: str, *, now_active: str) -> bool:
    """Whether the approval still waits on another version than `now_active` whose deployment is not active."""
    rows = store.query(
        "SELECT model_version_id FROM deployment_waits WHERE approval_id = ? AND status = 'waiting'"
        " AND model_version_id != ?",
        (approval_id, now_active),
    )
    return any(_needs(store, row["model_version_id"]) for row in rows)


def _resolve_all(store: Store, approval_id: str, *, status: str, detail: str | None, now: str) -> None:
    store.db.execute(
        "UPDATE deployment_waits SET status = ?, detail = ?, resolved_at = ? WHERE approval_id = ?"
        " AND status = 'waiting'",
        (status, detail, now, approval_id),
    )


def _resolve_version_waits(store: Store, version_id: str, *, status: str, detail: str, now: str) -> None:
    """Every change waiting on `version_id` ends: those approvals bring in nothing any more."""
    for approval_id in _waits_on(store, version_id):
        _resolve_all(store, approval_id, status=status, detail=detail, now=now)


def _fail_waits(store: Store, version_id: str, *, reason: str) -> None:
    with store.write():
        waits = _waits_on(store, version_id)
        _resolve_version_waits(store, version_id, status="failed", detail=reason, now=iso())
        if waits:
            text = f"Approval {', '.join(waits)} did not take effect: {reason}"
            outbox.enqueue(store, events.Notice(text=text, sent_by=str(SCHEDULER)))
