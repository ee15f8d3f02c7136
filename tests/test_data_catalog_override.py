"""FINETUNE_CATALOG_FILE reaches every data and planning decision that reads the catalog.

Each catalog is built the way the app builds it: settings -> `build_services(settings).catalog`.
Every test compares the bundled catalog's answer with the overridden one's, so it fails if the
override were ignored anywhere on the way (including in validation's worker processes).
"""

import json
import math
from pathlib import Path
from typing import TypedDict

import pytest
import tiktoken

from core.data import datasets, exports, feedback, tokens
from core.data.validation import validate_file
from core.platform.actors import cli_actor
from core.platform.settings import Settings
from core.services import build_services
from core.training import planning
from core.training.hyperparams import check_hyperparameters, suggest_hyperparameters
from tests.feedback_samples import make_events

ACTOR = cli_actor()
OPENAI = "gpt-4o-mini-2024-07-18"
NOVA = "amazon.nova-micro-v1:0"
TEXT = "Please summarise the meeting notes for the release team. " * 20


class _TrainingSet(TypedDict):
    base_model: str
    n_train: int
    mean_tokens: float


def app_catalog(tmp_path: Path, models: dict | None = None):
    """The catalog the app would hand down, with `models` as the user's FINETUNE_CATALOG_FILE (None: no file)."""
    catalog_file = None
    if models is not None:
        catalog_file = tmp_path / f"catalog-{len(list(tmp_path.glob('catalog-*.json')))}.json"
        catalog_file.write_text(json.dumps({"models": models}))
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", catalog_file=catalog_file)
    return build_services(settings).catalog


@pytest.fixture
def bundled(tmp_path):
    return app_catalog(tmp_path)


def long_openai_file(tmp_path: Path, rows: int = 12) -> Path:
    answer = {"role": "assistant", "content": "The release ships on Monday with faster exports. " * 10}
    row = json.dumps({"messages": [{"role": "user", "content": "When is the release?"}, answer]})
    path = tmp_path / "train.jsonl"
    path.write_text((row + "\n") * rows)
    return path


# Validation ------------------------------------------------------------------------------------


def test_an_overridden_example_token_limit_changes_the_verdict(tmp_path, bundled):
    path = long_openai_file(tmp_path)
    strict = app_catalog(tmp_path, {OPENAI: {"max_example_tokens": 50}})
    assert exports.validate_any_file(path, target="openai", catalog=bundled).ok
    report = exports.validate_any_file(path, target="openai", catalog=strict)  # the default model is looked up too
    assert not report.ok and report.errors_by_kind == {"too_many_tokens": 12}
    assert "accepts at most 50 per example" in report.errors[0].message


def test_the_override_reaches_validation_worker_processes(tmp_path, bundled):
    path = long_openai_file(tmp_path, rows=400)
    strict = app_catalog(tmp_path, {OPENAI: {"max_example_tokens": 50}})
    in_workers = validate_file(path, target="openai", model=OPENAI, workers=2, catalog=strict)
    in_process = validate_file(path, target="openai", model=OPENAI, workers=1, catalog=strict)
    assert in_workers == in_process and in_workers.errors_by_kind == {"too_many_tokens": 400}
    assert validate_file(path, target="openai", model=OPENAI, workers=2, catalog=bundled).ok


@pytest.fixture
def version(store):
    feedback.ingest_batch(store, make_events(40), actor=ACTOR)
    return datasets.build_dataset(store, name="override", actor=ACTOR)


def test_a_dataset_is_validated_with_the_callers_catalog(store, settings, version, bundled, tmp_path):
    common = {"version": version.id, "target": "bedrock-nova", "actor": ACTOR, "data_dir": settings.data_dir}
    assert exports.validate_dataset(store, **common, catalog=bundled).ok  # the bundled catalog gives Nova no limit
    strict = app_catalog(tmp_path, {NOVA: {"max_example_tokens": 20}})
    result = exports.validate_dataset(store, **common, catalog=strict)
    assert not result.ok and set(result.reports["train"].errors_by_kind) == {"too_many_tokens"}


