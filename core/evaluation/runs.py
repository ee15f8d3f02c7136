"""Offline evaluations: a candidate against a baseline on a dataset version's held-out examples, judged.

`run_evaluation` (the terminal, in the foreground) and `request_evaluation`
(Slack and agents: queued for `finetune serve`, whose scheduler job
`run_queued_evaluations` runs it) check everything that can be checked before
any model is called: the policy, both models and the judge (a version id, an
alias of the candidate's model such as `production`, `name@alias`, a model
name for its production version, or a base model as PROVIDER:MODEL; aliases
resolve to their stable version when asked, and stay resolved), that their
providers are configured, that every price is known when a cost cap is set,
and that the dataset version has examples to measure: its test split, else its
validation split (the evaluation says so).

A run takes the examples in a stable order (`limit` keeps the first N) in
windows: both models answer every example of a window (through the inference
engine, which batches and bounds the calls), then the judge compares each pair
in both orders and, where the user edited the draft, chooses between the
user's final text and the draft (calibration). Each example is stored whole,
in one transaction with the evaluation's progress and spend, so a stopped,
failed or interrupted run keeps everything it measured, and a run that a
crashed serve left behind resumes where it was.

A cost cap (`max_cost_usd`) is kept before each window: the next window takes
only as many examples as fit in what is left, each estimated at the highest
cost each of its calls (candidate, baseline, judge) has had so far (the first
window is one example, to learn them), and the run stops (`stopped: cost cap
...`) when none fits. The spend passes the cap only where a call costs more
than any before it (a longer prompt). An answer whose cost turns out to be
unknown stops a capped run too. A failure ends the evaluation with its
reason. Every change is an `EvaluationChanged` event in the outbox (one Slack
message, edited as it goes); the summary's headline is what a deploy approval
of the candidate shows.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field

from core import registry
from core.data import datasets
from core.data.examples import Example
from core.data.tokens import Tokenizer
from core.data.tokens import resolve as tokenizer_of
from core.errors import Conflict, FinetuneError, InvalidInput, NotFound
from core.evaluation import db
from core.evaluation.judge import Pick
from core.evaluation.judging import (
    USER_PICK,
    CalibrationOrder,
    PairOrder,
    Rubric,
    ask_calibration,
    ask_pair,
    conversation_text,
    load_rubric,
    parse_answer,
    steady_temperature,
)
from core.evaluation.metrics import score_example
from core.evaluation.summary import (
    BASELINE,
    CALIBRATION,
    CANDIDATE,
    JUDGMENT,
    OUTPUT,
    EvaluationSummary,
    summarize_rows,
)
from core.inference import (
    DEFAULT_MAX_NEW_TOKENS,
    MAX_NEW_TOKENS,
    ChatRequest,
    ChatResult,
    InferenceBusy,
    InferenceEngine,
    Target,
    Unpriced,
    build_engine,
    chat_target,
    check_configured,
    price_for,
)
from core.platform import audit, events, outbox
from core.platform.actors import Actor
from core.platform.policy import authorize
from core.platform.store import Store
from core.platform.timeutil import iso
from core.services import Services
from core.vocabulary import FINAL_EVALUATION_STATES, EvaluationState, Operation

log = logging.getLogger(__name__)

WINDOW = 8  # examples answered together: a local model decodes their prompts as one batch
MAX_LIMIT = 100_000
MAX_COST_USD = 1_000_000.0
MAX_REF_CHARS = 2048
STALE_AFTER = timedelta(minutes=30)  # a running evaluation not heard of for this long is resumed by serve
LIST_LIMIT = 20
ANNOUNCE_STEPS = 20  # progress reaches Slack every 5 %
BUSY_WAIT_SECONDS = 1.0
BUSY_TRIES = 60
SPLITS = ("test", "validation")  # what an evaluation measures, in order of preference
JUDGE = "judge"  # who answered a judgment or calibration row, for the cost estimates
_KEY = "evaluation"  # the caller key for resolving a base model (versions and aliases resolve to stable versions)

Progress = Callable[[int, int], None]  # (examples done, examples in all)
Spending = Callable[[float], None]  # dollars spent so far (answers and judge whose price is known), after each example


class Evaluation(BaseModel):
    """An offline evaluation: what it compares, where it stands, and what it found."""

    id: str
    status: EvaluationState
    status_reason: str | None = Field(description="Why it stopped or failed.")
    candidate: str = Field(description="The candidate as asked.")
    candidate_ref: str = Field(description="What answered for it: a version id or PROVIDER:MODEL.")
    candidate_version_id: str | None
    baseline: str
    baseline_ref: str
    baseline_version_id: str | None
    dataset_version: str
    split: str | None
    judge: str
    max_cost_usd: float | None
    limit: int | None
    max_new_tokens: int
    done: int = Field(description="Examples measured and judged.")
    total: int | None = Field(description="Examples it measures in all.")
    cost_usd: float = Field(description="Spent so far: answers and judge, those whose price is known.")
    unpriced: int = Field(description="Answers whose cost is unknown.")
    requested_by: str
    requested_via: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    summary: EvaluationSummary | None

    @property
    def ok(self) -> bool:
        """False only for a failed evaluation: a stopped one ended as asked (its cost cap)."""
        return self.status is not EvaluationState.FAILED

    @property
    def headline(self) -> str | None:
        return self.summary.headline if self.summary else None

    @property
    def candidate_label(self) -> str:
        return _label(self.candidate, self.candidate_ref)

    @property
    def baseline_label(self) -> str:
        return _label(self.baseline, self.baseline_ref)


class EvaluationList(BaseModel):
    evaluations: list[Evaluation]


def _label(asked: str, ref: str) -> str:
    """`support:v4`, or `production (support:v3)` when what was asked names something that moves."""
    return ref if asked == ref else f"{asked} ({ref})"


# Asking for one -------------------------------------------------------------------------------------


def request_evaluation(
    svc: Services, *, candidate: str, baseline: str, dataset_version: str | None = None, judge: str | None = None,
    max_cost_usd: float | None = None, limit: int | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    actor: Actor, key: str | None = None,
) -> Evaluation:  # fmt: skip
    """Queue an evaluation for `finetune serve` to run; the same `key` never queues two."""
    if key is not None:
        found = db.evaluation_with_key(svc.store, key)
        if found is not None:
            authorize(actor, Operation.EVALUATE)
            return _evaluation(found)
    plan = _plan(svc, candidate=candidate, baseline=baseline, dataset_version=dataset_version, judge=judge,
                 max_cost_usd=max_cost_usd, limit=limit, max_new_tokens=max_new_tokens, actor=actor)  # fmt: skip
    return _evaluation(_create(svc, plan, actor=actor, runner=None, key=key))


def run_evaluation(
    svc: Services, *, candidate: str, baseline: str, dataset_version: str | None = None, judge: str | None = None,
    max_cost_usd: float | None = None, limit: int | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    actor: Actor, engine: InferenceEngine | None = None, on_progress: Progress | None = None,
    on_spend: Spending | None = None,
) -> Evaluation:  # fmt: skip
    """Run an evaluation here and now and return it finished (succeeded, stopped or failed).

    Without `engine`, one is built from the settings for this run and closed after it. After each example,
    `on_spend` hears what was spent so far and then `on_progress` how many examples are done.
    """
    plan = _plan(svc, candidate=candidate, baseline=baseline, dataset_version=dataset_version, judge=judge,
                 max_cost_usd=max_cost_usd, limit=limit, max_new_tokens=max_new_tokens, actor=actor)  # fmt: skip
    row = _create(svc, plan, actor=actor, runner=runner_id(), key=None)
    if engine is not None:
        return _execute(svc, row, engine=engine, on_progress=on_progress, on_spend=on_spend)
    owned = build_engine(svc.settings, catalog=svc.catalog)
    try:
        return _execute(svc, row, engine=owned, on_progress=on_progress, on_spend=on_spend)
    finally:
        owned.close()


def run_queued_evaluations(svc: Services, *, engine: InferenceEngine) -> int:
    """Run every queued evaluation, and resume those a vanished runner left running; returns how many ran."""
    stale_before = iso(svc.clock() - STALE_AFTER)
    ran = 0
    for row in [*db.claimable(svc.store, stale_before=stale_before), *_orphaned(svc.store)]:
        with svc.store.write():
            claimed = db.claim(svc.store, row["id"], runner=runner_id(), expected=row, now=iso())
        if not claimed:
            continue  # another runner took it, or it changed since it was read
        found = db.evaluation(svc.store, row["id"])
        assert found is not None
        _execute(svc, found, engine=engine, on_progress=None)
        ran += 1
    return ran


class EvaluationRunner:
    """`finetune serve`'s runner of queued evaluations: one thread of its own, started when the scheduler wakes
    it and idle, so a long evaluation holds none of the scheduler's threads and runs alone."""

    def __init__(self, engine: InferenceEngine) -> None:
        self.engine = engine
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wake(self, svc: Services) -> bool:
        """Start running what is queued, unless a run is under way; False when one is."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._thread = threading.Thread(target=self._drain, args=(svc,), name="finetune-evaluations", daemon=True)
            self._thread.start()
            return True

    def join(self, timeout: float | None = None) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _drain(self, svc: Services) -> None:
        try:
            run_queued_evaluations(svc, engine=self.engine)
        except Exception:
            log.exception("running queued evaluations failed")


def get_evaluation(store: Store, evaluation_id: str) -> Evaluation:
    found = db.evaluation(store, _text("evaluation_id", evaluation_id, limit=200))
    if found is None:
        known = db.recent_ids(store)
        raise NotFound(
            f"no evaluation {evaluation_id!r}.",
            hint=f"Recent evaluations: {', '.join(known)}." if known else "Run one first: finetune eval run ...",
            evaluation=evaluation_id,
        )
    return _evaluation(found)


def list_evaluations(store: Store, *, limit: int = LIST_LIMIT) -> EvaluationList:
    return EvaluationList(evaluations=[_evaluation(row) for row in db.recent_evaluations(store, limit=limit)])


def runner_id() -> str:
    """Who runs an evaluation: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _orphaned(store: Store) -> list[dict[str, Any]]:
    """Running evaluations whose process, on this host, is gone (a killed terminal or serve)."""
    host = socket.gethostname()
    found = []
    for row in db.running(store):
        where, _, pid = str(row["runner"] or "").rpartition(":")
        if where == host and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            found.append(row)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process holds that pid
    return True


