"""Analytics on seeded synthetic feedback: rollups, acceptance, edit patterns and regression alerts.

Four months of events for three agents, with weekday cycles: `support`, whose
acceptance truly drops when `support:v2` starts serving on day 100 (and whose
edited drafts carry planted phrases users delete and add); `sales`, which only
fluctuates (and changes version without any effect); and `billing`, whose
latency doubles over the last ten days. Days are in America/New_York, so a
daylight-saving change falls inside the data. The events go through the real
ingest, in shuffled chunks (so later chunks bring late events for old days),
with the rollups and the mining run after each chunk.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
import zoneinfo
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import analytics
from core.analytics import db as analytics_db
from core.analytics import patterns, rollups
from core.analytics.acceptance import Slice, Span
from core.data import feedback
from core.errors import InvalidInput, NotFound
from core.evaluation import stats
from core.platform import outbox
from core.platform.actors import cli_actor
from core.platform.events import RegressionAlert, parse_event
from core.platform.scheduler import check_regressions, update_analytics
from core.platform.store import open_store
from core.platform.timeutil import parse_iso
from core.vocabulary import AlertKind
from tests.conftest import make_settings, svc

TZ = "America/New_York"
START = date(2026, 1, 5)  # a Monday; clocks go forward on 2026-03-08 (day 62)
DAYS = 120
CHANGE_DAY = 100  # support:v2 starts serving
RECOVERY_DAYS = 15  # support back on v1 after the main period
FILLER = "Let me analyze this."
HEDGE = "I think maybe"
ADDITION = "Our refund policy allows returns within 30 days."
BODY = (
    "your", "order", "ships", "within", "two", "business", "days", "and", "tracking", "updates", "arrive", "by",
    "email", "each", "morning", "while", "the", "courier", "confirms", "delivery", "windows", "for", "every",
    "parcel", "in", "the", "region",
)  # fmt: skip


# The synthetic world ---------------------------------------------------------------------------------------------


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(BODY) for _ in range(rng.randint(8, 14))).capitalize() + "."


def _moment(rng: random.Random, day: int) -> str:
    local = datetime.combine(START + timedelta(days=day), time(0), tzinfo=zoneinfo.ZoneInfo(TZ))
    seconds = rng.choice([rng.randint(0, 86_399), rng.randint(0, 600), rng.randint(85_800, 86_399)])
    return (local + timedelta(seconds=seconds)).astimezone(UTC).isoformat()


def _support(rng: random.Random, day: int, number: int, *, version: str) -> dict:
    intent = rng.choices(["refund", "shipping", "account", "billing"], weights=[3, 3, 2, 2])[0]
    unedited_share = (0.6 if version == "support:v1" else 0.25) - (0.2 if intent == "refund" else 0.0)
    sentences = [_sentence(rng) for _ in range(rng.randint(4, 6))]
    event = _event(rng, "support", day, number, version=version, intent=intent, template=rng.choice(["a", "b"]))
    if rng.random() < unedited_share:
        opener = FILLER + " " if rng.random() < 0.03 else ""
        event.update(output=opener + " ".join(sentences), rating=rng.choice([4, 5, "up"]))
        return event
    filler = rng.random() < 0.95
    hedge = rng.random() < 0.6
    kept = sentences[: len(sentences) - (1 if version == "support:v1" else len(sentences) // 2)]
    draft = (FILLER + " " if filler else "") + (HEDGE + " " if hedge else "") + " ".join(sentences)
    final = " ".join(kept) + (" " + ADDITION if rng.random() < 0.4 else "")
    event.update(output=draft, final=final, rating=rng.choice([1, 2, 3, "down"]))
    return event


def _sales(rng: random.Random, day: int, number: int, *, daily_noise: float) -> dict:
    weekday = (START + timedelta(days=day)).weekday()
    unedited_share = 0.55 + 0.15 * math.sin(2 * math.pi * weekday / 7) + daily_noise
    version = "sales:v1" if day < 60 else "sales:v2"
    sentences = [_sentence(rng) for _ in range(rng.randint(3, 6))]
    event = _event(rng, "sales", day, number, version=version, intent=rng.choice(["quote", "demo"]), template="s")
    event["output"] = " ".join(sentences)
    if rng.random() >= unedited_share:
        event["final"] = " ".join(sentences[: max(1, len(sentences) - rng.randint(1, 2))])
    return event


def _billing(rng: random.Random, day: int, number: int) -> dict:
    event = _event(rng, "billing", day, number, version="billing:v1", intent="invoice", template="b")
    event["output"] = _sentence(rng)
    event["latency_ms"] = rng.gauss(2400 if day >= DAYS - 10 else 1200, 150)
    return event


def _event(rng: random.Random, agent: str, day: int, number: int, *, version: str, intent: str, template: str) -> dict:
    return {
        "id": f"{agent}-{day}-{number}",
        "agent": agent,
        "intent": intent,
        "template": template,
        "model_version": version,
        "prompt": "Where is my parcel?",
        "latency_ms": max(50.0, rng.gauss(900, 120)),
        "cost_usd": round(rng.uniform(0.001, 0.003), 6),
        "created_at": _moment(rng, day),
    }


def _volume(rng: random.Random, day: int, weekday_volume: int) -> int:
    weekend = (START + timedelta(days=day)).weekday() >= 5
    return max(1, int(rng.gauss(weekday_volume * (0.45 if weekend else 1.0), 3)))


def world_events(first_day: int, last_day: int, *, seed: int, support_version=None) -> list[dict]:
    rng = random.Random(seed)
    events = []
    for day in range(first_day, last_day):
        version = support_version or ("support:v1" if day < CHANGE_DAY else "support:v2")
        events += [_support(rng, day, i, version=version) for i in range(_volume(rng, day, 45))]
        noise = rng.gauss(0, 0.05)
        events += [_sales(rng, day, i, daily_noise=noise) for i in range(_volume(rng, day, 40))]
        if day >= 60:
            events += [_billing(rng, day, i) for i in range(_volume(rng, day, 15))]
    return events


def ingest_in_chunks(store, events: list[dict], *, chunks: int, seed: int) -> None:
    """Shuffled, so each chunk brings events for days earlier chunks already rolled up; rollups and mining after each."""
    random.Random(seed).shuffle(events)
    size = -(-len(events) // chunks)
    for start in range(0, len(events), size):
        feedback.ingest_batch(store, events[start : start + size], actor=cli_actor(), redact=False)
        analytics.roll_up(store, timezone=TZ)
        analytics.mine_patterns(store, batch_rows=1_500)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    store = open_store(tmp_path_factory.mktemp("analytics") / "finetune.db")
    ingest_in_chunks(store, world_events(0, DAYS, seed=11), chunks=4, seed=12)
    yield store
    store.close()


def day(index: int) -> date:
    return START + timedelta(days=index)


# What the rollups must equal: a direct aggregate of feedback ----------------------------------------------------


def direct_rollups(store, timezone: str) -> dict[tuple, dict[str, float]]:
    tz = zoneinfo.ZoneInfo(timezone)
    groups: dict[tuple, dict[str, float]] = defaultdict(lambda: dict.fromkeys(analytics_db.MEASURES, 0.0))
    rows = store.query(
        "SELECT agent, model_version, intent, template, acceptance, edit_ops, rating, latency_ms, cost_usd, created_at"
        " FROM feedback"
    )
    for row in rows:
        local = parse_iso(row["created_at"]).astimezone(tz).date().isoformat()
        key = (row["agent"], local, row["model_version"] or "", row["intent"] or "", row["template"] or "")
        group, accepted, rating = groups[key], row["acceptance"], row["rating"]
        group["events"] += 1
        if accepted is not None:
            group["acceptance_n"] += 1
            group["acceptance_sum"] += accepted
            group["acceptance_sumsq"] += accepted**2
            group["unedited"] += accepted >= 1 and json.loads(row["edit_ops"] or "[]") == []
        if rating is not None:
            group["rated"] += 1
            group["rating_sum"] += rating
            group["thumbs_up"] += rating >= 4
            group["thumbs_down"] += rating <= 2
        for name, value in (("latency", row["latency_ms"]), ("cost", row["cost_usd"])):
            if value is not None:
                group[f"{name}_n"] += 1
                group[f"{name}_sum"] += value
    return dict(groups)


def stored_rollups(store) -> dict[tuple, dict[str, float]]:
    return {
        tuple(row[name] for name in analytics_db.DIMENSIONS): {name: row[name] for name in analytics_db.MEASURES}
        for row in analytics_db.rollup_snapshot(store)
    }


def assert_same_rollups(stored: dict, direct: dict) -> None:
    assert stored.keys() == direct.keys()
    for key, measures in direct.items():
        assert stored[key] == pytest.approx(measures, rel=1e-9, abs=1e-9), key


# 1. Daily rollups -------------------------------------------------------------------------------------------------


def test_rollups_equal_a_direct_aggregate_over_feedback(world):
    direct = direct_rollups(world, TZ)
    assert_same_rollups(stored_rollups(world), direct)
    assert {key[1] for key in direct} >= {day(61).isoformat(), day(62).isoformat()}  # across the DST change
    assert sum(m["events"] for m in direct.values()) == world.scalar("SELECT count(*) FROM feedback")


def test_incremental_rollups_equal_a_full_rebuild_and_a_rerun_adds_nothing(world):
    incremental = analytics_db.rollup_snapshot(world)
    again = analytics.roll_up(world, timezone=TZ)
    assert (again.rows_read, again.groups_written) == (0, 0)
    assert analytics_db.rollup_snapshot(world) == incremental
    rebuilt = analytics.rebuild_rollups(world, timezone=TZ)
    assert rebuilt.rebuilt and rebuilt.rows_read == world.scalar("SELECT count(*) FROM feedback")
    assert_same_rollups(stored_rollups(world), _as_measures(incremental))


def _as_measures(rows: list[dict]) -> dict[tuple, dict[str, float]]:
    return {
        tuple(row[name] for name in analytics_db.DIMENSIONS): {name: row[name] for name in analytics_db.MEASURES}
        for row in rows
    }


def test_a_race_with_another_run_counts_nothing_twice(world, monkeypatch):
    """A run whose watermark moved under it drops its batch: the other run counted those rows."""
    before = analytics_db.rollup_snapshot(world)
    extra = world_events(DAYS - 1, DAYS, seed=99)[:5]
    for event in extra:
        event["id"] = "race-" + event["id"]
    feedback.ingest_batch(world, extra, actor=cli_actor(), redact=False)
    real_aggregate = analytics_db.aggregate_feedback

    def aggregate_then_race(store, **kwargs):
        rows = real_aggregate(store, **kwargs)
        monkeypatch.setattr(analytics_db, "aggregate_feedback", real_aggregate)
        analytics.roll_up(store, timezone=TZ)  # the other run gets there first
        return rows

    monkeypatch.setattr(analytics_db, "aggregate_feedback", aggregate_then_race)
    raced = analytics.roll_up(world, timezone=TZ)
    assert raced.rows_read == 0
    assert sum(r["events"] for r in analytics_db.rollup_snapshot(world)) == sum(r["events"] for r in before) + 5
    assert_same_rollups(stored_rollups(world), direct_rollups(world, TZ))


def test_a_late_event_lands_in_its_old_day(world):
    late = _event(random.Random(3), "support", 5, 0, version="support:v1", intent="refund", template="a")
    late.update(id="late-1", output="A late draft.", created_at=_moment(random.Random(4), 5))
    local = parse_iso(late["created_at"]).astimezone(zoneinfo.ZoneInfo(TZ)).date().isoformat()
    key = ("support", local, "support:v1", "refund", "a")
    before = stored_rollups(world)[key]["events"]
    feedback.ingest_batch(world, [late], actor=cli_actor(), redact=False)
    assert analytics.roll_up(world, timezone=TZ).rows_read == 1
    assert stored_rollups(world)[key]["events"] == before + 1


def test_a_failed_run_writes_nothing_and_the_next_one_catches_up(world, monkeypatch):
    before, mark = analytics_db.rollup_snapshot(world), analytics_db.watermark(world, rollups.WATERMARK)
    extra = world_events(DAYS - 2, DAYS - 1, seed=98)[:3]
    for event in extra:
        event["id"] = "failed-" + event["id"]
    feedback.ingest_batch(world, extra, actor=cli_actor(), redact=False)
    real_fold = analytics_db.fold_into_rollups

    def fold_then_fail(store, rows):
        real_fold(store, rows)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(analytics_db, "fold_into_rollups", fold_then_fail)
    with pytest.raises(sqlite3.OperationalError):
        analytics.roll_up(world, timezone=TZ)
    assert analytics_db.rollup_snapshot(world) == before
    assert analytics_db.watermark(world, rollups.WATERMARK) == mark
    monkeypatch.undo()
    assert analytics.roll_up(world, timezone=TZ).rows_read == 3
    assert_same_rollups(stored_rollups(world), direct_rollups(world, TZ))


def test_another_time_zone_rebuilds_the_rollups_with_its_days(world):
    utc = analytics.roll_up(world, timezone="UTC")
    assert utc.rebuilt
    assert_same_rollups(stored_rollups(world), direct_rollups(world, "UTC"))
    assert analytics.roll_up(world, timezone=TZ).rebuilt
    assert_same_rollups(stored_rollups(world), direct_rollups(world, TZ))


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)),
    zone=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "America/St_Johns"]),
)
def test_the_local_day_in_sql_is_the_zone_s_calendar_day(moment, zone):
    sql = rollups.day_sql(zoneinfo.ZoneInfo(zone))
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with sqlite3.connect(":memory:") as conn:
        [(found,)] = conn.execute(f"SELECT {sql} FROM (SELECT ? AS created_at)", (stamp,)).fetchall()
    assert found == moment.astimezone(zoneinfo.ZoneInfo(zone)).date().isoformat()


def test_an_unknown_time_zone_is_refused_by_name(world):
    with pytest.raises(InvalidInput, match="Mars/Olympus") as refused:
        analytics.roll_up(world, timezone="Mars/Olympus")
    assert refused.value.ids["argument"] == "timezone" and "FINETUNE_TIMEZONE" in (refused.value.hint or "")


# 2. Acceptance analytics ----------------------------------------------------------------------------------------


def _feedback_days(store, agent: str, start: date, end: date) -> list[dict]:
    tz = zoneinfo.ZoneInfo(TZ)
    rows = store.query(
        "SELECT acceptance, edit_ops, rating, intent, model_version, created_at FROM feedback WHERE agent = ?", (agent,)
    )
    for row in rows:
        row["day"] = parse_iso(row["created_at"]).astimezone(tz).date()
    return [row for row in rows if start <= row["day"] <= end]


def test_acceptance_per_agent_over_each_window_matches_the_events(world):
    as_of = day(DAYS - 1)
    for window, days in (("7d", 7), ("30d", 30), ("90d", 90)):
        report = analytics.acceptance_report(world, window=window, as_of=as_of)
        support = next(row for row in report.rows if row.agent == "support")
        events = _feedback_days(world, "support", as_of - timedelta(days=days - 1), as_of)
        values = [e["acceptance"] for e in events]
        assert support.events == len(events)
        assert support.acceptance == pytest.approx(sum(values) / len(values))
        assert support.acceptance_interval is not None and support.trend is not None
        interval = stats_interval(values)
        assert (support.acceptance_interval.low, support.acceptance_interval.high) == pytest.approx(interval)
        assert support.unedited_share == pytest.approx(sum(v >= 1 for v in values) / len(values))
        rated = [e["rating"] for e in events if e["rating"] is not None]
        assert support.rated == len(rated) and support.rating == pytest.approx(sum(rated) / len(rated))
        assert support.thumbs_up == sum(r >= 4 for r in rated) and support.thumbs_down == sum(r <= 2 for r in rated)
        previous = _feedback_days(world, "support", as_of - timedelta(days=2 * days - 1), as_of - timedelta(days=days))
        before = sum(e["acceptance"] for e in previous) / len(previous)
        assert support.trend.previous_acceptance == pytest.approx(before)
        assert support.trend.change == pytest.approx(support.acceptance - before)
    everything = analytics.acceptance_report(world, window="all", as_of=as_of)
    assert all(row.trend is None for row in everything.rows)
    assert sum(row.events for row in everything.rows) == world.scalar(
        "SELECT total(events) FROM analytics_rollups WHERE day <= ?", (as_of.isoformat(),)
    )


def stats_interval(values: list[float]) -> tuple[float, float]:
    from scipy import stats as scipy_stats

    n, mean = len(values), sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    low, high = scipy_stats.t.interval(0.95, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return max(0.0, low), min(1.0, high)


def test_acceptance_per_version_shows_the_drop_and_the_trend_turns_down(world):
    report = analytics.acceptance_report(world, window="30d", as_of=day(DAYS - 1), by="model_version", agent="support")
    by_version = {row.value: row for row in report.rows}
    assert set(by_version) == {"support:v1", "support:v2"}
    assert (by_version["support:v1"].acceptance or 0) - (by_version["support:v2"].acceptance or 0) > 0.2
    week = analytics.acceptance_report(world, window="7d", as_of=day(CHANGE_DAY + 6), agent="support")
    trend = week.rows[0].trend
    assert trend is not None and (trend.change or 0) < -0.2


def test_best_and_worst_intents_need_the_minimum_volume(world):
    ranking = analytics.intent_ranking(world, agent="support", window="90d", as_of=day(CHANGE_DAY - 1), count=1)
    assert ranking.worst[0].value == "refund"
    assert ranking.best[0].value != "refund" and ranking.too_few == 0
    strict = analytics.intent_ranking(world, agent="support", window="7d", as_of=day(CHANGE_DAY - 1), min_events=10_000)
    assert strict.best == [] and strict.worst == [] and strict.too_few == 4


def test_comparing_two_periods_uses_the_stats_module_on_the_same_counts(world):
    before = Slice(agent="support", span=Span(start=day(70), end=day(CHANGE_DAY - 1)))
    after = Slice(agent="support", span=Span(start=day(CHANGE_DAY), end=day(DAYS - 1)))
    result = analytics.compare(world, baseline=before, candidate=after)
    sides = [_feedback_days(world, "support", s.span.start or START, s.span.end) for s in (before, after)]
    unedited = [sum(e["acceptance"] >= 1 and e["edit_ops"] == "[]" for e in side) for side in sides]
    expected = stats.compare_proportions(
        baseline_successes=unedited[0], baseline_trials=len(sides[0]),
        candidate_successes=unedited[1], candidate_trials=len(sides[1]),
    )  # fmt: skip
    assert result.unedited == expected
    daily = [_daily_means(side) for side in sides]
    assert _numbers(result.acceptance) == pytest.approx(_numbers(stats.compare_means(daily[0], daily[1])), rel=1e-9)
    thumbs = [([e["rating"] for e in side if e["rating"] is not None]) for side in sides]
    up = [sum(r >= 4 for r in side) for side in thumbs]
    both = [sum(r >= 4 or r <= 2 for r in side) for side in thumbs]
    assert result.thumbs_up == stats.compare_proportions(
        baseline_successes=up[0], baseline_trials=both[0], candidate_successes=up[1], candidate_trials=both[1]
    )
    assert result.acceptance is not None and result.thumbs_up is not None
    p_values = {"acceptance": result.acceptance.p_value, "unedited": expected.p_value}
    assert result.adjusted == stats.holm({**p_values, "thumbs_up": result.thumbs_up.p_value})
    assert result.acceptance.difference < -0.2 and result.acceptance.p_value < 1e-6


def _numbers(test) -> list[float]:
    """A test's numbers, flattened (sums taken in another order differ in the last bits)."""
    dumped = test.model_dump()
    return [*(v for k, v in dumped.items() if k != "interval"), *dumped["interval"].values()]


