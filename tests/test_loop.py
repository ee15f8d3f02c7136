"""The closed loop end to end on real parts: a retraining request approved by a person, a job on a scripted
provider, the candidate evaluated by the real runner against production (its answers and the judge's served by
local chat APIs), a canary requested with the evaluation on its approval, its staged rollout promoted, or the
acceptance guard's rollback decided; one Slack thread per run; MCP starting and reading a run; a failed job
retried from its thread's button; a crash between two steps losing nothing and doubling nothing.
"""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from slack_sdk import WebClient
from starlette.testclient import TestClient

from bot.serve import build_app
from bot.slack.blocks import render
from bot.slack.blocks.loop import RETRY_ACTION
from bot.slack.delivery import ChannelPacer, deliver_due
from core import actions, inference, loop, registry
from core.analytics import retrain
from core.data import datasets, feedback
from core.errors import Conflict, PermissionDenied
from core.evaluation import guard_canaries, run_queued_evaluations
from core.inference import InferenceEngine
from core.loop import runs
from core.platform import approvals, events, outbox
from core.platform.actors import Actor, cli_actor
from core.platform.store import Store
from core.platform.timeutil import iso
from core.services import Services, build_services
from core.training import jobs
from core.vocabulary import Action, ApprovalState, Face, LoopOutcome, LoopStep, Provider, Role
from tests.chat_fakes import ANTHROPIC_KEY, OPENAI_KEY, ChatFake, Seen, start_chat_fake
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, wait_until
from tests.fake_provider import FakeProvider
from tests.feedback_samples import make_events
from tests.test_experiments import Clock, simulate, some
from tests.test_registry_mcp import session

ANN = Actor("ann", Face.CLI, role=Role.OPERATOR)
BOB = Actor("U2", Face.SLACK, role=Role.APPROVER)
CAT = Actor("U3", Face.SLACK, role=Role.APPROVER)
DAY = timedelta(days=1)
CHANNEL = "CLOOP"
BASE = "gpt-4.1-mini-2025-04-14"
GOOD, PLAIN = "GOOD: your order ships Monday.", "An answer."

_ANSWERS = re.compile(r"<answer_a>\n(.*?)\n</answer_a>.*?<answer_b>\n(.*?)\n</answer_b>", re.S)


# Local stand-ins for the chat APIs: the versions answer by model id, the judge prefers the answer marked GOOD -------


@dataclass
class Chats:
    openai: ChatFake
    judge: ChatFake
    answers: dict[str, str]  # model id -> what it answers


@pytest.fixture(scope="module")
def chats() -> Iterator[Chats]:
    openai, judge = start_chat_fake("openai"), start_chat_fake("anthropic")
    judge.thinking = False
    answers: dict[str, str] = {}

    def completion(seen: Seen) -> dict:
        reply = ChatFake._completion(openai, seen)
        reply["choices"][0]["message"]["content"] = answers.get(seen.body["model"], PLAIN)
        return reply

    def message(seen: Seen) -> dict:
        reply = ChatFake._message(judge, seen)
        found = _ANSWERS.search(seen.body["messages"][0]["content"])
        first, second = found.groups() if found else ("", "")
        pick = "A" if first.startswith("GOOD") and not second.startswith("GOOD") else "B" if second.startswith(
            "GOOD") and not first.startswith("GOOD") else "TIE"  # fmt: skip
        reply["content"][-1]["text"] = f"Verdict follows.\n\n**WINNER: {pick}**"
        return reply

    openai._completion = completion  # type: ignore[method-assign]
    judge._message = message  # type: ignore[method-assign]
    yield Chats(openai, judge, answers)
    openai.stop()
    judge.stop()


@dataclass
class World:
    services: Services
    store: Store
    clock: Clock
    fake: FakeProvider
    chats: Chats
    engine: InferenceEngine

    @property
    def svc(self):
        return self.services

    def ingest(self, events_: list[dict]) -> None:
        report = feedback.ingest_batch(self.store, events_, actor=cli_actor())
        assert report.error_count == 0, report

    def finish_job(self, job_id: str, *, model: str | None = None, error: str | None = None) -> None:
        provider_job = some(jobs.get_job(self.store, job_id).provider_job_id)
        self.fake.jobs[provider_job] = (
            {"status": "failed", "error": error} if error else {"status": "succeeded", "model": model}
        )
        jobs.poll_job(self.svc, job_id)

    def tick(self) -> loop.LoopRun:
        """What serve's scheduler does every few seconds, in order; returns the (only) run as it stands."""
        loop.advance_runs(self.svc)
        run_queued_evaluations(self.svc, engine=self.engine)
        loop.advance_runs(self.svc)
        runs = loop.list_runs(self.svc).runs
        return loop.get_run(self.svc, runs[0].id)


