"""A production change from request to rollback, through every face: an agent asks over MCP, two people approve
with Slack buttons, callers are split by sticky hashing, Slack rolls back, and the ledger answers what served when.

Also the quorum itself: votes, one per person on any face, progress shown in place, a veto, expiry.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from bot.serve import build_app
from bot.slack.delivery import deliver_due
from core import actions, registry
from core.errors import PermissionDenied
from core.platform import approvals
from core.platform.actors import SCHEDULER, Actor, os_user
from core.platform.timeutil import iso, utcnow
from core.vocabulary import Action, ApprovalState, Face, Role
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, slash_body, svc, wait_until
from tests.test_registry_mcp import session
from tests.test_slack_approvals import click, edits_of, ephemerals, slack_client

CHANNEL = "CNOTIFY"
ANN_SLACK, ALICE, BEN, CARA = "UANN", "UALICE", "UBEN", "UCARA"


@pytest.fixture
def settings(tmp_path, fake_slack):
    return make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url,
        slack_channel=CHANNEL, approvers=[ANN_SLACK, ALICE, BEN, CARA],
        # Ann's agent talks MCP over stdio as her OS user; her Slack account is the same person.
        people={"ann": [f"os:{os_user()}", f"slack:{ANN_SLACK}"]},
    )  # fmt: skip


@pytest.fixture
def services(store, settings):
    return svc(store, settings)


@pytest.fixture
def app(services):
    with TestClient(build_app(services), base_url="http://127.0.0.1") as client:
        yield client


def register_two(store) -> None:
    with store.write():
        for number in (1, 2):
            registry.register_version(
                store, name="support", provider="openai", provider_model_id=f"ft:gpt-4o-mini:acme:support:{number}",
                job_id=None, dataset_version_id=None, base_model="gpt-4o-mini", metrics={"train_loss": 0.4},
                cost_usd=2.5, actor=SCHEDULER, reason="trained", now=iso(),
            )  # fmt: skip


def approve_as(services, approval_id: str, *people: str) -> approvals.Approval:
    decided = None
    for person in people:
        actor = Actor(person, Face.SLACK, role=Role.APPROVER)
        decided = actions.decide(services, approval_id=approval_id, actor=actor, approve=True)
    assert decided is not None
    return decided


def waiting_on(change: registry.RegistryChange) -> str:
    assert change.approval is not None, "the change should wait for an approval"
    return change.approval.id


def request_message(store, fake_slack, approval_id: str) -> dict:
    """The request's message in the channel, delivering the outbox (posts are paced) until it is there."""

    def posted() -> list[dict]:
        deliver_due(store, slack_client(fake_slack), default_channel=CHANNEL)
        return [p for p in fake_slack.posted if approval_id in p["text"]]

    [message] = wait_until(posted, what=f"the message of {approval_id}")
    return message


def has_buttons(blocks: list[dict]) -> bool:
    return any(block["type"] == "actions" for block in blocks)


def production(store) -> registry.AliasState:
    [state] = [a for a in registry.list_aliases(store, "support") if a.alias == "production"]
    return state


