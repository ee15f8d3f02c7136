import json

import pytest

from core.catalog.models import EXPORT_TARGETS, HYPERPARAMETERS, METHODS, PROVIDERS, Catalog, ModelInfo, load_catalog
from core.errors import InvalidInput

CATALOG = load_catalog()
OPENAI = ["gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14",
          "gpt-4.1-nano-2025-04-14"]  # fmt: skip
NOVA = ["amazon.nova-micro-v1:0", "amazon.nova-lite-v1:0", "amazon.nova-pro-v1:0"]
LLAMA = ["meta.llama3-1-8b-instruct-v1:0", "meta.llama3-1-70b-instruct-v1:0", "meta.llama3-2-1b-instruct-v1:0",
         "meta.llama3-2-3b-instruct-v1:0", "meta.llama3-2-11b-instruct-v1:0",
         "meta.llama3-2-90b-instruct-v1:0"]  # fmt: skip
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
LOCAL = ["HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct", "Qwen/Qwen2.5-0.5B-Instruct",
         "meta-llama/Llama-3.2-1B-Instruct"]  # fmt: skip


def test_bundled_catalog_is_dated_and_holds_every_target():
    assert CATALOG.as_of and CATALOG.source
    assert set(OPENAI + NOVA + LLAMA + [CLAUDE] + LOCAL) <= set(CATALOG.models)


@pytest.mark.parametrize("model_id", sorted(CATALOG.models))
def test_every_entry_is_valid(model_id):
    info = CATALOG.models[model_id]
    assert info.id == model_id
    assert info.provider in PROVIDERS
    assert info.export_target in EXPORT_TARGETS
    assert set(info.export_targets.values()) <= set(EXPORT_TARGETS)
    assert info.methods and set(info.methods) <= set(METHODS)
    assert info.sources, "every entry says where its facts come from"
    assert "epochs" in info.hyperparameters
    assert set(info.hyperparameters) <= set(HYPERPARAMETERS)
    assert set(info.provider_hyperparameter_names) == set(info.hyperparameters)
    for name, rng in info.hyperparameters.items():
        assert rng.min <= rng.max, name
        if rng.default is not None:
            assert rng.min <= rng.default <= rng.max, name
            assert rng.contains(rng.default), name
    if info.provider == "local":
        assert info.training_usd_per_1m_tokens == 0 and info.price_unit == "free"
    if info.training_usd_per_1m_tokens is None:
        assert "price" in (info.notes or ""), "an unknown price is explained in notes"


def test_openai_entries_match_the_fine_tuning_api():
    for model_id in OPENAI:
        info = CATALOG.models[model_id]
        assert (info.provider, info.export_target, info.encoding) == ("openai", "openai", "o200k_base")
        assert (info.hyperparameters["epochs"].min, info.hyperparameters["epochs"].max) == (1, 50)
        assert (info.hyperparameters["batch_size"].min, info.hyperparameters["batch_size"].max) == (1, 256)
        assert info.hyperparameters["learning_rate_multiplier"].exclusive_min
        assert info.provider_name("epochs") == "n_epochs"
        assert info.new_jobs_stop_on is not None
        assert info.new_jobs_stop_on.isoformat() == "2027-01-06"
    dpo = {m for m in OPENAI if CATALOG.models[m].supports_dpo}
    assert dpo == {"gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14", "gpt-4.1-nano-2025-04-14"}
    for model_id in dpo:
        info = CATALOG.models[model_id]
        assert info.export_target_for("dpo") == "openai-dpo" and info.export_target_for("supervised") == "openai"
        assert info.hyperparameters["beta"].max == 2


def test_bedrock_entries_match_the_documented_ranges():
    for model_id in NOVA:
        info = CATALOG.models[model_id]
        hp = info.hyperparameters
        assert (hp["epochs"].min, hp["epochs"].max, hp["epochs"].default) == (1, 5, 2)
        assert (hp["learning_rate"].min, hp["learning_rate"].max) == (1e-6, 1e-4)
        assert (hp["warmup_steps"].min, hp["warmup_steps"].max) == (0, 100)
        assert "batch_size" not in hp
        assert info.provider_name("warmup_steps") == "learningRateWarmupSteps"
        assert info.provider_model_id is not None
        assert info.provider_model_id.startswith(model_id + ":")
    for model_id in LLAMA:
        hp = CATALOG.models[model_id].hyperparameters
        assert (hp["epochs"].min, hp["epochs"].max) == (1, 10)
        assert (hp["batch_size"].min, hp["batch_size"].max) == (1, 1)
        assert (hp["learning_rate"].min, hp["learning_rate"].max) == (5e-6, 0.1)
    hp = CATALOG.models[CLAUDE].hyperparameters
    assert (hp["epochs"].min, hp["epochs"].max) == (1, 10)
    assert (hp["batch_size"].min, hp["batch_size"].max) == (4, 256)
    assert (hp["learning_rate_multiplier"].min, hp["learning_rate_multiplier"].max) == (0.1, 2)
    assert CATALOG.models[CLAUDE].provider_name("early_stopping_patience") == "earlyStoppingPatience"


