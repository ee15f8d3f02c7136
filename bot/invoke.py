"""The one invocation wrapper of every face: who is calling, may they, the call, one audit row, errors mapped.

The terminal, `/finetune`, the MCP tools and the application API all run
their core call through `invoke`. It names the caller (an `Actor` whose
identity the caller cannot choose), applies the policy, runs the call, writes
exactly one audit row for the invocation (unless the core function already
audited its change in its own transaction) and turns errors into a `Failure`:
a named core error with its fix, or an internal error with a reference that
the log has under `logger.exception`. Each face shapes a `Failure` its own way
(an error result, a tool error, an HTTP answer).

Every command, tool and application call declares its operation here, in
`COMMANDS`, `TOOLS`, `SLACK_CALLS` and `APP_CALLS` (a contract test checks that each has
one); `check_policy` asks the policy (`core.platform.policy`) whether the
caller may run it. A grammar's subcommands check their own path when click
runs them (`guard_commands`), so `jobs launch` is checked as a launch, whatever
options come before it.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from core.errors import FinetuneError, PermissionDenied
from core.platform import Actor, Settings, audit
from core.platform.actors import os_user
from core.platform.identity import ANONYMOUS, Identity, actor_for
from core.platform.policy import authorize
from core.services import Services
from core.vocabulary import Face, IdentityKind, Operation

log = logging.getLogger(__name__)

T = TypeVar("T")

# Where serve's bearer-token middleware leaves the name of the token a request presented (ASGI scope key).
MCP_TOKEN_NAME_KEY = "finetune_ops.mcp_token_name"


# Identity ------------------------------------------------------------------------------------------


def terminal_actor(settings: Settings) -> Actor:
    """The OS user running the command (FINETUNE_CLI_ROLE unless a role list names them)."""
    return actor_for(settings, Identity(IdentityKind.OS, os_user()), face=Face.CLI)


def slack_actor(settings: Settings, user_id: str) -> Actor:
    """A Slack user, as the signed request names them; a role may come from a Slack user group they are in."""
    groups = slack_groups(settings)
    return actor_for(
        settings,
        Identity(IdentityKind.SLACK, user_id),
        face=Face.SLACK,
        in_group=lambda group: groups.has_member(group, user_id),
    )


def mcp_actor(settings: Settings, request: object | None) -> Actor:
    """An MCP caller: over HTTP, the name of the bearer token it presented (`anonymous` on a loopback
    serve without tokens); over stdio (no HTTP request), the OS user running the server. Never the
    name a client declares for itself, which anyone can choose."""
    if request is None:
        return actor_for(settings, Identity(IdentityKind.OS, os_user()), face=Face.MCP)
    scope = getattr(request, "scope", None)
    name = scope.get(MCP_TOKEN_NAME_KEY) if isinstance(scope, Mapping) else None
    return actor_for(settings, Identity(IdentityKind.MCP, str(name or ANONYMOUS)), face=Face.MCP)


def app_actor(settings: Settings, token_name: str) -> Actor:
    """An application over /v1, by the name of the application token it presented (`app:NAME`)."""
    return actor_for(settings, Identity(IdentityKind.APP, token_name), face=Face.APP)


class SlackGroups:
    """Members of Slack user groups, asked of the Web API (usergroups.users.list) when a role depends on one.

    Answers are kept for `ttl` seconds. When Slack cannot be asked (no bot token, an error, a
    timeout) the answer is "not a member": a role never comes from a group Slack did not confirm.
    """

    def __init__(self, settings: Settings, *, ttl: float = 60.0, timeout: int = 5) -> None:
        self.settings, self.ttl, self.timeout = settings, ttl, timeout
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def has_member(self, group_id: str, user_id: str) -> bool:
        members = self.members(group_id)
        return members is not None and user_id in members

    def members(self, group_id: str) -> frozenset[str] | None:
        with self._lock:
            cached = self._members.get(group_id)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        members = self._ask(group_id)
        if members is not None:
            with self._lock:
                self._members[group_id] = (time.monotonic(), members)
        return members

    def _ask(self, group_id: str) -> frozenset[str] | None:
        from slack_sdk import WebClient
        from slack_sdk.errors import SlackClientError

        token = self.settings.slack_bot_token
        if token is None:
            log.warning("Slack user group %s names a role, but SLACK_BOT_TOKEN is unset: not counted", group_id)
            return None
        client = WebClient(token=token.get_secret_value(), base_url=self.settings.slack_api_url, timeout=self.timeout)
        try:
            reply = client.usergroups_users_list(usergroup=group_id)
        except (SlackClientError, OSError) as exc:
            log.warning("could not ask Slack who is in user group %s (%s): not counted", group_id, exc)
            return None
        users = reply.get("users")
        return frozenset(str(user) for user in users) if isinstance(users, list) else None


_GROUPS: dict[tuple[str, str], SlackGroups] = {}
_GROUPS_LOCK = threading.Lock()


def slack_groups(settings: Settings) -> SlackGroups:
    """The group cache for this Slack workspace (one per bot token and API URL, kept for the process)."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    with _GROUPS_LOCK:
        return _GROUPS.setdefault((settings.slack_api_url, token), SlackGroups(settings))


