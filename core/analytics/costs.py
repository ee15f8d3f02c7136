"""What was spent, on what, and what a fine-tuned version earns back against its base model.

The ledger (`cost_summary`) covers a span of local days (FINETUNE_TIMEZONE)
and has two kinds of rows:

- training: the jobs launched in the span that reached their provider (the
  rule the monthly budget counts by, `core.platform.spend`), by provider, base
  model, model and the version each registered. A job's actual cost is shown
  when the provider reported one; otherwise its estimate from the catalog's
  billing formula (billed tokens = training tokens x epochs, at the catalog's
  dated price), and the row says it is an estimate.
- inference: the drafts the agents sent in the span, from the analytics
  rollups' cost sums: what feedback reported in `cost_usd`. Feedback carries no
  token counts, so a draft that reported no cost is priced only when its price
  does not depend on tokens (a local model costs nothing); every other such
  draft is counted in `unpriced_events`, never guessed.

ROI of a fine-tuned version against its base model, per draft it served:
(base's price per draft - version's price per draft) + acceptance lift x the
value of an accepted draft, where the lift is the version's acceptance minus
the base's on the same agent (the agent's drafts that name no registry version
are the base's), and an accepted draft is worth FINETUNE_MINUTES_SAVED_PER_ACCEPTED_DRAFT
x FINETUNE_COST_PER_MINUTE_USD. The net benefit per day is that times the
version's recent daily volume (its drafts over the last `RECENT_DAYS` days of
the span), and payback days are its training cost over that. Where a term is
missing (no base traffic, no price for a side) the ROI says why instead.
"""

from __future__ import annotations

import zoneinfo
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.analytics import db, ledger_db
from core.analytics.acceptance import Span, Totals
from core.catalog.models import Catalog
from core.inference.base import Target
from core.inference.pricing import TokenRates, Unpriced, price_for
from core.platform.settings import Settings
from core.platform.store import Store
from core.platform.timeutil import iso
from core.services import Services
from core.vocabulary import CHAT_PROVIDERS, ChatProvider

RECENT_DAYS = 7  # the daily volume a payback is projected at: the version's drafts over this many last days
CostKind = Literal["training", "inference"]


class CostRow(BaseModel):
    """One line of the ledger: what one kind of spend on one model came to over the span."""

    model_config = ConfigDict(frozen=True)

    kind: CostKind
    provider: str | None = Field(description="None for drafts that name no registry version (provider not recorded).")
    base_model: str | None
    model: str = Field(description="The registered model (training, versions) or the agent (drafts of no version).")
    version: str | None = Field(description="The registry version, when there is one.")
    agent: str | None = Field(default=None, description="Inference: the agent whose drafts these are.")
    usd: float
    estimated: bool = Field(description="True when any of the amount is a catalog estimate, not a reported cost.")
    events: int = Field(description="Jobs (training) or drafts (inference).")
    unpriced_events: int = Field(default=0, description="Drafts (or jobs) whose cost is unknown: left out of `usd`.")
    basis: str = Field(description="Where the amount comes from.")


class CostPoint(BaseModel):
    """Spend over one day or one week (starting on a Monday), for charts."""

    model_config = ConfigDict(frozen=True)

    start: date
    training_usd: float
    inference_usd: float

    @property
    def total_usd(self) -> float:
        return self.training_usd + self.inference_usd


