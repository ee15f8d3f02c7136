"""A seeded world for the weekly digest: nine weeks of feedback for three agents, a regression, jobs, alias moves,
a canary, an experiment, a pending approval and a dataset to retrain from.

Days are in Europe/Berlin; the clock reads Wednesday 2026-01-21, so the last full week is 2026-W03 (12 to 18
January). `support` moves to `support:v2` on the Monday of that week and users start deleting far more of its
drafts (an acceptance drop the regression check raises); `sales` is steady, with two templates under test;
`billing` runs a canary that no experiment measures. Two jobs finish in the week (one succeeded, one failed),
`support@production` is deployed to v2 and `sales@production` deployed and rolled back.
"""

from __future__ import annotations

import random
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta

from core import analytics, registry
from core.data import datasets, feedback
from core.data.datasets import DatasetFilters, Recipe
from core.evaluation import create_experiment
from core.platform.actors import SCHEDULER, Actor
from core.platform.store import Store
from core.platform.timeutil import iso
from core.services import Services, build_services
from core.vocabulary import Face, Role

TZ = "Europe/Berlin"
NOW = datetime(2026, 1, 21, 10, 0, tzinfo=UTC)  # a Wednesday, in 2026-W04
WEEK = "2026-W03"
MONDAY = date(2026, 1, 12)
FIRST_DAY = date(2025, 11, 17)  # nine weeks before the digest's week ends
LAST_DAY = date(2026, 1, 20)
BUILT_BEFORE = date(2026, 1, 5)  # support's dataset is built from the feedback before this day
ANN = Actor("ann", Face.CLI, role=Role.ADMIN)
FILLER = "Let me analyze this."
HEDGE = "I think maybe"
ADDITION = "Our refund policy allows returns within 30 days."
WORDS = (
    "your", "order", "ships", "within", "two", "business", "days", "and", "tracking", "updates", "arrive", "by",
    "email", "each", "morning", "while", "the", "courier", "confirms", "delivery", "windows", "for", "every",
    "parcel", "in", "the", "region",
)  # fmt: skip


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def moment(day: date, rng: random.Random) -> str:
    local = datetime.combine(day, time(8), tzinfo=zoneinfo.ZoneInfo(TZ)) + timedelta(seconds=rng.randint(0, 36_000))
    return iso(local)


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 13))).capitalize() + "."


