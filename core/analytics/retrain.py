"""The retraining trigger: enough new corrections for an agent become a proposal to train its next version.

A correction is a feedback event whose final text exists and differs from the
draft. It counts toward retraining an agent when it was ingested after the
agent's last dataset version was built and passes that version's recipe as
the dataset builder would apply it (its filters, the length check and the
quality floor: the recipe's `min_quality` or FINETUNE_RETRAIN_MIN_QUALITY,
whichever is higher); near-duplicates are only found when the version is
built, so they are not subtracted here.

The agent's dataset is the dataset named after the agent (trained models are
registered under their dataset's name), else the newest dataset whose last
version holds examples of the agent. Its last version's recipe builds the next.
The job trains on the provider and base model of the last job on that dataset,
else FINETUNE_RETRAIN_PROVIDER and FINETUNE_RETRAIN_BASE_MODEL; its cost is
estimated from the last version's export, its training tokens scaled by the
examples the corrections add (an estimate: the new version's export counts
exactly when it is launched).

A proposal is an approval request (`Action.RETRAIN`) whose message reads
"52 new corrections for support since support@3; retrain on amazon.nova-micro
for ~$3.10?". Approving it builds the version and launches the job through the
normal launch path, so budgets and spend limits still apply (a launch over
them waits for its own approval); the approval's payload then names the
`dataset_version` and `job_id`. An agent has at most one open proposal: none
is made while one is pending, approved but not launched yet, or its job has not
finished. `check_retraining` (the scheduler's daily job) proposes for every
agent past FINETUNE_RETRAIN_MIN_CORRECTIONS, as the scheduler; `propose_retrain`
proposes for one agent now, for whoever asks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field

from core.analytics import ledger_db
from core.catalog.pricing import CostEstimate, estimate_cost
from core.data import datasets
from core.data import db as data_db
from core.data.datasets import MAX_COMPLETION_CHARS, DatasetVersion, Recipe, quality, rejected_draft
from core.errors import Conflict, FinetuneError, NotFound
from core.platform import approvals, audit, events, outbox
from core.platform.actors import SCHEDULER, Actor
from core.platform.policy import authorize
from core.platform.store import Store
from core.registry.facts import dataset_fact
from core.services import Services
from core.training import jobs, planning
from core.training.hyperparams import suggest_hyperparameters
from core.vocabulary import FINAL_JOB_STATES, Action, ApprovalState, Method, Operation

log = logging.getLogger(__name__)


class NothingToRetrain(Conflict):
    """An agent has no new corrections to train on since its last dataset version."""


class RetrainProposal(BaseModel):
    """A proposal to retrain an agent: what it would train on, where, at what estimated cost, and its approval."""

    agent: str
    dataset: str
    since_version: str = Field(description="The agent's last dataset version; the corrections arrived after it.")
    next_version: str = Field(description="The version approving it builds (unless an identical one exists).")
    corrections: int = Field(description="New corrections that pass the recipe and the quality floor.")
    provider: str
    base_model: str
    method: Method
    estimate: CostEstimate = Field(description="Scaled from the last version's export: an estimate.")
    approval: approvals.Approval

    @property
    def text(self) -> str:
        return proposal_text(self.corrections, self.agent, self.since_version, self.base_model, self.estimate)


def proposal_text(corrections: int, agent: str, since: str, base_model: str, estimate: CostEstimate) -> str:
    """`52 new corrections for support since support@3; retrain on amazon.nova-micro for ~$3.10?`."""
    price = f"for ~${estimate.usd:,.2f}" if estimate.usd is not None else "at an unknown cost (no catalog price)"
    noun = "correction" if corrections == 1 else "corrections"
    return f"{corrections} new {noun} for {agent} since {since}; retrain on {base_model} {price}?"


# Proposing ------------------------------------------------------------------------------------------------


def check_retraining(svc: Services) -> list[RetrainProposal]:
    """Propose retraining every agent with at least FINETUNE_RETRAIN_MIN_CORRECTIONS new corrections (as the
    scheduler); agents with an open proposal, without a dataset, or below the threshold are left alone."""
    made = []
    for agent in ledger_db.agents_with_feedback(svc.store):
        try:
            if open_proposal(svc.store, agent) is not None:
                continue
            proposal = _propose(svc, agent=agent, actor=SCHEDULER, minimum=svc.settings.retrain_min_corrections)
        except (NothingToRetrain, NotFound):  # nothing new, or no dataset to retrain from: nothing to say
            continue
        except FinetuneError as exc:  # one agent's problem (a setting, a price) must not stop the others
            log.warning("retraining check: %s skipped: %s", agent, exc)
            continue
        if proposal is not None:
            made.append(proposal)
    return made


def propose_retrain(svc: Services, *, agent: str, actor: Actor) -> approvals.Approval:
    """Propose retraining `agent` now, however few its new corrections: an approval request with the cost
    estimate. NothingToRetrain when there are none; Conflict while the agent has an open proposal."""
    return request_retrain(svc, agent=agent, actor=actor).approval


def request_retrain(svc: Services, *, agent: str, actor: Actor) -> RetrainProposal:
    """`propose_retrain`, answering the whole proposal (what faces show)."""
    authorize(actor, Operation.LAUNCH)
    proposal = _propose(svc, agent=agent, actor=actor, minimum=1)
    assert proposal is not None  # minimum 1: NothingToRetrain is raised below it
    return proposal


def _propose(svc: Services, *, agent: str, actor: Actor, minimum: int) -> RetrainProposal | None:
    store, settings = svc.store, svc.settings
    _refuse_open(store, agent)
    last = agent_dataset_version(store, agent)
    if minimum > 1 and len(ledger_db.corrections_since(store, agent=agent, since=last.created_at)) < minimum:
        return None  # too few even before the recipe's filters: the candidates are not read at all
    corrections = count_corrections(store, agent=agent, version=last, min_quality=settings.retrain_min_quality)
    if corrections == 0:
        raise NothingToRetrain(
            f"no new corrections for {agent} since {last.id} (built {last.created_at[:16].replace('T', ' ')} UTC).",
            hint="Corrections are feedback whose final text differs from the draft; ingest some, then ask again.",
            agent=agent,
        )
    if corrections < minimum:
        return None
    provider, base_model, method = _training_target(svc, last.dataset)
    estimate = _estimate(svc, last, base_model=base_model, method=method, corrections=corrections, actor=actor)
    next_version = f"{last.dataset}@{last.version + 1}"
    text = proposal_text(corrections, agent, last.id, base_model, estimate)
    with store.write():
        _refuse_open(store, agent)  # again, inside the transaction: two checks at once make one proposal
        approval = approvals.request(
            store, action=Action.RETRAIN, subject_id=agent, actor=actor, ttl_hours=settings.approval_ttl_hours,
            cost_usd=estimate.usd, summary=text,
            payload={
                "agent": agent, "dataset": last.dataset, "since_version": last.id, "corrections": corrections,
                "recipe": last.recipe.model_dump(mode="json"), "provider": provider, "base_model": base_model,
                "method": method, "hyperparameters": _whole_where_whole(settings.retrain_hyperparameters),
            },
            facts={
                "Agent": agent, "New corrections": f"{corrections:,} since {dataset_fact(store, last.id)}",
                "Builds": next_version, "Provider": provider, "Base model": base_model,
                "Training tokens (est.)": f"{estimate.billed_tokens:,} ({estimate.epochs} epochs)",
            },
            needed=approvals.approvals_needed(settings, Action.RETRAIN), now=svc.clock(),
        )  # fmt: skip
    return RetrainProposal(
        agent=agent, dataset=last.dataset, since_version=last.id, next_version=next_version, corrections=corrections,
        provider=provider, base_model=base_model, method=method, estimate=estimate, approval=approval,
    )  # fmt: skip


def open_proposal(store: Store, agent: str) -> approvals.Approval | None:
    """The agent's retraining proposal still in flight: pending, approved but not launched, or its job not finished."""
    for row in ledger_db.retrain_approvals(store, agent, statuses=(ApprovalState.PENDING, ApprovalState.APPROVED)):
        approval = approvals.get(store, row["id"])
        if approval.status == ApprovalState.PENDING:
            return approval
        job_id = approval.payload.get("job_id")
        if job_id is None and approval.payload.get("error") is None:
            return approval  # approved a moment ago: its launch runs now
        if job_id is not None and ledger_db.job_status(store, str(job_id)) not in FINAL_JOB_STATES:
            return approval
    return None


