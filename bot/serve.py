"""`finetune serve`: one process, one event loop.

uvicorn serves a Starlette app with `/healthz`, `/slack/events` (when Slack
runs over HTTP) and `/mcp` (streamable HTTP, bearer token when configured);
its lifespan runs the MCP session manager, the one APScheduler instance and,
when SLACK_APP_TOKEN is set, the Socket Mode connection. uvicorn turns SIGINT
and SIGTERM into a graceful shutdown that runs the lifespan's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import gc
import hmac
import logging
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
import uvicorn
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.commands import Message
from bot.feedback_api import feedback_route
from bot.http_api import report_route, resolve_route
from bot.invoke import MCP_TOKEN_NAME_KEY
from bot.openai_api import openai_routes
from core import __version__
from core.errors import Conflict, InvalidInput
from core.evaluation import EvaluationRunner
from core.inference import build_engine
from core.platform import Settings, webhooks
from core.platform.scheduler import (
    ANALYTICS_SECONDS,
    APPROVALS_SECONDS,
    CANARIES_SECONDS,
    DIGEST_DAY,
    DIGEST_HOUR,
    EVALUATIONS_SECONDS,
    LOOP_SECONDS,
    REGRESSION_HOUR,
    RETRAIN_HOUR,
    ROLLOUTS_SECONDS,
    add_daily_job,
    add_interval_job,
    add_weekly_job,
    advance_loops,
    advance_rollouts,
    build_scheduler,
    check_regressions,
    check_retraining,
    expire_approvals,
    guard_canaries,
    heartbeat,
    poll_deployments,
    poll_jobs,
    publish_digest,
    run_evaluations,
    update_analytics,
)
from core.platform.settings import DEFAULT_MCP_TOKEN_NAME, MIN_PUBLIC_TOKEN_LENGTH
from core.services import Services
from core.training import jobs
from mcp_server.server import build_server

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk import WebClient

log = logging.getLogger(__name__)


def serve(services: Services) -> Message:
    """Run until SIGINT/SIGTERM. Refuses unsafe exposure and a second serve on the same data."""
    settings = services.settings
    check_exposure(settings)
    with serve_lock(settings.data_dir), listening_socket(settings) as sock:
        app = build_app(services)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            lifespan="on",
            log_config=None,  # our logging config (stderr) stays in charge
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        server = _Server(config)
        server.run(sockets=[sock])
        if not server.started:
            raise InvalidInput(
                f"could not start serving on {settings.host}:{settings.port} (see the log above).",
                hint="Fix what the log names and start `finetune serve` again.",
            )
    return Message(text="finetune serve stopped.")


class CannotListen(click.ClickException):
    """FINETUNE_HOST:FINETUNE_PORT cannot be bound: a settings problem, so exit 2 like the others."""

    exit_code = 2


@contextlib.contextmanager
def listening_socket(settings: Settings) -> Iterator[socket.socket]:
    """The server's socket, bound before anything starts, so a busy port is one clear line, not a half-started serve."""
    where = f"{settings.host}:{settings.port}"
    try:
        family = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM)[0][0]
    except (OSError, UnicodeError) as exc:
        raise CannotListen(
            f"cannot listen on {where}: FINETUNE_HOST {settings.host!r} is not an address here ({exc})."
        ) from None
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on such sockets, else keep-alive answers stall 40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise CannotListen(_bind_problem(settings, exc)) from None
    with sock:
        yield sock


def _bind_problem(settings: Settings, exc: OSError) -> str:
    where = f"{settings.host}:{settings.port}"
    if exc.errno == errno.EADDRINUSE:
        return f"port {settings.port} on {settings.host} is already in use: set FINETUNE_PORT to a free port, or stop what uses it."
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on {where}: set FINETUNE_PORT to a port above 1023."
    return f"cannot listen on {where} ({exc.strerror}): check FINETUNE_HOST and FINETUNE_PORT."


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown; a requested stop is a clean exit here."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def check_exposure(settings: Settings) -> None:
    """Off loopback, /mcp needs bearer tokens long enough that guessing them is hopeless."""
    if settings.host_is_loopback:
        return
    tokens = settings.mcp_tokens_by_name()
    if not tokens:
        raise InvalidInput(
            f"refusing to serve MCP on {settings.host} without a token: anyone who can reach it could act as you.",
            hint="Set FINETUNE_MCP_TOKEN (or FINETUNE_MCP_TOKENS) to a long random value "
            "(e.g. `openssl rand -hex 32`), or keep FINETUNE_HOST=127.0.0.1.",
        )
    short = [name for name, token in tokens.items() if len(token) < MIN_PUBLIC_TOKEN_LENGTH]
    if short:
        where = ", ".join(
            "FINETUNE_MCP_TOKEN" if name == DEFAULT_MCP_TOKEN_NAME else f"FINETUNE_MCP_TOKENS ({name})"
            for name in short
        )
        raise InvalidInput(
            f"refusing to serve MCP on {settings.host}: {where} is shorter than {MIN_PUBLIC_TOKEN_LENGTH} characters.",
            hint="Use a long random value (e.g. `openssl rand -hex 32`), or keep FINETUNE_HOST=127.0.0.1.",
        )