# Checking a request ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Side:
    """A model under evaluation: as asked, what answers for it, and the version behind it (if any)."""

    asked: str
    ref: str
    version_id: str | None
    target: Target


@dataclass(frozen=True)
class _Plan:
    candidate: _Side
    baseline: _Side
    judge: _Side
    dataset_version: str
    split: str
    total: int
    max_cost_usd: float | None
    limit: int | None
    max_new_tokens: int


def _plan(
    svc: Services, *, candidate: str, baseline: str, dataset_version: str | None, judge: str | None,
    max_cost_usd: float | None, limit: int | None, max_new_tokens: int, actor: Actor,
) -> _Plan:  # fmt: skip
    authorize(actor, Operation.EVALUATE)
    store = svc.store
    cap = _cap(max_cost_usd)
    limit = _whole("limit", limit, low=1, high=MAX_LIMIT, optional=True)
    tokens = _whole("max_new_tokens", max_new_tokens, low=1, high=MAX_NEW_TOKENS)
    cand = _side(store, "candidate", candidate, model_name=None)
    base = _side(store, "baseline", baseline, model_name=_model_of(store, cand))
    if base.ref == cand.ref:
        raise InvalidInput(
            f"`candidate` and `baseline` are both {cand.ref}: an evaluation compares two different models.",
            hint="Name another baseline, e.g. the alias production or a base model such as openai:gpt-4.1-mini.",
            argument="baseline",
        )
    referee = _side(store, "judge", svc.settings.judge_model if judge is None else judge, model_name=None)
    for argument, side in (("candidate", cand), ("baseline", base), ("judge", referee)):
        _configured(svc, argument, side)
        if cap is not None:
            _priced(svc, argument, side)
    version = _dataset(store, dataset_version, cand)
    split, count = _split(store, version)
    total = count if limit is None else min(count, limit)
    return _Plan(cand, base, referee, version, split, total, cap, limit, tokens)


