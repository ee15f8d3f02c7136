"""The provider-neutral training example that dataset versions hold and exports convert."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    """One curated feedback event, ready to become a row in any target format.

    `messages` is the conversation before the AI's answer (roles `user` and
    `assistant`, alternating, ending with `user`); `system` is the system prompt.
    `output` is what the AI wrote; `final` what the user approved after editing
    (None when the user did not edit it). Supervised targets train on
    `completion` (the final text when there is one); preference targets prefer
    `final` over `output`.
    """

    id: str
    messages: tuple[dict[str, str], ...]
    output: str
    final: str | None = None
    system: str | None = None
    agent: str = "default"
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def completion(self) -> str:
        return self.final if self.final is not None else self.output

    @property
    def edited(self) -> bool:
        return self.final is not None and self.final != self.output
