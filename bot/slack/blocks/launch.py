"""The launch wizard: `/finetune launch` alone opens a modal that builds `launch VERSION PROVIDER BASE_MODEL`.

Pure builders from a `WizardState` (what the core said about the choices so
far) to the modal: a dataset version, a method, a provider, a base model that
provider trains with that method, the hyperparameters suggested from the
data (each editable), and the cost estimate with what Launch will do. Every
select dispatches its choice (`dispatch_action`), so the listener can update
the modal as choices change; so does Epochs, on Enter, since the estimate
follows it.

A hyperparameter input's block id carries a token of the choices it was
suggested for: Slack keeps what a person typed in an input whose block id
stays the same across updates, so a new base model (a new token) shows its own
suggestions while a changed epoch count stays as typed.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.slack.blocks.kit import Block, context, section
from core.catalog import CostEstimate

LAUNCH_VIEW = "launch_wizard"  # the modal's callback_id
TITLE = "Launch fine-tuning"
VERSION_ACTION = "launch_version"  # block and action ids of the selects
METHOD_ACTION = "launch_method"
PROVIDER_ACTION = "launch_provider"
MODEL_ACTION = "launch_model"
HYPERPARAMETER_PREFIX = "launch_hp_"  # + name: the action id; + ":" + token: the block id
MAX_OPTIONS = 100  # options a Slack select holds
MAX_OPTION_TEXT = 75  # characters of an option's text or description
MAX_OPTION_VALUE = 150  # characters of an option's value
MAX_RATIONALE = 6  # reasons shown under the hyperparameters

HYPERPARAMETER_LABELS: dict[str, str] = {
    "epochs": "Epochs",
    "batch_size": "Batch size",
    "learning_rate": "Learning rate",
    "learning_rate_multiplier": "Learning-rate multiplier",
    "warmup_steps": "Warm-up steps",
}
"""The hyperparameters the wizard asks for, in order: those the launch command takes as options."""


def hyperparameter_action(name: str) -> str:
    return HYPERPARAMETER_PREFIX + name


def hyperparameter_block(name: str, token: str) -> str:
    return f"{HYPERPARAMETER_PREFIX}{name}:{token}"


@dataclass(frozen=True)
class Choice:
    """One option of a select: its value, and what a person reads."""

    value: str
    text: str
    description: str | None = None


@dataclass(frozen=True)
class HyperparameterField:
    name: str
    value: str  # as shown ('' = the suggestion)
    suggested: str
    allowed: str  # the documented range, in words
    integer: bool


@dataclass(frozen=True)
class WizardState:
    """The choices made so far and what the core says about them."""

    versions: tuple[str, ...]
    methods: tuple[str, ...]
    version: str | None = None
    version_facts: str | None = None
    method: str = "supervised"
    providers: tuple[str, ...] = ()
    provider: str | None = None
    models: tuple[Choice, ...] = ()
    model: str | None = None
    token: str = ""
    fields: tuple[HyperparameterField, ...] = ()
    rationale: tuple[str, ...] = ()
    estimate: CostEstimate | None = None
    auto_approve_usd: float = 0.0
    problem: str | None = None


def _plain(text: str) -> Block:
    return {"type": "plain_text", "text": text, "emoji": True}


def _option(choice: Choice) -> Block:
    option: Block = {"text": _plain(choice.text[:MAX_OPTION_TEXT]), "value": choice.value}
    if choice.description:
        option["description"] = _plain(choice.description[:MAX_OPTION_TEXT])
    return option


def _select(block_id: str, label: str, choices: list[Choice], chosen: str | None, *, hint: str | None = None) -> Block:
    options = [choice for choice in choices if len(choice.value) <= MAX_OPTION_VALUE][:MAX_OPTIONS]
    element: Block = {
        "type": "static_select", "action_id": block_id, "placeholder": _plain(f"Choose a {label.lower()}"),
        "options": [_option(choice) for choice in options],
    }  # fmt: skip
    initial = next((choice for choice in options if choice.value == chosen), None)
    if initial is not None:
        element["initial_option"] = _option(initial)
    block: Block = {
        "type": "input", "block_id": block_id, "dispatch_action": True, "label": _plain(label), "element": element,
    }  # fmt: skip
    if hint:
        block["hint"] = _plain(hint[:2000])
    return block


def _hyperparameter(field: HyperparameterField, token: str) -> Block:
    element: Block = {
        "type": "number_input", "action_id": hyperparameter_action(field.name), "is_decimal_allowed": not field.integer,
    }  # fmt: skip
    if field.value:
        element["initial_value"] = field.value
    block: Block = {
        "type": "input", "block_id": hyperparameter_block(field.name, token), "optional": True,
        "label": _plain(HYPERPARAMETER_LABELS[field.name]), "element": element,
        "hint": _plain(f"Suggested {field.suggested}; allowed {field.allowed}. Empty: the suggestion."),
    }  # fmt: skip
    if field.name == "epochs":  # the estimate follows the epoch count
        block["dispatch_action"] = True
        element["dispatch_action_config"] = {"trigger_actions_on": ["on_enter_pressed"]}
    return block


def estimate_text(estimate: CostEstimate, *, auto_approve_usd: float) -> str:
    """The estimate with the billing formula behind it, and what Launch will do about it."""
    tokens = "exact token counts" if estimate.exact_tokens else "estimated token counts"
    formula = (
        f"{estimate.billed_tokens:,} billed tokens = {estimate.training_tokens:,} training tokens × "
        f"{estimate.epochs} epoch{'s' if estimate.epochs != 1 else ''}"
    )
    if estimate.usd is None:
        return (
            f"*Estimated cost:* unknown: the catalog has no training price for {estimate.base_model} "
            f"({formula}; {tokens}).\n:raised_hand: A launch of unknown cost waits for an approver."
        )
    price = "no bill" if not estimate.usd_per_1m_tokens else f"${estimate.usd_per_1m_tokens:,.2f} / 1M tokens"
    text = f"*Estimated cost:* ${estimate.usd:,.2f} ({formula} at {price}, price of {estimate.price_as_of}; {tokens})."
    limit = f"FINETUNE_AUTO_APPROVE_USD (${auto_approve_usd:,.2f})"
    if estimate.usd > auto_approve_usd:
        return text + f"\n:raised_hand: Above {limit}: the job will wait for an approver."
    return text + f"\nWithin {limit}: it starts at once, unless it would pass a spend limit."


def wizard_view(state: WizardState, *, private_metadata: str) -> Block:
    """The modal for the choices so far: each next select appears once the one before it is chosen."""
    versions = [Choice(version, version) for version in state.versions]
    blocks: list[Block] = [
        _select(
            VERSION_ACTION, "Dataset version", versions, state.version, hint=state.version_facts or "Newest first."
        ),
        _select(METHOD_ACTION, "Method", [Choice(m, m) for m in state.methods], state.method),
    ]
    if state.version:
        providers = [Choice(p, p) for p in state.providers]
        blocks.append(_select(PROVIDER_ACTION, "Provider", providers, state.provider))
    if state.version and state.provider:
        if state.models:
            blocks.append(_select(MODEL_ACTION, "Base model", list(state.models), state.model))
        else:
            blocks.append(context(f"No base model that {state.provider} trains offers {state.method} training."))
    if state.fields:
        blocks.append(section("*Hyperparameters*, suggested from the data:"))
        blocks += [_hyperparameter(field, state.token) for field in state.fields]
        if state.rationale:
            blocks.append(context(" ".join(state.rationale[:MAX_RATIONALE])))
    if state.estimate is not None:
        blocks.append(section(estimate_text(state.estimate, auto_approve_usd=state.auto_approve_usd)))
    if state.problem:
        blocks.append(section(f":warning: {state.problem}"))
    return {
        "type": "modal",
        "callback_id": LAUNCH_VIEW,
        "private_metadata": private_metadata[:3000],
        "title": _plain(TITLE),
        "submit": _plain("Launch"),
        "close": _plain("Cancel"),
        "blocks": blocks,
    }


def loading_view() -> Block:
    """Shown at once (a trigger expires in 3 seconds) while the dataset versions are read."""
    return {
        "type": "modal", "callback_id": LAUNCH_VIEW, "title": _plain(TITLE), "close": _plain("Close"),
        "blocks": [section(":hourglass_flowing_sand: Reading the dataset versions...")],
    }  # fmt: skip


def problem_view(text: str) -> Block:
    """No wizard: why, and what to do instead."""
    return {
        "type": "modal", "callback_id": LAUNCH_VIEW, "title": _plain(TITLE), "close": _plain("Close"),
        "blocks": [section(text)],
    }  # fmt: skip