def _daily_means(events: list[dict]) -> list[float]:
    days: dict[date, list[float]] = defaultdict(list)
    for event in events:
        days[event["day"]].append(event["acceptance"])
    return [sum(v) / len(v) for _, v in sorted(days.items())]


def test_comparing_two_agents_names_a_side_without_feedback(world):
    span = Span(start=day(10), end=day(40))
    result = analytics.compare(
        world, baseline=Slice(agent="sales", span=span), candidate=Slice(agent="support", span=span)
    )
    assert result.baseline.agent == "sales" and result.candidate.events > 0
    with pytest.raises(NotFound, match="'nobody'") as missing:
        analytics.compare(world, baseline=Slice(agent="nobody", span=span), candidate=Slice(agent="support", span=span))
    assert "support" in (missing.value.hint or "")
    backwards = Span(start=day(40), end=day(10))
    with pytest.raises(InvalidInput, match="`candidate` starts on"):
        analytics.compare(
            world, baseline=Slice(agent="sales", span=span), candidate=Slice(agent="sales", span=backwards)
        )


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda s: analytics.acceptance_report(s, window="5d", as_of=day(1)), "window"),
        (lambda s: analytics.acceptance_report(s, window="7d", as_of=day(1), by="colour"), "by"),
        (lambda s: analytics.intent_ranking(s, agent="support", window="7d", as_of=day(1), min_events=0), "min_events"),
    ],
)
def test_bad_arguments_are_refused_by_name(world, call, argument):
    with pytest.raises(InvalidInput) as refused:
        call(world)
    assert refused.value.ids["argument"] == argument and refused.value.hint


