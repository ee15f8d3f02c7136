"""Webhook commands: what went to the applications' endpoints, and an admin's retry or discard (shared with Slack)."""

from __future__ import annotations

import click

from bot.commands import CONTEXT, Invocation, json_option
from core.platform import webhooks

DELIVERY_ID = click.IntRange(1, 2**63 - 1)  # what SQLite can store: a larger number is a usage error, not a crash


@click.group(
    "webhooks",
    context_settings=CONTEXT,
    invoke_without_command=True,
    short_help="Webhook deliveries to applications: list, retry, discard (admin).",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=webhooks.LIST_LIMIT, show_default=True, help="How many.")
@json_option
@click.pass_context
def webhooks_group(ctx: click.Context, limit: int) -> webhooks.WebhookList | None:
    """Without a subcommand, list the endpoints, the latest deliveries (newest first) and the dead letters."""
    if ctx.invoked_subcommand is None:
        inv: Invocation = ctx.obj
        return webhooks.listing(inv.store, actor=inv.actor, limit=limit)
    return None


@webhooks_group.command("retry", context_settings=CONTEXT, short_help="Try a dead webhook delivery again (admin).")
@click.argument("delivery_id", metavar="ID", type=DELIVERY_ID)
@json_option
@click.pass_obj
def webhooks_retry(inv: Invocation, delivery_id: int) -> webhooks.WebhookChange:
    """Give delivery ID (see `webhooks`) a fresh set of attempts, starting now."""
    return webhooks.retry(inv.store, actor=inv.actor, delivery_id=delivery_id)


@webhooks_group.command("discard", context_settings=CONTEXT, short_help="Stop delivering a webhook (admin).")
@click.argument("delivery_id", metavar="ID", type=DELIVERY_ID)
@json_option
@click.pass_obj
def webhooks_discard(inv: Invocation, delivery_id: int) -> webhooks.WebhookChange:
    """Stop trying to deliver delivery ID (see `webhooks`); its row stays, marked discarded."""
    return webhooks.discard(inv.store, actor=inv.actor, delivery_id=delivery_id)


SHARED: tuple[click.Command, ...] = (webhooks_group,)
