"""A/B experiment commands, shared by `finetune` and `/finetune`: create, status (also `ab ID`), stop, conclude.

`ab create support --alias production` tests the alias's canary against its
stable version; `ab create support --templates greet-v1,greet-v2` two prompt
templates of agent `support`. `ab` alone lists experiments, running ones first.
The core checks the policy of every change itself; these callbacks only parse
and call.
"""

from __future__ import annotations

import click

from bot.commands import CONTEXT, Invocation, json_option
from core.evaluation import (
    EXPERIMENT_ID_PREFIX,
    Experiment,
    ExperimentList,
    ExperimentReport,
    MetricResult,
    conclude_experiment,
    create_experiment,
    experiment_report,
    list_experiments,
    points,
    stop_experiment,
)
from core.vocabulary import ExperimentMetric, values

METRIC = click.Choice(values(ExperimentMetric))


# Text shared by the terminal and Slack -----------------------------------------------------------


def experiment_line(experiment: Experiment) -> str:
    """`ab_1a2b running: support@production: support:v3 against support:v2 (acceptance)`."""
    ended = f" {experiment.verdict}" if experiment.verdict else ""
    return f"{experiment.id} {experiment.status}{ended}: {experiment.title} ({experiment.metric})"


def split_text(report: ExperimentReport) -> str:
    """`20% to the treatment (the canary's share)`."""
    share = report.analysis.expected_treatment_share
    if share is None:
        share = report.experiment.split
    whose = "the canary's share" if report.experiment.alias else "as configured"
    return f"{share:.0%} to the treatment ({whose})" if share is not None else "no outcome yet"


def srm_text(report: ExperimentReport) -> str:
    """`2,410 and 590 outcomes, as the split predicts (SRM p = 0.65)`, or the mismatch."""
    analysis = report.analysis
    counts = f"{analysis.control_n:,} control and {analysis.treatment_n:,} treatment outcomes"
    srm = analysis.srm
    if srm is None:
        return counts
    judged = "do NOT match the split: no verdict stands" if srm.mismatch else "match the split"
    return f"{counts}, which {judged} (SRM p = {srm.p_value:.2g})"


def verdict_text(report: ExperimentReport) -> str:
    """The verdict's sentence, and the day its look reached it."""
    analysis = report.analysis
    reached = f" Reached at the look of {analysis.decided_on}." if analysis.decided_on else ""
    return f"{analysis.reason}{reached}"


def difference_text(result: MetricResult) -> str:
    """`−16.5 points [−20.9, −12.3]` (the fixed-horizon interval), or `-`."""
    if result.difference is None:
        return "-"
    scale = 100 if result.rate else 1
    interval = result.interval
    shown = f" [{interval.low * scale:+.3g}, {interval.high * scale:+.3g}]" if interval else ""
    return (points(result.difference) if result.rate else f"{result.difference:+.3g}") + shown


def value_text(result: MetricResult, arm: str) -> str:
    """`58.8% (n=590)`: one arm's rate or mean, and how many outcomes carry it."""
    value = getattr(result, arm)
    if value.value is None:
        return "no outcomes"
    shown = f"{value.value:.1%}" if result.rate else f"{value.value:.3g}"
    return f"{shown} (n={value.n:,})"


def tests_text(result: MetricResult) -> str:
    """`p 9.9e-16 fixed, 2.8e-12 always-valid, 0.00048 Holm`."""
    return (
        f"p {p_text(result.p_value)} fixed, {p_text(result.sequential_p_value)} always-valid,"
        f" {p_text(result.adjusted_p_value)} Holm"
    )


def p_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"


# Commands ----------------------------------------------------------------------------------------


