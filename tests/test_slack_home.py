"""The app's Home tab: signed app_home_opened events and Home-tab clicks into the real bolt app, the Web API faked."""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from slack_sdk import WebClient
from starlette.testclient import TestClient

from bot.invoke import slack_actor
from bot.serve import build_app
from bot.slack.blocks.home import LIST_CAP, MAX_BLOCKS, HomeFacts, ModelAliases, home_view
from bot.slack.blocks.kit import MAX_TEXT
from bot.slack.blocks.notifications import APPROVE_ACTION, REASON_BLOCK, REASON_INPUT, REJECT_ACTION
from bot.slack.delivery import deliver_due
from bot.slack.listeners.home import home_facts
from core import actions, registry
from core.errors import InvalidInput, StoreError
from core.platform import Approval, approvals
from core.platform.actors import SCHEDULER, Actor
from core.platform.store import Store
from core.platform.timeutil import iso, utcnow
from core.registry import AliasState, LedgerEntry
from core.training import Job, jobs
from core.vocabulary import Action, ApprovalState, Face, JobState, Method, Provider, Role
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, svc, wait_until

MODEL = "gpt-4o-mini-2024-07-18"
CHANNEL = "CNOTIFY"
ANN = Actor("ann", Face.CLI, role=Role.OPERATOR)  # cli:ann asks for production moves
DECIDERS = (Actor("UBOB", Face.SLACK, role=Role.APPROVER), Actor("UCAROL", Face.SLACK, role=Role.APPROVER))


@pytest.fixture
def settings(tmp_path, fake_slack):
    return make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url,
        slack_channel=CHANNEL, auto_approve_usd=0, approvers=["UAPPROVER", "UREQ"],
    )  # fmt: skip


@pytest.fixture
def services(store, settings, fake):
    return svc(store, settings)


@pytest.fixture
def app(services):
    with TestClient(build_app(services), base_url="http://127.0.0.1") as client:
        yield client


# Building state through the core ------------------------------------------------------------------------


def request_launch(services, fake_slack, version, *, user: str = "UREQ") -> tuple[Approval, str]:
    """A launch waiting for approval, its request message posted in the channel; returns (approval, ts)."""
    launched = jobs.launch_job(
        services, dataset_version=version.id, provider="openai", base_model=MODEL,
        actor=slack_actor(services.settings, user),
    )  # fmt: skip
    assert launched.approval is not None
    deliver_due(services.store, slack_client(fake_slack), default_channel=CHANNEL)
    [posted] = [p for p in fake_slack.posted if launched.approval.id in p["text"]]
    return launched.approval, posted["ts"]


def add_active_jobs(store: Store, fake, version_id: str, count: int) -> list[str]:
    """`count` jobs the (fake) provider is running, created a minute apart; their ids, oldest first."""
    ids, now = [], utcnow()
    with store.write() as db:
        for n in range(count):
            job_id, provider_job_id = f"job_run{n:03d}", f"ftjob-run-{n}"
            fake.jobs[provider_job_id] = {"status": "running" if n % 2 else "queued"}
            state = JobState.RUNNING if n % 2 else JobState.QUEUED
            created = iso(now - timedelta(minutes=60 - n))
            db.execute(
                "INSERT INTO jobs (id, provider, provider_job_id, dataset_version_id, base_model, status,"
                " requested_by, created_at, updated_at, next_poll_at) VALUES (?, 'openai', ?, ?, ?, ?, 'ann', ?, ?, ?)",
                (job_id, provider_job_id, version_id, MODEL, state, created, created, iso(now + timedelta(hours=1))),
            )
            ids.append(job_id)
    return ids


def register(store: Store, name: str, count: int) -> list[str]:
    with store.write():
        return [
            registry.register_version(
                store, name=name, provider="openai", provider_model_id=f"ft:{name}:{n}", job_id=None,
                dataset_version_id=None, base_model=MODEL, metrics={}, cost_usd=None, actor=SCHEDULER,
                reason="trained", now=iso(),
            ).id
            for n in range(count)
        ]  # fmt: skip


def approved(services, change: registry.RegistryChange) -> None:
    """Approved by as many people as it needs."""
    assert change.approval is not None
    for decider in DECIDERS[: change.approval.approvals_needed]:
        actions.decide(services, approval_id=change.approval.id, actor=decider, approve=True)
    assert approvals.get(services.store, change.approval.id).status is ApprovalState.APPROVED


