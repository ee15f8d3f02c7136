import json
from typing import TypedDict

import pytest

from core.catalog.models import load_catalog
from core.catalog.pricing import CostEstimate, estimate_cost, usd_for
from core.errors import InvalidInput

CATALOG = load_catalog()


class _Job(TypedDict):
    base_model: str
    training_tokens: int
    epochs: int


def test_openai_bills_trained_tokens_times_epochs():
    est = estimate_cost(base_model="gpt-4o-mini-2024-07-18", training_tokens=1_000_000, epochs=3, catalog=CATALOG)
    assert isinstance(est, CostEstimate)
    assert (est.provider, est.billed_tokens, est.usd_per_1m_tokens, est.usd) == ("openai", 3_000_000, 3.0, 9.0)
    assert est.price_as_of == CATALOG.as_of
    assert est.exact_tokens
    assert any("n_epochs" in note for note in est.notes)
    assert any("2027-01-06" in note for note in est.notes)


def test_bedrock_charges_tokens_processed_at_a_per_thousand_price():
    est = estimate_cost(base_model="amazon.nova-micro-v1:0:128k", training_tokens=250_000, epochs=2, catalog=CATALOG)
    assert est.base_model == "amazon.nova-micro-v1:0"
    assert (est.billed_tokens, est.usd_per_1m_tokens, est.usd) == (500_000, 1.0, 0.5)
    assert any("per 1,000 tokens" in note for note in est.notes)
    assert any("per month" in note for note in est.notes)


def test_local_training_is_free():
    est = estimate_cost(
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct", training_tokens=123_456, epochs=3, catalog=CATALOG
    )
    assert (est.provider, est.usd, est.billed_tokens) == ("local", 0.0, 370_368)


def test_unknown_price_gives_no_dollar_figure_and_says_how_to_set_it():
    est = estimate_cost(base_model="meta.llama3-2-1b-instruct-v1:0", training_tokens=10_000, epochs=2, catalog=CATALOG)
    assert est.usd is None and est.usd_per_1m_tokens is None
    assert est.billed_tokens == 20_000
    assert any("FINETUNE_CATALOG_FILE" in note for note in est.notes)


@pytest.mark.parametrize(
    ("billed", "price", "usd"),
    [
        (1_000_000, 1.49, 1.49),  # no binary float drift
        (33_333, 3.0, 0.1),  # 0.099999 rounds up to a tenth of a dollar
        (50, 1.0, 0.0001),  # 0.00005: half rounds up
        (49, 1.0, 0.0),  # 0.000049: rounds down to nothing
        (1_234, 1.49, 0.0018),  # 0.00183866
        (0, 25.0, 0.0),
        (7_000_000_000, 25.0, 175_000.0),
    ],
)
def test_usd_is_exact_and_rounded_half_up_to_a_hundredth_of_a_cent(billed, price, usd):
    assert usd_for(billed, price) == usd


def test_estimated_token_counts_are_flagged():
    est = estimate_cost(
        base_model="amazon.nova-lite-v1:0", training_tokens=1_000, epochs=1, exact_tokens=False, catalog=CATALOG
    )
    assert not est.exact_tokens
    assert any("estimate" in note for note in est.notes)


def test_epochs_beyond_the_model_range_are_priced_but_flagged():
    est = estimate_cost(base_model="amazon.nova-pro-v1:0", training_tokens=1_000_000, epochs=8, catalog=CATALOG)
    assert est.usd == 64.0
    assert any("epochs=8" in note and "1 to 5" in note for note in est.notes)


def test_legacy_model_is_flagged():
    est = estimate_cost(
        base_model="anthropic.claude-3-haiku-20240307-v1:0", training_tokens=1, epochs=1, catalog=CATALOG
    )
    assert any("legacy" in note for note in est.notes)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"training_tokens": -1, "epochs": 1}, "training_tokens"),
        ({"training_tokens": 1.5, "epochs": 1}, "training_tokens"),
        ({"training_tokens": True, "epochs": 1}, "training_tokens"),
        ({"training_tokens": 10, "epochs": 0}, "epochs"),
        ({"training_tokens": 10, "epochs": 51}, "epochs"),
        ({"training_tokens": 10, "epochs": 2.0}, "epochs"),
    ],
)
def test_bad_inputs_name_the_argument_and_how_to_fix_it(kwargs, argument):
    with pytest.raises(InvalidInput) as err:
        estimate_cost(base_model="gpt-4o-mini-2024-07-18", **kwargs, catalog=CATALOG)
    assert f"`{argument}`" in err.value.message
    assert err.value.hint


def test_unknown_model_is_invalid_input():
    with pytest.raises(InvalidInput, match="unknown base model"):
        estimate_cost(base_model="gpt-2", training_tokens=10, epochs=1, catalog=CATALOG)


def test_an_override_file_changes_the_estimate(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({
        "as_of": "2026-12-24",
        "models": {"amazon.nova-micro-v1:0": {"training_usd_per_1k_tokens": 0.002},
                   "meta.llama3-2-1b-instruct-v1:0": {"training_usd_per_1k_tokens": 0.0005,
                                                      "price_as_of": "2026-12-20"}},
    }))  # fmt: skip
    catalog = load_catalog(override=path)
    job: _Job = {"base_model": "amazon.nova-micro-v1:0", "training_tokens": 1_000_000, "epochs": 2}
    bundled, overridden = estimate_cost(**job, catalog=CATALOG), estimate_cost(**job, catalog=catalog)
    assert (bundled.usd, overridden.usd) == (2.0, 4.0)
    assert overridden.price_as_of == "2026-12-24"
    llama = estimate_cost(
        base_model="meta.llama3-2-1b-instruct-v1:0", training_tokens=2_000_000, epochs=1, catalog=catalog
    )
    assert (llama.usd, llama.price_as_of) == (1.0, "2026-12-20")
