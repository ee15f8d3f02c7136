"""Signed HTTP requests into the real bolt app, mounted in the real serve ASGI app."""

import logging
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


# Hostile requests get a 4xx, never a 500 ------------------------------------------------------------


@pytest.mark.parametrize("timestamp", ["abc", "", "1e9", "12a", "-5"])
def test_a_malformed_timestamp_is_401_signed_or_not(app, fake_slack, timestamp):
    body = slash_body("status", response_url=fake_slack.response_url())
    for headers in (sign(body), {"X-Slack-Signature": "v0=00", "Content-Type": "application/x-www-form-urlencoded"}):
        response = app.post("/slack/events", content=body, headers={**headers, "X-Slack-Request-Timestamp": timestamp})
        assert response.status_code == 401


def test_a_huge_body_is_413_before_it_is_read_whole(app):
    body = "text=" + "x" * (2 << 20)
    assert app.post("/slack/events", content=body, headers=sign(body)).status_code == 413


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{not json", "application/json"),
        ("[1, 2]", "application/json"),
        ('"a string"', "application/json"),
        ("payload=%7Bnot-json", "application/x-www-form-urlencoded"),
        ("payload=%5B%5D", "application/x-www-form-urlencoded"),
        ("payload=%22x%22", "application/x-www-form-urlencoded"),
    ],
)
def test_a_signed_body_that_is_not_a_slack_payload_is_400(app, body, content_type):
    response = app.post("/slack/events", content=body, headers={**sign(body), "Content-Type": content_type})
    assert response.status_code == 400


def test_a_body_that_is_not_utf8_is_refused(app):
    response = app.post("/slack/events", content=b"text=\xff\xfe", headers=sign("text="))
    assert response.status_code in (400, 401)


# The ack never waits for the database -----------------------------------------------------------------


def test_the_ack_comes_back_while_another_connection_holds_the_write_lock(app, fake_slack, slack_settings):
    import sqlite3

    blocker = sqlite3.connect(slack_settings.db_path, timeout=0.1, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        response = post_command(app, fake_slack, "status")
        acked_in = time.monotonic() - started
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert response.status_code == 200 and acked_in < 1.0
    assert "Feedback events" in block_text(reply(fake_slack))  # the worker answered once the lock was free


# Commands of the faces --------------------------------------------------------------------------------


def test_catalog_lists_base_models_with_prices_and_their_date(app, fake_slack):
    post_command(app, fake_slack, "catalog --provider bedrock")
    text = block_text(reply(fake_slack))
    assert "`amazon.nova-micro-v1:0`: bedrock · supervised · bedrock-nova" in text
    assert "$1.00 / 1M (2026-11-15)" in text and "gpt-4o" not in text


def test_an_empty_idempotency_key_is_refused(app, fake_slack):
    post_command(app, fake_slack, 'launch support@1 openai gpt-4o-mini --key "  "', user_id="UADMIN")
    text = block_text(reply(fake_slack))
    assert "'--key'" in text and "the idempotency key is empty" in text


def test_a_command_without_a_trigger_id_has_no_idempotency_key(app, fake_slack, monkeypatch):
    from bot.slack.listeners import commands

    keys = []
    real = commands.run_slack_text

    def spy(services, *, user_id, text, request_key=None):
        keys.append(request_key)
        return real(services, user_id=user_id, text=text, request_key=request_key)

    monkeypatch.setattr(commands, "run_slack_text", spy)
    for _ in range(2):  # two different requests: a shared "slack:None" key would make the second the first's echo
        body = "&".join(part for part in slash_body("status", response_url=fake_slack.response_url()).split("&")
                        if not part.startswith("trigger_id="))  # fmt: skip
        assert app.post("/slack/events", content=body, headers=sign(body)).status_code == 200
    wait_until(lambda: len(fake_slack.responses()) == 2, what="both answers")
    assert keys == [None, None]


def test_a_signed_command_without_a_user_is_acked_and_ignored(app, fake_slack, slack_settings, caplog):
    body = "command=%2Ffinetune&text=status&response_url=" + fake_slack.response_url()
    assert app.post("/slack/events", content=body, headers=sign(body)).status_code == 200
    wait_until(lambda: "without a user id" in caplog.text, what="the worker's warning")
    assert fake_slack.responses() == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no crash in the worker
    store = open_store(slack_settings.db_path)
    assert store.scalar("SELECT count(*) FROM audit_log WHERE face = 'slack'") == 0
