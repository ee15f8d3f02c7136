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
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.platform import approvals
from core.platform.store import Store
from core.platform.timeutil import iso
from core.services import Services

if TYPE_CHECKING:
    from core.evaluation import EvaluationRunner

log = logging.getLogger(__name__)

APPROVALS_SECONDS = 60  # how often overdue approval requests are expired
EVALUATIONS_SECONDS = 10  # how often the evaluation runner is woken to look for queued evaluations
ROLLOUTS_SECONDS = 60  # how often staged rollouts whose hold has passed advance
CANARIES_SECONDS = 300  # how often every running canary is re-tested against its stable version
LOOP_SECONDS = 15  # how often every run of the closed loop is advanced as far as its subjects allow
ANALYTICS_SECONDS = 300  # how often new feedback is folded into the rollups and the edit-pattern counts
REGRESSION_HOUR = 6  # local hour (FINETUNE_TIMEZONE) of the daily regression check
RETRAIN_HOUR = 7  # local hour of the daily retraining check (after the regression check)
DAILY_GRACE_SECONDS = 6 * 3600  # a daily job missed while serve was down still runs if serve is back by then
DIGEST_DAY = "mon"  # the weekly digest of the week just ended goes out on Monday ...
DIGEST_HOUR = 9  # ... at 09:00 local (FINETUNE_TIMEZONE)
WEEKLY_GRACE_SECONDS = 24 * 3600  # a weekly job missed while serve was down still runs if serve is back that day

JOB_DEFAULTS = {
    "coalesce": True,  # after a pause, run once, not once per missed slot
    "max_instances": 1,  # never overlap a job with itself
    "misfire_grace_time": 60,  # the default of 1 s drops runs on a busy machine
}


JOB_THREADS = 16  # one per job at most (max_instances=1), with room to spare


class Scheduler(AsyncIOScheduler):  # type: ignore[misc]  # apscheduler 3 ships no types
    """APScheduler on the event loop, running its jobs on threads of its own.

    APScheduler's asyncio executor would run them in the event loop's default thread pool, which also
    carries the request handlers (Slack's signed requests, feedback from applications): a few slow jobs
    (a provider poll, a webhook receiver that hangs, an evaluation) would then delay Slack's 3-second ack.
    """

    def __init__(self, timezone: str) -> None:
        self.job_threads = ThreadPoolExecutor(JOB_THREADS)
        super().__init__(timezone=timezone, job_defaults=JOB_DEFAULTS, executors={"default": self.job_threads})

    def stop(self) -> None:
        """Stop scheduling and wait for the jobs running now to finish. Call it on the event loop's thread."""
        self.shutdown(wait=False)
        self.job_threads.shutdown(wait=True)


def build_scheduler(timezone: str) -> Scheduler:
    return Scheduler(timezone)


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


def add_daily_job(
    scheduler: AsyncIOScheduler, func: Callable[..., Any], *, job_id: str, hour: int, args: tuple[object, ...] = ()
) -> None:
    """Run `func` every day at `hour`:00 in the scheduler's time zone."""
    scheduler.add_job(
        func,
        "cron",
        hour=hour,
        minute=0,
        timezone=scheduler.timezone,
        id=job_id,
        replace_existing=True,
        args=args,
        misfire_grace_time=DAILY_GRACE_SECONDS,
    )


def add_weekly_job(
    scheduler: AsyncIOScheduler,
    func: Callable[..., Any],
    *,
    job_id: str,
    day_of_week: str,
    hour: int,
    args: tuple[object, ...] = (),
) -> None:
    """Run `func` every week on `day_of_week` (mon, tue, ...) at `hour`:00 in the scheduler's time zone."""
    scheduler.add_job(
        func,
        "cron",
        day_of_week=day_of_week,
        hour=hour,
        minute=0,
        timezone=scheduler.timezone,
        id=job_id,
        replace_existing=True,
        args=args,
        misfire_grace_time=WEEKLY_GRACE_SECONDS,
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


def advance_loops(svc: Services) -> None:
    """Takes up new retraining requests as loop runs and advances every run in progress (see core.loop)."""
    from core.loop import advance_runs

    moved = advance_runs(svc)
    record_run(svc.store, "loop", detail=f"{moved} steps")


def guard_canaries(svc: Services) -> None:
    """Re-tests every running canary; one significantly worse is rolled back or proposed for it, once (see
    core.evaluation.guard)."""
    from core.evaluation.guard import guard_canaries as guard

    acted = guard(svc)
    record_run(svc.store, "canaries", detail=f"acted on {acted}")


def run_evaluations(svc: Services, runner: EvaluationRunner) -> None:
    """Wakes the evaluation runner, which runs queued evaluations on its own thread (see core.evaluation.runs)."""
    started = runner.wake(svc)
    record_run(svc.store, "evaluations", detail="looking for queued evaluations" if started else "one is running")


def update_analytics(svc: Services) -> None:
    """Folds feedback written since the last run into the daily rollups and the edit-pattern counts."""
    from core import analytics

    rolled = analytics.roll_up(svc.store, timezone=svc.settings.timezone)
    mined = analytics.mine_patterns(svc.store)
    record_run(svc.store, "analytics", detail=f"rolled up {rolled.rows_read}, mined {mined.rows_read}")


def check_regressions(svc: Services) -> None:
    """The daily regression check over up-to-date rollups: raises, keeps or resolves alerts (see core.analytics)."""
    from core import analytics

    analytics.roll_up(svc.store, timezone=svc.settings.timezone)
    run = analytics.check_regressions(
        svc.store,
        rules=analytics.RegressionRules.from_settings(svc.settings),
        as_of=analytics.today(svc.clock(), svc.settings.timezone),
    )
    record_run(
        svc.store, "regressions", detail=f"{len(run.raised)} raised, {len(run.resolved)} resolved, "
        f"{len(run.still_open)} still open",
    )  # fmt: skip


def check_retraining(svc: Services) -> None:
    """The daily retraining check: proposes retraining each agent with enough new corrections, once (see
    core.analytics.retrain)."""
    from core import analytics

    made = analytics.check_retraining(svc)
    record_run(svc.store, "retrain", detail=f"proposed {len(made)}: {', '.join(p.agent for p in made) or 'none'}")


def publish_digest(svc: Services) -> None:
    """The weekly digest of the last full week: its page under the data directory, and its Slack post, once per
    week (see reports.publish)."""
    from core.platform.actors import SCHEDULER
    from reports.publish import publish_weekly

    published = publish_weekly(svc, actor=SCHEDULER)
    record_run(svc.store, "digest", detail=f"{published.week}: {'posted' if published.posted else 'already posted'}")
