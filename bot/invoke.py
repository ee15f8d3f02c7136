"""The one invocation wrapper of every face: who is calling, may they, the call, one audit row, errors mapped.

The terminal, `/finetune` and the MCP tools all run their core call through
`invoke`. It names the caller (an `Actor` whose identity the caller cannot
choose), applies the policy, runs the call, writes exactly one audit row for
the invocation (unless the core function already audited its change in its own
transaction) and turns errors into a `Failure`: a named core error with its
fix, or an internal error with a reference that the log has under
`logger.exception`. Each face shapes a `Failure` its own way (an error result,
a tool error).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from core.errors import FinetuneError
from core.platform import Actor, Settings, audit, cli_actor
from core.services import Services
from core.vocabulary import Face

log = logging.getLogger(__name__)

T = TypeVar("T")


# Identity ------------------------------------------------------------------------------------------


def terminal_actor() -> Actor:
    """The OS user: whoever can open the database file administers it."""
    return cli_actor()


def slack_actor(settings: Settings, user_id: str) -> Actor:
    """A Slack user, as the signed request names them; admins are listed in FINETUNE_ADMINS."""
    return Actor(id=user_id, face=Face.SLACK, is_admin=user_id in settings.admins)


def mcp_actor(client_name: str | None) -> Actor:
    """An MCP client, by the name it declared at initialize (e.g. 'claude-desktop')."""
    return Actor(id=client_name or "anonymous-client", face=Face.MCP)


# Policy --------------------------------------------------------------------------------------------


def check_policy(svc: Services, actor: Actor, command: str) -> None:
    """The one place where a role policy applies to every invocation, whatever the face.

    Today every command is open here and the admin-only ones check their actor in the core
    (raising PermissionDenied); a role table will be consulted here.
    """


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
