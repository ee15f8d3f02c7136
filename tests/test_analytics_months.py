"""Four months of synthetic feedback for four agents, through the real faces, as `finetune serve` would see them.

The world (seeded; days in Europe/Berlin, whose clocks go forward on day 83):

- `support`: steady until `support:v2` starts serving on day 100, after which
  its mean acceptance truly drops by about 15 points; users delete "Let me
  analyze this." from nine in ten of the drafts they edit;
- `sales`: acceptance drifts down slowly (a few points over four months);
  users add "Best regards," and their name to most drafts they edit;
- `billing`: only fluctuates, loudly from day to day around the same mean,
  and changes version on day 90 without any effect;
- `onboarding`: little traffic, drifting slowly up.

Every agent sees less traffic at weekends. The first three months go in as a
JSONL file through `finetune data ingest`; each later day's feedback arrives
as an application's batch (the ingest behind POST /v1/feedback), and each morning the scheduler's jobs run as
serve runs them (`update_analytics`, then `check_regressions` at 06:00 local),
with the outbox delivered to a local Slack. What must come out: exactly one
regression alert, for `support`, attributed to `support:v2` from the day it
started, posted once with its evidence and a chart; none for the fluctuating
or drifting agents; the planted edit patterns on top for their agents with the
right category and suggestion; and `finetune analytics agents` showing the
numbers of the core report.
"""

from __future__ import annotations

import json
import math
import random
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta

import pytest
from slack_sdk import WebClient

import bot.cli
from bot.invoke import app_actor
from bot.slack.delivery import ChannelPacer, deliver_due
from core import analytics
from core.data import feedback
from core.platform.scheduler import REGRESSION_HOUR, check_regressions, update_analytics
from core.platform.store import open_store
from core.services import build_services
from core.vocabulary import AlertKind
from tests.conftest import BOT_TOKEN, make_settings, serve_fake_slack

TZ = "Europe/Berlin"
START = date(2026, 1, 5)  # a Monday
DAYS = 120
CHANGE_DAY = 100  # support:v2 starts serving
BILLING_CHANGE_DAY = 90  # billing:v2 starts serving, to no effect
FIRST_CHECK = CHANGE_DAY - 8  # the file holds everything before; later days arrive one by one
CHANNEL = "CALERTS"
FILLER = "Let me analyze this."
SIGNERS = ("Anna", "Ben", "Chloe", "Dev", "Eva")
WORDS = (
    "your", "order", "ships", "within", "two", "business", "days", "and", "tracking", "updates", "arrive", "by",
    "email", "each", "morning", "while", "the", "courier", "confirms", "delivery", "windows", "for", "every",
    "parcel", "in", "the", "region", "plan", "invoice", "account", "renewal", "discount", "team", "support",
)  # fmt: skip


# The world ----------------------------------------------------------------------------------------------------


def day(index: int) -> date:
    return START + timedelta(days=index)


def _sentences(rng: random.Random, count: int) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(7, 12))).capitalize() + "." for _ in range(count)]


def _moment(rng: random.Random, index: int) -> str:
    """A time in the local working day of `index` (some early and late), in UTC."""
    local = datetime.combine(day(index), time(0), tzinfo=zoneinfo.ZoneInfo(TZ))
    seconds = rng.choice([rng.randint(8 * 3600, 19 * 3600), rng.randint(0, 3600), rng.randint(82_800, 86_399)])
    return (local + timedelta(seconds=seconds)).astimezone(UTC).isoformat()


def _event(rng: random.Random, agent: str, index: int, number: int, version: str, intent: str) -> dict:
    return {
        "id": f"{agent}-{index}-{number}",
        "agent": agent,
        "intent": intent,
        "template": f"{agent}-main",
        "model_version": version,
        "prompt": "Can you help me with my order?",
        "latency_ms": round(max(80.0, rng.gauss(900, 120)), 1),
        "cost_usd": round(rng.uniform(0.001, 0.003), 6),
        "created_at": _moment(rng, index),
    }


def _edited(draft_sentences: list[str], cut: int) -> str:
    return " ".join(draft_sentences[: len(draft_sentences) - cut])


