import math

import pytest

from core.catalog.models import load_catalog
from core.errors import InvalidInput
from core.training.hyperparams import check_hyperparameters, suggest_hyperparameters

CATALOG = load_catalog()
SIZES = (1, 10, 50, 200, 1_000, 10_000, 100_000, 1_000_000)
LENGTHS = (20, 300, 3000)
CASES = [(model_id, method) for model_id, info in sorted(CATALOG.models.items()) for method in info.methods]


@pytest.mark.parametrize(("model_id", "method"), CASES)
def test_every_suggestion_lies_inside_the_documented_ranges(model_id, method):
    info = CATALOG.models[model_id]
    for n_train in SIZES:
        for mean_tokens in LENGTHS:
            s = suggest_hyperparameters(
                base_model=model_id, n_train=n_train, mean_tokens=mean_tokens, method=method, catalog=CATALOG
            )
            offered = {
                "epochs": s.epochs, "batch_size": s.batch_size, "learning_rate": s.learning_rate,
                "learning_rate_multiplier": s.learning_rate_multiplier, "warmup_steps": s.warmup_steps, **s.extra,
            }  # fmt: skip
            chosen = {name: value for name, value in offered.items() if value is not None}
            case = f"{model_id} {method} n={n_train} tokens={mean_tokens}"
            assert set(chosen) == set(s.ranges), case
            for name, value in chosen.items():
                rng = s.ranges[name]
                assert rng.contains(value), f"{case}: {name}={value} outside {rng.describe()}"
                if rng.integer:
                    assert isinstance(value, int), f"{case}: {name}={value!r} is not a whole number"
            assert set(s.provider_values) == {info.provider_name(name) for name in chosen}, case
            assert all(isinstance(text, str) for text in s.provider_values.values())
            assert len(s.rationale) >= len(chosen), case


def test_small_sets_get_more_epochs_and_large_sets_fewer():
    def epochs(n):
        return suggest_hyperparameters(
            base_model="Qwen/Qwen2.5-0.5B-Instruct", n_train=n, mean_tokens=300, catalog=CATALOG
        ).epochs

    counts = [epochs(n) for n in SIZES]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > counts[-1] == 1


def test_batch_size_grows_with_the_dataset():
    def batch(n):
        return suggest_hyperparameters(
            base_model="gpt-4o-mini-2024-07-18", n_train=n, mean_tokens=300, catalog=CATALOG
        ).batch_size

    sizes = [batch(n) for n in SIZES]
    assert sizes == sorted(sizes)
    assert sizes[0] == 1 and sizes[-1] == 256


def test_local_batch_fits_long_examples_in_memory():
    short = suggest_hyperparameters(
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct", n_train=1_000, mean_tokens=300, catalog=CATALOG
    )
    long = suggest_hyperparameters(
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct", n_train=1_000, mean_tokens=3000, catalog=CATALOG
    )
    assert long.batch_size is not None and short.batch_size is not None
    assert long.batch_size < short.batch_size


def test_large_models_get_a_more_conservative_learning_rate():
    def lr(model_id):
        return suggest_hyperparameters(
            base_model=model_id, n_train=1_000, mean_tokens=300, catalog=CATALOG
        ).learning_rate

    assert lr("amazon.nova-pro-v1:0") < lr("amazon.nova-micro-v1:0")
    assert lr("meta.llama3-1-70b-instruct-v1:0") < lr("meta.llama3-1-8b-instruct-v1:0")


def test_nova_follows_bedrock_warmup_rule_and_has_no_batch_size():
    s = suggest_hyperparameters(base_model="amazon.nova-micro-v1:0", n_train=6_400, mean_tokens=300, catalog=CATALOG)
    assert s.warmup_steps == 10 and s.batch_size is None
    assert s.provider_values == {"epochCount": "2", "learningRate": "0.00001", "learningRateWarmupSteps": "10"}
    assert any("640" in line for line in s.rationale)
    big = suggest_hyperparameters(
        base_model="amazon.nova-lite-v1:0", n_train=1_000_000, mean_tokens=300, catalog=CATALOG
    )
    assert big.warmup_steps == 100, "6250 steps is clamped to Bedrock's maximum"


def test_llama_on_bedrock_keeps_its_fixed_batch_size():
    s = suggest_hyperparameters(
        base_model="meta.llama3-1-8b-instruct-v1:0", n_train=100_000, mean_tokens=300, catalog=CATALOG
    )
    assert s.batch_size == 1 and s.provider_values["batchSize"] == "1"
    assert any("fixes batch_size at 1" in line for line in s.rationale)


def test_claude_batch_is_raised_to_its_documented_minimum():
    s = suggest_hyperparameters(
        base_model="anthropic.claude-3-haiku-20240307-v1:0", n_train=10, mean_tokens=300, catalog=CATALOG
    )
    assert s.batch_size == 4
    assert s.extra == {"early_stopping_threshold": 0.001, "early_stopping_patience": 2}
    assert s.provider_values["learningRateMultiplier"] == "1.0"


