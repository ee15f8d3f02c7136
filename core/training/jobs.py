"""Fine-tuning jobs: launch (with policy, budget, pre-flight checks and idempotency), poll, cancel.

Launch first checks, writing nothing: the policy lets the caller launch, the
provider is configured (settings, SDK), the export passes validation. It then
records the job, in one transaction with its audit row, its notification and,
when the estimate exceeds FINETUNE_AUTO_APPROVE_USD or would pass a spend limit
(FINETUNE_MONTHLY_BUDGET_USD, FINETUNE_USER_DAILY_LIMIT_USD; see
`core.platform.spend`), its approval request saying why (the job then waits in
`pending_approval`). The limits are read inside that transaction, so two
launches at once cannot both slip under one. Submission to the
provider happens after commit and is safe to repeat: a job left in
`submitting` (a crash, a transient provider error) is submitted again by the
poller with the same idempotency key, so the provider never starts it twice.

The poller (`poll_active_jobs`, a scheduler job in `finetune serve`) asks each
active job's provider for its state with bounded concurrency, stores new
events, announces every transition in the job's one Slack message, backs off
on transient errors and stops on permanent ones. On success the trained model
is registered as the `candidate` version of the dataset's model with its
lineage (dataset version -> job -> provider model id, final metrics).

This module holds the logic and the transactions; every statement it runs on
the database is in `core.training.db`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from core import registry
from core.catalog.models import Catalog
from core.catalog.pricing import CostEstimate, estimate_cost
from core.data import datasets, exports
from core.errors import Conflict, InvalidInput, NotFound
from core.platform import approvals, audit, events, outbox, spend
from core.platform.actors import SCHEDULER, Actor
from core.platform.policy import POLICY, authorize
from core.platform.settings import Settings
from core.platform.store import Store
from core.platform.timeutil import iso, utcnow
from core.providers import base as providers
from core.providers import check_configured
from core.registry.facts import dataset_fact
from core.services import Services
from core.training import db
from core.training.hyperparams import HyperparameterSuggestion, check_hyperparameters, suggest_hyperparameters
from core.training.planning import catalog_for, local_base_model
from core.vocabulary import (
    ACTIVE_JOB_STATES,
    CATALOG_PROVIDER,
    FINAL_JOB_STATES,
    Action,
    ApprovalNeed,
    CatalogProvider,
    JobState,
    Method,
    Operation,
    Provider,
    one_of,
    values,
)

log = logging.getLogger(__name__)

POLL_BACKOFF_CAP_SECONDS = 900
# A job is submitted by whoever launched (or approved) it, right after commit. The poller leaves a
# `submitting` job alone for this long, so it never races a submission still in flight; a submitter
# that died is replaced after it, or at once when serve restarts (`release_submissions`).
SUBMIT_GRACE_SECONDS = 120


def _after_submit_grace() -> str:
    return iso(utcnow() + timedelta(seconds=SUBMIT_GRACE_SECONDS))


def release_submissions(svc: Services) -> int:
    """At serve start: submissions interrupted by a crash are due now, not after the grace period."""
    with svc.store.write():
        return db.release_submissions(svc.store, now=iso())


class Job(BaseModel):
    id: str
    provider: Provider
    provider_job_id: str | None
    dataset_version: str
    base_model: str
    method: Method
    hyperparameters: dict[str, Any]
    status: JobState
    provider_status: str | None
    status_detail: str | None
    estimated_cost_usd: float | None
    model_id: str | None
    error: str | None
    approval_id: str | None
    requested_by: str
    requested_by_identity: str | None = None
    created_at: str
    updated_at: str
    finished_at: str | None


class LaunchResult(BaseModel):
    job: Job
    created: bool = Field(description="False when this idempotency key had already launched the job.")
    approval: approvals.Approval | None = Field(description="The approval the job waits on, when over budget.")
    cost: CostEstimate | None

    @property
    def ok(self) -> bool:
        """False when the job failed on its way to the provider: the launch did not happen."""
        return self.job.status is not JobState.FAILED

    @property
    def message(self) -> str | None:
        return None if self.ok else f"{self.job.id} failed: {self.job.error}"


class JobList(BaseModel):
    jobs: list[Job]


class JobEvent(BaseModel):
    at: str
    kind: str
    message: str | None
    step: int | None
    metrics: dict[str, float] | None


class JobEvents(BaseModel):
    job_id: str
    events: list[JobEvent]

    def loss_series(self) -> dict[str, list[tuple[int, float]]]:
        """Loss per step, by metric name (train_loss, valid_loss), from the step-metric events."""
        series: dict[str, list[tuple[int, float]]] = {}
        for event in self.events:
            for name, value in (event.metrics or {}).items():
                if name.endswith("loss") and event.step is not None:
                    series.setdefault(name, []).append((event.step, value))
        return series


class JobDetail(BaseModel):
    job: Job
    events: JobEvents


def _job(row: Mapping[str, Any]) -> Job:
    return Job(
        **{**row, "dataset_version": row["dataset_version_id"], "hyperparameters": json.loads(row["hyperparameters"])}
    )


def get_job(store: Store, job_id: str) -> Job:
    row = db.job(store, job_id)
    if row is None:
        raise NotFound(f"no job {job_id!r}.", hint="List jobs with `finetune jobs list`.", job=job_id)
    return _job(row)


def list_jobs(store: Store, *, status: str | None = None, limit: int = 50) -> JobList:
    if status is not None and status not in values(JobState):
        raise InvalidInput(f"unknown status {status!r}.", hint=f"Use one of: {', '.join(values(JobState))}.")
    rows = db.jobs(store, status=JobState(status) if status else None, limit=limit)
    return JobList(jobs=[_job(r) for r in rows])


def job_events(store: Store, job_id: str, *, limit: int = 200) -> JobEvents:
    get_job(store, job_id)
    events = [
        JobEvent(at=r["at"], kind=r["kind"], message=r["message"], step=r["step"],
                 metrics=json.loads(r["metrics"]) if r["metrics"] else None)
        for r in db.events(store, job_id, limit=limit)
    ]  # fmt: skip
    return JobEvents(job_id=job_id, events=events)


def job_detail(store: Store, job_id: str) -> JobDetail:
    """A job with its events: what `job ID` shows, and what its loss chart is drawn from."""
    return JobDetail(job=get_job(store, job_id), events=job_events(store, job_id))


# Launching ------------------------------------------------------------------------------------------


def _provider_name(provider: str) -> Provider:
    try:
        return Provider(provider)
    except ValueError:
        raise InvalidInput(f"unknown provider {provider!r}.", hint=f"Use {one_of(Provider)}.") from None


def launch_job(
    svc: Services,
    *,
    dataset_version: str,
    provider: str,
    base_model: str,
    actor: Actor,
    method: str = Method.SUPERVISED,
    hyperparameters: dict[str, Any] | None = None,
    key: str | None = None,
) -> LaunchResult:
    """Launch (or, over budget or a spend limit, request approval for) a fine-tuning job. Idempotent on `key`."""
    store, settings, catalog = svc.store, svc.settings, svc.catalog
    authorize(actor, Operation.LAUNCH)
    if key is not None and (earlier := _launched_with(store, key)) is not None:
        return earlier
    provider_name = _provider_name(provider)
    base_model = local_base_model(settings, provider=provider_name, base_model=base_model)
    catalog = catalog_for(catalog, base_model, provider=provider_name)  # local models outside the catalog too
    info = catalog.require(base_model)
    if CATALOG_PROVIDER[provider_name] != info.provider:
        raise InvalidInput(
            f"{base_model} is a {info.provider} model; provider {provider!r} cannot train it.",
            hint=f"Use --provider {_providers_for(info.provider)}, or another base model.",
        )
    check_configured(provider_name, settings, svc.providers)  # before anything is written, exports included
    version = datasets.get_version(store, dataset_version)
    target = info.export_target_for(method)
    check = exports.validate_dataset(
        store,
        version=version.id,
        target=target,
        model=base_model,
        actor=actor,
        data_dir=settings.data_dir,
        catalog=catalog,
    )
    if not check.ok:
        first = next(e for r in check.reports.values() for e in r.errors)
        raise InvalidInput(
            f"{version.id} does not pass {target} validation for {base_model}: "
            f"{sum(r.error_count for r in check.reports.values())} error(s), first: {first.message}",
            hint=f"See `finetune validate {version.id} {target} --model {base_model}`; fix the data and build a new version.",
        )
    export = exports.get_export(store, version=version.id, target=target, model=base_model)
    if export is None:  # validation exports first; a missing export here means it vanished since
        raise Conflict(
            f"the {target} export of {version.id} for {base_model} is missing.",
            hint=f"Run `finetune validate {version.id} {target} --model {base_model}` and launch again.",
        )
    suggestion = suggest_hyperparameters(
        base_model=base_model,
        n_train=export.counts["train"],
        mean_tokens=export.token_stats.mean,
        method=method,
        catalog=catalog,
    )
    chosen = _hyperparameters(suggestion, hyperparameters or {})
    problems = check_hyperparameters(base_model, chosen, method=method, catalog=catalog)
    if problems:
        raise InvalidInput(
            "; ".join(problems), hint="Choose values inside the allowed ranges, or leave them out to use suggestions."
        )
    cost = estimate_cost(
        base_model=base_model, training_tokens=export.train_tokens, epochs=int(chosen["epochs"]),
        exact_tokens=export.token_stats.exact, catalog=catalog,
    )  # fmt: skip
    plan = _Launch(
        job_id="job_" + uuid.uuid4().hex[:12], version_id=version.id, provider=provider_name, base_model=base_model,
        method=Method(method), hyperparameters=chosen, cost=cost, key=key, actor=actor, now=svc.clock(),
    )  # fmt: skip
    try:
        approval = _record_launch(store, settings, plan)
    except sqlite3.IntegrityError:  # the same key, launched at the same moment by another process
        earlier = _launched_with(store, key) if key is not None else None
        if earlier is None:
            raise
        return earlier
    if approval is None:
        submit_job(svc, plan.job_id)
    return LaunchResult(job=get_job(store, plan.job_id), created=True, approval=approval, cost=cost)


def _providers_for(catalog_provider: str) -> str:
    """`a or b`: the providers that train a catalog provider's models, for hints."""
    names = [str(p) for p, whose in CATALOG_PROVIDER.items() if whose == catalog_provider]
    return " or ".join(names) or str(catalog_provider)


