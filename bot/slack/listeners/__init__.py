"""Slack listeners, one module per kind, each with `register(app, services)`.

Every listener acks at once, without touching the database, and answers from a
lazy worker; `redelivery.first_delivery` lets only the first worker of a user
action act.
"""

from __future__ import annotations

from slack_bolt import App

from bot.slack.listeners import actions, commands, digest, home, launch_wizard, loop, patterns, shortcuts, views
from core.services import Services


def register(app: App, services: Services) -> None:
    commands.register(app, services)
    actions.register(app, services)
    digest.register(app, services)
    views.register(app, services)
    home.register(app, services)
    loop.register(app, services)
    shortcuts.register(app, services)
    launch_wizard.register(app, services)
    patterns.register(app, services)