class Roi(BaseModel):
    """What one fine-tuned version earns per draft and per day against its base model, and when it pays back."""

    model_config = ConfigDict(frozen=True)

    version: str
    agent: str
    base_model: str | None
    events: int = Field(description="The version's drafts in the span.")
    base_events: int = Field(description="The base model's drafts on the same agent in the span.")
    acceptance: float | None
    base_acceptance: float | None
    lift_points: float | None = Field(description="Acceptance lift in percentage points (version - base).")
    price_saving_per_event_usd: float | None = Field(description="Base price per draft - version price per draft.")
    value_per_event_usd: float | None = Field(description="Price saving + lift x the value of an accepted draft.")
    daily_events: float = Field(description=f"The version's drafts per day over the span's last {RECENT_DAYS} days.")
    net_benefit_per_day_usd: float | None
    training_usd: float | None = Field(description="What training the version cost (actual, else estimated).")
    training_estimated: bool
    payback_days: float | None = Field(description="Training cost / net benefit per day; None when it never pays back.")
    reason: str | None = Field(description="Why ROI or payback cannot be told, when it cannot.")


class CostSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    span: Span
    total_usd: float
    training_usd: float
    inference_usd: float
    training_estimated: bool = Field(description="True when some training cost is an estimate.")
    unpriced_events: int = Field(description="Drafts whose cost is unknown (no cost_usd and no token counts).")
    rows: list[CostRow] = Field(description="Training rows first, then inference; largest first within each.")
    roi: list[Roi]
    daily: list[CostPoint]
    weekly: list[CostPoint]
    value_per_accepted_draft_usd: float
    notes: list[str] = Field(description="What the numbers count and what they cannot.")


def cost_summary(svc: Services, *, span: Span) -> CostSummary:
    """The ledger of training and inference spend over `span`, per day and week, and each version's ROI."""
    store, settings = svc.store, svc.settings
    training, training_days = _training(store, span, settings.timezone)
    inference, inference_days = _inference(store, span, svc.catalog)
    rows = sorted(training, key=lambda r: -r.usd) + sorted(inference, key=lambda r: -r.usd)
    training_usd = _rounded(sum(r.usd for r in training))
    inference_usd = sum(r.usd for r in inference)
    unpriced = sum(r.unpriced_events for r in inference)
    value = accepted_draft_value(settings)
    days = _days(span, [*training_days, *inference_days])
    daily = [
        CostPoint(start=day, training_usd=training_days.get(day, 0.0), inference_usd=inference_days.get(day, 0.0))
        for day in days
    ]
    return CostSummary(
        span=span,
        total_usd=training_usd + inference_usd,
        training_usd=training_usd,
        inference_usd=inference_usd,
        training_estimated=any(r.estimated for r in training),
        unpriced_events=unpriced,
        rows=rows,
        roi=return_on_versions(store, span=span, catalog=svc.catalog, value_per_accepted_draft=value),
        daily=daily,
        weekly=_weekly(daily),
        value_per_accepted_draft_usd=value,
        notes=_notes(training, unpriced, settings),
    )


def accepted_draft_value(settings: Settings) -> float:
    """What one accepted draft is worth: minutes saved x cost of a minute."""
    return settings.minutes_saved_per_accepted_draft * settings.cost_per_minute_usd


# Training ------------------------------------------------------------------------------------------------


def _training(store: Store, span: Span, timezone: str) -> tuple[list[CostRow], dict[date, float]]:
    since, before = _utc_bounds(span, timezone)
    zone = zoneinfo.ZoneInfo(timezone)
    groups: dict[tuple[str, str, str, str | None], list[tuple[float | None, bool]]] = defaultdict(list)
    per_day: dict[date, float] = defaultdict(float)
    for job in ledger_db.billed_jobs(store, since=since, before=before):
        usd, estimated = job_cost(job)
        model = job["model_name"] or str(job["dataset_version_id"]).split("@")[0]
        groups[(job["provider"], job["base_model"], model, job["version_id"])].append((usd, estimated))
        day = datetime.fromisoformat(job["created_at"].replace("Z", "+00:00")).astimezone(zone).date()
        per_day[day] += usd or 0.0
    rows = []
    for (provider, base_model, model, version), costs in groups.items():
        estimated = any(e for _, e in costs)
        unpriced = sum(1 for usd, _ in costs if usd is None)
        basis = "catalog estimate (training tokens x epochs x price)" if estimated else "provider's reported cost"
        if unpriced:
            basis += f"; {unpriced:,} job(s) without a catalog price, their cost unknown"
        rows.append(
            CostRow(
                kind="training", provider=provider, base_model=base_model, model=model, version=version,
                usd=_rounded(sum(usd or 0.0 for usd, _ in costs)), estimated=estimated, events=len(costs),
                unpriced_events=unpriced, basis=basis,
            )
        )  # fmt: skip
    return rows, {day: _rounded(usd) for day, usd in per_day.items()}