def test_an_agent_asks_two_people_approve_in_slack_callers_split_and_slack_rolls_back(
    app, services, store, fake_slack, cli
):
    register_two(store)
    approve_as(services, waiting_on(registry.request_deploy(services, actor=SCHEDULER, name="support", version=1)),
               ALICE, BEN)  # fmt: skip
    assert production(store).version_id == "support:v1"

    # An agent asks for a 10 % canary of v2 over MCP: it waits for two approvers.
    _, [asked] = session(services, ("request_deployment", {"name": "support", "version": 2, "canary_share": 10}))
    assert not asked.is_error, asked.content[0].text
    approval_id = asked.structured_content["approval"]["id"]
    assert asked.structured_content["approval"]["approvals_needed"] == 2
    posted = request_message(store, fake_slack, approval_id)
    shown = json.dumps(posted["blocks"])
    for fact in ("0 of 2 approvals", "support:v2", "ft:gpt-4o-mini:acme:support:2", "$2.50", "train_loss 0.4",
                 "an agent (MCP)", "<!date^"):  # fmt: skip
        assert fact in shown, fact
    assert has_buttons(posted["blocks"])
    ts = posted["ts"]

    # Ann, who asked through her agent, cannot approve from Slack.
    app.post("/slack/events", content=(body := click(approval_id, ts, user=ANN_SLACK)), headers=sign(body))
    [refusal] = wait_until(lambda: ephemerals(fake_slack, ANN_SLACK), what="Ann's refusal")
    assert "four eyes" in refusal

    # Alice approves: one of two; the message shows it in place and keeps its buttons.
    app.post("/slack/events", content=(body := click(approval_id, ts, user=ALICE)), headers=sign(body))
    [edit] = wait_until(lambda: edits_of(fake_slack, ts), what="the progress edit")
    assert f"1 of 2 approvals: <@{ALICE}>" in json.dumps(edit["blocks"]) and has_buttons(edit["blocks"])
    assert production(store).canary_version_id is None

    # Alice again does not count twice.
    app.post("/slack/events", content=(body := click(approval_id, ts, user=ALICE)), headers=sign(body))
    [again] = wait_until(lambda: ephemerals(fake_slack, ALICE), what="Alice's second click answered")
    assert "already approved" in again
    assert approvals.get(store, approval_id).approved_by == [f"slack:{ALICE}"]

    # Ben approves: the canary starts; the message says who approved and loses its buttons.
    app.post("/slack/events", content=(body := click(approval_id, ts, user=BEN)), headers=sign(body))
    edits = wait_until(lambda: edits_of(fake_slack, ts)[1:], what="the decision edit")
    assert f"approved by <@{ALICE}> and <@{BEN}>" in edits[-1]["text"] and not has_buttons(edits[-1]["blocks"])
    state = production(store)
    assert (state.version_id, state.canary_version_id, state.canary_share) == ("support:v1", "support:v2", 10)
    canary_at = utcnow()

    # About 10 % of callers reach v2, the same ones every time.
    keys = [f"user-{n}" for n in range(10_000)]
    first = [registry.resolve_model(store, "support", key).version_id for key in keys]
    assert 0.085 < first.count("support:v2") / len(keys) < 0.115
    assert [registry.resolve_model(store, "support", key).version_id for key in keys] == first

    # Cara rolls back from Slack; Alice and Ben approve it; v1 serves everyone again.
    body = slash_body(
        "rollback support --reason canary-regressed", user_id=CARA, response_url=fake_slack.response_url()
    )
    assert app.post("/slack/events", content=body, headers=sign(body)).status_code == 200
    rollback = wait_until(
        lambda: store.query("SELECT id FROM approvals WHERE action = 'rollback'"), what="the rollback request"
    )
    approve_as(services, rollback[0]["id"], ALICE, BEN)
    state = production(store)
    assert (state.version_id, state.canary_version_id) == ("support:v1", None)
    assert {registry.resolve_model(store, "support", key).version_id for key in keys} == {"support:v1"}

    # The ledger answers what served at the moment the canary ran, and who put it there.
    code, out, err = cli("models", "history", "support", "--at", iso(canary_at), "--json")
    assert code == 0, err
    [then] = [a for a in json.loads(out)["aliases"] if a["alias"] == "production"]
    assert (then["canary_version_id"], then["canary_share"], then["approval_id"]) == ("support:v2", 10, approval_id)
    assert then["face"] == "mcp" and then["approved_by"] == f"slack:{ALICE}, slack:{BEN}"

    # Every step has its audit row and its Slack message.
    audit = [(r["command"], r["face"], r["outcome"]) for r in store.query("SELECT * FROM audit_log ORDER BY id")]
    for step in [("request_canary", "mcp", "ok"), ("approve", "slack", "error"), ("approve", "slack", "ok"),
                 ("request_rollback", "slack", "ok")]:  # fmt: skip
        assert step in audit, step

    def moves() -> list[str]:
        deliver_due(store, slack_client(fake_slack), default_channel=CHANNEL)
        texts = [p["text"] for p in fake_slack.posted if "support@production" in p["text"]]
        return texts if any("(rollback)" in text for text in texts) else []

    assert any("(canary)" in text for text in wait_until(moves, what="the alias moves in Slack"))


# The quorum -------------------------------------------------------------------------------------------------


