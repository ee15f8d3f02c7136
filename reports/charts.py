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
