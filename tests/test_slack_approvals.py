"""Approve and Reject buttons: signed block_actions and view_submission payloads into the real bolt app."""

import json
import time
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk import WebClient
from starlette.testclient import TestClient

from bot.invoke import slack_actor, terminal_actor
from bot.serve import build_app
from bot.slack.blocks.notifications import APPROVE_ACTION, REASON_BLOCK, REASON_INPUT, REASON_MAX, REJECT_ACTION
from bot.slack.delivery import deliver_due
from bot.slack.listeners.views import reason_of
from core.data import datasets, feedback
from core.platform import approvals
from core.platform.actors import cli_actor
from core.training import jobs
from core.vocabulary import ApprovalState, JobState
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, svc, wait_until
from tests.feedback_samples import make_events

MODEL = "gpt-4o-mini-2024-07-18"
CHANNEL = "CNOTIFY"


@pytest.fixture
def settings(tmp_path, fake_slack):
    return make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url,
        slack_channel=CHANNEL, auto_approve_usd=0, approvers=["UAPPROVER", "UREQ"],  # the requester may approve, but not their own request
    )  # fmt: skip


@pytest.fixture
def services(store, settings, fake):
    return svc(store, settings)


@pytest.fixture
def app(services):
    with TestClient(build_app(services), base_url="http://127.0.0.1") as client:
        yield client


def slack_client(fake_slack) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)


def request_launch(services, fake_slack, actor):
    """A launch waiting for approval, its request message posted in the channel; returns (approval, ts)."""
    feedback.ingest_batch(services.store, make_events(60), actor=cli_actor())
    version = datasets.build_dataset(services.store, name="support", actor=cli_actor())
    launched = jobs.launch_job(services, dataset_version=version.id, provider="openai", base_model=MODEL, actor=actor)
    assert launched.approval is not None and launched.job.status == JobState.PENDING_APPROVAL
    deliver_due(services.store, slack_client(fake_slack), default_channel=CHANNEL)
    [posted] = [p for p in fake_slack.posted if launched.approval.id in p["text"]]
    return launched.approval, posted["ts"]


@pytest.fixture
def waiting(services, settings, fake_slack):
    return request_launch(services, fake_slack, slack_actor(settings, "UREQ"))


def form(payload: dict) -> str:
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def click(approval_id, ts, *, user="UAPPROVER", action=APPROVE_ACTION, action_ts=None, value=None) -> str:
    return form(
        {
            "type": "block_actions",
            "team": {"id": "T1"},
            "user": {"id": user, "team_id": "T1"},
            "api_app_id": "A1",
            "trigger_id": f"trig-{time.monotonic_ns()}",
            "container": {"type": "message", "message_ts": ts, "channel_id": CHANNEL, "is_ephemeral": False},
            "channel": {"id": CHANNEL},
            "message": {"ts": ts, "text": "Approval needed"},
            "response_url": "http://127.0.0.1:9/unused",
            "actions": [
                {
                    "type": "button",
                    "action_id": action,
                    "block_id": f"decide:{approval_id}",
                    "value": approval_id if value is None else value,
                    "action_ts": action_ts or f"{time.time():.6f}",
                }
            ],
        }
    )


def submission(approval_id, ts, reason, *, user="UAPPROVER", trigger="trig-view-1") -> str:
    return form(
        {
            "type": "view_submission",
            "team": {"id": "T1"},
            "user": {"id": user, "team_id": "T1"},
            "api_app_id": "A1",
            "trigger_id": trigger,
            "view": {
                "id": "V1",
                "type": "modal",
                "callback_id": "approval_reject_reason",
                "private_metadata": json.dumps({"approval": approval_id, "channel": CHANNEL, "ts": ts}),
                "state": {"values": {REASON_BLOCK: {REASON_INPUT: {"type": "plain_text_input", "value": reason}}}},
            },
        }
    )