def test_one_rejection_ends_a_request_that_had_one_approval(services, store):
    register_two(store)
    change = registry.request_deploy(services, actor=SCHEDULER, name="support", version=1)
    approve_as(services, waiting_on(change), ALICE)
    rejected = actions.decide(
        services, approval_id=waiting_on(change), actor=Actor(BEN, Face.SLACK, role=Role.APPROVER), approve=False,
        reason="not yet evaluated",
    )  # fmt: skip
    assert rejected.status is ApprovalState.REJECTED and rejected.approved_by == [f"slack:{ALICE}"]
    assert not [a for a in registry.list_aliases(store, "support") if a.alias == "production"]
    rows = store.query("SELECT command, detail FROM audit_log WHERE command IN ('approve', 'reject') ORDER BY id")
    assert [(r["command"], r["detail"]) for r in rows] == [
        ("approve", "1 of 2 approvals; waiting for another approver"), ("reject", None),
    ]  # fmt: skip


def test_a_request_with_one_approval_still_expires(services, store):
    register_two(store)
    change = registry.request_deploy(services, actor=SCHEDULER, name="support", version=1)
    approve_as(services, waiting_on(change), ALICE)
    later = utcnow() + timedelta(hours=services.settings.approval_ttl_hours + 1)
    assert approvals.expire_overdue(store, on_decided=lambda a: actions.HANDLERS[a.action].on_decided, now=later) == 1
    assert approvals.get(store, waiting_on(change)).status is ApprovalState.EXPIRED


def test_the_most_specific_quorum_wins_and_bad_entries_name_the_setting(tmp_path):
    settings = make_settings(tmp_path, approvals_needed="production=2,production.rollback=1,launch=3")
    assert approvals.approvals_needed(settings, Action.DEPLOY, "production") == 2
    assert approvals.approvals_needed(settings, Action.ROLLBACK, "production") == 1
    assert approvals.approvals_needed(settings, Action.LAUNCH) == 3
    assert approvals.approvals_needed(settings, Action.DEPLOY, "staging") == 1
    for bad in ("production", "production=0", "production=11", "Prod=2", "production=two"):
        with pytest.raises(ValueError, match="FINETUNE_APPROVALS_NEEDED|approvals_needed"):
            make_settings(tmp_path, approvals_needed=bad)


def test_a_protected_alias_is_a_setting(tmp_path, store):
    settings = make_settings(tmp_path, protected_aliases="production,stable")
    services = svc(store, settings)
    register_two(store)
    operator = Actor("olga", Face.CLI, role=Role.OPERATOR)
    waiting = registry.request_deploy(services, actor=operator, name="support", version=1, alias="stable")
    assert waiting.approval is not None and waiting.approval.approvals_needed == 1 and not waiting.applied
    assert registry.request_deploy(services, actor=operator, name="support", version=1, alias="staging").applied
    with pytest.raises(ValueError, match="not an alias name"):
        make_settings(tmp_path, protected_aliases="Production")


def test_a_launch_can_need_two_approvers_and_the_same_person_cannot_vote_twice_through_a_linked_identity(
    tmp_path, store
):
    settings = make_settings(tmp_path, approvals_needed="launch=2", people={"bo": ["slack:UBO", "os:bo"]})
    services = svc(store, settings)
    request = approvals.request(
        store, action=Action.LAUNCH, subject_id="job_x", summary="launch job_x", actor=SCHEDULER, ttl_hours=1,
        needed=approvals.approvals_needed(settings, Action.LAUNCH),
    )  # fmt: skip
    slack_bo = Actor("UBO", Face.SLACK, role=Role.APPROVER, person="bo", identities={"slack:UBO", "os:bo"})
    cli_bo = Actor("bo", Face.CLI, role=Role.APPROVER, person="bo", identities={"slack:UBO", "os:bo"})
    approvals.decide(store, approval_id=request.id, actor=slack_bo, approve=True, four_eyes=True,
                     on_decided=lambda *_: None)  # fmt: skip
    with pytest.raises(PermissionDenied, match="already approved"):
        approvals.decide(store, approval_id=request.id, actor=cli_bo, approve=True, four_eyes=True,
                         on_decided=lambda *_: None)  # fmt: skip
    assert approvals.get(store, request.id).progress() == "1 of 2 approvals"
    del services
