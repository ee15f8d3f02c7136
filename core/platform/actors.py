"""Who is acting, and through which face. Every audit row names one."""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from core.vocabulary import Face, IdentityKind, Role, values

# Kept for callers that list the faces as plain strings; derived from `Face`.
FACES: tuple[str, ...] = tuple(values(Face))

__all__ = ["FACES", "SCHEDULER", "Actor", "Face", "cli_actor", "os_user"]

# The identity kind a face's own ids are, when an Actor is built without a resolved identity.
_FACE_IDS: dict[Face, str] = {
    Face.CLI: IdentityKind.OS,
    Face.SLACK: IdentityKind.SLACK,
    Face.MCP: IdentityKind.MCP,
    Face.APP: IdentityKind.APP,
    Face.SCHEDULER: Face.SCHEDULER,
}


def _request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, init=False)
class Actor:
    """An identified caller: a Slack user, an OS user, an MCP token's holder, or the scheduler.

    `id` is the face's own id (Slack user id, OS user, token name); `identity` the
    same as the settings write it (`slack:U1`, `os:alice`, `mcp:laptop`); `person`
    the name FINETUNE_PEOPLE links it under (else the identity itself) and
    `identities` every identity of that person, which four eyes and the daily
    spend limit compare. `role` is what the policy checks (`core.platform.policy`);
    `is_admin=True` is shorthand for `role=Role.ADMIN`. `face` may be given as its
    string. `request_id` ties together everything one invocation writes.
    Builders that read the settings live in `core.platform.identity`.
    """

    id: str
    face: Face
    role: Role
    identity: str
    person: str
    identities: frozenset[str]
    request_id: str

    def __init__(
        self,
        id: str,
        face: Face | str,
        is_admin: bool = False,
        request_id: str | None = None,
        *,
        role: Role | None = None,
        identity: str | None = None,
        person: str | None = None,
        identities: Iterable[str] | None = None,
    ) -> None:
        face = Face(face)
        identity = identity or f"{_FACE_IDS[face]}:{id}"
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "face", face)
        object.__setattr__(self, "role", role if role is not None else Role.ADMIN if is_admin else Role.VIEWER)
        object.__setattr__(self, "identity", identity)
        object.__setattr__(self, "person", person or identity)
        object.__setattr__(self, "identities", frozenset(identities or ()) | {identity})
        object.__setattr__(self, "request_id", request_id if request_id is not None else _request_id())

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def is_same_person(self, identity: str | None) -> bool:
        """Whether `identity` (as stored with a request: `slack:U1`, `os:alice`) is one of this person's."""
        return identity is not None and identity in self.identities

    def __str__(self) -> str:
        return f"{self.face}:{self.id}"


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def cli_actor() -> Actor:
    """The OS user as an admin, for internal callers and tools; the terminal face resolves its role from settings."""
    return Actor(id=os_user(), face=Face.CLI, role=Role.ADMIN)


SCHEDULER = Actor(id="scheduler", face=Face.SCHEDULER, role=Role.ADMIN, request_id="scheduler")
