"""The glue every face shares: one invocation wrapper (policy, audit, error mapping), the assembled
groups, generic attachments in Slack, redelivery keys."""

import logging

import anyio
import pytest
from mcp import Client

from bot import invoke
from bot.commands import (
    ErrorResult,
    analytics,
    data,
    demo,
    evaluation,
    experiments,
    groups,
    loop,
    platform,
    registry,
    reports,
    templates,
    training,
    webhooks,
)
from bot.slack.blocks import render
from bot.slack.listeners.commands import run_slack_text
from bot.slack.listeners.redelivery import delivery_key
from core.errors import PermissionDenied
from core.training import JobDetail, JobEvent, JobEvents
from mcp_server.server import build_server
from tests.conftest import svc


def audit_rows(store, command):
    return store.query("SELECT face, outcome, detail FROM audit_log WHERE command = ?", (command,))


def call_tool(services, tool, args=None):
    async def go():
        async with Client(build_server(services)) as client:
            return await client.call_tool(tool, args or {})

    return anyio.run(go)


@pytest.fixture
def broken_status(monkeypatch):
    """`status` (every face) fails with an unexpected exception inside the core call."""

    def explode(store, **_):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(platform, "get_status", explode)
    monkeypatch.setattr("mcp_server.tools.platform.status.get_status", explode)


@pytest.fixture
def logged():
    """Records of `bot.invoke`'s logger, whatever the root logger's handlers (the CLI resets them)."""

    class Recorder(logging.Handler):
        records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    handler, logger = Recorder(logging.ERROR), logging.getLogger("bot.invoke")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def test_an_internal_error_is_a_reference_in_every_face_logged_and_audited_once(
    broken_status, cli, settings, store, logged
):
    code, out, err = cli("status")
    assert code == 1 and out == ""
    assert "Error: Something went wrong inside finetune-ops (reference " in err

    services = svc(store, settings)
    slack = run_slack_text(services, user_id="U1", text="status")
    assert isinstance(slack.result, ErrorResult) and slack.result.error == "InternalError"

    tool = call_tool(services, "get_status")
    assert tool.is_error and "Internal error in finetune-ops (reference " in tool.content[0].text

    rows = audit_rows(store, "status") + audit_rows(store, "get_status")
    assert [(r["face"], r["outcome"]) for r in rows] == [("cli", "error"), ("slack", "error"), ("mcp", "error")]
    assert all(r["detail"].startswith("internal error ") for r in rows)
    failures = [r for r in logged if r.exc_info and "disk on fire" in str(r.exc_info[1])]
    assert len(failures) == 3  # logger.exception, with the traceback, under the reference


def test_the_policy_hook_applies_to_every_face(monkeypatch, cli, settings, store):
    def refuse(svc, actor, command):
        raise PermissionDenied(f"{actor} may not run {command}.", hint="Ask an admin for the operator role.")

    monkeypatch.setattr(invoke, "check_policy", refuse)
    code, _, err = cli("status")
    assert code == 1 and "may not run status" in err and "Fix: Ask an admin" in err

    services = svc(store, settings)
    slack = run_slack_text(services, user_id="U1", text="status")
    assert slack.exit_code == 1 and isinstance(slack.result, ErrorResult)
    assert "slack:U1 may not run status" in slack.result.message

    tool = call_tool(services, "get_status")
    assert tool.is_error and "may not run get_status. Ask an admin" in tool.content[0].text
    outcomes = {(r["face"], r["outcome"]) for r in audit_rows(store, "status") + audit_rows(store, "get_status")}
    assert outcomes == {("cli", "error"), ("slack", "error"), ("mcp", "error")}


def test_a_core_error_reaches_an_agent_with_its_fix_and_one_audit_row(settings, store):
    tool = call_tool(svc(store, settings), "job_status", {"job_id": "nope"})
    assert tool.is_error and "nope" in tool.content[0].text
    assert [r["outcome"] for r in audit_rows(store, "job_status")] == ["error"]


def test_slack_offers_the_shared_commands_and_the_terminal_adds_its_own():
    shared = [
        c.name
        for module in (
            platform, data, training, registry, evaluation, experiments, templates, webhooks, analytics, loop, reports,
        )
        for c in module.SHARED
    ]  # fmt: skip
    terminal_only = [
        c.name
        for module in (data, training, registry, evaluation, reports, demo, platform)
        for c in module.TERMINAL
        if c.name not in shared  # the terminal's `report` takes the shared one's place (it adds --html)
    ]  # servers last
    assert list(groups.SLACK.commands) == shared
    assert list(groups.TERMINAL.commands) == shared + terminal_only
    assert groups.TERMINAL.commands["report"] is reports.TERMINAL[0]


def test_a_job_detail_carries_its_loss_curve_as_an_attachment():
    from core.training import Job

    given = {"id": "job_1", "provider": "local", "dataset_version": "d@1", "base_model": "tiny", "status": "running",
             "method": "supervised", "hyperparameters": {}, "requested_by": "cli:ann",
             "created_at": "2026-11-20T10:00:00Z", "updated_at": "2026-11-20T10:00:00Z"}  # fmt: skip
    job = Job.model_validate({**dict.fromkeys(Job.model_fields), **given})
    points = [
        JobEvent(at="2026-11-20T10:00:00Z", kind="metrics", message=None, step=i, metrics={"train_loss": 1 / i})
        for i in range(1, 4)
    ]
    message = render(JobDetail(job=job, events=JobEvents(job_id=job.id, events=points)))
    [chart] = message.files
    assert chart.filename == "job_1-loss.png" and chart.content.startswith(b"\x89PNG")
    assert render(JobDetail(job=job, events=JobEvents(job_id=job.id, events=[]))).files == []


def test_redeliveries_share_a_key():
    assert delivery_key({"event_id": "Ev1"}) == "event:Ev1"
    action = {"user": {"id": "U1"}, "actions": [{"action_id": "approve", "action_ts": "1.2"}]}
    assert delivery_key(action) == delivery_key(dict(action)) == "action:U1:approve:1.2"
    assert delivery_key({"trigger_id": "T9"}) == "trigger:T9"
    assert delivery_key({}) is None


def test_a_worker_that_cannot_record_its_delivery_still_answers(settings, store, monkeypatch):
    import sqlite3

    from bot.slack.listeners import redelivery

    def locked(store, key):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(redelivery.deliveries, "first_delivery", locked)
    assert redelivery.first_delivery(svc(store, settings), {"trigger_id": "T1"}) is True
