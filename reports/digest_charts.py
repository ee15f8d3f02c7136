"""The digest's charts as PNG: acceptance per agent over the last weeks, and spend per week."""

from __future__ import annotations

from dataclasses import dataclass

from reports.charts import weekly_bars_png, weekly_lines_png
from reports.digest import Digest

MAX_LINES = 8  # agents drawn in the acceptance chart (most drafts first): more lines are unreadable


@dataclass(frozen=True)
class Chart:
    filename: str
    title: str
    png: bytes


def digest_charts(digest: Digest) -> list[Chart]:
    """The charts that have something to show, each named after the week (`digest-2026-W03-acceptance.png`)."""
    week = digest.week.week
    charts = []
    agents = [agent.agent for agent in digest.agents[:MAX_LINES]]
    series = {agent: digest.history.series.get(agent, []) for agent in agents}
    acceptance = weekly_lines_png(
        digest.history.weeks, series, title=f"Acceptance per agent, weeks to {week}", ylabel="acceptance", percent=True
    )
    if acceptance is not None:
        charts.append(Chart(f"digest-{week}-acceptance.png", f"Acceptance per agent, weeks to {week}", acceptance))
    if digest.costs is not None:
        history = digest.costs.history
        stacks = {
            "training": [point.training_usd for point in history],
            "inference": [point.inference_usd for point in history],
        }
        spend = weekly_bars_png(
            [point.week for point in history], stacks, title=f"Spend per week, to {week}", ylabel="USD", money=True
        )
        if spend is not None:
            charts.append(Chart(f"digest-{week}-spend.png", f"Spend per week, to {week}", spend))
    return charts
