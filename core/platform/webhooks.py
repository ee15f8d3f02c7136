"""Outgoing webhooks: applications hear of new model versions and alias moves without polling.

Every alias move (`events.AliasMoved`, registering a version included) writes one
delivery row per endpoint in the transaction that makes the move: the hook sits
in `outbox.enqueue`, so a change that rolls back sends nothing and a change that
commits is never forgotten. The endpoints are the ones `finetune serve`, the one
deliverer, registered when it started (`register_endpoints`, from
FINETUNE_WEBHOOK_URLS), so a move made from any process reaches the URLs that
serve delivers to.

Each POST carries a JSON body `{"id", "type", "created_at", "data"}` signed with
FINETUNE_WEBHOOK_SECRET: `Finetune-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256
of "<t>.<body>">`; `verify_signature` checks one for receivers. Delivery is at
least once: a receiver that answered but whose answer was lost gets the event
again, and dedupes it by its id.

A scheduler job in serve (`deliver_webhooks_job`) runs a `Dispatcher`: one sender
thread per URL at most, posting that URL's due rows oldest first with a short
timeout. 2xx is delivered; 408, 429, 5xx and network errors are transient (the
row backs off, honouring Retry-After, for about a day); any other answer costs
one of a few attempts. Then the row is a dead letter, listed by `finetune
webhooks`, where an admin retries or discards it. Every attempt is recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, Field

from core import __version__
from core.errors import Conflict, InvalidInput, NotFound, StoreError
from core.platform import audit, outbox, timeutil
from core.platform.actors import Actor
from core.platform.events import AliasMoved, Event
from core.platform.policy import authorize
from core.platform.settings import Settings, parse_webhook_urls, redact_url
from core.platform.store import Store
from core.platform.timeutil import iso, utcnow
from core.vocabulary import AliasMove, Operation

if TYPE_CHECKING:
    from core.services import Services

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Finetune-Signature"
EVENT_ID_HEADER = "Finetune-Event-Id"
EVENT_TYPE_HEADER = "Finetune-Event-Type"
USER_AGENT = f"finetune-ops/{__version__} (webhooks)"
TIMEOUT_SECONDS = 5.0  # per POST: a receiver that needs longer should queue the event and answer at once
SIGNATURE_TOLERANCE_SECONDS = 300
BATCH_PER_URL = 20  # rows one sender posts per run
MAX_SENDERS = 8  # URLs served at once
RETRY_AFTER_CAP_SECONDS = 3600.0  # a Retry-After beyond this is taken as an hour
EXCERPT_BYTES = 200  # of a refusal's body, kept as its error
LIST_LIMIT = 20
MAX_HEADER_LENGTH = 1000  # a longer Finetune-Signature is not ours
MAX_ATTEMPTS = outbox.MAX_ATTEMPTS  # refusals: the bounds the Slack outbox keeps
MAX_TRANSIENT_ATTEMPTS = outbox.MAX_TRANSIENT_ATTEMPTS  # down or throttling: about a day at the capped backoff


class WebhookEvent(StrEnum):
    """The `type` of a webhook delivery."""

    MODEL_VERSION_CREATED = "model_version.created"  # a job registered a new version (it took `candidate`)
    ALIAS_MOVED = "alias.moved"  # deployed or promoted: the alias serves another stable version
    CANARY_CHANGED = "canary.changed"  # a canary started, or its share changed
    MODEL_ROLLED_BACK = "model.rolled_back"  # the alias went back, or its canary ended


EVENT_TYPES: dict[AliasMove, WebhookEvent] = {
    AliasMove.REGISTER: WebhookEvent.MODEL_VERSION_CREATED,
    AliasMove.DEPLOY: WebhookEvent.ALIAS_MOVED,
    AliasMove.PROMOTE: WebhookEvent.ALIAS_MOVED,
    AliasMove.CANARY: WebhookEvent.CANARY_CHANGED,
    AliasMove.ROLLBACK: WebhookEvent.MODEL_ROLLED_BACK,
}


class DeliveryState(StrEnum):
    """Where a delivery row stands."""

    PENDING = "pending"  # waiting for (another) attempt
    DELIVERED = "delivered"  # the endpoint answered 2xx
    DEAD = "dead"  # gave up after bounded attempts; an admin retries or discards it
    DISCARDED = "discarded"  # an admin dropped it


# Endpoints -----------------------------------------------------------------------------------------------


def configured_urls(settings: Settings) -> list[str]:
    """FINETUNE_WEBHOOK_URLS as a list (validated when the settings loaded)."""
    return parse_webhook_urls(settings.webhook_urls.get_secret_value()) if settings.webhook_urls else []


def register_endpoints(store: Store, urls: Sequence[str]) -> int:
    """Make `urls` the endpoints of every later change; serve calls it at start with its own settings.

    Pending deliveries to an endpoint no longer listed become dead letters (kept, to retry or discard).
    Returns how many did.
    """
    now = iso()
    marks = ",".join("?" * len(urls))
    with store.write() as db:
        db.execute("UPDATE webhook_endpoints SET active = 0, updated_at = ? WHERE active = 1", (now,))
        for url in urls:
            db.execute(
                "INSERT INTO webhook_endpoints (url, active, updated_at) VALUES (?, 1, ?)"
                " ON CONFLICT (url) DO UPDATE SET active = 1, updated_at = excluded.updated_at",
                (url, now),
            )
        return db.execute(
            f"UPDATE webhook_deliveries SET status = ?, last_error = ? WHERE status = ? AND url NOT IN ({marks})",
            (DeliveryState.DEAD, _REMOVED, DeliveryState.PENDING, *urls),
        ).rowcount


_REMOVED = "its URL is not in the FINETUNE_WEBHOOK_URLS `finetune serve` started with"


def active_urls(store: Store) -> list[str]:
    return [row["url"] for row in store.query("SELECT url FROM webhook_endpoints WHERE active = 1 ORDER BY url")]


# Queueing: in the transaction of the change ----------------------------------------------------------------


def enqueue(store: Store, event: Event) -> int:
    """Queue `event` for every endpoint, if it is one applications hear of; returns how many rows.

    Called by `outbox.enqueue`, inside the caller's `store.write()`, so the rows commit with the change.
    """
    if not isinstance(event, AliasMoved):
        return 0
    urls = active_urls(store)
    if not urls:
        return 0
    event_type = EVENT_TYPES[event.move]
    event_id = f"evt_{uuid.uuid4().hex}"
    now = iso()
    payload = {"id": event_id, "type": event_type, "created_at": now, "data": _data(store, event)}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    with store.write() as db:
        for url in urls:
            db.execute(
                "INSERT INTO webhook_deliveries (event_id, event_type, url, body, summary, created_at, status,"
                " attempts, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (event_id, event_type, url, body, event.summary(), now, DeliveryState.PENDING, now),
            )
    return len(urls)


def _data(store: Store, event: AliasMoved) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": event.model_name,
        "alias": event.alias,
        "move": event.move,
        "from_version": event.from_version_id,
        "to_version": event.to_version_id,
        "canary_version": event.canary_version_id,
        "canary_share": event.canary_share,
        "actor": event.actor,
        "approval_id": event.approval_id,
    }
    if event.move is AliasMove.REGISTER:
        data["version"] = _version(store, event.to_version_id)
    return data


def _version(store: Store, version_id: str) -> dict[str, Any] | None:
    """The new version's provenance, read in the transaction that wrote it (the registry's own SQL reads it)."""
    from core.registry import db as registry_db  # the registry sits above the platform: imported when used

    row = registry_db.version(store, version_id)
    if row is None:
        return None
    keys = ("id", "provider", "provider_model_id", "base_model", "job_id", "dataset_version_id")
    return {key: row[key] for key in keys}


# Signing ---------------------------------------------------------------------------------------------------


def signature(secret: str, body: bytes, *, timestamp: int) -> str:
    """The Finetune-Signature header of `body`, signed at `timestamp` (unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str, header: str, body: str | bytes, *, tolerance_s: float = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:  # fmt: skip
    """Whether `header` (Finetune-Signature) signs `body` with `secret`, at most `tolerance_s` from `now`.

    For receivers. Compares in constant time; refuses a stale (or future) timestamp, so a captured request
    cannot be replayed later; any malformed header is simply not a valid signature.
    """
    if not isinstance(header, str) or len(header) > MAX_HEADER_LENGTH:
        return False
    raw = body.encode() if isinstance(body, str) else body
    timestamp, candidates = _parse_signature(header)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, raw, timestamp)
    matched = False
    for candidate in candidates:  # every one compared: the time taken says nothing about which matched
        matched |= hmac.compare_digest(expected.encode(), candidate.encode("ascii", "replace"))
    return matched


