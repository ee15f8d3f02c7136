"""Pure functions from results to Slack Block Kit: one module per capability, the kit in `kit`."""

from bot.slack.blocks import data, evaluation, experiments, notifications, platform, registry, training  # noqa: F401 - each registers its renderers
from bot.slack.blocks.kit import Attachment, SlackMessage, render, render_outcome
from bot.slack.blocks.notifications import render_message

__all__ = ["Attachment", "SlackMessage", "render", "render_message", "render_outcome"]