def test_an_agent_without_feedback_is_not_found_with_the_agents_that_have_some(world):
    with pytest.raises(NotFound, match="'ghost'") as missing:
        analytics.intent_ranking(world, agent="ghost", window="30d", as_of=day(50))
    assert "billing, sales, support" in (missing.value.hint or "")


# 3. Edit patterns --------------------------------------------------------------------------------------------------


def test_planted_edit_patterns_come_out_on_top_with_their_categories(world):
    report = analytics.pattern_report(world, agent="support", limit=5)
    top = {p.phrase: p for p in report.patterns}
    filler = top["let me analyze this"]
    assert report.patterns[0] == filler
    assert filler.kind == "deleted" and filler.category == "filler removed" and filler.action == "prompt_experiment"
    assert filler.frequency == pytest.approx(0.95, abs=0.03) and (filler.lift or 0) > 5
    assert filler.suggestion == (
        f"users delete 'let me analyze this' in {filler.frequency:.0%} of edited drafts of support: remove it from the prompt"
    )
    assert FILLER in filler.example.deleted and filler.example.event.startswith("support-")
    hedge = top["i think maybe"]
    assert hedge.category == "hedging removed" and hedge.frequency == pytest.approx(0.6, abs=0.05)
    added = [p for p in report.patterns if p.kind == "added"]
    assert added and all(p.category == "content added" and p.action == "dpo_pairs" for p in added)
    assert added[0].phrase in ADDITION.lower().rstrip(".") and added[0].frequency == pytest.approx(0.4, abs=0.05)
    assert {"filler removed", "hedging removed", "content added"} <= set(report.by_category)
    assert not any("let me" in p.phrase for p in analytics.pattern_report(world, agent="sales").patterns)


