"""Spending: what the jobs launched in a period are estimated to cost, against the limits in the settings.

Spend is the estimated cost of the jobs launched in the period that reached, or
are reaching, their provider: a job still waiting for approval has not been
launched, and one that was cancelled or failed before its submission cost
nothing. Periods are calendar days and months in FINETUNE_TIMEZONE. The daily
limit counts a person (every identity FINETUNE_PEOPLE links to them), the
monthly budget everyone.

Status and launch both need this, and the platform may not import training, so
the one query on `jobs` it takes lives here.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Collection
from datetime import datetime

from pydantic import BaseModel, Field

from core.platform.settings import Settings
from core.platform.store import Store
from core.platform.timeutil import iso
from core.vocabulary import JobState

__all__ = ["SpendReport", "day_start", "limit_breaches", "month_report", "month_start", "spent"]


class SpendReport(BaseModel):
    month_usd: float = Field(description="Estimated cost of the jobs launched this month (FINETUNE_TIMEZONE).")
    monthly_budget_usd: float | None = Field(description="FINETUNE_MONTHLY_BUDGET_USD, or null when unset.")
    month_start: str = Field(description="UTC time the month began in FINETUNE_TIMEZONE.")

    def summary(self) -> str:
        """`$12.50 of the $100.00 budget`, for the faces' status lines."""
        if self.monthly_budget_usd is None:
            return f"${self.month_usd:,.2f} (no monthly budget set)"
        return f"${self.month_usd:,.2f} of the ${self.monthly_budget_usd:,.2f} budget"


def month_start(now: datetime, timezone: str) -> datetime:
    """The first instant of `now`'s calendar month in `timezone`."""
    local = now.astimezone(zoneinfo.ZoneInfo(timezone))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def day_start(now: datetime, timezone: str) -> datetime:
    """The first instant of `now`'s calendar day in `timezone`."""
    local = now.astimezone(zoneinfo.ZoneInfo(timezone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def spent(store: Store, *, since: datetime, identities: Collection[str] | None = None) -> float:
    """Estimated cost of the jobs launched since `since` (by `identities` when given) that reached a provider."""
    where = [
        "created_at >= ?",
        "status != ?",
        "NOT (status IN (?, ?) AND provider_job_id IS NULL)",
        "estimated_cost_usd IS NOT NULL",
    ]
    params: list[object] = [iso(since), JobState.PENDING_APPROVAL, JobState.CANCELLED, JobState.FAILED]
    if identities is not None:
        names = sorted(identities)
        where.append(f"requested_by_identity IN ({', '.join('?' * len(names))})")
        params.extend(names)
    total = store.scalar(f"SELECT sum(estimated_cost_usd) FROM jobs WHERE {' AND '.join(where)}", tuple(params))
    return float(total or 0.0)


def month_report(store: Store, settings: Settings, *, now: datetime) -> SpendReport:
    start = month_start(now, settings.timezone)
    return SpendReport(
        month_usd=round(spent(store, since=start), 2),
        monthly_budget_usd=settings.monthly_budget_usd,
        month_start=iso(start),
    )


def limit_breaches(
    store: Store, settings: Settings, *, identities: Collection[str], cost_usd: float | None, now: datetime
) -> list[str]:
    """Which spend limits a launch of `cost_usd` by this person would pass, each with its numbers."""
    if cost_usd is None:
        return []  # an unknown price waits for an approver anyway
    breaches = []
    if settings.monthly_budget_usd is not None:
        start = month_start(now, settings.timezone)
        before = spent(store, since=start)
        if before + cost_usd > settings.monthly_budget_usd:
            breaches.append(
                _breach("the monthly budget", "FINETUNE_MONTHLY_BUDGET_USD", settings.monthly_budget_usd, before,
                        cost_usd, since=f"this month (since {start:%Y-%m-%d})")
            )  # fmt: skip
    if settings.user_daily_limit_usd is not None:
        start = day_start(now, settings.timezone)
        before = spent(store, since=start, identities=identities)
        if before + cost_usd > settings.user_daily_limit_usd:
            breaches.append(
                _breach("the daily limit per person", "FINETUNE_USER_DAILY_LIMIT_USD", settings.user_daily_limit_usd,
                        before, cost_usd, since=f"by this person today ({start:%Y-%m-%d})")
            )  # fmt: skip
    return breaches


def _breach(limit: str, setting: str, allowed: float, before: float, cost: float, *, since: str) -> str:
    return (
        f"{limit}: ${before:,.2f} launched {since} + ${cost:,.2f} for this job = ${before + cost:,.2f}, "
        f"over {setting}=${allowed:,.2f}"
    )
