"""Evaluation tools: agents ask for a candidate to be evaluated against a baseline, and read the result.

An evaluation calls paid models (both sides and the judge), so requesting one needs an operator; it is queued
and `finetune serve` runs it, and `get_evaluation` follows it until its headline is there.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import AfterValidator, Field

from core import evaluation
from core.evaluation import MAX_COST_USD, MAX_LIMIT, Evaluation
from core.inference import DEFAULT_MAX_NEW_TOKENS, MAX_NEW_TOKENS
from mcp_server.tools import CALLS_PROVIDER, ID_LIMIT, READS, Toolbox, Version, call_core

TOOLS = Toolbox()

ModelRef = Annotated[
    str,
    Field(description="A registered version (support:v4), a model's alias (support@candidate; for the baseline a "
          "bare alias of the candidate's model, such as production), a model name (its production version), or a "
          "base model as PROVIDER:MODEL (openai:gpt-4.1-mini, anthropic:claude-sonnet-5-5).", min_length=1,
          max_length=ID_LIMIT),
]  # fmt: skip


def _non_empty_key(key: str | None) -> str | None:
    if key is not None and not key.strip():
        raise ValueError("the idempotency key is empty; pass a non-empty key, or leave `key` out")
    return key


@TOOLS.tool(title="Evaluate model", effect=CALLS_PROVIDER)
def evaluate_model(
    ctx: Context,
    candidate: ModelRef,
    baseline: ModelRef,
    dataset_version: Annotated[
        Version | None,
        Field(description="Dataset version whose held-out examples are measured (name@N, or a name for its "
              "latest); default: the one the candidate was trained on."),
    ] = None,
    judge: Annotated[
        str | None,
        Field(description="The judge as PROVIDER:MODEL or a version; default: the server's FINETUNE_JUDGE_MODEL.",
              max_length=ID_LIMIT),
    ] = None,
    max_cost_usd: Annotated[
        float | None,
        Field(description="Cost cap in US dollars: the run stops before it would pass it, keeping what it measured.",
              gt=0, le=MAX_COST_USD, allow_inf_nan=False),
    ] = None,
    limit: Annotated[
        int | None, Field(description="Measure only the first N examples (in a stable order).", ge=1, le=MAX_LIMIT)
    ] = None,
    max_new_tokens: Annotated[
        int, Field(description="The longest answer each model may write, in tokens.", ge=1, le=MAX_NEW_TOKENS)
    ] = DEFAULT_MAX_NEW_TOKENS,
    key: Annotated[
        str | None,
        AfterValidator(_non_empty_key),
        Field(description="Idempotency key: a retry with the same key returns the same evaluation.",
              max_length=ID_LIMIT),
    ] = None,
) -> Evaluation:  # fmt: skip
    """Evaluate a candidate model against a baseline on a dataset version's held-out examples (its test split,
    else its validation split): both answer every example, each answer is scored against the user's final text
    (acceptance, ROUGE-L, exact match, JSON validity, length, latency, cost), and a judge compares every pair in
    both orders (a disagreement is a tie) and is checked against the users' own edits. Everything is checked
    first; the evaluation is then queued (status `queued`) and `finetune serve` runs it: follow it with
    get_evaluation until its `summary.headline` is there. Needs the operator role."""
    args = {"candidate": candidate, "baseline": baseline, "dataset_version": dataset_version, "judge": judge,
            "max_cost_usd": max_cost_usd, "limit": limit, "max_new_tokens": max_new_tokens, "key": key}  # fmt: skip
    return call_core(ctx, "evaluate_model", args, lambda svc, actor: evaluation.request_evaluation(
        svc, candidate=candidate, baseline=baseline, dataset_version=dataset_version, judge=judge,
        max_cost_usd=max_cost_usd, limit=limit, max_new_tokens=max_new_tokens, actor=actor, key=key,
    ))  # fmt: skip


@TOOLS.tool(title="Get evaluation", effect=READS)
def get_evaluation(
    ctx: Context,
    evaluation_id: Annotated[
        str, Field(description="The evaluation id (ev_...), as evaluate_model returned it.", min_length=1,
                   max_length=ID_LIMIT),
    ],
) -> Evaluation:  # fmt: skip
    """One evaluation: its state (queued, running, succeeded, failed, stopped) and why, its progress (done of
    total examples) and spend, and once measured its summary: each side's metrics with confidence intervals, the
    judge's win rate with its interval, order consistency and sign test, the judge's agreement with the users
    (accuracy, Cohen's kappa), the verdict and the headline."""
    return call_core(ctx, "get_evaluation", {"evaluation_id": evaluation_id},
                     lambda svc, actor: evaluation.get_evaluation(svc.store, evaluation_id))  # fmt: skip
