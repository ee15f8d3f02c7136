"""The model catalog: what each base model accepts and costs to fine-tune.

Data lives in `core/data/models.json` (dated: `as_of`), overridable entry by entry
with `FINETUNE_CATALOG_FILE`. Lookups are by exact id first, then by the longest
catalog id that prefixes the given one (so `gpt-4o-mini-2024-07-18` and a
Bedrock ARN-like id with a version suffix resolve).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from core.errors import InvalidInput


class ParamRange(BaseModel):
    min: float
    max: float
    default: float | None = None


class ModelInfo(BaseModel):
    id: str
    provider: str = Field(description="bedrock, openai (also Azure OpenAI) or local")
    family: str = Field(description="openai, nova, claude, llama, hf")
    status: str = Field(default="live", description="live or legacy")
    export_target: str = Field(description="the export format this model trains on")
    encoding: str | None = Field(default=None, description="tiktoken encoding when token counts are exact")
    max_example_tokens: int | None = None
    training_usd_per_1m_tokens: float | None = None
    hyperparameters: dict[str, ParamRange] = Field(default_factory=dict)
    notes: str | None = None


class Catalog(BaseModel):
    as_of: str
    source: str
    models: dict[str, ModelInfo]

    def get(self, model_id: str) -> ModelInfo | None:
        if model_id in self.models:
            return self.models[model_id]
        prefixes = [m for m in self.models if model_id.startswith(m)]
        return self.models[max(prefixes, key=len)] if prefixes else None

    def require(self, model_id: str) -> ModelInfo:
        info = self.get(model_id)
        if info is None:
            known = ", ".join(sorted(self.models))
            raise InvalidInput(f"unknown base model {model_id!r}.", hint=f"Use one of: {known}.", model=model_id)
        return info


def _read_bundled() -> dict[str, Any]:
    return json.loads(resources.files("core").joinpath("data/models.json").read_text())


@lru_cache(maxsize=8)
def load_catalog(override: Path | None = None) -> Catalog:
    data = _read_bundled()
    models = {key: {**value, "id": key} for key, value in data["models"].items()}
    if override is not None:
        try:
            extra = json.loads(Path(override).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInput(
                f"cannot read FINETUNE_CATALOG_FILE {override}: {exc}",
                hint="Point it at a JSON file shaped like core/data/models.json, or unset it.",
            ) from exc
        for key, value in extra.get("models", {}).items():
            models[key] = {**models.get(key, {}), **value, "id": key}
        data = {**data, **{k: v for k, v in extra.items() if k in ("as_of", "source")}}
    return Catalog(as_of=data["as_of"], source=data["source"], models=models)