def test_bedrock_prices_are_published_per_thousand_and_computed_per_million():
    micro = CATALOG.models["amazon.nova-micro-v1:0"]
    assert micro.price_unit == "1K tokens"
    assert micro.training_usd_per_1k_tokens == 0.001
    assert micro.training_usd_per_1m_tokens == 1.0
    assert CATALOG.models["meta.llama3-1-8b-instruct-v1:0"].training_usd_per_1m_tokens == 1.49


def test_claude_3_haiku_is_legacy_and_the_live_targets_are_live():
    assert CATALOG.require(CLAUDE).status == "legacy"
    assert all(CATALOG.models[m].status == "live" for m in OPENAI + NOVA + LLAMA + LOCAL)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("amazon.nova-micro-v1:0:128k", "amazon.nova-micro-v1:0"),
        ("amazon.nova-pro-v1:0:300k", "amazon.nova-pro-v1:0"),
        ("meta.llama3-1-70b-instruct-v1:0:128k", "meta.llama3-1-70b-instruct-v1:0"),
        ("anthropic.claude-3-haiku-20240307-v1:0:200k", CLAUDE),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18"),
        ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
        ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14"),
        ("gpt-4.1", "gpt-4.1-2025-04-14"),
    ],
)
def test_lookup_by_exact_id_alias_or_versioned_prefix(given, expected):
    assert CATALOG.require(given).id == expected


def test_longest_prefix_wins():
    def entry(model_id):
        return ModelInfo(id=model_id, provider="bedrock", family="nova", export_target="bedrock-nova")

    catalog = Catalog(as_of="2026-01-01", source="test", models={m: entry(m) for m in ("a.model", "a.model-pro")})
    assert catalog.require("a.model-pro:0:300k").id == "a.model-pro"
    assert catalog.require("a.model:0:128k").id == "a.model"


def test_unknown_model_names_the_id_and_lists_the_known_ones():
    assert CATALOG.get("no-such-model") is None
    with pytest.raises(InvalidInput) as err:
        CATALOG.require("no-such-model")
    assert err.value.hint is not None
    assert "no-such-model" in str(err.value) and "amazon.nova-micro-v1:0" in err.value.hint


def _write(tmp_path, data, name="override.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_override_file_merges_entry_by_entry(tmp_path):
    path = _write(tmp_path, {
        "as_of": "2026-12-01",
        "models": {
            "amazon.nova-micro-v1:0": {"training_usd_per_1m_tokens": 1.2,
                                       "hyperparameters": {"epochs": {"min": 1, "max": 3}}},
            "my-org/tiny-model": {"provider": "local", "family": "hf", "export_target": "hf-chat",
                                  "hyperparameters": {"epochs": {"min": 1, "max": 4, "integer": True}}},
        },
    })  # fmt: skip
    catalog = load_catalog(override=path)
    micro = catalog.require("amazon.nova-micro-v1:0")
    assert catalog.as_of == "2026-12-01"
    assert micro.training_usd_per_1m_tokens == 1.2 and micro.price_unit == "1M tokens"
    assert micro.hyperparameters["epochs"].max == 3
    assert micro.hyperparameters["learning_rate"].default == 1e-5, "untouched ranges stay"
    assert micro.export_target == "bedrock-nova" and micro.provider_model_id == "amazon.nova-micro-v1:0:128k"
    assert catalog.require("my-org/tiny-model").training_usd_per_1m_tokens is None
    assert load_catalog().require("amazon.nova-micro-v1:0").training_usd_per_1m_tokens == 1.0


def test_unreadable_override_is_invalid_input(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(InvalidInput, match="FINETUNE_CATALOG_FILE"):
        load_catalog(override=path)


def test_override_with_a_bad_field_names_it(tmp_path):
    path = _write(tmp_path, {"models": {"amazon.nova-micro-v1:0": {"provider": "azure"}}})
    with pytest.raises(InvalidInput) as err:
        load_catalog(override=path)
    assert "amazon.nova-micro-v1:0.provider" in str(err.value)


def test_override_with_a_misspelt_field_is_refused(tmp_path):
    path = _write(tmp_path, {"models": {"amazon.nova-micro-v1:0": {"training_usd_per_1m_token": 2}}})
    with pytest.raises(InvalidInput, match="training_usd_per_1m_token"):
        load_catalog(override=path)


def test_a_price_given_twice_must_agree():
    with pytest.raises(ValueError, match="disagree"):
        ModelInfo(id="x", provider="bedrock", family="nova", export_target="bedrock-nova",
                  training_usd_per_1k_tokens=0.001, training_usd_per_1m_tokens=2.0)  # fmt: skip


def test_a_default_outside_its_range_is_refused():
    with pytest.raises(ValueError, match="outside"):
        ModelInfo(id="x", provider="local", family="hf", export_target="hf-chat",
                  hyperparameters={"epochs": {"min": 1, "max": 5, "default": 9}})  # fmt: skip
