"""The model catalog: what each base model accepts and costs to fine-tune.

Data lives in `core/catalog/models.json` (dated: `as_of`), overridable entry by entry
with `FINETUNE_CATALOG_FILE`. Lookups are by exact id first, then by alias, then by
the longest catalog id that prefixes the given one (so `gpt-4o-mini-2024-07-18`
and Bedrock's customization id `amazon.nova-micro-v1:0:128k` both resolve).

`load_catalog` reads both files; the composition root calls it once
(`core.services.build_services`) and hands the catalog down, so no other module
loads one of its own. Providers, export targets and methods are the
`core.vocabulary` enums, and the tuples below are derived from them.

Hyperparameter ranges are keyed by finetune-ops' own names (`epochs`,
`batch_size`, `learning_rate`, ...); `provider_hyperparameter_names` maps them to
the names each provider's API expects (`n_epochs`, `epochCount`, ...).

Prices live only in the data file. OpenAI publishes them per 1M tokens, Bedrock
per 1,000: an entry gives one of `training_usd_per_1m_tokens` or
`training_usd_per_1k_tokens` and the other is derived, so
`training_usd_per_1m_tokens` is always the one to compute with.

What answering costs lives in the data file's `inference` section, keyed
`provider:model` as callers name base models (`anthropic:claude-sonnet-5-5`),
per 1M input and output tokens, with the rates of that base model's fine-tunes
where the provider bills them apart; a Bedrock model's per-token prices stay
in its `deployment`. A price that could not be confirmed is left out, and the
entry's notes say so.
"""

from __future__ import annotations

import json
from datetime import date
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeGuard, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import InvalidInput
from core.vocabulary import CHAT_PROVIDERS, CatalogProvider, Commitment, ExportTarget, Method, values

HyperparameterName = Literal[
    "epochs", "batch_size", "learning_rate", "learning_rate_multiplier", "warmup_steps",
    "beta", "lora_r", "lora_alpha", "early_stopping_threshold", "early_stopping_patience",
    "gradient_accumulation_steps", "gradient_checkpointing", "merge",
]  # fmt: skip

PROVIDERS: tuple[str, ...] = tuple(values(CatalogProvider))
EXPORT_TARGETS: tuple[str, ...] = tuple(values(ExportTarget))
METHODS: tuple[str, ...] = tuple(values(Method))
HYPERPARAMETERS: tuple[HyperparameterName, ...] = get_args(HyperparameterName)

_PRICE_KEYS = ("training_usd_per_1m_tokens", "training_usd_per_1k_tokens", "price_unit")


class ParamRange(BaseModel):
    """A documented range; `exclusive_min` when the provider says "greater than min"."""

    model_config = ConfigDict(extra="forbid")

    min: float
    max: float
    default: float | None = None
    integer: bool = False
    exclusive_min: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> ParamRange:
        if self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        if self.default is not None and not self.contains(self.default):
            raise ValueError(f"default {self.default:g} is outside {self.describe()}")
        return self

    def contains(self, value: float) -> bool:
        above_min = value > self.min if self.exclusive_min else value >= self.min
        return above_min and value <= self.max

    def clamp(self, value: float) -> float:
        """The nearest allowed value; whole numbers for integer ranges."""
        value = min(max(value, self.min), self.max)
        if self.integer:
            value = float(min(max(round(value), self.min), self.max))
        if self.exclusive_min and value <= self.min:
            value = self.default if self.default is not None else self.min + (self.max - self.min) / 1000
        return value

    def describe(self) -> str:
        low, high = _number(self.min, self.integer), _number(self.max, self.integer)
        if self.exclusive_min:
            return f"more than {low} and at most {high}"
        return f"{low} to {high}"


def _number(value: float, integer: bool) -> str:
    return str(int(value)) if integer else f"{value:g}"