def post(app, body, headers=None):
    return app.post("/slack/events", content=body, headers=headers or sign(body))


def status_of(services, approval_id) -> ApprovalState:
    return approvals.get(services.store, approval_id).status


def edits_of(fake_slack, ts) -> list[dict]:
    return [u for u in fake_slack.method_calls("chat.update") if u.get("ts") == ts]


def ephemerals(fake_slack, user) -> list[str]:
    return [e["text"] for e in fake_slack.method_calls("chat.postEphemeral") if e.get("user") == user]


def settle():
    time.sleep(0.4)  # lazy workers of a request that must do nothing: give them time to (not) act


# The request message ---------------------------------------------------------------------------------------


def test_request_message_shows_what_a_decider_needs_and_both_buttons(waiting, fake_slack):
    approval, ts = waiting
    [posted] = [p for p in fake_slack.posted if p["ts"] == ts]
    text = json.dumps(posted["blocks"])
    for fact in (approval.subject_id, MODEL, "support@1", "openai", "<@UREQ>", "via Slack", "<!date^", "$"):
        assert fact in text, fact
    [buttons] = [b for b in posted["blocks"] if b["type"] == "actions"]
    styles = {e["action_id"]: (e["style"], e["value"]) for e in buttons["elements"]}
    assert styles == {APPROVE_ACTION: ("primary", approval.id), REJECT_ACTION: ("danger", approval.id)}


def test_a_terminal_requester_is_named_by_identity(services, settings, fake_slack):
    approval, ts = request_launch(services, fake_slack, terminal_actor(settings))
    [posted] = [p for p in fake_slack.posted if p["ts"] == ts]
    assert f"`cli:{approval.requested_by}` via the terminal" in json.dumps(posted["blocks"])


# Approve ---------------------------------------------------------------------------------------------------


def test_approve_by_an_approver_moves_the_job_and_edits_the_message(app, services, waiting, fake, fake_slack):
    approval, ts = waiting
    started = time.monotonic()
    assert post(app, click(approval.id, ts)).status_code == 200
    assert time.monotonic() - started < 3  # acked first; the decision happens after
    wait_until(lambda: edits_of(fake_slack, ts), what="the message edit")
    assert status_of(services, approval.id) is ApprovalState.APPROVED
    assert len(fake.launches) == 1 and jobs.get_job(services.store, approval.subject_id).status != JobState.CANCELLED
    [edit] = edits_of(fake_slack, ts)
    assert edit["channel"] == CHANNEL and "approved by <@UAPPROVER>" in edit["text"]
    assert all(block["type"] != "actions" for block in edit["blocks"])  # the buttons are gone
    assert ephemerals(fake_slack, "UAPPROVER") == []


@pytest.mark.parametrize(
    ("user", "why"), [("UREQ", "four eyes"), ("UVIEWER", "FINETUNE_APPROVERS")], ids=["requester", "non-approver"]
)
def test_a_refused_click_is_told_to_the_clicker_and_changes_nothing(
    app, services, waiting, fake, fake_slack, user, why
):
    approval, ts = waiting
    post(app, click(approval.id, ts, user=user))
    [refusal] = wait_until(lambda: ephemerals(fake_slack, user), what="the ephemeral refusal")
    assert why in refusal
    settle()
    assert status_of(services, approval.id) is ApprovalState.PENDING and fake.launches == []
    assert edits_of(fake_slack, ts) == []
    rows = services.store.query("SELECT outcome FROM audit_log WHERE actor = ? AND command = 'approve'", (user,))
    assert [r["outcome"] for r in rows] == ["error"]