@dataclass(frozen=True)
class _Launch:
    job_id: str
    version_id: str
    provider: Provider
    base_model: str
    method: Method
    hyperparameters: dict[str, Any]
    cost: CostEstimate
    key: str | None
    actor: Actor
    now: datetime


def _launched_with(store: Store, key: str) -> LaunchResult | None:
    row = db.job_with_key(store, key)
    if row is None:
        return None
    job = _job(row)
    approval = approvals.get(store, job.approval_id) if job.approval_id else None
    return LaunchResult(job=job, created=False, approval=approval, cost=None)


def _record_launch(store: Store, settings: Settings, plan: _Launch) -> approvals.Approval | None:
    """The job row, its approval request when one is needed, its notification and its audit row: one transaction."""
    job_id, version, provider, base_model, cost = (
        plan.job_id, plan.version_id, plan.provider, plan.base_model, plan.cost,
    )  # fmt: skip
    with store.write():
        reasons = _approval_reasons(store, settings, plan)  # inside the transaction: spend cannot change meanwhile
        db.insert_job(
            store, job_id=job_id, provider=provider, dataset_version_id=version, base_model=base_model,
            method=plan.method, hyperparameters=plan.hyperparameters,
            status=JobState.PENDING_APPROVAL if reasons else JobState.SUBMITTING,
            estimated_cost_usd=cost.usd, idempotency_key=plan.key or job_id, requested_by=str(plan.actor),
            requested_by_identity=plan.actor.identity, requested_via=plan.actor.face, now=iso(plan.now),
            next_poll_at=_after_submit_grace(),
        )  # fmt: skip
        approval = None
        if reasons:
            price = f"${cost.usd:,.2f}" if cost.usd is not None else "an unknown cost"
            approval = approvals.request(
                store, action=Action.LAUNCH, subject_id=job_id, actor=plan.actor,
                ttl_hours=settings.approval_ttl_hours, cost_usd=cost.usd,
                payload={"job": job_id, "provider": provider, "base_model": base_model, "reasons": reasons},
                facts={"Base model": base_model, "Dataset version": dataset_fact(store, version), "Provider": str(provider)},
                needed=approvals.approvals_needed(settings, Action.LAUNCH),
                summary=f"launch {job_id}: {base_model} on {version} via {provider}, estimated {price}; "
                f"needs approval: {'; '.join(reasons)}",
            )  # fmt: skip
            db.set_approval(store, job_id, approval.id)
        _announce(store, job_id)
        audit.record(
            store, plan.actor, "launch_job",
            {"job": job_id, "version": version, "provider": provider, "base_model": base_model,
             "method": plan.method, "hyperparameters": plan.hyperparameters, "key": plan.key},
            detail="waiting for approval: " + "; ".join(reasons) if reasons else "submitting",
        )  # fmt: skip
    return approval


