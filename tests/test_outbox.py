import json
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
    posted_ts = fake_slack.posted[0]["ts"]
    assert "job 7 running 40%" in update["text"] and update["ts"] == posted_ts
    assert update["channel"] == "CJOBS"
    assert outbox.stats(store).pending == 0
    row = store.query("SELECT slack_channel, slack_ts FROM outbox WHERE id = 1")[0]
    assert row == {"slack_channel": "CJOBS", "slack_ts": posted_ts}


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


def dead_letter(store, text: str) -> int:
    outbox_id = outbox.enqueue(store, Notice(text=text, sent_by="cli:ops"))
    store.db.execute(
        "UPDATE outbox SET status = 'dead', attempts = 5, last_error = 'Slack answered channel_not_found' WHERE id = ?",
        (outbox_id,),
    )
    return outbox_id


def test_admins_list_retry_and_discard_undelivered_notices_from_the_cli(store, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    dead = dead_letter(store, "lost")
    waiting = outbox.enqueue(store, Notice(text="waiting", sent_by="cli:ops"))
    code, out, _ = cli("outbox", "--json")
    listing = json.loads(out)
    assert code == 0 and (listing["pending"], listing["dead"]) == (1, 1)
    assert [(e["id"], e["state"]) for e in listing["entries"]] == [(dead, "dead"), (waiting, "pending")]
    assert listing["entries"][0]["last_error"] == "Slack answered channel_not_found"
    code, out, _ = cli("outbox")
    assert code == 0 and "channel_not_found" in out and "outbox retry ID" in out

    code, out, _ = cli("outbox", "retry", str(dead))
    assert code == 0 and f"#{dead} will be tried again" in out
    row = store.query("SELECT status, attempts, next_attempt_at FROM outbox WHERE id = ?", (dead,))[0]
    assert row["status"] == "pending" and row["attempts"] == 0 and parse_iso(row["next_attempt_at"]) <= utcnow()

    code, out, _ = cli("outbox", "discard", str(waiting))
    assert code == 0 and "discarded" in out
    assert store.scalar("SELECT status FROM outbox WHERE id = ?", (waiting,)) == "discarded"
    commands = [r["command"] for r in store.query("SELECT command FROM audit_log ORDER BY id")]
    assert {"outbox_retry", "outbox_discard"} <= set(commands)


def test_outbox_commands_explain_bad_ids_and_states(store, cli):
    delivered = outbox.enqueue(store, Notice(text="done", sent_by="cli:ops"))
    store.db.execute("UPDATE outbox SET status = 'delivered' WHERE id = ?", (delivered,))
    code, _, err = cli("outbox", "retry", "999")
    assert code == 1 and "no notification #999" in err and "finetune outbox" in err
    code, _, err = cli("outbox", "discard", str(delivered))
    assert code == 1 and "already delivered" in err
    code, _, err = cli("outbox", "retry", "abc")
    assert code == 2 and "'abc' is not a valid integer" in err
    code, _, err = cli("outbox", "discard", str(2**64))  # beyond what SQLite stores: a usage error, not a crash
    assert code == 2 and "ID" in err


def test_outbox_in_slack_is_for_admins(settings, store):
    from bot.slack.blocks import render_outcome
    from bot.slack.listeners.commands import run_slack_text
    from tests.conftest import make_settings, svc

    dead = dead_letter(store, "lost")
    viewer = render_outcome(run_slack_text(svc(store, settings), user_id="U1", text=f"outbox retry {dead}"))
    assert "may not administer the outbox" in viewer.text
    assert store.scalar("SELECT status FROM outbox WHERE id = ?", (dead,)) == "dead"

    admin = svc(store, make_settings(settings.data_dir.parent, admins=["UADMIN"]))
    shown = render_outcome(run_slack_text(admin, user_id="UADMIN", text="outbox"))
    blocks = json.dumps(shown.blocks)
    assert f"`#{dead}` dead" in blocks and "channel_not_found" in blocks and "outbox retry ID" in blocks
    done = render_outcome(run_slack_text(admin, user_id="UADMIN", text=f"outbox retry {dead}"))
    assert f"#{dead} will be tried again" in done.text
    assert store.scalar("SELECT actor FROM audit_log WHERE command = 'outbox_retry'") == "UADMIN"
