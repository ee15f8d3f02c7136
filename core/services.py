"""The one bundle of dependencies every face hands to the core.

`build_services(settings)` runs once, in a composition root (`finetune ...`,
`finetune serve`, `finetune mcp`): it loads the model catalog with the user's
`FINETUNE_CATALOG_FILE` applied, names the provider registry and the clock,
and opens the store on first use (so `finetune help` never touches the
database). Core functions take what they need from it; nothing in the core
reads the environment or loads a default catalog of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from core.catalog.models import Catalog, load_catalog
from core.platform.settings import Settings
from core.platform.store import Store, open_store
from core.platform.timeutil import utcnow
from core.providers import REGISTRY, FineTuneProvider, ProviderFactory, build_provider
from core.vocabulary import Provider


@dataclass
class Services:
    """Settings, catalog, providers, clock and the store, built once and passed down."""

    settings: Settings
    catalog: Catalog
    providers: Mapping[Provider, ProviderFactory] = field(default_factory=lambda: dict(REGISTRY))
    clock: Callable[[], datetime] = utcnow
    _store: Store | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def store(self) -> Store:
        """The database, opened (and migrated) on first use."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = open_store(self.settings.db_path)
        return self._store

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def provider(self, name: str) -> FineTuneProvider:
        """The fine-tuning provider `name`, built from settings (ProviderNotConfigured names what is missing)."""
        return build_provider(name, self.settings, self.providers)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


def build_services(
    settings: Settings,
    *,
    store: Store | None = None,
    providers: Mapping[Provider, ProviderFactory] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Services:
    """The composition root's one call: settings in, everything the core needs out."""
    return Services(
        settings=settings,
        catalog=load_catalog(settings.catalog_file),
        providers=dict(REGISTRY if providers is None else providers),
        clock=clock,
        _store=store,
    )
