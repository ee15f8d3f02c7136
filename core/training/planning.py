"""Cost estimates and hyperparameter suggestions for a dataset version and a base model.

Both read the version's export for the model's target (exporting it first when
needed), so token counts are the exported, redacted rows' real counts.

Local training also takes base models the catalog does not list: a directory or
a Hugging Face id already in the cache. `catalog_for` gives such a model an
entry shaped like the catalog's `tiny` one (no bill: the compute is yours), so
every path that looks a model up (export, validation, suggestion, cost, launch)
treats it alike.
"""

from __future__ import annotations

from pathlib import Path

from core.catalog.models import Catalog, ModelInfo
from core.catalog.pricing import CostEstimate, estimate_cost
from core.data import exports
from core.errors import InvalidInput
from core.platform.actors import Actor
from core.platform.settings import Settings
from core.platform.store import Store
from core.providers.local import TINY_MODEL
from core.training.hyperparams import HyperparameterSuggestion, suggest_hyperparameters
from core.vocabulary import Provider

DEFAULT_LOCAL_MODEL = "default"  # `--base-model default` on a local job: FINETUNE_LOCAL_BASE_MODEL
OUTSIDE_LEARNING_RATE = 2e-4  # the usual LoRA start; the tiny entry's own default suits only a random model
MAX_OUTSIDE_NAME = 200  # a path or id longer than this would not fit in an export's directory name


def local_base_model(settings: Settings, *, provider: str, base_model: str) -> str:
    """The base model a launch trains: `default` on a local job is FINETUNE_LOCAL_BASE_MODEL; anything else is itself."""
    if provider != Provider.LOCAL or base_model.strip() != DEFAULT_LOCAL_MODEL:
        return base_model
    if not settings.local_base_model:
        raise InvalidInput(
            "--base-model default means FINETUNE_LOCAL_BASE_MODEL, which is not set.",
            hint="Set FINETUNE_LOCAL_BASE_MODEL to a model directory, the id of a model already downloaded, or tiny; "
            "or pass the model itself: --base-model PATH_OR_ID.",
        )
    return settings.local_base_model


def catalog_for(catalog: Catalog, base_model: str, *, provider: str | None = None) -> Catalog:
    """`catalog`, knowing `base_model` too when it is a local model the catalog does not list.

    With a provider, only `local` adds one; without (estimates, suggestions), a name that reads as a
    path or a Hugging Face id (owner/name) does, since no catalog provider's ids look like that. A local
    name the catalog only prefixes (`Qwen/Qwen2.5-0.5B-Instruct-AWQ`) is another model: it gets its own entry.
    """
    if _listed(catalog, base_model) or not _outside_local(base_model, provider):
        return catalog
    if len(base_model) > MAX_OUTSIDE_NAME or not base_model.strip() or not base_model.isprintable():
        raise InvalidInput(
            f"base model {base_model[:80]!r}{'...' if len(base_model) > 80 else ''} is not a model directory or a "
            f"Hugging Face id of at most {MAX_OUTSIDE_NAME} printable characters.",
            hint="Pass a catalog id (`finetune catalog --provider local`), a Hugging Face id already downloaded, a "
            "model directory, or tiny.",
        )
    return catalog.model_copy(update={"models": {**catalog.models, base_model: _outside_entry(catalog, base_model)}})


def _listed(catalog: Catalog, base_model: str) -> bool:
    """Named by the catalog itself: its id, an alias or its provider id (a longer name it merely prefixes is not)."""
    info = catalog.get(base_model)
    return info is not None and base_model in (info.id, info.provider_model_id, *info.aliases)


def _outside_local(base_model: str, provider: str | None) -> bool:
    if provider is not None:
        return provider == Provider.LOCAL
    return ("/" in base_model or base_model.startswith((".", "~"))) and ":" not in base_model


def _outside_entry(catalog: Catalog, base_model: str) -> ModelInfo:
    template = catalog.require(TINY_MODEL)
    ranges = dict(template.hyperparameters)
    if "learning_rate" in ranges:
        ranges["learning_rate"] = ranges["learning_rate"].model_copy(update={"default": OUTSIDE_LEARNING_RATE})
    return template.model_copy(
        update={
            "id": base_model, "display_name": f"{base_model} (LoRA, local)", "aliases": [], "hyperparameters": ranges,
            "max_example_tokens": None, "sources": [f"{base_model}: a model on this machine, outside the catalog"],
            "notes": "Outside the catalog: trained locally with LoRA on your compute, no bill; ranges are the tiny entry's.",
        }
    )  # fmt: skip


def _export_for(
    store: Store, *, version: str, base_model: str, method: str, actor: Actor, data_dir: Path, catalog: Catalog
) -> exports.ExportResult:
    info = catalog.require(base_model)
    target = info.export_target_for(method)
    export = exports.get_export(store, version=version, target=target, model=base_model)
    if export is None:
        export = exports.export_dataset(
            store, version=version, target=target, model=base_model, actor=actor, data_dir=data_dir, catalog=catalog
        )
    return export


def suggest_for_version(
    store: Store, *, version: str, base_model: str, actor: Actor, data_dir: Path, method: str = "supervised",
    catalog: Catalog,
) -> HyperparameterSuggestion:  # fmt: skip
    """Starting hyperparameters for training `base_model` on the version's export."""
    catalog = catalog_for(catalog, base_model)
    export = _export_for(
        store, version=version, base_model=base_model, method=method, actor=actor, data_dir=data_dir, catalog=catalog
    )
    return suggest_hyperparameters(
        base_model=base_model, n_train=export.counts["train"], mean_tokens=export.token_stats.mean, method=method,
        catalog=catalog,
    )  # fmt: skip


def estimate_version_cost(
    store: Store, *, version: str, base_model: str, actor: Actor, data_dir: Path, epochs: int | None = None,
    method: str = "supervised", catalog: Catalog,
) -> CostEstimate:  # fmt: skip
    """Cost of training `base_model` on the version; epochs default to the suggested number."""
    catalog = catalog_for(catalog, base_model)
    export = _export_for(
        store, version=version, base_model=base_model, method=method, actor=actor, data_dir=data_dir, catalog=catalog
    )
    if epochs is None:
        epochs = suggest_hyperparameters(
            base_model=base_model, n_train=export.counts["train"], mean_tokens=export.token_stats.mean, method=method,
            catalog=catalog,
        ).epochs  # fmt: skip
    return estimate_cost(
        base_model=base_model, training_tokens=export.train_tokens, epochs=epochs, exact_tokens=export.token_stats.exact,
        catalog=catalog,
    )  # fmt: skip