def test_mining_incrementally_equals_mining_everything_at_once(world):
    def tables():
        return (
            world.query("SELECT * FROM analytics_phrases ORDER BY agent, kind, phrase"),
            world.query("SELECT * FROM analytics_phrase_totals ORDER BY agent"),
        )

    analytics.mine_patterns(world)
    incremental = tables()
    assert analytics.mine_patterns(world).rows_read == 0  # nothing new: nothing read, nothing counted twice
    with world.write() as db:
        db.execute("DELETE FROM analytics_phrases")
        db.execute("DELETE FROM analytics_phrase_totals")
        db.execute("DELETE FROM analytics_watermarks WHERE name = 'patterns'")
    analytics.mine_patterns(world)
    assert tables() == incremental


def test_a_mining_run_raced_by_another_counts_nothing_twice(world, monkeypatch):
    extra = world_events(DAYS - 3, DAYS - 2, seed=97)[:40]
    for event in extra:
        event["id"] = "mined-race-" + event["id"]
    feedback.ingest_batch(world, extra, actor=cli_actor(), redact=False)
    real_rows = analytics_db.feedback_for_mining

    def rows_after_another_run(store, **kwargs):
        monkeypatch.setattr(analytics_db, "feedback_for_mining", real_rows)
        assert analytics.mine_patterns(store).rows_read == 40  # the other run gets there first
        yield from real_rows(store, **kwargs)

    monkeypatch.setattr(analytics_db, "feedback_for_mining", rows_after_another_run)
    assert analytics.mine_patterns(world).rows_read == 0
    totals = world.query("SELECT sum(edited + unedited) AS drafts FROM analytics_phrase_totals")[0]["drafts"]
    assert totals == world.scalar(
        "SELECT count(*) FROM feedback WHERE coalesce(edit_ops, '[]') != '[]' OR acceptance >= 1"
    )


