"""The retraining trigger: enough new corrections become one approval to build and train the next version."""

from __future__ import annotations

import json
import random

import anyio
import pytest
from mcp import Client
from starlette.testclient import TestClient

from bot.slack.blocks import render
from core import actions
from core.analytics import NothingToRetrain, check_retraining, propose_retrain
from core.data import datasets, exports, feedback
from core.errors import Conflict, NotFound, PermissionDenied
from core.platform import approvals, scheduler
from core.platform.actors import Actor, cli_actor
from core.providers.base import ProviderNotConfigured
from core.services import build_services
from core.training import jobs
from core.training.hyperparams import suggest_hyperparameters
from core.vocabulary import Action, ApprovalState, Face, JobState, Provider, Role
from mcp_server.server import build_server
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, slash_body, svc, wait_until
from tests.fake_provider import FakeProvider
from tests.feedback_samples import WORDS, make_events

MODEL = "gpt-4o-mini-2024-07-18"
ANN = Actor("UANN", Face.SLACK, role=Role.APPROVER)
BOB = Actor("UBOB", Face.SLACK, role=Role.APPROVER)
AGENT = Actor("claude-desktop", Face.MCP, role=Role.ADMIN)
RETRAIN = {
    "retrain_min_corrections": 5, "retrain_min_quality": 0.5, "retrain_provider": "openai",
    "retrain_base_model": MODEL,
}  # fmt: skip


def corrections(n: int, *, agent: str = "support", start: int = 0, rating: int = 5) -> list[dict]:
    """`n` corrections of `agent`: drafts the user rewrote before sending, each about other things (no near-twins)."""
    events = []
    for i in range(start, start + n):
        rng = random.Random(i)
        words = " ".join(rng.choice(WORDS) for _ in range(30))
        event = {
            "id": f"fix-{agent}-{i}", "agent": agent, "prompt": f"Question {i}: {words[:60]}",
            "output": f"Draft {i}: {words}", "final": f"Corrected {i}: {' '.join(reversed(words.split()))}",
            "rating": rating, "created_at": "2026-11-10T09:00:00Z",
        }  # fmt: skip
        events.append(event)
    return events


def ingest(store, events: list[dict]) -> None:
    report = feedback.ingest_batch(store, events, actor=cli_actor())
    assert report.ingested == len(events), report


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def services(tmp_path, store, fake):
    """`support@1` holds agent support's examples; retraining goes to the fake OpenAI, 5 corrections at quality 0.5."""
    ingest(store, make_events(60))
    recipe = datasets.recipe_from(filters={"agents": ["support"]})
    datasets.build_dataset(store, name="support", actor=cli_actor(), recipe=recipe)
    return svc(store, make_settings(tmp_path, **RETRAIN), {Provider.OPENAI: lambda settings: fake})


def retrain_approvals(store) -> list[approvals.Approval]:
    rows = store.query("SELECT id FROM approvals WHERE action = 'retrain' ORDER BY created_at")
    return [approvals.get(store, row["id"]) for row in rows]


def test_below_the_threshold_nothing_is_proposed(services, store):
    not_counted = [
        *corrections(1, start=100, rating=1),  # quality 0.4: below FINETUNE_RETRAIN_MIN_QUALITY
        *corrections(3, agent="sales"),  # another agent's
        {"id": "kept", "agent": "support", "prompt": "Hi", "output": "Hello!", "final": "Hello!", "rating": 5},
        {"id": "unedited", "agent": "support", "prompt": "Hey", "output": "Hey there!", "rating": 4},
    ]
    ingest(store, [*corrections(4), *not_counted])
    assert check_retraining(services) == [] and retrain_approvals(store) == []


def test_above_the_threshold_one_approval_with_the_count_and_the_cost(services, store):
    ingest(store, [*corrections(6), *corrections(1, start=100, rating=1)])
    [proposal] = check_retraining(services)
    last = datasets.get_version(store, "support@1")
    export = exports.get_export(store, version="support@1", target="openai", model=MODEL)
    assert export is not None
    trained = last.counts["splits"]["train"]
    tokens = round(export.train_tokens * (trained + 5) / trained)  # 6 corrections x 0.8 to train = 5 more examples
    epochs = suggest_hyperparameters(
        base_model=MODEL, n_train=trained + 5, mean_tokens=export.train_tokens / trained, catalog=services.catalog
    ).epochs
    usd = round(tokens * epochs * 3.0 / 1_000_000, 4)  # the catalog's $3.00 per 1M trained tokens
    assert proposal.corrections == 6 and proposal.next_version == "support@2" and proposal.since_version == "support@1"
    assert proposal.estimate.training_tokens == tokens and proposal.estimate.usd == pytest.approx(usd)
    approval = proposal.approval
    assert approval.action is Action.RETRAIN and approval.subject_id == "support" and approval.status == "pending"
    assert approval.requested_by == "scheduler" and approval.estimated_cost_usd == pytest.approx(usd)
    assert approval.description == (
        f"6 new corrections for support since support@1; retrain on {MODEL} for ~${usd:,.2f}?"
    )
    assert store.scalar("SELECT count(*) FROM audit_log WHERE command = 'request_approval'") == 1


