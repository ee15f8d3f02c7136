import json
from pathlib import Path

import pytest

from core.catalog.models import load_catalog
from core.data import datasets, exports, feedback, formats
from core.data.datasets import DatasetFilters, Recipe
from core.data.validation import validate_file
from core.errors import InvalidInput
from core.platform.actors import cli_actor
from core.training import planning
from tests.feedback_samples import make_events

ACTOR = cli_actor()
CATALOG = load_catalog()


@pytest.fixture
def version(store):
    events = make_events(60)
    events[0]["final"] = events[0].get("final", events[0]["output"]) + " Reach me at dana@example.com."
    feedback.ingest_batch(store, events, actor=ACTOR, redact=False)  # PII kept at ingest: export must redact
    return datasets.build_dataset(store, name="d", actor=ACTOR)


def export(store, settings, version, target, **kwargs):
    return exports.export_dataset(
        store,
        version=version.id,
        target=target,
        actor=ACTOR,
        data_dir=settings.data_dir,
        workers=1,
        catalog=CATALOG,
        **kwargs,
    )


@pytest.mark.parametrize("target", list(exports.DEFAULT_MODELS))
def test_every_target_exports_files_that_validate(store, settings, version, target):
    result = export(store, settings, version, target)
    assert set(result.files) <= {"train", "validation", "test"} and "train" in result.files
    for split, path in result.files.items():
        assert Path(path).read_text().count("\n") == result.counts[split]
    report = validate_file(Path(result.files["train"]), target=target, model=result.model, catalog=CATALOG)
    assert report.ok, report.errors[:3]
    metadata = json.loads((Path(result.directory) / "metadata.json").read_text())
    assert metadata["counts"] == result.counts and metadata["dataset_content_hash"] == version.content_hash
    assert metadata["token_stats"]["total"] > 0


def test_export_always_redacts_and_reports_it(store, settings, version):
    result = export(store, settings, version, "openai")
    text = "".join(Path(p).read_text() for p in result.files.values())
    assert "dana@example.com" not in text and "[EMAIL]" in text
    assert result.redactions.by_type.get("EMAIL") == 1


def test_openai_export_counts_tokens_exactly_and_prices_them(store, settings, version):
    result = export(store, settings, version, "openai", epochs=3)
    assert result.token_stats.exact and result.token_stats.examples == sum(result.counts.values())
    assert result.cost.epochs == 3 and result.cost.usd is not None and result.cost.usd > 0
    assert result.cost.billed_tokens == 3 * result.cost.training_tokens


def test_dpo_uses_only_edited_examples(store, settings, version):
    result = export(store, settings, version, "openai-dpo")
    edited = store.scalar("SELECT count(*) FROM feedback WHERE final_output IS NOT NULL AND final_output != ai_output")
    assert sum(result.counts.values()) == edited and result.skipped == version.counts["examples"] - edited
    row = json.loads(Path(result.files["train"]).read_text().splitlines()[0])
    assert row["preferred_output"][0]["content"] != row["non_preferred_output"][0]["content"]


def test_parallel_export_writes_the_same_bytes(store, settings, version):
    one = export(store, settings, version, "bedrock-nova")
    two = exports.export_dataset(
        store,
        version=version.id,
        target="bedrock-nova",
        actor=ACTOR,
        data_dir=settings.data_dir,
        workers=2,
        catalog=CATALOG,
    )
    assert one.content_hash == two.content_hash


def test_an_interrupted_export_leaves_nothing_behind(store, settings, version, monkeypatch):
    calls = {"n": 0}
    real = formats.to_row

    def failing(example, target):
        calls["n"] += 1
        if calls["n"] > 10:
            raise RuntimeError("disk full")
        return real(example, target)

    monkeypatch.setattr(formats, "to_row", failing)
    with pytest.raises(RuntimeError):
        export(store, settings, version, "openai")
    exports_dir = settings.data_dir / "exports" / version.id
    assert list(exports_dir.iterdir()) == []
    assert store.scalar("SELECT count(*) FROM dataset_exports") == 0


