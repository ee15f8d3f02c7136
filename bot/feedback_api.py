"""Feedback from applications under `finetune serve`: the outcomes of the drafts their model versions served.

    POST /v1/feedback[?skip_invalid=true]
    Authorization: Bearer <an application token from FINETUNE_APP_TOKENS>
    {"events": [{"agent", "messages" | "prompt", "output", "final"?, "rating"?, "model_version"?, "arm"?, ...}]}

The body is `{"events": [...]}` or the bare list: at most `MAX_OUTCOMES` events
and `MAX_BODY_BYTES` bytes (413 beyond; a declared Content-Length over the cap
is refused before anything is read). Events are read, checked, redacted and
stored exactly as a file's lines are (`core.data.feedback.record_outcomes`, the
same batch ingest): a retried batch stores nothing twice, and an id already
stored with other content is refused naming it. One bad event rejects the
batch (400 naming its index and field; nothing stored) unless
`skip_invalid=true`, which stores the valid ones and lists the rest.

The caller is `app:NAME`, NAME being its application token's (the same tokens
and 401 answers as resolve); it acts through the `app` face, and the audit log
says so. Reading, checking and storing run on a worker thread, never on the
event loop; a database kept busy by another writer past the busy timeout is a
503 with Retry-After, and the retried batch is safe.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.http_api import BEARER_CHALLENGE, application_caller, application_tokens
from bot.invoke import Failure, app_actor, invoke
from core.data import IngestReport, feedback
from core.errors import FinetuneError, InvalidInput, PermissionDenied, StoreError
from core.platform import Actor
from core.services import Services

log = logging.getLogger(__name__)

FEEDBACK_PATH = "/v1/feedback"
MAX_BODY_BYTES = 8 * 2**20
RETRY_AFTER_SECONDS = 5
CALL = "record_outcomes"  # the application call, as the policy table and the audit log name it
_FLAGS = {"true": True, "1": True, "false": False, "0": False}
_EXAMPLE = '{"events": [{"agent": "support", "prompt": "...", "output": "...", "model_version": "support:v3"}]}'


def feedback_route(services: Services) -> Route:
    """The route of POST /v1/feedback, checking FINETUNE_APP_TOKENS as they are when serve starts."""
    tokens = application_tokens(services.settings)

    async def record(request: Request) -> Response:
        actor = _caller(services, request, tokens)
        if isinstance(actor, Response):
            return actor
        try:
            skip_invalid = _skip_invalid(request)
            body = await _read_body(request)
        except _TooLarge as refused:
            return _answer(413, refused)
        except InvalidInput as refused:
            return _answer(400, refused)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read it
        try:
            return await asyncio.to_thread(_record, services, actor, body, skip_invalid=skip_invalid)
        except Exception:
            log.exception("storing feedback from application %s failed", actor.id)
            return JSONResponse({"error": "internal", "message": "internal error; the server log has details."}, 500)

    return Route(FEEDBACK_PATH, record, methods=["POST"])


def _caller(services: Services, request: Request, tokens: Mapping[str, bytes]) -> Actor | Response:
    """The application the request's token names, or the 401 resolve answers too."""
    name, message = application_caller(request, tokens)
    if name is None:
        return JSONResponse(
            {"error": "unauthorized", "message": message}, status_code=401,
            headers={"WWW-Authenticate": BEARER_CHALLENGE},
        )  # fmt: skip
    return app_actor(services.settings, name)


# Reading the request ----------------------------------------------------------------------------------


class _TooLarge(InvalidInput):
    """The body is larger than one request may be."""


def _skip_invalid(request: Request) -> bool:
    given = request.query_params.get("skip_invalid", "false")
    if given.lower() not in _FLAGS:
        raise InvalidInput(
            f"query parameter `skip_invalid` is {given[:40]!r}, not true or false.",
            hint="Use ?skip_invalid=true to store the valid events and list the rest, or leave it out.",
        )
    return _FLAGS[given.lower()]