def _refuse_open(store: Store, agent: str) -> None:
    found = open_proposal(store, agent)
    if found is None:
        return
    job = found.payload.get("job_id")
    state = f"its job {job} has not finished" if job else f"it is {found.status}"
    raise Conflict(
        f"{agent} already has a retraining proposal in flight ({found.id}: {state}).",
        hint=f"Decide it (`finetune approve {found.id}` or `finetune reject {found.id}`) or wait for its job.",
        approval=found.id,
    )


# What the proposal would train --------------------------------------------------------------------------


def agent_dataset_version(store: Store, agent: str) -> DatasetVersion:
    """The agent's last dataset version: of the dataset named after it, else the newest holding its examples."""
    try:
        return datasets.get_version(store, agent)
    except FinetuneError:  # no dataset of that name (or a name no dataset could have)
        pass
    for row in ledger_db.latest_versions(store):
        if agent in (row["by_agent"] or {}):
            return datasets.get_version(store, row["id"])
    raise NotFound(
        f"agent {agent!r} has no dataset version yet, so there is nothing to retrain from.",
        hint=f"Build its first one: `finetune data build {agent} --agent {agent}`.",
        agent=agent,
    )


def count_corrections(store: Store, *, agent: str, version: DatasetVersion, min_quality: float) -> int:
    """Corrections of `agent` ingested since `version` was built that its recipe would select (before dedupe)."""
    new = {row["id"] for row in ledger_db.corrections_since(store, agent=agent, since=version.created_at)}
    if not new:
        return 0
    recipe = version.recipe
    floor = max(recipe.filters.min_quality, min_quality)
    return sum(1 for row in _candidates(store, recipe, agent) if row["id"] in new and _kept(row, recipe, floor))


