"""How close a model's output comes to what the user finally sent, per example and on average.

The reference of every metric is the user's final text: what they sent after
editing a draft. Per example (`score_example`):

- `acceptance`: the product's own acceptance measure (`core.data.edits.compare`)
  with the model's output in the draft's place: the share of the output's
  characters that survive into the final text. Adding text does not lower it.
- `edit_distance`: the characters that word-level diff deletes from the output
  plus those it adds, over the characters of both texts: 0.0 for the same text
  (reflowed whitespace included), 1.0 when nothing matches. `edit_similarity` is
  1 - `edit_distance`. Unlike acceptance, it also counts what the user had to add.
- `rouge_l`: ROUGE-L F1 (Lin 2004): the longest common subsequence of tokens,
  as precision over the output's tokens and recall over the reference's, with
  β = 1 (so F1 = 2PR / (P + R), as in Google's `rouge-score`). Tokens are runs
  of letters and digits, case-folded (rouge-score keeps only ASCII a-z0-9; this
  keeps every script). Symmetric in its two texts.
- `exact_match`: the same text; by default after collapsing whitespace runs
  and case-folding (`normalize_exact=False` compares the raw strings).
- `json_valid`: whether the output parses as JSON of the reference's kind
  (object or array). None when the reference is not a JSON object or array:
  validity only means something where the user's text is structured.
- `output_chars`, `output_tokens`: the output's length, tokens counted by the
  model's own `Tokenizer` (exact for tiktoken models, an estimate otherwise).

`summarize` gives each metric's mean with a confidence interval: Wilson's
interval for yes/no metrics (exact match, JSON validity), Student's t interval
for the others, clipped to the metric's range.

scipy and statsmodels are imported inside the functions that use them: together they cost about
0.4 s, which every `finetune` command would otherwise pay at start-up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from core.data.edits import EditSummary, compare
from core.data.tokens import Tokenizer
from core.errors import InvalidInput
from core.evaluation.base import DEFAULT_CONFIDENCE, Interval, check_level

_TOKEN = re.compile(r"[^\W_]+")  # letters and digits of every script; punctuation and underscores separate
_SPACE = re.compile(r"\s+")


class Metric(StrEnum):
    """A per-example metric; each is a field of `ExampleScores` and has an entry in `METRICS`."""

    ACCEPTANCE = "acceptance"
    EDIT_DISTANCE = "edit_distance"
    EDIT_SIMILARITY = "edit_similarity"
    ROUGE_L = "rouge_l"
    EXACT_MATCH = "exact_match"
    JSON_VALID = "json_valid"
    OUTPUT_CHARS = "output_chars"
    OUTPUT_TOKENS = "output_tokens"


class Scale(StrEnum):
    """What kind of number a metric is, which decides its interval."""

    SCORE = "score"  # in [0, 1]: t interval clipped to [0, 1]
    RATE = "rate"  # yes or no per example: Wilson interval of the share of yes
    AMOUNT = "amount"  # a count: t interval clipped at 0


@dataclass(frozen=True)
class MetricSpec:
    scale: Scale
    higher_is_better: bool | None  # None: neither direction is better (lengths)
    meaning: str


METRICS: dict[Metric, MetricSpec] = {
    Metric.ACCEPTANCE: MetricSpec(Scale.SCORE, True, "share of the output's characters the user's final text keeps"),
    Metric.EDIT_DISTANCE: MetricSpec(Scale.SCORE, False, "characters changed over both texts' characters"),
    Metric.EDIT_SIMILARITY: MetricSpec(Scale.SCORE, True, "1 - edit distance"),
    Metric.ROUGE_L: MetricSpec(Scale.SCORE, True, "ROUGE-L F1 over tokens"),
    Metric.EXACT_MATCH: MetricSpec(Scale.RATE, True, "the output is the user's final text"),
    Metric.JSON_VALID: MetricSpec(Scale.RATE, True, "the output parses as JSON like the user's final text"),
    Metric.OUTPUT_CHARS: MetricSpec(Scale.AMOUNT, None, "characters in the output"),
    Metric.OUTPUT_TOKENS: MetricSpec(Scale.AMOUNT, None, "tokens in the output"),
}


class RougeL(BaseModel):
    """ROUGE-L of an output against a reference."""

    model_config = ConfigDict(frozen=True)

    precision: float = Field(description="Longest common subsequence over the output's tokens.")
    recall: float = Field(description="Longest common subsequence over the reference's tokens.")
    f1: float


class ExampleScores(BaseModel):
    """Every metric of one model output against the user's final text (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    acceptance: float
    edit_distance: float
    edit_similarity: float
    rouge_l: float
    exact_match: bool
    json_valid: bool | None = Field(description="None when the final text is not a JSON object or array.")
    output_chars: int
    output_tokens: int


class MetricSummary(BaseModel):
    """A metric's mean over the examples it applies to, with a confidence interval."""

    model_config = ConfigDict(frozen=True)

    metric: Metric
    n: int = Field(description="Examples the metric applies to.")
    mean: float | None = Field(description="None when it applies to no example.")
    interval: Interval | None = Field(description="None when there are too few examples for one.")
    method: str = Field(description="How the interval is computed.")


