"""Slack listeners, one module per kind, each with `register(app, services)`."""

from __future__ import annotations

from slack_bolt import App

from bot.slack.listeners import commands, middleware
from core.services import Services


def register(app: App, services: Services) -> None:
    middleware.register(app, services)  # before any listener: redeliveries stop here
    commands.register(app, services)
