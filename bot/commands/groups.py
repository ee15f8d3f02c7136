"""The two groups, assembled in one place from each capability's commands.

`SLACK` is what `/finetune` offers: every capability's shared commands.
`TERMINAL` is what `finetune` offers: the same commands, then the terminal-only
ones (the long-running server commands last).
"""

from __future__ import annotations

from bot.commands import (
    analytics,
    data,
    demo,
    evaluation,
    experiments,
    loop,
    make_grammar,
    platform,
    registry,
    reports,
    templates,
    training,
    webhooks,
)

SHARED = (
    *platform.SHARED, *data.SHARED, *training.SHARED, *registry.SHARED, *evaluation.SHARED, *experiments.SHARED,
    *templates.SHARED, *webhooks.SHARED, *analytics.SHARED, *loop.SHARED, *reports.SHARED,
)  # fmt: skip

SLACK = make_grammar(*SHARED, help_text="finetune-ops in Slack.")
TERMINAL = make_grammar(
    *SHARED,
    *data.TERMINAL,
    *training.TERMINAL,
    *registry.TERMINAL,
    *evaluation.TERMINAL,
    *reports.TERMINAL,  # the shared `report`, with --html
    *demo.TERMINAL,
    *platform.TERMINAL,
    help_text="finetune-ops: feedback to fine-tuned models, with a human in the loop.",
)
