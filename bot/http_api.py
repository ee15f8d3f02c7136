"""The application API of `finetune serve`: which model version serves a caller, for the applications that call it.

    GET /v1/models/{name}/resolve?key=K[&alias=A]
    Authorization: Bearer <an application token from FINETUNE_APP_TOKENS>

answers `{model, alias, version, provider, provider_model_id, arm}` (see
`core.registry.resolve`: the same key keeps its version while the alias and its
canary share stay put). Application tokens are kept apart from MCP tokens: an
MCP token does not open /v1 and an application token opens nothing else. The
answer carries an `ETag` (a hash of the answer, so it changes exactly when the
alias moves for this caller) and `Cache-Control: max-age=5`; `If-None-Match`
with that tag is answered 304. Resolution is a read of the registry's cache,
made on the event loop: microseconds, and never blocked by a writer (WAL).
Calls are not audited one by one: they only read, at an application's
request rate.

    GET /reports/YYYY-Www.html
    Authorization: Bearer <an application token>   (or Basic, with the token as the password)

answers the weekly digest's page (`reports.publish.page`): the one written
under the data directory, else built now. Browsers get a Basic challenge, so a
person opening the link from Slack is asked for a token once. Only names of
the form YYYY-Www.html are pages: nothing else under /reports is read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from core import registry
from core.errors import FinetuneError, InvalidInput, NotFound
from core.platform.settings import Settings
from core.services import Services

log = logging.getLogger(__name__)

RESOLVE_PATH = "/v1/models/{name}/resolve"
MAX_AGE_SECONDS = 5
BEARER_CHALLENGE = 'Bearer realm="finetune-ops applications"'  # WWW-Authenticate of every /v1 401


def resolve_route(services: Services) -> Route:
    """The route of GET /v1/models/{name}/resolve, checking FINETUNE_APP_TOKENS as they are when serve starts."""
    tokens = application_tokens(services.settings)

    async def resolve(request: Request) -> Response:
        refused = _unauthorised(request, tokens)
        if refused is not None:
            return refused
        try:
            name, key, alias = _arguments(request)
            # On the event loop: a WAL read never waits for a writer, and a cached answer costs microseconds
            # (a thread hop would cost more than the call); only the first call after an alias move rereads.
            found = registry.resolve_model(services.store, name, key, alias)
        except FinetuneError as exc:
            return _error(exc)
        except Exception:
            log.exception("resolving %r for an application failed", request.path_params.get("name"))
            return JSONResponse({"error": "internal", "message": "internal error; the server log has details."}, 500)
        return _answer(request, registry.ResolvedModel.of(found).model_dump(mode="json"))

    return Route(RESOLVE_PATH, resolve, methods=["GET"])


def application_tokens(settings: Settings) -> dict[str, bytes]:
    """FINETUNE_APP_TOKENS as the Authorization header values they open /v1 with, by token name."""
    return {name: f"Bearer {token}".encode() for name, token in settings.app_tokens_by_name().items()}


def application_caller(request: Request, tokens: Mapping[str, bytes]) -> tuple[str | None, str]:
    """(the name of the application token the request bears, "") or (None, what to do to get in)."""
    if not tokens:
        return None, (
            "no application token is configured on this server: set FINETUNE_APP_TOKENS=NAME:TOKEN "
            "(e.g. NAME:$(openssl rand -hex 32)) and restart finetune serve, then send Authorization: Bearer TOKEN."
        )
    name = _token_name(request.headers.get("authorization", "").encode(), tokens)
    if name is None:
        return None, (
            "Send Authorization: Bearer <an application token from FINETUNE_APP_TOKENS> (MCP tokens do not work here)."
        )
    return name, ""


def _unauthorised(request: Request, tokens: Mapping[str, bytes]) -> Response | None:
    """None for a request bearing an application token; otherwise the 401 that says how to get one."""
    name, message = application_caller(request, tokens)
    if name is not None:
        return None
    return JSONResponse(
        {"error": "unauthorized", "message": message}, status_code=401, headers={"WWW-Authenticate": BEARER_CHALLENGE}
    )


def _token_name(given: bytes, tokens: Mapping[str, bytes]) -> str | None:
    """The name of the token `given` carries; every token is compared, in constant time each."""
    found = None
    for name, expected in tokens.items():
        if hmac.compare_digest(given, expected):
            found = name
    return found


def _arguments(request: Request) -> tuple[str, str, str]:
    """(name, key, alias) from the path and query, or InvalidInput naming the one that is wrong."""
    name = request.path_params["name"]
    key = request.query_params.get("key")
    alias = request.query_params.get("alias", registry.PRODUCTION)
    if len(name) > registry.KEY_LIMIT:
        raise InvalidInput(f"the model name is {len(name)} characters long; names are at most {registry.KEY_LIMIT}.")
    if not key:
        raise InvalidInput(
            "query parameter `key` is missing or empty.",
            hint="Pass a stable id of the caller (user, conversation or tenant), e.g. ?key=user-42.",
        )
    if len(key) > registry.KEY_LIMIT:
        raise InvalidInput(
            f"query parameter `key` is {len(key)} characters long; at most {registry.KEY_LIMIT} are allowed.",
            hint="Pass a short stable id of the caller, or a hash of a longer one.",
        )
    if not alias or len(alias) > registry.KEY_LIMIT:
        raise InvalidInput(
            f"query parameter `alias` must be 1-{registry.KEY_LIMIT} characters.",
            hint=f"Leave it out for {registry.PRODUCTION}, or name an alias such as staging.",
        )
    return name, key, alias


def _error(exc: FinetuneError) -> JSONResponse:
    status = 404 if isinstance(exc, NotFound) else 400 if isinstance(exc, InvalidInput) else 503
    body: dict[str, Any] = {"error": type(exc).__name__, "message": exc.message, "hint": exc.hint}
    if isinstance(exc, NotFound):
        body |= {key: str(value) for key, value in exc.ids.items() if key in ("model", "alias")}
    return JSONResponse(body, status_code=status)


def _answer(request: Request, body: dict[str, Any]) -> Response:
    etag = '"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": f"max-age={MAX_AGE_SECONDS}"}
    if _matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(body, headers=headers)


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110's weak comparison: any listed tag (with or without W/) equal to ours, or `*`."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags or "*" in tags


# The weekly digest's pages -------------------------------------------------------------------------------

REPORT_PATH = "/reports/{page}"
_REPORT_PAGE = re.compile(r"(\d{4}-W\d{2})\.html")
REPORT_CHALLENGES = (BEARER_CHALLENGE, 'Basic realm="finetune-ops reports", charset="UTF-8"')
REPORT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'",  # nothing fetched
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-cache",
    "Referrer-Policy": "no-referrer",
}


def report_route(services: Services) -> Route:
    """The route of GET /reports/YYYY-Www.html, behind FINETUNE_APP_TOKENS as they are when serve starts."""
    from reports import publish

    tokens = application_tokens(services.settings)

    async def report(request: Request) -> Response:
        name, message = _report_caller(request, tokens)
        if name is None:
            refused = JSONResponse({"error": "unauthorized", "message": message}, status_code=401)
            for challenge in REPORT_CHALLENGES:
                refused.headers.append("WWW-Authenticate", challenge)
            return refused
        page = _REPORT_PAGE.fullmatch(request.path_params["page"])
        if page is None:
            return JSONResponse(
                {"error": "NotFound", "message": "no such page.", "hint": "Digest pages are /reports/YYYY-Www.html."},
                status_code=404,
            )
        try:
            html = await asyncio.to_thread(publish.page, services, page.group(1))
        except FinetuneError as exc:
            body = {"error": type(exc).__name__, "message": exc.message, "hint": exc.hint}
            return JSONResponse(body, status_code=404 if isinstance(exc, InvalidInput | NotFound) else 503)
        except Exception:
            log.exception("building the digest page %s for application %s failed", page.group(1), name)
            return JSONResponse({"error": "internal", "message": "internal error; the server log has details."}, 500)
        return HTMLResponse(html, headers=REPORT_HEADERS)

    return Route(REPORT_PATH, report, methods=["GET"])


def _report_caller(request: Request, tokens: Mapping[str, bytes]) -> tuple[str | None, str]:
    """(the application token's name, "") or (None, what to do to get in); Basic passes the token as password."""
    if not tokens:
        return application_caller(request, tokens)  # says how to configure one
    name = _token_name(_as_bearer(request.headers.get("authorization", "")).encode(), tokens)
    if name is None:
        return None, (
            "Send Authorization: Bearer <an application token from FINETUNE_APP_TOKENS>; in a browser, give the "
            "token as the password (any user name)."
        )
    return name, ""


def _as_bearer(authorization: str) -> str:
    """The header as Bearer: Basic credentials give their password as the token; anything unreadable, nothing."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic":
        return authorization
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return f"Bearer {decoded.partition(':')[2]}"