def serve_support(services) -> None:
    """support: production on v1 with v2 as a 10% canary (each approved), staging on v3, candidate on v3."""
    register(services.store, "support", 3)
    approved(services, registry.request_deploy(services, actor=ANN, name="support", version=1))
    approved(services, registry.request_deploy(services, actor=ANN, name="support", version=2, canary_share=10))
    registry.request_deploy(services, actor=ANN, name="support", version=3, alias="staging")


# Slack payloads ------------------------------------------------------------------------------------------


def slack_client(fake_slack) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)


def home_opened(user: str = "UVIEWER", *, tab: str = "home", event_id: str | None = None) -> str:
    return json.dumps(
        {
            "token": "legacy-unused",
            "team_id": "T1",
            "api_app_id": "A1",
            "event": {"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": tab,
                      "event_ts": f"{time.time():.6f}"},
            "type": "event_callback",
            "event_id": event_id or f"Ev{time.monotonic_ns()}",
            "event_time": int(time.time()),
            "authorizations": [{"enterprise_id": None, "team_id": "T1", "user_id": "UBOT", "is_bot": True}],
        }
    )  # fmt: skip


def post_event(app, body: str, *, headers: dict[str, str] | None = None, retry: int | None = None):
    sent = headers or {**sign(body), "Content-Type": "application/json"}
    if retry is not None:
        sent |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    return app.post("/slack/events", content=body, headers=sent)


def home_click(approval_id: str, *, user: str, action: str = APPROVE_ACTION) -> str:
    """A click on an approval's button in the clicker's Home tab: the container is the view, no channel."""
    payload = {
        "type": "block_actions",
        "team": {"id": "T1"},
        "user": {"id": user, "team_id": "T1"},
        "api_app_id": "A1",
        "trigger_id": f"trig-{time.monotonic_ns()}",
        "container": {"type": "view", "view_id": "VHOME"},
        "view": {"id": "VHOME", "type": "home", "blocks": [], "hash": "1.abc"},
        "actions": [
            {"type": "button", "action_id": action, "block_id": f"decide:{approval_id}", "value": approval_id,
             "action_ts": f"{time.time():.6f}"}
        ],
    }  # fmt: skip
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def reject_submission(approval_id: str, metadata: str, *, user: str) -> str:
    payload = {
        "type": "view_submission",
        "team": {"id": "T1"},
        "user": {"id": user, "team_id": "T1"},
        "api_app_id": "A1",
        "trigger_id": f"trig-{time.monotonic_ns()}",
        "view": {
            "id": "VMODAL", "type": "modal", "callback_id": "approval_reject_reason", "private_metadata": metadata,
            "state": {"values": {REASON_BLOCK: {REASON_INPUT: {"type": "plain_text_input", "value": "not now"}}}},
        },
    }  # fmt: skip
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def publishes(fake_slack, user: str | None = None) -> list[dict]:
    return [p for p in fake_slack.method_calls("views.publish") if user is None or p.get("user_id") == user]


def published_text(fake_slack, user: str) -> str:
    [published] = wait_until(lambda: publishes(fake_slack, user), what=f"the Home tab of {user}")
    assert published["view"]["type"] == "home"
    return json.dumps(published["view"]["blocks"], ensure_ascii=False)


def buttons_of(view: dict) -> dict[str, list[str]]:
    """approval id -> the action ids of its buttons."""
    return {
        block["block_id"].removeprefix("decide:"): [element["action_id"] for element in block["elements"]]
        for block in view["blocks"]
        if block["type"] == "actions"
    }


def settle() -> None:
    time.sleep(0.5)  # lazy workers of a request that must do nothing: give them time to (not) act


# Opening the Home tab -------------------------------------------------------------------------------------


def test_opening_the_home_tab_publishes_approvals_jobs_models_and_moves_to_that_user(
    app, services, version, fake, fake_slack
):
    approval, _ = request_launch(services, fake_slack, version)
    running = add_active_jobs(services.store, fake, version.id, 2)
    serve_support(services)
    started = time.monotonic()
    answer = post_event(app, home_opened("UVIEWER"))
    assert answer.status_code == 200 and time.monotonic() - started < 3  # acked first
    text = published_text(fake_slack, "UVIEWER")  # a viewer reads it all, buttons included
    [view] = [p["view"] for p in publishes(fake_slack, "UVIEWER")]

    assert buttons_of(view) == {approval.id: [APPROVE_ACTION, REJECT_ACTION]}
    for fact in (approval.id, "<@UREQ> via Slack", "expires <!date^", MODEL, "launch"):
        assert fact in text, fact
    for job_id in running:
        assert f"`{job_id}`" in text
    assert "*running*" in text and "*queued*" in text and "openai" in text and "started <!date^" in text
    assert "production -&gt; support:v1 with canary support:v2 at 10%" in text
    assert "staging -&gt; support:v3" in text and "candidate -&gt; support:v3" in text
    moves = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section" and "`support@" in b["text"]["text"]]
    lines = moves[0].split("\n")
    assert lines[0].startswith("`support@staging` deploy")  # newest first
    assert "canary" in lines[1] and "`cli:ann`" in lines[1] and "(approval `ap_" in lines[1]
    assert lines[-1].startswith("`support@candidate` register")