def test_the_slack_message_reads_as_a_question_with_approve_and_reject(services, store):
    ingest(store, corrections(6))
    [proposal] = check_retraining(services)
    message = render(approvals.request_event(proposal.approval))
    blocks = json.dumps(message.blocks)
    assert "6 new corrections for support since support@1; retrain on" in message.text
    assert '"Approve"' in blocks and '"Reject"' in blocks and proposal.approval.id in blocks
    queued = store.scalar("SELECT event FROM outbox WHERE message_key = ?", (f"approval:{proposal.approval.id}",))
    assert queued is not None and "retrain" in queued


def test_one_open_proposal_per_agent(services, store, fake):
    ingest(store, corrections(6))
    [proposal] = check_retraining(services)
    ingest(store, corrections(6, start=50))
    assert check_retraining(services) == []  # pending: not proposed again
    with pytest.raises(Conflict, match=proposal.approval.id):
        propose_retrain(services, agent="support", actor=ANN)
    actions.decide(services, approval_id=proposal.approval.id, actor=BOB, approve=True)
    ingest(store, corrections(6, start=200))
    assert check_retraining(services) == []  # its job runs: still not
    job_id = approvals.get(store, proposal.approval.id).payload["job_id"]
    fake.advance(fake.by_key[job_id], "succeeded", model="ft:support:2")
    assert jobs.poll_job(services, job_id).status is JobState.SUCCEEDED
    [again] = check_retraining(services)  # the job finished: the 6 corrections since support@2 count
    assert again.corrections == 6 and again.since_version == "support@2" and again.next_version == "support@3"


def test_approving_builds_the_next_version_and_launches_its_job(services, store, fake):
    ingest(store, corrections(6))
    [proposal] = check_retraining(services)
    decided = actions.decide(services, approval_id=proposal.approval.id, actor=BOB, approve=True)
    assert decided.status is ApprovalState.APPROVED
    built = datasets.get_version(store, "support@2")
    fixed = {row["feedback_id"] for row in store.query("SELECT feedback_id FROM dataset_examples "
                                                      "WHERE dataset_version_id = 'support@2'")}  # fmt: skip
    assert {f"fix-support-{i}" for i in range(6)} <= fixed and built.recipe.model_dump(
        mode="json"
    ) == proposal.approval.payload["recipe"]
    payload = approvals.get(store, proposal.approval.id).payload
    job = jobs.get_job(store, payload["job_id"])
    assert payload["dataset_version"] == "support@2" and job.dataset_version == "support@2"
    assert job.provider is Provider.OPENAI and job.base_model == MODEL and job.status is JobState.VALIDATING
    assert len(fake.launches) == 1  # through the normal launch path, under FINETUNE_AUTO_APPROVE_USD
    assert store.scalar("SELECT detail FROM audit_log WHERE command = 'retrain'").startswith("built support@2")


def test_approving_over_budget_launches_into_the_budget_s_own_approval(tmp_path, store, fake):
    ingest(store, make_events(60))
    datasets.build_dataset(
        store, name="support", actor=cli_actor(), recipe=datasets.recipe_from(filters={"agents": ["support"]})
    )
    services = svc(store, make_settings(tmp_path, auto_approve_usd=0, **RETRAIN), {Provider.OPENAI: lambda s: fake})
    ingest(store, corrections(6))
    [proposal] = check_retraining(services)
    actions.decide(services, approval_id=proposal.approval.id, actor=BOB, approve=True)
    job = jobs.get_job(store, approvals.get(store, proposal.approval.id).payload["job_id"])
    assert job.status is JobState.PENDING_APPROVAL and job.approval_id and not fake.launches


def test_an_approved_retraining_that_cannot_start_says_why_and_frees_the_agent(services, store):
    ingest(store, corrections(6))
    [proposal] = check_retraining(services)
    unconfigured = svc(store, services.settings)  # the real OpenAI provider, without an API key
    with pytest.raises(ProviderNotConfigured):
        actions.decide(unconfigured, approval_id=proposal.approval.id, actor=BOB, approve=True)
    approval = approvals.get(store, proposal.approval.id)
    assert approval.status is ApprovalState.APPROVED and "job_id" not in approval.payload and approval.payload["error"]
    notice = store.scalar("SELECT event FROM outbox WHERE event LIKE '%could not start%'")
    assert notice is not None and proposal.approval.id in notice
    assert store.scalar("SELECT outcome FROM audit_log WHERE command = 'retrain'") == "error"
    ingest(store, corrections(6, start=300))
    [again] = check_retraining(services)  # not stuck behind the failed one
    assert again.approval.id != proposal.approval.id