class ExperimentGroup(click.Group):
    """`ab ID` is `ab status ID`: the short form people type in Slack. Any other unknown word stays a usage error."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0].startswith(EXPERIMENT_ID_PREFIX):
            args = ["status", *args]
        return super().resolve_command(ctx, args)


@click.group(
    "ab",
    cls=ExperimentGroup,
    context_settings=CONTEXT,
    invoke_without_command=True,
    short_help="Online A/B experiments: create, status (ab ID), stop, conclude.",
)
@json_option
@click.pass_context
def ab_group(ctx: click.Context) -> ExperimentList | None:
    """Without a subcommand, list experiments, running ones first; `ab ID` shows one."""
    if ctx.invoked_subcommand is None:
        return list_experiments(ctx.obj.store)
    return None


@ab_group.command("create", context_settings=CONTEXT, short_help="Test an alias's canary, or two templates.")
@click.argument("name")
@click.option("--alias", metavar="ALIAS", help="Test this alias's canary against its stable version [production].")
@click.option("--templates", metavar="CONTROL,TREATMENT", help="Compare two prompt templates of agent NAME instead.")
@click.option("--metric", type=METRIC, default=ExperimentMetric.ACCEPTANCE.value, show_default=True,
              help="The primary metric.")  # fmt: skip
@click.option("--also", "secondary", type=METRIC, multiple=True, help="A secondary metric (repeatable).")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Significance level.")
@click.option("--split", type=click.IntRange(1, 99), metavar="PCT", help="Templates: the treatment's share [50].")
@click.option("--effect", type=click.FloatRange(0, 50, min_open=True, max_open=True), default=5.0, metavar="POINTS",
              show_default=True, help="The change of the acceptance rate to plan the sample size for.")  # fmt: skip
@json_option
@click.pass_obj
def ab_create(
    inv: Invocation, name: str, alias: str | None, templates: str | None, metric: str, secondary: tuple[str, ...],
    alpha: float, split: int | None, effect: float,
) -> ExperimentReport:  # fmt: skip
    """Start an experiment on model NAME: its --alias's canary (treatment) against the alias's stable version
    (control), split as the canary share says, on the outcomes that name them (feedback's model_version and arm).
    With --templates CONTROL,TREATMENT, compare two prompt templates of agent NAME instead (feedback's template),
    split --split percent to the treatment. Peeking is fine: the verdict uses an always-valid sequential test."""
    names = None if templates is None else [part.strip() for part in templates.split(",")]
    return create_experiment(
        inv.services, actor=inv.actor, name=name, alias=alias, templates=names, metric=metric,
        secondary=list(secondary), alpha=alpha, effect=effect / 100, split=split,
    )  # fmt: skip


@ab_group.command("status", context_settings=CONTEXT, short_help="An experiment's numbers and verdict (ab ID).")
@click.argument("experiment_id", metavar="ID")
@json_option
@click.pass_obj
def ab_status(inv: Invocation, experiment_id: str) -> ExperimentReport:
    """Show experiment ID: each arm's rate or mean with its interval, the tests of the difference, the split
    check, the sample size it needs and the verdict so far (`ab ID` for short)."""
    return experiment_report(inv.services, experiment_id)


_reason = click.option("--reason", help="Why, for the record and the channel.")


@ab_group.command("stop", context_settings=CONTEXT, short_help="End an experiment without a verdict.")
@click.argument("experiment_id", metavar="ID")
@_reason
@json_option
@click.pass_obj
def ab_stop(inv: Invocation, experiment_id: str, reason: str | None) -> ExperimentReport:
    """End experiment ID without recording a verdict; its last analysis is kept."""
    return stop_experiment(inv.services, actor=inv.actor, experiment_id=experiment_id, note=reason)


@ab_group.command("conclude", context_settings=CONTEXT, short_help="End an experiment with its verdict.")
@click.argument("experiment_id", metavar="ID")
@_reason
@json_option
@click.pass_obj
def ab_conclude(inv: Invocation, experiment_id: str, reason: str | None) -> ExperimentReport:
    """End experiment ID with its verdict as it stands (winner, loser or inconclusive), kept and posted to the
    channel."""
    return conclude_experiment(inv.services, actor=inv.actor, experiment_id=experiment_id, note=reason)


SHARED: tuple[click.Command, ...] = (ab_group,)
