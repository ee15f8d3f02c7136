"""Who a caller is, in the words the settings use, and the role and person that makes them.

An identity is `kind:name`, named by something the caller cannot choose:
`slack:U123` (the user a signed Slack request names; a bare `U123` means the
same), `os:alice` (the OS user running the CLI or the stdio MCP server),
`mcp:laptop` (the name of the MCP token presented over HTTP), `app:shop` (the
name of the application token presented to /v1). Role lists may also name
`slack-group:S123`, everyone in a Slack user group.

Roles come from the lists in the settings (FINETUNE_VIEWERS, FINETUNE_OPERATORS,
FINETUNE_APPROVERS, FINETUNE_ADMINS): an identity listed (directly or through a
group) takes the highest role it is listed with; one listed nowhere takes its
kind's default (FINETUNE_DEFAULT_SLACK_ROLE for Slack users, FINETUNE_CLI_ROLE
for OS users, viewer for MCP tokens, operator for application tokens, which
open nothing but /v1: resolving and sending feedback). FINETUNE_PEOPLE links
one person's identities, so four eyes and the daily spend limit count a person,
not a face.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.platform.actors import Actor
from core.vocabulary import Face, IdentityKind, Role, one_of, role_rank

if TYPE_CHECKING:
    from core.platform.settings import Settings

__all__ = [
    "ANONYMOUS",
    "ROLE_LISTS",
    "Identity",
    "actor_for",
    "default_role",
    "parse_identities",
    "parse_identity",
    "parse_people",
    "parse_tokens",
    "person_of",
    "role_of",
]

# The settings field that lists each role's identities.
ROLE_LISTS: dict[Role, str] = {
    Role.VIEWER: "viewers",
    Role.OPERATOR: "operators",
    Role.APPROVER: "approvers",
    Role.ADMIN: "admins",
}

ANONYMOUS = "anonymous"  # the MCP caller of a loopback serve that has no tokens

_SLACK_USER = re.compile(r"[UW][A-Z0-9]{1,30}")
_SLACK_GROUP = re.compile(r"S[A-Z0-9]{1,30}")
_OS_USER = re.compile(r"[^\s,;=:]{1,128}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # token names and people
_FORMS = "slack:U123 (or just U123), slack-group:S123, os:NAME, mcp:TOKEN-NAME or app:TOKEN-NAME"


@dataclass(frozen=True, order=True)
class Identity:
    kind: IdentityKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


# Parsing what the settings say -----------------------------------------------------------------------


def parse_identity(text: str, *, groups: bool = True) -> Identity:
    """`slack:U123`, `U123`, `slack-group:S123`, `os:alice` or `mcp:laptop`; ValueError says what is wrong."""
    text = text.strip()
    kind_text, colon, name = text.partition(":")
    if not colon:
        if _SLACK_USER.fullmatch(text.upper()):
            return Identity(IdentityKind.SLACK, text.upper())
        raise ValueError(f"{text!r} is not an identity; write {_FORMS}")
    try:
        kind = IdentityKind(kind_text.strip().lower())
    except ValueError:
        raise ValueError(f"{text!r} has an unknown kind {kind_text!r}; use {one_of(IdentityKind)}") from None
    name = name.strip()
    if kind in (IdentityKind.SLACK, IdentityKind.SLACK_GROUP):
        name = name.upper()
    if not _PATTERNS[kind].fullmatch(name):
        raise ValueError(f"{text!r} is not a valid {kind} identity; {_EXAMPLES[kind]}")
    if kind is IdentityKind.SLACK_GROUP and not groups:
        raise ValueError(f"{text!r} is a Slack user group, not one person's identity")
    if kind is IdentityKind.MCP and name == ANONYMOUS:
        raise ValueError(f"{text!r}: `{ANONYMOUS}` is reserved for callers without a token; choose another name")
    return Identity(kind, name)


_PATTERNS: dict[IdentityKind, re.Pattern[str]] = {
    IdentityKind.SLACK: _SLACK_USER,
    IdentityKind.SLACK_GROUP: _SLACK_GROUP,
    IdentityKind.OS: _OS_USER,
    IdentityKind.MCP: _NAME,
    IdentityKind.APP: _NAME,
}
_EXAMPLES: dict[IdentityKind, str] = {
    IdentityKind.SLACK: "a Slack user id starts with U or W, e.g. slack:U0123ABCD",
    IdentityKind.SLACK_GROUP: "a Slack user group id starts with S, e.g. slack-group:S0123ABCD",
    IdentityKind.OS: "an OS user name has no spaces, commas, semicolons, colons or '=', e.g. os:alice",
    IdentityKind.MCP: "a token name is letters, digits, '.', '_' and '-', e.g. mcp:alice-laptop",
    IdentityKind.APP: "a token name is letters, digits, '.', '_' and '-', e.g. app:shop",
}


def parse_identities(text: str) -> list[Identity]:
    """A comma-separated list of identities (empty entries ignored); ValueError names the bad one."""
    return [parse_identity(part) for part in text.split(",") if part.strip()]


def parse_people(text: str) -> dict[str, list[Identity]]:
    """`alice=slack:U1,os:alice;bob=slack:U2`: each person's linked identities."""
    people: dict[str, list[Identity]] = {}
    owner: dict[Identity, str] = {}
    for entry in (part.strip() for part in text.split(";")):
        if not entry:
            continue
        name, equals, listed = (piece.strip() for piece in entry.partition("="))
        if not equals or not _NAME.fullmatch(name):
            raise ValueError(
                f"{entry!r} does not start with a person's name and '='; write e.g. alice=slack:U1,os:alice"
            )
        if name in people:
            raise ValueError(f"{name!r} is listed twice; give each person one entry")
        identities = [parse_identity(part, groups=False) for part in listed.split(",") if part.strip()]
        if not identities:
            raise ValueError(f"{name!r} has no identities; write e.g. {name}=slack:U1,os:{name}")
        for identity in identities:
            if identity in owner and owner[identity] != name:
                raise ValueError(f"{identity} is linked to both {owner[identity]!r} and {name!r}; keep one")
            owner[identity] = name
        people[name] = identities
    return people


