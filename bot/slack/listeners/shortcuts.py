"""The "Add to training data" message shortcut: a message (an AI draft) and its correction become one feedback event.

A click is acked at once; the lazy worker opens a modal right away (a trigger
expires in 3 seconds) that says it is reading, then fills it in place
(views.update): the draft is the message; the final text is the clicking
person's first reply after it in its thread, or, when Slack marks the message
as edited by them and nobody replied, the message itself as it now reads
(Slack sends no earlier text of an edited message, so the draft is then left
for them to paste); the request is the message before the draft in its
thread; the agent is chosen from the agents the feedback store knows (the
bot's name preselected when it is one of them) or typed; the rating comes
from their own thumbs reaction on the message, if any.

The submission is checked in the ack with the ingest's own validation, so a
problem stays on the modal under its field. The lazy worker then stores the
event through `bot.invoke` as the submitting Slack user (policy: ingest;
audit), named `slack:CHANNEL:TS` after the message, so a retried submission
or the same message added again stays one event, and tells the person what
happened. A person who may not add feedback sees why instead of the form.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.invoke import Failure, Verdict, invoke, slack_actor
from bot.slack.blocks import SlackMessage, render
from bot.slack.blocks.capture import (
    AGENT_BLOCK,
    CAPTURE_SHORTCUT,
    CAPTURE_VIEW,
    DRAFT_BLOCK,
    FINAL_BLOCK,
    INPUT,
    INTENT_BLOCK,
    MAX_TEXT_FIELD,
    NEW_AGENT_BLOCK,
    RATING_BLOCK,
    RATINGS,
    REQUEST_BLOCK,
    CaptureForm,
    capture_view,
    loading_view,
    problem_view,
)
from bot.slack.blocks.kit import section
from bot.slack.listeners.answers import answer, response_url_of
from bot.slack.listeners.home import is_user_id
from bot.slack.listeners.redelivery import first_delivery
from core.data import capture
from core.services import Services

log = logging.getLogger(__name__)

FORM_CALL = "capture form"  # bot.invoke.SLACK_CALLS
CAPTURE_CALL = "capture"
TAG = "slack"  # every captured event carries it: `data build NAME --tag slack` selects them
THREAD_READ = 200  # messages of a thread read to find the request and the reply
MESSAGE_TS = re.compile(r"[0-9]{1,12}\.[0-9]{1,9}")
CHANNEL_ID = re.compile(r"[A-Z0-9]{1,64}")
MAX_ERROR = 500  # characters of an error shown under a field
UP_REACTIONS = {"+1", "thumbsup"}
DOWN_REACTIONS = {"-1", "thumbsdown"}


@dataclass(frozen=True)
class MessageClick:
    """Who clicked the shortcut on which message, and where to answer them."""

    user_id: str
    channel: str
    message: dict[str, Any]
    trigger_id: str
    response_url: str | None

    @property
    def ts(self) -> str:
        return str(self.message["ts"])


def register(app: App, services: Services) -> None:
    def ack_at_once(ack: Callable[[], None]) -> None:
        ack()

    def shortcut_clicked(body: dict[str, Any], client: WebClient) -> None:
        click = message_click(body)
        if click is not None and first_delivery(services, body):
            open_form(services, client, click)

    def check_form(ack: Callable[..., None], body: dict[str, Any]) -> None:
        _, errors = submitted_event(body)
        if errors:
            ack(response_action="errors", errors=errors)
        else:
            ack()

    def form_submitted(body: dict[str, Any], client: WebClient) -> None:
        event, errors = submitted_event(body)
        if event is None or errors or not first_delivery(services, body):
            return
        add_event(services, client, body, event)

    app.message_shortcut(CAPTURE_SHORTCUT)(ack=ack_at_once, lazy=[shortcut_clicked])
    app.view(CAPTURE_VIEW)(ack=check_form, lazy=[form_submitted])


# The click -----------------------------------------------------------------------------------------


def message_click(body: dict[str, Any]) -> MessageClick | None:
    """The click of a message_action payload; None (logged) when it says too little to act on."""
    user_id = _dig(body, "user", "id")
    channel = _dig(body, "channel", "id")
    message = body.get("message")
    trigger_id = body.get("trigger_id")
    if (
        not is_user_id(user_id)
        or not isinstance(channel, str)
        or not CHANNEL_ID.fullmatch(channel)
        or not isinstance(message, dict)
        or not isinstance(message.get("ts"), str)
        or not MESSAGE_TS.fullmatch(message["ts"])
        or not isinstance(trigger_id, str)
        or not trigger_id
    ):
        log.warning("ignoring an %s shortcut without a user, channel, message or trigger", CAPTURE_SHORTCUT)
        return None
    return MessageClick(
        user_id=str(user_id), channel=channel, message=message, trigger_id=trigger_id,
        response_url=response_url_of(body.get("response_url")),
    )  # fmt: skip


def open_form(services: Services, client: WebClient, click: MessageClick) -> None:
    """Open the modal at once, then fill it: the form, or why there is none."""
    try:
        opened = client.views_open(trigger_id=click.trigger_id, view=loading_view())
    except SlackClientError:
        log.exception("could not open the %s form", CAPTURE_SHORTCUT)
        return
    view_id = _dig(opened.data if isinstance(opened.data, dict) else {}, "view", "id")
    if not isinstance(view_id, str):
        log.warning("Slack opened the %s form without a view id", CAPTURE_SHORTCUT)
        return
    view = _form_view(services, client, click)
    try:
        client.views_update(view_id=view_id, view=view)
    except SlackClientError:
        log.exception("could not fill the %s form", CAPTURE_SHORTCUT)


def _form_view(services: Services, client: WebClient, click: MessageClick) -> dict[str, Any]:
    actor = slack_actor(services.settings, click.user_id)
    args = {"channel": click.channel, "ts": click.ts}
    agents = invoke(services, actor, FORM_CALL, args, lambda: capture.known_agents(services.store))
    if isinstance(agents, Failure):
        return problem_view(f":no_entry: {agents}")
    draft = slack_text(click.message.get("text"))
    if len(draft) > MAX_TEXT_FIELD:
        return problem_view(
            f":warning: This message is {len(draft):,} characters long; a Slack form holds at most "
            f"{MAX_TEXT_FIELD:,}. Add it with `finetune data ingest` (or an agent's `ingest_feedback`) instead."
        )
    thread, unread = read_thread(client, click)
    form = prefill(click, thread=thread, agents=agents, unread=unread)
    metadata = {"channel": click.channel, "ts": click.ts, "response_url": click.response_url}
    return capture_view(form, private_metadata=json.dumps(metadata))


# Reading the thread and prefilling -----------------------------------------------------------------


def read_thread(client: WebClient, click: MessageClick) -> tuple[list[dict[str, Any]], str | None]:
    """The messages of the clicked message's thread, oldest first, and why they could not be read (None if they were).

    A message outside any thread has none to read.
    """
    message = click.message
    thread_ts = message.get("thread_ts")
    if not isinstance(thread_ts, str) or not MESSAGE_TS.fullmatch(thread_ts):
        return [], None
    try:
        reply = client.conversations_replies(channel=click.channel, ts=thread_ts, limit=THREAD_READ)
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "an error")
        log.warning("could not read the thread %s in %s (%s)", thread_ts, click.channel, error)
        return [], error
    except SlackClientError as exc:
        log.warning("could not read the thread %s in %s (%s)", thread_ts, click.channel, exc)
        return [], "Slack did not answer"
    messages = [m for m in reply.get("messages") or [] if isinstance(m, dict) and isinstance(m.get("ts"), str)]
    return sorted(messages, key=lambda m: float(m["ts"])), None


def prefill(
    click: MessageClick, *, thread: list[dict[str, Any]], agents: list[str], unread: str | None = None
) -> CaptureForm:
    """The form as the message, its thread and the known agents suggest it."""
    message, user_id = click.message, click.user_id
    draft = slack_text(message.get("text"))
    before = [m for m in thread if float(m["ts"]) < float(click.ts)]
    after = [m for m in thread if float(m["ts"]) > float(click.ts)]
    request = slack_text(before[-1].get("text")) if before else ""
    reply = next((m for m in after if m.get("user") == user_id and not m.get("bot_id") and not m.get("subtype")), None)
    notes: list[str] = []
    final = ""
    if reply is not None:
        final = slack_text(reply.get("text"))
        notes.append("Final text: your reply in the thread.")
    elif _edited_by(message, user_id):
        final, draft = draft, ""
        notes.append(
            "You edited this message, and Slack sends only its text as it now reads: that is the final text. "
            "Paste the AI's draft as it was."
        )
    else:
        notes.append("You have not replied to it in its thread: type the final text, or leave it empty.")
    if unread is not None:
        notes.append(f"The thread could not be read ({unread}): invite the app to the channel to prefill from it.")
    if len(final) > MAX_TEXT_FIELD:
        final = ""
        notes.append(f"Your reply is longer than a form holds ({MAX_TEXT_FIELD:,} characters); paste its start.")
    if len(request) > MAX_TEXT_FIELD:
        request = ""
    bot_name = _bot_name(message)
    agent = next((known for known in agents if bot_name and known.lower() == bot_name.lower()), None)
    return CaptureForm(
        draft=draft, final=final, request=request, agents=tuple(agents), agent=agent,
        new_agent=bot_name if agent is None and bot_name and not agents else "",
        rating=_rating_from_reactions(message, user_id), notes=tuple(notes),
    )  # fmt: skip


def slack_text(value: object) -> str:
    """A message's text as a person reads it: Slack's escapes of &, < and > undone."""
    if not isinstance(value, str):
        return ""
    return value.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _edited_by(message: dict[str, Any], user_id: str) -> bool:
    return _dig(message, "edited", "user") == user_id and not message.get("bot_id")


def _bot_name(message: dict[str, Any]) -> str:
    name = _dig(message, "bot_profile", "name") or message.get("username")
    return name.strip() if isinstance(name, str) and message.get("bot_id") else ""


def _rating_from_reactions(message: dict[str, Any], user_id: str) -> str | None:
    reactions = message.get("reactions")
    for reaction in reactions if isinstance(reactions, list) else []:
        users = reaction.get("users") if isinstance(reaction, dict) else None
        if not isinstance(users, list) or user_id not in users:
            continue
        name = str(reaction.get("name", "")).split("::")[0]  # skin tones: "+1::skin-tone-2"
        if name in UP_REACTIONS:
            return "up"
        if name in DOWN_REACTIONS:
            return "down"
    return None


# The submission ------------------------------------------------------------------------------------


def submitted_event(body: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The event the form describes, and the problems to show under its fields (block id -> text).

    Pure and fast (it runs in the ack): the form's own questions first, then the ingest's validation.
    """
    metadata = _metadata(body)
    user_id = _dig(body, "user", "id")
    if metadata is None or not is_user_id(user_id):
        log.warning("ignoring an %s submission without a user or the message it is about", CAPTURE_VIEW)
        return None, {}
    values = _dig(body, "view", "state", "values")
    values = values if isinstance(values, dict) else {}
    chosen, typed = _value(values, AGENT_BLOCK), _value(values, NEW_AGENT_BLOCK)
    agent_block = NEW_AGENT_BLOCK if typed or AGENT_BLOCK not in values else AGENT_BLOCK
    agent = typed or chosen
    errors: dict[str, str] = {}
    if not agent:
        errors[agent_block] = "Choose the agent that wrote the draft, or type a new one's name."
    request, draft = _value(values, REQUEST_BLOCK), _value(values, DRAFT_BLOCK)
    if not request:
        errors[REQUEST_BLOCK] = "Give what the AI was asked: an event needs the request its draft answered."
    if not draft:
        errors[DRAFT_BLOCK] = "Give the AI's draft as it was."
    rating = _value(values, RATING_BLOCK)
    if rating and rating not in {value for value, _ in RATINGS}:
        errors[RATING_BLOCK] = "Choose a rating from the list."
    channel, ts = metadata
    event: dict[str, Any] = {
        "id": f"slack:{channel}:{ts}", "agent": agent, "prompt": request, "output": draft,
        "user": str(user_id), "created_at": ts, "tags": [TAG], "slack": {"channel": channel, "ts": ts},
    }  # fmt: skip
    for name, block in (("intent", INTENT_BLOCK), ("final", FINAL_BLOCK), ("rating", RATING_BLOCK)):
        if given := _value(values, block):
            event[name] = given
    if errors:
        return event, errors
    problem = capture.check_event(event)
    if problem is not None:
        block = _block_of(problem.field, agent_block)
        errors[block] = f"{problem.message} {problem.hint}"[:MAX_ERROR]
    return event, errors


