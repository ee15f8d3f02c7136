"""Cost estimates and hyperparameter suggestions for a dataset version and a base model.

Both read the version's export for the model's target (exporting it first when
needed), so token counts are the exported, redacted rows' real counts.
"""

from __future__ import annotations

from pathlib import Path

from core.catalog.models import Catalog
from core.catalog.pricing import CostEstimate, estimate_cost
from core.data import exports
from core.platform.actors import Actor
from core.platform.store import Store
from core.training.hyperparams import HyperparameterSuggestion, suggest_hyperparameters


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
