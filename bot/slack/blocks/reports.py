"""The weekly digest in Slack: asked for (`/finetune report`) or posted each Monday (`DigestReady`), with its charts
attached and a button for each next action (`bot.slack.listeners.digest` answers them)."""

from __future__ import annotations

from bot.slack.blocks.kit import Attachment, SlackMessage, render
from core.platform import events
from reports.digest import Digest
from reports.digest_charts import digest_charts
from reports.render_blocks import digest_blocks


@render.register
def _(result: Digest) -> SlackMessage:
    return digest_message(result)


@render.register
def _(event: events.DigestReady) -> SlackMessage:
    return digest_message(Digest.model_validate(event.digest), page_url=event.page_url)


def digest_message(digest: Digest, *, page_url: str | None = None) -> SlackMessage:
    text, blocks = digest_blocks(digest, page_url=page_url)
    files = [Attachment(filename=c.filename, title=c.title, content=c.png) for c in digest_charts(digest)]
    return SlackMessage(text, blocks, files=files)