@pytest.fixture
def world(tmp_path, store, chats, fake_slack) -> Iterator[World]:
    fake = FakeProvider()
    settings = make_settings(
        tmp_path, openai_api_key=OPENAI_KEY, openai_base_url=f"{chats.openai.url}/v1", anthropic_api_key=ANTHROPIC_KEY,
        anthropic_base_url=chats.judge.url, retrain_provider=Provider.OPENAI, retrain_base_model=BASE,
        retrain_min_corrections=5, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
        slack_channel=CHANNEL, slack_api_url=fake_slack.api_url, operators=["U7"], loop_canary_plan="10,100", loop_canary_every="1d", loop_eval_max_cost_usd=None,
    )  # fmt: skip
    clock = Clock()
    services = build_services(settings, store=store, providers={Provider.OPENAI: lambda _: fake}, clock=clock)
    engine = inference.build_engine(settings)
    chats.answers.clear()
    w = World(services, store, clock, fake, chats, engine)
    # support@1 from 60 events, trained into support:v1, which serves production.
    w.ingest(make_events(60))
    first = datasets.build_dataset(store, name="support", actor=cli_actor())
    launched = jobs.launch_job(services, dataset_version=first.id, provider="openai", base_model=BASE, actor=ANN)
    w.finish_job(launched.job.id, model="ft:support:v1")
    chats.answers["ft:support:v1"] = PLAIN
    change = registry.request_deploy(services, actor=ANN, name="support", version=1, alias="production")
    for approver in (BOB, CAT):
        actions.decide(services, approval_id=some(change.approval).id, actor=approver, approve=True)
    # New corrections since support@1 was built: enough to propose retraining.
    w.ingest(make_events(45, start=1000, seed=11))
    yield w
    engine.close()


def start(w: World, actor: Actor = ANN) -> loop.LoopRun:
    run = loop.start_run(w.svc, agent="support", actor=actor)
    assert (run.step, run.outcome, run.model_name, run.alias) == (
        LoopStep.RETRAIN_APPROVAL,
        None,
        "support",
        "production",
    )
    return run


def approve(w: World, approval_id: str | None, *people: Actor) -> approvals.Approval:
    assert approval_id is not None
    decided = None
    for person in people:
        decided = actions.decide(w.svc, approval_id=approval_id, actor=person, approve=True)
    assert decided is not None
    return decided


def to_canary(w: World, candidate_answer: str) -> loop.LoopRun:
    """Start a run, approve its retraining, let its job succeed and its evaluation run; returns it at the canary's
    approval (or wherever the evaluation sent it)."""
    run = start(w)
    approve(w, run.retrain_approval_id, BOB)
    run = w.tick()
    assert run.step is LoopStep.TRAINING and run.job_id and run.dataset_version_id == "support@2"
    w.chats.answers["ft:support:v2"] = candidate_answer
    w.finish_job(run.job_id, model="ft:support:v2")
    return w.tick()


# The loop -------------------------------------------------------------------------------------------------------


