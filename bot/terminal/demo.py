"""`finetune demo` on a terminal: each step as it happens, and the Slack messages it would post.

Slack is off in the demo, so every notification the product queues is shown
here as Slack would show its text: the first message of each conversation,
replies in a loop run's thread indented under it, and, of the messages that
are edited in place, the edits that decide something (an approval, a job or an
evaluation that ended).
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

from bot.slack.blocks.notifications import render_message
from core.demo.run import Note
from core.platform import outbox
from core.platform.store import Store

EDITS_SHOWN = ("approval_decided",)
NOT_SHOWN = ("approval_answered",)  # the direct message to a requester: the channel already says it
FINAL_WORDS = ("succeeded", "failed", "cancelled", "stopped")


class DemoPrinter:
    def __init__(self, console: Console, store_of: Callable[[], Store]) -> None:
        self.console, self.store_of = console, store_of
        self.last_outbox = 0
        self.keys: set[str] = set()
        self.steps = 0

    def note(self, note: Note) -> None:
        if note.kind == "step":
            self.steps += 1
            self.console.print(
                f"\n[bold cyan]{self.steps:>2}.[/bold cyan] [bold]{escape(note.text)}[/bold]", soft_wrap=True
            )
        elif note.kind == "look":
            self.console.print(f"    [dim]look:[/dim] [green]{escape(note.text)}[/green]", soft_wrap=True)
        elif note.kind == "warn":
            self.console.print(f"    [yellow]{escape(note.text)}[/yellow]", soft_wrap=True)
        else:
            self.console.print(f"    {escape(note.text)}", soft_wrap=True, highlight=False)

    def slack(self) -> None:
        """Show the notifications queued since the last call, as Slack would."""
        store: Store = self.store_of()
        for message in outbox.queued_after(store, self.last_outbox):
            self.last_outbox = message.id
            if not self._shown(message):
                continue
            text = " ".join(render_message(message).text.split())
            threaded = outbox.thread_of(store, message) is not None
            prefix = "      ↳ " if threaded else "    [magenta]Slack ›[/magenta] "
            self.console.print(prefix + escape(text[:400]), soft_wrap=True, highlight=False)

    def _shown(self, message: outbox.OutboxMessage) -> bool:
        key = message.message_key
        if message.kind in NOT_SHOWN:
            return False
        if key is None:
            return True
        if key not in self.keys:
            self.keys.add(key)
            return True
        if message.kind in EDITS_SHOWN:
            return True
        return message.kind in ("job", "evaluation") and any(word in message.text for word in FINAL_WORDS)