class DeploymentInfo(BaseModel):
    """How a provider serves custom models trained from this base model, and what that costs (Bedrock).

    `on_demand`: whether a custom model can get an on-demand deployment (paid per token, at the
    `inference_usd_per_1m_*` prices); otherwise it is served through provisioned throughput, paid per
    model unit and hour at `provisioned_usd_per_model_unit_hour[commitment]` (None: price unknown).
    """

    model_config = ConfigDict(extra="forbid")

    on_demand: bool
    inference_usd_per_1m_input_tokens: float | None = Field(default=None, ge=0)
    inference_usd_per_1m_output_tokens: float | None = Field(default=None, ge=0)
    provisioned_usd_per_model_unit_hour: dict[Commitment, float | None] = Field(default_factory=dict)
    as_of: str = Field(description="when these facts were checked")
    sources: list[str] = Field(min_length=1)
    notes: str | None = None

    def hourly_usd(self, commitment: Commitment) -> float | None:
        """The provisioned-throughput price of one model unit for an hour under `commitment`, when known."""
        return self.provisioned_usd_per_model_unit_hour.get(commitment)


def is_hyperparameter(name: str) -> TypeGuard[HyperparameterName]:
    """Whether `name` is one of finetune-ops' own hyperparameter names."""
    return name in HYPERPARAMETERS


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    provider: CatalogProvider = Field(description="bedrock, openai (also Azure OpenAI) or local")
    family: str = Field(description="openai, nova, claude, llama, hf")
    status: Literal["live", "legacy"] = Field(default="live", description="live or legacy")
    export_target: ExportTarget = Field(description="the export format this model trains on (supervised)")
    encoding: str | None = Field(default=None, description="tiktoken encoding when token counts are exact")
    max_example_tokens: int | None = Field(default=None, description="token limit of one training example, if known")
    training_usd_per_1m_tokens: float | None = Field(default=None, ge=0)
    hyperparameters: dict[HyperparameterName, ParamRange] = Field(default_factory=dict)
    notes: str | None = None

    display_name: str | None = None
    provider_model_id: str | None = Field(default=None, description="the id the provider's customization API takes")
    aliases: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list, description="where the provider offers fine-tuning of it")
    size_class: Literal["small", "medium", "large"] = "medium"
    methods: list[Method] = Field(default_factory=lambda: [Method.SUPERVISED])
    export_targets: dict[Method, ExportTarget] = Field(
        default_factory=dict, description="export format per method when it differs from export_target"
    )
    provider_hyperparameter_names: dict[HyperparameterName, str] = Field(default_factory=dict)
    training_usd_per_1k_tokens: float | None = Field(default=None, ge=0)
    price_unit: Literal["1M tokens", "1K tokens", "free"] | None = Field(
        default=None, description="the unit the provider publishes its training price in"
    )
    price_as_of: str | None = Field(default=None, description="when this entry's price was checked, if not as_of")
    storage_usd_per_month: float | None = Field(default=None, ge=0, description="per custom model, Bedrock")
    warmup_divisor: int | None = Field(
        default=None, gt=0, description="provider's rule: warm-up steps = training examples / this"
    )
    deployment: DeploymentInfo | None = Field(
        default=None, description="how the provider serves custom models of it (Bedrock: on demand or provisioned)"
    )
    new_jobs_stop_on: date | None = Field(default=None, description="first day the provider refuses new jobs")
    shutdown_on: date | None = Field(default=None, description="day the base model and its fine-tunes stop serving")
    sources: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _one_price(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("price_unit") is None:
            data = {**data, "price_unit": _price_unit(data)}
        per_1m, per_1k = data.get("training_usd_per_1m_tokens"), data.get("training_usd_per_1k_tokens")
        if per_1k is not None:
            derived = round(per_1k * 1000, 9)
            if per_1m is not None and abs(per_1m - derived) > 1e-9:
                raise ValueError(
                    f"training price given twice and they disagree ({per_1m} per 1M, {per_1k} per 1K); keep one"
                )
            data = {**data, "training_usd_per_1m_tokens": derived}
        elif per_1m is not None:
            data = {**data, "training_usd_per_1k_tokens": round(per_1m / 1000, 12)}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ModelInfo:
        if not self.methods:
            raise ValueError("methods must name at least one training method")
        if set(self.export_targets) - set(self.methods):
            raise ValueError("export_targets names a method the model does not support")
        if set(self.provider_hyperparameter_names) - set(self.hyperparameters):
            raise ValueError("provider_hyperparameter_names names a hyperparameter without a range")
        return self

    @property
    def supports_dpo(self) -> bool:
        return Method.DPO in self.methods

    def export_target_for(self, method: str) -> ExportTarget:
        """The export format for `method` (DPO on OpenAI uses `openai-dpo`)."""
        return next((target for known, target in self.export_targets.items() if known == method), self.export_target)

    def provider_name(self, name: str) -> str:
        """The provider's own name for finetune-ops hyperparameter `name`."""
        if is_hyperparameter(name):
            return self.provider_hyperparameter_names.get(name, name)
        return name


def _price_unit(data: dict[str, Any]) -> str:
    if data.get("provider") == "local":
        return "free"
    return "1K tokens" if "training_usd_per_1k_tokens" in data else "1M tokens"


class PromptTier(BaseModel):
    """Rates for a whole request whose prompt is longer than `above_input_tokens` (e.g. Claude Haiku 5.5's)."""

    model_config = ConfigDict(extra="forbid")

    above_input_tokens: int = Field(gt=0)
    input_usd_per_1m_tokens: float = Field(ge=0)
    output_usd_per_1m_tokens: float = Field(ge=0)


class InferencePrice(BaseModel):
    """What answering costs per 1M tokens for a model called as `provider:model`; None where unconfirmed."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = None
    aliases: list[str] = Field(default_factory=list, description="other names of the model at the same provider")
    input_usd_per_1m_tokens: float | None = Field(default=None, ge=0)
    output_usd_per_1m_tokens: float | None = Field(default=None, ge=0)
    long_prompt: PromptTier | None = Field(default=None, description="other rates above a prompt length")
    fine_tuned_input_usd_per_1m_tokens: float | None = Field(
        default=None, ge=0, description="input rate of models fine-tuned from this one (OpenAI bills them apart)"
    )
    fine_tuned_output_usd_per_1m_tokens: float | None = Field(default=None, ge=0)
    as_of: str = Field(description="when these prices were checked")
    sources: list[str] = Field(min_length=1)
    notes: str | None = None

    @model_validator(mode="after")
    def _pairs(self) -> InferencePrice:
        for kind, rates in (
            ("", (self.input_usd_per_1m_tokens, self.output_usd_per_1m_tokens)),
            ("fine_tuned_", (self.fine_tuned_input_usd_per_1m_tokens, self.fine_tuned_output_usd_per_1m_tokens)),
        ):
            if (rates[0] is None) != (rates[1] is None):
                raise ValueError(
                    f"{kind}input_usd_per_1m_tokens and {kind}output_usd_per_1m_tokens go together: set both or neither"
                )
        return self


CHAT_PROVIDER_NAMES: tuple[str, ...] = tuple(provider.value for provider in CHAT_PROVIDERS)


class Catalog(BaseModel):
    as_of: str
    source: str
    models: dict[str, ModelInfo]
    inference: dict[str, InferencePrice] = Field(default_factory=dict)

    @field_validator("inference")
    @classmethod
    def _provider_keys(cls, value: dict[str, InferencePrice]) -> dict[str, InferencePrice]:
        for key in value:
            provider, sep, model = key.partition(":")
            if not sep or provider not in CHAT_PROVIDER_NAMES or not model:
                raise ValueError(
                    f"key {key!r} must be PROVIDER:MODEL with PROVIDER one of {', '.join(CHAT_PROVIDER_NAMES)}, "
                    "e.g. anthropic:claude-sonnet-5-5"
                )
        return value

    def inference_price(self, provider: str, model: str) -> InferencePrice | None:
        """The inference prices of `model` at `provider`: by its exact id, else by an alias; never by a prefix."""
        found = self.inference.get(f"{provider}:{model}")
        if found is not None:
            return found
        return next(
            (
                price
                for key, price in self.inference.items()
                if key.startswith(f"{provider}:") and model in price.aliases
            ),
            None,
        )

    def exact(self, model_id: str) -> ModelInfo | None:
        """The entry whose id, alias or provider model id is `model_id` (no prefix matching, unlike `get`)."""
        if model_id in self.models:
            return self.models[model_id]
        return next(
            (info for info in self.models.values() if model_id in info.aliases or model_id == info.provider_model_id),
            None,
        )

    def get(self, model_id: str) -> ModelInfo | None:
        if model_id in self.models:
            return self.models[model_id]
        for info in self.models.values():
            if model_id in info.aliases or model_id == info.provider_model_id:
                return info
        prefixes = [m for m in self.models if model_id.startswith(m)]
        return self.models[max(prefixes, key=len)] if prefixes else None

    def require(self, model_id: str) -> ModelInfo:
        info = self.get(model_id)
        if info is None:
            known = ", ".join(sorted(self.models))
            raise InvalidInput(f"unknown base model {model_id!r}.", hint=f"Use one of: {known}.", model=model_id)
        return info


def _read_bundled() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files("core.catalog").joinpath("models.json").read_text())
    return data


def _read_override(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(
            f"cannot read FINETUNE_CATALOG_FILE {path}: {exc}",
            hint="Point it at a JSON file shaped like core/catalog/models.json, or unset it.",
        ) from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(part, {}), dict) for part in _OVERRIDDEN):
        raise InvalidInput(
            f"FINETUNE_CATALOG_FILE {path} must hold a JSON object whose 'models' and 'inference' are objects.",
            hint='Shape it like core/catalog/models.json: {"as_of": "...", "models": {"<model id>": {...}}, '
            '"inference": {"<provider>:<model>": {...}}}.',
        )
    return data


_OVERRIDDEN = ("models", "inference")  # the parts of the catalog an override changes entry by entry


def _merge_entry(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Field by field; ranges and deployment facts one by one; a new price replaces the old one in whatever unit."""
    if any(key in extra for key in _PRICE_KEYS[:2]):
        base = {key: value for key, value in base.items() if key not in _PRICE_KEYS}
    merged = {**base, **extra}
    for nested in ("hyperparameters", "deployment"):  # one range, or one deployment price, at a time
        if isinstance(base.get(nested), dict) and isinstance(extra.get(nested), dict):
            merged[nested] = {**base[nested], **extra[nested]}
    return merged


@lru_cache(maxsize=8)
def load_catalog(override: Path | None = None) -> Catalog:
    """The bundled catalog, with `override` (FINETUNE_CATALOG_FILE) merged entry by entry.

    Cached per path: a process reads a given override file once.
    """
    data = _read_bundled()
    models = {key: {**value, "id": key} for key, value in data["models"].items()}
    inference: dict[str, Any] = dict(data.get("inference", {}))
    origin = "the bundled catalog core/catalog/models.json"
    if override is not None:
        extra = _read_override(override)
        for key, value in extra.get("models", {}).items():
            models[key] = {**_merge_entry(models.get(key, {}), value), "id": key}
        for key, value in extra.get("inference", {}).items():
            inference[key] = _merge_entry(inference.get(key, {}), value) if isinstance(value, dict) else value
        data = {**data, **{k: v for k, v in extra.items() if k in ("as_of", "source")}}
        origin = f"FINETUNE_CATALOG_FILE {override}"
    try:
        return Catalog(as_of=data["as_of"], source=data["source"], models=models, inference=inference)
    except ValidationError as exc:
        raise InvalidInput(
            f"{origin} has an invalid model entry: {_first_error(exc)}",
            hint="Fix the named field; see core/catalog/models.json for the expected shape.",
        ) from exc


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}"