def _approval_reasons(store: Store, settings: Settings, plan: _Launch) -> list[str]:
    """Why this launch must wait for an approver (none: it starts at once), by the policy's rule for launches."""
    need = POLICY[Operation.LAUNCH].approval
    if need is ApprovalNeed.NEVER:
        return []
    if need is ApprovalNeed.ALWAYS:
        return ["the policy asks an approval for every launch"]
    usd = plan.cost.usd
    reasons = []
    if usd is None:
        reasons.append("its cost is unknown (the catalog has no price for it)")
    elif usd > settings.auto_approve_usd:
        reasons.append(f"${usd:,.2f} is above FINETUNE_AUTO_APPROVE_USD=${settings.auto_approve_usd:,.2f}")
    breaches = spend.limit_breaches(store, settings, identities=plan.actor.identities, cost_usd=usd, now=plan.now)
    return reasons + breaches


def _hyperparameters(suggestion: HyperparameterSuggestion, given: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {"epochs": suggestion.epochs}
    for name in ("batch_size", "learning_rate", "learning_rate_multiplier", "warmup_steps"):
        if getattr(suggestion, name) is not None:
            values[name] = getattr(suggestion, name)
    values.update(suggestion.extra)
    values.update({k: v for k, v in given.items() if v is not None})
    return values


def on_launch_decided(store: Store, approval: approvals.Approval, approved: bool) -> None:
    """Inside the deciding transaction: the job moves on, or is cancelled."""
    if approval.subject_id is None:
        return
    status = JobState.SUBMITTING if approved else JobState.CANCELLED
    error = None if approved else f"launch {approval.status}" + (f": {approval.reason}" if approval.reason else "")
    db.leave_pending_approval(
        store, approval.subject_id, status=status, error=error, now=iso(), next_poll_at=_after_submit_grace()
    )
    _announce(store, approval.subject_id)


def after_launch_approved(svc: Services, approval: approvals.Approval) -> None:
    """After the approval commits: hand the job to its provider."""
    if approval.subject_id:
        submit_job(svc, approval.subject_id)


# Talking to providers -------------------------------------------------------------------------------


def _files(store: Store, job: Job, catalog: Catalog) -> tuple[Path, Path | None]:
    info = catalog.require(job.base_model)
    export = exports.get_export(
        store, version=job.dataset_version, target=info.export_target_for(job.method), model=job.base_model
    )
    if export is None or not Path(export.files["train"]).exists():
        raise Conflict(
            f"the export for {job.id} is missing.", hint=f"Re-export {job.dataset_version} and launch again."
        )
    validation = export.files.get("validation")
    return Path(export.files["train"]), Path(validation) if validation else None


def submit_job(svc: Services, job_id: str) -> Job:
    """Hand a `submitting` job to its provider. Safe to repeat: the idempotency key travels with it."""
    store = svc.store
    job = get_job(store, job_id)
    if job.status != JobState.SUBMITTING:
        return job
    catalog = catalog_for(svc.catalog, job.base_model, provider=job.provider)
    try:
        provider = svc.provider(job.provider)
        train, validation = _files(store, job, catalog)
        info = catalog.require(job.base_model)
        reply = provider.launch(
            providers.LaunchRequest(
                job_id=job.id, idempotency_key=job.id, base_model=info.provider_model_id or job.base_model,
                method=job.method, hyperparameters=job.hyperparameters, train_file=train, validation_file=validation,
                suffix=job.dataset_version.replace("@", "-v")[:40],
            )
        )  # fmt: skip
    except providers.ProviderError as exc:
        if exc.transient:
            _backoff(store, job, str(exc))
            return get_job(store, job_id)
        _finish(store, job, JobState.FAILED, error=str(exc))
        return get_job(store, job_id)
    except (InvalidInput, Conflict) as exc:
        _finish(store, job, JobState.FAILED, error=str(exc))
        return get_job(store, job_id)
    _apply(store, job, reply)
    return get_job(store, job_id)


def _apply(
    store: Store, job: Job, reply: providers.ProviderJob, events: Sequence[providers.ProviderEvent] = ()
) -> None:
    """Record what the provider said: new events, the new state, and what follows from it."""
    with store.write():
        now = iso()
        db.add_provider_events(store, job.id, events)
        changed = reply.status != job.status
        db.record_reply(
            store, job.id, provider_job_id=reply.provider_job_id, status=reply.status,
            provider_status=reply.provider_status, detail=reply.detail, model_id=reply.model_id, error=reply.error,
            trained_tokens=reply.trained_tokens, last_event=events[-1].id if events else None, now=now,
        )  # fmt: skip
        if changed:
            message = f"{job.status} -> {reply.status}" + (f": {reply.error}" if reply.error else "")
            db.add_status_event(store, job.id, message=message, at=now)
            audit.record(store, SCHEDULER, "job_status", {"job": job.id, "from": job.status, "to": reply.status})
        if changed or events:
            _announce(store, job.id)
        if reply.status == JobState.SUCCEEDED and changed:
            _register_candidate(store, get_job(store, job.id), reply)


def _finish(store: Store, job: Job, status: JobState, *, error: str) -> None:
    with store.write():
        now = iso()
        db.finish(store, job.id, status=status, error=error, now=now)
        db.add_status_event(store, job.id, message=f"{job.status} -> {status}: {error}", at=now)
        audit.record(store, SCHEDULER, "job_status", {"job": job.id, "from": job.status, "to": status}, detail=error)
        _announce(store, job.id)


def _backoff(store: Store, job: Job, error: str) -> None:
    """A transient provider error: try again later, later each time (capped), and say so in the log."""
    with store.write():
        failures = db.poll_failures(store, job.id) + 1
        delay = min(POLL_BACKOFF_CAP_SECONDS, 5 * 2 ** min(failures, 10))
        db.back_off(
            store, job.id, failures=failures, next_poll_at=iso(utcnow() + timedelta(seconds=delay)),
            detail=f"provider unavailable, retrying in {delay}s: {error[:200]}",
        )  # fmt: skip
    log.warning("job %s: transient provider error (%s); next try in %ss", job.id, error, delay)


def _register_candidate(store: Store, job: Job, reply: providers.ProviderJob) -> None:
    """Register the trained model as the next version of the dataset's model, aliased `candidate`."""
    registry.register_version(
        store, name=job.dataset_version.split("@")[0], provider=job.provider, provider_model_id=reply.model_id,
        job_id=job.id, dataset_version_id=job.dataset_version, base_model=job.base_model, metrics=reply.metrics,
        cost_usd=job.estimated_cost_usd, actor=SCHEDULER, reason=f"trained by {job.id}", now=iso(),
    )  # fmt: skip


def _announce(store: Store, job_id: str) -> None:
    """One message per job, updated in place as it moves."""
    job = get_job(store, job_id)
    outbox.enqueue(
        store,
        events.JobChanged(
            job_id=job.id, status=job.status, base_model=job.base_model, dataset_version=job.dataset_version,
            provider=job.provider, detail=job.status_detail, model_id=job.model_id, error=job.error,
        ),
    )  # fmt: skip


# Polling ------------------------------------------------------------------------------------------------


def poll_job(svc: Services, job_id: str) -> Job:
    store = svc.store
    job = get_job(store, job_id)
    if job.status == JobState.SUBMITTING:
        return submit_job(svc, job_id)
    if job.status not in ACTIVE_JOB_STATES or not job.provider_job_id:
        return job
    try:
        provider = svc.provider(job.provider)
        reply = provider.poll(job.provider_job_id)
        events = provider.events(job.provider_job_id, after=db.last_seen_event(store, job.id))
    except providers.ProviderError as exc:
        if exc.transient:
            _backoff(store, job, str(exc))
        else:
            _finish(store, job, JobState.FAILED, error=str(exc))
        return get_job(store, job_id)
    _apply(store, job, reply, events)
    return get_job(store, job_id)


def due_jobs(store: Store) -> list[str]:
    return db.due_job_ids(store, now=iso())


def poll_active_jobs(svc: Services, *, concurrency: int = 4) -> int:
    """Scheduler entry point: poll every due active job, `concurrency` at a time."""
    ids = due_jobs(svc.store)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(lambda job_id: poll_job(svc, job_id), ids))
    return len(ids)