def parse_tokens(text: str) -> dict[str, str]:
    """`name:token,name:token` -> {name: token}. Errors never repeat a token."""
    tokens: dict[str, str] = {}
    for position, entry in enumerate((part.strip() for part in text.split(",")), start=1):
        if not entry:
            continue
        name, colon, token = (piece.strip() for piece in entry.partition(":"))
        if not colon or not token:
            raise ValueError(f"entry {position} is not NAME:TOKEN; write e.g. laptop:<a long random token>")
        if not _NAME.fullmatch(name) or name == ANONYMOUS:
            raise ValueError(
                f"entry {position} has an invalid name {name!r}; use letters, digits, '.', '_' and '-' "
                f"(and not {ANONYMOUS!r})"
            )
        if name in tokens:
            raise ValueError(f"the token name {name!r} is used twice; give each token its own name")
        if token in tokens.values() or any(ch.isspace() for ch in token):
            raise ValueError(f"the token of {name!r} is reused or contains spaces; give each a distinct random token")
        tokens[name] = token
    return tokens


# Resolving a caller ----------------------------------------------------------------------------------


def default_role(settings: Settings, kind: IdentityKind) -> Role:
    """The role of an identity that no list names."""
    if kind is IdentityKind.SLACK:
        return settings.default_slack_role
    if kind is IdentityKind.OS:
        return settings.cli_role
    if kind is IdentityKind.APP:
        return Role.OPERATOR  # an application token opens only /v1, where it may send feedback
    return Role.VIEWER


def role_of(settings: Settings, identity: Identity, *, in_group: Callable[[str], bool] | None = None) -> Role:
    """The highest role the lists give `identity`, else its kind's default.

    `in_group(group_id)` says whether a Slack user belongs to a user group; it is asked only about
    groups that would raise the role, and anything but a clear yes counts as no (fail closed).
    """
    listed = [role for role, field in ROLE_LISTS.items() if str(identity) in getattr(settings, field)]
    best = max(listed, key=role_rank, default=None)
    if identity.kind is IdentityKind.SLACK and in_group is not None:
        for group, role in _groups_by_role(settings):
            if best is not None and role_rank(role) <= role_rank(best):
                break
            if in_group(group):
                best = role
                break
    return best if best is not None else default_role(settings, identity.kind)


def _groups_by_role(settings: Settings) -> list[tuple[str, Role]]:
    """Every Slack user group the role lists name, with its role, the highest roles first."""
    found: list[tuple[str, Role]] = []
    for role in sorted(ROLE_LISTS, key=role_rank, reverse=True):
        for entry in getattr(settings, ROLE_LISTS[role]):
            kind, _, name = entry.partition(":")
            if kind == IdentityKind.SLACK_GROUP:
                found.append((name, role))
    return found


def person_of(settings: Settings, identity: Identity) -> tuple[str, frozenset[str]]:
    """(the person's name, all their identities); an identity linked to no one is a person of its own."""
    for name, identities in settings.people.items():
        if str(identity) in identities:
            return name, frozenset(identities)
    return str(identity), frozenset({str(identity)})


def actor_for(
    settings: Settings, identity: Identity, *, face: Face, in_group: Callable[[str], bool] | None = None
) -> Actor:
    """The Actor for a caller the face has identified: its role and its person resolved from settings."""
    person, identities = person_of(settings, identity)
    return Actor(
        id=identity.name,
        face=face,
        role=role_of(settings, identity, in_group=in_group),
        identity=str(identity),
        person=person,
        identities=identities,
    )


def canonical(identities: Iterable[Identity]) -> list[str]:
    """Identities as the settings keep them (`kind:name`), each once, in the given order."""
    return list(dict.fromkeys(str(identity) for identity in identities))