def support(rng: random.Random, index: int, number: int) -> dict:
    version = "support:v1" if index < CHANGE_DAY else "support:v2"
    event = _event(rng, "support", index, number, version, rng.choice(["refund", "shipping", "account"]))
    body = _sentences(rng, 5)
    unedited = 0.55 if version == "support:v1" else 0.35
    if rng.random() < unedited:
        event.update(output=(FILLER + " " if rng.random() < 0.04 else "") + " ".join(body), rating=rng.choice([4, 5]))
        return event
    filler = rng.random() < 0.9
    event["output"] = (FILLER + " " if filler else "") + " ".join(body)
    event["final"] = _edited(body, 1 if version == "support:v1" else 2)
    event["rating"] = rng.choice([2, 3, 4])
    return event


def sales(rng: random.Random, index: int, number: int) -> dict:
    event = _event(rng, "sales", index, number, "sales:v1", rng.choice(["quote", "demo"]))
    body = _sentences(rng, 4)
    event["output"] = " ".join(body)
    if rng.random() < 0.62 - 0.0008 * index:  # drifts down slowly: about four points over four months
        return event
    final = _edited(body, 1)
    if rng.random() < 0.75:
        final += f"\n\nBest regards,\n{rng.choice(SIGNERS)}"
    event["final"] = final
    return event


def billing(rng: random.Random, index: int, number: int, *, unedited: float) -> dict:
    version = "billing:v1" if index < BILLING_CHANGE_DAY else "billing:v2"
    event = _event(rng, "billing", index, number, version, "invoice")
    body = _sentences(rng, 3)
    event["output"] = " ".join(body)
    if rng.random() >= unedited:
        event["final"] = _edited(body, 1)
    return event


def onboarding(rng: random.Random, index: int, number: int) -> dict:
    event = _event(rng, "onboarding", index, number, "onboarding:v1", "setup")
    body = _sentences(rng, 3)
    event["output"] = " ".join(body)
    if rng.random() >= 0.5 + 0.001 * index:  # drifts up slowly
        event["final"] = _edited(body, 1)
    return event


def volume(rng: random.Random, index: int, weekday_volume: int) -> int:
    weekend = day(index).weekday() >= 5
    return max(1, round(rng.gauss(weekday_volume * (0.35 if weekend else 1.0), weekday_volume * 0.1)))


def events_of_day(index: int) -> list[dict]:
    rng = random.Random(f"day-{index}")
    found = [support(rng, index, n) for n in range(volume(rng, index, 30))]
    found += [sales(rng, index, n) for n in range(volume(rng, index, 26))]
    noisy = min(0.95, max(0.05, 0.6 + rng.gauss(0, 0.12)))  # billing's day: loud, around the same mean
    found += [billing(rng, index, n, unedited=noisy) for n in range(volume(rng, index, 22))]
    found += [onboarding(rng, index, n) for n in range(volume(rng, index, 6))]
    return found


# Running it as serve would ---------------------------------------------------------------------------------------


def morning(index: int) -> datetime:
    """The regression check's moment on day `index`: 06:00 in FINETUNE_TIMEZONE."""
    return datetime.combine(day(index), time(REGRESSION_HOUR), tzinfo=zoneinfo.ZoneInfo(TZ)).astimezone(UTC)