def events(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    made: list[dict] = []
    day = FIRST_DAY
    while day <= LAST_DAY:
        for agent in ("support", "sales", "billing"):
            for number in range(rng.randint(10, 14)):
                made.append(_event(rng, agent, day, number))
        day += timedelta(days=1)
    return made


def _event(rng: random.Random, agent: str, day: date, number: int) -> dict:
    new = day >= MONDAY
    sentences = [sentence(rng) for _ in range(rng.randint(3, 5))]
    draft = " ".join(sentences)
    event = {
        "id": f"{agent}-{day}-{number}", "agent": agent, "prompt": "Where is my parcel?", "created_at": moment(day, rng),
        "latency_ms": round(rng.gauss(900, 100), 1), "cost_usd": round(rng.uniform(0.001, 0.003), 6),
    }  # fmt: skip
    if agent == "support":
        event["model_version"] = "support:v2" if new else "support:v1"
        if rng.random() < (0.35 if new else 0.75):
            return event | {"output": draft, "rating": rng.choice([4, 5])}
        opener = (FILLER + " " if rng.random() < 0.9 else "") + (HEDGE + " " if rng.random() < 0.5 else "")
        kept = sentences[: len(sentences) // 2] if new else sentences[:-1]
        final = " ".join(kept) + (" " + ADDITION if rng.random() < 0.4 else "")
        return event | {"output": opener + draft, "final": final, "rating": rng.choice([2, 3])}
    if agent == "sales":
        event["template"] = rng.choice(["s-a", "s-b"])
        if rng.random() < 0.6:
            return event | {"output": draft, "rating": 5}
        return event | {"output": draft, "final": " ".join(sentences[:-1]) + " Happy to set up a call."}
    event["model_version"] = "billing:v1"
    if rng.random() < 0.8:
        return event | {"output": draft}
    return event | {"output": draft, "final": " ".join(sentences[1:])}


def build_world(services: Services) -> None:
    """Everything the digest of 2026-W03 reads, written through the core (jobs straight into their table)."""
    store, clock = services.store, services.clock
    assert isinstance(clock, Clock)
    everything = events()
    cut = iso(datetime.combine(BUILT_BEFORE, time(0), tzinfo=zoneinfo.ZoneInfo(TZ)))
    early = [e for e in everything if e["created_at"] < cut]  # the events come in day order
    feedback.ingest_batch(store, early, actor=ANN)
    version = datasets.build_dataset(
        store, name="support", actor=ANN, recipe=Recipe(filters=DatasetFilters(agents=["support"]))
    )
    feedback.ingest_batch(store, everything[len(early) :], actor=ANN)
    analytics.roll_up(store, timezone=TZ)
    analytics.mine_patterns(store)
    analytics.check_regressions(
        store, rules=analytics.RegressionRules(), as_of=MONDAY + timedelta(days=7)
    )  # raises support's acceptance drop
    _jobs(store, version.id)
    _registry(services)
    with store.write() as db:  # the world's own notifications went out long ago
        db.execute("UPDATE outbox SET status = 'delivered', delivered_at = created_at")


def _jobs(store: Store, dataset_version: str) -> None:
    rows = [
        ("job_ok", "succeeded", "2026-01-13T09:00:00.000000Z", "2026-01-14T16:30:00.000000Z", 4.2, "ft:support:2", None),
        ("job_bad", "failed", "2026-01-15T10:00:00.000000Z", "2026-01-15T10:45:00.000000Z", 1.1, None,
         "training file rejected"),
        ("job_old", "succeeded", "2025-12-01T10:00:00.000000Z", "2025-12-01T12:00:00.000000Z", 3.0, "ft:support:1",
         None),
    ]  # fmt: skip
    with store.write() as db:
        for job_id, status, created, finished, cost, model, error in rows:
            db.execute(
                "INSERT INTO jobs (id, provider, provider_job_id, dataset_version_id, base_model, status,"
                " estimated_cost_usd, model_id, error, requested_by, created_at, updated_at, finished_at)"
                " VALUES (?, 'openai', ?, ?, 'gpt-4.1-mini-2025-04-14', ?, ?, ?, ?, 'ann', ?, ?, ?)",
                (job_id, f"ftjob-{job_id}", dataset_version, status, cost, model, error, created, finished, finished),
            )


def _registry(services: Services) -> None:
    clock = services.clock
    assert isinstance(clock, Clock)
    direct = build_services(
        services.settings.model_copy(update={"protected_aliases": []}), store=services.store, clock=clock
    )

    def at(text: str) -> None:
        clock.now = datetime.fromisoformat(text).replace(tzinfo=UTC)

    for name, count in (("support", 2), ("sales", 2), ("billing", 2)):
        for number in range(1, count + 1):
            at(f"2025-12-0{number}T10:00:00")
            with services.store.write():
                registry.register_version(
                    services.store, name=name, provider="openai", provider_model_id=f"ft:{name}:{number}",
                    job_id="job_ok" if (name, number) == ("support", 2) else None, dataset_version_id=None,
                    base_model="gpt-4.1-mini-2025-04-14", metrics={}, cost_usd=None, actor=SCHEDULER, reason="trained",
                    now=iso(clock()),
                )  # fmt: skip
    at("2025-12-03T10:00:00")
    for name in ("support", "sales", "billing"):
        registry.request_deploy(direct, actor=ANN, name=name, version=1, alias="production")
    at("2026-01-12T09:15:00")
    registry.request_deploy(direct, actor=ANN, name="support", version=2, alias="production")
    at("2026-01-13T11:00:00")
    registry.request_deploy(direct, actor=ANN, name="sales", version=2, alias="production")
    at("2026-01-15T08:30:00")
    registry.rollback(direct, actor=ANN, name="sales", alias="production", reason="quotes came out wrong")
    at("2026-01-14T12:00:00")
    registry.request_deploy(direct, actor=ANN, name="billing", version=2, alias="production", canary_share=20)
    at("2026-01-16T12:00:00")
    create_experiment(direct, actor=ANN, name="sales", templates=["s-a", "s-b"], split=50)
    clock.now = NOW
    registry.request_deploy(services, actor=ANN, name="billing", version=2, alias="production")  # waits: approval
