"""What a chat answer cost: its token usage times the catalog's inference prices, and never a guess.

`price_for(catalog, target)` finds the rates per 1M input and output tokens:

- a local model costs nothing;
- a base model (`openai:gpt-4.1-mini`) takes its `inference` entry in the
  catalog (by id or alias), and a Bedrock model whose entry is missing the
  per-token prices in its catalog `deployment` (Bedrock's on-demand list
  prices);
- a registered version takes the fine-tuned rates of its base model's entry;
  a Bedrock version the on-demand prices of its base model's deployment, and
  none when that base model is served through provisioned throughput (billed
  per model unit and hour, not per token).

When nothing is found it answers `Unpriced` with the reason and the entry to
add to FINETUNE_CATALOG_FILE; the answer's `cost_usd` is then None and its
`cost_note` that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal

from core.catalog.models import Catalog, InferencePrice, PromptTier
from core.inference.base import ChatResult, Target
from core.vocabulary import Provider

USD_STEP = Decimal("0.000000001")  # a nano-dollar: one short answer can cost well under a cent


@dataclass(frozen=True, slots=True)
class TokenRates:
    """US dollars per 1M input and output tokens; other rates for a whole request above a prompt length."""

    input_usd_per_1m: float
    output_usd_per_1m: float
    long_prompt: PromptTier | None = None

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        rate_in, rate_out = self.input_usd_per_1m, self.output_usd_per_1m
        tier = self.long_prompt
        if tier is not None and input_tokens > tier.above_input_tokens:
            rate_in, rate_out = tier.input_usd_per_1m_tokens, tier.output_usd_per_1m_tokens
        usd = Decimal(input_tokens) * Decimal(str(rate_in)) + Decimal(output_tokens) * Decimal(str(rate_out))
        return float((usd / Decimal(1_000_000)).quantize(USD_STEP, rounding=ROUND_HALF_UP))


FREE = TokenRates(0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Unpriced:
    """Why an answer's cost cannot be told."""

    reason: str


def price_for(catalog: Catalog, target: Target) -> TokenRates | Unpriced:
    """The rates `target`'s answers are billed at, or why they are not known."""
    if target.provider == Provider.LOCAL:
        return FREE
    if target.version_id is not None:
        return _fine_tuned(catalog, target)
    entry = catalog.inference_price(target.provider, target.model)
    if entry is not None and entry.input_usd_per_1m_tokens is not None:
        return _rates(entry)
    if target.provider == Provider.BEDROCK:
        found = _bedrock_on_demand(catalog, target.model, target.name)
        if isinstance(found, TokenRates):
            return found
    return Unpriced(
        f"the catalog has no inference price for {target.provider}:{target.model}; "
        + _how_to_price(f"{target.provider}:{target.model}", "input_usd_per_1m_tokens", entry)
    )


def priced(result: ChatResult, target: Target, catalog: Catalog) -> ChatResult:
    """`result` with its cost; a result whose backend already said why its cost is unknown stays as it is."""
    if target.provider == Provider.LOCAL or result.cost_note is not None:
        return result
    price = price_for(catalog, target)
    if isinstance(price, Unpriced):
        return replace(result, cost_usd=None, cost_note=price.reason)
    return replace(result, cost_usd=price.cost(result.input_tokens, result.output_tokens), cost_note=None)


def _fine_tuned(catalog: Catalog, target: Target) -> TokenRates | Unpriced:
    base = target.base_model
    if not base:
        return Unpriced(f"{target.name} records no base model, so the catalog cannot price its answers.")
    entry = catalog.inference_price(target.provider, base)
    if entry is not None and entry.fine_tuned_input_usd_per_1m_tokens is not None:
        assert entry.fine_tuned_output_usd_per_1m_tokens is not None  # InferencePrice keeps the two together
        return TokenRates(entry.fine_tuned_input_usd_per_1m_tokens, entry.fine_tuned_output_usd_per_1m_tokens)
    if target.provider == Provider.BEDROCK:
        return _bedrock_on_demand(catalog, base, target.name)
    return Unpriced(
        f"the catalog has no inference price for models fine-tuned from {target.provider}:{base} ({target.name}); "
        + _how_to_price(f"{target.provider}:{base}", "fine_tuned_input_usd_per_1m_tokens", entry)
    )


def _bedrock_on_demand(catalog: Catalog, model: str, name: str) -> TokenRates | Unpriced:
    info = catalog.exact(model)
    deployment = info.deployment if info is not None else None
    if deployment is None:
        return Unpriced(
            f"the catalog has no inference price for bedrock:{model} ({name}); "
            + _how_to_price(f"bedrock:{model}", "input_usd_per_1m_tokens", None)
        )
    if not deployment.on_demand:
        return Unpriced(
            f"{name} is served through provisioned throughput, billed per model unit and hour rather than per token."
        )
    rates = (deployment.inference_usd_per_1m_input_tokens, deployment.inference_usd_per_1m_output_tokens)
    if rates[0] is None or rates[1] is None:
        return Unpriced(
            f"the catalog has no on-demand price for bedrock:{model} ({name}); set deployment."
            "inference_usd_per_1m_input_tokens and inference_usd_per_1m_output_tokens for it in FINETUNE_CATALOG_FILE."
        )
    return TokenRates(rates[0], rates[1])


def _rates(entry: InferencePrice) -> TokenRates:
    assert entry.input_usd_per_1m_tokens is not None and entry.output_usd_per_1m_tokens is not None
    return TokenRates(entry.input_usd_per_1m_tokens, entry.output_usd_per_1m_tokens, entry.long_prompt)


def _how_to_price(key: str, field: str, entry: InferencePrice | None) -> str:
    output = field.replace("input", "output")
    known = f" ({entry.notes})" if entry is not None and entry.notes else ""
    return (
        f'set "{field}" and "{output}" for "{key}" under "inference" in FINETUNE_CATALOG_FILE '
        f'(with "as_of" and "sources"; 0 for a server of your own){known}.'
    )
