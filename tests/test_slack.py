"""Signed HTTP requests into the real bolt app, mounted in the real serve ASGI app."""

import time

import pytest
from starlette.testclient import TestClient

from bot.serve import build_app
from core.platform.store import open_store
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, slash_body, svc, wait_until


@pytest.fixture
def slack_settings(tmp_path, fake_slack):
    return make_settings(
        tmp_path,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.api_url,
        slack_channel="CNOTIFY",
        admins=["UADMIN"],
    )


@pytest.fixture
def app(slack_settings):
    store = open_store(slack_settings.db_path)
    with TestClient(build_app(svc(store, slack_settings)), base_url="http://127.0.0.1") as client:
        yield client
    store.close()


def post_command(app, fake_slack, text, *, user_id="U123", name="cmd", trigger_id=None, headers=None):
    body = slash_body(text, user_id=user_id, response_url=fake_slack.response_url(name), trigger_id=trigger_id)
    return app.post("/slack/events", content=body, headers=headers or sign(body))


def reply(fake_slack, name="cmd"):
    [response] = wait_until(lambda: fake_slack.responses(name), what="the response_url POST")
    return response


def block_text(response) -> str:
    parts = []
    for block in response["blocks"]:
        parts.append(block.get("text", {}).get("text", ""))
        parts.extend(f["text"] for f in block.get("fields", []))
        parts.extend(e.get("text", "") for e in block.get("elements", []))
    return "\n".join(parts)


def test_status_is_acked_at_once_then_answered_with_blocks(app, fake_slack):
    started = time.monotonic()
    response = post_command(app, fake_slack, "status")
    assert response.status_code == 200
    assert time.monotonic() - started < 3  # Slack's deadline; the work happens after the ack
    answer = reply(fake_slack)
    assert answer["response_type"] == "ephemeral"
    text = block_text(answer)
    for label in ("Feedback events", "Datasets", "Jobs", "Pending approvals", "Scheduler heartbeat"):
        assert label in text


def test_help_lists_the_slack_commands(app, fake_slack):
    post_command(app, fake_slack, "help")
    text = block_text(reply(fake_slack))
    for name in ("status", "help", "notify", "audit"):
        assert f"/finetune {name}" in text
    assert "/finetune serve" not in text  # terminal-only


def test_unknown_command_gets_a_helpful_message(app, fake_slack):
    post_command(app, fake_slack, "lanch now")
    text = block_text(reply(fake_slack))
    assert "No such command 'lanch'" in text and "/finetune help" in text


def test_bad_quoting_is_a_usage_error_not_a_crash(app, fake_slack):
    post_command(app, fake_slack, 'notify "unterminated')
    assert "check your quotes" in block_text(reply(fake_slack))


def test_bad_signature_is_rejected(app, fake_slack):
    body = slash_body("status", response_url=fake_slack.response_url())
    response = app.post("/slack/events", content=body, headers=sign(body, secret="wrong-secret"))
    assert response.status_code == 401
    time.sleep(0.3)
    assert fake_slack.responses() == []


def test_stale_timestamp_is_rejected(app, fake_slack):
    body = slash_body("status", response_url=fake_slack.response_url())
    response = app.post("/slack/events", content=body, headers=sign(body, timestamp=int(time.time()) - 600))
    assert response.status_code == 401


def test_a_redelivered_request_runs_once(app, fake_slack, slack_settings):
    for _ in range(3):
        assert post_command(app, fake_slack, "status", trigger_id="same-trigger").status_code == 200
    reply(fake_slack)
    time.sleep(0.3)
    assert len(fake_slack.responses()) == 1
    store = open_store(slack_settings.db_path)
    assert store.scalar("SELECT count(*) FROM audit_log WHERE face = 'slack' AND command = 'status'") == 1


def test_notify_needs_an_admin(app, fake_slack, slack_settings):
    post_command(app, fake_slack, 'notify "hello team"', user_id="UNOBODY", name="denied")
    assert "may not send notices" in block_text(reply(fake_slack, "denied"))

    post_command(app, fake_slack, 'notify "hello team"', user_id="UADMIN", name="allowed")
    assert "Queued notice" in block_text(reply(fake_slack, "allowed"))
    posted = wait_until(lambda: fake_slack.method_calls("chat.postMessage"), what="the notice in Slack")
    assert posted[0]["channel"] == "CNOTIFY" and "hello team" in posted[0]["text"]
    store = open_store(slack_settings.db_path)
    actors = store.query("SELECT actor, outcome FROM audit_log WHERE command = 'notify' ORDER BY id")
    assert actors == [{"actor": "UNOBODY", "outcome": "error"}, {"actor": "UADMIN", "outcome": "ok"}]