def test_a_better_candidate_goes_from_corrections_to_production_through_each_human_step(world):
    w = world
    run = to_canary(w, GOOD)
    assert run.step is LoopStep.CANARY_APPROVAL and run.version_id == "support:v2" and run.evaluation_id
    canary = approvals.get(w.store, some(run.canary_approval_id))
    assert (canary.action, canary.status, canary.requested_by) == (Action.CANARY, ApprovalState.PENDING, "scheduler")
    assert "beats" in json.dumps(canary.facts), canary.facts  # the evaluation's headline is on the approval
    assert "support:v2" in some(canary.description)
    approve(w, canary.id, BOB, CAT)  # production needs two approvers
    run = w.tick()
    assert run.step is LoopStep.CANARY and run.rollout_id
    state = some(registry.alias_state(w.store, "support", "production"))
    assert (state.version_id, state.canary_version_id, state.canary_share) == ("support:v1", "support:v2", 10)
    w.clock.now += 2 * DAY
    registry.advance_due(w.svc, now=w.clock())
    run = w.tick()
    assert (run.step, run.outcome) == (LoopStep.DONE, LoopOutcome.PROMOTED), run.reason
    state = some(registry.alias_state(w.store, "support", "production"))
    assert (state.version_id, state.canary_version_id) == ("support:v2", None)
    steps = [step.step for step in run.steps]
    assert steps == [
        LoopStep.RETRAIN_APPROVAL, LoopStep.TRAINING, LoopStep.EVALUATING, LoopStep.CANARY_APPROVAL, LoopStep.CANARY,
        LoopStep.DONE,
    ]  # fmt: skip
    assert loop.advance_runs(w.svc) == 0  # nothing left to do: no step is taken twice
    audited = [row["command"] for row in w.store.query("SELECT command FROM audit_log WHERE command LIKE 'loop_%'")]
    assert audited.count("loop_step") == 5 and audited.count("loop_start") == 1


def test_a_candidate_the_evaluation_finds_worse_is_not_deployed(world):
    w = world
    w.chats.answers["ft:support:v1"] = GOOD
    run = to_canary(w, PLAIN)
    assert (run.step, run.outcome) == (LoopStep.DONE, LoopOutcome.NOT_DEPLOYED), run.reason
    assert "worse" in some(run.reason)
    assert some(registry.alias_state(w.store, "support", "production")).canary_version_id is None
    assert not [a for a in approvals.pending(w.store).approvals if a.action == Action.CANARY]


def test_a_canary_the_guard_finds_worse_is_rolled_back_once_people_agree(world):
    w = world
    run = to_canary(w, GOOD)
    approve(w, run.canary_approval_id, BOB, CAT)
    run = w.tick()
    assert run.step is LoopStep.CANARY
    since = w.clock()
    w.ingest(simulate(since, days=4, per_day=200, share=0.1, rates=(0.85, 0.55), seed=5,
                      treatment="support:v2", control="support:v1"))  # fmt: skip
    w.clock.now = since + 5 * DAY - timedelta(hours=1)  # before the plan's next stage would promote it
    assert guard_canaries(w.svc) == 1
    run = w.tick()
    assert run.step is LoopStep.ROLLBACK_APPROVAL and run.rollback_approval_id
    assert "significantly" in run.steps[-1].text
    approve(w, run.rollback_approval_id, BOB, CAT)
    run = w.tick()
    assert (run.step, run.outcome) == (LoopStep.DONE, LoopOutcome.ROLLED_BACK), run.reason
    state = some(registry.alias_state(w.store, "support", "production"))
    assert (state.version_id, state.canary_version_id) == ("support:v1", None)


def test_a_rejected_retraining_ends_the_run_and_nobody_approves_their_own(world):
    w = world
    run = start(w, actor=Actor("U2", Face.SLACK, role=Role.APPROVER))  # an approver asks
    with pytest.raises(PermissionDenied):
        actions.decide(
            w.svc, approval_id=some(run.retrain_approval_id), actor=BOB, approve=True
        )  # ... their own request
    actions.decide(w.svc, approval_id=some(run.retrain_approval_id), actor=CAT, approve=False, reason="not this week")
    run = w.tick()
    assert (run.outcome, run.step) == (LoopOutcome.REJECTED, LoopStep.DONE)
    assert "not this week" in some(run.reason)


def test_one_run_per_model_and_the_triggers_requests_become_runs(world):
    w = world
    first = start(w)
    with pytest.raises(Conflict, match="already has loop run"):
        loop.start_run(w.svc, agent="support", actor=ANN)
    loop.cancel_run(w.svc, run_id=first.id, actor=ANN, reason="testing")
    approvals.cancel_pending(w.store, some(first.retrain_approval_id))
    proposals = retrain.check_retraining(w.svc)  # the scheduler's own trigger
    assert [p.agent for p in proposals] == ["support"]
    assert loop.adopt_retrain_requests(w.svc) == 1
    [adopted, cancelled] = loop.list_runs(w.svc).runs
    assert (adopted.retrain_approval_id, adopted.requested_by, cancelled.outcome) == (
        proposals[0].approval.id, "scheduler:scheduler", LoopOutcome.CANCELLED,
    )  # fmt: skip
    assert loop.adopt_retrain_requests(w.svc) == 0


