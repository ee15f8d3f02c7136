"""Per-example metrics against the user's final text, and their means with intervals.

Every number is checked against a value computed another way: published
examples (Lin 2004, Google's rouge-score README, Newcombe 1998), the defining
formula written out here, or a plain dynamic-programming LCS.
"""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from core.data.edits import compare
from core.data.tokens import Tokenizer
from core.errors import InvalidInput
from core.evaluation import (
    METRICS,
    ExampleScores,
    Metric,
    Scale,
    edit_distance,
    exact_match,
    json_valid,
    lcs_length,
    rouge_l,
    score_example,
    summarize,
)

TOKENIZER = Tokenizer()
texts = st.text(alphabet=st.sampled_from('ab cAB.\n{}[]":1é'), max_size=40)


def score(output: str, reference: str, **options) -> ExampleScores:
    return score_example(output, reference, tokenizer=TOKENIZER, **options)


def dp_lcs(a, b) -> int:
    """The textbook cell-by-cell LCS table, to check the bit-parallel one against."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


# ROUGE-L


def test_rouge_l_matches_lins_examples():
    # Lin (2004), "ROUGE: A Package for Automatic Evaluation of Summaries", section 3.1: against the
    # reference "police killed the gunman", S2 "police kill the gunman" scores 3/4 and S3 "the gunman kill police" 2/4.
    reference = "police killed the gunman"
    assert rouge_l("police kill the gunman", reference).f1 == pytest.approx(0.75)
    assert rouge_l("the gunman kill police", reference).f1 == pytest.approx(0.5)


def test_rouge_l_matches_the_rouge_score_readme():
    # google-research/rouge, rouge_score/README.md: scorer.score('The quick brown fox jumps over the lazy dog',
    # 'The quick brown dog jumps on the log.') gives rougeL precision=0.625, recall=0.5556, fmeasure=0.5882.
    result = rouge_l("The quick brown dog jumps on the log.", "The quick brown fox jumps over the lazy dog")
    assert result.precision == pytest.approx(0.625)
    assert result.recall == pytest.approx(5 / 9)
    assert result.f1 == pytest.approx(0.5882352941176471)


def test_rouge_l_by_hand_with_unequal_lengths():
    # LCS "the cat on the mat" = 5 tokens; P = 5/6, R = 5/7, F1 = 2PR/(P+R) = 10/13.
    result = rouge_l("The cat sat on the mat", "the cat is on the mat today")
    assert (result.precision, result.recall) == (pytest.approx(5 / 6), pytest.approx(5 / 7))
    assert result.f1 == pytest.approx(10 / 13)


def test_rouge_l_tokens_ignore_case_and_punctuation_and_keep_every_script():
    assert rouge_l("Hello, WORLD!", "hello world").f1 == 1.0
    assert rouge_l("привет мир", "Привет, мир").f1 == 1.0
    assert rouge_l("", "").f1 == 1.0 and rouge_l("...", "").f1 == 1.0
    assert rouge_l("words", "").f1 == 0.0 and rouge_l("", "words").f1 == 0.0
    assert rouge_l("alpha beta", "gamma delta").f1 == 0.0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 4), max_size=30), st.lists(st.integers(0, 4), max_size=30))
def test_bit_parallel_lcs_equals_the_dynamic_programming_table(a, b):
    assert lcs_length(a, b) == dp_lcs(a, b) == lcs_length(b, a)


def test_lcs_of_long_texts_finishes_quickly():
    words = [f"w{i % 997}" for i in range(20_000)]
    started = time.monotonic()
    assert lcs_length(words, list(reversed(words))) >= 20
    assert lcs_length(words, words) == 20_000
    assert time.monotonic() - started < 10  # a cell-by-cell table would take many minutes


# Edit distance and acceptance: the product's own measure


def test_acceptance_is_the_products_measure_on_the_models_output():
    output, final = "Thanks for your order. It ships Monday.", "Thanks for your order. It ships Tuesday."
    scores = score(output, final)
    # By hand: the common head "Thanks for your order. It ships " (32 characters) survives, "Monday." (7) is
    # replaced by "Tuesday." (8): acceptance 32/39, distance (7 + 8) / (39 + 40).
    assert scores.acceptance == round(32 / 39, 4) == compare(output, final).acceptance
    assert scores.edit_distance == pytest.approx(15 / 79) == edit_distance(output, final)
    assert scores.edit_similarity == pytest.approx(64 / 79)


def test_edit_distance_ends():
    assert edit_distance("", "") == 0.0
    assert edit_distance("same words here", "same  words\nhere") == 0.0  # reflowing costs nothing
    assert edit_distance("", "all new") == 1.0 and edit_distance("all gone", "") == 1.0
    assert edit_distance("alpha beta", "gamma delta") == 1.0


# Exact match, JSON validity, lengths


def test_exact_match_normalizes_whitespace_and_case_unless_told_not_to():
    assert exact_match("Hello   World\n", "hello world")
    assert not exact_match("Hello   World\n", "hello world", normalize_text=False)
    assert exact_match("hello world", "hello world", normalize_text=False)
    assert not exact_match("hello world!", "hello world")
    assert score("Hello   World\n", "hello world").exact_match
    assert not score("Hello   World\n", "hello world", normalize_exact=False).exact_match


@pytest.mark.parametrize(
    ("output", "reference", "valid"),
    [
        ('{"a": 2}', '{"a": 1}', True),
        ("[1, 2]", "[]", True),
        ("[1]", '{"a": 1}', False),  # JSON, but not the reference's kind
        ('Sure! {"a": 1}', '{"a": 1}', False),
        ('```json\n{"a": 1}\n```', '{"a": 1}', False),
        ('{"a": 1', '{"a": 1}', False),
        ("[" * 100_000, "[]", False),  # deeper than the parser's stack: invalid, not a crash
        ('{"a": 1}', "plain text", None),
        ('{"a": 1}', "42", None),  # a bare number is no structured reference
        ('{"a": 1}', "[" * 100_000, None),
    ],
)
def test_json_validity_only_where_the_reference_is_json(output, reference, valid):
    assert json_valid(output, reference) is valid
    assert score(output, reference).json_valid is valid


def test_lengths_are_the_outputs_characters_and_tokens():
    output = "The quick brown fox jumps over the lazy dog."
    scores = score(output, "anything")
    assert scores.output_chars == len(output)
    assert scores.output_tokens == TOKENIZER.count_text(output) > 0


# Properties


@settings(max_examples=200, deadline=None)
@given(texts, texts)
def test_scores_stay_within_their_bounds(output, reference):
    scores = score(output, reference)
    for metric, spec in METRICS.items():
        value = getattr(scores, metric.value)
        if spec.scale is Scale.AMOUNT:
            assert value >= 0
        elif value is not None:
            assert 0 <= value <= 1, (metric, value)
    assert scores.edit_similarity == pytest.approx(1 - scores.edit_distance)


@settings(max_examples=200, deadline=None)
@given(texts, texts)
def test_rouge_l_and_exact_match_are_symmetric(a, b):
    forward, backward = rouge_l(a, b), rouge_l(b, a)
    assert forward.f1 == pytest.approx(backward.f1)
    assert (forward.precision, forward.recall) == (pytest.approx(backward.recall), pytest.approx(backward.precision))
    assert exact_match(a, b) == exact_match(b, a)


@settings(max_examples=200, deadline=None)
@given(texts)
def test_identity_scores_perfectly(text):
    scores = score(text, text)
    assert scores.acceptance == 1.0 and scores.edit_distance == 0.0 and scores.edit_similarity == 1.0
    assert scores.rouge_l == 1.0 and scores.exact_match
    assert scores.json_valid in (True, None)


def test_every_metric_has_a_spec_and_a_score_field():
    assert set(METRICS) == set(Metric)
    assert set(ExampleScores.model_fields) == {metric.value for metric in Metric}


# Means and intervals


def t_interval(values: list[float], confidence: float) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


def wilson(successes: int, n: int, confidence: float) -> tuple[float, float]:
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def test_wilson_formula_here_matches_newcombes_published_example():
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Stat Med 17:857-872,
    # Table I, method 3 (score): 81/263 gives 0.2553 to 0.3662.
    low, high = wilson(81, 263, 0.95)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


def test_summary_means_and_intervals():
    pairs = [
        ("the cat sat", "the cat sat"),
        ("the dog ran home", "the dog walked home"),
        ('{"a": 1}', '{"a": 2}'),
        ("{broken", '{"b": 1}'),
        ("short", "a much longer final text"),
    ]
    scores = [score(output, reference) for output, reference in pairs]
    by_metric = {summary.metric: summary for summary in summarize(scores, confidence=0.9)}
    assert list(by_metric) == list(Metric)

    rouge = by_metric[Metric.ROUGE_L]
    values = [s.rouge_l for s in scores]
    low, high = t_interval(values, 0.9)
    assert rouge.n == 5 and rouge.mean == pytest.approx(sum(values) / 5)
    assert rouge.interval is not None and rouge.interval.confidence == 0.9
    assert rouge.interval.low == pytest.approx(max(low, 0.0)) and rouge.interval.high == pytest.approx(min(high, 1.0))

    exact = by_metric[Metric.EXACT_MATCH]
    assert exact.n == 5 and exact.mean == pytest.approx(0.2)
    assert exact.interval is not None
    assert (exact.interval.low, exact.interval.high) == tuple(pytest.approx(x) for x in wilson(1, 5, 0.9))

    json_summary = by_metric[Metric.JSON_VALID]  # only the two examples whose final text is JSON
    assert json_summary.n == 2 and json_summary.mean == pytest.approx(0.5)

    chars = by_metric[Metric.OUTPUT_CHARS]
    low, high = t_interval([len(o) for o, _ in pairs], 0.9)
    assert chars.interval is not None
    assert chars.interval.low == pytest.approx(max(low, 0)) and chars.interval.high == pytest.approx(high)


def test_summary_of_too_few_examples_says_so():
    one = summarize([score("a b", "a c")])
    assert all(s.n == 1 for s in one if s.metric is not Metric.JSON_VALID)
    assert next(s for s in one if s.metric is Metric.ROUGE_L).interval is None
    assert next(s for s in one if s.metric is Metric.EXACT_MATCH).interval is not None  # Wilson works from one
    nothing = summarize([])
    assert all(s.n == 0 and s.mean is None and s.interval is None for s in nothing)


def test_identical_scores_give_a_point_interval_inside_the_bounds():
    scores = [score("same", "same")] * 4
    rouge = next(s for s in summarize(scores) if s.metric is Metric.ROUGE_L)
    assert rouge.interval is not None and (rouge.interval.low, rouge.interval.high) == (1.0, 1.0)


# Hostile input


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["list"]])
def test_non_text_is_refused_naming_the_argument(bad):
    with pytest.raises(InvalidInput, match="`output` must be text"):
        score(bad, "reference")
    with pytest.raises(InvalidInput, match="`reference` must be text"):
        rouge_l("output", bad)


@pytest.mark.parametrize("confidence", [0, 1, 1.5, -0.1, float("nan"), "0.95", True])
def test_a_bad_confidence_is_refused_naming_it(confidence):
    with pytest.raises(InvalidInput, match="`confidence`") as caught:
        summarize([], confidence=confidence)
    assert caught.value.hint


def test_long_hostile_texts_are_scored():
    long_output = ("word " * 30_000) + "\ud800"
    scores = score(long_output, "word " * 29_000 + "{" * 5000)
    assert 0 <= scores.rouge_l <= 1 and scores.json_valid is None