def test_validate_dataset_stores_its_report(store, settings, version):
    result = exports.validate_dataset(
        store, version=version.id, target="bedrock-claude", actor=ACTOR, data_dir=settings.data_dir, catalog=CATALOG
    )
    exported = exports.get_export(store, version=version.id, target="bedrock-claude")
    assert exported is not None
    assert result.ok and set(result.reports) == set(exported.files)
    stored = exports.stored_validation(store, version="d", target="bedrock-claude")
    assert stored == result


def test_unknown_target_names_the_valid_ones(store, settings, version):
    with pytest.raises(InvalidInput) as caught:
        export(store, settings, version, "gemini")
    assert caught.value.hint is not None
    assert "openai-dpo" in caught.value.hint


def test_dpo_without_edited_examples_explains_what_to_do(store, settings):
    feedback.ingest_batch(store, [e for e in make_events(30) if "final" not in e], actor=ACTOR)
    version = datasets.build_dataset(store, name="unedited", actor=ACTOR)
    with pytest.raises(InvalidInput) as caught:
        export(store, settings, version, "openai-dpo")
    assert caught.value.hint is not None
    assert "--edited-only" in caught.value.hint


def test_cost_and_hyperparameters_for_a_version(store, settings, version):
    suggestion = planning.suggest_for_version(
        store,
        version=version.id,
        base_model="amazon.nova-micro-v1:0",
        actor=ACTOR,
        data_dir=settings.data_dir,
        catalog=CATALOG,
    )
    assert 1 <= suggestion.epochs <= 5
    cost = planning.estimate_version_cost(
        store,
        version=version.id,
        base_model="amazon.nova-micro-v1:0",
        actor=ACTOR,
        data_dir=settings.data_dir,
        catalog=CATALOG,
    )
    assert cost.epochs == suggestion.epochs and not cost.exact_tokens and cost.usd is not None
    edited = datasets.build_dataset(
        store, name="edited", actor=ACTOR, recipe=Recipe(filters=DatasetFilters(edited_only=True))
    )
    dpo = planning.estimate_version_cost(
        store, version=edited.id, base_model="gpt-4.1-mini-2025-04-14", method="dpo", epochs=2, actor=ACTOR,
        data_dir=settings.data_dir, catalog=CATALOG,
    )  # fmt: skip
    assert dpo.exact_tokens and dpo.billed_tokens == 2 * dpo.training_tokens


def test_example_count_limits_apply_to_the_training_file_only(tmp_path):
    from core.data.validation import validate_lines

    row = '{"schemaVersion": "bedrock-conversation-2024", "messages": [{"role": "user", "content": [{"text": "hi"}]}, {"role": "assistant", "content": [{"text": "hello"}]}]}'
    as_train = validate_lines([row, row], target="bedrock-nova", catalog=CATALOG)
    as_validation = validate_lines([row, row], target="bedrock-nova", training_file=False, catalog=CATALOG)
    assert as_train.errors_by_kind == {"too_few_examples": 1} and as_validation.ok


@pytest.mark.parametrize("epochs", [0, -1, 10**20, exports.MAX_EPOCHS + 1, True])
def test_impossible_epoch_counts_are_refused_before_anything_is_written(store, settings, version, epochs):
    with pytest.raises(InvalidInput) as caught:
        export(store, settings, version, "openai", epochs=epochs)
    assert "`epochs` must be a whole number from 1 to" in caught.value.message
    assert not (settings.data_dir / "exports").exists()
    assert store.scalar("SELECT count(*) FROM dataset_exports") == 0


def test_a_valid_epoch_count_prices_the_export(store, settings, version):
    result = export(store, settings, version, "openai", epochs=3)
    assert result.cost is not None and result.cost.epochs == 3
    assert result.cost.billed_tokens == 3 * result.train_tokens