def test_a_failed_job_ends_the_run_with_its_reason_and_a_retry_relaunches_it(world):
    w = world
    run = start(w)
    approve(w, run.retrain_approval_id, BOB)
    run = w.tick()
    w.finish_job(run.job_id, error="training file rejected: too few examples")
    run = w.tick()
    assert run.outcome is LoopOutcome.FAILED and "too few examples" in some(run.reason)
    retried = loop.retry_run(w.svc, run_id=run.id, actor=ANN)
    assert (retried.step, retried.outcome, retried.attempt) == (LoopStep.TRAINING, None, 2)
    assert retried.job_id != run.job_id
    again = loop.retry_run  # a second retry of a run that is not failed is refused
    with pytest.raises(Conflict, match="only a failed run"):
        again(w.svc, run_id=run.id, actor=ANN)


def test_a_crash_inside_a_step_loses_nothing_and_the_next_tick_doubles_nothing(world, monkeypatch):
    w = world
    run = start(w)
    approve(w, run.retrain_approval_id, BOB)
    run = w.tick()
    w.chats.answers["ft:support:v2"] = GOOD
    w.finish_job(run.job_id, model="ft:support:v2")
    real = outbox.enqueue

    def crash(*args, **kwargs):
        raise SystemExit("killed")  # the process dies after the evaluation was requested, before the step commits

    monkeypatch.setattr(outbox, "enqueue", crash)
    with pytest.raises(SystemExit):
        loop.advance(w.svc, run.id)
    monkeypatch.setattr(outbox, "enqueue", real)
    assert loop.get_run(w.svc, run.id).step is LoopStep.TRAINING  # the step rolled back whole
    assert w.store.scalar("SELECT COUNT(*) FROM evaluations") == 0
    assert loop.advance(w.svc, run.id) >= 1
    assert loop.advance(w.svc, run.id) == 0
    assert w.store.scalar("SELECT COUNT(*) FROM evaluations") == 1
    assert loop.get_run(w.svc, run.id).step is LoopStep.EVALUATING


def test_two_processes_racing_on_one_step_take_it_once(world):
    w = world
    run = start(w)
    approve(w, run.retrain_approval_id, BOB)
    row = w.store.query("SELECT revision FROM loop_runs WHERE id = ?", (run.id,))[0]
    seen = loop.get_run(w.svc, run.id)
    moves = [some(runs._next(w.svc, seen)) for _ in range(2)]  # both read the same state and chose the same step
    applied = [runs._apply(w.svc, seen, row["revision"], move) for move in moves]
    assert applied == [True, False]
    assert [step.step for step in loop.get_run(w.svc, run.id).steps] == [LoopStep.RETRAIN_APPROVAL, LoopStep.TRAINING]


# Slack: one thread per run ------------------------------------------------------------------------------------


def deliver(w: World, fake_slack) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)
    pacer = ChannelPacer(per_second=1000, burst=1000)
    for _ in range(5):  # a reply waiting for its thread's first message goes on the next run
        deliver_due(w.store, client, default_channel=CHANNEL, pacer=pacer)
        w.store.db.execute("UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending'", (iso(),))


