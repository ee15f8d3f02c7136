"""Jobs through every face: CLI, Slack (signed requests, redelivered), MCP (agent retries, approvals)."""

import json
import time

import anyio
from mcp import Client
from starlette.testclient import TestClient

from bot.serve import build_app
from core.platform.actors import cli_actor
from core.platform.store import open_store
from core.training.jobs import poll_active_jobs
from mcp_server.server import build_server
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, slash_body, svc, wait_until

MODEL = "gpt-4o-mini-2024-07-18"


def test_cli_launch_watch_and_cancel(cli, fake, version, store, settings):
    code, out, err = cli(
        "jobs", "launch", version.id, "--provider", "openai", "--base-model", MODEL, "--epochs", "2", "--json"
    )
    assert code == 0, err
    launched = json.loads(out)
    job_id = launched["job"]["id"]
    assert launched["job"]["status"] == "validating" and launched["cost"]["epochs"] == 2
    code, out, _ = cli("jobs")
    assert job_id in out and "validating" in out
    code, out, _ = cli("jobs", "list", "--status", "validating", "--json")
    assert [j["id"] for j in json.loads(out)["jobs"]] == [job_id]
    fake.advance("ftjob-1", "running")
    store.db.execute("UPDATE jobs SET next_poll_at = NULL")
    poll_active_jobs(svc(store, settings))
    code, out, _ = cli("job", job_id)
    assert "running" in out
    code, out, _ = cli("jobs", "events", job_id)
    assert "validating -> running" in out
    code, out, _ = cli("jobs", "cancel", job_id, "--json")
    assert code == 0 and json.loads(out)["status"] == "cancelled"
    code, _, err = cli("jobs", "launch", version.id, "--provider", "openai", "--base-model", MODEL, "--epochs", "99")
    assert code == 1 and "99" in err


def test_slack_launch_delivered_three_times_starts_one_job(tmp_path, fake, version, fake_slack):
    settings = make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url,
        operators=["U123"],
    )  # fmt: skip
    store = open_store(settings.db_path)
    body = slash_body(
        f"launch {version.id} openai {MODEL} --epochs 2", response_url=fake_slack.response_url(), trigger_id="T-1"
    )
    with TestClient(build_app(svc(store, settings)), base_url="http://127.0.0.1") as client:
        for _ in range(3):
            assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
        [answer] = wait_until(lambda: fake_slack.responses(), what="the launch answer")
        time.sleep(0.3)
    assert "validating" in json.dumps(answer["blocks"])
    assert store.scalar("SELECT count(*) FROM jobs") == 1 and len(fake.launches) == 1


def test_slack_launch_with_a_new_trigger_but_the_same_key_is_one_job(tmp_path, fake, version):
    from bot.slack.listeners.commands import run_slack_text

    settings = make_settings(tmp_path, operators=["U1"])
    services = svc(open_store(settings.db_path), settings)
    for trigger in ("a", "b"):
        outcome = run_slack_text(
            services,
            user_id="U1",
            text=f"launch {version.id} openai {MODEL} --key release-7",
            request_key=trigger,
        )
        assert outcome.ok
    assert services.store.scalar("SELECT count(*) FROM jobs") == 1


def mcp(settings, store, steps):
    async def go():
        async with Client(build_server(svc(store, settings))) as client:
            return await steps(client)

    return anyio.run(go)


