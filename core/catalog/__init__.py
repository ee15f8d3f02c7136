"""The model catalog: what each base model accepts and what training it costs."""

from core.catalog.listing import BaseModelEntry, BaseModelList, list_base_models
from core.catalog.models import Catalog, HyperparameterName, ModelInfo, ParamRange, load_catalog
from core.catalog.pricing import CostEstimate, estimate_cost

__all__ = [
    "BaseModelEntry",
    "BaseModelList",
    "Catalog",
    "CostEstimate",
    "HyperparameterName",
    "ModelInfo",
    "ParamRange",
    "estimate_cost",
    "list_base_models",
    "load_catalog",
]