def test_counts_stay_bounded_and_frequent_phrases_survive_pruning(world, monkeypatch):
    monkeypatch.setattr(patterns, "BUCKET", 50)
    with world.write() as db:
        db.execute("DELETE FROM analytics_phrases")
        db.execute("DELETE FROM analytics_phrase_totals")
        db.execute("DELETE FROM analytics_watermarks WHERE name = 'patterns'")
    analytics.mine_patterns(world)
    pruned = world.scalar("SELECT count(*) FROM analytics_phrases WHERE agent = 'support'")
    top = analytics.pattern_report(world, agent="support", limit=3)
    assert top.patterns[0].phrase == "let me analyze this"
    monkeypatch.undo()
    with world.write() as db:
        db.execute("DELETE FROM analytics_phrases")
        db.execute("DELETE FROM analytics_phrase_totals")
        db.execute("DELETE FROM analytics_watermarks WHERE name = 'patterns'")
    analytics.mine_patterns(world)
    assert pruned < world.scalar("SELECT count(*) FROM analytics_phrases WHERE agent = 'support'")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_phrases_are_normalised_runs_of_one_to_four_words(text):
    word_runs = patterns.runs(text)
    found = patterns.phrases(word_runs)
    for phrase in found:
        parts = phrase.split(" ")
        assert 1 <= len(parts) <= 4 and all(parts)
        assert phrase == phrase.lower() or not any(c.isupper() for c in phrase.lower())
        for part in parts:
            assert set(part) <= patterns._MARKUP or (
                part[0] not in patterns._PUNCTUATION and part[-1] not in patterns._PUNCTUATION
            )
        assert any(f" {phrase} " in f" {' '.join(run)} " for run in word_runs)
    assert patterns.words(text) == [word for run in word_runs for word in run]
    assert patterns.categorize(next(iter(found), "x"), analytics.PhraseKind.DELETED) in set(analytics.PatternCategory)


