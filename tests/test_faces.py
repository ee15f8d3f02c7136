"""`status` gives the same facts in the CLI, Slack and MCP, on the same database."""

import json

import anyio
from mcp import Client

from bot.slack.blocks import render_outcome
from bot.slack.listeners.commands import run_slack_text
from core.platform import counters
from core.platform.status import get_status
from mcp_server.server import build_server
from tests.conftest import finetune_env, run_finetune, svc

T = "2026-11-20T10:00:00.000000Z"


def seed(store):
    with store.write() as db:
        for i in range(3):
            db["feedback"].insert(
                {"id": f"fb{i}", "content_hash": f"h{i}", "agent": "support", "input_messages": "[]",
                 "ai_output": "draft", "created_at": T, "ingested_at": T}
            )  # fmt: skip
        counters.bump(store, counters.FEEDBACK_EVENTS, 3)  # as ingest does: status reads the counter
        db["datasets"].insert({"id": "ds1", "name": "support", "created_by": "ann", "created_at": T})
        db["dataset_versions"].insert(
            {"id": "ds1@1", "dataset_id": "ds1", "version": 1, "split_seed": 7, "content_hash": "c", "created_by": "ann",
             "created_at": T}
        )  # fmt: skip
        for job_id, state in (("j1", "running"), ("j2", "succeeded"), ("j3", "running"), ("j4", "pending_approval")):
            db["jobs"].insert(
                {"id": job_id, "provider": "local", "dataset_version_id": "ds1@1", "base_model": "tiny", "status": state,
                 "requested_by": "ann", "created_at": T, "updated_at": T}
            )  # fmt: skip
        db["model_versions"].insert(
            {"id": "mv1", "name": "support", "version": 2, "provider": "local", "job_id": "j2", "created_at": T}
        )
        db["model_aliases"].insert(
            {"model_name": "support", "alias": "production", "model_version_id": "mv1", "updated_at": T}
        )
        db["approvals"].insert(
            {"id": "ap1", "action": "launch", "requested_by": "bob", "requested_via": "mcp", "created_at": T}
        )
        db["scheduler_runs"].insert({"job_id": "heartbeat", "last_run_at": T, "outcome": "ok"})


def test_status_is_the_same_in_every_face(settings, store):
    seed(store)
    expected = get_status(store, settings=settings).model_dump()
    assert expected["jobs_by_state"]["running"] == 2
    assert expected["models_by_alias"] == {"support@production": "support v2"}

    cli = run_finetune(["status", "--json"], finetune_env(settings))
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == expected

    services = svc(store, settings)

    async def via_mcp():
        async with Client(build_server(services)) as client:
            return await client.call_tool("get_status", {})

    assert anyio.run(via_mcp).structured_content == expected

    message = render_outcome(run_slack_text(services, user_id="U1", text="status"))
    shown = json.dumps(message.blocks)
    for fact in (
        "Feedback events*\\n3",
        "1 versions",
        "running 2",
        "succeeded 1",
        "pending_approval 1",
        "`support@production` \\u2192 support v2",
        "Pending approvals*\\n1",
        T,
    ):
        assert fact in shown, fact  # fmt: skip
    assert "running 2" in message.text

    terminal = run_finetune(["status"], finetune_env(settings, COLUMNS="200"))
    for fact in ("running 2", "support@production → support v2", T):
        assert fact in terminal.stdout
