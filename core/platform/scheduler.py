"""The one APScheduler instance, owned by `finetune serve`, and its core jobs.

Only serve schedules: APScheduler cannot share a job store between processes,
and all durable state lives in SQLite anyway, so the job store is in memory and
a restart loses nothing. Job functions are module-level so they can be named
by id; each records its last run in `scheduler_runs`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.platform import approvals
from core.platform.store import Store
from core.platform.timeutil import iso
from core.services import Services

log = logging.getLogger(__name__)

APPROVALS_SECONDS = 60  # how often overdue approval requests are expired
ROLLOUTS_SECONDS = 60  # how often staged rollouts whose hold has passed advance

JOB_DEFAULTS = {
    "coalesce": True,  # after a pause, run once, not once per missed slot
    "max_instances": 1,  # never overlap a job with itself
    "misfire_grace_time": 60,  # the default of 1 s drops runs on a busy machine
}


def build_scheduler(timezone: str) -> AsyncIOScheduler:
    return AsyncIOScheduler(timezone=timezone, job_defaults=JOB_DEFAULTS)


def add_interval_job(
    scheduler: AsyncIOScheduler, func: Callable[..., Any], *, job_id: str, seconds: float, args: tuple[object, ...] = ()
) -> None:
    scheduler.add_job(
        func,
        "interval",
        seconds=seconds,
        id=job_id,
        replace_existing=True,
        args=args,
        next_run_time=datetime.now(scheduler.timezone),  # first run at start, not one interval later
    )


def record_run(
    store: Store, job_id: str, *, outcome: str = "ok", detail: str | None = None, interval_seconds: float | None = None
) -> None:
    with store.write() as db:
        db.table("scheduler_runs").upsert(
            {
                "job_id": job_id, "last_run_at": iso(), "outcome": outcome, "detail": detail,
                "interval_seconds": interval_seconds,
            },
            pk="job_id",
        )  # fmt: skip


def heartbeat(svc: Services) -> None:
    """Proves the scheduler is alive; `status` shows the last beat, stale after three missed intervals."""
    record_run(svc.store, "heartbeat", interval_seconds=svc.settings.heartbeat_seconds)


def poll_jobs(svc: Services) -> None:
    """Polls every due active fine-tuning job (see core.training.jobs)."""
    from core.training.jobs import poll_active_jobs

    polled = poll_active_jobs(svc)
    record_run(svc.store, "jobs", detail=f"polled {polled}")


def poll_deployments(svc: Services) -> None:
    """Moves provider deployments of model versions along; an active one applies the alias changes waiting on it."""
    from core.registry.deployments import poll_deployments as poll

    polled = poll(svc)
    record_run(svc.store, "deployments", detail=f"polled {polled}")


def expire_approvals(svc: Services) -> None:
    """Expires approval requests past their deadline: each action hears "no" and Slack is told."""
    from core.actions import HANDLERS

    expired = approvals.expire_overdue(
        svc.store, on_decided=lambda approval: HANDLERS[approval.action].on_decided, now=svc.clock()
    )
    record_run(svc.store, "approvals", detail=f"expired {expired}")


def advance_rollouts(svc: Services) -> None:
    """Proposes the next stage of every staged rollout whose hold has passed (see core.registry.rollouts)."""
    from core.registry.rollouts import advance_due

    advanced = advance_due(svc)
    record_run(svc.store, "rollouts", detail=f"advanced {advanced}")
