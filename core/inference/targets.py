"""Which model answers a chat: a registry version named outright, a model's alias resolved for the caller, a base model.

`target_for(store, model, key=...)` reads `support:v3` as that version,
`support` as what `support@production` serves the caller `key`, and
`support@staging` as what that alias serves them (sticky canary resolution,
`core.registry.resolve`). Only versions trained locally are answered there
(it serves /v1/chat/completions); another provider's version is refused with
the model id to call it by there. `callable_models` lists what `target_for`
accepts.

`chat_target(store, model, key=...)` is what evaluations and judges call: it
reads the same names for a version of any provider (an OpenAI or Azure
fine-tune by its model id, which on Azure names its deployment; a Bedrock
custom model through the ARN of its active deployment, as resolution answers
it), and `PROVIDER:MODEL` as a base model at that provider:
`openai:gpt-4.1-mini`, `azure:DEPLOYMENT`, `anthropic:claude-sonnet-5-5`,
`bedrock:amazon.nova-micro-v1:0`, `compatible:llama3` (the server at
FINETUNE_COMPATIBLE_BASE_URL) or `local:tiny`. A registered model whose name
is a provider's keeps its name: `openai:v2` is then its version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core import registry
from core.errors import Conflict, InvalidInput, NotFound
from core.inference.base import ModelUnavailable, Target
from core.platform.store import Store
from core.registry import ModelVersion
from core.registry.deployments import serving_arns
from core.vocabulary import CHAT_PROVIDERS, ChatProvider, Provider

_VERSION_ID = re.compile(r"(?P<name>.+):v?(?P<number>[0-9]{1,9})")
MAX_MODEL_CHARS = 2048  # Bedrock's longest model id; any API's fits
EXAMPLES = (
    "openai:gpt-4.1-mini, azure:DEPLOYMENT, anthropic:claude-sonnet-5-5, bedrock:amazon.nova-micro-v1:0, "
    "compatible:llama3 or local:tiny"
)


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
    _not_retired(version)
    if not version.provider_model_id:
        raise ModelUnavailable(
            f"{version.id} records no model directory.", hint="Register it again with its adapter directory.",
            model=version.id,
        )  # fmt: skip
    return Target(Provider.LOCAL, version.provider_model_id, version.base_model, version.id)


def chat_target(store: Store, model: str, *, key: str) -> Target:
    """What answers caller `key` asking for `model`: a version of any provider (an id, name or name@alias), or
    PROVIDER:MODEL, a base model at that provider."""
    text = _model_text(model)
    names = set(registry.list_models(store))
    base = _base_model(text, names)
    if base is not None:
        return base
    try:
        version = _version_for(store, text, key)
    except NotFound as exc:
        if text.partition("@")[0] in names:
            raise
        raise NotFound(
            exc.message, hint=f"{exc.hint or ''} A base model is named PROVIDER:MODEL, e.g. {EXAMPLES}.".strip(),
            **exc.ids,
        ) from None  # fmt: skip
    return any_version_target(store, version)


def any_version_target(store: Store, version: ModelVersion) -> Target:
    """The target answering with `version`, whoever trained it, unless it is retired or cannot be called."""
    if version.provider == Provider.LOCAL:
        return version_target(version)
    _not_retired(version)
    provider = _provider(version)
    model_id = serving_arns(store).get(version.id) if provider == Provider.BEDROCK else version.provider_model_id
    if not model_id:
        raise _not_callable(version, provider)
    return Target(provider, model_id, version.base_model, version.id)


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


def _model_text(model: object) -> str:
    if not isinstance(model, str) or not model.strip():
        given = "an empty name" if isinstance(model, str) else f"a {type(model).__name__}"
        raise InvalidInput(
            f"`model` must name a model, got {given}.",
            hint=f"Name a registered version (support:v3), model (support), alias (support@staging) or a base model: "
            f"{EXAMPLES}.",
            param="model",
        )
    if len(model) > MAX_MODEL_CHARS or not model.isprintable():
        raise InvalidInput(
            f"`model` must be at most {MAX_MODEL_CHARS} printable characters.",
            hint="Name the model as its provider does, without line breaks or control characters.",
            param="model",
        )
    return model.strip()


def _base_model(text: str, names: set[str]) -> Target | None:
    """PROVIDER:MODEL as a base model at that provider; None for anything else (a registered name included)."""
    prefix, sep, model = text.partition(":")
    provider = next((p for p in CHAT_PROVIDERS if p.value == prefix), None)
    if not sep or provider is None or prefix in names:
        return None
    if not model.strip():
        raise InvalidInput(
            f"`model` names the provider {prefix} but no model: write {prefix}:MODEL.",
            hint=f"For example {EXAMPLES}.",
            param="model",
        )
    return Target(provider, model.strip())


def _provider(version: ModelVersion) -> ChatProvider:
    try:
        return Provider(version.provider)
    except ValueError:
        raise ModelUnavailable(
            f"{version.id} was trained at {version.provider!r}, which finetune-ops cannot call.",
            hint="Call it through that provider's own API.",
            model=version.id,
        ) from None


def _not_callable(version: ModelVersion, provider: ChatProvider) -> ModelUnavailable:
    if provider == Provider.BEDROCK:
        return ModelUnavailable(
            f"{version.id} has no active Bedrock deployment, and Bedrock answers custom models only through one.",
            hint=f"Move an alias to {version.id} (models deploy) so that its deployment is created, then call it "
            "again once the deployment is active.",
            model=version.id,
        )
    return ModelUnavailable(
        f"{version.id} records no {provider} model id to call.",
        hint="Register it again with the fine-tuned model's id.",
        model=version.id,
    )


def _not_retired(version: ModelVersion) -> None:
    if version.retired_at is not None:
        raise Conflict(
            f"{version.id} was retired at {version.retired_at} and answers no more.",
            hint=f"Call the model by name ({version.name}) to get the version its alias serves.",
            model=version.id,
        )


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