def _parse_signature(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    return timestamp, candidates


# Delivering ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: delivered (`error` None), or why not and whether that may pass by itself."""

    status_code: int | None
    error: str | None = None
    transient: bool = False
    retry_after: float | None = None
    duration_ms: int = 0

    @property
    def delivered(self) -> bool:
        return self.error is None


def due(store: Store, *, url: str, now: datetime | None = None, limit: int = BATCH_PER_URL) -> list[dict[str, Any]]:
    """The pending rows of one endpoint whose attempt is due, oldest first."""
    return store.query(
        "SELECT * FROM webhook_deliveries WHERE status = ? AND url = ? AND next_attempt_at <= ? ORDER BY id LIMIT ?",
        (DeliveryState.PENDING, url, iso(now), limit),
    )


def post(transport: httpx.BaseTransport, row: dict[str, Any], *, secret: str, timeout: float) -> Attempt:
    """POST one delivery row, signed now; never raises for what the endpoint or the network does.

    Straight through the transport: httpx's client would log every request's full URL, and a webhook URL's
    path or query may hold a token. `_log` names the endpoint by scheme and host instead.
    """
    url = str(row["url"])
    body = str(row["body"]).encode()
    headers = {
        SIGNATURE_HEADER: signature(secret, body, timestamp=int(time.time())),
        EVENT_ID_HEADER: str(row["event_id"]),
        EVENT_TYPE_HEADER: str(row["event_type"]),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    started = time.monotonic()
    try:
        request = httpx.Request(
            "POST", url, content=body, headers=headers, extensions={"timeout": httpx.Timeout(timeout).as_dict()}
        )
        response = transport.handle_request(request)
        try:
            attempt = judge(response.status_code, response.headers.get("retry-after"), _excerpt(response))
        finally:
            response.close()
    except httpx.TimeoutException as exc:
        attempt = Attempt(None, f"no answer within {timeout:g} s ({type(exc).__name__})", transient=True)
    except httpx.TransportError as exc:  # refused, reset, DNS, TLS: the endpoint may be back soon
        error = f"unreachable: {type(exc).__name__}: {exc}".replace(url, redact_url(url))
        attempt = Attempt(None, error[:500], transient=True)
    except (httpx.InvalidURL, ValueError) as exc:  # settings validate URLs, so this row's URL predates them
        attempt = Attempt(None, f"cannot be sent: {type(exc).__name__}".replace(url, redact_url(url)))
    duration_ms = int((time.monotonic() - started) * 1000)
    return Attempt(attempt.status_code, attempt.error, attempt.transient, attempt.retry_after, duration_ms)


def judge(status: int, retry_after: str | None, excerpt: str) -> Attempt:
    """An answer's meaning: 2xx delivered; 408, 429 and 5xx transient; anything else a refusal."""
    if 200 <= status < 300:
        return Attempt(status)
    said = f": {excerpt}" if excerpt else ""
    if status in (408, 429) or status >= 500:
        return Attempt(status, f"answered {status}{said}", transient=True, retry_after=retry_after_seconds(retry_after))
    if 300 <= status < 400:
        said = " (redirects are not followed: put the final URL in FINETUNE_WEBHOOK_URLS)"
    return Attempt(status, f"answered {status}{said}")


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now, capped; None when absent or unreadable."""
    seconds = timeutil.retry_after_seconds(value, now=now)
    return None if seconds is None else min(seconds, RETRY_AFTER_CAP_SECONDS)


def _excerpt(response: httpx.Response) -> str:
    """The start of the answer's body, printable, for the row's error (never the whole of a hostile answer)."""
    if 200 <= response.status_code < 300:
        return ""
    chunks = bytearray()
    for chunk in response.iter_bytes():
        chunks += chunk
        if len(chunks) >= EXCERPT_BYTES:
            break
    text = chunks[:EXCERPT_BYTES].decode("utf-8", "replace")
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def record(store: Store, row: dict[str, Any], attempt: Attempt, *, now: datetime | None = None) -> DeliveryState:
    """Write one attempt and what follows from it: delivered, backing off, or a dead letter."""
    at = iso()
    attempts = int(row["attempts"]) + 1
    state, next_at = DeliveryState.DELIVERED, None
    if not attempt.delivered:
        spent = attempts >= (MAX_TRANSIENT_ATTEMPTS if attempt.transient else MAX_ATTEMPTS)
        state = DeliveryState.DEAD if spent else DeliveryState.PENDING
        wait_s = max(outbox.backoff_seconds(attempts), attempt.retry_after or 0.0)
        next_at = iso((now or utcnow()) + timedelta(seconds=wait_s))
    with store.write() as db:
        db.execute(
            "INSERT INTO webhook_attempts (delivery_id, at, status_code, error, duration_ms) VALUES (?, ?, ?, ?, ?)",
            (row["id"], at, attempt.status_code, attempt.error, attempt.duration_ms),
        )
        db.execute(
            "UPDATE webhook_deliveries SET status = ?, attempts = ?, last_status_code = ?, last_error = ?,"
            " last_attempt_at = ?, delivered_at = CASE WHEN ? THEN ? END,"
            " next_attempt_at = COALESCE(?, next_attempt_at) WHERE id = ? AND status = ?",
            (state, attempts, attempt.status_code, attempt.error, at, attempt.delivered, at, next_at, row["id"],
             DeliveryState.PENDING),
        )  # fmt: skip
    return state


class Dispatcher:
    """Delivers due webhook rows; lives as long as serve.

    Each URL has at most one sender thread at a time. It posts that URL's due rows oldest first and stops at
    the first transient failure (the endpoint is down or throttling: the rest wait for a later run). A run
    waits for its senders at most `wait_s`; a sender still stuck on a slow endpoint keeps its URL to itself
    and finishes alone, so one bad endpoint never holds up another.
    """

    def __init__(
        self, store: Store, *, secret: str, urls: Sequence[str], timeout: float = TIMEOUT_SECONDS,
        wait_s: float | None = None,
    ) -> None:  # fmt: skip
        self.store, self.urls, self.timeout = store, list(urls), timeout
        self.wait_s = timeout + 1.0 if wait_s is None else wait_s
        self._secret = secret
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=MAX_SENDERS, thread_name_prefix="webhooks")

    def run(self, *, now: datetime | None = None) -> int:
        """Deliver what is due at `now`; returns how many rows the senders that finished in time delivered."""
        senders: list[Future[int]] = []
        for url in self.urls:
            if not self._claim(url):
                continue  # its sender from an earlier run is still at work
            try:
                rows = due(self.store, url=url, now=now)
            except (sqlite3.Error, StoreError) as exc:
                self._release(url)
                log.warning("webhooks: the database is unavailable (%s); delivery resumes on the next run", exc)
                break
            if rows:
                senders.append(self._pool.submit(self._send, url, rows, now))
            else:
                self._release(url)
        finished, _ = wait(senders, timeout=self.wait_s)
        return sum(sender.result() for sender in finished)

    def close(self, *, wait: bool = False) -> None:
        """Stop sending; serve does not wait for a sender stuck on a slow endpoint (its rows stay pending)."""
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(wait=True)

    def _claim(self, url: str) -> bool:
        with self._lock:
            if url in self._busy:
                return False
            self._busy.add(url)
            return True

    def _release(self, url: str) -> None:
        with self._lock:
            self._busy.discard(url)

    def _attempt(self, transport: httpx.BaseTransport, row: dict[str, Any]) -> Attempt:
        try:
            return post(transport, row, secret=self._secret, timeout=self.timeout)
        except Exception as exc:  # a bug, or an answer nothing foresaw: this row alone pays for it
            log.exception("webhook #%s could not be sent", row["id"])
            return Attempt(None, f"{type(exc).__name__} while sending (the log has the details)")

    def _send(self, url: str, rows: list[dict[str, Any]], now: datetime | None) -> int:
        delivered = 0
        try:
            with httpx.HTTPTransport() as transport:
                for row in rows:
                    attempt = self._attempt(transport, row)
                    state = record(self.store, row, attempt, now=now)
                    delivered += attempt.delivered
                    _log(row, attempt, state)
                    if attempt.transient:
                        break
        except (sqlite3.Error, StoreError) as exc:
            log.warning("webhooks: the database is unavailable (%s); delivery resumes on the next run", exc)
        except Exception:  # a bug must not take the sender's URL out of service for good
            log.exception("webhooks: delivering to %s failed", redact_url(url))
        finally:
            self._release(url)
        return delivered


def _log(row: dict[str, Any], attempt: Attempt, state: DeliveryState) -> None:
    where = f"webhook #{row['id']} ({row['event_type']}) to {redact_url(row['url'])}"
    if attempt.delivered:
        log.info("%s delivered (%s)", where, attempt.status_code)
    elif state is DeliveryState.DEAD:
        log.error("%s is a dead letter (%s); `finetune webhooks` lists it", where, attempt.error)
    else:
        log.warning("%s not delivered (%s); it will be retried", where, attempt.error)


def start(svc: Services) -> Dispatcher | None:
    """Serve's start: register its endpoints, and the dispatcher that delivers to them (None without any)."""
    urls = configured_urls(svc.settings)
    dead = register_endpoints(svc.store, urls)
    if dead:
        log.warning("webhooks: %s pending deliveries are dead letters: %s", dead, _REMOVED)
    secret = svc.settings.webhook_secret
    if not urls or secret is None:
        return None
    log.info("webhooks: delivering to %s", ", ".join(redact_url(url) for url in urls))
    return Dispatcher(svc.store, secret=secret.get_secret_value(), urls=urls)


def deliver_webhooks_job(svc: Services, dispatcher: Dispatcher) -> None:
    """Scheduler entry point (module-level so APScheduler can name it); `dispatcher` lives as long as serve."""
    from core.platform.scheduler import record_run  # the scheduler module builds on the services, which build on this

    delivered = dispatcher.run()
    record_run(svc.store, "webhooks", detail=f"delivered {delivered}")


# What an operator sees and does ----------------------------------------------------------------------------


class WebhookDelivery(BaseModel):
    """One delivery of one event to one endpoint."""

    id: int
    event_id: str = Field(description="The event's id: the same for every endpoint, and what receivers dedupe on.")
    type: str
    url: str = Field(description="The endpoint, scheme and host only (the rest of a webhook URL may hold a token).")
    state: str = Field(description="pending, delivered, dead or discarded.")
    summary: str
    attempts: int
    last_status: int | None = Field(description="The HTTP status of the last attempt, if one answered.")
    last_error: str | None
    created_at: str
    next_attempt_at: str | None = Field(description="When the next attempt is due, while pending.")
    delivered_at: str | None


class WebhookList(BaseModel):
    endpoints: list[str] = Field(description="Where `finetune serve` delivers (as it registered them at start).")
    pending: int
    dead: int
    deliveries: list[WebhookDelivery] = Field(description="The most recent deliveries, newest first.")
    dead_letters: list[WebhookDelivery] = Field(description="The newest dead letters, to retry or discard.")


class WebhookChange(BaseModel):
    """An admin's retry or discard of one delivery."""

    id: int
    action: str
    state: str
    summary: str


class WebhookStats(BaseModel):
    pending: int
    dead: int


def stats(store: Store) -> WebhookStats:
    """Counts through the `(status, ...)` index: the cost follows the undelivered rows, not the table."""
    count = "SELECT count(*) FROM webhook_deliveries WHERE status = ?"
    return WebhookStats(
        pending=int(store.scalar(count, (DeliveryState.PENDING,))),
        dead=int(store.scalar(count, (DeliveryState.DEAD,))),
    )


def _delivery(row: dict[str, Any]) -> WebhookDelivery:
    pending = row["status"] == DeliveryState.PENDING
    return WebhookDelivery(
        id=row["id"], event_id=row["event_id"], type=row["event_type"], url=redact_url(row["url"]),
        state=row["status"], summary=row["summary"], attempts=row["attempts"], last_status=row["last_status_code"],
        last_error=row["last_error"], created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"] if pending else None, delivered_at=row["delivered_at"],
    )  # fmt: skip


def listing(store: Store, *, actor: Actor, limit: int = LIST_LIMIT) -> WebhookList:
    """The endpoints, the latest deliveries and the newest dead letters. The policy: admins."""
    authorize(actor, Operation.WEBHOOKS)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise InvalidInput(f"`limit` must be between 1 and 1000, got {limit!r}.", hint="Use e.g. --limit 50.")
    recent = store.query("SELECT * FROM webhook_deliveries ORDER BY id DESC LIMIT ?", (limit,))
    dead = store.query(
        "SELECT * FROM webhook_deliveries WHERE status = ? ORDER BY id DESC LIMIT ?", (DeliveryState.DEAD, limit)
    )
    counts = stats(store)
    return WebhookList(
        endpoints=[redact_url(url) for url in active_urls(store)], pending=counts.pending, dead=counts.dead,
        deliveries=[_delivery(row) for row in recent], dead_letters=[_delivery(row) for row in dead],
    )  # fmt: skip


def retry(store: Store, *, actor: Actor, delivery_id: int) -> WebhookChange:
    """Give a dead (or backing-off) delivery a fresh set of attempts, starting now. The policy: admins."""
    return _change(store, actor=actor, delivery_id=delivery_id, action="retry", to=DeliveryState.PENDING)


def discard(store: Store, *, actor: Actor, delivery_id: int) -> WebhookChange:
    """Stop trying to deliver; the row stays, marked discarded. The policy: admins."""
    return _change(store, actor=actor, delivery_id=delivery_id, action="discard", to=DeliveryState.DISCARDED)


_LIST_HINT = "List deliveries with `finetune webhooks`."


def _change(store: Store, *, actor: Actor, delivery_id: int, action: str, to: DeliveryState) -> WebhookChange:
    authorize(actor, Operation.WEBHOOKS)
    with store.write() as db:
        rows = store.query("SELECT * FROM webhook_deliveries WHERE id = ?", (delivery_id,))
        if not rows:
            raise NotFound(f"no webhook delivery #{delivery_id}.", hint=_LIST_HINT, delivery=delivery_id)
        row = rows[0]
        if row["status"] not in (DeliveryState.PENDING, DeliveryState.DEAD):
            raise Conflict(
                f"webhook delivery #{delivery_id} is already {row['status']}; only pending or dead ones can be "
                f"{outbox.PAST[action]}.",
                hint=_LIST_HINT,
                delivery=delivery_id,
            )
        if to is DeliveryState.PENDING and row["url"] not in active_urls(store):
            raise Conflict(
                f"webhook delivery #{delivery_id} goes to {redact_url(row['url'])}, which `finetune serve` no longer "
                "delivers to.",
                hint="Add the URL back to FINETUNE_WEBHOOK_URLS and restart `finetune serve`, or discard the delivery.",
                delivery=delivery_id,
            )
        db.execute(
            "UPDATE webhook_deliveries SET status = ?, attempts = CASE WHEN ? THEN 0 ELSE attempts END,"
            " next_attempt_at = CASE WHEN ? THEN ? ELSE next_attempt_at END WHERE id = ?",
            (to, to is DeliveryState.PENDING, to is DeliveryState.PENDING, iso(), delivery_id),
        )
        audit.record(store, actor, f"webhooks_{action}", {"delivery": delivery_id}, detail=f"was {row['status']}")
    return WebhookChange(id=delivery_id, action=action, state=to, summary=row["summary"])