def job_cost(job: dict[str, Any]) -> tuple[float | None, bool]:
    """A job's cost and whether it is an estimate: the actual cost when reported, else the estimate."""
    if job.get("actual_cost_usd") is not None:
        return float(job["actual_cost_usd"]), False
    estimate = job.get("estimated_cost_usd")
    return (None if estimate is None else float(estimate)), True


def _utc_bounds(span: Span, timezone: str) -> tuple[str | None, str]:
    """The UTC instants where the span's first day begins and the day after its last begins."""
    zone = zoneinfo.ZoneInfo(timezone)

    def start_of(day: date) -> str:
        return iso(datetime.combine(day, time(), tzinfo=zone))

    return (None if span.start is None else start_of(span.start)), start_of(span.end + timedelta(days=1))


# Inference -----------------------------------------------------------------------------------------------


def _inference(store: Store, span: Span, catalog: Catalog) -> tuple[list[CostRow], dict[date, float]]:
    bounds = span.bounds()
    totals = db.rollup_totals(store, group_by=["agent", "model_version"], **bounds)
    known = ledger_db.versions(store, sorted({row["model_version"] for row in totals if row["model_version"]}))
    rows = []
    for row in totals:
        sums = Totals.of(row)
        version = known.get(row["model_version"]) if row["model_version"] else None
        free = version is not None and _is_free(catalog, version)
        unpriced = 0 if free else sums.events - sums.cost_n
        rows.append(
            CostRow(
                kind="inference",
                provider=version["provider"] if version else None,
                base_model=version["base_model"] if version else None,
                model=version["name"] if version else row["agent"],
                version=row["model_version"] or None,
                agent=row["agent"],
                usd=sums.cost_sum,
                estimated=False,
                events=sums.events,
                unpriced_events=unpriced,
                basis=_inference_basis(sums, free),
            )
        )
    per_day = {
        date.fromisoformat(row["day"]): float(row["cost_sum"])
        for row in db.rollup_totals(store, group_by=["day"], **bounds)
    }
    return rows, per_day


def _inference_basis(sums: Totals, free: bool) -> str:
    if free:
        return "a local model: no bill" + (" (plus reported cost_usd)" if sums.cost_n else "")
    if sums.cost_n == sums.events:
        return "cost_usd reported with each draft"
    if sums.cost_n == 0:
        return "unknown: the drafts reported no cost_usd and feedback carries no token counts"
    return f"cost_usd reported with {sums.cost_n:,} of {sums.events:,} drafts; the rest unknown"


def _is_free(catalog: Catalog, version: dict[str, Any]) -> bool:
    rates = version_rates(catalog, version)
    return isinstance(rates, TokenRates) and rates.input_usd_per_1m == 0 and rates.output_usd_per_1m == 0


def version_rates(catalog: Catalog, version: dict[str, Any]) -> TokenRates | Unpriced:
    """The catalog's inference rates of a registry version (its base model's fine-tuned rates)."""
    provider = _chat_provider(version["provider"])
    if provider is None:
        return Unpriced(f"{version['id']} names provider {version['provider']!r}, which answers no chats.")
    model = version.get("provider_model_id") or version["id"]
    return price_for(
        catalog, Target(provider=provider, model=model, base_model=version["base_model"], version_id=version["id"])
    )


