"""The "Add to training data" message shortcut: signed message_action and view_submission payloads into the real bolt app."""

import json
import time
import urllib.parse

import pytest
from starlette.testclient import TestClient

from bot import invoke
from bot.serve import build_app
from bot.slack.blocks.capture import (
    AGENT_BLOCK,
    CAPTURE_SHORTCUT,
    CAPTURE_VIEW,
    DRAFT_BLOCK,
    FINAL_BLOCK,
    INPUT,
    NEW_AGENT_BLOCK,
    RATING_BLOCK,
    REQUEST_BLOCK,
)
from bot.slack.listeners import launch_wizard, shortcuts
from bot.slack.listeners.shortcuts import MessageClick, prefill
from core.data import capture, feedback
from core.platform.actors import cli_actor
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, svc, wait_until

CHANNEL = "CSUPPORT"
NOW = int(time.time())
PARENT_TS, DRAFT_TS, REPLY_TS = f"{NOW - 300}.000100", f"{NOW - 200}.000200", f"{NOW - 100}.000300"
DRAFT = "Your refund ships Monday."
REPLY = "Your refund was sent today &amp; arrives Monday. Write to dana@example.com if not."


@pytest.fixture
def settings(tmp_path, fake_slack):
    return make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url,
        slack_channel="CNOTIFY", operators=["UOP"],
    )  # fmt: skip


@pytest.fixture
def services(store, settings):
    feedback.ingest_batch(
        store, [{"agent": agent, "prompt": "hi", "output": f"hello from {agent}"} for agent in ("billing", "support")],
        actor=cli_actor(),
    )  # fmt: skip
    return svc(store, settings)