def test_the_requester_cannot_approve_and_an_agent_cannot_decide(services, store):
    ingest(store, corrections(2))
    approval = propose_retrain(services, agent="support", actor=ANN)  # asked by a person: any count above zero
    assert approval.description is not None
    assert approval.requested_by == "UANN" and "2 new corrections for support" in approval.description
    with pytest.raises(PermissionDenied, match="four eyes"):
        actions.decide(services, approval_id=approval.id, actor=ANN, approve=True)
    with pytest.raises(PermissionDenied):
        actions.decide(services, approval_id=approval.id, actor=AGENT, approve=True)
    assert approvals.get(store, approval.id).status == "pending"
    assert store.scalar("SELECT count(*) FROM dataset_versions") == 1 and not store.query("SELECT id FROM jobs")


def test_nothing_new_and_no_dataset_are_named_errors(services, store):
    with pytest.raises(NothingToRetrain, match="no new corrections for support since support@1") as refused:
        propose_retrain(services, agent="support", actor=ANN)
    assert refused.value.hint is not None and "ingest" in refused.value.hint
    with pytest.raises(NotFound, match="agent 'nobody' has no dataset version") as missing:
        propose_retrain(services, agent="nobody", actor=ANN)
    assert missing.value.hint is not None and "finetune data build nobody --agent nobody" in missing.value.hint


def test_the_scheduler_job_proposes_and_records_its_run(services, store):
    ingest(store, corrections(5))
    scheduler.check_retraining(services)
    assert store.scalar("SELECT detail FROM scheduler_runs WHERE job_id = 'retrain'") == "proposed 1: support"
    assert len(retrain_approvals(store)) == 1


# Faces --------------------------------------------------------------------------------------------------


def test_the_terminal_requests_a_proposal(services, store, cli, monkeypatch):
    for name, value in {"RETRAIN_PROVIDER": "openai", "RETRAIN_BASE_MODEL": MODEL}.items():
        monkeypatch.setenv(f"FINETUNE_{name}", value)
    ingest(store, corrections(3))
    code, out, _ = cli("retrain", "support")
    assert code == 0 and "3 new corrections for support since support@1; retrain on" in out
    [approval] = retrain_approvals(store)
    assert f"finetune approve {approval.id}" in out
    code, _, err = cli("retrain", "support")
    assert code == 1 and "already has a retraining proposal" in err


def test_an_agent_may_request_over_mcp_but_never_decide(services, store):
    ingest(store, corrections(3))

    async def go():
        async with Client(build_server(services)) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            first = await client.call_tool("propose_retrain", {"agent": "support"})
            second = await client.call_tool("propose_retrain", {"agent": "support"})
            return tools, first, second

    tools, first, second = anyio.run(go)
    assert not tools["propose_retrain"].annotations.read_only_hint and "approve" not in tools
    assert not first.is_error and first.structured_content["corrections"] == 3
    assert second.is_error and "already has a retraining proposal" in second.content[0].text
    [approval] = retrain_approvals(store)
    mcp = Actor(approval.requested_by, Face.MCP, role=Role.ADMIN)
    with pytest.raises(PermissionDenied):
        actions.decide(services, approval_id=approval.id, actor=mcp, approve=True)


def test_slack_requests_a_proposal(tmp_path, store, fake_slack, services):
    from bot.serve import build_app

    settings = make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url,
        operators=["U123"], **RETRAIN,
    )  # fmt: skip
    ingest(store, corrections(4))
    with TestClient(build_app(build_services(settings, store=store)), base_url="http://127.0.0.1") as client:
        body = slash_body("retrain support", response_url=fake_slack.response_url("retrain"))
        assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
        [answer] = wait_until(lambda: fake_slack.responses("retrain"), what="the retrain answer")
    [approval] = retrain_approvals(store)
    assert approval.requested_by == "U123" and approval.id in json.dumps(answer["blocks"])
    assert "4 new corrections for support since support@1" in answer["text"]


def test_the_channel_gets_the_question_and_its_approve_button_starts_the_training(tmp_path, store, fake_slack, fake):
    from slack_sdk import WebClient

    from bot.serve import build_app
    from bot.slack.delivery import deliver_due
    from tests.test_slack_approvals import CHANNEL, click

    ingest(store, make_events(60))
    datasets.build_dataset(
        store, name="support", actor=cli_actor(), recipe=datasets.recipe_from(filters={"agents": ["support"]})
    )
    settings = make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url,
        slack_channel=CHANNEL, approvers=["UAPPROVER"], **RETRAIN,
    )  # fmt: skip
    services = svc(store, settings, {Provider.OPENAI: lambda s: fake})
    ingest(store, corrections(5))
    [proposal] = check_retraining(services)
    deliver_due(store, WebClient(token=BOT_TOKEN, base_url=fake_slack.api_url), default_channel=CHANNEL)
    [posted] = [p for p in fake_slack.posted if proposal.approval.id in p["text"]]
    assert "5 new corrections for support since support@1; retrain on" in posted["text"]
    with TestClient(build_app(services), base_url="http://127.0.0.1") as client:
        body = click(proposal.approval.id, posted["ts"])
        assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
        payload = wait_until(lambda: approvals.get(store, proposal.approval.id).payload.get("job_id") and
                             approvals.get(store, proposal.approval.id).payload, what="the launch")  # fmt: skip
    assert payload["dataset_version"] == "support@2" and len(fake.launches) == 1