@contextlib.contextmanager
def serve_lock(data_dir: Path) -> Iterator[None]:
    """One serve per data directory: the scheduler must run in exactly one process."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "serve.lock"
    handle = open(path, "a+")  # noqa: SIM115 - held open for as long as the lock
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise Conflict(
            f"another `finetune serve` (pid {holder}) is already running on {data_dir}.",
            hint="Stop it first, or point FINETUNE_DATA_DIR at another directory.",
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


class BearerAuth:
    """Requires `Authorization: Bearer <token>` with one of `tokens` on every request under `prefix`.

    The name of the token presented goes into the request's scope (`MCP_TOKEN_NAME_KEY`), where the
    MCP tools read who is calling. Without tokens (a loopback serve) requests pass unnamed.
    """

    def __init__(self, app: ASGIApp, *, tokens: Mapping[str, str], prefix: str = "/mcp") -> None:
        self.app = app
        self.expected = {name: f"Bearer {token}".encode() for name, token in tokens.items()}
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected and scope["type"] == "http" and scope["path"].startswith(self.prefix):
            name = self._token_name(dict(scope["headers"]).get(b"authorization", b""))
            if name is None:
                response = JSONResponse(
                    {"error": "unauthorized", "message": "Send Authorization: Bearer <your finetune-ops MCP token>."},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="finetune-ops"'},
                )
                await response(scope, receive, send)
                return
            scope[MCP_TOKEN_NAME_KEY] = name
        await self.app(scope, receive, send)

    def _token_name(self, given: bytes) -> str | None:
        """The name of the token `given` carries; every token is compared, in constant time each."""
        found = None
        for name, expected in self.expected.items():
            if hmac.compare_digest(given, expected):
                found = name
        return found


def build_app(services: Services) -> Starlette:
    """The ASGI app of `finetune serve`: every face and the scheduler's jobs share `services`."""
    settings = services.settings
    mcp = build_server(services)
    mcp_app = mcp.streamable_http_app(
        streamable_http_path="/mcp", host=settings.host, transport_security=_transport_security(settings)
    )
    slack = _slack(services)
    routes: list[Route | Mount] = [Route("/healthz", _healthz(slack.mode))]
    if slack.http_handler is not None:
        routes.append(Route("/slack/events", slack.http_handler, methods=["POST"]))
    if settings.openai_webhook_secret is not None:
        routes.append(Route("/webhooks/openai", _openai_webhook(services), methods=["POST"]))
    routes.append(resolve_route(services))  # application tokens only; /mcp's bearer check stays on /mcp
    routes.append(feedback_route(services))  # the same tokens: outcomes of what the versions served
    routes.append(report_route(services))  # the same tokens: the weekly digest's pages
    engine = build_engine(settings)  # one per serve: chats with local versions and evaluations share its models
    routes += openai_routes(services, engine)  # the same tokens: chat with local versions
    routes.append(Mount("/", app=mcp_app))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        scheduler = build_scheduler(settings.timezone)
        add_interval_job(scheduler, heartbeat, job_id="heartbeat", seconds=settings.heartbeat_seconds, args=(services,))
        add_interval_job(scheduler, poll_jobs, job_id="jobs", seconds=settings.poll_seconds, args=(services,))
        add_interval_job(
            scheduler, poll_deployments, job_id="deployments", seconds=settings.poll_seconds, args=(services,)
        )
        add_interval_job(scheduler, expire_approvals, job_id="approvals", seconds=APPROVALS_SECONDS, args=(services,))
        add_interval_job(scheduler, advance_rollouts, job_id="rollouts", seconds=ROLLOUTS_SECONDS, args=(services,))
        add_interval_job(scheduler, guard_canaries, job_id="canaries", seconds=CANARIES_SECONDS, args=(services,))
        loop_seconds = min(LOOP_SECONDS, settings.poll_seconds)  # runs mostly wait on jobs: follow them as often
        add_interval_job(scheduler, advance_loops, job_id="loop", seconds=loop_seconds, args=(services,))
        add_interval_job(scheduler, update_analytics, job_id="analytics", seconds=ANALYTICS_SECONDS, args=(services,))
        add_daily_job(scheduler, check_regressions, job_id="regressions", hour=REGRESSION_HOUR, args=(services,))
        add_weekly_job(
            scheduler, publish_digest, job_id="digest", day_of_week=DIGEST_DAY, hour=DIGEST_HOUR, args=(services,)
        )
        add_daily_job(scheduler, check_retraining, job_id="retrain", hour=RETRAIN_HOUR, args=(services,))
        runner = EvaluationRunner(engine)
        add_interval_job(
            scheduler, run_evaluations, job_id="evaluations", seconds=EVALUATIONS_SECONDS, args=(services, runner)
        )
        if slack.client is not None:
            from bot.slack.delivery import ChannelPacer, deliver_outbox_job

            add_interval_job(
                scheduler,
                deliver_outbox_job,
                job_id="outbox",
                seconds=settings.outbox_seconds,
                args=(services, slack.client, ChannelPacer()),
            )
        if slack.socket_handler is not None:
            add_interval_job(
                scheduler, keep_socket_mode_connected, job_id="socket_mode", seconds=30, args=(slack.socket_handler,)
            )
        async with mcp.session_manager.run():
            await asyncio.to_thread(jobs.release_submissions, services)
            dispatcher = await asyncio.to_thread(webhooks.start, services)  # registers serve's endpoints
            if dispatcher is not None:
                add_interval_job(
                    scheduler,
                    webhooks.deliver_webhooks_job,
                    job_id="webhooks",
                    seconds=settings.outbox_seconds,
                    args=(services, dispatcher),
                )
            scheduler.start()
            _announce(settings, slack)
            # Everything built so far lives as long as serve: keep it out of the cyclic collector, whose full
            # passes over it (modules, schemas, the apps) otherwise stall every request for 100-200 ms.
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                # Running jobs finish first (on the scheduler's own threads): the store closes once serve stops.
                scheduler.stop()
                if dispatcher is not None:
                    dispatcher.close()
                if slack.socket_handler is not None:
                    await asyncio.to_thread(slack.socket_handler.close)
                log.info("finetune serve stopping")

    tokens = settings.mcp_tokens_by_name()
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(BearerAuth, tokens=tokens)])


