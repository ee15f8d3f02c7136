from datetime import timedelta

from slack_sdk import WebClient

from bot.slack.delivery import deliver_due
from core.platform import outbox
from core.platform.events import JobChanged, Notice
from core.platform.timeutil import parse_iso, utcnow
from core.vocabulary import JobState, Provider
from tests.conftest import BOT_TOKEN, free_port


def job7(detail: str) -> JobChanged:
    return JobChanged(
        job_id="7",
        status=JobState.RUNNING,
        base_model="m",
        dataset_version="d@1",
        provider=Provider.OPENAI,
        detail=detail,
    )


def client_for(url: str) -> WebClient:
    client = WebClient(token=BOT_TOKEN, base_url=url)
    client.retry_handlers = []  # one attempt per delivery: the outbox owns retrying
    return client


def test_messages_with_one_key_post_once_then_edit_in_place(store, fake_slack):
    client = client_for(fake_slack.api_url)
    outbox.enqueue(store, job7("job 7 started"))
    assert deliver_due(store, client, default_channel="CJOBS") == 1
    outbox.enqueue(store, job7("job 7 running 40%"))
    outbox.enqueue(store, Notice(text="unrelated", sent_by="cli:ops"))
    assert deliver_due(store, client, default_channel="CJOBS") == 2

    [first, other] = fake_slack.method_calls("chat.postMessage")
    [update] = fake_slack.method_calls("chat.update")
    assert "job 7 started" in first["text"] and other["text"] == ":loudspeaker: unrelated"
    assert "job 7 running 40%" in update["text"] and update["ts"] == "1700000000.000001"
    assert update["channel"] == "CJOBS"
    assert outbox.stats(store).pending == 0
    row = store.query("SELECT slack_channel, slack_ts FROM outbox WHERE id = 1")[0]
    assert row == {"slack_channel": "CJOBS", "slack_ts": "1700000000.000001"}


def test_slack_down_delays_delivery_and_loses_nothing(store, fake_slack):
    client = client_for(fake_slack.api_url)
    outbox.enqueue(store, Notice(text="important", sent_by="cli:ops"))
    fake_slack.fail_status = 503
    assert deliver_due(store, client, default_channel="C1") == 0

    [message] = store.query("SELECT * FROM outbox")
    assert message["status"] == "pending" and message["attempts"] == 1
    assert "503" in message["last_error"] or "service_unavailable" in message["last_error"]
    assert parse_iso(message["next_attempt_at"]) > utcnow()
    assert outbox.due(store) == []  # backing off: not retried at once

    fake_slack.fail_status = None
    later = utcnow() + timedelta(hours=1)
    assert [m.text for m in outbox.due(store, now=later)] == ["important"]
    store.db.execute("UPDATE outbox SET next_attempt_at = '2000-01-01T00:00:00.000000Z'")
    assert deliver_due(store, client, default_channel="C1") == 1
    assert outbox.stats(store).pending == 0


def test_unreachable_slack_keeps_the_message(store):
    client = client_for(f"http://127.0.0.1:{free_port()}/api/")  # nothing listens there
    outbox.enqueue(store, Notice(text="still here", sent_by="cli:ops"))
    assert deliver_due(store, client, default_channel="C1") == 0
    assert outbox.stats(store).pending == 1
    assert "unreachable" in (outbox.stats(store).last_error or "")


def test_without_a_channel_the_message_waits_with_a_clear_reason(store, fake_slack):
    outbox.enqueue(store, Notice(text="where to?", sent_by="cli:ops"))
    assert deliver_due(store, client_for(fake_slack.api_url), default_channel=None) == 0
    assert "FINETUNE_SLACK_CHANNEL" in (outbox.stats(store).last_error or "")


def test_backoff_grows_and_is_capped():
    assert outbox.backoff_seconds(1) <= 4
    assert outbox.backoff_seconds(5) >= 32
    assert outbox.backoff_seconds(50) <= outbox.BACKOFF_CAP_SECONDS


def test_enqueue_commits_or_rolls_back_with_the_callers_change(store):
    try:
        with store.write() as db:
            db["alerts"].insert({"kind": "k", "severity": "info", "message": "m", "created_at": "t"})
            outbox.enqueue(store, Notice(text="alert!", sent_by="cli:ops"))
            raise RuntimeError("the change failed")
    except RuntimeError:
        pass
    assert outbox.stats(store).pending == 0