def _side(store: Store, argument: str, asked: object, *, model_name: str | None) -> _Side:
    """What `asked` names, resolved now; every error names `argument`."""
    text = _text(argument, asked, limit=MAX_REF_CHARS)
    try:
        ref = _ref(store, text, model_name)
        target = chat_target(store, ref, key=_KEY)
    except FinetuneError as exc:
        raise _about(exc, argument) from None
    return _Side(asked=text, ref=ref, version_id=target.version_id, target=target)


def _ref(store: Store, text: str, model_name: str | None) -> str:
    """A version id for a version, a model, `name@alias` or an alias of `model_name`; else `text` itself."""
    names = set(registry.list_models(store))
    name, at, alias = text.rpartition("@")
    if at and name in names:
        return _stable(store, name, alias)
    if text in names:
        return _stable(store, text, registry.PRODUCTION)
    if model_name is not None and text in {a.alias for a in registry.list_aliases(store, model_name)}:
        return _stable(store, model_name, text)
    target = chat_target(store, text, key=_KEY)
    return target.version_id or f"{target.provider}:{target.model}"


def _stable(store: Store, name: str, alias: str) -> str:
    aliases = {found.alias: found for found in registry.list_aliases(store, name)}
    if alias not in aliases:
        known = ", ".join(sorted(aliases)) or "none yet"
        raise NotFound(f"{name} has no alias {alias!r}.", hint=f"Its aliases: {known}.", model=name, alias=alias)
    return aliases[alias].version_id


