"""`finetune serve` as a real process on 127.0.0.1: HTTP endpoints, auth, Slack, outbox, signals."""

import signal
import time
import urllib.error
import urllib.request

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.testclient import TestClient

from bot.serve import build_app
from core.platform.store import open_store
from tests.conftest import (
    BOT_TOKEN,
    MCP_TOKEN,
    SIGNING_SECRET,
    finetune_env,
    make_settings,
    run_finetune,
    sign,
    slash_body,
    svc,
    wait_until,
)


def http(method: str, url: str, *, headers: dict | None = None, data: bytes | None = None):
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def mcp_status(url: str, token: str | None):
    async def go():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx2.AsyncClient(headers=headers, timeout=10) as http_client:
            async with Client(streamable_http_client(f"{url}/mcp", http_client=http_client)) as client:
                return await client.call_tool("get_status", {})

    return anyio.run(go)


INITIALIZE = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    b'"capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
)
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def test_serve_without_slack_runs_mcp_and_the_scheduler(settings, start_serve):
    server = start_serve(settings, FINETUNE_HEARTBEAT_SECONDS="1")
    status, body = http("GET", f"{server.url}/healthz")
    assert status == 200 and '"slack":"off"' in body
    result = mcp_status(server.url, None)
    assert not result.is_error
    wait_until(lambda: open_store(settings.db_path).scalar("SELECT count(*) FROM scheduler_runs"), what="a heartbeat")
    assert "Slack is off" in server.log()
    assert http("POST", f"{server.url}/slack/events", data=b"x")[0] == 404  # no Slack endpoint when Slack is off
    assert server.stop(signal.SIGTERM) == 0
    assert "finetune serve stopping" in server.log()


def test_mcp_over_http_requires_the_bearer_token(settings, start_serve):
    server = start_serve(settings, FINETUNE_MCP_TOKEN=MCP_TOKEN)
    status, body = http("POST", f"{server.url}/mcp", headers=MCP_HEADERS, data=INITIALIZE)
    assert status == 401 and "Bearer" in body
    wrong = {**MCP_HEADERS, "Authorization": "Bearer nope"}
    assert http("POST", f"{server.url}/mcp", headers=wrong, data=INITIALIZE)[0] == 401
    assert http("GET", f"{server.url}/healthz")[0] == 200  # health stays open for probes
    result = mcp_status(server.url, MCP_TOKEN)
    assert result.structured_content["outbox_pending"] == 0
    assert MCP_TOKEN not in server.log()
    assert server.stop(signal.SIGINT) == 0


def test_a_foreign_host_header_is_refused_on_loopback(settings, start_serve):
    server = start_serve(settings)
    headers = {**MCP_HEADERS, "Host": "evil.example:80"}
    assert http("POST", f"{server.url}/mcp", headers=headers, data=INITIALIZE)[0] in (403, 421)


def test_refuses_a_public_host_without_a_token(settings):
    result = run_finetune(["serve"], finetune_env(settings, FINETUNE_HOST="0.0.0.0", FINETUNE_PORT="0"), timeout=30)
    assert result.returncode == 1
    assert "refusing to serve MCP on 0.0.0.0 without a token" in result.stderr
    assert "FINETUNE_MCP_TOKEN" in result.stderr


def test_a_second_serve_on_the_same_data_is_refused(settings, start_serve):
    first = start_serve(settings)
    result = run_finetune(["serve"], finetune_env(settings, FINETUNE_PORT="0"), timeout=30)
    assert result.returncode == 1
    assert f"pid {first.proc.pid}" in result.stderr


def test_slack_and_outbox_end_to_end(settings, start_serve, fake_slack):
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "FINETUNE_SLACK_CHANNEL": "CNOTIFY",
        "FINETUNE_OUTBOX_SECONDS": "0.2",
    }
    fake_slack.fail_status = 503  # Slack is down while the notice is queued
    server = start_serve(settings, **env)
    assert '"slack":"http"' in http("GET", f"{server.url}/healthz")[1]

    queued = run_finetune(["notify", "model v2 is live"], finetune_env(settings))
    assert queued.returncode == 0, queued.stderr
    wait_until(lambda: fake_slack.method_calls("chat.postMessage"), what="a delivery attempt")
    assert open_store(settings.db_path).scalar("SELECT status FROM outbox") == "pending"

    fake_slack.fail_status = None
    open_store(settings.db_path).db.execute("UPDATE outbox SET next_attempt_at = '2000-01-01T00:00:00.000000Z'")
    wait_until(lambda: open_store(settings.db_path).scalar("SELECT status FROM outbox") == "delivered", what="delivery")

    body = slash_body("status", response_url=fake_slack.response_url())
    status, _ = http("POST", f"{server.url}/slack/events", headers=sign(body), data=body.encode())
    assert status == 200
    [answer] = wait_until(lambda: fake_slack.responses(), what="the slash command answer")
    assert answer["blocks"][0]["text"]["text"] == "finetune-ops status"
    assert http("POST", f"{server.url}/slack/events", headers=sign(body, secret="bad"), data=body.encode())[0] == 401
    assert BOT_TOKEN not in server.log() and SIGNING_SECRET not in server.log()


