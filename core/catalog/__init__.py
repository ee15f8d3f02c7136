"""The model catalog: what each base model accepts and what training it costs."""

from core.catalog.models import Catalog, ModelInfo, ParamRange, load_catalog
from core.catalog.pricing import CostEstimate, estimate_cost

__all__ = ["Catalog", "CostEstimate", "ModelInfo", "ParamRange", "estimate_cost", "load_catalog"]