def base_rates(catalog: Catalog, version: dict[str, Any]) -> TokenRates | Unpriced:
    """The catalog's inference rates of the base model a version was trained from."""
    provider = _chat_provider(version["provider"])
    if provider is None or not version["base_model"]:
        return Unpriced(f"{version['id']} records no base model the catalog could price.")
    return price_for(catalog, Target(provider=provider, model=version["base_model"]))


def _chat_provider(name: str) -> ChatProvider | None:
    return next((p for p in CHAT_PROVIDERS if p.value == name), None)


# ROI -----------------------------------------------------------------------------------------------------


def return_on_versions(store: Store, *, span: Span, catalog: Catalog, value_per_accepted_draft: float) -> list[Roi]:
    """ROI and payback of every registry version that served drafts in `span`, against its agent's base model."""
    bounds = span.bounds()
    served = {
        (row["agent"], row["model_version"]): Totals.of(row)
        for row in db.rollup_totals(store, group_by=["agent", "model_version"], **bounds)
    }
    recent = _recent_span(span)
    recent_events = {
        (row["agent"], row["model_version"]): int(row["events"])
        for row in db.rollup_totals(store, group_by=["agent", "model_version"], **recent.bounds())
    }
    versions = ledger_db.versions(store, sorted({version for _, version in served if version}))
    results = []
    for (agent, version_id), sums in sorted(served.items()):
        if not version_id:
            continue
        base = served.get((agent, ""), Totals())
        daily = recent_events.get((agent, version_id), 0) / (recent.days or RECENT_DAYS)
        results.append(
            _roi(
                version_id, agent, versions.get(version_id), sums, base, daily=daily, span=span, catalog=catalog,
                value=value_per_accepted_draft,
            )
        )  # fmt: skip
    return results


def _recent_span(span: Span) -> Span:
    days = RECENT_DAYS if span.days is None else min(RECENT_DAYS, span.days)
    return Span(start=span.end - timedelta(days=days - 1), end=span.end)


def _roi(
    version_id: str, agent: str, version: dict[str, Any] | None, sums: Totals, base: Totals, *, daily: float,
    span: Span, catalog: Catalog, value: float,
) -> Roi:  # fmt: skip
    training_usd, training_estimated = job_cost(version) if version else (None, False)
    if version is not None and training_usd is None and version.get("cost_usd") is not None:
        training_usd, training_estimated = float(version["cost_usd"]), True
    lift = None
    if sums.acceptance is not None and base.acceptance is not None:
        lift = sums.acceptance - base.acceptance
    saving, price_reason = _price_saving(catalog, version, sums, base)
    reason = _why_not(version_id, agent, version, base, lift, price_reason, span)
    per_event = None if reason or lift is None or saving is None else saving + lift * value
    net = None if per_event is None else per_event * daily
    payback, payback_reason = _payback(training_usd, net, daily)
    return Roi(
        version=version_id, agent=agent, base_model=version["base_model"] if version else None, events=sums.events,
        base_events=base.events, acceptance=sums.acceptance, base_acceptance=base.acceptance,
        lift_points=None if lift is None else lift * 100, price_saving_per_event_usd=saving,
        value_per_event_usd=per_event, daily_events=daily, net_benefit_per_day_usd=net, training_usd=training_usd,
        training_estimated=training_estimated, payback_days=payback, reason=reason or payback_reason,
    )  # fmt: skip


def _why_not(
    version_id: str, agent: str, version: dict[str, Any] | None, base: Totals, lift: float | None,
    price_reason: str | None, span: Span,
) -> str | None:  # fmt: skip
    when = f"from {span.start} to {span.end}" if span.start else f"up to {span.end}"
    if version is None:
        return f"ROI cannot be computed: {version_id} is not a registered version, so its base model is unknown."
    if base.events == 0:
        return (
            f"ROI cannot be computed: agent {agent!r} sent no drafts from the base model (drafts naming no model "
            f"version) {when}, so there is nothing to measure the lift against."
        )
    if lift is None:
        return f"ROI cannot be computed: the drafts of {version_id} or of the base model carry no acceptance {when}."
    return price_reason


