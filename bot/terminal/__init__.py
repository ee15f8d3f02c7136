"""Results rendered for a terminal with rich: one module per capability, the glue in `output`."""

from bot.terminal import (  # noqa: F401 - each registers its capability's renderers
    analytics,
    data,
    evaluation,
    experiments,
    loop,
    platform,
    registry,
    reports,
    templates,
    training,
)
from bot.terminal.output import emit, progress_bar, render

__all__ = ["emit", "progress_bar", "render"]
