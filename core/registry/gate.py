"""The evaluation policy: a version enters certain aliases only after an evaluation against what they serve passes.

FINETUNE_REQUIRE_EVALUATION names the aliases (e.g. `production`). A change
that makes a version serve more of such an alias's callers (a deploy, a new
canary or a larger canary share, a promotion) needs the newest finished
evaluation of that version against the version the alias serves now (its
stable version: `finetune eval run NAME:vN --baseline ALIAS` measures exactly
that) to pass. Rollbacks, ending or lowering a canary, and a first deploy to an
alias that serves nothing yet (there is no baseline) are never held back.

Passing means not worse than the baseline by more than FINETUNE_EVALUATION_MARGIN
(0.02 = 2 points) on both measures the evaluation's verdict weighs
(`core.evaluation.summary`): the judge's win rate, against a draw at 50%, and
the mean acceptance of the version's outputs against the users' final texts,
against the baseline's. Point estimates are compared with the margin: the
verdict's tests already say how sure each one is, and a margin on the
intervals would hold back every version measured on a small test split.

The registry asks when a change is requested, on every face, and the approval
path asks again before any approving vote (`core.actions`), so a request made
before the policy was set, or before a newer evaluation failed, cannot be
approved either. A change that passes carries the evaluation's numbers in its
approval's facts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import EvaluationRequired
from core.platform.settings import Settings
from core.platform.store import Store
from core.registry import db
from core.vocabulary import AliasMove

if TYPE_CHECKING:
    from core.registry.service import _AliasChange

FACT = "Evaluation policy"  # the approval fact that says why the change may go ahead
_GATED = (AliasMove.DEPLOY, AliasMove.CANARY, AliasMove.PROMOTE)
_EVEN = 0.5  # the judge's win rate of a draw
_TOLERANCE = 1e-9  # a measure exactly at the margin passes


@dataclass(frozen=True)
class EvaluationCheck:
    """What the policy found for one change: the versions compared, the evaluation and whether it passes."""

    candidate: str
    baseline: str
    evaluation_id: str | None
    passed: bool
    reason: str  # one clause: the numbers and the margin, or what is missing


def incoming(change: _AliasChange) -> str | None:
    """The version the change makes serve more of the alias's callers; None when no version gains any."""
    before, after = change.before, change.after
    if change.move not in _GATED:
        return None
    if after.canary_version_id is not None:
        gains = after.canary_version_id
        had = 0
        if before is not None:
            had = 100 if before.version_id == gains else before.canary_share if before.canary_version_id == gains else 0
        return gains if after.canary_share > had else None
    if before is not None and before.version_id == after.version_id:
        return None  # the canary ended: its stable version keeps serving
    return after.version_id


def check(settings: Settings, store: Store, change: _AliasChange) -> EvaluationCheck | None:
    """The policy's finding for `change`; None when the policy does not apply to it."""
    if change.alias not in settings.require_evaluation or change.before is None:
        return None
    candidate = incoming(change)
    if candidate is None:
        return None
    baseline = change.before.version_id
    row = db.latest_evaluation_against(store, candidate, baseline)
    if row is None:
        return EvaluationCheck(
            candidate, baseline, None, False, f"{candidate} has no finished evaluation against {baseline}"
        )
    passed, reason = _judge(row, settings.evaluation_margin)
    return EvaluationCheck(candidate, baseline, row["id"], passed, f"evaluation {row['id']}: {reason}")


def require(settings: Settings, store: Store, change: _AliasChange) -> EvaluationCheck | None:
    """`check`, raising EvaluationRequired (what to run) when the change needs an evaluation that did not pass."""
    found = check(settings, store, change)
    if found is None or found.passed:
        return found
    target = f"{change.name}@{change.alias}"
    raise EvaluationRequired(
        f"{found.candidate} may enter {target} only once an evaluation against {found.baseline}, the version it"
        f" serves now, passes (FINETUNE_REQUIRE_EVALUATION): {found.reason}.",
        hint=f"Run `finetune eval run {found.candidate} --baseline {change.alias}`, then ask again.",
        version=found.candidate,
        baseline=found.baseline,
        evaluation=found.evaluation_id,
    )


def _judge(row: dict[str, object], margin: float) -> tuple[bool, str]:
    """Whether a finished evaluation's summary passes the margin on the judge's win rate and on acceptance."""
    from core.evaluation.summary import EvaluationSummary  # evaluation builds on the registry: imported when asked

    summary = EvaluationSummary.model_validate(json.loads(str(row["summary"] or "{}")))
    allowed = f"{margin * 100:g} points"
    if summary.judge is None:
        return False, "no pair was judged"
    if summary.acceptance is None:
        return False, "too few examples to compare acceptance (it needs two on each side)"
    win_rate, lift = summary.judge.head_to_head.win_rate, summary.acceptance.difference
    numbers = (
        f"judge win rate {win_rate:.1%} over {summary.judge.head_to_head.pairs} pairs, acceptance"
        f" {lift * 100:+.1f} points against the baseline (margin {allowed})"
    )
    failed = []
    if win_rate < _EVEN - margin - _TOLERANCE:
        failed.append(f"the judge's win rate is below {(_EVEN - margin):.1%}")
    if lift < -margin - _TOLERANCE:
        failed.append(f"acceptance is more than {allowed} below the baseline's")
    if failed:
        return False, f"{numbers}; {' and '.join(failed)}"
    return True, f"passes: {numbers}"
