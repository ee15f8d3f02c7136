"""Evaluation commands: a candidate model against a baseline on held-out examples, with a judge.

`eval run CANDIDATE --baseline B` (or just `eval CANDIDATE --baseline B`, as
`/finetune eval support:v4 --baseline production` reads) runs in the
foreground at a terminal, with a progress bar; from Slack it is queued and
`finetune serve` runs it, posting one message that it edits as it goes.
`eval show ID` and `eval list` read them back. The core checks the policy
(operators), both models, the judge and the cost cap before anything runs.
"""

from __future__ import annotations

import math
from typing import Any

import click

from bot.commands import CONTEXT, Invocation, json_option
from core import evaluation
from core.evaluation import (
    METRICS,
    Evaluation,
    EvaluationList,
    EvaluationSummary,
    LatencySummary,
    MetricSummary,
    Scale,
)
from core.inference import DEFAULT_MAX_NEW_TOKENS, MAX_NEW_TOKENS
from core.vocabulary import Face

# Text shared by the terminal and Slack ---------------------------------------------------------

BAR_WIDTH = 20


def state_text(status: str, reason: str | None) -> str:
    """`succeeded`, or `stopped: cost cap: $0.0200 spent of $0.0200 after 5 of 12 examples`."""
    return f"{status}: {reason}" if reason else status


def progress_text(done: int, total: int | None, cost_usd: float, *, cap: float | None = None) -> str:
    """`5 of 12 examples, $0.0123 spent (cap $1.00)`."""
    examples = f"{done} of {total} examples" if total is not None else f"{done} examples"
    spent = f"${cost_usd:,.4f} spent" + (f" (cap ${cap:,.2f})" if cap is not None else "")
    return f"{examples}, {spent}"


def progress_bar(done: int, total: int | None) -> str:
    """`▓▓▓▓▓░░░░░░░░░░░░░░░` for 5 of 20."""
    filled = BAR_WIDTH * done // total if total else 0
    return "\u2593" * filled + "\u2591" * (BAR_WIDTH - filled)


def metric_text(summary: MetricSummary) -> str:
    """A metric's mean and interval: `64% (55-72%)` for a rate, `0.812 (0.740-0.880)` for a score."""
    if summary.mean is None:
        return "n/a"
    spec = METRICS[summary.metric]
    if spec.scale is Scale.RATE:
        shown = f"{summary.mean:.0%}"
        interval = summary.interval and f"{summary.interval.low * 100:.0f}-{summary.interval.high * 100:.0f}%"
    elif spec.scale is Scale.SCORE:
        shown = f"{summary.mean:.3f}"
        interval = summary.interval and f"{summary.interval.low:.3f}-{summary.interval.high:.3f}"
    else:
        shown = f"{summary.mean:,.1f}"
        interval = summary.interval and f"{summary.interval.low:,.1f}-{summary.interval.high:,.1f}"
    return f"{shown} ({interval})" if interval else shown


def metric_rows(summary: EvaluationSummary) -> list[tuple[str, str, str]]:
    """(metric, candidate, baseline) for every metric, then latency and cost."""
    baseline = {found.metric: found for found in summary.baseline.metrics}
    rows = [
        (str(found.metric), metric_text(found), metric_text(baseline[found.metric]) if found.metric in baseline else "")
        for found in summary.candidate.metrics
    ]
    cand, base = summary.candidate, summary.baseline
    if cand.latency is not None and base.latency is not None:
        rows.append(("latency p50 / p95 (ms)", _latency(cand.latency), _latency(base.latency)))
    rows.append(("cost", _cost(cand.cost_usd, cand.unpriced), _cost(base.cost_usd, base.unpriced)))
    return rows


def judge_text(summary: EvaluationSummary) -> str:
    """The judge's tally in one sentence, unreadable answers (counted as ties) included."""
    judged = summary.judge
    if judged is None:
        return "No pair was judged."
    h2h = judged.head_to_head
    text = (
        f"{judged.model}: {h2h.wins} wins, {h2h.losses} losses, {h2h.ties} ties over {h2h.pairs} pairs judged in both "
        f"orders; win rate {h2h.win_rate:.0%} (CI {h2h.interval.low:.0%}-{h2h.interval.high:.0%}), order consistency "
        f"{h2h.order_consistency:.0%}, sign test p = {h2h.p_value:.2g}"
    )
    if judged.unreadable:
        text += f"; {judged.unreadable} of {judged.answers} answers unreadable, counted as ties"
    return text + f"; {_cost(judged.cost_usd, judged.unpriced)}."


def calibration_text(summary: EvaluationSummary) -> str:
    """How far the judge agrees with the users' own edits."""
    calibration = summary.calibration
    found = calibration.result
    if found is None:
        return f"Not calibrated: {calibration.note}." if calibration.note else "Not calibrated."
    kappa = "n/a" if found.kappa is None else f"{found.kappa:.2f}"
    if found.kappa_interval is not None:
        kappa += f" (CI {found.kappa_interval.low:.2f}-{found.kappa_interval.high:.2f})"
    text = (
        f"On {calibration.examples} edited examples (both orders, {found.n} answers) the judge picks the user's final "
        f"text {found.accuracy:.0%} of the time; Cohen's kappa {kappa}"
    )
    if calibration.unreadable:
        text += f"; {calibration.unreadable} answers unreadable"
    return text + f"; {_cost(calibration.cost_usd, calibration.unpriced)}."