def _candidates(store: Store, recipe: Recipe, agent: str) -> Iterator[dict[str, Any]]:
    filters = recipe.filters.model_dump(exclude={"min_quality", "include_rejected", "edit_phrases"})
    filters["agents"] = [agent]
    return data_db.feedback_candidates(store, **filters)


def _kept(row: dict[str, Any], recipe: Recipe, floor: float) -> bool:
    """Whether the builder keeps this candidate: not a rejected draft, within length, above the quality floor,
    showing the recipe's edit phrases when it names some."""
    draft, final = row["ai_output"], row["final_output"]
    if not recipe.filters.include_rejected and rejected_draft(row["rating"], draft, final):
        return False
    completion = final if final is not None else draft
    if not completion.strip() or len(completion) > MAX_COMPLETION_CHARS:
        return False
    if recipe.filters.edit_phrases:
        from core.analytics.patterns import edits_show

        if not edits_show(row["edit_ops"], recipe.filters.edit_phrases):
            return False
    return quality(row["rating"], final is not None) >= floor


def _training_target(svc: Services, dataset: str) -> tuple[str, str, Method]:
    """(provider, base model, method) of the dataset's last job, else the retraining settings."""
    last = ledger_db.last_job_for_dataset(svc.store, dataset)
    if last is not None:
        return last["provider"], last["base_model"], Method(last["method"])
    provider = svc.settings.retrain_provider
    base_model = planning.local_base_model(svc.settings, provider=provider, base_model=svc.settings.retrain_base_model)
    return str(provider), base_model, Method.SUPERVISED


