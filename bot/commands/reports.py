"""The weekly digest, in the terminal (`finetune report weekly`) and in Slack (`/finetune report`).

`report` alone is the last full week's digest. The terminal prints it as
Markdown and, with `--html FILE`, writes its self-contained page instead; Slack
answers in Block Kit with the charts attached and a button for each next
action. The callbacks only parse, call `reports.digest.build_digest` and
hand the digest on.
"""

from __future__ import annotations

from pathlib import Path

import click

from bot.commands import CONTEXT, Invocation, Message, json_option
from reports.digest import Digest, build_digest
from reports.render_html import render_html, write_page

WEEK = click.option(
    "--week",
    metavar="YYYY-Www",
    help="The ISO week, Monday to Sunday in FINETUNE_TIMEZONE; default: the last full week.",
)


def _group(*, terminal: bool) -> click.Group:
    """`report` and `report weekly`; the terminal's weekly also writes the page with --html."""

    @click.group(
        "report",
        context_settings=CONTEXT,
        invoke_without_command=True,
        short_help="The weekly digest: acceptance, edits, alerts, jobs, deployments, spend.",
    )
    @json_option
    @click.pass_context
    def report_group(ctx: click.Context) -> Digest | None:
        """Without a subcommand, the digest of the last full week (`report weekly`)."""
        if ctx.invoked_subcommand is None:
            return build_digest(ctx.obj.services)
        return None

    def weekly(inv: Invocation, week: str | None, html: Path | None = None) -> Digest | Message:
        digest = build_digest(inv.services, week=week)
        if html is None:
            return digest
        write_page(render_html(digest), html)
        return Message(text=f"Wrote the digest of {digest.week.week} to {html} ({html.stat().st_size:,} bytes).")

    help_text = (
        "The digest of an ISO week (default: the last full week): acceptance by agent with the change from the week "
        "before, what users edit most, open alerts, finished jobs, deployments and rollbacks, pending approvals, A/B "
        "experiments, spend, and the next actions the numbers point at."
    )
    if terminal:

        @report_group.command("weekly", context_settings=CONTEXT, short_help="One week's digest.", help=help_text)
        @WEEK
        @click.option(
            "--html", type=click.Path(dir_okay=False, writable=True, path_type=Path), metavar="FILE",
            help="Write the self-contained HTML page (charts inside) to FILE instead of printing Markdown.",
        )  # fmt: skip
        @json_option
        @click.pass_obj
        def weekly_terminal(inv: Invocation, week: str | None, html: Path | None) -> Digest | Message:
            return weekly(inv, week, html)

    else:

        @report_group.command("weekly", context_settings=CONTEXT, short_help="One week's digest.", help=help_text)
        @WEEK
        @json_option
        @click.pass_obj
        def weekly_slack(inv: Invocation, week: str | None) -> Digest | Message:
            return weekly(inv, week)

    return report_group


SHARED: tuple[click.Command, ...] = (_group(terminal=False),)
TERMINAL: tuple[click.Command, ...] = (_group(terminal=True),)  # replaces the shared one: it adds --html
