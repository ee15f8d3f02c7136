"""`status` at any size: counters and indexed lookups, the database's path, a stale scheduler, dead letters."""

import json
import re
from datetime import timedelta

from bot.slack.blocks import render_outcome
from bot.slack.listeners.commands import run_slack_text
from core.platform import counters, outbox
from core.platform.events import Notice
from core.platform.scheduler import heartbeat, record_run
from core.platform.status import get_status, scheduler_health
from core.platform.timeutil import iso, parse_iso, utcnow
from tests.conftest import finetune_env, make_settings, run_finetune, svc

T = "2026-11-20T10:00:00.000000Z"


def add_feedback(store, n: int) -> None:
    with store.write() as db:
        db.conn.executemany(
            "INSERT INTO feedback (id, content_hash, agent, input_messages, ai_output, created_at, ingested_at)"
            " VALUES (?, ?, 'support', '[]', 'draft', ?, ?)",
            [(f"fb{i}", f"h{i}", T, T) for i in range(n)],
        )


def statements_of(store, call) -> list[str]:
    """The SQL `call` runs on this thread's connection, with its parameters bound."""
    seen: list[str] = []
    store.db.conn.set_trace_callback(seen.append)
    try:
        call()
    finally:
        store.db.conn.set_trace_callback(None)
    return seen


def test_status_reads_the_feedback_counter_and_never_the_feedback_table(store):
    add_feedback(store, 50)
    counters.bump(store, counters.FEEDBACK_EVENTS, 1_000_000)  # what ingest keeps; the rows here are fewer
    statements = statements_of(store, lambda: get_status(store))
    assert get_status(store).feedback_events == 1_000_000
    assert statements and not [sql for sql in statements if re.search(r"\b(from|join)\s+feedback\b", sql, re.I)]


def test_every_status_query_is_an_indexed_lookup(settings, store):
    for i in range(30):
        outbox.enqueue(store, Notice(text=f"n{i}", sent_by="cli:ops"))
    statements = statements_of(store, lambda: get_status(store, settings=settings))  # as the faces ask for it
    for sql in statements:
        plan = " / ".join(row[3] for row in store.db.execute("EXPLAIN QUERY PLAN " + sql).fetchall())
        for step in plan.split(" / "):
            assert not step.startswith("SCAN") or "INDEX" in step, f"{sql}: {plan}"
            assert "outbox" not in step or step.startswith("SEARCH"), f"{sql}: {plan}"  # only undelivered rows


def test_status_names_the_database(settings, store):
    assert get_status(store).database == str(settings.db_path)
    cli = run_finetune(["status"], finetune_env(settings, COLUMNS="300"))
    assert str(settings.db_path) in cli.stdout


def test_heartbeat_health_follows_the_interval_the_scheduler_beats_at():
    now = utcnow()
    assert scheduler_health(None, None, now=now) == "missing"
    assert scheduler_health(iso(now - timedelta(seconds=80)), 30, now=now) == "ok"
    assert scheduler_health(iso(now - timedelta(seconds=91)), 30, now=now) == "stale"
    assert scheduler_health(iso(now - timedelta(seconds=91)), 60, now=now) == "ok"
    assert scheduler_health(iso(now), None, now=now) == "stale"  # a beat from before intervals were recorded


def test_a_stale_heartbeat_is_shown_in_every_face(settings, store):
    services = svc(store, make_settings(settings.data_dir.parent, heartbeat_seconds=10))
    heartbeat(services)
    assert store.scalar("SELECT interval_seconds FROM scheduler_runs WHERE job_id = 'heartbeat'") == 10
    assert get_status(store).scheduler_health == "ok"
    beat = parse_iso(get_status(store).scheduler_heartbeat or "")
    assert get_status(store, now=beat + timedelta(seconds=31)).scheduler_health == "stale"

    store.db.execute("UPDATE scheduler_runs SET last_run_at = ? WHERE job_id = 'heartbeat'", (T,))
    report = get_status(store)
    assert report.scheduler_health == "stale" and report.scheduler_heartbeat == T
    terminal = run_finetune(["status"], finetune_env(settings, COLUMNS="300"))
    assert "stale" in terminal.stdout and T in terminal.stdout
    slack = json.dumps(render_outcome(run_slack_text(services, user_id="U1", text="status")).blocks)
    assert "stale" in slack and T in slack


def test_a_missing_heartbeat_is_shown(settings, store):
    assert get_status(store).scheduler_health == "missing"
    assert "never" in run_finetune(["status"], finetune_env(settings, COLUMNS="300")).stdout
    record_run(store, "jobs")  # other jobs' runs are not heartbeats
    assert get_status(store).scheduler_health == "missing"


def test_status_lists_dead_letters_with_their_error(settings, store):
    dead = outbox.enqueue(store, Notice(text="to a channel that is gone", sent_by="cli:ops"))
    store.db.execute(
        "UPDATE outbox SET status = 'dead', attempts = 5, last_error = 'Slack answered channel_not_found' WHERE id = ?",
        (dead,),
    )
    outbox.enqueue(store, Notice(text="still waiting", sent_by="cli:ops"))
    report = get_status(store)
    assert (report.outbox_pending, report.outbox_dead) == (1, 1)
    [letter] = report.dead_letters
    assert letter.id == dead and letter.last_error == "Slack answered channel_not_found"

    terminal = run_finetune(["status"], finetune_env(settings, COLUMNS="300")).stdout
    assert f"dead #{dead}" in terminal and "channel_not_found" in terminal and "finetune outbox" in terminal
    message = render_outcome(run_slack_text(svc(store, settings), user_id="U1", text="status"))
    shown = json.dumps(message.blocks)
    assert "Dead notifications*\\n1" in shown and "channel_not_found" in shown and f"#{dead}" in shown