def _model_of(store: Store, side: _Side) -> str | None:
    """The registered model a version belongs to, whose aliases the baseline may name bare (`production`)."""
    return registry.get_version(store, side.version_id).name if side.version_id else None


def _about(exc: FinetuneError, argument: str) -> FinetuneError:
    """`exc`, its message saying which argument it is about."""
    exc.message = f"`{argument}`: {exc.message}"
    exc.ids["argument"] = argument
    return exc


def _configured(svc: Services, argument: str, side: _Side) -> None:
    try:
        check_configured(side.target.provider, svc.settings)
    except FinetuneError as exc:
        raise _about(exc, argument) from None


def _priced(svc: Services, argument: str, side: _Side) -> None:
    price = price_for(svc.catalog, side.target)
    if isinstance(price, Unpriced):
        raise InvalidInput(
            f"`max_cost_usd` cannot be kept: the cost of the {argument}'s answers ({side.ref}) is unknown: "
            f"{price.reason}",
            hint=f"Price {side.ref} as said, or leave the cost cap out.",
            argument="max_cost_usd",
        )


def _dataset(store: Store, asked: str | None, candidate: _Side) -> str:
    if asked is None:
        trained_on = (
            registry.get_version(store, candidate.version_id).dataset_version_id if candidate.version_id else None
        )
        if trained_on is None:
            raise InvalidInput(
                f"`dataset_version` is needed: {candidate.ref} records no dataset version to take held-out examples from.",
                hint="Name one, e.g. --dataset support@3 (its test split is measured).",
                argument="dataset_version",
            )
        asked = trained_on
    try:
        return datasets.resolve_version(store, _text("dataset_version", asked, limit=MAX_REF_CHARS))
    except FinetuneError as exc:
        raise _about(exc, "dataset_version") from None


def _split(store: Store, version_id: str) -> tuple[str, int]:
    """The split measured (test, else validation) and its size."""
    splits = datasets.get_version(store, version_id).counts.get("splits") or {}
    for split in SPLITS:
        if int(splits.get(split) or 0) > 0:
            return split, int(splits[split])
    raise Conflict(
        f"{version_id} has no test or validation examples to measure (splits: {splits or 'none'}).",
        hint="Build a version that holds examples out, e.g. finetune data build NAME --split 0.8,0.1,0.1.",
        dataset_version=version_id,
    )


def _split_note(split: str) -> str | None:
    return None if split == SPLITS[0] else f"the dataset version has no test split, so its {split} split was measured"


