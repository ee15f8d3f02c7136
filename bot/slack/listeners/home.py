"""The app's Home tab: published for a user each time they open it, and again after they decide from it.

Slack sends `app_home_opened` whenever someone opens the tab; the ack is
immediate and a lazy worker reads the core (pending approvals, active jobs,
models and their aliases, the latest alias moves) and publishes that user's
view. Nothing else publishes it, so no change fans out to every user: the tab
is as fresh as its last opening, or the user's own last decision from it
(`refresh_after_decision`, called by the approval listeners). A redelivered
event publishes once; a Slack failure is logged and the tab stays as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.invoke import slack_actor
from bot.slack.blocks.home import LIST_CAP, HomeFacts, ModelAliases, home_view, problem_view
from bot.slack.listeners.redelivery import first_delivery
from core import registry
from core.errors import FinetuneError
from core.platform import approvals
from core.platform.policy import authorize
from core.platform.timeutil import iso
from core.services import Services
from core.training import Job, jobs
from core.vocabulary import ACTIVE_JOB_STATES, Operation

log = logging.getLogger(__name__)

HOME_OPENED = "app_home_opened"
HOME_TAB = "home"  # the other tabs (messages, about) publish nothing
ACTIVE_JOBS_READ = 200  # jobs read per active state: far more than ever run at once
MAX_USER_ID = 64


def register(app: App, services: Services) -> None:
    def ack_at_once(ack: Callable[[], None]) -> None:
        ack()

    def home_opened(body: dict[str, Any], client: WebClient) -> None:
        user_id = opened_home_of(body)
        if user_id is not None and first_delivery(services, body):
            publish_home(services, client, user_id=user_id)

    app.event(HOME_OPENED)(ack=ack_at_once, lazy=[home_opened])


def opened_home_of(body: dict[str, Any]) -> str | None:
    """The user who opened the Home tab, from an app_home_opened event; None for other tabs or a payload without one."""
    event = body.get("event")
    event = event if isinstance(event, dict) else {}
    if event.get("tab") != HOME_TAB:
        return None
    user_id = event.get("user")
    if not is_user_id(user_id):
        log.warning("ignoring an app_home_opened event without a user id")
        return None
    return str(user_id)


def is_user_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_USER_ID and value.isascii() and value.isalnum()


def publish_home(services: Services, client: WebClient, *, user_id: str) -> None:
    """Publish `user_id`'s Home tab as the core stands now; a failure to read or to publish is logged."""
    try:
        authorize(slack_actor(services.settings, user_id), Operation.READ)
        view = home_view(home_facts(services))
    except FinetuneError as exc:
        view = problem_view(str(exc))
    except Exception:
        log.exception("could not read the Home tab of %s", user_id)
        view = problem_view("The Home tab could not be read just now; open it again in a moment.")
    try:
        client.views_publish(user_id=user_id, view=view)
    except SlackClientError:
        log.exception("could not publish the Home tab of %s", user_id)


def refresh_after_decision(services: Services, client: WebClient, *, user_id: str, channel: str | None) -> None:
    """After a decision: one without a channel came from the Home tab (or a modal opened there), so it catches up."""
    if channel is None and is_user_id(user_id):
        publish_home(services, client, user_id=user_id)


def tell_directly(client: WebClient, *, user_id: str, text: str) -> None:
    """A message to `user_id` in their direct messages with the app, where a click from the Home tab is answered."""
    try:
        opened = client.conversations_open(users=user_id)
        channel = opened.get("channel")
        channel_id = channel.get("id") if isinstance(channel, dict) else None
        if not isinstance(channel_id, str) or not channel_id:
            log.warning("Slack opened no direct message channel with %s; could not tell them: %s", user_id, text)
            return
        client.chat_postMessage(channel=channel_id, text=text)
    except SlackClientError:
        log.exception("could not answer %s in direct messages", user_id)


def home_facts(services: Services) -> HomeFacts:
    """What the Home tab shows, read through the core's read functions."""
    store = services.store
    pending = approvals.pending(store).approvals
    active = active_jobs(services)
    names = registry.list_models(store)
    models = [ModelAliases(name=name, aliases=registry.list_aliases(store, name)) for name in names[:LIST_CAP]]
    return HomeFacts(
        approvals=pending[:LIST_CAP], approvals_total=len(pending), jobs=active[:LIST_CAP], jobs_total=len(active),
        models=models, models_total=len(names), moves=registry.recent_moves(store, limit=LIST_CAP),
        updated_at=iso(services.clock()),
    )  # fmt: skip


def active_jobs(services: Services) -> list[Job]:
    """Jobs submitting, validating, queued or running, newest first."""
    found = [
        job
        for state in sorted(ACTIVE_JOB_STATES)
        for job in jobs.list_jobs(services.store, status=state, limit=ACTIVE_JOBS_READ).jobs
    ]
    return sorted(found, key=lambda job: job.created_at, reverse=True)
