"""Convert an `Example` into the JSONL row an export target trains on.

The target registry (`core.data.targets`) holds each target's converter (the row
builders live in `core.data.converters`, which documents every format);
`to_row` is the one way to call them.
"""

from __future__ import annotations

from core.data.converters import Row
from core.data.examples import Example
from core.data.targets import require_target


def to_row(example: Example, target: str) -> Row | None:
    """The JSONL row for `example` in `target`'s format, or None when it has none.

    None when the trained answer is empty; for ``openai-dpo`` when the user did
    not edit the output; for the user-first targets (Bedrock, hf-chat) when the
    conversation has no user turn.
    """
    spec = require_target(target)
    if not example.completion.strip():
        return None
    return spec.converter(example)
