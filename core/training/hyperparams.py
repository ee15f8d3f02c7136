"""Hyperparameters to start a fine-tuning job with, and checks for user-chosen ones.

`suggest_hyperparameters` reads the dataset's size and token statistics:
small sets get more epochs, large ones fewer; the batch grows with the set;
learning rates stay conservative on large models; warm-up is a small share of
the steps. Every value is then clamped into the model's documented range, and
each choice comes with one sentence saying why.

`check_hyperparameters` returns a list of problems (empty when all is well) so
that each face can show them its own way; it does not raise for bad values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal

from pydantic import BaseModel, Field

from core.catalog.models import METHODS, Catalog, HyperparameterName, ModelInfo, ParamRange
from core.errors import InvalidInput

METHOD_ONLY = {"beta": "dpo"}  # hyperparameters that exist for one training method only
SMALL_SET_EXAMPLES_SEEN = 300  # small sets get enough passes to show the model about this many examples
TOKENS_PER_JOB_CAP = 50_000_000  # beyond this many processed tokens, extra epochs buy little
LOCAL_TOKENS_PER_STEP = 16_384  # keeps a local LoRA batch inside a single consumer GPU
LONG_EXAMPLE_TOKENS = 2_000
WARMUP_SHARE = 0.05


class HyperparameterSuggestion(BaseModel):
    base_model: str
    provider: str
    method: str = Field(description="supervised or dpo")
    epochs: int
    batch_size: int | None = Field(description="None where the provider picks it (Bedrock Nova)")
    learning_rate: float | None
    learning_rate_multiplier: float | None
    warmup_steps: int | None
    extra: dict[str, float | int] = Field(default_factory=dict, description="lora_r, lora_alpha, beta, early stopping")
    provider_values: dict[str, str] = Field(description="the same values under the provider's parameter names")
    rationale: list[str] = Field(description="one sentence per choice")
    ranges: dict[str, ParamRange] = Field(description="the documented ranges the values were clamped into")


def suggest_hyperparameters(
    *,
    base_model: str,
    n_train: int,
    mean_tokens: float,
    method: str = "supervised",
    catalog: Catalog,
) -> HyperparameterSuggestion:
    """Starting hyperparameters for `n_train` examples of `mean_tokens` tokens on `base_model`."""
    _check_n_train(n_train)
    _check_mean_tokens(mean_tokens)
    info = catalog.require(base_model)
    _check_method(info, method)
    ranges: dict[str, ParamRange] = {name: rng for name, rng in info.hyperparameters.items() if _applies(name, method)}
    plan = _Plan(info, ranges, n_train, float(mean_tokens), method)

    epochs = plan.fit("epochs", *_epochs(n_train, mean_tokens))
    batch = plan.fit("batch_size", *_batch_size(info, n_train, mean_tokens)) if "batch_size" in ranges else None
    if batch is None:
        plan.rationale.append(f"{_provider_label(info)} exposes no batch size for {info.id}; the service chooses it.")
    values = {"epochs": epochs, "batch_size": batch}
    if "learning_rate" in ranges:
        values["learning_rate"] = plan.fit("learning_rate", *_learning_rate(info, ranges["learning_rate"]))
    if "learning_rate_multiplier" in ranges:
        raw = _lr_multiplier(info, ranges["learning_rate_multiplier"], batch)
        values["learning_rate_multiplier"] = plan.fit("learning_rate_multiplier", *raw)
    if "warmup_steps" in ranges:
        values["warmup_steps"] = plan.fit("warmup_steps", *_warmup(info, n_train, batch, epochs))
    extra = _extras(plan)
    plan.warn_about_length()
    chosen = {**{k: v for k, v in values.items() if v is not None}, **extra}
    return HyperparameterSuggestion(
        base_model=info.id,
        provider=info.provider,
        method=method,
        epochs=int(epochs),
        batch_size=_int_or_none(batch),
        learning_rate=values.get("learning_rate"),
        learning_rate_multiplier=values.get("learning_rate_multiplier"),
        warmup_steps=_int_or_none(values.get("warmup_steps")),
        extra=extra,
        provider_values={info.provider_name(name): _as_text(value) for name, value in chosen.items()},
        rationale=plan.rationale,
        ranges=ranges,
    )


def check_hyperparameters(
    base_model: str,
    values: Mapping[str, object],
    *,
    method: str = "supervised",
    catalog: Catalog,
) -> list[str]:
    """Problems with user-chosen `values` (by finetune-ops or provider name); empty when all are allowed.

    Each problem names the parameter, the value given and the allowed range. An
    unknown base model or method raises InvalidInput: that is a wrong argument,
    not a wrong value.
    """
    info = catalog.require(base_model)
    _check_method(info, method)
    by_name: dict[str, HyperparameterName] = {name: name for name in info.hyperparameters}
    by_name.update({provider: name for name, provider in info.provider_hyperparameter_names.items()})
    problems = []
    for key, value in values.items():
        name = by_name.get(key)
        if name is None:
            known = ", ".join(sorted(set(by_name)))
            problems.append(f"{key}={value!r}: {info.id} has no such hyperparameter; known: {known}.")
        elif not _applies(name, method):
            problems.append(f"{key}={value!r}: applies to method {METHOD_ONLY[name]!r} only, not {method!r}.")
        else:
            problem = _value_problem(info, key, value, info.hyperparameters[name])
            if problem:
                problems.append(problem)
    return problems


class _Plan:
    """The inputs of one suggestion and the sentences explaining it."""

    def __init__(self, info: ModelInfo, ranges: dict[str, ParamRange], n: int, mean: float, method: str) -> None:
        self.info, self.ranges, self.n, self.mean, self.method = info, ranges, n, mean, method
        self.rationale: list[str] = []

    def fit(self, name: str, raw: float, why: str) -> float | int:
        """Clamp `raw` into the documented range and record why it was chosen (and moved)."""
        rng = self.ranges.get(name)
        value = _tidy(raw, rng)
        if rng is not None and rng.min == rng.max:
            value = _tidy(rng.min, rng)
            why = f"{_provider_label(self.info)} fixes {name} at {_shown(value)} for {self.info.id}."
        elif rng is not None and not rng.contains(value):
            clamped = _tidy(rng.clamp(value), rng)
            why += f" {_shown(value)} is outside the documented {rng.describe()}, so {name} is {_shown(clamped)}."
            value = clamped
        self.rationale.append(why)
        return value

    def warn_about_length(self) -> None:
        limit = self.info.max_example_tokens
        if limit and self.mean > limit:
            self.rationale.append(
                f"The mean example ({self.mean:.0f} tokens) exceeds {self.info.id}'s {limit}-token limit per "
                "example; shorten or drop long examples before training."
            )


def _epochs(n: int, mean_tokens: float) -> tuple[float, str]:
    if n < 100:
        raw = min(10, math.ceil(SMALL_SET_EXAMPLES_SEEN / n))
        why = f"{n} examples is a small set, so {raw} epochs let the model see about {n * raw} examples."
    elif n < 5_000:
        raw, why = 3, f"{n} examples is a mid-sized set; 3 epochs is the usual starting point."
    elif n < 50_000:
        raw, why = 2, f"{n} examples is a large set; 2 epochs avoid memorising it."
    else:
        raw, why = 1, f"{n} examples is a very large set; one pass is enough."
    total = n * mean_tokens
    if raw > 1 and total * raw > TOKENS_PER_JOB_CAP:
        raw = max(1, math.floor(TOKENS_PER_JOB_CAP / total))
        why += f" With about {total:,.0f} tokens per epoch, epochs are cut to {raw} to keep the job near 50M tokens."
    return raw, why


def _batch_size(info: ModelInfo, n: int, mean_tokens: float) -> tuple[float, str]:
    if info.provider == "local":
        default = int(info.hyperparameters["batch_size"].default or 8)
        fits = max(1, LOCAL_TOKENS_PER_STEP // max(1, math.ceil(mean_tokens)))
        raw = min(default, fits, n)
        return raw, (
            f"Batch {raw}: the local default {default}, at most {fits} examples of ~{mean_tokens:.0f} tokens "
            f"to stay near {LOCAL_TOKENS_PER_STEP} tokens per step, and no more than the {n} examples."
        )
    raw = _power_of_two_floor(max(1.0, n * 0.002))
    why = f"Batch {raw} is about 0.2% of {n} examples, so the number of updates grows with the set."
    if mean_tokens > LONG_EXAMPLE_TOKENS and raw > 1:
        raw //= 2
        why += f" Halved to {raw} because examples average {mean_tokens:.0f} tokens."
    return raw, why


def _size_factor(info: ModelInfo) -> tuple[float, str]:
    if info.size_class == "large":
        return 0.5, " Halved because large models move further per step."
    return 1.0, ""


def _learning_rate(info: ModelInfo, rng: ParamRange) -> tuple[float, str]:
    base = rng.default if rng.default is not None else math.sqrt(rng.min * rng.max)
    factor, why = _size_factor(info)
    return base * factor, f"Learning rate starts from the documented default {base:g}.{why}"


def _lr_multiplier(info: ModelInfo, rng: ParamRange, batch: float | None) -> tuple[float, str]:
    factor, why = _size_factor(info)
    if rng.default is not None:
        why = f"Learning-rate multiplier starts from the documented default {rng.default:g}.{why}"
        return rng.default * factor, why
    band = 0.05 if (batch or 1) < 8 else 0.1 if (batch or 1) < 64 else 0.2
    return band * factor, (
        f"Learning-rate multiplier {band:g} for batch {_shown(batch or 1)}: OpenAI has documented its automatic "
        f"choice as 0.05, 0.1 or 0.2, larger for larger batches.{why}"
    )


def _warmup(info: ModelInfo, n: int, batch: float | None, epochs: float) -> tuple[float, str]:
    if info.warmup_divisor:
        raw = round(n / info.warmup_divisor)
        return raw, f"Warm-up follows the provider's rule for {info.id}: {n} examples / {info.warmup_divisor}."
    steps = math.ceil(n / (batch or 1)) * int(epochs)
    raw = min(math.ceil(WARMUP_SHARE * steps), max(0, steps - 1))
    return raw, f"Warm-up is about {WARMUP_SHARE:.0%} of the {steps} optimiser steps."


def _extras(plan: _Plan) -> dict[str, float | int]:
    extra: dict[str, float | int] = {}
    if "lora_r" in plan.ranges:
        total = plan.n * plan.mean
        r = 8 if total < 200_000 else 16 if total < 5_000_000 else 32
        extra["lora_r"] = plan.fit("lora_r", r, f"LoRA rank {r} for about {total:,.0f} training tokens per epoch.")
    if "lora_alpha" in plan.ranges:
        alpha = 2 * extra.get("lora_r", 16)
        extra["lora_alpha"] = plan.fit("lora_alpha", alpha, f"LoRA alpha {alpha:g}, twice the rank, a common scaling.")
    if "beta" in plan.ranges:
        few = plan.n < 200
        beta = 0.2 if few else 0.1
        why = "a higher beta keeps a small preference set close to the base model" if few else "the usual DPO value"
        extra["beta"] = plan.fit("beta", beta, f"DPO beta {beta:g}: {why}.")
    for name in ("early_stopping_threshold", "early_stopping_patience"):
        rng = plan.ranges.get(name)
        if rng is not None and rng.default is not None:
            why = f"{name} keeps its documented default {rng.default:g}; it acts only with a validation set."
            extra[name] = plan.fit(name, rng.default, why)
    for name, why in LOCAL_DEFAULTS.items():
        rng = plan.ranges.get(name)
        if rng is not None and rng.default is not None:
            extra[name] = plan.fit(name, rng.default, why.format(_shown(_tidy(rng.default, rng))))
    return extra


# The local trainer's memory and output switches: kept at their defaults, each with what changing it does.
LOCAL_DEFAULTS = {
    "gradient_accumulation_steps": "Gradient accumulation {}: one optimiser step per batch; raise it to train on a "
    "larger batch than fits in memory.",
    "gradient_checkpointing": "Gradient checkpointing {} (off): faster; 1 saves memory on long examples.",
    "merge": "merge {}: only the adapter is saved; 1 also saves the base model with the adapter merged in.",
}


def _value_problem(info: ModelInfo, key: str, value: object, rng: ParamRange) -> str | None:
    if info.provider == "openai" and value == "auto":
        return None
    number = _as_number(value)
    if number is None:
        return f"{key}={value!r}: not a number; allowed {rng.describe()}."
    if rng.integer and not number.is_integer():
        return f"{key}={value!r}: must be a whole number from {rng.describe()}."
    if not rng.contains(number):
        return f"{key}={value!r}: outside the allowed range {rng.describe()} for {info.id}."
    return None


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _check_n_train(n_train: object) -> None:
    if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1:
        raise InvalidInput(
            f"`n_train` must be a whole number of at least 1, got {n_train!r}.",
            hint="Pass the number of training examples in the dataset version.",
        )


def _check_mean_tokens(mean_tokens: object) -> None:
    number = _as_number(mean_tokens) if isinstance(mean_tokens, int | float) else None
    if number is None or number <= 0:
        raise InvalidInput(
            f"`mean_tokens` must be a positive number, got {mean_tokens!r}.",
            hint="Pass the average tokens per training example (total tokens / examples).",
        )


def _check_method(info: ModelInfo, method: str) -> None:
    if method not in METHODS:
        raise InvalidInput(
            f"`method` must be one of {', '.join(METHODS)}, got {method!r}.", hint="Use 'supervised' or 'dpo'."
        )
    if method not in info.methods:
        raise InvalidInput(
            f"{info.id} does not support method {method!r}.",
            hint=f"Use method {info.methods[0].value!r}, or a model that lists {method!r} in the catalog.",
            model=info.id,
        )


def _applies(name: str, method: str) -> bool:
    return METHOD_ONLY.get(name, method) == method


def _provider_label(info: ModelInfo) -> str:
    return {"openai": "OpenAI", "bedrock": "Bedrock", "local": "The local trainer"}[info.provider]


def _power_of_two_floor(value: float) -> int:
    return 1 << math.floor(math.log2(value))


def _tidy(value: float, rng: ParamRange | None) -> float | int:
    """Whole numbers for integer ranges; three significant digits otherwise."""
    if rng is not None and rng.integer:
        return round(value)
    return float(f"{value:.3g}")


def _shown(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _int_or_none(value: float | int | None) -> int | None:
    return None if value is None else int(value)


def _as_text(value: float | int) -> str:
    """Plain decimal text, as Bedrock's string-valued hyperParameters expect (1e-05 -> "0.00001")."""
    if isinstance(value, int):
        return str(value)
    return format(Decimal(repr(value)), "f")