def _price_saving(
    catalog: Catalog, version: dict[str, Any] | None, sums: Totals, base: Totals
) -> tuple[float | None, str | None]:
    """Base price per draft - version price per draft, and why it is unknown when it is."""
    if version is None:
        return None, None
    if sums.cost_n and base.cost_n:  # both sides reported what their drafts cost
        return (base.cost_sum / base.cost_n) - (sums.cost_sum / sums.cost_n), None
    mine, theirs = version_rates(catalog, version), base_rates(catalog, version)
    if isinstance(mine, TokenRates) and isinstance(theirs, TokenRates) and _same(mine, theirs):
        return 0.0, None  # the same rates: the same price per draft, whatever its tokens
    unknown = next((r.reason for r in (theirs, mine) if isinstance(r, Unpriced)), None)
    return None, (
        "ROI cannot be computed: the price difference per draft is unknown: "
        + (unknown or "the base model and the version are billed at different rates, and the drafts report no "
           "cost_usd and no token counts to apply them to")
        + ". Send cost_usd with each draft's feedback."
    )  # fmt: skip


def _same(a: TokenRates, b: TokenRates) -> bool:
    return (a.input_usd_per_1m, a.output_usd_per_1m, a.long_prompt) == (
        b.input_usd_per_1m, b.output_usd_per_1m, b.long_prompt,
    )  # fmt: skip


def _payback(training_usd: float | None, net: float | None, daily: float) -> tuple[float | None, str | None]:
    if net is None:
        return None, None
    if training_usd is None:
        return None, "payback unknown: the catalog has no price for the training job, so its cost is unknown."
    if daily == 0:
        return None, f"no payback: the version served no drafts in the last {RECENT_DAYS} days."
    if net <= 0:
        return None, "no payback: the version's net benefit per day is not positive."
    return training_usd / net, None


# Series and notes ----------------------------------------------------------------------------------------


def _days(span: Span, seen: list[date]) -> list[date]:
    first = span.start or min(seen, default=span.end)
    return [first + timedelta(days=n) for n in range((span.end - first).days + 1)]


def _weekly(daily: list[CostPoint]) -> list[CostPoint]:
    weeks: dict[date, tuple[float, float]] = {}
    for point in daily:
        monday = point.start - timedelta(days=point.start.weekday())
        training, inference = weeks.get(monday, (0.0, 0.0))
        weeks[monday] = (training + point.training_usd, inference + point.inference_usd)
    return [CostPoint(start=week, training_usd=_rounded(t), inference_usd=i) for week, (t, i) in sorted(weeks.items())]


def _notes(training: list[CostRow], unpriced: int, settings: Settings) -> list[str]:
    notes = []
    if any(r.estimated for r in training):
        notes.append(
            "Training costs marked (est.) are the catalog's estimates at launch: the providers reported no actual cost."
        )
    if unpriced:
        notes.append(
            f"{unpriced:,} draft(s) reported no cost_usd; feedback carries no token counts, so their cost is unknown "
            "and left out of the inference total."
        )
    notes.append(
        f"An accepted draft is valued at {settings.minutes_saved_per_accepted_draft:g} minute(s) saved x "
        f"${settings.cost_per_minute_usd:,.2f} a minute (FINETUNE_MINUTES_SAVED_PER_ACCEPTED_DRAFT, "
        "FINETUNE_COST_PER_MINUTE_USD)."
    )
    return notes


def _rounded(usd: float) -> float:
    """To 1/100 of a cent, as the catalog rounds its estimates."""
    return round(usd, 4)


__all__ = [
    "RECENT_DAYS",
    "CostPoint",
    "CostRow",
    "CostSummary",
    "Roi",
    "accepted_draft_value",
    "cost_summary",
    "job_cost",
]
