"""Who is acting, and through which face. Every audit row names one."""

from __future__ import annotations

import getpass
import uuid
from dataclasses import dataclass

from core.vocabulary import Face, values

# Kept for callers that list the faces as plain strings; derived from `Face`.
FACES: tuple[str, ...] = tuple(values(Face))

__all__ = ["FACES", "SCHEDULER", "Actor", "Face", "cli_actor", "os_user"]


def _request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, init=False)
class Actor:
    """An identified caller: a Slack user id, an MCP client name, an OS user or the scheduler.

    `face` may be given as its string (`"slack"`); it is kept as a `Face`, and
    a string that names no face is refused. `request_id` ties together
    everything one invocation writes (its audit row above all).
    """

    id: str
    face: Face
    is_admin: bool
    request_id: str

    def __init__(self, id: str, face: Face | str, is_admin: bool = False, request_id: str | None = None) -> None:
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "face", Face(face))
        object.__setattr__(self, "is_admin", is_admin)
        object.__setattr__(self, "request_id", request_id if request_id is not None else _request_id())

    def __str__(self) -> str:
        return f"{self.face}:{self.id}"


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def cli_actor() -> Actor:
    """Whoever runs the CLI can read and write the database file, so they administer it."""
    return Actor(id=os_user(), face=Face.CLI, is_admin=True)


SCHEDULER = Actor(id="scheduler", face=Face.SCHEDULER, is_admin=True, request_id="scheduler")