@pytest.fixture(scope="module")
def months(tmp_path_factory):
    """Ingest, check and deliver day by day; yields what the world left behind."""
    tmp = tmp_path_factory.mktemp("months")
    patch = pytest.MonkeyPatch()
    settings = make_settings(tmp, timezone=TZ, slack_channel=CHANNEL)
    patch.setenv("FINETUNE_DATA_DIR", str(settings.data_dir))
    patch.setenv("FINETUNE_TIMEZONE", TZ)
    clock = {"now": morning(FIRST_CHECK)}
    services = build_services(settings, store=open_store(settings.db_path), clock=lambda: clock["now"])
    real_build = bot.cli.build_services
    patch.setattr(bot.cli, "build_services", lambda s: real_build(s, clock=lambda: clock["now"]))
    with serve_fake_slack() as slack:
        client, pacer = WebClient(token=BOT_TOKEN, base_url=slack.api_url), ChannelPacer(per_second=1000, burst=1000)
        ingest(tmp / "history.jsonl", [e for index in range(FIRST_CHECK) for e in events_of_day(index)])
        app = app_actor(settings, "shop")
        runs = []
        for index in range(FIRST_CHECK, DAYS + 1):
            clock["now"] = morning(index)
            if day(index).weekday() == 0 or index == DAYS:  # every five minutes in serve; weekly is enough here
                update_analytics(services)
            check_regressions(services)
            runs.append(services.store.query("SELECT detail FROM scheduler_runs WHERE job_id = 'regressions'")[0])
            deliver_due(services.store, client, default_channel=CHANNEL, pacer=pacer)
            if index < DAYS:  # the day's outcomes, as an application posts them to /v1/feedback
                feedback.ingest_batch(services.store, events_of_day(index), actor=app, source="app")
        yield {"services": services, "slack": slack, "runs": runs, "tmp": tmp}
    services.close()
    patch.undo()


def ingest(path, events: list[dict]) -> None:
    """`finetune data ingest FILE`, in process, as the terminal runs it."""
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    with pytest.raises(SystemExit) as exited:
        bot.cli.main(["data", "ingest", str(path), "--json"])
    assert exited.value.code == 0


# What must come out ----------------------------------------------------------------------------------------------


def test_the_world_is_the_one_described(months):
    store = months["services"].store
    total = store.scalar("SELECT count(*) FROM feedback")
    assert 6_000 < total < 20_000
    assert store.scalar("SELECT total(events) FROM analytics_rollups") == total  # every event rolled up
    per_weekday: dict[int, list[float]] = {}
    for row in store.query("SELECT day, total(events) AS n FROM analytics_rollups GROUP BY day"):
        per_weekday.setdefault(date.fromisoformat(row["day"]).weekday(), []).append(row["n"])
    mean = {weekday: sum(counts) / len(counts) for weekday, counts in per_weekday.items()}
    assert min(mean[d] for d in range(5)) > 2 * max(mean[d] for d in (5, 6))  # quieter weekends


def test_exactly_one_alert_for_the_agent_that_dropped_attributed_to_its_new_version(months):
    services = months["services"]
    alerts = analytics.all_alerts(services.store)
    assert [(a.kind, a.agent) for a in alerts] == [(AlertKind.ACCEPTANCE_DROP, "support")]
    [alert] = alerts
    cause = alert.evidence["attribution"]
    assert (cause["dimension"], cause["value"]) == ("model_version", "support:v2")
    assert cause["since"] == day(CHANGE_DAY).isoformat() and cause["baseline_share"] == 0
    baseline, recent = alert.evidence["baseline_value"], alert.evidence["measurement"]["recent_value"]
    assert baseline - recent >= 0.10 and alert.evidence["measurement"]["test"]["p_value"] < 0.05
    assert "support:v2" in alert.message and alert.resolved_at is None
    raised_on = [i for i, run in enumerate(months["runs"]) if run["detail"].startswith("1 raised")]
    assert len(raised_on) == 1  # raised once; every later morning leaves it open
    assert CHANGE_DAY + 3 <= FIRST_CHECK + raised_on[0] <= CHANGE_DAY + 7  # within the week the drop began


def test_the_true_drop_is_about_fifteen_points(months):
    store = months["services"].store
    before = analytics.acceptance_report(store, window="30d", as_of=day(CHANGE_DAY - 1), agent="support").rows[0]
    after = analytics.acceptance_report(store, window="7d", as_of=day(DAYS - 1), agent="support").rows[0]
    assert (before.acceptance or 0) - (after.acceptance or 0) == pytest.approx(0.15, abs=0.04)


