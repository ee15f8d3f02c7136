"""`/finetune launch` alone: a modal wizard that ends in the very command `/finetune launch VERSION PROVIDER BASE_MODEL`.

The slash command's worker opens the modal at once (a trigger expires in 3
seconds) and fills it with the built dataset versions, newest first. Each
choice (version, method, provider, base model, and the epoch count on Enter)
is acked at once; a lazy worker reads the core for the choices so far (the
providers and base models the catalog trains with that method, the
hyperparameters suggested from the version's export, the cost estimate from
its exact token counts) and updates the modal in place. Everything the wizard
reads goes through `bot.invoke` as `launch form`, which only people who may
launch may use.

Launch is checked in the ack (a choice missing, a hyperparameter outside its
documented range: each shown under its field), then a lazy worker runs
`launch VERSION PROVIDER BASE_MODEL --method M [--epochs N ...]` through the
shared grammar as the submitting Slack user, so policy, budgets, approvals and
the audit are those of the typed command, and answers them privately where
they typed `/finetune launch`. The modal's id is the launch's idempotency key:
a retried submission starts no second job.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import click
from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.commands import Invocation, run_command
from bot.commands.groups import SLACK
from bot.commands.training import launch_command, price_text
from bot.invoke import Failure, invoke, slack_actor
from bot.slack.blocks import render_outcome
from bot.slack.blocks.launch import (
    HYPERPARAMETER_LABELS,
    HYPERPARAMETER_PREFIX,
    LAUNCH_VIEW,
    METHOD_ACTION,
    MODEL_ACTION,
    PROVIDER_ACTION,
    VERSION_ACTION,
    Choice,
    HyperparameterField,
    WizardState,
    hyperparameter_action,
    loading_view,
    problem_view,
    wizard_view,
)
from bot.slack.listeners.answers import answer, response_url_of
from bot.slack.listeners.home import is_user_id
from bot.slack.listeners.redelivery import first_delivery
from core.catalog import ParamRange, list_base_models
from core.data import datasets
from core.errors import FinetuneError
from core.platform import Actor
from core.services import Services
from core.training import check_hyperparameters, planning
from core.vocabulary import Method, Provider, values

log = logging.getLogger(__name__)

FORM_CALL = "launch form"  # bot.invoke.SLACK_CALLS
SLASH = "/finetune"
MAX_VERSIONS = 100  # a select holds at most 100 options
CATCHING_UP = "The form is still catching up with your last choice; launch again in a moment."
DISPATCHING = (VERSION_ACTION, METHOD_ACTION, PROVIDER_ACTION, MODEL_ACTION, hyperparameter_action("epochs"))


def opens_wizard(text: str) -> bool:
    """Whether `/finetune TEXT` asks for the wizard: `launch` and nothing else."""
    return text.split() == ["launch"]


@dataclass(frozen=True)
class Choices:
    """What the modal's inputs hold now."""

    version: str | None = None
    method: str = Method.SUPERVISED
    provider: str | None = None
    model: str | None = None
    token: str | None = None  # the choices the hyperparameter inputs were suggested for
    hyperparameters: dict[str, str] = field(default_factory=dict)  # name -> typed value ('' = the suggestion)
    blocks: dict[str, str] = field(default_factory=dict)  # input name -> its block id, for errors


def register(app: App, services: Services) -> None:
    def ack_at_once(ack: Callable[[], None]) -> None:
        ack()

    def choice_made(body: dict[str, Any], client: WebClient) -> None:
        view, user_id = body.get("view"), _dig(body, "user", "id")
        if not isinstance(view, dict) or not is_user_id(user_id) or not first_delivery(services, body):
            return
        metadata = str(view.get("private_metadata") or "")
        updated = wizard(services, str(user_id), choices_from(view), private_metadata=metadata)
        try:
            client.views_update(view_id=str(view.get("id")), view=updated)
        except SlackClientError:
            log.exception("could not update the launch wizard of %s", user_id)

    def check_launch(ack: Callable[..., None], body: dict[str, Any]) -> None:
        errors = launch_problems(services, choices_from(_dig(body, "view")))
        if errors:
            ack(response_action="errors", errors=errors)
        else:
            ack()

    def launch_submitted(body: dict[str, Any], client: WebClient) -> None:
        view, user_id = _dig(body, "view"), _dig(body, "user", "id")
        choices = choices_from(view)
        if not isinstance(view, dict) or not is_user_id(user_id) or launch_problems(services, choices):
            return
        if first_delivery(services, body):
            launch(services, client, str(user_id), view, choices)

    for action_id in DISPATCHING:
        app.action(action_id)(ack=ack_at_once, lazy=[choice_made])
    app.view(LAUNCH_VIEW)(ack=check_launch, lazy=[launch_submitted])