def verdict_text(summary: EvaluationSummary) -> str | None:
    """The verdict's reason, and acceptance's difference beside it."""
    parts = []
    if summary.decision is not None:
        parts.append(summary.decision.reason)
    if summary.acceptance is not None:
        found = summary.acceptance
        parts.append(
            f"Acceptance {found.candidate_mean:.3f} against {found.baseline_mean:.3f} ({found.difference:+.3f}, "
            f"Welch p = {found.p_value:.2g})."
        )
    return " ".join(parts) or None


def _latency(latency: LatencySummary) -> str:
    return f"{latency.p50_ms:,.0f} / {latency.p95_ms:,.0f}"


def _cost(usd: float, unpriced: int) -> str:
    return f"${usd:,.4f}" + (f" (+{unpriced} unpriced)" if unpriced else "")


class _Usd(click.ParamType):
    """A positive, finite amount of US dollars (click's own float takes `nan` and `inf`)."""

    name = "usd"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        try:
            amount = float(value)
        except (TypeError, ValueError):
            amount = math.nan
        if not math.isfinite(amount) or not 0 < amount <= evaluation.MAX_COST_USD:
            self.fail(
                f"{value!r} is no amount of US dollars above 0 (at most {evaluation.MAX_COST_USD:,.0f}); "
                "write e.g. 5 or 0.50.",
                param,
                ctx,
            )
        return amount


class _RunByDefault(click.Group):
    """`eval CANDIDATE ...` means `eval run CANDIDATE ...`: a first word that is no subcommand starts a run."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] != "--json":
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(
    "eval",
    cls=_RunByDefault,
    context_settings=CONTEXT,
    invoke_without_command=True,
    short_help="Evaluations of a candidate against a baseline: run, show, list.",
)
@json_option
@click.pass_context
def eval_group(ctx: click.Context) -> EvaluationList | None:
    """Without a subcommand, list recent evaluations; `eval CANDIDATE --baseline B` runs one."""
    if ctx.invoked_subcommand is None:
        return evaluation.list_evaluations(ctx.obj.store)
    return None


@eval_group.command("run", context_settings=CONTEXT, short_help="Compare a candidate with a baseline, judged.")
@click.argument("candidate")
@click.option(
    "--baseline", required=True, help="A version, an alias of the candidate's model (production), or PROVIDER:MODEL."
)
@click.option("--dataset", "dataset", metavar="VERSION", help="Dataset version (name@N); default: the candidate's own.")
@click.option("--judge", metavar="MODEL", help="The judge as PROVIDER:MODEL; default: FINETUNE_JUDGE_MODEL.")
@click.option("--max-cost", "max_cost", type=_Usd(), metavar="USD", help="Stop once this much would be spent.")
@click.option("--limit", type=click.IntRange(1, evaluation.MAX_LIMIT), metavar="N", help="Measure N examples.")
@click.option(
    "--max-tokens",
    "max_tokens",
    type=click.IntRange(1, MAX_NEW_TOKENS),
    default=DEFAULT_MAX_NEW_TOKENS,
    show_default=True,
    metavar="N",
    help="Longest answer each model may write.",
)
@json_option
@click.pass_obj
def eval_run(
    inv: Invocation, candidate: str, baseline: str, dataset: str | None, judge: str | None, max_cost: float | None,
    limit: int | None, max_tokens: int,
) -> Evaluation:  # fmt: skip
    """Compare CANDIDATE (a version such as support:v4, support@candidate, or PROVIDER:MODEL) with --baseline on
    the dataset version's test split (its validation split when it has no test split): both answer every example,
    each answer is scored against the user's final text, and the judge compares every pair in both orders and is
    checked against the users' own edits. At a terminal it runs now; from Slack `finetune serve` runs it and posts
    its progress. --max-cost stops it cleanly, keeping what was measured."""
    options: dict[str, Any] = {
        "candidate": candidate, "baseline": baseline, "dataset_version": dataset, "judge": judge,
        "max_cost_usd": max_cost, "limit": limit, "max_new_tokens": max_tokens, "actor": inv.actor,
    }  # fmt: skip
    if inv.actor.face is not Face.CLI:
        return evaluation.request_evaluation(inv.services, key=inv.request_key, **options)
    spent = [0.0]  # the run says what it spent just before it counts the example done

    def spend(cost_usd: float) -> None:
        spent[0] = cost_usd

    with inv.progress(f"Evaluating {candidate} against {baseline}") as advance:
        return evaluation.run_evaluation(
            inv.services, on_spend=spend, on_progress=lambda done, total: advance(done, total=total, cost_usd=spent[0]),
            **options,
        )  # fmt: skip


@eval_group.command("show", context_settings=CONTEXT, short_help="One evaluation: progress, metrics, verdict.")
@click.argument("evaluation_id", metavar="ID")
@json_option
@click.pass_obj
def eval_show(inv: Invocation, evaluation_id: str) -> Evaluation:
    """Show evaluation ID: where it stands, each side's metrics with their intervals, the judge's win rate, its
    agreement with the users, and the verdict."""
    return evaluation.get_evaluation(inv.store, evaluation_id)


@eval_group.command("list", context_settings=CONTEXT, short_help="Recent evaluations, newest first.")
@json_option
@click.pass_obj
def eval_list(inv: Invocation) -> EvaluationList:
    """List recent evaluations with their state and headline."""
    return evaluation.list_evaluations(inv.store)


SHARED = (eval_group,)
TERMINAL: tuple[click.Command, ...] = ()