@pytest.mark.parametrize("how", ["unsigned", "forged", "stale"])
def test_an_unverified_click_is_refused_and_changes_nothing(app, services, waiting, fake_slack, how):
    approval, ts = waiting
    body = click(approval.id, ts)
    headers = {
        "unsigned": {"Content-Type": "application/x-www-form-urlencoded"},
        "forged": sign(body, secret="not-the-secret"),
        "stale": sign(body, timestamp=int(time.time()) - 301),
    }[how]
    assert post(app, body, headers).status_code == 401
    settle()
    assert status_of(services, approval.id) is ApprovalState.PENDING
    assert edits_of(fake_slack, ts) == [] and fake_slack.method_calls("chat.postEphemeral") == []


def test_a_replayed_click_decides_once(app, services, waiting, fake, fake_slack):
    approval, ts = waiting
    body = click(approval.id, ts, action_ts="1700000000.000100")
    for _ in range(3):
        assert post(app, body).status_code == 200
    wait_until(lambda: edits_of(fake_slack, ts), what="the message edit")
    settle()
    assert status_of(services, approval.id) is ApprovalState.APPROVED and len(fake.launches) == 1
    assert len(edits_of(fake_slack, ts)) == 1 and ephemerals(fake_slack, "UAPPROVER") == []
    assert services.store.scalar("SELECT count(*) FROM audit_log WHERE actor = 'UAPPROVER'") == 1


def test_a_click_on_a_request_decided_from_the_terminal_only_updates_the_message(
    app, services, waiting, fake, fake_slack, cli
):
    approval, ts = waiting
    code, _, err = cli("reject", approval.id, "--reason", "not this month")
    assert code == 0, err
    post(app, click(approval.id, ts))
    [edit] = wait_until(lambda: edits_of(fake_slack, ts), what="the message edit")
    assert "rejected" in edit["text"] and "not this month" in edit["text"]
    [told] = wait_until(lambda: ephemerals(fake_slack, "UAPPROVER"), what="the ephemeral answer")
    assert "already rejected" in told
    assert status_of(services, approval.id) is ApprovalState.REJECTED and fake.launches == []
    assert jobs.get_job(services.store, approval.subject_id).status == JobState.CANCELLED


def test_a_click_carrying_no_approval_is_answered_without_a_traceback(app, services, waiting, fake_slack):
    approval, ts = waiting
    post(app, click(approval.id, ts, value="ap_doesnotexist"))
    [told] = wait_until(lambda: ephemerals(fake_slack, "UAPPROVER"), what="the ephemeral answer")
    assert "ap_doesnotexist" in told
    assert post(app, click(approval.id, ts, value="x" * 10_000)).status_code == 200
    settle()
    assert status_of(services, approval.id) is ApprovalState.PENDING and edits_of(fake_slack, ts) == []


# Reject ----------------------------------------------------------------------------------------------------


def test_reject_opens_a_modal_whose_submission_rejects_with_the_reason(app, services, waiting, fake, fake_slack):
    approval, ts = waiting
    body = click(approval.id, ts, action=REJECT_ACTION)
    trigger = json.loads(urllib.parse.parse_qs(body)["payload"][0])["trigger_id"]
    post(app, body)
    [opened] = wait_until(lambda: fake_slack.method_calls("views.open"), what="the modal")
    assert opened["trigger_id"] == trigger
    metadata = json.loads(opened["view"]["private_metadata"])
    assert metadata == {"approval": approval.id, "channel": CHANNEL, "ts": ts}
    assert status_of(services, approval.id) is ApprovalState.PENDING  # only the modal so far

    answer = post(app, submission(approval.id, ts, "  too big for this quarter  "))
    assert answer.status_code == 200 and not answer.text  # the modal closes
    [edit] = wait_until(lambda: edits_of(fake_slack, ts), what="the message edit")
    assert "rejected by <@UAPPROVER>" in edit["text"] and "too big for this quarter" in edit["text"]
    decided = approvals.get(services.store, approval.id)
    assert decided.status is ApprovalState.REJECTED and decided.reason == "too big for this quarter"
    assert jobs.get_job(services.store, approval.subject_id).status == JobState.CANCELLED and fake.launches == []