def tokens(text: str) -> list[str]:
    """ROUGE tokens: case-folded runs of letters and digits."""
    return _TOKEN.findall(text.casefold())


def lcs_length(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Length of the longest common subsequence of `a` and `b`.

    Bit-parallel (Allison & Dix 1986; Hyyrö 2004): one bit per element of the
    longer sequence in a Python integer, one pass over the shorter one, so two
    texts of 100,000 tokens each take about a second, not hours of a cell-by-cell table.
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict[Hashable, int] = {}
    for i, item in enumerate(a):
        masks[item] = masks.get(item, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full  # a zero bit marks where the common subsequence has grown
    for item in b:
        u = v & masks.get(item, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l(output: str, reference: str) -> RougeL:
    """ROUGE-L of `output` against `reference`; two texts without tokens score 1.0 (nothing differs)."""
    out, ref = tokens(_text("output", output)), tokens(_text("reference", reference))
    if not out and not ref:
        return RougeL(precision=1.0, recall=1.0, f1=1.0)
    common = lcs_length(out, ref)
    if common == 0:
        return RougeL(precision=0.0, recall=0.0, f1=0.0)
    precision, recall = common / len(out), common / len(ref)
    return RougeL(precision=precision, recall=recall, f1=2 * precision * recall / (precision + recall))


def normalize(text: str) -> str:
    """Whitespace runs collapsed to one space, ends stripped, case folded."""
    return _SPACE.sub(" ", text).strip().casefold()


def exact_match(output: str, reference: str, *, normalize_text: bool = True) -> bool:
    """Whether `output` is `reference` (after `normalize` on both unless `normalize_text` is False)."""
    _text("output", output)
    _text("reference", reference)
    if normalize_text:
        return normalize(output) == normalize(reference)
    return output == reference


def json_valid(output: str, reference: str) -> bool | None:
    """Whether `output` parses as JSON of the reference's kind; None when the reference is no JSON object or array."""
    wanted = _json_kind(_text("reference", reference))
    if wanted is None:
        return None
    return _json_kind(_text("output", output)) is wanted


def edit_distance(output: str, reference: str) -> float:
    """Characters the word diff deletes from `output` and adds from `reference`, over both texts' characters."""
    return _edits(output, reference)[1]


def score_example(output: str, reference: str, *, tokenizer: Tokenizer, normalize_exact: bool = True) -> ExampleScores:
    """Every metric of a model's `output` against the user's final text `reference`."""
    summary, distance = _edits(output, reference)
    return ExampleScores(
        acceptance=summary.acceptance,
        edit_distance=distance,
        edit_similarity=1.0 - distance,
        rouge_l=rouge_l(output, reference).f1,
        exact_match=exact_match(output, reference, normalize_text=normalize_exact),
        json_valid=json_valid(output, reference),
        output_chars=len(output),
        output_tokens=tokenizer.count_text(output),
    )


def summarize(scores: Sequence[ExampleScores], *, confidence: float = DEFAULT_CONFIDENCE) -> list[MetricSummary]:
    """Each metric's mean over `scores` with its interval at `confidence`, in `Metric` order."""
    level = check_level("confidence", confidence)
    return [_summary(metric, _values(scores, metric), level) for metric in Metric]


def _values(scores: Sequence[ExampleScores], metric: Metric) -> list[float]:
    values = (getattr(score, metric.value) for score in scores)
    return [float(value) for value in values if value is not None]


def _summary(metric: Metric, values: list[float], confidence: float) -> MetricSummary:
    from statsmodels.stats.proportion import proportion_confint
    from statsmodels.stats.weightstats import (
        DescrStatsW,
    )

    spec = METRICS[metric]
    if not values:
        return MetricSummary(metric=metric, n=0, mean=None, interval=None, method="none: no example applies")
    mean = float(np.mean(values))
    if spec.scale is Scale.RATE:
        low, high = proportion_confint(round(sum(values)), len(values), alpha=1 - confidence, method="wilson")
        method = "Wilson score interval"
    elif len(values) < 2:
        return MetricSummary(metric=metric, n=1, mean=mean, interval=None, method="none: one example")
    else:
        low, high = DescrStatsW(np.asarray(values)).tconfint_mean(alpha=1 - confidence)
        low, high = max(float(low), 0.0), (float(high) if spec.scale is Scale.AMOUNT else min(float(high), 1.0))
        method = "Student's t interval"
    interval = Interval(low=float(low), high=float(high), confidence=confidence)
    return MetricSummary(metric=metric, n=len(values), mean=mean, interval=interval, method=method)


def _edits(output: str, reference: str) -> tuple[EditSummary, float]:
    """The product's comparison of `output` (as the draft) with `reference` (as the final text), and the edit distance."""
    summary = compare(_text("output", output), _text("reference", reference))
    total = len(output) + len(reference)
    return summary, (summary.deleted_chars + summary.added_chars) / total if total else 0.0


def _json_kind(text: str) -> type | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        return None
    return type(value) if isinstance(value, dict | list) else None


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"`{name}` must be text, got {type(value).__name__}.", hint="Pass a string.", argument=name)
    return value