def test_epochs_are_clamped_to_the_model_maximum():
    s = suggest_hyperparameters(base_model="amazon.nova-micro-v1:0", n_train=1, mean_tokens=20, catalog=CATALOG)
    assert s.epochs == 5
    assert any("outside the documented 1 to 5" in line for line in s.rationale)


def test_local_lora_extras():
    s = suggest_hyperparameters(
        base_model="meta-llama/Llama-3.2-1B-Instruct", n_train=100_000, mean_tokens=300, catalog=CATALOG
    )
    assert s.extra["lora_alpha"] == 2 * s.extra["lora_r"]
    assert s.provider_values["r"] == str(s.extra["lora_r"])
    assert s.learning_rate is not None
    assert 1e-5 <= s.learning_rate <= 5e-4


def test_dpo_adds_beta_and_supervised_does_not():
    dpo = suggest_hyperparameters(
        base_model="gpt-4.1-mini-2025-04-14", n_train=50, mean_tokens=300, method="dpo", catalog=CATALOG
    )
    sft = suggest_hyperparameters(base_model="gpt-4.1-mini-2025-04-14", n_train=50, mean_tokens=300, catalog=CATALOG)
    assert 0 < dpo.extra["beta"] <= 2 and dpo.provider_values["beta"] == "0.2"
    assert "beta" not in sft.extra and "beta" not in sft.ranges


def test_examples_longer_than_the_model_allows_are_called_out():
    s = suggest_hyperparameters(base_model="gpt-4.1-nano-2025-04-14", n_train=10, mean_tokens=40_000, catalog=CATALOG)
    assert any("32768-token limit" in line for line in s.rationale)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"n_train": 0, "mean_tokens": 300}, "n_train"),
        ({"n_train": -5, "mean_tokens": 300}, "n_train"),
        ({"n_train": 2.5, "mean_tokens": 300}, "n_train"),
        ({"n_train": True, "mean_tokens": 300}, "n_train"),
        ({"n_train": 10, "mean_tokens": 0}, "mean_tokens"),
        ({"n_train": 10, "mean_tokens": -1.0}, "mean_tokens"),
        ({"n_train": 10, "mean_tokens": "300"}, "mean_tokens"),
        ({"n_train": 10, "mean_tokens": math.nan}, "mean_tokens"),
        ({"n_train": 10, "mean_tokens": 300, "method": "rlhf"}, "method"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, argument):
    with pytest.raises(InvalidInput) as err:
        suggest_hyperparameters(base_model="gpt-4o-mini-2024-07-18", **kwargs, catalog=CATALOG)
    assert f"`{argument}`" in err.value.message and err.value.hint


def test_a_method_the_model_lacks_is_invalid_input():
    with pytest.raises(InvalidInput, match="does not support method 'dpo'"):
        suggest_hyperparameters(
            base_model="amazon.nova-micro-v1:0", n_train=10, mean_tokens=300, method="dpo", catalog=CATALOG
        )


def test_check_reports_name_value_and_range():
    problems = check_hyperparameters(
        "amazon.nova-micro-v1:0", {"epochCount": 8, "learning_rate": "0.001"}, catalog=CATALOG
    )
    assert problems == [
        "epochCount=8: outside the allowed range 1 to 5 for amazon.nova-micro-v1:0.",
        "learning_rate='0.001': outside the allowed range 1e-06 to 0.0001 for amazon.nova-micro-v1:0.",
    ]


def test_check_accepts_values_inside_the_ranges_under_either_name():
    assert check_hyperparameters("anthropic.claude-3-haiku-20240307-v1:0", {
        "epochs": 3, "batchSize": "64", "learningRateMultiplier": 0.5, "earlyStoppingPatience": 2,
    }, catalog=CATALOG) == []  # fmt: skip
    assert check_hyperparameters("gpt-4o-mini-2024-07-18", {"n_epochs": "auto", "batch_size": 8}, catalog=CATALOG) == []


def test_check_reports_each_kind_of_problem():
    problems = check_hyperparameters(
        "gpt-4.1-2025-04-14",
        {"batch_size": 2.5, "learning_rate_multiplier": 0, "n_epochs": "many", "warmup_steps": 3, "beta": 0.1},
        catalog=CATALOG,
    )
    assert problems[0] == "batch_size=2.5: must be a whole number from 1 to 256."
    assert problems[1].startswith("learning_rate_multiplier=0: outside the allowed range more than 0 and at most 10")
    assert problems[2] == "n_epochs='many': not a number; allowed 1 to 50."
    assert problems[3].startswith("warmup_steps=3: gpt-4.1-2025-04-14 has no such hyperparameter")
    assert problems[4] == "beta=0.1: applies to method 'dpo' only, not 'supervised'."
    assert check_hyperparameters("gpt-4.1-2025-04-14", {"beta": 2.5}, method="dpo", catalog=CATALOG) == [
        "beta=2.5: outside the allowed range more than 0 and at most 2 for gpt-4.1-2025-04-14."
    ]


def test_check_rejects_an_unknown_model():
    with pytest.raises(InvalidInput, match="unknown base model"):
        check_hyperparameters("gpt-2", {"epochs": 1}, catalog=CATALOG)