def test_phrases_never_span_the_end_of_a_sentence():
    found = patterns.phrases(patterns.runs("Let me check. I think, maybe: **Note** ## Done!"))
    assert {"let me check", "i think", "maybe", "## done", "note"} <= found
    assert "i think maybe" in found and not {"check i", "maybe note"} & found  # a comma ends nothing


@pytest.mark.parametrize(
    ("phrase", "kind", "category"),
    [
        ("## summary", "added", "formatting"),
        ("certainly here is", "deleted", "filler removed"),
        ("it seems that", "deleted", "hedging removed"),
        ("in conclusion the", "deleted", "length"),
        ("sorry for the", "deleted", "tone"),
        ("sorry for the", "added", "tone"),
        ("warranty covers", "added", "content added"),
        ("warranty covers", "deleted", "content removed"),
    ],
)
def test_the_classifier_puts_phrases_in_the_categories_people_recognise(phrase, kind, category):
    assert patterns.categorize(phrase, analytics.PhraseKind(kind)) == category


def test_unreadable_edit_operations_count_as_none(tmp_path):
    store = open_store(tmp_path / "hostile.db")
    with store.write() as db:
        for number, ops in enumerate(['{"not": "a list"}', "[1, 2]", "not json", '[{"deleted": 5, "added": null}]']):
            db.execute(
                "INSERT INTO feedback (id, content_hash, agent, input_messages, ai_output, acceptance, edit_ops,"
                " created_at, ingested_at) VALUES (?, ?, 'odd', '[]', 'draft', 0.5, ?, ?, ?)",
                (f"h{number}", f"h{number}", ops, "2026-01-05T10:00:00.000000Z", "2026-01-05T10:00:00.000000Z"),
            )
    run = analytics.mine_patterns(store, sample_every=1)
    assert run.rows_read == 4
    assert analytics.pattern_report(store, agent="odd").patterns == []
    assert analytics.roll_up(store, timezone=TZ).rows_read == 4
    store.close()


