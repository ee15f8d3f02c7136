"""The evaluation policy: with FINETUNE_REQUIRE_EVALUATION=production, a version enters production (deploy, canary,
promotion) only once its newest finished evaluation against what production serves passes the margin; otherwise
the request is refused on every face with what to run, and a request already waiting cannot be approved.

Evaluations here are real runs: two OpenAI fine-tunes answer a dataset version's test examples through a local
OpenAI-compatible fake, which also judges (it prefers whichever side the test says), so the gate reads what an
evaluation stores.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta

import anyio
import pytest
from mcp.client import Client
from starlette.testclient import TestClient

from core import actions, registry
from core.data import datasets, feedback
from core.data.datasets import Recipe
from core.errors import EvaluationRequired
from core.evaluation import run_evaluation
from core.platform.actors import SCHEDULER, Actor, cli_actor
from core.platform.timeutil import iso
from core.registry import gate
from core.services import build_services
from core.vocabulary import ApprovalState, EvaluationState, Face, Role
from mcp_server.server import build_server
from tests.chat_fakes import OPENAI_KEY, ChatFake, Seen, start_chat_fake
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, slash_body, wait_until
from tests.feedback_samples import make_events
from tests.test_slack_approvals import click, ephemerals

OPERATOR = Actor("olga", Face.CLI, role=Role.OPERATOR)
APPROVER = Actor("ann", Face.CLI, role=Role.APPROVER)
BASE_MODEL = "gpt-4.1-mini-2025-04-14"
ANSWERS = {"ft:support:v1": "Thanks for asking: your order ships today.",
           "ft:support:v2": "Thanks for asking: your order ships today!"}  # fmt: skip
_PAIR = re.compile(r"<answer_a>\n(.*?)\n</answer_a>.*?<answer_b>\n(.*?)\n</answer_b>", re.S)
EXAMPLES = 6


@pytest.fixture(scope="module")
def chat() -> Iterator[ChatFake]:
    """Both fine-tunes and the judge: the judge picks the answer of the version in `chat.prefer`."""
    fake = start_chat_fake("openai")
    fake.prefer = "ft:support:v2"  # type: ignore[attr-defined]

    def completion(seen: Seen) -> dict:
        reply = ChatFake._completion(fake, seen)
        model = seen.body["model"]
        if model in ANSWERS:
            text = ANSWERS[model]
        else:
            prompt = "\n".join(str(message.get("content")) for message in seen.body["messages"])
            first, second = _PAIR.search(prompt).groups()  # type: ignore[union-attr]
            preferred = ANSWERS[fake.prefer]  # type: ignore[attr-defined]
            pick = "A" if first == preferred else "B" if second == preferred else "A"  # calibration: always A
            text = f"That one reads better.\n\nWINNER: {pick}"
        reply["choices"][0]["message"]["content"] = text
        return reply

    fake._completion = completion  # type: ignore[method-assign]
    yield fake
    fake.stop()


def policy_settings(tmp_path, chat: ChatFake, **more):
    options = {"require_evaluation": ["production"], "approvals_needed": {"production": 1}, **more}
    return make_settings(
        tmp_path, openai_api_key=OPENAI_KEY, openai_base_url=f"{chat.url}/v1", judge_model="openai:gpt-4.1-mini",
        **options,
    )  # fmt: skip


@pytest.fixture
def settings(tmp_path, chat):
    return policy_settings(tmp_path, chat)


def make_lab(services):
    """support:v1 serves production; support:v2 is the candidate. Both are OpenAI fine-tunes of support@1."""
    store = services.store
    feedback.ingest_batch(store, make_events(60), actor=cli_actor())
    version = datasets.build_dataset(store, name="support", actor=cli_actor(), recipe=Recipe(split=(0.6, 0.1, 0.3))).id
    with store.write():
        for model_id in ANSWERS:
            registry.register_version(
                store, name="support", provider="openai", provider_model_id=model_id, job_id=None,
                dataset_version_id=version, base_model=BASE_MODEL, metrics={}, cost_usd=None, actor=SCHEDULER,
                reason="trained", now=iso(),
            )  # fmt: skip
    staging = registry.request_deploy(services, actor=OPERATOR, name="support", version=1, alias="staging")
    assert staging.applied
    with store.write():  # production serves v1, as it did before the policy applied
        registry.service._apply(
            store, registry.service._AliasChange(
                name="support", alias="production", move="deploy", before=None,
                after=registry.service._State(version_id="support:v1"),
            ), actor="cli:setup", face=Face.CLI, approval_id=None, now=iso(),
        )  # fmt: skip
    return services


@pytest.fixture
def services(settings, store):
    return make_lab(build_services(settings, store=store))


def evaluate(services, prefer: str, chat: ChatFake, candidate: str = "support:v2", baseline: str = "production"):
    chat.prefer = prefer  # type: ignore[attr-defined]
    done = run_evaluation(services, candidate=candidate, baseline=baseline, limit=EXAMPLES, actor=OPERATOR)
    assert done.status is EvaluationState.SUCCEEDED, done.status_reason
    return done


def canary(services, share: int = 10):
    return registry.request_deploy(services, actor=OPERATOR, name="support", version=2, canary_share=share)


# The core ------------------------------------------------------------------------------------------------------


def test_without_an_evaluation_the_move_is_refused_with_what_to_run(services):
    with pytest.raises(EvaluationRequired) as refused:
        canary(services)
    error = refused.value
    assert "support:v2 may enter support@production only once an evaluation against support:v1" in error.message
    assert "support:v2 has no finished evaluation against support:v1" in error.message
    assert error.hint == "Run `finetune eval run support:v2 --baseline production`, then ask again."
    assert not services.store.query("SELECT id FROM approvals")
    for move in (
        lambda: registry.request_deploy(services, actor=OPERATOR, name="support", version=2),
        lambda: registry.request_deploy(
            services, actor=OPERATOR, name="support", version=2, plan=[10, 100], every="1h"
        ),
    ):
        with pytest.raises(EvaluationRequired):
            move()
    # Other aliases are not held back, and neither is a rollback.
    assert registry.request_deploy(services, actor=OPERATOR, name="support", version=2, alias="staging").applied


def test_a_passing_evaluation_lets_the_request_through_with_its_numbers(services, chat):
    done = evaluate(services, "ft:support:v2", chat)
    summary = done.summary
    assert summary is not None and summary.judge.head_to_head.win_rate == 1.0
    assert abs(summary.acceptance.difference) < 0.02  # the answers differ by one mark
    change = canary(services)
    assert not change.applied and change.approval is not None
    fact = change.approval.facts[gate.FACT]
    assert fact.startswith(f"evaluation {done.id}: passes: judge win rate 100.0% over {EXAMPLES} pairs")
    decided = actions.decide(services, approval_id=change.approval.id, actor=APPROVER, approve=True)
    assert decided.status == ApprovalState.APPROVED
    alias = registry.alias_state(services.store, "support", "production")
    assert alias is not None and (alias.canary_version_id, alias.canary_share) == ("support:v2", 10)
    # Pausing the canary never needs an evaluation; promoting it is measured against the same stable version.
    paused = registry.set_canary_share(services, actor=OPERATOR, name="support", alias="production", share=0)
    assert paused.approval is not None and gate.FACT not in paused.approval.facts


def test_a_failing_evaluation_is_refused_and_says_by_how_much(services, chat):
    done = evaluate(services, "ft:support:v1", chat)  # the judge prefers what production serves
    with pytest.raises(EvaluationRequired) as refused:
        canary(services)
    assert f"evaluation {done.id}: judge win rate 0.0% over {EXAMPLES} pairs" in refused.value.message
    assert "the judge's win rate is below 48.0%" in refused.value.message

    later = evaluate(services, "ft:support:v2", chat)  # the newest evaluation counts
    assert canary(services).approval.facts[gate.FACT].startswith(f"evaluation {later.id}: passes")


def test_a_staged_rollout_halts_at_a_stage_that_no_longer_passes(services, chat):
    evaluate(services, "ft:support:v2", chat)
    started = registry.request_deploy(services, actor=OPERATOR, name="support", version=2, plan=[10, 100], every="1h")
    assert started.approval is not None and gate.FACT in started.approval.facts
    actions.decide(services, approval_id=started.approval.id, actor=APPROVER, approve=True)
    assert registry.get_rollout(services.store, "support", alias="production").stage == 1
    evaluate(services, "ft:support:v1", chat)  # a newer evaluation of the same pair fails
    assert registry.advance_due(services, now=services.clock() + timedelta(hours=2)) == 0
    rollout = registry.get_rollout(services.store, "support", alias="production")
    assert rollout.status == "halted" and "the judge's win rate is below 48.0%" in (rollout.status_reason or "")
    alias = registry.alias_state(services.store, "support", "production")
    assert alias is not None and (alias.canary_version_id, alias.canary_share) == ("support:v2", 10)  # left as it was


def test_the_margin_is_applied_to_both_measures_the_verdict_weighs(services, chat):
    done = evaluate(services, "ft:support:v2", chat)
    stored = json.loads(services.store.scalar("SELECT summary FROM evaluations WHERE id = ?", (done.id,)))

    def with_numbers(win_rate: float, lift: float) -> None:
        stored["judge"]["head_to_head"]["win_rate"] = win_rate
        stored["acceptance"]["difference"] = lift
        with services.store.write() as db:
            db.execute("UPDATE evaluations SET summary = ? WHERE id = ?", (json.dumps(stored), done.id))

    for win_rate, lift, passes in [(0.48, 0.0, True), (0.4799, 0.0, False), (0.9, -0.02, True),
                                   (0.9, -0.0201, False)]:  # fmt: skip
        with_numbers(win_rate, lift)
        change = registry.service._AliasChange(
            name="support", alias="production", move="canary",
            before=registry.service._State(version_id="support:v1"),
            after=registry.service._State(version_id="support:v1", canary_version_id="support:v2", canary_share=5),
        )  # fmt: skip
        found = gate.check(services.settings, services.store, change)
        assert found is not None
        assert found.passed is passes, (win_rate, lift, found.reason)
    assert found is not None and "acceptance is more than 2 points below the baseline's" in found.reason


def test_a_request_made_before_the_policy_cannot_be_approved_until_an_evaluation_passes(tmp_path, store, chat):
    two = {"approvals_needed": {"production": 2}}
    lax = make_lab(build_services(policy_settings(tmp_path, chat, require_evaluation=[], **two), store=store))
    strict = build_services(policy_settings(tmp_path, chat, **two), store=store)
    pending = canary(lax).approval
    assert pending is not None and gate.FACT not in pending.facts and pending.approvals_needed == 2
    with pytest.raises(EvaluationRequired, match="Run `finetune eval run support:v2 --baseline production`"):
        actions.decide(strict, approval_id=pending.id, actor=APPROVER, approve=True)
    assert _status(store, pending.id) == ApprovalState.PENDING
    assert not store.query("SELECT * FROM approval_votes")  # not even a first vote of two was recorded
    evaluate(strict, "ft:support:v2", chat)
    voted = actions.decide(strict, approval_id=pending.id, actor=APPROVER, approve=True)
    assert voted.status == ApprovalState.PENDING and voted.approved_by == [str(APPROVER)]
    second = Actor("bob", Face.CLI, role=Role.APPROVER)
    assert actions.decide(strict, approval_id=pending.id, actor=second, approve=True).status == ApprovalState.APPROVED
    alias = registry.alias_state(store, "support", "production")
    assert alias is not None and alias.canary_version_id == "support:v2"


def test_rejecting_is_never_held_back(tmp_path, store, chat):
    lax = make_lab(build_services(policy_settings(tmp_path, chat, require_evaluation=[]), store=store))
    strict = build_services(policy_settings(tmp_path, chat), store=store)
    pending = canary(lax).approval
    assert pending is not None
    actions.decide(strict, approval_id=pending.id, actor=APPROVER, approve=False, reason="no evaluation yet")
    assert _status(store, pending.id) == ApprovalState.REJECTED


def _status(store, approval_id: str) -> str:
    return store.scalar("SELECT status FROM approvals WHERE id = ?", (approval_id,))


# The faces -----------------------------------------------------------------------------------------------------


def test_the_terminal_refuses_the_deploy_and_the_approval(cli, services, monkeypatch):
    monkeypatch.setenv("FINETUNE_REQUIRE_EVALUATION", "production")
    code, out, err = cli("deploy", "support", "v2", "--canary", "10")
    assert code == 1, out
    assert "support:v2 has no finished evaluation against support:v1" in err
    assert "Fix: Run `finetune eval run support:v2 --baseline production`, then ask again." in err

    monkeypatch.delenv("FINETUNE_REQUIRE_EVALUATION")  # asked before the policy applied: it waits for approval
    code, out, err = cli("deploy", "support", "v2", "--canary", "10", "--json")
    assert code == 0, err
    approval_id = json.loads(out)["approval"]["id"]
    monkeypatch.setenv("FINETUNE_REQUIRE_EVALUATION", "production")
    code, out, err = cli("approve", approval_id)
    assert code == 1 and "only once an evaluation against support:v1" in err and "finetune eval run" in err
    assert _status(services.store, approval_id) == ApprovalState.PENDING


def test_the_terminal_evaluates_with_progress_lines_and_then_the_deploy_goes_ahead(cli, services, chat, monkeypatch):
    chat.prefer = "ft:support:v2"
    for env, value in {
        "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": f"{chat.url}/v1", "FINETUNE_JUDGE_MODEL": "openai:gpt-4.1-mini",
        "FINETUNE_REQUIRE_EVALUATION": "production", "FINETUNE_APPROVALS_NEEDED": "production=1",
    }.items():  # fmt: skip
        monkeypatch.setenv(env, value)
    code, out, err = cli("eval", "run", "support:v2", "--baseline", "production", "--limit", str(EXAMPLES))
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("Evaluating support:v2 against production: ")]
    assert lines[0].startswith("Evaluating support:v2 against production: 1 of 6 (17%), $")  # stderr is no terminal
    assert lines[-1].startswith(f"Evaluating support:v2 against production: {EXAMPLES} of {EXAMPLES} (100%), $")
    code, out, err = cli("deploy", "support", "v2", "--canary", "10", "--json")
    assert code == 0, err
    assert json.loads(out)["approval"]["facts"][gate.FACT].startswith("evaluation ev_")


def test_mcp_refuses_in_its_own_words(services):
    async def go():
        async with Client(build_server(services)) as client:
            return await client.call_tool("request_deployment", {"name": "support", "version": "2", "canary_share": 10})

    refused = anyio.run(go)
    assert refused.is_error
    text = refused.content[0].text
    assert "no finished evaluation against support:v1" in text
    assert "evaluate_model (candidate=support:v2, baseline=production)" in text


def test_slack_refuses_the_request_and_an_approve_click(tmp_path, store, chat, fake_slack, services):
    from bot.serve import build_app

    lax = build_services(policy_settings(tmp_path, chat, require_evaluation=[]), store=store)
    waiting = canary(lax).approval  # asked before the policy applied
    assert waiting is not None
    settings = policy_settings(
        tmp_path, chat, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.api_url, operators=["U123"], approvers=["UAPPROVER"],
    )  # fmt: skip
    with TestClient(build_app(build_services(settings, store=store)), base_url="http://127.0.0.1") as client:
        body = slash_body("deploy support v2 --canary 10", response_url=fake_slack.response_url("deploy"))
        assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
        [answer] = wait_until(lambda: fake_slack.responses("deploy"), what="the refusal")
        body = click(waiting.id, "1700000000.000100")
        assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
        [told] = wait_until(lambda: ephemerals(fake_slack, "UAPPROVER"), what="the refusal of the click")
    blocks = json.dumps(answer["blocks"])
    assert "no finished evaluation against support:v1" in blocks and "finetune eval run support:v2" in blocks
    assert "only once an evaluation against support:v1" in told and "--baseline production" in told
    assert _status(store, waiting.id) == ApprovalState.PENDING
