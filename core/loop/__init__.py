"""The closed loop: new corrections → retraining → evaluation → canary → promotion or rollback.

`runs` links the steps the other capabilities already have into one run per
model, advanced by the scheduler and decided by people (every costly or
irreversible step is an approval the policy asks for); its SQL is in `db`.
Faces import from here.
"""

from core.loop.runs import (
    RUN_ID_PREFIX,
    WAITING,
    LoopRun,
    LoopRunList,
    LoopStepEntry,
    adopt_retrain_requests,
    advance,
    advance_runs,
    cancel_run,
    get_run,
    list_runs,
    retry_run,
    start_run,
)

__all__ = [
    "RUN_ID_PREFIX",
    "WAITING",
    "LoopRun",
    "LoopRunList",
    "LoopStepEntry",
    "adopt_retrain_requests",
    "advance",
    "advance_runs",
    "cancel_run",
    "get_run",
    "list_runs",
    "retry_run",
    "start_run",
]