def test_a_report_for_an_agent_never_mined_is_not_found(world):
    with pytest.raises(NotFound, match="'ghost'") as missing:
        analytics.pattern_report(world, agent="ghost")
    assert "support" in (missing.value.hint or "")
    with pytest.raises(InvalidInput, match="`limit`"):
        analytics.pattern_report(world, agent="support", limit=0)


# 4. Regression detection -------------------------------------------------------------------------------------------


RULES = analytics.RegressionRules()


def _notices(store, alert_id: int) -> list[tuple[str, RegressionAlert]]:
    """(message key, event) of every notification queued about the alert, oldest first, pending ones included."""
    rows = store.query("SELECT message_key, event FROM outbox WHERE kind = 'regression' ORDER BY id")
    found = []
    for row in rows:
        event = parse_event(row["event"])
        assert isinstance(event, RegressionAlert)
        if event.alert_id == alert_id:
            found.append((row["message_key"], event))
    return found


def test_a_real_drop_raises_one_attributed_alert_kept_once_and_resolved_after_recovery(world):
    first = analytics.check_regressions(world, rules=RULES, as_of=day(CHANGE_DAY + 10))
    drops = [a for a in first.raised if a.kind == AlertKind.ACCEPTANCE_DROP]
    assert [a.agent for a in drops] == ["support"]
    [alert] = drops
    cause = alert.evidence["attribution"]
    assert cause["dimension"] == "model_version" and cause["value"] == "support:v2"
    assert cause["since"] == day(CHANGE_DAY).isoformat() and cause["recent_share"] == 1.0
    assert "support:v2" in alert.message
    assert alert.evidence["baseline_value"] > alert.evidence["measurement"]["recent_value"] + 0.2
    assert not [a for a in first.raised if a.agent == "sales"]
    [(key, posted)] = _notices(world, alert.id)
    assert key == f"alert:{alert.id}" and not posted.resolved

    again = analytics.check_regressions(world, rules=RULES, as_of=day(CHANGE_DAY + 11))
    assert again.raised == [] and alert.id in {a.id for a in again.still_open}
    assert len(_notices(world, alert.id)) == 1
    assert [a.id for a in analytics.open_alerts(world) if a.kind == AlertKind.ACCEPTANCE_DROP] == [alert.id]

    recovery = world_events(DAYS, DAYS + RECOVERY_DAYS, seed=21, support_version="support:v1")
    ingest_in_chunks(world, recovery, chunks=2, seed=22)
    recovered = analytics.check_regressions(world, rules=RULES, as_of=day(DAYS + RECOVERY_DAYS))
    assert [a.id for a in recovered.resolved if a.kind == AlertKind.ACCEPTANCE_DROP] == [alert.id]
    assert not [a for a in analytics.open_alerts(world) if a.kind == AlertKind.ACCEPTANCE_DROP]
    [(raised_key, raised), (resolved_key, resolved)] = _notices(world, alert.id)
    assert (raised.resolved, resolved.resolved) == (False, True) and raised_key == resolved_key
    assert "recovered" in resolved.headline


