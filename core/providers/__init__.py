"""Fine-tuning providers: one module per provider, one base class, one registry.

Provider SDKs (boto3, openai, transformers) are imported only inside this package.
"""

import importlib
import logging

log = logging.getLogger(__name__)

MODULES = ("core.providers.bedrock", "core.providers.openai_provider", "core.providers.local")


def load_all() -> None:
    """Import every provider module present, so each registers itself."""
    for name in MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