# Policy --------------------------------------------------------------------------------------------

# Every command of the terminal and Slack grammar, by its path, and the operation it is.
COMMANDS: dict[str, Operation] = {
    "unknown": Operation.READ,  # a command that could not be read: the answer is a usage message
    "help": Operation.READ,
    "status": Operation.READ,
    "notify": Operation.NOTIFY,
    "audit": Operation.AUDIT,
    "outbox": Operation.OUTBOX,
    "outbox retry": Operation.OUTBOX,
    "outbox discard": Operation.OUTBOX,
    "webhooks": Operation.WEBHOOKS,
    "webhooks retry": Operation.WEBHOOKS,
    "webhooks discard": Operation.WEBHOOKS,
    "datasets": Operation.READ,
    "dataset": Operation.READ,
    "validate": Operation.VALIDATE,
    "jobs": Operation.READ,
    "jobs list": Operation.READ,
    "jobs launch": Operation.LAUNCH,
    "jobs show": Operation.READ,
    "jobs events": Operation.READ,
    "jobs cancel": Operation.CANCEL,
    "launch": Operation.LAUNCH,
    "job": Operation.READ,
    "approvals": Operation.READ,
    "approve": Operation.DECIDE,
    "reject": Operation.DECIDE,
    "catalog": Operation.READ,
    "models": Operation.READ,
    "models list": Operation.READ,
    "models show": Operation.READ,
    "models history": Operation.READ,
    "models resolve": Operation.READ,
    "models deploy": Operation.MOVE_ALIAS,  # the core asks again: MOVE_PROTECTED_ALIAS for protected aliases
    "models canary": Operation.MOVE_ALIAS,
    "models promote": Operation.MOVE_ALIAS,
    "models rollback": Operation.MOVE_ALIAS,
    "models retire": Operation.RETIRE_VERSION,
    "models rollout": Operation.READ,  # the core asks CONTROL_ROLLOUT itself to pause, resume or cancel
    "deploy": Operation.MOVE_ALIAS,
    "rollback": Operation.MOVE_ALIAS,
    "eval": Operation.READ,
    "eval run": Operation.EVALUATE,
    "eval show": Operation.READ,
    "eval list": Operation.READ,
    "ab": Operation.READ,
    "ab create": Operation.RUN_EXPERIMENT,
    "ab status": Operation.READ,
    "ab stop": Operation.RUN_EXPERIMENT,
    "ab conclude": Operation.RUN_EXPERIMENT,
    "templates": Operation.READ,
    "templates compare": Operation.READ,
    "demo": Operation.READ,  # runs in a data directory of its own, never the team's
    "loop": Operation.READ,
    "loop start": Operation.LOOP,
    "loop show": Operation.READ,
    "loop retry": Operation.LOOP,
    "loop cancel": Operation.LOOP,
    "data": Operation.READ,
    "data ingest": Operation.INGEST,
    "data list": Operation.READ,
    "data show": Operation.READ,
    "data build": Operation.BUILD,
    "data export": Operation.EXPORT,
    "data validate": Operation.VALIDATE,
    "data diff": Operation.READ,
    "analytics": Operation.READ,
    "analytics costs": Operation.READ,
    "analytics agents": Operation.READ,
    "analytics agent": Operation.READ,
    "analytics patterns": Operation.READ,
    "analytics alerts": Operation.READ,
    "analytics dpo-pairs": Operation.BUILD,  # builds the next version of the agent's pairs dataset
    "analytics prompt-experiment": Operation.RUN_EXPERIMENT,
    "agent": Operation.READ,
    "alerts": Operation.READ,
    "patterns": Operation.READ,
    "retrain": Operation.LAUNCH,  # proposes a launch: an approval request, decided by an approver
    "report": Operation.READ,
    "report weekly": Operation.READ,
    "config": Operation.CONFIG,
    "serve": Operation.SERVE,
    "mcp": Operation.READ,  # each tool checks its own operation
}