def test_the_fluctuating_agent_never_raises_an_alert(world):
    for as_of in range(45, DAYS + 1, 6):
        days = analytics.regressions._days(world, "sales", *analytics.regressions.spans(RULES, day(as_of)))
        for kind in AlertKind:
            recent, baseline = analytics.regressions.spans(RULES, day(as_of))
            measured = analytics.regressions.measure(days, kind, recent=recent, baseline=baseline)
            assert not analytics.regressions.regressed(kind, measured, RULES), (as_of, kind)
    assert not [a for a in analytics.all_alerts(world) if a.agent == "sales"]


def test_a_latency_spike_raises_its_own_alert(world):
    run = analytics.check_regressions(world, rules=RULES, as_of=day(DAYS))
    spikes = [a for a in analytics.open_alerts(world) if a.kind == AlertKind.LATENCY_SPIKE]
    assert [a.agent for a in spikes] == ["billing"]
    assert "ms" in spikes[0].message and "rose" in spikes[0].message
    assert not [a for a in run.raised if a.kind == AlertKind.COST_SPIKE]


def test_the_rules_come_from_settings(tmp_path):
    settings_ = make_settings(
        tmp_path, regression_drop_points=15, regression_window_days=3, regression_baseline_days=10
    )
    rules = analytics.RegressionRules.from_settings(settings_)
    assert (rules.drop_points, rules.window_days, rules.baseline_days, rules.spike_percent) == (15, 3, 10, 50)
    recent, baseline = analytics.regressions.spans(rules, date(2026, 5, 10))
    assert (recent.start, recent.end) == (date(2026, 5, 7), date(2026, 5, 9))
    assert (baseline.start, baseline.end) == (date(2026, 4, 27), date(2026, 5, 6))


def test_the_scheduler_jobs_roll_up_mine_and_check(tmp_path):
    settings_ = make_settings(tmp_path, timezone=TZ)
    services = svc(open_store(settings_.db_path), settings_)
    feedback.ingest_batch(services.store, world_events(0, 3, seed=5), actor=cli_actor(), redact=False)
    update_analytics(services)
    assert services.store.scalar("SELECT total(events) FROM analytics_rollups") == services.store.scalar(
        "SELECT count(*) FROM feedback"
    )
    assert services.store.scalar("SELECT count(*) FROM analytics_phrase_totals") == 2  # billing starts later
    services.clock = lambda: datetime(2026, 1, 9, 11, tzinfo=UTC)
    check_regressions(services)
    runs = {row["job_id"]: row for row in services.store.query("SELECT * FROM scheduler_runs")}
    assert runs["analytics"]["outcome"] == "ok" and "0 raised" in runs["regressions"]["detail"]
    services.close()


def test_slack_shows_a_regression_alert_plainly():
    from bot.slack.blocks.notifications import render_message
    from core.platform.events import RegressionAlert

    event = RegressionAlert(alert_id=3, alert=AlertKind.COST_SPIKE, agent="billing", headline="Cost rose.")
    message = outbox.OutboxMessage(
        id=1, kind=event.kind, message_key=event.message_key, channel=None, text=event.summary(), event=event,
        attempts=0, created_at="2026-01-01T00:00:00.000000Z",
    )  # fmt: skip
    rendered = render_message(message)
    assert "Regression" in rendered.text and "`billing`" in rendered.text and "Cost rose." in rendered.text
