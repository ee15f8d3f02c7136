"""Delivers outbox rows to Slack. Runs as a scheduler job inside `finetune serve`.

Each row is posted once; a row whose `message_key` was posted before edits
that message instead (one Slack message per job, updated in place), and of
several waiting rows of one key only the newest goes out.

Exactly once: the attempt is recorded before a post leaves, and the post
carries the row's id in its message `metadata`. A row whose post was never
confirmed (serve was killed, or marking it delivered failed) is looked up in
the channel's history around the attempt time before it is posted again.
A new post's attachments (a regression alert's chart) follow in its thread,
best effort: a failed upload never posts the message again.

Every row fails on its own: Slack down or throttling (HTTP 429, Retry-After
honoured) backs that row off; a refusal, an unrenderable event or a surprising
reply costs it one of a few attempts before it becomes a dead letter. A row
addressed to a user (the requester of an approval) goes to the app's direct
messages with them. Posts
are paced per channel (about one a second, as Slack asks): what is allowed now
goes out, the rest stays due for a later run, so the scheduler never waits.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.slack.blocks import Attachment, render_message
from core.errors import StoreError
from core.platform import Store, outbox
from core.platform.scheduler import record_run
from core.platform.timeutil import parse_iso, retry_after_seconds, utcnow
from core.services import Services

log = logging.getLogger(__name__)

METADATA_EVENT = "finetune_outbox"
HISTORY_WINDOW = timedelta(minutes=5)  # either side of the attempt time: clock skew and a slow post fit in it
HISTORY_PAGES = 10
HISTORY_PAGE_SIZE = 200
TRANSIENT_ERRORS = frozenset({"ratelimited", "service_unavailable", "internal_error", "fatal_error", "request_timeout"})


class DeliveryFailed(Exception):
    """This attempt failed; the row backs off (or, attempts spent, becomes a dead letter).

    `transient`: Slack was unreachable or throttling. `posted_maybe`: the post may
    have arrived (no answer came), so the next attempt looks for it first.
    `retry_after`: Slack asked for this many seconds of quiet on the channel.
    """

    def __init__(
        self, message: str, *, transient: bool, posted_maybe: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.posted_maybe = posted_maybe
        self.retry_after = retry_after


class ChannelPacer:
    """Slack's pace per channel: a token bucket (`per_second`, bursts up to `burst`), held after a 429."""

    def __init__(self, *, per_second: float = 1.0, burst: int = 3, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        self._tokens: dict[str, float] = {}
        self._refilled: dict[str, float] = {}
        self._held_until: dict[str, float] = {}

    def take(self, channel: str) -> bool:
        """Whether one message may go to `channel` now (and count it if so)."""
        now = self.clock()
        if self._held_until.get(channel, now) > now:
            return False
        elapsed = now - self._refilled.get(channel, now)
        tokens = min(float(self.burst), self._tokens.get(channel, float(self.burst)) + elapsed * self.per_second)
        self._refilled[channel] = now
        if tokens < 1:
            self._tokens[channel] = tokens
            return False
        self._tokens[channel] = tokens - 1
        return True

    def hold(self, channel: str, seconds: float) -> None:
        """Send nothing to `channel` for `seconds` (Slack's Retry-After)."""
        until = self.clock() + seconds
        self._held_until[channel] = max(until, self._held_until.get(channel, until))
        self._tokens[channel] = 0.0
        self._refilled[channel] = until


def deliver_due(
    store: Store, client: WebClient, *, default_channel: str | None, pacer: ChannelPacer | None = None, limit: int = 50
) -> int:
    """Deliver what is due and allowed now; returns how many were delivered.

    A database that cannot be written ends the run (the rows wait, and a post
    already made is found in Slack next time); anything else fails one row only.
    """
    pacer = pacer or ChannelPacer()
    delivered = 0
    try:
        outbox.collapse(store)
        for message in outbox.due(store, limit=limit):
            delivered += _deliver(store, client, message, default_channel, pacer)
    except (sqlite3.Error, StoreError) as exc:
        log.warning("outbox: the database is unavailable (%s); delivery resumes on the next run", exc)
    return delivered


def _deliver(
    store: Store, client: WebClient, message: outbox.OutboxMessage, default_channel: str | None, pacer: ChannelPacer
) -> bool:
    target: outbox.MessageRef | None = None
    try:
        target = _direct_channel(client, _target(store, message, default_channel))
        if not pacer.take(target.channel):
            return False  # still due: a later run sends it
        where = _send(store, client, message, target)
    except DeliveryFailed as exc:
        _failed(store, message, exc, pacer, target)
        return False
    except (sqlite3.Error, StoreError):
        raise
    except Exception as exc:  # a rendering bug, a surprising reply: this row alone pays for it
        log.exception("outbox #%s could not be delivered", message.id)
        failure = DeliveryFailed(f"{type(exc).__name__}: {exc}", transient=False, posted_maybe=True)
        _failed(store, message, failure, pacer, target)
        return False
    outbox.mark_delivered(store, message, channel=where.channel, ts=where.ts)
    return True


def _target(store: Store, message: outbox.OutboxMessage, default_channel: str | None) -> outbox.MessageRef:
    """The message to edit (channel and ts), or the channel to post to (empty ts)."""
    existing = outbox.message_ref(store, message.message_key)
    if existing is not None:
        return existing
    parent_key = outbox.thread_of(store, message)
    if parent_key is not None:
        parent = outbox.message_ref(store, parent_key)
        if parent is None:  # its thread's first message is not in Slack yet: it goes first
            raise DeliveryFailed(f"waiting for the first message of its thread ({parent_key})", transient=True)
        return outbox.MessageRef(channel=parent.channel, ts="", thread_ts=parent.ts)
    channel = (message.slack_channel if message.sending_at else None) or message.channel or default_channel
    if not channel:
        raise DeliveryFailed(
            "no channel: set FINETUNE_SLACK_CHANNEL (a channel id such as C0123456789)", transient=False
        )
    return outbox.MessageRef(channel=channel, ts="")


def _direct_channel(client: WebClient, target: outbox.MessageRef) -> outbox.MessageRef:
    """A post to a user (U..., W...) goes to the app's direct messages with them (conversations.open, im:write)."""
    if target.ts or not (target.channel[:1] in "UW" and target.channel.isalnum()):
        return target
    try:
        reply = client.conversations_open(users=target.channel)
    except SlackApiError as exc:
        raise _refused(exc) from exc
    except (SlackClientError, OSError) as exc:
        raise DeliveryFailed(f"Slack unreachable: {exc.__class__.__name__}: {exc}", transient=True) from exc
    opened = reply.get("channel")
    if not isinstance(opened, dict) or not isinstance(opened.get("id"), str):
        raise DeliveryFailed("Slack's reply to conversations.open carries no channel id", transient=False)
    return outbox.MessageRef(channel=opened["id"], ts="")


def _send(
    store: Store, client: WebClient, message: outbox.OutboxMessage, target: outbox.MessageRef
) -> outbox.MessageRef:
    if message.problem:
        raise DeliveryFailed(
            f"{message.problem}; discard it with `finetune outbox discard {message.id}`", transient=False
        )
    if not target.ts and message.sending_at:
        earlier = _earlier_post(
            client, message.id, target.channel, attempted_at=message.sending_at, thread_ts=target.thread_ts
        )
        if earlier is not None:
            log.info("outbox #%s was already in Slack (%s); not posting it again", message.id, earlier.ts)
            return earlier
    rendered = render_message(message)
    try:
        if target.ts:  # edit in place: the channel and ts are ours, whatever the reply says
            client.chat_update(channel=target.channel, ts=target.ts, text=rendered.text, blocks=rendered.blocks)
            return target
        outbox.mark_sending(store, message, channel=target.channel)
        response = client.chat_postMessage(
            channel=target.channel,
            text=rendered.text,
            blocks=rendered.blocks,
            metadata=_metadata(message),
            thread_ts=target.thread_ts,
        )
    except SlackApiError as exc:
        raise _refused(exc) from exc
    except (SlackClientError, OSError) as exc:  # connection refused, timeouts, DNS: the post may have arrived
        raise DeliveryFailed(
            f"Slack unreachable: {exc.__class__.__name__}: {exc}", transient=True, posted_maybe=True
        ) from exc
    ts = response.get("ts")
    if not isinstance(ts, str) or not ts:
        raise DeliveryFailed("Slack's reply to chat.postMessage carries no ts", transient=False, posted_maybe=True)
    posted = outbox.MessageRef(channel=str(response.get("channel") or target.channel), ts=ts)
    _attach(client, posted, rendered.files)
    return posted


def _attach(client: WebClient, posted: outbox.MessageRef, files: list[Attachment]) -> None:
    """Upload a new post's attachments (a chart) in its thread. Best effort: the post is what must arrive, so a
    failed upload is logged and never posts the message again."""
    for file in files:
        try:
            client.files_upload_v2(
                channel=posted.channel, thread_ts=posted.ts, content=file.content, filename=file.filename,
                title=file.title,
            )  # fmt: skip
        except (SlackClientError, OSError) as exc:
            log.warning("could not attach %s to the post %s (%s)", file.filename, posted.ts, exc)


def _metadata(message: outbox.OutboxMessage) -> dict[str, Any]:
    """What lets a later run recognise this post in the channel's history."""
    return {"event_type": METADATA_EVENT, "event_payload": {"outbox_id": message.id}}


def _earlier_post(
    client: WebClient, outbox_id: int, channel: str, *, attempted_at: str, thread_ts: str | None = None
) -> outbox.MessageRef | None:
    """The post an unconfirmed attempt made, found by its metadata near the attempt time; None if it never arrived.

    A reply in a thread is looked for among the thread's replies (conversations.replies), others in the channel.
    """
    at = parse_iso(attempted_at)
    oldest, latest = (f"{(at + side).timestamp():.6f}" for side in (-HISTORY_WINDOW, HISTORY_WINDOW))
    cursor: str | None = None
    for _ in range(HISTORY_PAGES):
        try:
            if thread_ts:
                page = client.conversations_replies(
                    channel=channel, ts=thread_ts, oldest=oldest, latest=latest, inclusive=True,
                    include_all_metadata=True, limit=HISTORY_PAGE_SIZE, cursor=cursor,
                )  # fmt: skip
            else:
                page = client.conversations_history(
                    channel=channel, oldest=oldest, latest=latest, inclusive=True, include_all_metadata=True,
                    limit=HISTORY_PAGE_SIZE, cursor=cursor,
                )  # fmt: skip
        except SlackApiError as exc:
            raise _refused(exc, doing=" while looking for an earlier post (the app needs channels:history)") from exc
        except (SlackClientError, OSError) as exc:
            raise DeliveryFailed(
                f"Slack unreachable while looking for an earlier post: {exc.__class__.__name__}: {exc}",
                transient=True,
                posted_maybe=True,
            ) from exc
        for found in page.get("messages") or []:
            if _is_post_of(found, outbox_id):
                return outbox.MessageRef(channel=channel, ts=str(found["ts"]))
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if not page.get("has_more") or cursor is None:
            return None
    log.warning("outbox #%s: over %s pages of messages around its attempt; posting it again", outbox_id, HISTORY_PAGES)
    return None


def _is_post_of(found: object, outbox_id: int) -> bool:
    """Whether a message from the history is the post of `outbox_id` (anything malformed is not)."""
    if not isinstance(found, dict) or not isinstance(found.get("ts"), str):
        return False
    metadata = found.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != METADATA_EVENT:
        return False
    payload = metadata.get("event_payload")
    return isinstance(payload, dict) and str(payload.get("outbox_id")) == str(outbox_id)


def _refused(exc: SlackApiError, *, doing: str = "") -> DeliveryFailed:
    """Slack's own answer: throttling and outages are transient, any other refusal is not."""
    response = exc.response
    error = response.get("error") if response is not None else None
    status = response.status_code if response is not None else None
    headers = {k.lower(): v for k, v in (response.headers if response is not None else {}).items()}
    request_id = headers.get("x-slack-req-id")
    if isinstance(request_id, list):
        request_id = request_id[0] if request_id else None
    retry_after = (retry_after_seconds(headers.get("retry-after")) or 1.0) if status == 429 else None
    transient = status == 429 or (status is not None and status >= 500) or error in TRANSIENT_ERRORS
    return DeliveryFailed(
        f"Slack answered {error or status}{doing} (request {request_id})",
        transient=transient,
        posted_maybe=bool(doing),  # refused while looking: whether the earlier post arrived is still unknown
        retry_after=retry_after,
    )


def _failed(
    store: Store,
    message: outbox.OutboxMessage,
    exc: DeliveryFailed,
    pacer: ChannelPacer,
    target: outbox.MessageRef | None,
) -> None:
    not_before = None
    if exc.retry_after is not None:
        not_before = utcnow() + timedelta(seconds=exc.retry_after)
        if target is not None:
            pacer.hold(target.channel, exc.retry_after)
    next_at = outbox.mark_failed(
        store, message, error=str(exc), transient=exc.transient, posted_maybe=exc.posted_maybe, not_before=not_before
    )
    if next_at is None:
        log.error("outbox #%s is a dead letter (%s); `finetune outbox` lists it", message.id, exc)
    else:
        log.warning("outbox #%s not delivered (%s); next attempt at %s", message.id, exc, next_at.isoformat())


def deliver_outbox_job(svc: Services, client: WebClient, pacer: ChannelPacer) -> None:
    """Scheduler entry point (module-level so APScheduler can name it); `pacer` lives as long as serve."""
    delivered = deliver_due(svc.store, client, default_channel=svc.settings.slack_channel, pacer=pacer)
    record_run(svc.store, "outbox", detail=f"delivered {delivered}")