@pytest.mark.parametrize(("reason", "problem"), [("   ", "Say why"), ("x" * (REASON_MAX + 1), "shorten it")])
def test_a_bad_reason_keeps_the_modal_open_and_changes_nothing(app, services, waiting, fake_slack, reason, problem):
    approval, ts = waiting
    answer = post(app, submission(approval.id, ts, reason))
    assert answer.status_code == 200
    errors = answer.json()
    assert errors["response_action"] == "errors" and problem in errors["errors"][REASON_BLOCK]
    settle()
    assert status_of(services, approval.id) is ApprovalState.PENDING and edits_of(fake_slack, ts) == []


def test_a_resubmitted_modal_rejects_once(app, services, waiting, fake_slack):
    approval, ts = waiting
    body = submission(approval.id, ts, "no budget", trigger="trig-same")
    for _ in range(3):
        post(app, body)
    wait_until(lambda: edits_of(fake_slack, ts), what="the message edit")
    settle()
    assert len(edits_of(fake_slack, ts)) == 1 and ephemerals(fake_slack, "UAPPROVER") == []


@given(st.one_of(st.none(), st.integers(), st.text(max_size=REASON_MAX + 50)))
def test_any_reason_is_either_accepted_bounded_or_refused_with_a_message(value):
    reason, problem = reason_of({"view": {"state": {"values": {REASON_BLOCK: {REASON_INPUT: {"value": value}}}}}})
    if problem is None:
        assert reason and reason == reason.strip() and len(reason) <= REASON_MAX
    else:
        assert reason == "" and problem


# The requester hears the outcome --------------------------------------------------------------------------


def test_a_slack_requester_gets_one_direct_message_when_decided(app, services, waiting, fake_slack):
    approval, ts = waiting
    post(app, click(approval.id, ts))
    wait_until(lambda: status_of(services, approval.id) is ApprovalState.APPROVED, what="the decision")
    client = slack_client(fake_slack)
    deliver_due(services.store, client, default_channel=CHANNEL)
    deliver_due(services.store, client, default_channel=CHANNEL)
    assert [c["users"] for c in fake_slack.method_calls("conversations.open")] == ["UREQ"]
    [dm] = [p for p in fake_slack.posted if p["channel"] == "DUREQ"]
    assert f"Your request `{approval.id}` was" in dm["text"] and "approved by <@UAPPROVER>" in dm["text"]


def test_a_terminal_requester_gets_no_direct_message(services, settings, fake_slack, cli):
    approval, _ = request_launch(services, fake_slack, terminal_actor(settings))
    approvals_decided = approvals.decide(
        services.store, approval_id=approval.id, actor=slack_actor(settings, "UAPPROVER"), approve=False,
        four_eyes=True, on_decided=lambda *_: None, reason="no",
    )  # fmt: skip
    assert approvals_decided.status is ApprovalState.REJECTED
    deliver_due(services.store, slack_client(fake_slack), default_channel=CHANNEL)
    assert fake_slack.method_calls("conversations.open") == []
    assert services.store.scalar("SELECT count(*) FROM outbox WHERE kind = 'approval_answered'") == 0


def test_an_alias_move_reads_as_a_sentence_with_the_mover_mentioned():
    from bot.slack.blocks.kit import render
    from core.platform.events import AliasMoved
    from core.vocabulary import AliasMove

    moved = AliasMoved(
        model_name="support", alias="production", move=next(iter(AliasMove)), from_version_id="support:v1",
        to_version_id="support:v2", canary_version_id="support:v3", canary_share=10, actor="slack:UALICE",
        approval_id="ap_1",
    )  # fmt: skip
    message = render(moved)
    assert "`support@production`" in message.text and "support:v1 → *support:v2*" in message.text
    assert "canary *support:v3* at 10%" in message.text
    assert "<@UALICE>" in json.dumps(message.blocks) and "ap_1" in json.dumps(message.blocks)
