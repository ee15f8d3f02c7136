"""Local LoRA fine-tuning with peft and transformers, in a training process of its own (the `local` extra).

Importing this package imports no torch: the provider reads and starts runs,
and only the worker process (`core.providers.local.worker`) and `training` load
the model.
"""

from core.providers.local.base_models import locate_base_model
from core.providers.local.provider import LocalProvider, progress_line
from core.providers.local.runs import RunDir, RunStatus, runs_root
from core.providers.local.tiny import TINY_MODEL

__all__ = ["TINY_MODEL", "LocalProvider", "RunDir", "RunStatus", "locate_base_model", "progress_line", "runs_root"]