def cancel_job(svc: Services, *, job_id: str, actor: Actor) -> Job:
    """Cancel a job; operators cancel their own, approvers anyone's (the policy's CANCEL and CANCEL_ANY)."""
    store = svc.store
    authorize(actor, Operation.CANCEL)
    job = get_job(store, job_id)
    if not actor.is_same_person(job.requested_by_identity):
        authorize(actor, Operation.CANCEL_ANY)
    if job.status in FINAL_JOB_STATES:
        raise Conflict(f"{job_id} is already {job.status}.", hint="Nothing to cancel.")
    if job.provider_job_id:
        try:
            reply = svc.provider(job.provider).cancel(job.provider_job_id)
        except providers.ProviderError as exc:
            raise Conflict(
                f"{job.provider} did not cancel {job_id}: {exc}", hint="Try again; the job keeps running until then."
            ) from exc
        _apply(store, job, reply)
    else:
        with store.write():
            if job.approval_id:
                approvals.cancel_pending(store, job.approval_id)
            _finish(store, job, JobState.CANCELLED, error=f"cancelled by {actor}")
    audit.record(store, actor, "cancel_job", {"job": job_id})
    return get_job(store, job_id)


# Providers whose webhooks finetune-ops receives, and the providers whose jobs each webhook may describe.
_WEBHOOK_JOBS: dict[Provider, frozenset[Provider]] = {
    Provider.OPENAI: frozenset(p for p, whose in CATALOG_PROVIDER.items() if whose == CatalogProvider.OPENAI),
}


def handle_webhook(svc: Services, *, provider: str, payload: bytes, headers: Mapping[str, str]) -> Job | None:
    """A provider says a job changed: check the signature, then poll that job now (polling stays the truth)."""
    store, settings = svc.store, svc.settings
    if provider not in _WEBHOOK_JOBS or settings.openai_webhook_secret is None:
        raise providers.ProviderNotConfigured(
            f"webhooks from {provider!r} are not set up.",
            hint="Set OPENAI_WEBHOOK_SECRET to receive OpenAI's webhooks.",
        )
    secret = settings.openai_webhook_secret.get_secret_value()
    event = svc.provider(provider).verify_webhook(payload, headers, secret)
    job_id = db.job_for_provider_job(
        store, providers=_WEBHOOK_JOBS[Provider(provider)], provider_job_id=event["job_id"]
    )
    if job_id is None:
        log.info("webhook %s for a job finetune-ops did not launch (%s); ignored", event["type"], event["job_id"])
        return None
    return poll_job(svc, job_id)
