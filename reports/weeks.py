"""ISO weeks (`2026-W03`: Monday to Sunday) in FINETUNE_TIMEZONE, the unit of the weekly digest."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidInput
from core.platform.timeutil import iso

_WEEK = re.compile(r"(\d{4})-W(\d{2})")
MAX_WEEK_TEXT = 16  # anything longer is not a week, and is not echoed whole


class IsoWeek(BaseModel):
    """One ISO week as days in a time zone, and the UTC moments that bound it."""

    model_config = ConfigDict(frozen=True)

    week: str = Field(description="YYYY-Www, e.g. 2026-W03.")
    start: date = Field(description="Its Monday.")
    end: date = Field(description="Its Sunday.")
    timezone: str
    complete: bool = Field(description="False while the week is still running: the numbers are so far.")

    @property
    def utc_start(self) -> str:
        """Monday 00:00 local, as the store's UTC ISO text."""
        return _utc(self.start, self.timezone)

    @property
    def utc_end(self) -> str:
        """The next Monday 00:00 local (excluded), as the store's UTC ISO text."""
        return _utc(self.end + timedelta(days=1), self.timezone)

    def contains(self, moment: str | None) -> bool:
        """Whether a stored UTC ISO time falls in the week."""
        return moment is not None and self.utc_start <= moment < self.utc_end

    def before(self, weeks: int = 1) -> IsoWeek:
        """The week `weeks` weeks earlier (always complete once this one has started)."""
        monday = self.start - timedelta(weeks=weeks)
        return IsoWeek(
            week=week_name(monday), start=monday, end=monday + timedelta(days=6), timezone=self.timezone, complete=True
        )


def week_name(day: date) -> str:
    """The ISO week `day` falls in, as YYYY-Www."""
    year, number, _ = day.isocalendar()
    return f"{year}-W{number:02d}"


def parse_week(text: str | None, *, today: date, timezone: str) -> IsoWeek:
    """The ISO week `text` names (YYYY-Www), or the last full week before `today` when None.

    A week that has not started yet is refused; the running week is allowed and marked incomplete.
    """
    if text is None:
        monday = today - timedelta(days=today.weekday() + 7)
    else:
        monday = _monday(text)
        if monday > today:
            raise InvalidInput(
                f"`week` {text} has not started yet (today is {today}, in {week_name(today)}).",
                hint=f"Pick {week_name(today)} or an earlier week, or leave `week` out for the last full week.",
                argument="week",
            )
    end = monday + timedelta(days=6)
    return IsoWeek(week=week_name(monday), start=monday, end=end, timezone=timezone, complete=end < today)


def _monday(text: str) -> date:
    match = _WEEK.fullmatch(text.strip()) if isinstance(text, str) and len(text) <= MAX_WEEK_TEXT else None
    if match is None:
        shown = repr(text) if isinstance(text, str) and len(text) <= MAX_WEEK_TEXT else "that value"
        raise InvalidInput(
            f"`week` {shown} is not an ISO week.",
            hint="Write it as YYYY-Www, e.g. 2026-W03 (weeks start on Monday), or leave it out for the last full week.",
            argument="week",
        )
    year, number = int(match.group(1)), int(match.group(2))
    try:
        return date.fromisocalendar(year, number, 1)
    except ValueError:
        last = date(year, 12, 28).isocalendar()[1]  # 28 December always lies in the year's last ISO week
        raise InvalidInput(
            f"`week` {text} does not exist: {year} has ISO weeks 01 to {last}.",
            hint=f"Pick a week from {year}-W01 to {year}-W{last:02d}.",
            argument="week",
        ) from None


def _utc(day: date, timezone: str) -> str:
    return iso(datetime.combine(day, time(0), tzinfo=zoneinfo.ZoneInfo(timezone)).astimezone(UTC))
