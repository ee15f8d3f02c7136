"""Pure functions from results to Slack Block Kit: one module per capability, the kit in `kit`."""

from bot.slack.blocks import (  # noqa: F401 - each registers its renderers
    analytics,
    capture,
    data,
    evaluation,
    experiments,
    loop,
    notifications,
    platform,
    registry,
    reports,
    templates,
    training,
)
from bot.slack.blocks.kit import Attachment, SlackMessage, render, render_outcome
from bot.slack.blocks.notifications import render_message

__all__ = ["Attachment", "SlackMessage", "render", "render_message", "render_outcome"]
