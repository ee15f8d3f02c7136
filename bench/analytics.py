"""Analytics at scale: the rollup's cost per event, the mining's, and the time of every analytics query.

    .venv/bin/python bench/analytics.py                      # 1,000,000 events (about 1.5 GB of disk, a few minutes)
    .venv/bin/python bench/analytics.py --events 10000000    # ten million (about 15 GB, most of an hour)

Builds a database of N synthetic feedback events over 90 days (inserted
directly, with the feedback counter set to match, as ingest keeps it): 10
agents, 2 model versions each (and a third, worse one on agent-3 for the last 12 days), 8 intents,
3 templates, weekday cycles, drafts of 200-1,000 characters of which about 40 %
were edited, each edited draft carrying one of a few planted phrases that users
delete (and sometimes a sentence they add), with edit operations stored as
ingest stores them. Then, in FINETUNE_TIMEZONE America/New_York:

- the rollup of all N events from scratch, and the mining of their edits;
- the incremental runs after 1 % more events arrive (a tenth of them late,
  for days already rolled up): the cost per ingested event that the
  scheduler's analytics job adds;
- every analytics query, timed (best of 3), against a target of 1 s, and
  what the `analytics agents`, `analytics agent` and `analytics patterns`
  commands cost on top (their readings, fresh rollups and mining included).

Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TIMEZONE = "America/New_York"
DAYS = 90
AGENTS = [f"agent-{i}" for i in range(10)]
INTENTS = ["refund", "shipping", "account", "billing", "returns", "warranty", "pickup", "other"]
TEMPLATES = ["a", "b", "c"]
FILLERS = ["Let me analyze this.", "Great question!", "I hope this helps.", "As an AI language model, I think"]
ADDITION = "Our refund policy allows returns within 30 days."
WORDS = (
    "the", "order", "refund", "shipping", "account", "invoice", "delivery", "tracking", "please", "update", "address",
    "payment", "subscription", "plan", "upgrade", "cancel", "renewal", "discount", "warranty", "return", "label",
    "store", "pickup", "weekend", "support", "ticket", "we", "you", "your", "can", "will", "thanks", "happy", "help",
    "today", "tomorrow", "week", "business", "days", "team", "policy", "item", "package", "carrier", "status",
)  # fmt: skip
BATCH = 50_000
TARGET_SECONDS = 1.0
WORSE_DAYS = 12  # agent-3's v3 serves the last days, and users edit its drafts far more
START = datetime(2026, 1, 5, 5, tzinfo=UTC)


def sentences(rng: random.Random, count: int) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 16))).capitalize() + "." for _ in range(count)]


def events(n: int, *, seed: int, first: int = 0, late_share: float = 0.0) -> Iterator[tuple[Any, ...]]:
    """N feedback rows (in `FEEDBACK_COLUMNS` order), created over DAYS days; `late_share` of them weeks late."""
    from core.data.db import FEEDBACK_COLUMNS

    rng = random.Random(seed)
    pool = sentences(rng, 3_000)
    messages = json.dumps([{"role": "user", "content": "Where is my parcel?"}])
    assert len(FEEDBACK_COLUMNS) == 23
    for i in range(first, first + n):
        day = rng.randrange(DAYS) if rng.random() >= late_share else rng.randrange(DAYS - 30)
        moment = START + timedelta(days=day, seconds=rng.randrange(86_400))
        if moment.weekday() >= 5 and rng.random() < 0.5:  # weekends are quieter
            moment -= timedelta(days=2)
        agent_index = i % len(AGENTS)
        worse = agent_index == 3 and day >= DAYS - WORSE_DAYS
        version = f"{AGENTS[agent_index]}:v{3 if worse else 1 if day < DAYS // 2 else 2}"
        draft, final, acceptance, ops = _edit(rng, pool, agent_index, worse=worse)
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        rating = (
            None if rng.random() < 0.7 else (rng.choice([4.0, 5.0]) if final is None else rng.choice([1.0, 2.0, 3.0]))
        )
        yield (
            f"e{i}", f"h{i}", AGENTS[agent_index], rng.choice(INTENTS), None, messages, draft, final, rating,
            "base", rng.choice(TEMPLATES), rng.gauss(900, 150), round(rng.uniform(0.001, 0.004), 6), None, "[]",
            "{}", acceptance, json.dumps(ops), "{}", stamp, stamp, version, None,
        )  # fmt: skip


def _edit(
    rng: random.Random, pool: list[str], agent_index: int, *, worse: bool
) -> tuple[str, str | None, float, list[dict[str, Any]]]:
    body = " ".join(rng.choice(pool) for _ in range(rng.randint(3, 9)))
    if rng.random() >= (0.7 if worse else 0.4):
        return body, None, 1.0, []
    filler = FILLERS[agent_index % len(FILLERS)] + " "
    draft = filler + body
    cut = body.rfind(". ", 0, len(body) - 2) + 2 if worse else len(body)
    kept = body[: max(cut, 1)]
    ops = [{"op": "delete", "draft_span": [0, len(filler)], "final_span": [0, 0], "deleted": filler, "added": ""}]
    added = ""
    if rng.random() < 0.4:
        added = " " + ADDITION
        ops.append({
            "op": "insert", "draft_span": [len(draft), len(draft)], "final_span": [len(kept), len(kept) + len(added)],
            "deleted": "", "added": added,
        })  # fmt: skip
    if cut < len(body):
        tail = body[cut:]
        ops.append({
            "op": "delete", "draft_span": [len(filler) + cut, len(draft)], "final_span": [len(kept), len(kept)],
            "deleted": tail[:500], "added": "",
        })  # fmt: skip
    return draft, kept + added, round(len(kept) / len(draft), 4), ops


def insert(db_path: Path, rows: Iterator[tuple[Any, ...]]) -> int:
    from core.data.db import FEEDBACK_COLUMNS
    from core.platform import counters
    from core.platform.store import open_store

    store = open_store(db_path)
    sql = f"INSERT INTO feedback ({', '.join(FEEDBACK_COLUMNS)}) VALUES ({', '.join('?' * len(FEEDBACK_COLUMNS))})"
    total = 0
    while True:
        batch = [row for _, row in zip(range(BATCH), rows, strict=False)]
        if not batch:
            break
        with store.write() as db:
            db.conn.executemany(sql, batch)
            counters.bump(store, counters.FEEDBACK_EVENTS, len(batch))
        total += len(batch)
    store.close()
    return total


def timed(label: str, func: Callable[[], Any], *, repeat: int = 3, target: float | None = TARGET_SECONDS) -> Any:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - started)
    verdict = "" if target is None else ("  ok" if best < target else "  OVER TARGET")
    print(f"  {label:<58} {best * 1000:>9.1f} ms{verdict}", flush=True)
    return result


def per_event(label: str, seconds: float, count: int) -> None:
    print(f"  {label:<58} {seconds:>9.1f} s   ({seconds / max(count, 1) * 1e6:.1f} µs per event, {count:,} events)")


def queries(store: Any) -> None:
    from core import analytics
    from core.analytics import Slice, Span

    as_of = (START + timedelta(days=DAYS - 1)).date()
    report_of = functools.partial(analytics.acceptance_report, store, as_of=as_of)
    for window in ("7d", "30d", "90d", "all"):
        timed(f"acceptance per agent, {window}", functools.partial(report_of, window=window))
    for by in ("model_version", "intent", "template"):
        timed(
            f"acceptance of one agent per {by}, 90d", functools.partial(report_of, window="90d", by=by, agent=AGENTS[3])
        )
    timed("acceptance of every agent per intent, 30d",
          lambda: analytics.acceptance_report(store, window="30d", as_of=as_of, by="intent"))  # fmt: skip
    timed("best and worst intents of one agent, 30d",
          lambda: analytics.intent_ranking(store, agent=AGENTS[0], window="30d", as_of=as_of))  # fmt: skip
    span = Span(start=as_of - timedelta(days=29), end=as_of)
    timed("compare two agents, 30d (Welch, z-tests, Holm)", lambda: analytics.compare(
        store, baseline=Slice(agent=AGENTS[0], span=span), candidate=Slice(agent=AGENTS[1], span=span)))  # fmt: skip
    earlier = Span(start=as_of - timedelta(days=59), end=as_of - timedelta(days=30))
    timed("compare two periods of one agent, 30d each", lambda: analytics.compare(
        store, baseline=Slice(agent=AGENTS[3], span=earlier), candidate=Slice(agent=AGENTS[3], span=span)))  # fmt: skip
    report = timed("edit patterns of one agent", lambda: analytics.pattern_report(store, agent=AGENTS[0]))
    rules = analytics.RegressionRules()
    run = timed(
        "regression check, every agent (daily job)",
        lambda: analytics.check_regressions(store, rules=rules, as_of=as_of + timedelta(days=1)),
        repeat=1,
    )
    top = report.patterns[0] if report.patterns else None
    print(f"  top pattern of {AGENTS[0]}: {top.suggestion if top else 'none'}")
    for alert in run.raised:
        print(f"  alert raised: {alert.message}")
    faces(store)


def faces(store: Any) -> None:
    """What a person's `analytics ...` command costs: each reading folds in new feedback first (none here)."""
    from core import analytics
    from core.platform.settings import Settings
    from core.services import build_services

    settings = Settings(_env_file=None, data_dir=store.path.parent, timezone=TIMEZONE)
    now = START + timedelta(days=DAYS, hours=12)
    services = build_services(settings, store=store, clock=lambda: now)
    timed("analytics agents --window 30d", lambda: analytics.agents_overview(services, window="30d"))
    timed("analytics agent AGENT --by version --previous", lambda: analytics.agent_performance(
        services, agent=AGENTS[3], window="30d", by="version", previous=True))  # fmt: skip
    timed("analytics patterns (every agent, with actions)", lambda: analytics.improvement_opportunities(services))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, help="where the database goes (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="finetune-bench-analytics-", dir=args.workdir) as tmp:
        run(Path(tmp) / "finetune.db", args.events)