def _cap(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(
            f"`max_cost_usd` must be a number of US dollars, got {value!r}.", hint="For example 5 or 0.50.",
            argument="max_cost_usd",
        )  # fmt: skip
    if not 0 < value <= MAX_COST_USD:
        raise InvalidInput(
            f"`max_cost_usd` must be above 0 and at most {MAX_COST_USD:,.0f}, got {value:g}.",
            hint="Leave it out for no cap.",
            argument="max_cost_usd",
        )
    return float(value)


def _whole(name: str, value: object, *, low: int, high: int, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(
            f"`{name}` must be a whole number from {low:,} to {high:,}, got {value!r}.",
            hint=f"For example {name}={max(low, 10)}.",
            argument=name,
        )
    return value


def _text(name: str, value: object, *, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(
            f"`{name}` must name something, got {'an empty text' if isinstance(value, str) else repr(value)}.",
            hint="For example support:v4, production or openai:gpt-4.1-mini.",
            argument=name,
        )
    if len(value) > limit or not value.isprintable():
        raise InvalidInput(
            f"`{name}` must be at most {limit:,} printable characters.",
            hint="Name it as `finetune models` or the provider does, without control characters.",
            argument=name,
        )
    return value.strip()


def _create(svc: Services, plan: _Plan, *, actor: Actor, runner: str | None, key: str | None) -> dict[str, Any]:
    """Store the evaluation (queued, or running for `runner`), with its audit row and its first notice."""
    evaluation_id, now = f"ev_{uuid.uuid4().hex[:12]}", iso()
    status = EvaluationState.QUEUED if runner is None else EvaluationState.RUNNING
    row = {
        "id": evaluation_id, "model_version_id": plan.candidate.version_id, "dataset_version_id": plan.dataset_version,
        "status": status, "created_by": str(actor), "created_at": now, "candidate": plan.candidate.asked,
        "candidate_ref": plan.candidate.ref, "baseline": plan.baseline.asked, "baseline_ref": plan.baseline.ref,
        "baseline_version_id": plan.baseline.version_id, "judge": plan.judge.ref, "split": plan.split,
        "max_cost_usd": plan.max_cost_usd, "example_limit": plan.limit, "max_new_tokens": plan.max_new_tokens,
        "total": plan.total, "requested_via": actor.face, "idempotency_key": key, "runner": runner,
        "started_at": now if runner else None, "updated_at": now,
    }  # fmt: skip
    args = {"candidate": plan.candidate.asked, "baseline": plan.baseline.asked, "judge": plan.judge.ref,
            "dataset_version": plan.dataset_version, "max_cost_usd": plan.max_cost_usd, "limit": plan.limit}  # fmt: skip
    with svc.store.write():
        db.insert_evaluation(svc.store, row)
        audit.record(svc.store, actor, "evaluate", args, detail=evaluation_id)
        created = db.evaluation(svc.store, evaluation_id)
        assert created is not None
        outbox.enqueue(svc.store, _event(_evaluation(created)))
    return created


# Running one ------------------------------------------------------------------------------------------


def _execute(
    svc: Services, row: dict[str, Any], *, engine: InferenceEngine, on_progress: Progress | None,
    on_spend: Spending | None = None,
) -> Evaluation:  # fmt: skip
    """Run a claimed evaluation to its end; an error ends it as failed (never raised), an interruption as stopped."""
    run: _Run | None = None
    try:
        run = _Run.prepare(svc, row, engine=engine, on_progress=on_progress, on_spend=on_spend)
        return run.measure()
    except FinetuneError as exc:
        return _end(svc, row["id"], EvaluationState.FAILED, reason=str(exc), run=run)
    except Exception as exc:
        log.exception("evaluation %s failed", row["id"])
        return _end(svc, row["id"], EvaluationState.FAILED, reason=f"internal error ({type(exc).__name__})", run=run)
    except BaseException:  # Ctrl-C in the terminal, or the process stopping: keep what was measured
        _end(svc, row["id"], EvaluationState.STOPPED, reason="interrupted", run=run)
        raise


@dataclass
class _Run:
    """One evaluation being measured: what answers, what to measure, and what was spent."""

    svc: Services
    row: dict[str, Any]
    engine: InferenceEngine
    sides: dict[str, Target]
    judge: Target
    rubric: Rubric
    tokenizers: dict[str, Tokenizer]
    examples: list[Example]
    pending: list[tuple[int, Example]]
    on_progress: Progress | None
    on_spend: Spending | None = None
    done: int = 0
    spent: float = 0.0
    unpriced: int = 0
    dearest: dict[str, float] = field(default_factory=dict)  # the most one call has cost so far, by who answered
    announced: int = -1

    @classmethod
    def prepare(
        cls, svc: Services, row: dict[str, Any], *, engine: InferenceEngine, on_progress: Progress | None,
        on_spend: Spending | None = None,
    ) -> _Run:  # fmt: skip
        store = svc.store
        sides = {arm: chat_target(store, row[f"{arm}_ref"], key=_KEY) for arm in (CANDIDATE, BASELINE)}
        judge = chat_target(store, row["judge"], key=_KEY)
        examples = list(datasets.examples(store, row["dataset_version_id"], split=row["split"]))
        examples = examples[: row["example_limit"]] if row["example_limit"] else examples
        measured = db.measured_feedback_ids(store, row["id"], metric=JUDGMENT)
        run = cls(
            svc=svc, row=row, engine=engine, sides=sides, judge=judge, rubric=load_rubric(svc.data_dir),
            tokenizers={arm: tokenizer_of(t.base_model or t.model, catalog=svc.catalog) for arm, t in sides.items()},
            examples=examples, pending=[(i, ex) for i, ex in enumerate(examples) if ex.id not in measured],
            on_progress=on_progress, on_spend=on_spend,
        )  # fmt: skip
        run._resume(db.results(store, row["id"]))
        with store.write():
            db.start(store, row["id"], total=len(examples), split=row["split"], now=iso())
        return run

    def _resume(self, rows: Sequence[db.ResultRow]) -> None:
        """Count what a previous runner of this evaluation already measured and spent."""
        self.done = len({row.feedback_id for row in rows})
        self._spend(rows)

    # The loop ------------------------------------------------------------------------------------

    def measure(self) -> Evaluation:
        self._announce(force=True)
        while self.pending:
            room = self._room()
            if room == 0:
                return self._stop(self._cap_reason())
            window, self.pending = self.pending[:room], self.pending[room:]
            unpriced_before = self.unpriced
            self._measure_window(window)
            if self.row["max_cost_usd"] is not None and self.unpriced > unpriced_before:
                return self._stop("cost cap: an answer's cost is unknown, so the cap cannot be kept")
        return _end(self.svc, self.row["id"], EvaluationState.SUCCEEDED, reason=None, run=self)

    def _room(self) -> int:
        """How many of the next examples fit in what the cost cap leaves, each at its calls' highest costs so far."""
        cap = self.row["max_cost_usd"]
        if cap is None:
            return WINDOW
        left, taken = cap - self.spent, 0
        for _, example in self.pending[:WINDOW]:
            estimate = self._estimate(example)
            if estimate is None:  # a call not priced by experience yet: one example tells what it costs
                return 1 if taken == 0 and left > 0 else taken
            if estimate > left:
                break
            left, taken = left - estimate, taken + 1
        return taken

    def _estimate(self, example: Example) -> float | None:
        """What measuring `example` should cost: each side answers once, the judge twice (four times when the user
        edited the draft, for calibration); None while one of them has not answered yet."""
        calls = {CANDIDATE: 1, BASELINE: 1, JUDGE: 4 if example.edited else 2}
        if any(who not in self.dearest for who in calls):
            return None
        return sum(self.dearest[who] * count for who, count in calls.items())

    def _spend(self, rows: Sequence[db.ResultRow]) -> None:
        for row in rows:
            if row.cost_usd is None:
                self.unpriced += 1
                continue
            who = row.arm if row.metric == OUTPUT else JUDGE
            self.spent += row.cost_usd
            self.dearest[who] = max(self.dearest.get(who, 0.0), row.cost_usd)

    def _cap_reason(self) -> str:
        return (
            f"cost cap: ${self.spent:,.4f} spent of ${self.row['max_cost_usd']:,.4f} after {self.done} of "
            f"{len(self.examples)} examples"
        )

    def _stop(self, reason: str) -> Evaluation:
        return _end(self.svc, self.row["id"], EvaluationState.STOPPED, reason=reason, run=self)

    def _measure_window(self, window: list[tuple[int, Example]]) -> None:
        answers = {
            (ordinal, arm): self._submit(target, _generation(example, target, self.row["max_new_tokens"]))
            for ordinal, example in window
            for arm, target in self.sides.items()
        }
        outputs = {key: future.result() for key, future in answers.items()}
        verdicts, calibrations = {}, {}
        for ordinal, example in window:
            conversation = conversation_text(example.messages, system=example.system)
            verdicts[ordinal] = ask_pair(
                self._submit, self.judge, self.rubric, conversation=conversation,
                baseline=outputs[(ordinal, BASELINE)].text, candidate=outputs[(ordinal, CANDIDATE)].text,
            )  # fmt: skip
            if example.edited and example.final is not None:
                calibrations[ordinal] = ask_calibration(
                    self._submit, self.judge, self.rubric, conversation=conversation, final=example.final,
                    draft=example.output,
                )  # fmt: skip
        for ordinal, example in window:
            rows = self._output_rows(ordinal, example, outputs)
            rows += _judge_rows(ordinal, example, JUDGMENT, verdicts[ordinal])
            if ordinal in calibrations:
                rows += _judge_rows(ordinal, example, CALIBRATION, calibrations[ordinal])
            self._store(rows)

    def _submit(self, target: Target, request: ChatRequest) -> Future[ChatResult]:
        """Queue one call; while the engine has too many waiting, wait for room instead of failing."""
        for _ in range(BUSY_TRIES - 1):
            try:
                return self.engine.submit(target, request)
            except InferenceBusy:
                time.sleep(BUSY_WAIT_SECONDS)
        return self.engine.submit(target, request)

    def _output_rows(
        self, ordinal: int, example: Example, outputs: dict[tuple[int, str], ChatResult]
    ) -> list[db.ResultRow]:
        rows = []
        for arm in (CANDIDATE, BASELINE):
            answer = outputs[(ordinal, arm)]
            scores = score_example(answer.text, example.completion, tokenizer=self.tokenizers[arm])
            rows.append(
                db.ResultRow(
                    feedback_id=example.id, ordinal=ordinal, metric=OUTPUT, arm=arm, value=scores.acceptance,
                    output=answer.text, detail={"scores": scores.model_dump(), "finish_reason": answer.finish_reason,
                                                "cost_note": answer.cost_note},
                    input_tokens=answer.input_tokens, output_tokens=answer.output_tokens,
                    latency_ms=answer.latency_ms, cost_usd=answer.cost_usd,
                )
            )  # fmt: skip
        return rows

    def _store(self, rows: list[db.ResultRow]) -> None:
        """One example, whole, with the evaluation's progress and spend."""
        self._spend(rows)
        self.done += 1
        store = self.svc.store
        with store.write():
            db.insert_results(store, self.row["id"], rows)
            db.progress(
                store, self.row["id"], done=self.done, cost_usd=round(self.spent, 9), unpriced=self.unpriced, now=iso()
            )
        if self.on_spend is not None:
            self.on_spend(self.spent)
        if self.on_progress is not None:
            self.on_progress(self.done, len(self.examples))
        self._announce()

    def _announce(self, *, force: bool = False) -> None:
        """Tell Slack where the run stands, every 5 % (the outbox keeps only the newest of a message's updates)."""
        step = self.done * ANNOUNCE_STEPS // max(len(self.examples), 1)
        if not force and step == self.announced:
            return
        self.announced = step
        with self.svc.store.write():
            outbox.enqueue(self.svc.store, _event(get_evaluation(self.svc.store, self.row["id"])))

    def summary(self) -> EvaluationSummary | None:
        rows = db.results(self.svc.store, self.row["id"])
        if not rows:
            return None
        row = self.row
        return summarize_rows(
            rows, candidate=_label(row["candidate"], row["candidate_ref"]),
            baseline=_label(row["baseline"], row["baseline_ref"]), judge=row["judge"], split=row["split"],
            split_note=_split_note(row["split"]), rubric=self.rubric.source,
        )  # fmt: skip


def _generation(example: Example, target: Target, max_new_tokens: int) -> ChatRequest:
    """The conversation of `example`, to be answered as the user's agent would."""
    messages = ([{"role": "system", "content": example.system}] if example.system else []) + list(example.messages)
    return ChatRequest.build(messages, max_new_tokens=max_new_tokens, temperature=steady_temperature(target.provider))


def _judge_rows(
    ordinal: int, example: Example, metric: str,
    asked: Mapping[PairOrder, Future[ChatResult]] | Mapping[CalibrationOrder, Future[ChatResult]],
) -> list[db.ResultRow]:  # fmt: skip
    """The judge's answers about one example: its pick per order, and its value (the candidate's score in that
    order for a judgment; 1 when it picked as the user did for a calibration)."""
    rows = []
    for order, future in asked.items():
        answer = future.result()
        read = parse_answer(answer.text)
        detail: dict[str, Any] = {"pick": read.pick, "readable": read.readable, "cost_note": answer.cost_note}
        if isinstance(order, CalibrationOrder):
            detail["user"] = USER_PICK[order]
            value = 1.0 if read.pick is USER_PICK[order] else 0.0
        else:
            value = _candidate_score(order, read.pick)
        rows.append(
            db.ResultRow(
                feedback_id=example.id, ordinal=ordinal, metric=metric, arm=order, value=value, output=answer.text,
                detail=detail, input_tokens=answer.input_tokens, output_tokens=answer.output_tokens,
                latency_ms=answer.latency_ms, cost_usd=answer.cost_usd,
            )
        )  # fmt: skip
    return rows


def _candidate_score(order: PairOrder, pick: Pick) -> float:
    if pick is Pick.TIE:
        return 0.5
    candidate_shown = Pick.SECOND if order is PairOrder.BASELINE_FIRST else Pick.FIRST
    return 1.0 if pick is candidate_shown else 0.0


def _end(
    svc: Services, evaluation_id: str, status: EvaluationState, *, reason: str | None, run: _Run | None
) -> Evaluation:
    """Finish the evaluation: its summary of what was measured, its state and reason, one notice."""
    summary = _summary_of(run)
    store = svc.store
    with store.write():
        db.finish(
            store, evaluation_id, status=status, reason=reason,
            summary=summary.model_dump_json() if summary is not None else None, now=iso(),
        )  # fmt: skip
        finished = get_evaluation(store, evaluation_id)
        outbox.enqueue(store, _event(finished))
    return finished


def _summary_of(run: _Run | None) -> EvaluationSummary | None:
    """The run's summary; None (the stored one is kept) when there is no run or summing up fails."""
    if run is None:
        return None
    try:
        return run.summary()
    except Exception:
        log.exception("could not sum up evaluation %s", run.row["id"])
        return None


# Reading -------------------------------------------------------------------------------------------


def _evaluation(row: dict[str, Any]) -> Evaluation:
    stored = row["summary"] or "{}"
    summary = EvaluationSummary.model_validate_json(stored) if stored != "{}" else None
    return Evaluation(
        id=row["id"], status=EvaluationState(row["status"]), status_reason=row["status_reason"],
        candidate=row["candidate"], candidate_ref=row["candidate_ref"], candidate_version_id=row["model_version_id"],
        baseline=row["baseline"], baseline_ref=row["baseline_ref"], baseline_version_id=row["baseline_version_id"],
        dataset_version=row["dataset_version_id"], split=row["split"], judge=row["judge"],
        max_cost_usd=row["max_cost_usd"], limit=row["example_limit"], max_new_tokens=row["max_new_tokens"],
        done=row["done"], total=row["total"], cost_usd=row["cost_usd"], unpriced=row["unpriced"],
        requested_by=row["created_by"], requested_via=row["requested_via"], created_at=row["created_at"],
        started_at=row["started_at"], finished_at=row["finished_at"], summary=summary,
    )  # fmt: skip


def _event(evaluation: Evaluation) -> events.EvaluationChanged:
    reason = evaluation.status_reason or (evaluation.summary.split_note if evaluation.summary else None)
    return events.EvaluationChanged(
        evaluation_id=evaluation.id, status=evaluation.status, candidate=evaluation.candidate_label,
        baseline=evaluation.baseline_label, dataset_version=evaluation.dataset_version, judge=evaluation.judge,
        done=evaluation.done, total=evaluation.total, cost_usd=evaluation.cost_usd,
        headline=evaluation.headline if evaluation.status in FINAL_EVALUATION_STATES else None,
        reason=reason, requested_by=evaluation.requested_by,
    )  # fmt: skip
