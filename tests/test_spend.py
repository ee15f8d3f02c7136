"""Spend limits: a monthly budget for everyone, a daily limit per person; launches past either wait for approval."""

import json
from datetime import UTC, datetime

import pytest

from bot.slack.blocks import render_outcome
from bot.slack.listeners.commands import run_slack_text
from core.platform import spend
from core.platform.actors import Actor
from core.platform.identity import Identity, actor_for
from core.services import build_services
from core.training import db as training_db
from core.training import jobs
from core.vocabulary import Face, IdentityKind, JobState, Method, Provider, Role
from tests.conftest import make_settings
from tests.fake_provider import FakeProvider

MODEL = "gpt-4o-mini-2024-07-18"
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
ALICE = Actor(id="UALICE", face=Face.SLACK, role=Role.OPERATOR)


@pytest.fixture
def fake():
    return FakeProvider()


def services(store, settings, fake, now=NOW):
    registry = {Provider.OPENAI: lambda s: fake}
    return build_services(settings, store=store, providers=registry, clock=lambda: now)


def spent_before(store, version, *, usd, by="slack:UALICE", at="2026-11-20T09:00:00.000000Z", status=JobState.RUNNING,
                 provider_job_id="ftjob-old"):  # fmt: skip
    """A job launched earlier, as the jobs table keeps it."""
    job_id = f"job_{usd}_{status}_{at[:10]}_{by}"
    with store.write():
        training_db.insert_job(
            store, job_id=job_id, provider=Provider.OPENAI, dataset_version_id=version.id, base_model=MODEL,
            method=Method.SUPERVISED, hyperparameters={}, status=status, estimated_cost_usd=usd,
            idempotency_key=job_id, requested_by=by, requested_by_identity=by, requested_via=Face.SLACK, now=at,
            next_poll_at=at,
        )  # fmt: skip
        store.db.execute("UPDATE jobs SET provider_job_id = ? WHERE id = ?", (provider_job_id, job_id))


def launch(store, settings, fake, version, actor=ALICE, now=NOW):
    return jobs.launch_job(
        services(store, settings, fake, now), dataset_version=version.id, provider="openai", base_model=MODEL,
        actor=actor, hyperparameters={"epochs": 1},
    )  # fmt: skip


def test_a_launch_past_the_monthly_budget_waits_and_says_why(tmp_path, store, fake, version):
    settings = make_settings(tmp_path, monthly_budget_usd=50)
    spent_before(store, version, usd=50, by="slack:USOMEONE")
    result = launch(store, settings, fake, version)
    assert result.job.status is JobState.PENDING_APPROVAL and not fake.launches
    reasons = " ".join(result.approval.payload["reasons"])
    assert "the monthly budget" in reasons and "FINETUNE_MONTHLY_BUDGET_USD=$50.00" in reasons
    assert "$50.00 launched this month" in reasons
    assert "FINETUNE_MONTHLY_BUDGET_USD" in store.scalar("SELECT text FROM outbox WHERE kind = 'approval_requested'")


def test_under_the_budget_a_small_launch_starts_at_once(tmp_path, store, fake, version):
    settings = make_settings(tmp_path, monthly_budget_usd=50)
    spent_before(store, version, usd=40)
    spent_before(store, version, usd=30, at="2026-10-31T23:59:00.000000Z")  # last month
    assert launch(store, settings, fake, version).approval is None and len(fake.launches) == 1


def test_what_never_reached_a_provider_costs_nothing(tmp_path, store, fake, version):
    settings = make_settings(tmp_path, monthly_budget_usd=50)
    spent_before(store, version, usd=100, status=JobState.CANCELLED, provider_job_id=None)  # rejected, withdrawn
    spent_before(store, version, usd=100, status=JobState.FAILED, provider_job_id=None)  # refused at submission
    spent_before(store, version, usd=100, status=JobState.PENDING_APPROVAL, provider_job_id=None)  # not launched yet
    assert spend.spent(store, since=spend.month_start(NOW, "UTC")) == 0
    assert launch(store, settings, fake, version).approval is None


def test_the_daily_limit_counts_a_person_across_faces(tmp_path, store, fake, version):
    settings = make_settings(
        tmp_path, user_daily_limit_usd=5, people="alice=slack:UALICE,os:alice", operators=["UALICE", "UBOB"]
    )
    spent_before(store, version, usd=5, by="os:alice")  # alice, at the terminal, this morning
    spent_before(store, version, usd=5, by="slack:UALICE", at="2026-11-19T22:00:00.000000Z")  # yesterday
    alice = actor_for(settings, Identity(IdentityKind.SLACK, "UALICE"), face=Face.SLACK)
    reasons = " ".join(launch(store, settings, fake, version, actor=alice).approval.payload["reasons"])
    assert "the daily limit per person" in reasons and "$5.00 launched by this person today" in reasons
    assert "FINETUNE_USER_DAILY_LIMIT_USD=$5.00" in reasons
    bob = actor_for(settings, Identity(IdentityKind.SLACK, "UBOB"), face=Face.SLACK)
    assert launch(store, settings, fake, version, actor=bob).approval is None  # bob's day is his own


def test_periods_follow_the_team_time_zone():
    evening_in_new_york = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # still November 30 there
    assert spend.month_start(evening_in_new_york, "America/New_York").isoformat() == "2026-11-01T00:00:00-04:00"
    assert spend.day_start(evening_in_new_york, "America/New_York").isoformat() == "2026-11-30T00:00:00-05:00"
    assert spend.month_start(evening_in_new_york, "UTC").isoformat() == "2026-12-01T00:00:00+00:00"


def test_no_limits_set_means_only_the_auto_approve_amount_counts(tmp_path, store, fake, version):
    spent_before(store, version, usd=10_000)
    assert launch(store, make_settings(tmp_path), fake, version).approval is None


def test_status_shows_this_months_spend_against_the_budget(cli, monkeypatch, tmp_path, store, version):
    spent_before(store, version, usd=12.5, at=_this_month())
    monkeypatch.setenv("FINETUNE_MONTHLY_BUDGET_USD", "100")
    code, out, _ = cli("status", "--json")
    assert code == 0
    assert json.loads(out)["spend"] | {"month_start": None} == {
        "month_usd": 12.5,
        "monthly_budget_usd": 100.0,
        "month_start": None,
    }
    code, out, _ = cli("status")
    assert code == 0 and "Spend this month" in out and "$12.50 of the $100.00 budget" in out
    settings = make_settings(tmp_path, monthly_budget_usd=100)
    message = render_outcome(run_slack_text(build_services(settings, store=store), user_id="U1", text="status"))
    assert "Spend this month: $12.50 of the $100.00 budget" in message.text


def _this_month() -> str:
    from core.platform.timeutil import iso, utcnow

    return iso(utcnow())