def test_an_empty_home_tab_says_what_to_do(app, fake_slack):
    post_event(app, home_opened("UNEW"))
    text = published_text(fake_slack, "UNEW")
    assert "No pending approvals" in text
    assert "No jobs running" in text and "/finetune launch" in text
    assert "No models yet: a model is registered when a fine-tuning job succeeds." in text
    assert "No alias moves yet" in text


def test_a_home_tab_opened_on_another_tab_publishes_nothing(app, fake_slack):
    assert post_event(app, home_opened(tab="messages")).status_code == 200
    settle()
    assert publishes(fake_slack) == []


@pytest.mark.parametrize("how", ["unsigned", "forged", "stale"])
def test_an_unverified_event_is_refused_and_publishes_nothing(app, fake_slack, how):
    body = home_opened()
    headers = {
        "unsigned": {"Content-Type": "application/json"},
        "forged": {**sign(body, secret="not-the-secret"), "Content-Type": "application/json"},
        "stale": {**sign(body, timestamp=int(time.time()) - 301), "Content-Type": "application/json"},
    }[how]
    assert post_event(app, body, headers=headers).status_code == 401
    settle()
    assert publishes(fake_slack) == []


def test_a_redelivered_event_publishes_once(app, fake_slack):
    body = home_opened(event_id="Ev0HOME1")
    assert post_event(app, body).status_code == 200
    for retry in (1, 2):
        assert post_event(app, body, retry=retry).status_code == 200
    wait_until(lambda: publishes(fake_slack), what="the Home tab")
    settle()
    assert len(publishes(fake_slack)) == 1
    post_event(app, home_opened())  # opening it again is a new event: published again
    wait_until(lambda: len(publishes(fake_slack)) == 2, what="the second opening")


@pytest.mark.parametrize("event", [{"tab": "home"}, {"tab": "home", "user": "<@U1>"}, {"tab": "home", "user": 7}, []])
def test_an_event_without_a_readable_user_is_answered_and_publishes_nothing(app, fake_slack, event):
    body = json.loads(home_opened())
    body["event"] = event if not isinstance(event, dict) else {"type": "app_home_opened", **event}
    raw = json.dumps(body)
    assert post_event(app, raw).status_code in (200, 400)
    settle()
    assert publishes(fake_slack) == []


def test_a_slack_failure_is_logged_and_answered_without_a_traceback(app, fake_slack, caplog):
    post_event(app, home_opened(tab="messages"))  # bolt asks auth.test once, while Slack is up
    settle()
    fake_slack.fail_status = 500
    with caplog.at_level(logging.ERROR, logger="bot.slack.listeners.home"):
        assert post_event(app, home_opened("UDOWN")).status_code == 200
        wait_until(lambda: "could not publish the Home tab of UDOWN" in caplog.text, what="the logged failure")
    assert publishes(fake_slack, "UDOWN")  # it was tried, once
    assert len(publishes(fake_slack, "UDOWN")) == 1


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (StoreError("the database is locked.", hint="Try again in a moment."), "the database is locked. Try again"),
        (RuntimeError("boom"), "could not be read just now"),
    ],
)
def test_a_home_tab_that_cannot_be_read_says_so_without_a_traceback(app, fake_slack, monkeypatch, error, shown):
    def fail(store):
        raise error

    monkeypatch.setattr(approvals, "pending", fail)
    post_event(app, home_opened("UVIEWER"))
    text = published_text(fake_slack, "UVIEWER")
    assert shown in text and "boom" not in text and "Traceback" not in text


# Deciding from the Home tab -------------------------------------------------------------------------------


