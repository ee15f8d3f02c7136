"""Delivering the outbox to Slack: exactly once across crashes, one bad row never blocks the rest, Slack's pace kept.

Slack is the local recording server (`fake_slack`); the dispatcher is the real one.
"""

import logging
import sqlite3
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from slack_sdk import WebClient

from bot.slack import delivery
from bot.slack.delivery import ChannelPacer, deliver_due
from core.platform import outbox
from core.platform.events import JobChanged, Notice
from core.platform.timeutil import iso, parse_iso, utcnow
from core.vocabulary import JobState, Provider
from tests.conftest import BOT_TOKEN


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs, nothing catches it."""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client_for(url: str) -> WebClient:
    client = WebClient(token=BOT_TOKEN, base_url=url)
    client.retry_handlers = []  # one attempt per delivery: the outbox owns retrying
    return client


def notice(text: str) -> Notice:
    return Notice(text=text, sent_by="cli:ops")


def job_changed(detail: str, job_id: str = "7") -> JobChanged:
    return JobChanged(
        job_id=job_id, status=JobState.RUNNING, base_model="m", dataset_version="d@1", provider=Provider.OPENAI,
        detail=detail,
    )  # fmt: skip


def make_all_due(store) -> None:
    store.db.execute("UPDATE outbox SET next_attempt_at = '2000-01-01T00:00:00.000000Z' WHERE status = 'pending'")


def status_of(store, outbox_id: int) -> str:
    return store.scalar("SELECT status FROM outbox WHERE id = ?", (outbox_id,))


# Exactly once ---------------------------------------------------------------------------------------------


def test_posts_carry_metadata_that_names_the_row(store, fake_slack):
    outbox_id = outbox.enqueue(store, notice("hello"))
    assert deliver_due(store, client_for(fake_slack.api_url), default_channel="C1") == 1
    [post] = fake_slack.method_calls("chat.postMessage")
    assert post["metadata"] == {"event_type": "finetune_outbox", "event_payload": {"outbox_id": outbox_id}}
    row = store.query("SELECT sending_at, status FROM outbox WHERE id = ?", (outbox_id,))[0]
    assert row["status"] == "delivered" and row["sending_at"] is not None  # the attempt was recorded first


def test_a_failing_mark_after_a_successful_post_does_not_post_twice(settings, store, fake_slack, caplog):
    """The database is busy right after Slack accepted the post: the next run finds the post instead."""
    client = client_for(fake_slack.api_url)
    outbox_id = outbox.enqueue(store, notice("exactly once"))
    blocker = sqlite3.connect(settings.db_path, isolation_level=None)
    post = client.chat_postMessage

    def post_then_lock_the_database(**kwargs):
        response = post(**kwargs)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database past our busy timeout
        return response

    client.chat_postMessage = post_then_lock_the_database  # type: ignore[method-assign]
    store.db.execute("PRAGMA busy_timeout = 200")
    with caplog.at_level(logging.WARNING):
        assert deliver_due(store, client, default_channel="C1") == 0
    assert "database is unavailable" in caplog.text
    blocker.execute("ROLLBACK")
    blocker.close()
    assert status_of(store, outbox_id) == "pending"

    client.chat_postMessage = post  # type: ignore[method-assign]
    assert deliver_due(store, client, default_channel="C1") == 1
    assert len(fake_slack.method_calls("chat.postMessage")) == 1
    [history] = fake_slack.method_calls("conversations.history")
    assert history["channel"] == "C1" and history["include_all_metadata"] == "1"
    attempted = parse_iso(store.scalar("SELECT sending_at FROM outbox WHERE id = ?", (outbox_id,))).timestamp()
    assert float(history["oldest"]) < attempted < float(history["latest"])  # a bounded window around the attempt
    assert float(history["latest"]) - float(history["oldest"]) <= 3600
    row = store.query("SELECT status, slack_ts FROM outbox WHERE id = ?", (outbox_id,))[0]
    assert row == {"status": "delivered", "slack_ts": fake_slack.posted[0]["ts"]}


def test_a_kill_between_post_and_mark_does_not_post_twice(store, fake_slack, monkeypatch):
    client = client_for(fake_slack.api_url)
    first = outbox.enqueue(store, job_changed("started"))

    def killed(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(outbox, "mark_delivered", killed)
    with pytest.raises(Killed):
        deliver_due(store, client, default_channel="CJOBS")
    monkeypatch.undo()
    assert len(fake_slack.method_calls("chat.postMessage")) == 1

    second = outbox.enqueue(store, job_changed("step 10"))  # the same job moves on while serve is down
    assert deliver_due(store, client, default_channel="CJOBS") == 1  # finds the earlier post, marks it
    assert deliver_due(store, client, default_channel="CJOBS") == 1  # then edits it in place
    assert len(fake_slack.method_calls("chat.postMessage")) == 1
    [update] = fake_slack.method_calls("chat.update")
    assert update["ts"] == fake_slack.posted[0]["ts"] and "step 10" in update["text"]
    assert (status_of(store, first), status_of(store, second)) == ("delivered", "delivered")


def test_a_post_that_never_reached_slack_is_posted_on_reconcile(store, fake_slack, monkeypatch):
    client = client_for(fake_slack.api_url)
    outbox_id = outbox.enqueue(store, notice("lost in flight"))
    mark_sending = outbox.mark_sending

    def recorded_then_killed(*args, **kwargs):
        mark_sending(*args, **kwargs)
        raise Killed  # the attempt is recorded, the post never leaves

    monkeypatch.setattr(outbox, "mark_sending", recorded_then_killed)
    with pytest.raises(Killed):
        deliver_due(store, client, default_channel="C1")
    monkeypatch.undo()
    assert fake_slack.method_calls("chat.postMessage") == []

    assert deliver_due(store, client, default_channel="C1") == 1
    assert len(fake_slack.method_calls("conversations.history")) == 1  # looked first, found nothing
    [post] = fake_slack.method_calls("chat.postMessage")
    assert post["text"] == ":loudspeaker: lost in flight" and status_of(store, outbox_id) == "delivered"


def test_an_unanswered_post_is_looked_up_before_the_next_attempt(store, fake_slack, monkeypatch):
    """A timeout may hide a post that arrived: the next attempt checks the channel first."""
    client = client_for(fake_slack.api_url)
    outbox_id = outbox.enqueue(store, notice("slow"))
    post = client.chat_postMessage

    def post_then_time_out(**kwargs):
        post(**kwargs)
        raise TimeoutError("The read operation timed out")

    monkeypatch.setattr(client, "chat_postMessage", post_then_time_out)
    assert deliver_due(store, client, default_channel="C1") == 0
    monkeypatch.undo()
    assert "unreachable" in store.scalar("SELECT last_error FROM outbox WHERE id = ?", (outbox_id,))
    make_all_due(store)
    assert deliver_due(store, client, default_channel="C1") == 1
    assert len(fake_slack.method_calls("chat.postMessage")) == 1
    assert status_of(store, outbox_id) == "delivered"


def test_a_refused_post_is_not_looked_up(store, fake_slack):
    """Slack answered "no": nothing arrived, so the retry posts without searching the history."""
    client = client_for(fake_slack.api_url)
    outbox.enqueue(store, notice("refused once"))
    fake_slack.fail_status = 503
    assert deliver_due(store, client, default_channel="C1") == 0
    fake_slack.fail_status = None
    make_all_due(store)
    assert deliver_due(store, client, default_channel="C1") == 1
    assert fake_slack.method_calls("conversations.history") == []


def test_history_unreadable_is_a_clear_failure_not_a_blind_post(store, fake_slack, monkeypatch):
    client = client_for(fake_slack.api_url)
    outbox_id = outbox.enqueue(store, notice("unsure"))
    outbox.mark_sending(store, outbox.due(store)[0], channel="C1")

    def no_scope(**kwargs):
        from slack_sdk.errors import SlackApiError
        from slack_sdk.web import SlackResponse

        response = SlackResponse(client=client, http_verb="POST", api_url="", req_args={},
                                 data={"ok": False, "error": "missing_scope"}, headers={}, status_code=200)  # fmt: skip
        raise SlackApiError("missing_scope", response)

    monkeypatch.setattr(client, "conversations_history", no_scope)
    assert deliver_due(store, client, default_channel="C1") == 0
    assert fake_slack.method_calls("chat.postMessage") == []
    error = store.scalar("SELECT last_error FROM outbox WHERE id = ?", (outbox_id,))
    assert "missing_scope" in error and "channels:history" in error


# One bad row never blocks the queue ---------------------------------------------------------------------


def test_a_refused_row_backs_off_alone_and_dies_after_bounded_attempts(store, fake_slack):
    client = client_for(fake_slack.api_url)
    fake_slack.unknown_channels = {"CGONE"}
    bad = outbox.enqueue(store, notice("to nowhere"), channel="CGONE")
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        good = outbox.enqueue(store, notice(f"fine {attempt}"))
        make_all_due(store)
        assert deliver_due(store, client, default_channel="C1") == 1, attempt
        assert status_of(store, good) == "delivered"
        expected = "dead" if attempt == outbox.MAX_ATTEMPTS else "pending"
        assert status_of(store, bad) == expected, attempt
    row = store.query("SELECT attempts, last_error FROM outbox WHERE id = ?", (bad,))[0]
    assert row["attempts"] == outbox.MAX_ATTEMPTS and "channel_not_found" in row["last_error"]
    make_all_due(store)
    assert deliver_due(store, client, default_channel="C1") == 0  # a dead letter is not retried by itself
    assert outbox.stats(store).dead == 1


def test_a_rendering_error_fails_its_row_only(store, fake_slack, monkeypatch, caplog):
    from bot.slack.blocks import notifications

    client = client_for(fake_slack.api_url)
    real = notifications.render_message

    def render(message):
        if message.text == "boom":
            raise KeyError("icon")
        return real(message)

    monkeypatch.setattr(delivery, "render_message", render)
    bad = outbox.enqueue(store, notice("boom"))
    good = outbox.enqueue(store, notice("after it"))
    with caplog.at_level(logging.ERROR):
        assert deliver_due(store, client, default_channel="C1") == 1
    assert status_of(store, good) == "delivered" and status_of(store, bad) == "pending"
    row = store.query("SELECT attempts, last_error, next_attempt_at FROM outbox WHERE id = ?", (bad,))[0]
    assert row["attempts"] == 1 and "KeyError" in row["last_error"]
    assert parse_iso(row["next_attempt_at"]) > utcnow()  # backs off instead of running every 2 s
    assert caplog.text.count("Traceback") == 1
    assert fake_slack.method_calls("conversations.history") == []  # nothing was posted, nothing to look for


def test_a_malformed_payload_is_dead_lettered_and_the_queue_moves(store, fake_slack):
    client = client_for(fake_slack.api_url)
    bad = outbox.enqueue(store, notice("will be corrupted"))
    store.db.execute('UPDATE outbox SET event = \'{"kind": "job", "job_id": 1}\' WHERE id = ?', (bad,))
    good = outbox.enqueue(store, notice("fine"))
    for _ in range(outbox.MAX_ATTEMPTS):
        make_all_due(store)
        deliver_due(store, client, default_channel="C1")
    assert status_of(store, good) == "delivered" and status_of(store, bad) == "dead"
    error = store.scalar("SELECT last_error FROM outbox WHERE id = ?", (bad,))
    assert "stored event is not valid" in error and f"outbox discard {bad}" in error


def test_an_update_reply_without_channel_still_counts_as_delivered(store, fake_slack):
    client = client_for(fake_slack.api_url)
    outbox.enqueue(store, job_changed("started"))
    assert deliver_due(store, client, default_channel="CJOBS") == 1
    fake_slack.update_without_channel = True
    second = outbox.enqueue(store, job_changed("running"))
    assert deliver_due(store, client, default_channel="CJOBS") == 1
    row = store.query("SELECT status, slack_channel, slack_ts FROM outbox WHERE id = ?", (second,))[0]
    assert row == {"status": "delivered", "slack_channel": "CJOBS", "slack_ts": fake_slack.posted[0]["ts"]}


def test_slack_down_is_transient_and_does_not_dead_letter_quickly(store, fake_slack):
    client = client_for(fake_slack.api_url)
    outbox_id = outbox.enqueue(store, notice("patience"))
    fake_slack.fail_status = 503
    for _ in range(outbox.MAX_ATTEMPTS + 2):
        make_all_due(store)
        deliver_due(store, client, default_channel="C1")
    assert status_of(store, outbox_id) == "pending"


# Coming back after an outage --------------------------------------------------------------------------


def test_updates_queued_during_an_outage_collapse_to_the_newest(store, fake_slack):
    client = client_for(fake_slack.api_url)
    ids = [outbox.enqueue(store, job_changed(f"step {i}")) for i in range(12)]
    assert deliver_due(store, client, default_channel="CJOBS") == 1
    [post] = fake_slack.method_calls("chat.postMessage")
    assert "step 11" in post["text"] and fake_slack.method_calls("chat.update") == []
    statuses = [status_of(store, i) for i in ids]
    assert statuses == ["superseded"] * 11 + ["delivered"]
    assert outbox.stats(store).pending == 0


def test_an_unconfirmed_post_is_found_before_newer_rows_of_its_key_go_out(store, fake_slack, monkeypatch):
    client = client_for(fake_slack.api_url)
    outbox.enqueue(store, job_changed("started"))
    monkeypatch.setattr(outbox, "mark_delivered", lambda *a, **k: (_ for _ in ()).throw(Killed))
    with pytest.raises(Killed):
        deliver_due(store, client, default_channel="CJOBS")
    monkeypatch.undo()
    for i in range(5):
        outbox.enqueue(store, job_changed(f"step {i}"))
    for _ in range(3):
        deliver_due(store, client, default_channel="CJOBS")
    assert len(fake_slack.method_calls("chat.postMessage")) == 1  # one Slack message for the job, ever
    [update] = fake_slack.method_calls("chat.update")
    assert "step 4" in update["text"]


def test_posts_are_paced_per_channel(store, fake_slack):
    client = client_for(fake_slack.api_url)
    clock = Clock()
    pacer = ChannelPacer(per_second=1.0, burst=3, clock=clock)
    for i in range(12):
        outbox.enqueue(store, notice(f"queued {i}"))
    outbox.enqueue(store, notice("elsewhere"), channel="C2")
    assert deliver_due(store, client, default_channel="C1", pacer=pacer) == 4  # a short burst in C1, C2 unaffected
    assert outbox.stats(store).pending == 9  # the rest stays due, not backed off
    assert deliver_due(store, client, default_channel="C1", pacer=pacer) == 0  # no time passed: nothing more
    clock.now += 2.0
    assert deliver_due(store, client, default_channel="C1", pacer=pacer) == 2  # one a second
    texts = [p["text"] for p in fake_slack.method_calls("chat.postMessage")]
    assert texts[:3] == [":loudspeaker: queued 0", ":loudspeaker: queued 1", ":loudspeaker: queued 2"]
    assert texts[-2:] == [":loudspeaker: queued 3", ":loudspeaker: queued 4"]  # order kept


def test_retry_after_on_429_is_honoured(store, fake_slack):
    client = client_for(fake_slack.api_url)
    clock = Clock()
    pacer = ChannelPacer(clock=clock)
    first = outbox.enqueue(store, notice("throttled"))
    outbox.enqueue(store, notice("waits its turn"))
    fake_slack.retry_after = 30
    before = utcnow()
    assert deliver_due(store, client, default_channel="C1", pacer=pacer) == 0
    assert len(fake_slack.method_calls("chat.postMessage")) == 1  # the second row did not hammer a throttled channel
    row = store.query("SELECT status, next_attempt_at, last_error FROM outbox WHERE id = ?", (first,))[0]
    assert row["status"] == "pending" and "ratelimited" in row["last_error"]
    assert parse_iso(row["next_attempt_at"]) >= before + timedelta(seconds=30)
    assert outbox.due(store, now=before + timedelta(seconds=29)) != []  # the second row is still due...
    fake_slack.retry_after = None
    assert deliver_due(store, client, default_channel="C1", pacer=pacer) == 0  # ...but the channel is on hold
    clock.now += 31
    assert deliver_due(store, client, default_channel="C1", pacer=pacer) == 1
    assert outbox.due(store, now=before + timedelta(seconds=29)) == []  # the throttled row: not before Retry-After


def test_the_pacer_refills_at_its_rate_and_caps_bursts():
    clock = Clock()
    pacer = ChannelPacer(per_second=1.0, burst=2, clock=clock)
    assert [pacer.take("C") for _ in range(3)] == [True, True, False]
    clock.now += 0.5
    assert not pacer.take("C")
    clock.now += 0.5
    assert pacer.take("C") and not pacer.take("C")
    clock.now += 100
    assert [pacer.take("C") for _ in range(3)] == [True, True, False]
    pacer.hold("C", 5)
    clock.now += 4.9
    assert not pacer.take("C")
    clock.now += 1.2
    assert pacer.take("C")


def test_the_attempt_time_is_recorded_before_the_post_leaves(store, fake_slack, monkeypatch):
    client = client_for(fake_slack.api_url)
    outbox_id = outbox.enqueue(store, notice("order matters"))
    seen = []
    post = client.chat_postMessage

    def post_and_look(**kwargs):
        seen.append(store.scalar("SELECT sending_at FROM outbox WHERE id = ?", (outbox_id,)))
        return post(**kwargs)

    monkeypatch.setattr(client, "chat_postMessage", post_and_look)
    before = iso()
    deliver_due(store, client, default_channel="C1")
    assert seen[0] is not None and seen[0] >= before


@examples(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), min_size=1, max_size=60),
    burst=st.integers(min_value=1, max_value=5),
)
def test_the_pacer_never_exceeds_its_rate_over_any_window(steps, burst):
    clock = Clock()
    pacer = ChannelPacer(per_second=1.0, burst=burst, clock=clock)
    granted: list[float] = []
    for step in steps:
        clock.now += step
        if pacer.take("C"):
            granted.append(clock.now)
    for i, start in enumerate(granted):
        for j in range(i, len(granted)):
            window = granted[j] - start
            assert j - i + 1 <= burst + window * 1.0 + 1e-9


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@given(found=JSON | st.fixed_dictionaries({"ts": JSON, "metadata": JSON}))
def test_any_message_in_the_history_is_read_without_error(found):
    assert delivery._is_post_of(found, 7) in (True, False)


@given(outbox_id=st.integers(min_value=1, max_value=10**6))
def test_only_our_own_metadata_matches(outbox_id):
    def post(event_type: str) -> dict:
        return {"ts": "1.2", "metadata": {"event_type": event_type, "event_payload": {"outbox_id": outbox_id}}}

    assert delivery._is_post_of(post("finetune_outbox"), outbox_id)
    assert not delivery._is_post_of(post("finetune_outbox"), outbox_id + 1)
    assert not delivery._is_post_of(post("other"), outbox_id)
