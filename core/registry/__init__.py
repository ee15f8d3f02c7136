"""The model registry: registered models, immutable versions with lineage, aliases with canaries, the ledger.

Faces import from here; `service` holds the actions and their policy, `resolve`
the sticky canary resolution, `db` every statement on the registry's tables.
"""

from core.registry.resolve import KEY_LIMIT, Resolution, ResolvedModel, bucket, resolve_model
from core.registry.service import (
    CANDIDATE,
    PRODUCTION,
    PROTECTED_ALIASES,
    AliasAt,
    AliasState,
    History,
    LedgerEntry,
    ModelVersion,
    RegistryChange,
    get_version,
    history,
    list_aliases,
    list_models,
    list_versions,
    on_alias_decided,
    on_retire_decided,
    promote_canary,
    register_version,
    request_deploy,
    retire,
    rollback,
    set_canary_share,
)

__all__ = [
    "CANDIDATE",
    "KEY_LIMIT",
    "PRODUCTION",
    "PROTECTED_ALIASES",
    "AliasAt",
    "AliasState",
    "History",
    "LedgerEntry",
    "ModelVersion",
    "RegistryChange",
    "Resolution",
    "ResolvedModel",
    "bucket",
    "get_version",
    "history",
    "list_aliases",
    "list_models",
    "list_versions",
    "on_alias_decided",
    "on_retire_decided",
    "promote_canary",
    "register_version",
    "request_deploy",
    "resolve_model",
    "retire",
    "rollback",
    "set_canary_share",
]