# Every MCP tool, by name, and the operation it is.
TOOLS: dict[str, Operation] = {
    "get_status": Operation.READ,
    "ingest_feedback": Operation.INGEST,
    "record_outcomes": Operation.INGEST,
    "list_datasets": Operation.READ,
    "build_dataset": Operation.BUILD,
    "export_dataset": Operation.EXPORT,
    "validate_dataset": Operation.VALIDATE,
    "list_base_models": Operation.READ,
    "estimate_cost": Operation.READ,
    "suggest_hyperparameters": Operation.READ,
    "launch_job": Operation.LAUNCH,
    "job_status": Operation.READ,
    "list_jobs": Operation.READ,
    "job_events": Operation.READ,
    "cancel_job": Operation.CANCEL,
    "list_models": Operation.READ,
    "get_model": Operation.READ,
    "request_deployment": Operation.MOVE_ALIAS,  # the core asks again for a protected alias
    "request_rollback": Operation.MOVE_ALIAS,
    "resolve_model": Operation.READ,
    "model_history": Operation.READ,
    "list_approvals": Operation.READ,
    "get_approval": Operation.READ,
    "evaluate_model": Operation.EVALUATE,
    "get_evaluation": Operation.READ,
    "create_experiment": Operation.RUN_EXPERIMENT,
    "get_experiment": Operation.READ,
    "list_templates": Operation.READ,
    "compare_templates": Operation.READ,
    "cost_summary": Operation.READ,
    "agent_performance": Operation.READ,
    "improvement_opportunities": Operation.READ,
    "list_alerts": Operation.READ,
    "start_loop": Operation.LOOP,
    "get_loop_run": Operation.READ,
    "list_loop_runs": Operation.READ,
    "retry_loop_run": Operation.LOOP,
    "propose_retrain": Operation.LAUNCH,  # requests only: deciding is refused over MCP
    "get_report": Operation.READ,
}

# Every call an application makes over /v1 that goes through `invoke` (reads answer directly), by name.
APP_CALLS: dict[str, Operation] = {
    "record_outcomes": Operation.INGEST,  # POST /v1/feedback
}

# Every Slack interaction outside the grammar (shortcuts, modals) that goes through `invoke`, by name.
SLACK_CALLS: dict[str, Operation] = {
    "capture form": Operation.INGEST,  # the "Add to training data" shortcut opens its form
    "capture": Operation.INGEST,  # ... and its submission stores the event
    "launch form": Operation.LAUNCH,  # `/finetune launch` alone: the wizard, its choices and estimate
}