# Opening and updating --------------------------------------------------------------------------------


def open_wizard(
    services: Services, client: WebClient, *, user_id: str, trigger_id: str, channel: str | None,
    response_url: str | None,
) -> None:  # fmt: skip
    """Open the modal at once, then fill it with the wizard (or say why there is none)."""
    try:
        opened = client.views_open(trigger_id=trigger_id, view=loading_view())
    except SlackClientError:
        log.exception("could not open the launch wizard for %s", user_id)
        return
    view_id = _dig(opened.data if isinstance(opened.data, dict) else {}, "view", "id")
    if not isinstance(view_id, str):
        log.warning("Slack opened the launch wizard without a view id")
        return
    metadata = json.dumps({"channel": channel, "response_url": response_url_of(response_url)})
    try:
        client.views_update(view_id=view_id, view=wizard(services, user_id, Choices(), private_metadata=metadata))
    except SlackClientError:
        log.exception("could not fill the launch wizard for %s", user_id)


def wizard(services: Services, user_id: str, choices: Choices, *, private_metadata: str) -> dict[str, Any]:
    """The modal for `choices`, read through the invocation wrapper as Slack user `user_id`."""
    actor = slack_actor(services.settings, user_id)
    args = {"version": choices.version, "method": choices.method, "provider": choices.provider, "model": choices.model}
    state = invoke(services, actor, FORM_CALL, args, lambda: wizard_state(services, actor, choices))
    if isinstance(state, Failure):
        return problem_view(f":no_entry: {state}")
    if not state.versions:
        return problem_view(
            "No dataset version has been built yet. Build one (`finetune data build NAME`), then `/finetune launch`."
        )
    return wizard_view(state, private_metadata=private_metadata)


def wizard_state(services: Services, actor: Actor, choices: Choices) -> WizardState:
    """What the core says about the choices so far: each step's options, then suggestions and the estimate."""
    store = services.store
    versions = datasets.recent_versions(store, limit=MAX_VERSIONS)
    version = choices.version if choices.version else None
    method = choices.method if choices.method in values(Method) else Method.SUPERVISED
    state = WizardState(versions=tuple(versions), methods=tuple(values(Method)), method=method)
    if version is None:
        return state
    try:
        found = datasets.get_version(store, version)
    except FinetuneError as exc:
        return _with(state, problem=str(exc))
    if found.id not in versions:  # older than the newest MAX_VERSIONS: still a choice
        state = _with(state, versions=(found.id, *versions[: MAX_VERSIONS - 1]))
    models_of = {provider: _models(services, provider, method) for provider in values(Provider)}
    providers = tuple(provider for provider, models in models_of.items() if models)
    provider = choices.provider if choices.provider in providers else None
    models = models_of.get(provider, ()) if provider else ()
    model = choices.model if any(choice.value == choices.model for choice in models) else None
    state = _with(
        state, version=found.id, version_facts=_facts(found.counts), providers=providers, provider=provider,
        models=models, model=model,
    )  # fmt: skip
    if provider is None or model is None:
        return state
    try:
        return _planned(services, actor, state, choices, version=found.id, provider=provider, model=model)
    except FinetuneError as exc:
        return _with(state, problem=str(exc))