def run(db_path: Path, n: int) -> None:
    from core import analytics
    from core.platform.store import open_store

    started = time.perf_counter()
    insert(db_path, events(n, seed=1))
    size = db_path.stat().st_size / 1e9
    print(f"N={n:,}: built {size:.1f} GB of feedback in {time.perf_counter() - started:.0f}s")
    store = open_store(db_path)
    started = time.perf_counter()
    rolled = analytics.roll_up(store, timezone=TIMEZONE)
    per_event("rollup from scratch", time.perf_counter() - started, rolled.rows_read)
    groups = store.scalar("SELECT count(*) FROM analytics_rollups")
    print(f"  {'rollup rows':<58} {groups:>9,}")
    started = time.perf_counter()
    mined = analytics.mine_patterns(store)
    per_event("edit-pattern mining from scratch", time.perf_counter() - started, mined.rows_read)
    more = max(1, n // 100)
    store.close()
    insert(db_path, events(more, seed=2, first=n, late_share=0.1))
    store = open_store(db_path)
    started = time.perf_counter()
    rolled = analytics.roll_up(store, timezone=TIMEZONE)
    per_event("rollup of 1% new events (a tenth late)", time.perf_counter() - started, rolled.rows_read)
    started = time.perf_counter()
    mined = analytics.mine_patterns(store)
    per_event("mining of the same new events", time.perf_counter() - started, mined.rows_read)
    print("queries (best of 3; target under 1 s each):")
    queries(store)
    store.close()


if __name__ == "__main__":
    main()
