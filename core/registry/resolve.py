"""Which version serves a caller: sticky canary resolution, cached per store.

`resolve_model(store, name, key, alias)` answers with the alias's stable
version, or with its canary for the callers whose bucket falls under the
canary share. A caller's bucket is

    int.from_bytes(sha256(name + "\\x00" + key, UTF-8).digest()[:8], "big") % 100

(lone surrogates in `key` are encoded as they stand, so any string has a
bucket), and the canary serves buckets `0 .. share - 1`. So a key keeps its arm
while the share is unchanged, raising the share only moves keys from the
stable version to the canary (never back), and about `share`% of keys land on
the canary. The bucket depends on the model and the key only: a new canary
behind the same share reaches the same callers.

The alias table is cached per store and reread only when the `registry_aliases`
counter moved (every alias write bumps it in its own transaction, in any
process), so a call costs one primary-key read of that counter plus a hash.

`provider_model_id` is what the application calls: the trained model's id, or,
for a version with an active provider deployment (a Bedrock custom model), that
deployment's ARN, since Bedrock invokes custom models only through one.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from core.errors import InvalidInput, NotFound
from core.platform.store import Store
from core.registry import db
from core.registry.deployments import serving_arns
from core.vocabulary import Arm

BUCKETS = 100


@dataclass(frozen=True, slots=True)
class Resolution:
    """The version that serves one caller of `model_name@alias`, and through which arm."""

    model_name: str
    alias: str
    version_id: str
    provider: str
    provider_model_id: str | None
    arm: Arm
    bucket: int


@dataclass(frozen=True, slots=True)
class _Target:
    version_id: str
    provider: str
    provider_model_id: str | None


@dataclass(frozen=True, slots=True)
class _Route:
    stable: _Target
    canary: _Target | None
    share: int


@dataclass(frozen=True, slots=True)
class _Snapshot:
    generation: int
    routes: dict[tuple[str, str], _Route]


_snapshots: weakref.WeakKeyDictionary[Store, _Snapshot] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def bucket(name: str, key: str) -> int:
    """The caller's place in 0..99 for model `name`: the first 8 bytes of sha256(name NUL key), mod 100."""
    digest = hashlib.sha256(f"{name}\x00{key}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def arm_for(bucket_value: int, share: int) -> Arm:
    """The canary serves buckets below its share."""
    return Arm.CANARY if bucket_value < share else Arm.STABLE


def resolve_model(store: Store, name: str, key: str, alias: str = "production") -> Resolution:
    """The version of `name@alias` that serves the caller identified by `key` (a user, conversation or tenant id)."""
    if not isinstance(key, str) or not key:
        raise InvalidInput(
            f"`key` must be a non-empty string naming the caller, got {key!r}.",
            hint="Pass a stable id of the caller (user, conversation or tenant) so it keeps its version.",
        )
    route = _snapshot(store).routes.get((name, alias))
    if route is None:
        raise _unknown(store, name, alias)
    place = bucket(name, key)
    arm = arm_for(place, route.share) if route.canary is not None else Arm.STABLE
    target = route.canary if arm is Arm.CANARY and route.canary is not None else route.stable
    return Resolution(name, alias, target.version_id, target.provider, target.provider_model_id, arm, place)


def _snapshot(store: Store) -> _Snapshot:
    generation = db.alias_generation(store)
    cached = _snapshots.get(store)
    if cached is not None and cached.generation == generation:
        return cached
    with _lock:
        generation = db.alias_generation(store)  # read before the table: a later move makes the next call reload
        arns = serving_arns(store)  # a deployment's activation or deletion moves the generation too
        fresh = _Snapshot(generation, {(r["model_name"], r["alias"]): _route(r, arns) for r in db.routes(store)})
        _snapshots[store] = fresh
    return fresh


def _route(row: dict[str, Any], arns: dict[str, str]) -> _Route:
    """An alias's arms; a version with an active provider deployment is called through that deployment's ARN."""
    stable = _Target(row["stable_id"], row["stable_provider"], arns.get(row["stable_id"], row["stable_model"]))
    canary = None
    if row["canary_id"]:
        canary = _Target(row["canary_id"], row["canary_provider"], arns.get(row["canary_id"], row["canary_model"]))
    return _Route(stable, canary, int(row["canary_share"] or 0) if canary else 0)


def _unknown(store: Store, name: str, alias: str) -> NotFound:
    if not isinstance(name, str) or not db.model_exists(store, name):
        return NotFound(
            f"no registered model {name!r}.",
            hint="A model is registered when a fine-tuning job for its dataset succeeds.",
            model=str(name),
        )
    known = ", ".join(row["alias"] for row in db.aliases(store, name)) or "none yet"
    return NotFound(
        f"model {name!r} has no alias {alias!r} (its aliases: {known}).",
        hint=f"Deploy a version to it first, or resolve one of its aliases ({known}).",
        model=name,
        alias=str(alias),
    )


# The answer faces give ------------------------------------------------------------------------------

KEY_LIMIT = 200  # characters of a caller key (a user, conversation or tenant id) a face accepts


class ResolvedModel(BaseModel):
    """The version that serves one caller: what an application sends its requests to."""

    model: str
    alias: str
    version: str = Field(description="The version id, name:vN.")
    provider: str
    provider_model_id: str | None = Field(
        description="The model id to call at the provider: for a Bedrock custom model, its deployment's ARN."
    )
    arm: Arm = Field(description="stable, or canary when the caller falls in the alias's canary share.")

    @classmethod
    def of(cls, found: Resolution) -> ResolvedModel:
        return cls(
            model=found.model_name, alias=found.alias, version=found.version_id, provider=found.provider,
            provider_model_id=found.provider_model_id, arm=found.arm,
        )  # fmt: skip