def keep_socket_mode_connected(handler: SocketModeHandler) -> None:
    """(Re)connect Socket Mode; a failed connect is retried on the next run instead of stopping serve."""
    if handler.client.is_connected():
        return
    try:
        handler.connect()
        log.info("Slack: Socket Mode connected")
    except Exception:
        log.exception("Slack: Socket Mode could not connect; retrying in 30 s")


_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def _transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection: /mcp answers only requests addressed to a name this server goes by.

    On loopback those are the loopback names; behind a reverse proxy, FINETUNE_PUBLIC_HOSTS. Off
    loopback without public host names the protection is off (the names are unknown), and the
    mandatory bearer token (check_exposure) is what a rebinding page cannot know.
    """
    names = [*(_LOOPBACK_NAMES if settings.host_is_loopback else ()), *settings.public_hosts]
    if not names:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = [pattern for name in names for pattern in _host_patterns(name)]
    origins = [f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def _host_patterns(name: str) -> list[str]:
    """`name` as a Host header may give it: as is when it has a port, else bare or with any port."""
    has_port = name.rsplit("]", 1)[-1].count(":") == 1
    return [name] if has_port else [name, f"{name}:*"]


def _openai_webhook(svc: Services) -> Callable[[Request], Awaitable[Response]]:
    from core.providers import ProviderError
    from core.training import jobs

    async def webhook(request: Request) -> Response:
        payload, headers = await request.body(), dict(request.headers)
        try:
            job = await asyncio.to_thread(jobs.handle_webhook, svc, provider="openai", payload=payload, headers=headers)
        except ProviderError as exc:
            log.warning("OpenAI webhook refused: %s", exc.message)
            return JSONResponse({"error": exc.message}, status_code=400)
        return JSONResponse({"job": job.id if job else None, "status": job.status if job else None})

    return webhook


def _healthz(slack_mode: str) -> Callable[[Request], Awaitable[Response]]:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__, "slack": slack_mode})

    return healthz


@dataclass
class _Slack:
    """How serve talks to Slack: off (and why), over HTTP, or over Socket Mode."""

    mode: str
    reason: str = ""
    client: WebClient | None = None
    http_handler: Callable[[Request], Awaitable[Response]] | None = None
    socket_handler: SocketModeHandler | None = None


def _slack(services: Services) -> _Slack:
    from bot.slack.app import SlackOff, build_slack_app

    settings = services.settings
    try:
        app = build_slack_app(services)
    except SlackOff as off:
        return _Slack("off", str(off))
    if settings.slack_app_token is not None:  # Socket Mode
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        handler = SocketModeHandler(app, settings.slack_app_token.get_secret_value())
        return _Slack("socket", client=app.client, socket_handler=handler)

    from bot.slack.http import slack_endpoint

    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    return _Slack("http", client=app.client, http_handler=slack_endpoint(app, signing_secret=secret))


def _announce(settings: Settings, slack: _Slack) -> None:
    base = f"http://{settings.host}:{settings.port}"
    auth = "bearer token required" if settings.mcp_tokens_by_name() else "no token (loopback only)"
    log.info("finetune serve %s listening on %s (MCP at %s/mcp, %s)", __version__, base, base, auth)
    if slack.mode == "off":
        log.info(
            "Slack is off: %s. MCP and the scheduler run; notifications wait in the outbox until Slack is set up.",
            slack.reason,
        )
    elif slack.mode == "socket":
        log.info("Slack: Socket Mode (connecting; no /slack/events endpoint)")
    else:
        log.info("Slack: HTTP endpoint at %s/slack/events (signature verification on)", base)