def _models(services: Services, provider: str, method: str) -> tuple[Choice, ...]:
    """The base models `provider` trains with `method`: live ones first, each with its price and date."""
    choices = []
    for entry in list_base_models(services.catalog, provider=provider).models:
        if method not in entry.methods:
            continue
        notes = [price_text(entry)]
        if entry.status != "live":
            notes.append(entry.status)
        if entry.new_jobs_stop_on is not None:
            notes.append(f"no new jobs from {entry.new_jobs_stop_on}")
        choices.append(Choice(entry.id, entry.id, " · ".join(notes)))
    local_default = services.settings.local_base_model
    if provider == Provider.LOCAL and local_default and all(choice.value != local_default for choice in choices):
        choices.append(Choice(local_default, local_default, "FINETUNE_LOCAL_BASE_MODEL"))
    return tuple(choices)


def _planned(
    services: Services, actor: Actor, state: WizardState, choices: Choices, *, version: str, provider: str, model: str
) -> WizardState:
    """The suggested hyperparameters, the fields as typed, and the estimate for the epoch count shown."""
    method = state.method
    catalog = planning.catalog_for(services.catalog, model, provider=provider)
    suggestion = planning.suggest_for_version(
        services.store, version=version, base_model=model, actor=actor, data_dir=services.data_dir, method=method,
        catalog=catalog,
    )  # fmt: skip
    token = choice_token(version, method, provider, model)
    typed = choices.hyperparameters if choices.token == token else {}
    fields = []
    for name in HYPERPARAMETER_LABELS:
        suggested, allowed = getattr(suggestion, name), suggestion.ranges.get(name)
        if suggested is None or allowed is None:
            continue
        shown = typed[name] if name in typed else number_text(suggested, allowed)
        fields.append(
            HyperparameterField(name, shown, number_text(suggested, allowed), allowed.describe(), allowed.integer)
        )
    epochs = suggestion.epochs
    typed_epochs = typed.get("epochs", "")
    if typed_epochs and not check_hyperparameters(model, {"epochs": typed_epochs}, method=method, catalog=catalog):
        epochs = int(float(typed_epochs))
    estimate = planning.estimate_version_cost(
        services.store, version=version, base_model=model, actor=actor, data_dir=services.data_dir, epochs=epochs,
        method=method, catalog=catalog,
    )  # fmt: skip
    return _with(
        state, token=token, fields=tuple(fields), rationale=tuple(suggestion.rationale), estimate=estimate,
        auto_approve_usd=services.settings.auto_approve_usd,
    )  # fmt: skip


def _with(state: WizardState, **changes: Any) -> WizardState:
    return replace(state, **changes)


def _facts(counts: dict[str, Any]) -> str:
    """`60 examples: train 48 · validation 6 · test 6`."""
    text = f"{int(counts.get('examples', 0)):,} examples"
    splits = counts.get("splits")
    if isinstance(splits, dict) and splits:
        text += ": " + " · ".join(f"{name} {int(count):,}" for name, count in splits.items())
    return text


def choice_token(version: str, method: str, provider: str, model: str) -> str:
    """A short token naming the choices that hyperparameter suggestions were made for."""
    return hashlib.sha256(f"{version}\x1f{method}\x1f{provider}\x1f{model}".encode()).hexdigest()[:10]


def number_text(value: float, allowed: ParamRange) -> str:
    """A number as a Slack number input takes it: whole, or a plain decimal (never 1e-05)."""
    if allowed.integer:
        return str(round(value))
    return f"{value:.12f}".rstrip("0").rstrip(".") or "0"


# Reading the modal -------------------------------------------------------------------------------


