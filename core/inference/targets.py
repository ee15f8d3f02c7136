"""Which model answers a chat: a registry version named outright, or a model's alias resolved for the caller.

`target_for(store, model, key=...)` reads `support:v3` as that version,
`support` as what `support@production` serves the caller `key`, and
`support@staging` as what that alias serves them (sticky canary resolution,
`core.registry.resolve`). Only versions trained locally are answered here;
another provider's version is refused with the model id to call it by there.
`callable_models` lists what `target_for` accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core import registry
from core.errors import Conflict, InvalidInput
from core.inference.base import ModelUnavailable, Target
from core.platform.store import Store
from core.registry import ModelVersion
from core.vocabulary import Provider

_VERSION_ID = re.compile(r"(?P<name>.+):v?(?P<number>[0-9]{1,9})")


@dataclass(frozen=True, slots=True)
class CallableModel:
    """A name `target_for` accepts: a local version, or an alias whose every arm is a local version."""

    id: str
    created_at: str
    versions: tuple[str, ...]  # the versions it may answer with (an alias with a canary has two)


def target_for(store: Store, model: str, *, key: str) -> Target:
    """The local version that answers caller `key` when they ask for `model` (a version id, name or name@alias)."""
    return version_target(_version_for(store, model, key))


def version_target(version: ModelVersion) -> Target:
    """The target answering with `version`, refused unless it was trained locally and is not retired."""
    if version.provider != Provider.LOCAL:
        where = f" as {version.provider_model_id!r}" if version.provider_model_id else ""
        raise InvalidInput(
            f"{version.id} was trained at {version.provider}; only locally trained versions are answered here.",
            hint=f"Call it through {version.provider}'s own API{where}.",
            model=version.id,
        )
    if version.retired_at is not None:
        raise Conflict(
            f"{version.id} was retired at {version.retired_at} and answers no more.",
            hint=f"Call the model by name ({version.name}) to get the version its alias serves.",
            model=version.id,
        )
    if not version.provider_model_id:
        raise ModelUnavailable(
            f"{version.id} records no model directory.", hint="Register it again with its adapter directory.",
            model=version.id,
        )  # fmt: skip
    return Target(Provider.LOCAL, version.provider_model_id, version.base_model, version.id)


def callable_models(store: Store) -> list[CallableModel]:
    """Every local version not retired, and every alias all of whose arms are such versions, by model name."""
    found: list[CallableModel] = []
    for name in registry.list_models(store):
        local = {
            version.id: version
            for version in registry.list_versions(store, name)
            if version.provider == Provider.LOCAL and version.retired_at is None
        }
        found += [CallableModel(v.id, v.created_at, (v.id,)) for v in local.values()]
        for alias in registry.list_aliases(store, name):
            arms = tuple(v for v in (alias.version_id, alias.canary_version_id) if v)
            if all(arm in local for arm in arms):
                called = name if alias.alias == registry.PRODUCTION else f"{name}@{alias.alias}"
                found.append(CallableModel(called, alias.updated_at, arms))
    return found


def _version_for(store: Store, model: str, key: str) -> ModelVersion:
    names = set(registry.list_models(store))
    if model in names:
        return _resolved(store, model, registry.PRODUCTION, key)
    match = _VERSION_ID.fullmatch(model)
    if match and match["name"] in names:
        return registry.get_version(store, f"{match['name']}:v{int(match['number'])}")
    name, at, alias = model.rpartition("@")
    if at and name in names:
        return _resolved(store, name, alias, key)
    return _resolved(store, model, registry.PRODUCTION, key)  # NotFound naming the model


def _resolved(store: Store, name: str, alias: str, key: str) -> ModelVersion:
    return registry.get_version(store, registry.resolve_model(store, name, key, alias).version_id)
