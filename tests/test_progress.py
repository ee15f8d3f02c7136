"""The terminal's progress display: a rich bar with done/total, cost and time left at a terminal; plain lines in a
pipe or a log, at every tenth of the total."""

from __future__ import annotations

import io
import itertools

from rich.console import Console

from bot.commands import no_progress
from bot.terminal import progress_bar


def console(*, terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=140, color_system=None), out


def test_without_a_terminal_progress_is_plain_lines_with_cost_and_time_left():
    shown, out = console(terminal=False)
    seconds = itertools.count()  # each reading of the clock is one second later
    progress = progress_bar(shown, clock=lambda: float(next(seconds)))
    with progress("Evaluating support:v2 against production") as advance:
        for done in range(1, 21):
            advance(done, total=20, cost_usd=0.0015 * done)
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # the first example, then every tenth of the total: a log is not flooded
    assert lines[0] == "Evaluating support:v2 against production: 1 of 20 (5%), $0.0015 spent, about 0:00:19 left"
    assert lines[5] == "Evaluating support:v2 against production: 10 of 20 (50%), $0.0150 spent, about 0:00:10 left"
    assert lines[-1] == "Evaluating support:v2 against production: 20 of 20 (100%), $0.0300 spent"


def test_without_a_total_lines_count_what_is_done():
    shown, out = console(terminal=False)
    seconds = itertools.count(step=4)
    with progress_bar(shown, clock=lambda: float(next(seconds)))("Ingesting") as advance:
        for done in range(1, 7):
            advance(done)
    assert out.getvalue().splitlines() == ["Ingesting: 3 done", "Ingesting: 6 done"]  # every 10 seconds or so


def test_at_a_terminal_the_bar_takes_a_total_and_shows_done_of_total_and_cost():
    shown, out = console(terminal=True)
    with progress_bar(shown)("Evaluating", total=8) as advance:
        advance(3, cost_usd=0.25)
        advance(8, total=8, cost_usd=0.5)
    rendered = out.getvalue()
    assert "8/8" in rendered and "$0.5000 spent" in rendered and "Evaluating" in rendered


def test_other_faces_ignore_progress_with_the_same_calls():
    with no_progress("anything", total=3) as advance:
        advance(1)
        advance(2, total=3, cost_usd=0.1)