def _estimate(
    svc: Services, last: DatasetVersion, *, base_model: str, method: Method, corrections: int, actor: Actor
) -> CostEstimate:
    """The job's cost: the last version's exported training tokens, scaled by the training examples the
    corrections add, at the epochs suggested for the new size."""
    catalog = planning.catalog_for(svc.catalog, base_model)
    before = planning.estimate_version_cost(
        svc.store, version=last.id, base_model=base_model, actor=actor, data_dir=svc.settings.data_dir,
        method=method, catalog=catalog,
    )  # fmt: skip
    trained = int(last.counts.get("splits", {}).get("train") or 0)
    added = round(corrections * last.recipe.split[0])
    tokens = round(before.training_tokens * (trained + added) / trained) if trained else before.training_tokens
    mean_tokens = before.training_tokens / trained if trained else 1.0
    epochs = suggest_hyperparameters(
        base_model=base_model, n_train=max(trained + added, 1), mean_tokens=max(mean_tokens, 1.0), method=method,
        catalog=catalog,
    ).epochs  # fmt: skip
    estimate = estimate_cost(
        base_model=base_model, training_tokens=tokens, epochs=epochs, exact_tokens=False, catalog=catalog
    )
    note = (
        f"Scaled from {last.id}'s export: {before.training_tokens:,} training tokens for {trained:,} examples, "
        f"plus {added:,} examples from the new corrections."
    )
    return estimate.model_copy(update={"notes": [note, *estimate.notes]})


def _whole_where_whole(values: dict[str, float]) -> dict[str, float | int]:
    """Settings' numbers as a job takes them: 4.0 epochs as 4."""
    return {name: int(value) if float(value).is_integer() else value for name, value in values.items()}


# Deciding -------------------------------------------------------------------------------------------------


def on_retrain_decided(store: Store, approval: approvals.Approval, approved: bool) -> None:
    """Inside the deciding transaction: a proposal has no state of its own beyond its approval; the build and
    launch talk to the file system and a provider, so they run after commit (`after_retrain_approved`)."""


def after_retrain_approved(svc: Services, approval: approvals.Approval) -> None:
    """After commit: build the next dataset version with the recorded recipe and launch its job through the
    normal launch path (idempotent per approval); the approval's payload then names both."""
    store, payload = svc.store, approval.payload
    try:
        version = datasets.build_dataset(
            store, name=str(payload["dataset"]), actor=SCHEDULER, recipe=Recipe.model_validate(payload["recipe"]),
            description=f"retraining {payload['agent']} ({approval.id})",
        )  # fmt: skip
        launched = jobs.launch_job(
            svc, dataset_version=version.id, provider=str(payload["provider"]), base_model=str(payload["base_model"]),
            actor=SCHEDULER, method=str(payload.get("method") or Method.SUPERVISED), key=f"retrain:{approval.id}",
            hyperparameters=dict(payload.get("hyperparameters") or {}) or None,
        )  # fmt: skip
    except FinetuneError as exc:
        with store.write():
            ledger_db.add_to_payload(store, approval.id, {"error": exc.message})
            text = f"Retraining {payload.get('agent')} was approved ({approval.id}) but could not start: {exc.message}"
            outbox.enqueue(store, events.Notice(text=text, sent_by=str(SCHEDULER)))
            audit.record(
                store, SCHEDULER, "retrain", {"approval": approval.id, "agent": payload.get("agent")},
                outcome="error", detail=exc.message,
            )  # fmt: skip
        raise
    with store.write():
        ledger_db.add_to_payload(store, approval.id, {"dataset_version": version.id, "job_id": launched.job.id})
        audit.record(
            store, SCHEDULER, "retrain",
            {"approval": approval.id, "agent": payload.get("agent"), "version": version.id, "job": launched.job.id},
            detail=f"built {version.id}" + (" (an identical version existed)" if version.reused else "")
            + f", launched {launched.job.id} ({launched.job.status})",
        )  # fmt: skip


__all__ = [
    "NothingToRetrain",
    "RetrainProposal",
    "after_retrain_approved",
    "check_retraining",
    "count_corrections",
    "on_retrain_decided",
    "open_proposal",
    "propose_retrain",
    "request_retrain",
]