_FIELD_BLOCKS = {
    "intent": INTENT_BLOCK, "rating": RATING_BLOCK, "prompt": REQUEST_BLOCK, "messages": REQUEST_BLOCK,
    "output": DRAFT_BLOCK, "final": FINAL_BLOCK,
}  # fmt: skip


def _block_of(field: str | None, agent_block: str) -> str:
    """The form's block that shows a problem with an event's field (what Slack gave, not the form: the draft's)."""
    root = (field or "").split("[")[0].split(".")[0]
    return agent_block if root == "agent" else _FIELD_BLOCKS.get(root, DRAFT_BLOCK)


def add_event(services: Services, client: WebClient, body: dict[str, Any], event: dict[str, Any]) -> None:
    """Store the event as the submitting Slack user, and tell them what became of it."""
    user_id = str(_dig(body, "user", "id"))
    slack = event["slack"]
    actor = slack_actor(services.settings, user_id)
    result = invoke(
        services, actor, CAPTURE_CALL, {"event": event["id"], "channel": slack["channel"]},
        lambda: capture.capture_event(
            services.store, event, actor=actor, source=f"slack:{slack['channel']}",
            redact=services.settings.redact_at_ingest,
        ),
        verdict=lambda done: Verdict() if done.created else Verdict(detail="already stored; nothing changed"),
    )  # fmt: skip
    if isinstance(result, Failure):
        message = SlackMessage(f"Not added: {result}", [section(f":warning: Not added to the training data: {result}")])
    else:
        message = render(result)
    metadata = _raw_metadata(body)
    answer(client, message, user_id=user_id, channel=slack["channel"],
           response_url=response_url_of(metadata.get("response_url")))  # fmt: skip


def _raw_metadata(body: dict[str, Any]) -> dict[str, Any]:
    try:
        metadata = json.loads(str(_dig(body, "view", "private_metadata") or ""))
    except ValueError:
        return {}
    return metadata if isinstance(metadata, dict) else {}


def _metadata(body: dict[str, Any]) -> tuple[str, str] | None:
    """The channel and ts of the message the form is about, as the form's opener kept them."""
    metadata = _raw_metadata(body)
    channel, ts = metadata.get("channel"), metadata.get("ts")
    if isinstance(channel, str) and CHANNEL_ID.fullmatch(channel) and isinstance(ts, str) and MESSAGE_TS.fullmatch(ts):
        return channel, ts
    return None


def _value(values: dict[str, Any], block: str) -> str:
    """An input's value, stripped at its ends ('' when empty or absent): typed text or the chosen option."""
    state = _dig(values, block, INPUT)
    if not isinstance(state, dict):
        return ""
    value = state.get("value")
    if value is None:
        value = _dig(state, "selected_option", "value")
    return value.strip() if isinstance(value, str) else ""


def _dig(value: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
