"""Results rendered for a terminal with rich: one module per capability, the glue in `output`."""

from bot.terminal import data, evaluation, experiments, platform, registry, training  # noqa: F401 - each registers its capability's renderers
from bot.terminal.output import emit, progress_bar, render

__all__ = ["emit", "progress_bar", "render"]
