"""PNG charts for Slack messages and digests (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # before pyplot: render to memory on servers without a display
import matplotlib.pyplot as plt

LOSS_KEYS = ("train_loss", "valid_loss")


def loss_curve_png(points: dict[str, list[tuple[int, float]]], *, title: str) -> bytes | None:
    """A line chart of loss per step, one line per series (`train_loss`, `valid_loss`); None without data."""
    return line_chart_png(points, title=title, xlabel="step", ylabel="loss")


def line_chart_png(points: dict[str, list[tuple[int, float]]], *, title: str, xlabel: str, ylabel: str) -> bytes | None:
    """A line chart of one value per step (a training step, a day), one line per named series; None without data."""
    series = {name: sorted(values) for name, values in points.items() if values}
    if not series:
        return None
    figure, axes = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    try:
        for name, values in series.items():
            steps, losses = zip(*values, strict=False)
            axes.plot(
                steps, losses, marker="o" if len(values) < 30 else None, linewidth=1.6, label=name.replace("_", " ")
            )
        axes.set_title(title, fontsize=11)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        axes.legend(frameon=False)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)


PALETTE = ("#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d")
WEEKLY_SIZE = (6.0, 3.2)  # inches: about as wide as a chart is shown (half a laptop screen, a Slack message)
WEEKLY_DPI = 130


def weekly_lines_png(
    weeks: list[str], series: dict[str, list[float | None]], *, title: str, ylabel: str, percent: bool = False
) -> bytes | None:
    """One line per named series over labelled weeks (a gap where a week has no value); None without data."""
    shown = {name: values for name, values in series.items() if any(v is not None for v in values)}
    if not weeks or not shown:
        return None
    figure, axes = plt.subplots(figsize=WEEKLY_SIZE, dpi=WEEKLY_DPI)
    try:
        positions = list(range(len(weeks)))
        for number, (name, values) in enumerate(shown.items()):
            points = [(x, v * 100 if percent else v) for x, v in zip(positions, values, strict=True) if v is not None]
            xs, ys = zip(*points, strict=True)
            axes.plot(xs, ys, marker="o", markersize=4, linewidth=2, label=name, color=PALETTE[number % len(PALETTE)])
        _weekly_axes(axes, weeks, title=title, ylabel=ylabel)
        if percent:
            axes.yaxis.set_major_formatter(lambda value, _: f"{value:.0f}%")
        axes.legend(frameon=False, fontsize=9, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _png(figure)
    finally:
        plt.close(figure)


def weekly_bars_png(
    weeks: list[str], stacks: dict[str, list[float]], *, title: str, ylabel: str, money: bool = False
) -> bytes | None:
    """Stacked bars per labelled week, one stack per named series; None when every value is zero."""
    if not weeks or not any(any(values) for values in stacks.values()):
        return None
    figure, axes = plt.subplots(figsize=WEEKLY_SIZE, dpi=WEEKLY_DPI)
    try:
        positions = list(range(len(weeks)))
        bottom = [0.0] * len(weeks)
        for number, (name, values) in enumerate(stacks.items()):
            axes.bar(positions, values, bottom=bottom, width=0.6, label=name, color=PALETTE[number % len(PALETTE)])
            bottom = [low + value for low, value in zip(bottom, values, strict=True)]
        _weekly_axes(axes, weeks, title=title, ylabel=ylabel)
        if money:
            axes.yaxis.set_major_formatter(lambda value, _: f"${value:,.0f}")
        axes.legend(frameon=False, fontsize=9, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return _png(figure)
    finally:
        plt.close(figure)


def _weekly_axes(axes: plt.Axes, weeks: list[str], *, title: str, ylabel: str) -> None:
    axes.set_xticks(range(len(weeks)), [week.split("-")[-1] for week in weeks], fontsize=9)
    axes.tick_params(axis="y", labelsize=9)
    axes.set_title(title, fontsize=11, loc="left")
    axes.set_ylabel(ylabel, fontsize=10)
    axes.grid(axis="y", alpha=0.3)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)


def _png(figure: plt.Figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
