"""Slack: the bolt app, its listeners, Block Kit renderers per capability, and the outbox delivery."""
