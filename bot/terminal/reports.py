"""The weekly digest on a terminal: its Markdown, as it is (pipe it into a file or a wiki page)."""

from __future__ import annotations

from rich.console import Console

from bot.terminal.output import render
from reports.digest import Digest
from reports.render_markdown import render_markdown


@render.register
def _(result: Digest, console: Console) -> None:
    console.print(render_markdown(result), markup=False, highlight=False, soft_wrap=True, end="")