def test_slack_shows_one_thread_per_run_with_its_approvals_and_steps_in_it(world, fake_slack):
    w = world
    run = start(w)
    deliver(w, fake_slack)
    [first] = [m for m in fake_slack.posted if m["text"].startswith(f"Loop run {run.id}") and not m.get("thread_ts")]
    replies = lambda: [m for m in fake_slack.posted if m.get("thread_ts") == first["ts"]]  # noqa: E731
    [asked] = [m for m in replies() if run.retrain_approval_id in m["text"] and "Approval needed" in m["text"]]
    assert any(block.get("type") == "actions" for block in asked["blocks"])  # its buttons, in the thread
    assert any(m["text"].startswith("1. Retraining of support requested") for m in replies())
    approve(w, run.retrain_approval_id, BOB)
    run = w.tick()
    deliver(w, fake_slack)
    texts = [m["text"] for m in replies()]
    assert any(text.startswith("2. Retraining approved by <@U2>") for text in texts), texts
    edits = [u for u in fake_slack.method_calls("chat.update") if u.get("ts") == asked["ts"]]
    assert edits and "approved by <@U2>" in edits[-1]["text"]  # the request in the thread shows its decision
    updates = [u for u in fake_slack.method_calls("chat.update") if u.get("ts") == first["ts"]]
    assert updates and "the fine-tuning job to finish" in updates[-1]["text"]  # the summary follows the run
    assert not [m for m in fake_slack.posted if m["text"].startswith(f"Loop run {run.id}") and m is not first
                and not m.get("thread_ts")]  # fmt: skip


def test_a_failed_runs_retry_button_relaunches_its_job_as_the_person_who_clicked(world, fake_slack):
    w = world
    services = w.svc
    run = start(w)
    approve(w, run.retrain_approval_id, BOB)
    run = w.tick()
    w.finish_job(run.job_id, error="the provider refused the file")
    run = w.tick()
    assert run.outcome is LoopOutcome.FAILED
    [button] = [b for b in some(render(events.LoopChanged(
        run_id=run.id, model_name="support", alias="production", step=run.step, outcome=run.outcome,
        waiting_for=run.waiting_for(), latest=run.reason or "", retry=True,
    )).blocks) if b.get("type") == "actions"]  # fmt: skip
    assert button["elements"][0]["action_id"] == RETRY_ACTION and button["elements"][0]["value"] == run.id
    body = urllib.parse.urlencode({"payload": json.dumps({
        "type": "block_actions", "team": {"id": "T1"}, "user": {"id": "U7", "team_id": "T1"}, "api_app_id": "A1",
        "trigger_id": "trig-1", "container": {"type": "message", "message_ts": "1.000001", "channel_id": CHANNEL},
        "channel": {"id": CHANNEL}, "message": {"ts": "1.000001", "text": "Loop run"},
        "response_url": "http://127.0.0.1:9/unused",
        "actions": [{"type": "button", "action_id": RETRY_ACTION, "block_id": f"loop:{run.id}", "value": run.id,
                     "action_ts": "1.5"}],
    })})  # fmt: skip
    with TestClient(build_app(services), base_url="http://127.0.0.1") as client:
        assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
        wait_until(lambda: loop.get_run(services, run.id).outcome is None, what="the retry")
        client.post("/slack/events", content=body, headers=sign(body))  # Slack's retry of the same click
        time.sleep(0.5)
    retried = loop.get_run(services, run.id)
    assert (retried.step, retried.attempt) == (LoopStep.TRAINING, 2) and retried.job_id != run.job_id
    [row] = w.store.query("SELECT actor, face FROM audit_log WHERE command = 'loop_retry'")
    assert (row["actor"], row["face"]) == ("U7", "slack")


# MCP: an agent starts and follows a run, and can decide nothing ----------------------------------------------


def test_an_agent_drives_a_run_from_start_to_promotion_stopping_at_each_human_step(world):
    w = world
    tools, [started] = session(w.svc, ("start_loop", {"agent": "support"}))
    assert not started.is_error, started
    run = started.structured_content
    assert (run["step"], run["outcome"], run["model_name"]) == ("retrain_approval", None, "support")
    names = {tool.name for tool in tools}
    assert {"start_loop", "get_loop_run", "list_loop_runs", "retry_loop_run"} <= names
    assert not [name for name in names if name.startswith(("approve", "decide", "reject"))]  # no tool decides
    approval = approvals.get(w.store, run["retrain_approval_id"])
    assert approval.requested_via == Face.MCP and approval.status is ApprovalState.PENDING
    approve(w, approval.id, BOB)  # a person decides
    w.tick()
    _, [read] = session(w.svc, ("get_loop_run", {"run_id": run["id"]}))
    shown = read.structured_content
    assert shown["step"] == "training" and shown["job_id"] and [step["step"] for step in shown["steps"]] == [
        "retrain_approval", "training",
    ]  # fmt: skip
    w.chats.answers["ft:support:v2"] = GOOD
    w.finish_job(shown["job_id"], model="ft:support:v2")
    w.tick()
    _, [read, pending] = session(w.svc, ("get_loop_run", {"run_id": run["id"]}), ("list_approvals", {}))
    shown = read.structured_content
    assert shown["step"] == "canary_approval" and shown["canary_approval_id"]
    assert shown["canary_approval_id"] in json.dumps(pending.structured_content)  # the agent sees what waits
    approve(w, shown["canary_approval_id"], BOB, CAT)  # people decide, in Slack or a terminal
    w.tick()
    w.clock.now += 2 * DAY
    registry.advance_due(w.svc, now=w.clock())
    w.tick()
    _, [read] = session(w.svc, ("get_loop_run", {"run_id": run["id"]}))
    assert (read.structured_content["step"], read.structured_content["outcome"]) == ("done", "promoted")


