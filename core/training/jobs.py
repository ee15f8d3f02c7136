"""Fine-tuning jobs: launch (with budget, pre-flight validation and idempotency), poll, cancel.

Launch records the job first, in one transaction with its audit row, its
notification and, when the estimate exceeds FINETUNE_AUTO_APPROVE_USD, its
approval request (the job then waits in `pending_approval`). Submission to the
provider happens after commit and is safe to repeat: a job left in
`submitting` (a crash, a transient provider error) is submitted again by the
poller with the same idempotency key, so the provider never starts it twice.

The poller (`poll_active_jobs`, a scheduler job in `finetune serve`) asks each
active job's provider for its state with bounded concurrency, stores new
events, announces every transition in the job's one Slack message, backs off
on transient errors and stops on permanent ones. On success the trained model
is registered as the `candidate` version of the dataset's model with its
lineage (dataset version -> job -> provider model id, final metrics).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from core.catalog.models import Catalog
from core.catalog.pricing import CostEstimate, estimate_cost
from core.data import datasets, exports
from core.errors import Conflict, InvalidInput, NotFound
from core.platform import approvals, audit, events, outbox
from core.platform.actors import SCHEDULER, Actor
from core.platform.settings import Settings
from core.platform.store import Store
from core.platform.timeutil import iso, utcnow
from core.providers import base as providers
from core.services import Services
from core.training.hyperparams import check_hyperparameters, suggest_hyperparameters
from core.vocabulary import ACTIVE_JOB_STATES, CATALOG_PROVIDER, FINAL_JOB_STATES, JobState, Provider, one_of, values

log = logging.getLogger(__name__)

POLL_BACKOFF_CAP_SECONDS = 900


class Job(BaseModel):
    id: str
    provider: str
    provider_job_id: str | None
    dataset_version: str
    base_model: str
    method: str
    hyperparameters: dict[str, Any]
    status: str
    provider_status: str | None
    status_detail: str | None
    estimated_cost_usd: float | None
    model_id: str | None
    error: str | None
    approval_id: str | None
    requested_by: str
    created_at: str
    updated_at: str
    finished_at: str | None


class LaunchResult(BaseModel):
    job: Job
    created: bool = Field(description="False when this idempotency key had already launched the job.")
    approval: approvals.Approval | None = Field(description="The approval the job waits on, when over budget.")
    cost: CostEstimate | None


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


def _job(row: dict) -> Job:
    return Job(
        **{**row, "dataset_version": row["dataset_version_id"], "hyperparameters": json.loads(row["hyperparameters"])}
    )


def get_job(store: Store, job_id: str) -> Job:
    rows = store.query("SELECT * FROM jobs WHERE id = ?", (job_id,))
    if not rows:
        raise NotFound(f"no job {job_id!r}.", hint="List jobs with `finetune jobs list`.", job=job_id)
    return _job(rows[0])


def list_jobs(store: Store, *, status: str | None = None, limit: int = 50) -> JobList:
    if status is not None and status not in values(JobState):
        raise InvalidInput(f"unknown status {status!r}.", hint=f"Use one of: {', '.join(values(JobState))}.")
    where, params = ("WHERE status = ?", [status]) if status else ("", [])
    rows = store.query(f"SELECT * FROM jobs {where} ORDER BY created_at DESC LIMIT ?", (*params, limit))
    return JobList(jobs=[_job(r) for r in rows])


def job_events(store: Store, job_id: str, *, limit: int = 200) -> JobEvents:
    get_job(store, job_id)
    rows = store.query("SELECT * FROM job_events WHERE job_id = ? ORDER BY id DESC LIMIT ?", (job_id, limit))
    events = [
        JobEvent(at=r["at"], kind=r["kind"], message=r["message"], step=r["step"],
                 metrics=json.loads(r["metrics"]) if r["metrics"] else None)
        for r in reversed(rows)
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
    method: str = "supervised",
    hyperparameters: dict[str, Any] | None = None,
    key: str | None = None,
) -> LaunchResult:
    """Launch (or, over budget, request approval for) a fine-tuning job. Idempotent on `key`."""
    store, settings, catalog = svc.store, svc.settings, svc.catalog
    if key is not None and (earlier := _launched_with(store, key)) is not None:
        return earlier
    provider = _provider_name(provider)
    info = catalog.require(base_model)
    if CATALOG_PROVIDER[provider] != info.provider:
        raise InvalidInput(
            f"{base_model} is a {info.provider} model; provider {provider!r} cannot train it.",
            hint=f"Use --provider {'openai or azure' if info.provider == 'openai' else info.provider}, or another base model.",
        )
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
        job_id="job_" + uuid.uuid4().hex[:12], version_id=version.id, provider=provider, base_model=base_model,
        method=method, hyperparameters=chosen, cost=cost, key=key, actor=actor,
        over_budget=cost.usd is None or cost.usd > settings.auto_approve_usd,
    )  # fmt: skip
    try:
        approval = _record_launch(store, settings, plan)
    except sqlite3.IntegrityError:  # the same key, launched at the same moment by another process
        earlier = _launched_with(store, key) if key is not None else None
        if earlier is None:
            raise
        return earlier
    if not plan.over_budget:
        submit_job(svc, plan.job_id)
    return LaunchResult(job=get_job(store, plan.job_id), created=True, approval=approval, cost=cost)


@dataclass(frozen=True)
class _Launch:
    job_id: str
    version_id: str
    provider: str
    base_model: str
    method: str
    hyperparameters: dict[str, Any]
    cost: CostEstimate
    key: str | None
    actor: Actor
    over_budget: bool


def _launched_with(store: Store, key: str) -> LaunchResult | None:
    rows = store.query("SELECT * FROM jobs WHERE idempotency_key = ?", (key,))
    if not rows:
        return None
    job = _job(rows[0])
    approval = approvals.get(store, job.approval_id) if job.approval_id else None
    return LaunchResult(job=job, created=False, approval=approval, cost=None)


def _record_launch(store: Store, settings: Settings, plan: _Launch) -> approvals.Approval | None:
    """The job row, its approval request when over budget, its notification and its audit row: one transaction."""
    job_id, version, provider, base_model, method = (
        plan.job_id,
        plan.version_id,
        plan.provider,
        plan.base_model,
        plan.method,
    )
    chosen, cost, over_budget, key, actor, now = (
        plan.hyperparameters,
        plan.cost,
        plan.over_budget,
        plan.key,
        plan.actor,
        iso(),
    )
    with store.write() as db:
        db["jobs"].insert(
            {
                "id": job_id, "provider": provider, "dataset_version_id": version, "base_model": base_model,
                "method": method, "hyperparameters": json.dumps(chosen),
                "status": "pending_approval" if over_budget else "submitting",
                "estimated_cost_usd": cost.usd, "idempotency_key": key or job_id, "requested_by": str(actor),
                "requested_via": actor.face, "created_at": now, "updated_at": now, "next_poll_at": now,
            }
        )  # fmt: skip
        approval = None
        if over_budget:
            price = f"${cost.usd:,.2f}" if cost.usd is not None else "an unknown cost (no price in the catalog)"
            approval = approvals.request(
                store, action="launch", subject_id=job_id, actor=actor, ttl_hours=settings.approval_ttl_hours,
                cost_usd=cost.usd, payload={"job": job_id, "provider": provider, "base_model": base_model},
                summary=f"launch {job_id}: {base_model} on {version} via {provider}, estimated {price} "
                f"(auto-approve limit ${settings.auto_approve_usd:,.2f})",
            )  # fmt: skip
            db.execute("UPDATE jobs SET approval_id = ? WHERE id = ?", (approval.id, job_id))
        _announce(store, job_id)
        audit.record(
            store, actor, "launch_job",
            {"job": job_id, "version": version, "provider": provider, "base_model": base_model, "method": method,
             "hyperparameters": chosen, "key": key},
            detail="waiting for approval" if over_budget else "submitting",
        )  # fmt: skip
    return approval


def _hyperparameters(suggestion, given: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {"epochs": suggestion.epochs}
    for name in ("batch_size", "learning_rate", "learning_rate_multiplier", "warmup_steps"):
        if getattr(suggestion, name) is not None:
            values[name] = getattr(suggestion, name)
    values.update(suggestion.extra)
    values.update({k: v for k, v in given.items() if v is not None})
    return values


def on_launch_decided(store: Store, approval: approvals.Approval, approved: bool) -> None:
    """Inside the deciding transaction: the job moves on, or is cancelled."""
    status = "submitting" if approved else "cancelled"
    error = None if approved else f"launch {approval.status}" + (f": {approval.reason}" if approval.reason else "")
    store.db.execute(
        "UPDATE jobs SET status = ?, error = ?, updated_at = ?, next_poll_at = ?, finished_at = ? WHERE id = ? "
        "AND status = 'pending_approval'",
        (status, error, iso(), iso(), None if approved else iso(), approval.subject_id),
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
    store, catalog = svc.store, svc.catalog
    job = get_job(store, job_id)
    if job.status != "submitting":
        return job
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
        _finish(store, job, "failed", error=str(exc))
        return get_job(store, job_id)
    except (InvalidInput, Conflict) as exc:
        _finish(store, job, "failed", error=str(exc))
        return get_job(store, job_id)
    _apply(store, job, reply)
    return get_job(store, job_id)


def _apply(store: Store, job: Job, reply: providers.ProviderJob, events: list[providers.ProviderEvent] = ()) -> None:
    """Record what the provider said: new events, the new state, and what follows from it."""
    with store.write() as db:
        for event in events:
            db.execute(
                "INSERT OR IGNORE INTO job_events (job_id, at, kind, message, step, metrics, provider_event_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job.id, event.at, event.kind, event.message, event.step,
                 json.dumps(event.metrics) if event.metrics else None, event.id),
            )  # fmt: skip
        last_event = events[-1].id if events else None
        changed = reply.status != job.status
        finished = reply.status in FINAL_JOB_STATES
        db.execute(
            "UPDATE jobs SET provider_job_id = ?, status = ?, provider_status = ?, status_detail = ?, model_id = ?,"
            " error = ?, trained_tokens = coalesce(?, trained_tokens), updated_at = ?, poll_failures = 0,"
            " next_poll_at = ?, finished_at = ?, last_seen_event = coalesce(?, last_seen_event) WHERE id = ?",
            (reply.provider_job_id, reply.status, reply.provider_status, reply.detail, reply.model_id, reply.error,
             reply.trained_tokens, iso(), None if finished else iso(), iso() if finished else None, last_event, job.id),
        )  # fmt: skip
        if changed:
            db["job_events"].insert(
                {"job_id": job.id, "at": iso(), "kind": "status", "message": f"{job.status} -> {reply.status}"
                 + (f": {reply.error}" if reply.error else "")}
            )  # fmt: skip
            audit.record(store, SCHEDULER, "job_status", {"job": job.id, "from": job.status, "to": reply.status})
        if changed or events:
            _announce(store, job.id)
        if reply.status == "succeeded" and changed:
            _register_candidate(store, get_job(store, job.id), reply)


def _finish(store: Store, job: Job, status: str, *, error: str) -> None:
    with store.write() as db:
        db.execute(
            "UPDATE jobs SET status = ?, error = ?, updated_at = ?, finished_at = ?, next_poll_at = NULL WHERE id = ?",
            (status, error, iso(), iso(), job.id),
        )
        db["job_events"].insert(
            {"job_id": job.id, "at": iso(), "kind": "status", "message": f"{job.status} -> {status}: {error}"}
        )
        audit.record(store, SCHEDULER, "job_status", {"job": job.id, "from": job.status, "to": status}, detail=error)
        _announce(store, job.id)


def _backoff(store: Store, job: Job, error: str) -> None:
    """A transient provider error: try again later, later each time (capped), and say so in the log."""
    failures = store.scalar("SELECT poll_failures FROM jobs WHERE id = ?", (job.id,)) + 1
    delay = min(POLL_BACKOFF_CAP_SECONDS, 5 * 2 ** min(failures, 10))
    with store.write() as db:
        db.execute(
            "UPDATE jobs SET poll_failures = ?, next_poll_at = ?, status_detail = ? WHERE id = ?",
            (
                failures,
                iso(utcnow() + timedelta(seconds=delay)),
                f"provider unavailable, retrying in {delay}s: {error[:200]}",
                job.id,
            ),
        )
    log.warning("job %s: transient provider error (%s); next try in %ss", job.id, error, delay)


def _register_candidate(store: Store, job: Job, reply: providers.ProviderJob) -> None:
    """Register the trained model as the next version of the dataset's model, aliased `candidate`."""
    name = job.dataset_version.split("@")[0]
    number = (store.scalar("SELECT max(version) FROM model_versions WHERE name = ?", (name,)) or 0) + 1
    version_id = f"{name}:v{number}"
    now = iso()
    previous = store.scalar(
        "SELECT model_version_id FROM model_aliases WHERE model_name = ? AND alias = 'candidate'", (name,)
    )
    store.db["model_versions"].insert(
        {
            "id": version_id, "name": name, "version": number, "provider": job.provider,
            "provider_model_id": reply.model_id, "job_id": job.id, "dataset_version_id": job.dataset_version,
            "base_model": job.base_model, "status": "registered", "metrics": json.dumps(reply.metrics), "created_at": now,
        }
    )  # fmt: skip
    store.db["model_aliases"].upsert(
        {"model_name": name, "alias": "candidate", "model_version_id": version_id, "updated_at": now},
        pk=("model_name", "alias"),
    )
    store.db["promotions"].insert(
        {"model_name": name, "alias": "candidate", "from_version_id": previous, "to_version_id": version_id,
         "actor": str(SCHEDULER), "reason": f"trained by {job.id}", "at": now}
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
    if job.status == "submitting":
        return submit_job(svc, job_id)
    if job.status not in ACTIVE_JOB_STATES or not job.provider_job_id:
        return job
    try:
        provider = svc.provider(job.provider)
        reply = provider.poll(job.provider_job_id)
        last = store.scalar("SELECT last_seen_event FROM jobs WHERE id = ?", (job.id,))
        events = provider.events(job.provider_job_id, after=last)
    except providers.ProviderError as exc:
        if exc.transient:
            _backoff(store, job, str(exc))
        else:
            _finish(store, job, "failed", error=str(exc))
        return get_job(store, job_id)
    _apply(store, job, reply, events)
    return get_job(store, job_id)


def due_jobs(store: Store) -> list[str]:
    rows = store.query(
        f"SELECT id FROM jobs WHERE status IN ({','.join('?' * len(ACTIVE_JOB_STATES))})"
        " AND (next_poll_at IS NULL OR next_poll_at <= ?) ORDER BY next_poll_at",
        (*sorted(ACTIVE_JOB_STATES), iso()),
    )
    return [r["id"] for r in rows]


def poll_active_jobs(svc: Services, *, concurrency: int = 4) -> int:
    """Scheduler entry point: poll every due active job, `concurrency` at a time."""
    ids = due_jobs(svc.store)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(lambda job_id: poll_job(svc, job_id), ids))
    return len(ids)