# Token counts ----------------------------------------------------------------------------------


def test_an_overridden_encoding_makes_counts_exact(tmp_path, bundled):
    exact = app_catalog(tmp_path, {NOVA: {"encoding": "o200k_base"}})
    o200k = len(tiktoken.get_encoding("o200k_base").encode(TEXT))
    assert not tokens.is_exact(NOVA, catalog=bundled)
    assert tokens.count_text(TEXT, model=NOVA, catalog=bundled) == math.ceil(o200k * tokens.ESTIMATE_FACTOR)
    assert tokens.is_exact(NOVA, catalog=exact)
    assert tokens.count_text(TEXT, model=NOVA, catalog=exact) == o200k


def test_a_model_added_by_the_override_is_counted_for_its_family(tmp_path, bundled):
    tiny = "my-org/tiny-model"
    entry = {"provider": "local", "family": "hf", "export_target": "hf-chat",
             "hyperparameters": {"epochs": {"min": 1, "max": 4, "integer": True}}}  # fmt: skip
    extended = app_catalog(tmp_path, {tiny: entry})
    o200k = len(tiktoken.get_encoding("o200k_base").encode(TEXT))
    assert tokens.count_text(TEXT, model=tiny, catalog=bundled) == o200k  # unknown: taken for an OpenAI snapshot
    assert tokens.count_text(TEXT, model=tiny, catalog=extended) == math.ceil(o200k * tokens.ESTIMATE_FACTOR)
    messages = [{"role": "user", "content": TEXT}]
    assert tokens.count_messages(messages, model=tiny, catalog=extended) > tokens.count_messages(
        messages, model=tiny, catalog=bundled
    )


def test_an_export_counts_with_the_overridden_tokenizer(store, settings, version, tmp_path, bundled):
    common = {"version": version.id, "target": "bedrock-nova", "actor": ACTOR, "data_dir": settings.data_dir}
    estimated = exports.export_dataset(store, **common, catalog=bundled)
    exact = exports.export_dataset(store, **common, catalog=app_catalog(tmp_path, {NOVA: {"encoding": "o200k_base"}}))
    assert not estimated.token_stats.exact and exact.token_stats.exact
    assert exact.train_tokens < estimated.train_tokens  # no estimate factor


# Hyperparameters -------------------------------------------------------------------------------


def test_an_overridden_range_changes_suggestions_and_checks(tmp_path, bundled):
    narrow = app_catalog(tmp_path, {NOVA: {"hyperparameters": {"epochs": {"min": 1, "max": 3, "integer": True}}}})
    small_set: _TrainingSet = {"base_model": NOVA, "n_train": 10, "mean_tokens": 300}
    assert suggest_hyperparameters(**small_set, catalog=bundled).epochs == 5
    suggestion = suggest_hyperparameters(**small_set, catalog=narrow)
    assert suggestion.epochs == 3 and suggestion.ranges["epochs"].max == 3
    assert check_hyperparameters(NOVA, {"epochs": 4}, catalog=bundled) == []
    assert check_hyperparameters(NOVA, {"epochs": 4}, catalog=narrow) == [
        f"epochs=4: outside the allowed range 1 to 3 for {NOVA}."
    ]


def test_planning_a_version_uses_the_overridden_range(store, settings, version, tmp_path, bundled):
    narrow = app_catalog(tmp_path, {NOVA: {"hyperparameters": {"epochs": {"min": 1, "max": 1, "integer": True}}}})
    common = {"version": version.id, "base_model": NOVA, "actor": ACTOR, "data_dir": settings.data_dir}
    assert planning.suggest_for_version(store, **common, catalog=bundled).epochs > 1
    assert planning.suggest_for_version(store, **common, catalog=narrow).epochs == 1
    assert planning.estimate_version_cost(store, **common, catalog=narrow).epochs == 1
