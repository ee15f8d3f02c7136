"""Who is acting, and through which face. Every audit row names one."""

from __future__ import annotations

import getpass
import uuid
from dataclasses import dataclass, field
from typing import Literal

Face = Literal["cli", "slack", "mcp", "scheduler"]
FACES: tuple[str, ...] = ("cli", "slack", "mcp", "scheduler")


def _request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Actor:
    """An identified caller: a Slack user id, an MCP client name, an OS user or the scheduler.

    `request_id` ties together everything one invocation writes (its audit row above all).
    """

    id: str
    face: Face
    is_admin: bool = False
    request_id: str = field(default_factory=_request_id)

    def __str__(self) -> str:
        return f"{self.face}:{self.id}"


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def cli_actor() -> Actor:
    """Whoever runs the CLI can read and write the database file, so they administer it."""
    return Actor(id=os_user(), face="cli", is_admin=True)


SCHEDULER = Actor(id="scheduler", face="scheduler", is_admin=True, request_id="scheduler")
