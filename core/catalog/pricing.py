"""What a fine-tuning job will cost, from the catalog's dated prices.

How each provider bills training:

- OpenAI (and Azure OpenAI) bills *trained tokens*: the tokens in the training
  file times `n_epochs` (the finished job reports them as `trained_tokens`).
- Bedrock charges for every token processed: the tokens in the training data
  times `epochCount`, at a price published per 1,000 tokens; storing the custom
  model is billed monthly on top.
- Local LoRA training has no provider bill; the cost is your own compute.

So `billed_tokens = training_tokens × epochs` for all three. Prices come from the
catalog the caller passes (the Services' catalog, with the user's
FINETUNE_CATALOG_FILE overrides applied) and from nowhere else.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel, Field

from core.catalog.models import Catalog, ModelInfo
from core.errors import InvalidInput
from core.vocabulary import CatalogProvider

MAX_EPOCHS = 50  # the largest epoch count any catalog provider documents (OpenAI n_epochs)
USD_STEP = Decimal("0.0001")  # estimates are rounded half-up to 1/100 of a cent

BILLING_RULES: dict[CatalogProvider, str] = {
    CatalogProvider.OPENAI: "OpenAI bills trained tokens: the tokens in the training file times n_epochs.",
    CatalogProvider.BEDROCK: "Bedrock charges for every token processed: the tokens in the training data times epochCount.",
    CatalogProvider.LOCAL: "Local LoRA training has no provider bill; the cost is your own compute time.",
}


class CostEstimate(BaseModel):
    base_model: str = Field(description="catalog id of the base model")
    provider: str
    training_tokens: int = Field(description="tokens in the training file, one epoch")
    epochs: int
    billed_tokens: int = Field(description="training_tokens × epochs, what the provider bills")
    usd_per_1m_tokens: float | None = Field(description="training price; None when the catalog has none")
    usd: float | None = Field(description="estimated training cost in USD; None when the price is unknown")
    exact_tokens: bool = Field(description="whether training_tokens came from the model's own tokenizer")
    price_as_of: str = Field(description="date the price was checked")
    notes: list[str] = Field(default_factory=list)


def estimate_cost(
    *,
    base_model: str,
    training_tokens: int,
    epochs: int,
    exact_tokens: bool = True,
    catalog: Catalog,
) -> CostEstimate:
    """Estimate the training bill for `training_tokens` (one epoch) trained `epochs` times."""
    _check_whole_number("training_tokens", training_tokens, low=0, hint=_TOKENS_HINT)
    _check_whole_number("epochs", epochs, low=1, high=MAX_EPOCHS, hint=_EPOCHS_HINT)
    info = catalog.require(base_model)
    billed = training_tokens * epochs
    price = info.training_usd_per_1m_tokens
    return CostEstimate(
        base_model=info.id,
        provider=info.provider,
        training_tokens=training_tokens,
        epochs=epochs,
        billed_tokens=billed,
        usd_per_1m_tokens=price,
        usd=None if price is None else usd_for(billed, price),
        exact_tokens=exact_tokens,
        price_as_of=info.price_as_of or catalog.as_of,
        notes=_notes(info, epochs=epochs, exact_tokens=exact_tokens),
    )


def usd_for(billed_tokens: int, usd_per_1m_tokens: float) -> float:
    """Exact decimal arithmetic, rounded half-up to 1/100 of a cent."""
    usd = Decimal(billed_tokens) * Decimal(str(usd_per_1m_tokens)) / Decimal(1_000_000)
    return float(usd.quantize(USD_STEP, rounding=ROUND_HALF_UP))


_TOKENS_HINT = "Pass the number of tokens in the training file for one epoch (0 for an empty file)."
_EPOCHS_HINT = f"Pass the epoch count the job will run, 1 to {MAX_EPOCHS} (Bedrock allows at most 10, Nova 5)."


def _check_whole_number(name: str, value: object, *, low: int, high: int | None = None, hint: str) -> None:
    allowed = f"{low} to {high}" if high is not None else f"{low} or more"
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"`{name}` must be a whole number ({allowed}), got {value!r}.", hint=hint)
    if value < low or (high is not None and value > high):
        raise InvalidInput(f"`{name}` must be {allowed}, got {value}.", hint=hint)


def _notes(info: ModelInfo, *, epochs: int, exact_tokens: bool) -> list[str]:
    notes = [BILLING_RULES[info.provider]]
    if info.training_usd_per_1m_tokens is None:
        notes.append(
            f"No training price is recorded for {info.id}; set training_usd_per_1k_tokens "
            "(or training_usd_per_1m_tokens) for it in FINETUNE_CATALOG_FILE."
        )
    elif info.price_unit == "1K tokens":
        notes.append(
            f"Published as ${info.training_usd_per_1k_tokens:g} per 1,000 tokens "
            f"(${info.training_usd_per_1m_tokens:g} per 1M)."
        )
    if not exact_tokens:
        notes.append(
            "training_tokens is an estimate, not the model's own tokenizer count; the bill follows the provider's."
        )
    epoch_range = info.hyperparameters.get("epochs")
    if epoch_range is not None and not epoch_range.contains(epochs):
        notes.append(
            f"epochs={epochs} is outside {info.id}'s documented {epoch_range.describe()}; the job would be rejected."
        )
    if info.storage_usd_per_month:
        notes.append(
            f"Storing the custom model costs ${info.storage_usd_per_month:g} per month; inference is billed separately."
        )
    if info.new_jobs_stop_on is not None:
        stop = info.new_jobs_stop_on.isoformat()
        notes.append(f"The provider accepts no new fine-tuning jobs for {info.id} from {stop}.")
    if info.status == "legacy":
        notes.append(f"{info.id} is legacy; prefer a live model for new work.")
    return notes