@pytest.fixture
def app(services):
    with TestClient(build_app(services), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture
def thread(fake_slack):
    """A customer's question, the support bot's draft in its thread, and the operator's corrected reply."""
    fake_slack.posted += [
        {"channel": CHANNEL, "ts": PARENT_TS, "thread_ts": PARENT_TS, "user": "UCUSTOMER", "text": "Where is my refund?"},
        {"channel": CHANNEL, "ts": DRAFT_TS, "thread_ts": PARENT_TS, "bot_id": "B1", "bot_profile": {"name": "Support"},
         "text": DRAFT},
        {"channel": CHANNEL, "ts": REPLY_TS, "thread_ts": PARENT_TS, "user": "UOP", "text": REPLY},
    ]  # fmt: skip
    return fake_slack.posted


def form(payload: dict) -> str:
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def draft_message(**extra) -> dict:
    return {
        "type": "message", "ts": DRAFT_TS, "thread_ts": PARENT_TS, "bot_id": "B1", "bot_profile": {"name": "Support"},
        "text": DRAFT, "reactions": [{"name": "-1", "users": ["UOP"], "count": 1}], **extra,
    }  # fmt: skip


def shortcut(fake_slack, *, user="UOP", message=None, trigger=None) -> str:
    return form(
        {
            "type": "message_action", "callback_id": CAPTURE_SHORTCUT, "trigger_id": trigger or f"trig-{time.monotonic_ns()}",
            "action_ts": f"{time.time():.6f}", "team": {"id": "T1", "domain": "acme"},
            "user": {"id": user, "name": "dana", "team_id": "T1"}, "channel": {"id": CHANNEL, "name": "support"},
            "message_ts": DRAFT_TS, "message": message or draft_message(),
            "response_url": fake_slack.response_url("capture"),
        }
    )  # fmt: skip


def submission(view: dict, values: dict, *, user="UOP", trigger=None) -> str:
    return form(
        {
            "type": "view_submission", "team": {"id": "T1"}, "user": {"id": user, "team_id": "T1"}, "api_app_id": "A1",
            "trigger_id": trigger or f"trig-{time.monotonic_ns()}",
            "view": {"id": "V1", "type": "modal", "callback_id": CAPTURE_VIEW,
                     "private_metadata": view["private_metadata"], "state": {"values": values}},
        }
    )  # fmt: skip


def post(app, body: str):
    return app.post("/slack/events", content=body, headers=sign(body))


def filled_form(fake_slack) -> dict:
    """The form the worker put in place of the loading modal."""
    [update] = wait_until(lambda: fake_slack.method_calls("views.update"), what="the filled form")
    assert update["view_id"] == "V1"
    return update["view"]


def as_submitted(view: dict, **changes: str) -> dict:
    """The state.values Slack sends for `view` submitted as prefilled, with `changes` (block id -> value) typed."""
    values = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element, block_id = block["element"], block["block_id"]
        if element["type"] == "static_select":
            chosen = changes.get(block_id, (element.get("initial_option") or {}).get("value"))
            values[block_id] = {INPUT: {"type": "static_select",
                                        "selected_option": {"value": chosen} if chosen else None}}  # fmt: skip
        else:
            values[block_id] = {INPUT: {"type": "plain_text_input", "value": changes.get(block_id,
                                                                                   element.get("initial_value"))}}  # fmt: skip
    return values


def stored(store) -> list[dict]:
    return store.query("SELECT id, agent, ai_output, final_output, rating, user, input_messages, tags FROM feedback "
                       "WHERE id LIKE 'slack:%'")  # fmt: skip


def capture_answers(fake_slack) -> list[str]:
    return [json.dumps(r, ensure_ascii=False) for r in fake_slack.responses("capture")]


# Opening the form -----------------------------------------------------------------------------------------


def test_the_shortcut_opens_a_modal_within_the_ack_then_fills_it_from_the_thread(app, fake_slack, thread):
    started = time.monotonic()
    response = post(app, shortcut(fake_slack))
    assert response.status_code == 200 and time.monotonic() - started < 3
    [opened] = wait_until(lambda: fake_slack.method_calls("views.open"), timeout=3, what="views.open")
    assert opened["view"]["callback_id"] == CAPTURE_VIEW and "Reading" in json.dumps(opened["view"])

    view = filled_form(fake_slack)
    assert view["submit"]["text"] == "Add"
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert inputs[DRAFT_BLOCK]["initial_value"] == DRAFT
    assert inputs[FINAL_BLOCK]["initial_value"] == REPLY.replace("&amp;", "&")  # the reply, as people read it
    assert inputs[REQUEST_BLOCK]["initial_value"] == "Where is my refund?"  # the message before the draft
    assert [o["value"] for o in inputs[AGENT_BLOCK]["options"]] == ["billing", "support"]  # known agents
    assert inputs[AGENT_BLOCK]["initial_option"]["value"] == "support"  # the bot's name, when it is an agent
    assert inputs[RATING_BLOCK]["initial_option"]["value"] == "down"  # their own thumbs-down reaction
    metadata = json.loads(view["private_metadata"])
    assert metadata == {"channel": CHANNEL, "ts": DRAFT_TS, "response_url": fake_slack.response_url("capture")}


def test_a_person_who_may_not_add_feedback_is_told_why_instead_of_the_form(app, fake_slack, store, thread):
    post(app, shortcut(fake_slack, user="UVIEWER"))
    view = filled_form(fake_slack)
    text = json.dumps(view)
    assert "may not ingest feedback" in text and "FINETUNE_OPERATORS" in text
    assert "submit" not in view
    [row] = store.query("SELECT actor, outcome FROM audit_log WHERE command = 'capture form'")
    assert row == {"actor": "UVIEWER", "outcome": "error"}


def test_a_message_too_long_for_a_form_is_sent_elsewhere(app, fake_slack, thread):
    post(app, shortcut(fake_slack, message=draft_message(text="x" * 3001)))
    assert "finetune data ingest" in json.dumps(filled_form(fake_slack))


def test_an_unreadable_thread_still_opens_the_form_and_says_why(app, fake_slack):
    fake_slack.posted.clear()  # the thread is not there: nothing to prefill from but the message
    message = draft_message(thread_ts="1700000000.000001")
    post(app, shortcut(fake_slack, message=message))
    view = filled_form(fake_slack)
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert inputs[DRAFT_BLOCK]["initial_value"] == DRAFT and "initial_value" not in inputs[FINAL_BLOCK]
    assert "You have not replied" in json.dumps(view)


# Prefilling, pure ------------------------------------------------------------------------------------------


def click(message: dict, user: str = "UOP") -> MessageClick:
    return MessageClick(user_id=user, channel=CHANNEL, message=message, trigger_id="t", response_url=None)


def test_an_edited_message_without_a_reply_is_the_final_text_and_asks_for_the_draft():
    message = {"ts": DRAFT_TS, "user": "UOP", "text": "The corrected answer.", "edited": {"user": "UOP", "ts": "1"}}
    form_ = prefill(click(message), thread=[], agents=["support"])
    assert form_.final == "The corrected answer." and form_.draft == ""
    assert any("Paste the AI's draft" in note for note in form_.notes)


def test_a_bot_reply_or_someone_elses_reply_is_not_the_final_text():
    thread = [
        {"ts": DRAFT_TS, "text": DRAFT, "bot_id": "B1"},
        {"ts": REPLY_TS, "text": "bot noise", "bot_id": "B1", "user": "UOP"},
        {"ts": f"{NOW - 50}.000400", "text": "not mine", "user": "UOTHER"},
    ]
    form_ = prefill(click({"ts": DRAFT_TS, "text": DRAFT, "bot_id": "B1"}), thread=thread, agents=[])
    assert form_.final == "" and form_.request == ""


def test_without_known_agents_the_bots_name_is_offered_as_a_new_agent():
    form_ = prefill(click(draft_message()), thread=[], agents=[])
    assert form_.agents == () and form_.new_agent == "Support"


# Submitting ------------------------------------------------------------------------------------------------


def test_submitting_stores_one_redacted_event_audited_with_the_slack_user(app, fake_slack, store, thread):
    post(app, shortcut(fake_slack))
    view = filled_form(fake_slack)
    response = post(app, submission(view, as_submitted(view)))
    assert response.status_code == 200 and not response.content  # closed: no errors
    [event] = wait_until(lambda: stored(store), what="the stored event")
    assert event["id"] == f"slack:{CHANNEL}:{DRAFT_TS}" and event["agent"] == "support"
    assert event["ai_output"] == DRAFT and event["rating"] == 1.0 and event["user"] == "UOP"
    assert "[EMAIL]" in event["final_output"] and "dana@example.com" not in event["final_output"]
    assert json.loads(event["input_messages"]) == [{"role": "user", "content": "Where is my refund?"}]
    assert json.loads(event["tags"]) == ["slack"]
    [audit] = store.query(
        "SELECT actor, face, outcome, detail FROM audit_log WHERE command = 'ingest' AND actor = 'UOP'"
    )
    assert audit["face"] == "slack" and audit["outcome"] == "ok" and audit["detail"].startswith("1 new")
    [answer] = wait_until(lambda: capture_answers(fake_slack), what="the confirmation")
    assert "Added to the training data" in answer and "1 EMAIL" in answer and "ephemeral" in answer


def test_a_retried_submission_or_the_same_message_again_stays_one_event(app, fake_slack, store, thread):
    post(app, shortcut(fake_slack))
    view = filled_form(fake_slack)
    body = submission(view, as_submitted(view), trigger="trig-once")
    for _ in range(2):  # Slack retries the very same submission
        assert post(app, body).status_code == 200
    wait_until(lambda: stored(store), what="the stored event")
    edited = as_submitted(view, **{FINAL_BLOCK: "Something else entirely."})  # the message added again, edited
    post(app, submission(view, edited))
    answers = wait_until(lambda: len(capture_answers(fake_slack)) >= 2 and capture_answers(fake_slack),
                         what="both answers")  # fmt: skip
    time.sleep(0.3)
    assert len(stored(store)) == 1 and "[EMAIL]" in stored(store)[0]["final_output"]  # the first one, unchanged
    assert len(capture_answers(fake_slack)) == 2  # the retry ran once
    assert "already in the training data" in answers[1]
    [again] = store.query("SELECT outcome, detail FROM audit_log WHERE command = 'capture'")
    assert again == {"outcome": "ok", "detail": "already stored; nothing changed"}


@pytest.mark.parametrize(
    ("changes", "block", "said"),
    [
        ({NEW_AGENT_BLOCK: "a" * 300}, NEW_AGENT_BLOCK, "identifiers hold at most 256"),
        ({DRAFT_BLOCK: "  "}, DRAFT_BLOCK, "Give the AI's draft"),
        ({REQUEST_BLOCK: ""}, REQUEST_BLOCK, "the request its draft answered"),
        ({FINAL_BLOCK: "bad \ud800 text"}, FINAL_BLOCK, "`final` holds an unpaired surrogate"),
        ({RATING_BLOCK: "7"}, RATING_BLOCK, "Choose a rating"),
    ],
)
def test_a_bad_field_keeps_the_modal_open_with_the_problem_under_it(app, fake_slack, store, thread, changes, block,
                                                                    said):  # fmt: skip
    post(app, shortcut(fake_slack))
    view = filled_form(fake_slack)
    response = post(app, submission(view, as_submitted(view, **changes)))
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_action"] == "errors" and list(answer["errors"]) == [block]
    assert said in answer["errors"][block]
    time.sleep(0.3)
    assert stored(store) == [] and capture_answers(fake_slack) == []


def test_no_agent_chosen_or_typed_is_asked_for_on_the_select(app, fake_slack, store, thread):
    post(app, shortcut(fake_slack))
    view = filled_form(fake_slack)
    values = as_submitted(view)
    values[AGENT_BLOCK][INPUT]["selected_option"] = None
    answer = post(app, submission(view, values)).json()
    assert answer["errors"] == {AGENT_BLOCK: "Choose the agent that wrote the draft, or type a new one's name."}


def test_a_typed_new_agent_wins_over_the_choice(app, fake_slack, store, thread):
    post(app, shortcut(fake_slack))
    view = filled_form(fake_slack)
    post(app, submission(view, as_submitted(view, **{NEW_AGENT_BLOCK: "refunds-bot"})))
    [event] = wait_until(lambda: stored(store), what="the stored event")
    assert event["agent"] == "refunds-bot"


def test_a_person_who_may_not_add_feedback_is_refused_on_submission_too(app, fake_slack, store, thread):
    post(app, shortcut(fake_slack))
    view = filled_form(fake_slack)
    post(app, submission(view, as_submitted(view), user="UVIEWER"))
    [answer] = wait_until(lambda: capture_answers(fake_slack), what="the refusal")
    assert "Not added" in answer and "may not ingest feedback" in answer
    assert stored(store) == []
    [row] = store.query("SELECT actor, outcome FROM audit_log WHERE command = 'capture'")
    assert row == {"actor": "UVIEWER", "outcome": "error"}


def test_a_forged_form_without_its_message_is_acked_and_ignored(app, fake_slack, store):
    view = {"private_metadata": json.dumps({"channel": "not a channel", "ts": "x"})}
    response = post(app, submission(view, {DRAFT_BLOCK: {INPUT: {"type": "plain_text_input", "value": "x"}}}))
    assert response.status_code == 200 and not response.content
    time.sleep(0.3)
    assert stored(store) == []


# The core and the policy table --------------------------------------------------------------------------------


def test_capture_event_needs_an_id_and_stores_once(store):
    from core.errors import InvalidInput

    event = {"id": "slack:C1:1.2", "agent": "support", "prompt": "q", "output": "draft", "final": "final"}
    with pytest.raises(InvalidInput, match="needs its own `id`"):
        capture.capture_event(store, {**event, "id": " "}, actor=cli_actor(), source="t", redact=True)
    first = capture.capture_event(store, event, actor=cli_actor(), source="t", redact=True)
    assert first.created and first.edited and first.acceptance is not None and first.acceptance < 1
    again = capture.capture_event(store, {**event, "final": "other"}, actor=cli_actor(), source="t", redact=True)
    assert not again.created
    assert store.scalar("SELECT count(*) FROM feedback WHERE id = 'slack:C1:1.2'") == 1


def test_known_agents_are_distinct_and_sorted(store):
    events = [{"agent": a, "prompt": "q", "output": f"o{i}"} for i, a in enumerate(["zeta", "alpha", "zeta", "mid"])]
    feedback.ingest_batch(store, events, actor=cli_actor())
    assert capture.known_agents(store) == ["alpha", "mid", "zeta"]
    assert capture.known_agents(store, limit=2) == ["alpha", "mid"]


def test_every_slack_call_the_listeners_make_is_declared():
    used = {shortcuts.FORM_CALL, shortcuts.CAPTURE_CALL, launch_wizard.FORM_CALL}
    assert set(invoke.SLACK_CALLS) == used