def test_approving_from_the_home_tab_decides_like_a_channel_click_and_republishes_that_tab(
    app, services, version, fake, fake_slack
):
    approval, ts = request_launch(services, fake_slack, version)
    post_event(app, home_opened("UAPPROVER"))
    wait_until(lambda: publishes(fake_slack, "UAPPROVER"), what="the Home tab")

    assert post(app, home_click(approval.id, user="UAPPROVER")).status_code == 200
    wait_until(lambda: len(publishes(fake_slack, "UAPPROVER")) == 2, what="the republished Home tab")
    assert approvals.get(services.store, approval.id).status is ApprovalState.APPROVED
    assert len(fake.launches) == 1
    again = publishes(fake_slack, "UAPPROVER")[-1]["view"]
    assert buttons_of(again) == {} and "No pending approvals" in json.dumps(again["blocks"])
    assert fake_slack.method_calls("chat.postEphemeral") == [] and fake_slack.method_calls("conversations.open") == []
    # The channel's request message is edited as for a click there: by the outbox, as every decision is.
    deliver_due(services.store, slack_client(fake_slack), default_channel=CHANNEL)
    edits = wait_until(
        lambda: [u for u in fake_slack.method_calls("chat.update") if u.get("ts") == ts], what="the channel edit"
    )
    assert "approved by <@UAPPROVER>" in edits[-1]["text"]
    assert publishes(fake_slack, "UREQ") == []  # nobody else's tab is published


def test_a_refused_home_click_is_told_in_direct_messages_and_the_tab_shows_the_request_still(
    app, services, version, fake, fake_slack
):
    approval, _ = request_launch(services, fake_slack, version)
    post(app, home_click(approval.id, user="UREQ"))  # their own request: four eyes
    [told] = wait_until(
        lambda: [p for p in fake_slack.posted if p["channel"] == "DUREQ" and "four eyes" in p["text"]],
        what="the direct message",
    )
    assert approval.id in told["text"]
    assert [c["users"] for c in fake_slack.method_calls("conversations.open")] == ["UREQ"]
    assert fake_slack.method_calls("chat.postEphemeral") == []
    [republished] = wait_until(lambda: publishes(fake_slack, "UREQ"), what="the republished Home tab")
    assert buttons_of(republished["view"]) == {approval.id: [APPROVE_ACTION, REJECT_ACTION]}
    assert approvals.get(services.store, approval.id).status is ApprovalState.PENDING and fake.launches == []


def test_rejecting_from_the_home_tab_asks_why_then_republishes_that_tab(app, services, version, fake, fake_slack):
    approval, _ = request_launch(services, fake_slack, version)
    post(app, home_click(approval.id, user="UAPPROVER", action=REJECT_ACTION))
    [opened] = wait_until(lambda: fake_slack.method_calls("views.open"), what="the reject modal")
    metadata = opened["view"]["private_metadata"]
    assert json.loads(metadata) == {"approval": approval.id, "channel": None}

    answer = post(app, reject_submission(approval.id, metadata, user="UAPPROVER"))
    assert answer.status_code == 200 and not answer.text
    [republished] = wait_until(lambda: publishes(fake_slack, "UAPPROVER"), what="the republished Home tab")
    assert buttons_of(republished["view"]) == {}
    decided = approvals.get(services.store, approval.id)
    assert decided.status is ApprovalState.REJECTED and decided.reason == "not now" and fake.launches == []


def test_a_click_in_the_channel_publishes_no_home_tab(app, services, version, fake, fake_slack):
    approval, ts = request_launch(services, fake_slack, version)
    body = json.loads(urllib.parse.parse_qs(home_click(approval.id, user="UAPPROVER"))["payload"][0])
    body["container"] = {"type": "message", "message_ts": ts, "channel_id": CHANNEL, "is_ephemeral": False}
    body["channel"], body["message"] = {"id": CHANNEL}, {"ts": ts, "text": "Approval needed"}
    del body["view"]
    post(app, urllib.parse.urlencode({"payload": json.dumps(body)}))
    wait_until(lambda: [u for u in fake_slack.method_calls("chat.update") if u.get("ts") == ts], what="the edit")
    assert approvals.get(services.store, approval.id).status is ApprovalState.APPROVED
    settle()
    assert publishes(fake_slack) == []  # tabs catch up when they are opened, not on every change


def post(app, body: str):
    return app.post("/slack/events", content=body, headers=sign(body))


# What the core hands the Home tab -------------------------------------------------------------------------


