"""What can be trained: the catalog's base models as a listing every face shows the same way."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from core.catalog.models import Catalog, ModelInfo
from core.errors import InvalidInput
from core.vocabulary import CATALOG_PROVIDER, ExportTarget, Method, Provider, one_of


class BaseModelEntry(BaseModel):
    """One base model that can be fine-tuned, and what training it takes and costs."""

    id: str = Field(description="The base model id to pass as base_model / --base-model.")
    display_name: str | None = Field(default=None, description="The provider's name for the model.")
    providers: list[Provider] = Field(description="Providers that can train it (what launch takes as provider).")
    status: str = Field(description="live, or legacy (still trainable, no longer recommended).")
    methods: list[Method] = Field(description="Training methods it supports.")
    export_targets: dict[Method, ExportTarget] = Field(description="The export format it trains on, per method.")
    max_example_tokens: int | None = Field(description="Token limit of one training example, if known.")
    training_usd_per_1m_tokens: float | None = Field(description="Training price per 1M billed tokens, if known.")
    price_as_of: str = Field(description="The date the price was read from the provider's documentation.")
    new_jobs_stop_on: date | None = Field(description="First day the provider refuses new jobs, if announced.")


class BaseModelList(BaseModel):
    """The catalog's base models, live ones first."""

    as_of: str = Field(description="The catalog's date.")
    models: list[BaseModelEntry]


def list_base_models(catalog: Catalog, *, provider: str | None = None) -> BaseModelList:
    """Every base model in `catalog` (with FINETUNE_CATALOG_FILE applied), optionally one provider's only."""
    wanted = _catalog_provider(provider)
    entries = [
        _entry(info, catalog.as_of) for info in catalog.models.values() if wanted is None or info.provider == wanted
    ]
    entries.sort(key=lambda e: (e.status != "live", e.providers[0] if e.providers else "", e.id))
    return BaseModelList(as_of=catalog.as_of, models=entries)


def _catalog_provider(provider: str | None) -> str | None:
    if provider is None:
        return None
    try:
        return CATALOG_PROVIDER[Provider(provider)]
    except ValueError:
        raise InvalidInput(f"unknown provider {provider!r}.", hint=f"Use {one_of(Provider)}.") from None


def _entry(info: ModelInfo, as_of: str) -> BaseModelEntry:
    return BaseModelEntry(
        id=info.id,
        display_name=info.display_name,
        providers=[p for p, whose in CATALOG_PROVIDER.items() if whose == info.provider],
        status=info.status,
        methods=list(info.methods),
        export_targets={method: info.export_target_for(method) for method in info.methods},
        max_example_tokens=info.max_example_tokens,
        training_usd_per_1m_tokens=info.training_usd_per_1m_tokens,
        price_as_of=info.price_as_of or as_of,
        new_jobs_stop_on=info.new_jobs_stop_on,
    )