def operation_of(face: Face, command: str) -> Operation | None:
    """The operation a command (terminal, Slack), tool (MCP), Slack interaction or application call is; None when
    it declares none."""
    if face == Face.SLACK and command in SLACK_CALLS:
        return SLACK_CALLS[command]
    return {Face.MCP: TOOLS, Face.APP: APP_CALLS}.get(face, COMMANDS).get(command)


def check_policy(svc: Services, actor: Actor, command: str) -> None:
    """The one place where the policy applies to every invocation, whatever the face.

    A command or tool missing from `COMMANDS`/`TOOLS` fails closed: only admins may run it.
    """
    operation = operation_of(actor.face, command)
    if operation is not None:
        authorize(actor, operation)
        return
    log.error("%s %r declares no operation in bot.invoke; only admins may run it", actor.face, command)
    if not actor.is_admin:
        raise PermissionDenied(
            f"{command!r} has no entry in the policy table, so only admins may run it.",
            hint="Ask an admin; the command needs an operation in bot/invoke.py (COMMANDS or TOOLS).",
        )


def guard_commands(group: click.Group) -> None:
    """Make every command under `group` check the policy for its own path (`jobs launch`) when it runs."""
    for command in group.commands.values():
        _guard(command)
        if isinstance(command, click.Group):
            guard_commands(command)


_GUARDED: set[Callable[..., Any]] = set()  # callbacks already wrapped (a command may sit in two grammars)


def _guard(command: click.Command) -> None:
    callback = command.callback
    if callback is None or callback in _GUARDED:
        return

    @functools.wraps(callback)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        inv = ctx.find_root().obj  # the Invocation: its services and its actor
        check_policy(inv.services, inv.actor, " ".join(ctx.command_path.split()[1:]))
        return callback(*args, **kwargs)

    _GUARDED.add(guarded)
    command.callback = guarded


# Outcomes ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """An invocation that produced no result: a named core error, or an internal error (`reference` set)."""

    error: str
    message: str
    hint: str | None = None
    reference: str | None = None

    @property
    def internal(self) -> bool:
        return self.reference is not None

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


@dataclass(frozen=True)
class Verdict:
    """How an invocation ended, for its audit row: `ok`, `usage` (input not understood) or `error`."""

    outcome: str = "ok"
    detail: str | None = None


OK = Verdict()


def invoke(
    svc: Services,
    actor: Actor,
    command: str,
    args: Mapping[str, Any],
    call: Callable[[], T],
    *,
    verdict: Callable[[T], Verdict] = lambda _: OK,
) -> T | Failure:
    """Run `call` as `actor`: policy, the call, one audit row, errors mapped. Never raises for a failed call.

    `verdict` tells a result that reports a failure of its own (a usage problem, an invalid file) from a success.
    """
    try:
        check_policy(svc, actor, command)
        result = call()
    except FinetuneError as exc:
        failure = Failure(error=type(exc).__name__, message=exc.message, hint=exc.hint)
        _audit(svc, actor, command, args, Verdict("error", exc.message))
        return failure
    except Exception:
        reference = actor.request_id[:12]
        log.exception("%s command %r failed (request %s)", actor.face, command, actor.request_id)
        _audit(svc, actor, command, args, Verdict("error", f"internal error {reference}"))
        return Failure(error="InternalError", message="internal error", reference=reference)
    _audit(svc, actor, command, args, verdict(result))
    return result


def _audit(svc: Services, actor: Actor, command: str, args: Mapping[str, Any], verdict: Verdict) -> None:
    try:
        store = svc.store
        if audit.recorded(store, actor):
            return  # the core function audited its own change, in its own transaction
        audit.record(store, actor, command, dict(args), outcome=verdict.outcome, detail=verdict.detail)
    except FinetuneError:
        log.warning("could not write the audit row for %r: the store is unavailable", command)