def test_with_slack_down_the_thread_waits_and_arrives_whole_once_slack_is_back(world, fake_slack):
    w = world
    fake_slack.fail_status = 503
    run = start(w)
    deliver(w, fake_slack)
    assert not fake_slack.posted
    fake_slack.fail_status = None
    deliver(w, fake_slack)
    [first] = [m for m in fake_slack.posted if m["text"].startswith(f"Loop run {run.id}") and not m.get("thread_ts")]
    replies = [m["text"] for m in fake_slack.posted if m.get("thread_ts") == first["ts"]]
    assert sum(run.retrain_approval_id in text for text in replies) == 1  # the request, once, in its thread
    assert sum(text.startswith("1. ") for text in replies) == 1
    before = len(fake_slack.posted)
    deliver(w, fake_slack)
    assert len(fake_slack.posted) == before  # nothing posted twice


# kill -9 of serve, twice, in the middle of a run --------------------------------------------------------------


def test_a_run_resumes_where_serve_was_killed_and_nothing_is_doubled(tmp_path, start_serve):
    """A run whose local job is training when serve is killed -9: the next serve re-attaches the job, the run goes
    on to its deploy request; killed again there, the next serve requests nothing twice."""
    settings = make_settings(tmp_path, retrain_provider=Provider.LOCAL, retrain_base_model="tiny",
                             retrain_min_corrections=5)  # fmt: skip
    services = build_services(settings)
    store = services.store
    feedback.ingest_batch(store, make_events(60), actor=cli_actor())
    datasets.build_dataset(store, name="support", actor=cli_actor())
    feedback.ingest_batch(store, make_events(45, start=1000, seed=11), actor=cli_actor())
    run = loop.start_run(services, agent="support", actor=ANN)
    actions.decide(services, approval_id=some(run.retrain_approval_id), actor=CAT, approve=True)  # launches the job
    env = {"FINETUNE_RETRAIN_PROVIDER": "local", "FINETUNE_RETRAIN_BASE_MODEL": "tiny", "FINETUNE_POLL_SECONDS": "1"}

    serve = start_serve(settings, **env)
    wait_until(lambda: loop.get_run(services, run.id).step is LoopStep.TRAINING, timeout=30, what="the run training")
    serve.stop(signal.SIGKILL)  # the job's worker is a process of its own: it trains on

    serve = start_serve(settings, **env)
    wait_until(
        lambda: loop.get_run(services, run.id).step is LoopStep.CANARY_APPROVAL, timeout=120,
        what="the run past its job (support@production serves nothing yet: a first deploy is requested)",
    )  # fmt: skip
    serve.stop(signal.SIGKILL)
    serve = start_serve(settings, **env)
    time.sleep(2)  # serve advances every run at start: give it the chance to double something
    serve.stop()

    resumed = loop.get_run(services, run.id)
    assert [step.step for step in resumed.steps] == [
        LoopStep.RETRAIN_APPROVAL, LoopStep.TRAINING, LoopStep.CANARY_APPROVAL,
    ]  # fmt: skip
    assert store.scalar("SELECT COUNT(*) FROM jobs") == 1
    assert store.scalar("SELECT status FROM jobs") == "succeeded"
    assert store.scalar("SELECT COUNT(*) FROM approvals WHERE action = 'deploy'") == 1
    assert store.scalar("SELECT COUNT(*) FROM model_versions") == 1
    services.close()
