"""The export targets, each described once: one registry entry per `ExportTarget`.

An entry says what the target is for, which catalog family of models trains on
it (validation refuses a model of another family), the default model (its
tokenizer and limits apply when no model is given), the converter that builds
its rows (`core.data.converters`) and the rules that check them
(`core.data.rules`). Token counts follow the model's own catalog entry, so no
target carries a tokenizer of its own.

A new target is a member of `core.vocabulary.ExportTarget`, a converter, a rules
class and an entry here; the contract test fails until all four exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.data import converters, rules
from core.data.converters import Converter
from core.data.rules import TargetRules
from core.errors import InvalidInput
from core.vocabulary import ExportTarget


@dataclass(frozen=True)
class TargetSpec:
    """Everything finetune-ops knows about one export target."""

    name: ExportTarget
    description: str
    family: str  # the catalog's ModelInfo.family of the models this target trains
    default_model: str  # a catalog id of that family
    converter: Converter
    rules: TargetRules


TARGETS: dict[ExportTarget, TargetSpec] = {
    spec.name: spec
    for spec in (
        TargetSpec(
            ExportTarget.OPENAI,
            "OpenAI / Azure OpenAI chat supervised fine-tuning",
            family="openai",
            default_model="gpt-4o-mini-2024-07-18",
            converter=converters.openai_row,
            rules=rules.ChatRules(),
        ),
        TargetSpec(
            ExportTarget.OPENAI_DPO,
            "OpenAI / Azure OpenAI direct preference optimization",
            family="openai",
            default_model="gpt-4.1-nano-2025-04-14",  # the smallest model whose fine-tuning takes DPO
            converter=converters.openai_dpo_row,
            rules=rules.OpenAIDpoRules(),
        ),
        TargetSpec(
            ExportTarget.BEDROCK_NOVA,
            "Amazon Nova on Bedrock (bedrock-conversation-2024)",
            family="nova",
            default_model="amazon.nova-micro-v1:0",
            converter=converters.bedrock_nova_row,
            rules=rules.NovaRules(),
        ),
        TargetSpec(
            ExportTarget.BEDROCK_CLAUDE,
            "Claude 3 Haiku on Bedrock",
            family="claude",
            default_model="anthropic.claude-3-haiku-20240307-v1:0",
            converter=converters.bedrock_claude_row,
            rules=rules.ClaudeRules(),
        ),
        TargetSpec(
            ExportTarget.BEDROCK_LLAMA,
            "Meta Llama on Bedrock (prompt/completion)",
            family="llama",
            default_model="meta.llama3-1-8b-instruct-v1:0",
            converter=converters.bedrock_llama_row,
            rules=rules.LlamaRules(),
        ),
        TargetSpec(
            ExportTarget.HF_CHAT,
            "Local LoRA training with a Hugging Face chat template",
            family="hf",
            default_model="HuggingFaceTB/SmolLM2-135M-Instruct",
            converter=converters.hf_chat_row,
            rules=rules.HfChatRules(),
        ),
    )
}


def require_target(name: str) -> TargetSpec:
    """The entry of export target `name`; InvalidInput naming the valid targets otherwise."""
    try:
        return TARGETS[ExportTarget(name)]
    except ValueError:
        valid = ", ".join(TARGETS)
        raise InvalidInput(f"unknown export target {name!r}.", hint=f"Use one of: {valid}.", target=name) from None


def targets_of_family(family: str) -> list[ExportTarget]:
    """The targets that models of catalog family `family` train on."""
    return [spec.name for spec in TARGETS.values() if spec.family == family]