def test_home_facts_cap_each_list_and_count_the_rest(services, version, fake):
    add_active_jobs(services.store, fake, version.id, LIST_CAP + 3)
    for n in range(LIST_CAP + 2):
        register(services.store, f"model-{n:02d}", 1)
    facts = home_facts(services)
    assert facts.jobs_total == LIST_CAP + 3 and len(facts.jobs) == LIST_CAP
    assert facts.jobs[0].id == f"job_run{LIST_CAP + 2:03d}"  # newest first
    assert facts.models_total == LIST_CAP + 2 and [m.name for m in facts.models][:2] == ["model-00", "model-01"]
    assert len(facts.moves) == LIST_CAP and facts.moves[0].model_name == f"model-{LIST_CAP + 1:02d}"
    text = json.dumps(home_view(facts), ensure_ascii=False)
    assert "and 3 more · `/finetune jobs list`" in text and "and 2 more · `/finetune models list`" in text


def test_recent_moves_are_the_newest_across_models_and_the_limit_is_checked(services):
    register(services.store, "alpha", 2)
    register(services.store, "beta", 1)
    moves = registry.recent_moves(services.store, limit=2)
    assert [(m.model_name, m.to_version_id) for m in moves] == [("beta", "beta:v1"), ("alpha", "alpha:v2")]
    assert len(registry.recent_moves(services.store, limit=50)) == 3
    for bad in (0, -1, True, "10", 1001):
        with pytest.raises(InvalidInput, match="`limit`"):
            registry.recent_moves(services.store, limit=bad)  # type: ignore[arg-type]


# The view within Slack's limits, whatever the database holds ----------------------------------------------

HOSTILE = st.text(min_size=1, max_size=600) | st.sampled_from(["<!channel>", "<https://evil.example|click>", "&"])


def hostile_approval(n: int, text: str) -> Approval:
    return Approval(
        id=f"ap_{n:012d}", action=Action.LAUNCH, subject_id=text, payload={}, estimated_cost_usd=12.5,
        status=ApprovalState.PENDING, requested_by=text[:80] or "U1", requested_via=Face.MCP, decided_by=None,
        decided_at=None, reason=None, expires_at=iso(), created_at=iso(), description=text, facts={"base": text},
        approvals_needed=2, approved_by=["slack:U1"],
    )  # fmt: skip


def hostile_job(n: int, text: str) -> Job:
    return Job(
        id=f"job_{n}", provider=Provider.OPENAI, provider_job_id=None, dataset_version="d@1", base_model=text,
        method=Method.SUPERVISED, hyperparameters={}, status=JobState.RUNNING, provider_status=None,
        status_detail=None, estimated_cost_usd=None, model_id=None, error=None, approval_id=None,
        requested_by="ann", created_at=iso(), updated_at=iso(), finished_at=None,
    )  # fmt: skip


def hostile_move(text: str) -> LedgerEntry:
    return LedgerEntry(
        model_name=text, alias="production", move=None, from_version_id=text, to_version_id=text,
        canary_version_id=text, canary_share=10, actor=f"mcp:{text[:40]}", face="mcp", approval_id="ap_1",
        approved_by=None, reason=None, at=iso(),
    )  # fmt: skip


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=HOSTILE, count=st.integers(min_value=0, max_value=3 * LIST_CAP))
def test_any_home_stays_within_slacks_limits_and_shows_stored_text_as_text(text, count):
    alias = AliasState(
        model_name=text, alias="production", version_id=text, canary_version_id=text, canary_share=5, updated_at=iso()
    )
    facts = HomeFacts(
        approvals=[hostile_approval(n, text) for n in range(min(count, LIST_CAP))], approvals_total=count,
        jobs=[hostile_job(n, text) for n in range(min(count, LIST_CAP))], jobs_total=count,
        models=[ModelAliases(name=text, aliases=[alias] * 30) for _ in range(min(count, LIST_CAP))],
        models_total=count, moves=[hostile_move(text) for _ in range(min(count, LIST_CAP))], updated_at=iso(),
    )  # fmt: skip
    view = home_view(facts)
    blocks = view["blocks"]
    assert view["type"] == "home" and len(blocks) <= MAX_BLOCKS
    assert len(json.dumps(view)) < 100_000
    for block in blocks:
        texts = [block["text"]] if "text" in block else block.get("elements", [])
        for item in texts:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                assert len(item["text"]) <= (150 if block["type"] == "header" else MAX_TEXT)
    rendered = json.dumps(blocks, ensure_ascii=False)
    assert "<!channel>" not in rendered and "<https://evil" not in rendered
    assert len(buttons_of(view)) == min(count, LIST_CAP)
    if count:
        assert "1 of 2 approvals" in rendered
    if count > LIST_CAP:
        assert f"and {count - LIST_CAP} more · `/finetune approvals`" in rendered