async def _read_body(request: Request) -> bytes:
    """The body's bytes, at most MAX_BODY_BYTES; a declared Content-Length over the cap reads nothing."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large(f"declares {int(declared):,} bytes")
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large("is longer")
        parts.append(chunk)
    return b"".join(parts)


def _too_large(what: str) -> _TooLarge:
    return _TooLarge(
        f"the body {what} than the {MAX_BODY_BYTES:,} bytes a request may hold.",
        hint=f"Send fewer events per request (at most {feedback.MAX_OUTCOMES:,}), or shorter texts.",
    )


def parse_events(raw: bytes) -> list[Any]:
    """The events of a body: `{"events": [...]}` or a bare list; InvalidInput saying what is wrong and the fix."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"the body is not UTF-8 text (invalid byte at offset {exc.start}).", hint="Send JSON encoded as UTF-8."
        ) from None
    except RecursionError:
        raise InvalidInput(
            "the body nests arrays or objects too deeply to read.", hint=f"Send events as documented: {_EXAMPLE}."
        ) from None
    except ValueError as exc:
        raise InvalidInput(f"the body is not JSON ({str(exc)[:200]}).", hint=f"Send e.g. {_EXAMPLE}.") from None
    if isinstance(body, dict):
        unknown = [key for key in body if key != "events"]
        if unknown:
            raise InvalidInput(
                f"the body has unknown key {unknown[0][:40]!r}; it takes only `events`.",
                hint="Put every event in `events`; fields of an event go inside it.",
            )
        body = body.get("events")
    if not isinstance(body, list):
        raise InvalidInput(
            "`events` must be a list of event objects.", hint=f"Send {_EXAMPLE}, or the list of events alone."
        )
    return body


# Storing ----------------------------------------------------------------------------------------------


def _record(services: Services, actor: Actor, body: bytes, *, skip_invalid: bool) -> Response:
    """On a worker thread: parse, ingest through the invocation wrapper (policy, audit), and answer."""
    raised: list[Exception] = []

    def call() -> IngestReport:
        events = parse_events(body)
        try:
            return feedback.record_outcomes(
                services.store, events, actor=actor, source=FEEDBACK_PATH, skip_invalid=skip_invalid,
                redact=services.settings.redact_at_ingest,
            )  # fmt: skip
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
            raise _busy_store() from exc

    args = {"bytes": len(body), "skip_invalid": skip_invalid}
    try:
        done = invoke(services, actor, CALL, args, _capturing(call, raised))
    except sqlite3.OperationalError as exc:  # the audit row of a failure could not be written either
        if not _busy(exc):
            raise
        return _answer(503, _busy_store(), headers=_RETRY)
    if not isinstance(done, Failure):
        return JSONResponse(answer(done))
    rejected = next((exc for exc in raised if isinstance(exc, feedback.IngestRejected)), None)
    return _rejected(rejected.report) if rejected is not None else _failed(done)


def _busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _busy_store() -> StoreError:
    return StoreError(
        "the database stayed busy with another write; nothing was stored.",
        hint=f"Send the same batch again in {RETRY_AFTER_SECONDS} seconds: nothing is stored twice.",
    )


def _capturing(call: Callable[[], IngestReport], raised: list[Exception]) -> Callable[[], IngestReport]:
    """`call`, keeping what it raised: the answer lists the rejected events, which a Failure does not carry."""

    def run() -> IngestReport:
        try:
            return call()
        except Exception as exc:
            raised.append(exc)
            raise

    return run


def answer(report: IngestReport) -> dict[str, Any]:
    """What an application reads back: counts, and each event left out by its index in `events`."""
    return {
        "received": report.lines,
        "stored": report.ingested,
        "duplicates": report.duplicates,
        "rejected": report.error_count,
        "errors": _errors(report),
        "redactions": report.redactions.model_dump(),
    }


def _errors(report: IngestReport) -> list[dict[str, Any]]:
    return [
        {"index": error.line - 1, "field": error.field, "message": error.message, "hint": error.hint}
        for error in report.errors
    ]


_RETRY = {"Retry-After": str(RETRY_AFTER_SECONDS)}
# The status of each failure that is not a plain bad request, by its error's name (what a Failure keeps).
_STATUS: dict[str, int] = {
    feedback.TooManyEvents.__name__: 413,
    PermissionDenied.__name__: 403,
    StoreError.__name__: 503,
}


def _failed(failure: Failure) -> Response:
    if failure.internal:
        body = {"error": "internal", "message": f"internal error {failure.reference}; the server log has details."}
        return JSONResponse(body, status_code=500)
    status = _STATUS.get(failure.error, 400)
    return JSONResponse(
        {"error": failure.error, "message": failure.message, "hint": failure.hint},
        status_code=status, headers=_RETRY if status == 503 else None,
    )  # fmt: skip


def _rejected(report: IngestReport) -> Response:
    """400 for a batch with an invalid event: nothing stored; the first one named by index and field."""
    first = report.errors[0]
    where = f"events[{first.line - 1}]" + (f", field `{first.field}`" if first.field else "")
    message = f"{report.error_count} invalid event(s); nothing was stored. First: {where}: {first.message}"
    hint = f"{first.hint} Or send ?skip_invalid=true to store the valid events and list the rest."
    return JSONResponse(
        {"error": "IngestRejected", "message": message, "hint": hint, "errors": _errors(report)}, status_code=400
    )


def _answer(status: int, refused: FinetuneError, *, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": type(refused).__name__.lstrip("_"), "message": refused.message, "hint": refused.hint},
        status_code=status, headers=headers,
    )  # fmt: skip