def test_mcp_agent_retry_and_approval_flow(tmp_path, fake, version, cli, monkeypatch):
    """An agent over stdio acts as the OS user: that person may not approve its launch; another approver may."""
    from bot.slack.listeners.commands import run_slack_text

    settings = make_settings(tmp_path, auto_approve_usd=0, approvers=["UAPPROVER"])  # everything needs a human
    store = open_store(settings.db_path)
    monkeypatch.setenv("FINETUNE_AUTO_APPROVE_USD", "0")

    async def steps(client):
        args = {"version": version.id, "provider": "openai", "base_model": MODEL, "key": "agent-run-1"}
        first = await client.call_tool("launch_job", args)
        second = await client.call_tool("launch_job", args)
        listed = await client.call_tool("list_jobs", {})
        return first, second, listed

    first, second, listed = mcp(settings, store, steps)
    job = first.structured_content["job"]
    approval = first.structured_content["approval"]
    assert job["status"] == "pending_approval" and approval["status"] == "pending"
    assert second.structured_content["created"] is False and second.structured_content["job"]["id"] == job["id"]
    assert len(listed.structured_content["jobs"]) == 1 and not fake.launches
    pending = store.query("SELECT text FROM outbox WHERE kind = 'approval_requested'")
    assert approval["id"] in pending[0]["text"]

    code, _out, err = cli("approve", approval["id"], "--reason", "budget ok")  # the agent's own person
    assert code == 1 and "four eyes" in err and not fake.launches
    approved = run_slack_text(svc(store, settings), user_id="UAPPROVER", text=f"approve {approval['id']} --reason ok")
    assert approved.ok, approved.result
    assert len(fake.launches) == 1

    async def status(client):
        return await client.call_tool("job_status", {"job_id": job["id"]}), await client.call_tool(
            "cancel_job", {"job_id": job["id"]}
        )

    state, cancelled = mcp(settings, store, status)
    assert state.structured_content["status"] == "validating"
    assert cancelled.structured_content["status"] == "cancelled"
    faces = {(r["face"], r["command"]) for r in store.query("SELECT face, command FROM audit_log")}
    assert {("mcp", "launch_job"), ("slack", "approve"), ("mcp", "cancel_job")} <= faces


def test_slack_job_shows_the_state_and_uploads_a_loss_curve(tmp_path, fake, version, fake_slack):
    from core.providers.base import ProviderEvent
    from core.training.jobs import launch_job, poll_job

    settings = make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url
    )
    store = open_store(settings.db_path)
    job = launch_job(
        svc(store, settings), dataset_version=version.id, provider="openai", base_model=MODEL, actor=cli_actor()
    ).job
    fake.advance("ftjob-1", "running")
    fake.events_by_job["ftjob-1"] = [
        ProviderEvent(
            id=f"e{i}", at=f"2026-11-23T10:0{i}:00Z", kind="metrics", step=i * 10, metrics={"train_loss": 2.0 / (i + 1)}
        )
        for i in range(5)
    ]
    poll_job(svc(store, settings), job.id)
    body = slash_body(f"job {job.id}", response_url=fake_slack.response_url())
    with TestClient(build_app(svc(store, settings)), base_url="http://127.0.0.1") as client:
        assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
        [answer] = wait_until(lambda: fake_slack.responses(), what="the job answer")
        uploads = wait_until(
            lambda: [c.data for c in fake_slack.calls if c.path.startswith("/upload/")], what="the chart"
        )
        completed = wait_until(
            lambda: fake_slack.method_calls("files.completeUploadExternal"), what="the upload's completion"
        )
    shown = json.dumps(answer["blocks"])
    assert job.id in shown and "running" in shown and "train loss 0.400 at step 40" in shown
    assert uploads[0]["png"] and uploads[0]["size"] > 1000
    assert completed[0]["channel_id"] == "C1"


def test_loss_curve_png_is_a_real_image():
    from reports.charts import loss_curve_png

    png = loss_curve_png({"train_loss": [(1, 2.0), (2, 1.5), (3, 1.1)], "valid_loss": [(3, 1.3)]}, title="job_x")
    assert png is not None and png.startswith(b"\x89PNG") and len(png) > 5000
    assert loss_curve_png({}, title="empty") is None


def test_a_launch_whose_submission_fails_exits_non_zero_with_the_error(cli, fake, version):
    from core.providers.base import ProviderRefused

    fake.fail_next = [ProviderRefused("this organization may not fine-tune gpt-4o-mini", transient=False)]
    code, out, _ = cli("jobs", "launch", version.id, "--provider", "openai", "--base-model", MODEL)
    assert code == 1
    assert "failed" in out and "may not fine-tune gpt-4o-mini" in out


def test_a_launch_on_an_unconfigured_provider_exits_non_zero_and_writes_nothing(cli, version, store):
    code, _, err = cli("launch", version.id, "bedrock", "amazon.nova-micro-v1:0")
    assert code == 1 and "FINETUNE_BEDROCK_BUCKET" in err
    assert store.scalar("SELECT count(*) FROM jobs") == 0 and store.scalar("SELECT count(*) FROM approvals") == 0
