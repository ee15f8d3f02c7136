"""The model catalog: what each base model accepts, what training it costs, and what answering costs."""

from core.catalog.listing import BaseModelEntry, BaseModelList, list_base_models
from core.catalog.models import (
    Catalog,
    HyperparameterName,
    InferencePrice,
    ModelInfo,
    ParamRange,
    PromptTier,
    load_catalog,
)
from core.catalog.pricing import CostEstimate, estimate_cost

__all__ = [
    "BaseModelEntry",
    "BaseModelList",
    "Catalog",
    "CostEstimate",
    "HyperparameterName",
    "InferencePrice",
    "ModelInfo",
    "ParamRange",
    "PromptTier",
    "estimate_cost",
    "list_base_models",
    "load_catalog",
]