def test_sigterm_stops_quickly_and_a_restart_resumes(settings, start_serve):
    server = start_serve(settings)
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 10
    again = start_serve(settings)  # the lock was released with the process
    assert again.proc.poll() is None


def test_a_killed_serve_leaves_the_lock_free(settings, start_serve):
    server = start_serve(settings)
    server.stop(signal.SIGKILL)
    assert start_serve(settings).proc.poll() is None


def test_socket_mode_replaces_the_http_endpoint_and_survives_a_failed_connect(settings, start_serve, fake_slack):
    server = start_serve(
        settings, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN="xapp-test-app-token", SLACK_API_URL=fake_slack.api_url
    )
    assert '"slack":"socket"' in http("GET", f"{server.url}/healthz")[1]
    wait_until(lambda: fake_slack.method_calls("apps.connections.open"), what="a Socket Mode connect attempt")
    assert http("POST", f"{server.url}/slack/events", data=b"x")[0] == 404
    assert "Socket Mode could not connect" in wait_until(lambda: "could not connect" in server.log() and server.log())
    assert server.proc.poll() is None and "xapp-test-app-token" not in server.log()


# Tokens with names, exposure, reverse proxies ----------------------------------------------------------

LONG_TOKEN = "laptop-" + "l" * 40


def test_each_named_token_opens_mcp_and_the_default_one_still_does(settings, start_serve):
    server = start_serve(settings, FINETUNE_MCP_TOKEN=MCP_TOKEN, FINETUNE_MCP_TOKENS=f"laptop:{LONG_TOKEN}")
    assert not mcp_status(server.url, MCP_TOKEN).is_error
    assert not mcp_status(server.url, LONG_TOKEN).is_error
    wrong = {**MCP_HEADERS, "Authorization": f"Bearer {LONG_TOKEN}x"}
    assert http("POST", f"{server.url}/mcp", headers=wrong, data=INITIALIZE)[0] == 401
    actors = {r["actor"] for r in open_store(settings.db_path).query("SELECT actor FROM audit_log WHERE face = 'mcp'")}
    assert actors == {"default", "laptop"}
    assert LONG_TOKEN not in server.log()


def test_an_empty_token_in_env_does_not_expose_mcp(settings, tmp_path):
    (tmp_path / ".env").write_text("FINETUNE_MCP_TOKEN=\n")
    result = run_finetune(["serve"], finetune_env(settings, FINETUNE_HOST="0.0.0.0", FINETUNE_PORT="0"), timeout=30)
    assert result.returncode == 1 and "without a token" in result.stderr


def test_a_short_token_is_refused_off_loopback_naming_the_setting(settings):
    env = finetune_env(settings, FINETUNE_HOST="0.0.0.0", FINETUNE_PORT="0", FINETUNE_MCP_TOKEN="short-token")
    result = run_finetune(["serve"], env, timeout=30)
    assert result.returncode == 1 and "FINETUNE_MCP_TOKEN is shorter than 32 characters" in result.stderr
    assert "short-token" not in result.stderr


def post_initialize(app_settings, store, host: str) -> int:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {LONG_TOKEN}"}
    with TestClient(build_app(svc(store, app_settings)), base_url=f"http://{host}") as client:
        return client.post("/mcp", content=INITIALIZE, headers=headers).status_code


def test_public_host_names_keep_dns_rebinding_protection_on_behind_a_proxy(tmp_path, store):
    public = make_settings(tmp_path, host="0.0.0.0", mcp_tokens=f"laptop:{LONG_TOKEN}",
                           public_hosts="finetune.example.com")  # fmt: skip
    assert post_initialize(public, store, "finetune.example.com") == 200
    assert post_initialize(public, store, "finetune.example.com:443") == 200
    assert post_initialize(public, store, "evil.example") in (403, 421)
    loopback = make_settings(tmp_path, mcp_tokens=f"laptop:{LONG_TOKEN}", public_hosts="finetune.example.com:8443")
    assert post_initialize(loopback, store, "127.0.0.1:8080") == 200
    assert post_initialize(loopback, store, "finetune.example.com:8443") == 200
    assert post_initialize(loopback, store, "finetune.example.com:9999") in (403, 421)