def cancel_job(svc: Services, *, job_id: str, actor: Actor) -> Job:
    store = svc.store
    job = get_job(store, job_id)
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
        with store.write() as db:
            if job.approval_id:
                db.execute(
                    "UPDATE approvals SET status = 'cancelled' WHERE id = ? AND status = 'pending'", (job.approval_id,)
                )
            _finish(store, job, "cancelled", error=f"cancelled by {actor}")
    audit.record(store, actor, "cancel_job", {"job": job_id})
    return get_job(store, job_id)


def handle_webhook(svc: Services, *, provider: str, payload: bytes, headers: dict[str, str]) -> Job | None:
    """A provider says a job changed: check the signature, then poll that job now (polling stays the truth)."""
    store, settings = svc.store, svc.settings
    if provider != "openai" or settings.openai_webhook_secret is None:
        raise providers.ProviderNotConfigured(
            f"webhooks from {provider!r} are not set up.",
            hint="Set OPENAI_WEBHOOK_SECRET to receive OpenAI's webhooks.",
        )
    event = svc.provider(provider).verify_webhook(payload, headers, settings.openai_webhook_secret.get_secret_value())
    job_id = store.scalar(
        "SELECT id FROM jobs WHERE provider IN ('openai', 'azure') AND provider_job_id = ?", (event.get("job_id"),)
    )
    if job_id is None:
        log.info(
            "webhook %s for a job finetune-ops did not launch (%s); ignored", event.get("type"), event.get("job_id")
        )
        return None
    return poll_job(svc, job_id)
