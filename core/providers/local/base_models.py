"""Where a local base model is: `tiny`, a directory on this machine, or a Hugging Face id already in the cache.

finetune-ops never downloads weights: a model that is not on the machine fails
the launch with a message naming what was looked for and how to get it there.
No torch here; `huggingface_hub` (which comes with transformers) is asked only
where its cache is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.providers.base import ProviderError
from core.providers.local.tiny import TINY_MODEL

__all__ = ["BaseModel", "locate_base_model"]

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")  # owner/name, as the Hub allows
MAX_NAME = 1000


@dataclass(frozen=True)
class BaseModel:
    name: str  # what the worker hands to from_pretrained: `tiny`, an absolute directory or a Hugging Face id
    kind: str  # "tiny", "directory" or "hugging face cache"
    directory: Path | None  # where its files are (None for `tiny` until the run builds it)


def locate_base_model(name: str) -> BaseModel:
    """The base model `name`, found on this machine; ProviderError (not transient) saying how to get it there."""
    name = name.strip()
    if name == TINY_MODEL:
        return BaseModel(TINY_MODEL, "tiny", None)
    if not name or len(name) > MAX_NAME or any(not char.isprintable() for char in name):
        raise _missing(name[:80], "it is not a directory or a Hugging Face id")
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise _missing(name, f"the directory {path.resolve()} holds no config.json")
        return BaseModel(str(path.resolve()), "directory", path.resolve())
    if not _REPO_ID.fullmatch(name):
        raise _missing(name, f"no directory {path} exists, and it is not a Hugging Face id (owner/name)")
    snapshot = _cached_snapshot(name)
    if snapshot is None:
        raise _missing(name, f"it is not in the Hugging Face cache ({_cache_dir()})")
    return BaseModel(name, "hugging face cache", snapshot)


def _cached_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _missing(name: str, why: str) -> ProviderError:
    return ProviderError(
        f"base model {name!r} is not on this machine: {why}. finetune-ops never downloads weights.",
        hint="Pass --base-model (or set FINETUNE_LOCAL_BASE_MODEL and pass --base-model default) as a directory "
        "holding a Hugging Face model (config.json, weights, tokenizer), or as the id of a model already downloaded "
        "(`hf download OWNER/NAME`), or use --base-model tiny to train a tiny model built from the job's own data.",
        base_model=name,
    )