def choices_from(view: object) -> Choices:
    """The choices a view's state holds, found by action id (hyperparameter blocks change their ids)."""
    values = _dig(view, "state", "values")
    if not isinstance(values, dict):
        return Choices()
    found: dict[str, tuple[str, str]] = {}  # action id -> (block id, value)
    for block_id, actions in values.items():
        for action_id, state in actions.items() if isinstance(actions, dict) else ():
            if isinstance(state, dict):
                value = state.get("value")
                if value is None:
                    value = _dig(state, "selected_option", "value")
                found[str(action_id)] = (str(block_id), value.strip() if isinstance(value, str) else "")
    token = None
    hyperparameters: dict[str, str] = {}
    blocks = {action_id: block_id for action_id, (block_id, _) in found.items()}
    for action_id, (block_id, value) in found.items():
        if action_id.startswith(HYPERPARAMETER_PREFIX):
            name = action_id.removeprefix(HYPERPARAMETER_PREFIX)
            if name in HYPERPARAMETER_LABELS:
                hyperparameters[name] = value
                token = block_id.partition(":")[2] or None
    return Choices(
        version=found.get(VERSION_ACTION, ("", ""))[1] or None,
        method=found.get(METHOD_ACTION, ("", ""))[1] or Method.SUPERVISED,
        provider=found.get(PROVIDER_ACTION, ("", ""))[1] or None,
        model=found.get(MODEL_ACTION, ("", ""))[1] or None,
        token=token, hyperparameters=hyperparameters, blocks=blocks,
    )  # fmt: skip


def launch_problems(services: Services, choices: Choices) -> dict[str, str]:
    """What keeps Launch from running, under the input concerned (block id -> text); pure, for the ack."""
    version, provider, model = choices.version, choices.provider, choices.model
    steps = [
        (VERSION_ACTION, version, "Choose the dataset version to train on."),
        (PROVIDER_ACTION, provider, "Choose where to train."),
        (MODEL_ACTION, model, "Choose the base model to fine-tune."),
    ]
    shown = choices.blocks.get(VERSION_ACTION, VERSION_ACTION)
    for action_id, chosen, problem in steps:
        block = choices.blocks.get(action_id)
        if not chosen:
            return {block: problem} if block is not None else {shown: CATCHING_UP}
        shown = block or shown
    if version is None or provider is None or model is None:  # the steps above returned already
        return {shown: CATCHING_UP}
    if choices.hyperparameters and choices.token != choice_token(version, choices.method, provider, model):
        return {shown: CATCHING_UP}
    errors: dict[str, str] = {}
    try:
        catalog = planning.catalog_for(services.catalog, model, provider=provider)
        for name, value in choices.hyperparameters.items():
            problems = (
                check_hyperparameters(model, {name: value}, method=choices.method, catalog=catalog) if value else []
            )
            if problems:
                errors[choices.blocks[hyperparameter_action(name)]] = (
                    f"{problems[0]} Leave it empty for the suggestion."
                )
    except FinetuneError as exc:
        return {shown: str(exc)}
    return errors


# Launching -----------------------------------------------------------------------------------------


def launch_argv(choices: Choices) -> list[str]:
    """`launch VERSION PROVIDER BASE_MODEL --method M [--epochs N ...]`: the command a person would type."""
    argv = ["launch", str(choices.version), str(choices.provider), str(choices.model), "--method", choices.method]
    for name, value in choices.hyperparameters.items():
        if not value:
            continue
        option = _option_of(name)
        argv += [option.opts[0], str(int(float(value))) if option.type is click.INT else value]
    return argv


def _option_of(name: str) -> click.Option:
    """The launch command's own option for hyperparameter `name` (`--lr-multiplier`): the grammar says it once."""
    return next(p for p in launch_command.params if isinstance(p, click.Option) and p.name == name)


def launch(services: Services, client: WebClient, user_id: str, view: dict[str, Any], choices: Choices) -> None:
    """Run the typed command's path as `user_id`, and answer them where they typed `/finetune launch`."""
    actor = slack_actor(services.settings, user_id)
    inv = Invocation(services=services, actor=actor, request_key=f"slack:{view.get('id')}")
    outcome = run_command(SLACK, launch_argv(choices), inv, prog=SLASH)
    try:
        metadata = json.loads(str(view.get("private_metadata") or ""))
    except ValueError:
        metadata = {}
    metadata = metadata if isinstance(metadata, dict) else {}
    channel = metadata.get("channel")
    answer(
        client, render_outcome(outcome), user_id=user_id, channel=channel if isinstance(channel, str) else None,
        response_url=response_url_of(metadata.get("response_url")),
    )  # fmt: skip


def _dig(value: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