def test_the_fluctuating_and_drifting_agents_raise_nothing_though_they_move(months):
    store = months["services"].store
    daily = [
        row["acceptance_sum"] / row["acceptance_n"]
        for row in store.query(
            "SELECT total(acceptance_sum) AS acceptance_sum, total(acceptance_n) AS acceptance_n FROM"
            " analytics_rollups WHERE agent = 'billing' GROUP BY day"
        )
    ]
    mean = sum(daily) / len(daily)
    spread = math.sqrt(sum((v - mean) ** 2 for v in daily) / (len(daily) - 1))
    assert spread > 0.03  # it really fluctuates from day to day
    early = analytics.acceptance_report(store, window="30d", as_of=day(29), agent="sales").rows[0]
    late = analytics.acceptance_report(store, window="30d", as_of=day(DAYS - 1), agent="sales").rows[0]
    assert 0.01 < (early.acceptance or 0) - (late.acceptance or 0) < 0.08  # and sales drifts
    alerted = {alert.agent for alert in analytics.all_alerts(store)}
    assert not alerted & {"billing", "sales", "onboarding"}


def test_the_alert_reached_slack_once_with_its_evidence_and_a_chart(months):
    slack = months["slack"]
    posts = [p for p in slack.method_calls("chat.postMessage") if "Regression" in p.get("text", "")]
    assert len(posts) == 1
    [post] = posts
    assert post["channel"] == CHANNEL and "`support`" in post["text"] and "support:v2" in post["text"]
    shown = json.dumps(post["blocks"])
    for fact in ("Recent", "Baseline", "Test", "Attributed to", "Welch", f"since {day(CHANGE_DAY)}"):
        assert fact in shown, fact
    [posted] = [m for m in slack.posted if "Regression" in m.get("text", "")]
    completed = slack.method_calls("files.completeUploadExternal")
    assert len(completed) == 1 and completed[0].get("thread_ts") == posted["ts"]
    [upload] = [c.data for c in slack.calls if c.path.startswith("/upload/")]
    assert upload["png"] and upload["size"] > 5_000
    assert not slack.method_calls("chat.update")  # nothing recovered, nothing edited


def test_the_planted_edit_patterns_come_out_on_top(months):
    found = analytics.improvement_opportunities(months["services"], limit=5)
    tops = {entry.agent: entry.opportunities[0] for entry in found.agents if entry.opportunities}
    filler, signoff = tops["support"].pattern, tops["sales"].pattern
    assert (filler.phrase, filler.kind, filler.category) == ("let me analyze this", "deleted", "filler removed")
    assert filler.frequency == pytest.approx(0.9, abs=0.04) and (filler.lift or 0) > 5
    assert filler.suggestion.endswith("remove it from the prompt")
    assert [a.action for a in tops["support"].actions] == ["prompt_experiment", "dpo_pairs"]
    assert (signoff.phrase, signoff.kind, signoff.category) == ("best regards", "added", "tone")
    assert signoff.frequency == pytest.approx(0.75, abs=0.04)
    assert signoff.suggestion.endswith("set the tone users want in the prompt")
    assert "Best regards" in signoff.example.added
    assert all(not o.pattern.phrase.startswith("let me") for e in found.agents if e.agent != "support"
               for o in e.opportunities)  # fmt: skip


def test_the_cli_shows_the_numbers_of_the_core_report(months, capsys, monkeypatch):
    services = months["services"]
    monkeypatch.setenv("FINETUNE_DATA_DIR", str(services.settings.data_dir))  # each test starts without settings
    monkeypatch.setenv("FINETUNE_TIMEZONE", TZ)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        bot.cli.main(["analytics", "agents", "--window", "30d", "--json"])
    assert exited.value.code == 0
    shown = json.loads(capsys.readouterr().out)
    core = analytics.acceptance_report(services.store, window="30d", as_of=day(DAYS))
    assert shown == json.loads(core.model_dump_json())
    assert [row["agent"] for row in shown["rows"]] == ["support", "sales", "billing", "onboarding"]
    with pytest.raises(SystemExit):
        bot.cli.main(["analytics", "agents"])
    table = capsys.readouterr().out
    support = next(row for row in core.rows if row.agent == "support")
    assert f"{support.acceptance:.1%}" in table and f"{support.events:,}" in table
