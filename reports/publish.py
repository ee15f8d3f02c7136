"""Publishing the weekly digest: its HTML page under the data directory, and one Slack post per week.

`publish_weekly` is what the scheduler runs each Monday: it builds the last
full week's digest, writes its page (`DATA_DIR/reports/YYYY-Www.html`,
replaced whole) and, in one transaction, records the week as published and
enqueues the `DigestReady` notification. A week is published once: a second
run (a restart, a run by hand) rewrites the page and posts nothing. `page`
answers `/reports/YYYY-Www.html` under `finetune serve`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, Field

from core import analytics
from core.errors import NotFound
from core.platform import audit, events, outbox
from core.platform.actors import Actor
from core.platform.settings import Settings
from core.platform.timeutil import iso
from core.services import Services
from reports import db
from reports.digest import build_digest
from reports.render_html import render_html, write_page
from reports.weeks import parse_week

PAGES_DIR = "reports"
MAX_PAGE_AGE_WEEKS = 104  # pages of older weeks are not built on request


class Published(BaseModel):
    week: str
    posted: bool = Field(description="True when this run queued the Slack post; False when the week had one.")
    outbox_id: int | None
    page: str = Field(description="Where the page was written.")
    headline: str


def page_path(settings: Settings, week: str) -> Path:
    return settings.data_dir / PAGES_DIR / f"{week}.html"


def page_url(settings: Settings, week: str) -> str | None:
    """The page's address for people, when FINETUNE_PUBLIC_URL says where serve is reached."""
    if settings.public_url is None:
        return None
    return f"{settings.public_url.rstrip('/')}/reports/{week}.html"


def publish_weekly(svc: Services, *, actor: Actor, week: str | None = None) -> Published:
    """Write the page of `week` (default: the last full week) and queue its Slack post, once per week."""
    digest = build_digest(svc, week=week)
    name, store = digest.week.week, svc.store
    path = write_page(render_html(digest), page_path(svc.settings, name))
    headline = digest.summary()
    outbox_id = None
    with store.write():
        posted = db.claim(store, week=name, headline=headline, page=str(path), now=iso(svc.clock()))
        if posted:
            event = events.DigestReady(
                week=name, headline=headline, digest=digest.model_dump(mode="json"),
                page_url=page_url(svc.settings, name),
            )  # fmt: skip
            outbox_id = outbox.enqueue(store, event)
            db.link_notification(store, week=name, outbox_id=outbox_id)
            audit.record(store, actor, "publish_digest", {"week": name}, detail=headline)
    if not posted:
        outbox_id = (db.published(store, name) or {}).get("outbox_id")
    return Published(week=name, posted=posted, outbox_id=outbox_id, page=str(path), headline=headline)


def page(svc: Services, week: str) -> str:
    """The HTML page of `week`: as written, else built now (and kept once the week is over)."""
    settings = svc.settings
    today = analytics.today(svc.clock(), settings.timezone)
    span = parse_week(week, today=today, timezone=settings.timezone)
    path = page_path(settings, span.week)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    if span.start < today - timedelta(weeks=MAX_PAGE_AGE_WEEKS):
        raise NotFound(
            f"no page of {span.week} was written, and weeks over {MAX_PAGE_AGE_WEEKS} weeks old are not built here.",
            hint=f"Write it with `finetune report weekly --week {span.week} --html FILE`.",
            week=span.week,
        )
    digest = build_digest(svc, week=span.week)
    html = render_html(digest)
    if digest.week.complete:
        write_page(html, path)
    return html
