"""Slack's HTTP endpoint (`POST /slack/events`): only a signed Slack request of sane size reaches the bolt app.

Anything else is answered with a 4xx before bolt sees it: a body over
MAX_BODY_BYTES gets 413, a missing, stale, malformed or wrong signature 401
(whatever the timestamp header holds), and a signed body that is not a Slack
payload (not UTF-8, not form-encoded or JSON, JSON that is not an object) 400.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

from slack_bolt import App, BoltRequest
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20  # Slack's largest payloads (modal submissions) are a few tens of KB
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

Endpoint = Callable[[Request], Awaitable[Response]]


class Refused(Exception):
    """A request answered with a 4xx before it reaches bolt."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def slack_endpoint(app: App, *, signing_secret: str) -> Endpoint:
    """The Starlette handler that checks a request, then dispatches it to `app` in a worker thread."""
    verifier = SignatureVerifier(signing_secret)

    async def slack_events(request: Request) -> Response:
        try:
            bolt_request = await checked(request, verifier)
        except Refused as refused:
            return JSONResponse({"error": refused.message}, status_code=refused.status)
        # bolt is synchronous: dispatch in a worker thread so the event loop keeps serving.
        return to_starlette_response(await asyncio.to_thread(app.dispatch, bolt_request))

    return slack_events


async def checked(request: Request, verifier: SignatureVerifier) -> BoltRequest:
    """The request as bolt reads it, or Refused with the status that says why not."""
    body = await read_body(request)
    timestamp = request.headers.get("x-slack-request-timestamp", "")
    signature = request.headers.get("x-slack-signature", "")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Refused(401, "missing or malformed X-Slack-Request-Timestamp")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "the body is not UTF-8") from None
    if not verifier.is_valid(body=text, timestamp=timestamp, signature=signature):
        raise Refused(401, "invalid or stale signature")
    try:
        bolt_request = to_bolt_request(request, body)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError):
        log.warning("refused a signed Slack request whose body bolt cannot read", exc_info=True)
        raise Refused(400, "the body is not a Slack payload") from None
    if not isinstance(bolt_request.body, dict):
        raise Refused(400, "the body is not a Slack payload")
    return bolt_request


async def read_body(request: Request) -> bytes:
    """The body, read no further than MAX_BODY_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Refused(413, f"the body is over {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Refused(413, f"the body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
