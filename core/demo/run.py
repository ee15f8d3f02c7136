"""`finetune demo`: the whole loop, offline, on the embedded default, in a few minutes.

The demo runs the product as a team would, with simulated people where people would act:

1. The bundled sample feedback (`core.demo.samples`) is ingested and support's first dataset built.
2. The model the team runs today: a tiny base model pretrained from scratch on the sample conversations
   (`core.providers.local.pretrain`; there is no real base model on a machine without downloads), fine-tuned by a
   real local LoRA job into support:v1, and deployed to production with two approvals.
3. A simulated week: support's customers are served by production through the registry's sticky resolution, and
   simulated reviewers (`core.demo.users`) accept, edit or reject each draft; their outcomes are recorded as an
   application records them.
4. Round 1: the retraining trigger proposes retraining on the new corrections, which starts a run of the loop
   (`core.loop`); the demo approves each human step as two configured approvers and says so; the job trains
   support:v2; it is evaluated against production (judged by `core.demo.judge`, a stand-in for an LLM judge); its
   canary is approved; simulated days of traffic pass under the acceptance guard; it is promoted.
5. Round 2: support's dataset is rebuilt with the wrong agent filter (a recipe slip: sales conversations instead
   of support's); the trigger proposes retraining again, the loop trains support:v3 on that data, the offline
   evaluation on its own (equally wrong) test split lets it through, and live support traffic shows it worse:
   the guard requests the rollback, the approvers approve it, support:v2 serves again.

Time is simulated where waiting is the point (canary stages hold a day, the guard looks daily): the demo's
Services carry a clock that it moves on; every record it writes is real. Training and inference are real and
run on this machine. `run_demo` reports what happens through `say`; the face prints it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from core import actions, loop, registry
from core.data import datasets, edits, feedback
from core.data.datasets import DatasetFilters, Recipe
from core.demo import samples, users
from core.errors import FinetuneError
from core.evaluation import guard_canaries, run_queued_evaluations
from core.inference import ChatRequest, InferenceEngine, chat_target
from core.platform import approvals
from core.platform.actors import Actor
from core.platform.identity import Identity, actor_for
from core.platform.timeutil import iso, utcnow
from core.services import Services
from core.training import jobs
from core.vocabulary import Face, IdentityKind, LoopOutcome, LoopStep

AGENT = "support"
MODEL = "support"  # its dataset and registered model
APPROVERS = ("ana", "ben")  # the demo's two configured approvers (OS identities)
OPERATOR = "demo-operator"  # who asks for what a person would ask for by hand
APPLICATION = "demo-shop"  # the application that serves the customers and records outcomes
DAY = timedelta(days=1)
CHUNK = 32  # chat calls in flight at once (the engine refuses more than MAX_WAITING waiting)


class DemoStopped(FinetuneError):
    """A step of the demo did not turn out as the demo needs (said with what happened)."""


@dataclass(frozen=True)
class DemoOptions:
    """How big the demo is; `fast` is the shortened demo the tests run."""

    fast: bool = False
    seed: int = 0

    @property
    def pretrain_steps(self) -> int:
        return 280 if self.fast else 400  # much fewer leaves a base too weak for the rounds to tell versions apart

    @property
    def traffic_per_day(self) -> int:
        return 120  # customers a day: the guard needs about this many to see round 2's candidate worse in days

    @property
    def first_week_days(self) -> int:
        return 2 if self.fast else 5

    @property
    def days_between_rounds(self) -> int:
        return 1 if self.fast else 2

    @property
    def canary_plan(self) -> str:
        """The canary's stages: the fast demo goes straight to half of the traffic (more outcomes a day)."""
        return "50,100" if self.fast else "25,50,100"

    @property
    def max_new_tokens(self) -> int:
        return 72

    @property
    def epochs(self) -> int:
        return 4


@dataclass
class Note:
    """One thing the demo tells: a step's headline, a detail under it, or where to look."""

    kind: str  # "step", "detail", "look" or "warn"
    text: str


@dataclass
class DemoResult:
    rounds: list[LoopOutcome] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    week: str | None = None


class SimClock:
    """The demo's clock: real time until told to move on, then that much ahead of it."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.ahead

    def move(self, by: timedelta) -> datetime:
        self.ahead += by
        return self()


class Demo:
    def __init__(
        self, svc: Services, engine: InferenceEngine, clock: SimClock, *, options: DemoOptions,
        say: Callable[[Note], None], between: Callable[[], None] = lambda: None,
    ) -> None:  # fmt: skip
        self.svc, self.engine, self.clock, self.options = svc, engine, clock, options
        self._say, self.between = say, between
        self.rng = random.Random(options.seed)
        self.system = samples.profile(AGENT).system
        self.approvers = [self._actor(name) for name in APPROVERS]
        self.operator = self._actor(OPERATOR)
        self.app = actor_for(svc.settings, Identity(IdentityKind.APP, APPLICATION), face=Face.APP)
        self.result = DemoResult()
        self._served = 0

    # Telling ------------------------------------------------------------------------------------------

    def step(self, text: str) -> None:
        self.between()
        self._say(Note("step", text))

    def detail(self, text: str) -> None:
        self._say(Note("detail", text))

    def look(self, text: str) -> None:
        self._say(Note("look", text))

    def _actor(self, name: str) -> Actor:
        return actor_for(self.svc.settings, Identity(IdentityKind.OS, name), face=Face.CLI)

    # The story ------------------------------------------------------------------------------------------

    def run(self, base_dir: Path) -> DemoResult:
        started = time.monotonic()
        self.ingest_sample()
        first = self.build(Recipe(filters=DatasetFilters(agents=[AGENT])), why="support's conversations")
        self.pretrain(base_dir)
        v1 = self.register_current(base_dir, first)
        self.deploy_first(v1)
        self.serve_days(self.options.first_week_days, what="a week of support traffic on support:v1")
        self.result.rounds.append(self.round(1))
        between = self.options.days_between_rounds
        self.serve_days(
            between, what=f"{'a day' if between == 1 else f'{between} days'} of support traffic on support:v2"
        )
        self.step("A recipe slip: support's dataset is rebuilt with the sales agent's filter instead of support's")
        self.build(Recipe(filters=DatasetFilters(agents=["sales"])), why="by mistake, sales conversations")
        self.serve_days(1, what="a day of support traffic, so there are new corrections since that build")
        self.result.rounds.append(self.round(2))
        self.result.seconds = time.monotonic() - started
        return self.result

    def ingest_sample(self) -> None:
        self.step("Ingest the bundled sample feedback: 300 drafts of three agents, with ratings and corrections")
        report = feedback.ingest_file(self.svc.store, samples.sample_path(), actor=self.operator)
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(report.redactions.by_type.items()))
        self.detail(f"{report.ingested} events stored; PII redacted at ingest: {kinds or 'none found'}")
        self.look(f"FINETUNE_DATA_DIR={self.svc.settings.data_dir} finetune status")

    def build(self, recipe: Recipe, *, why: str) -> str:
        version = datasets.build_dataset(self.svc.store, name=MODEL, actor=self.operator, recipe=recipe)
        splits = version.counts.get("splits", {}) if isinstance(version.counts, dict) else {}
        self.detail(
            f"built {version.id} from {why}: {version.counts.get('examples', '?')} examples "
            f"(train {splits.get('train', '?')}, validation {splits.get('validation', '?')}, test {splits.get('test', '?')})"
        )
        return version.id

    def pretrain(self, base_dir: Path) -> None:
        from core.providers.local.pretrain import PretrainSpec, pretrain_tiny

        self.step("Pretrain the demo's base model: a tiny model learns to write from the sample's drafts")
        pairs = [(event["messages"], event["output"]) for event in samples.generate_events(seed=0)]
        spec = PretrainSpec(steps=self.options.pretrain_steps)
        done = pretrain_tiny(base_dir, pairs, spec=spec)
        self.detail(
            f"{done.parameters:,} parameters, {spec.steps} steps on the {len(pairs)} drafts as the agents wrote them: "
            f"loss {done.first_loss:.2f} → {done.last_loss:.2f}. It writes like the agents do today, habits included: "
            "a stand-in for a real base model, which FINETUNE_LOCAL_BASE_MODEL names on a machine that has one"
        )

    def register_current(self, base_dir: Path, dataset_version: str) -> str:
        """Support's model today is the base as it is: registered as support:v1, with no job behind it."""
        self.step("Register the model support runs today as support:v1: the base model itself, not fine-tuned yet")
        store = self.svc.store
        with store.write():
            version = registry.register_version(
                store, name=MODEL, provider="local", provider_model_id=str(base_dir), job_id=None,
                dataset_version_id=None, base_model=str(base_dir), metrics={}, cost_usd=0.0, actor=self.operator,
                reason="the model support runs today", now=iso(self.clock()),
            )  # fmt: skip
        self.detail(f"{version.id} is registered; {dataset_version} holds what its reviewers corrected so far")
        self.result.versions["v1"] = version.id
        return version.id

    def losses(self, job_id: str) -> str:
        """`train loss 1.92 → 0.41, eval loss 1.88 → 0.52`: where the job's losses started and ended."""
        metrics = [e.metrics for e in jobs.job_events(self.svc.store, job_id).events if e.metrics]
        shown = []
        for name in ("train_loss", "eval_loss"):
            seen = [m[name] for m in metrics if m.get(name) is not None]
            if len(seen) >= 2:
                shown.append(f"{name.replace('_', ' ')} {seen[0]:.2f} → {seen[-1]:.2f}")
        return ", ".join(shown) or "no loss reported"

    def deploy_first(self, version_id: str) -> None:
        self.step(f"Deploy {version_id} to production: a protected alias, so two approvers must agree")
        change = registry.request_deploy(self.svc, actor=self.operator, name=MODEL, version=version_id)
        assert change.approval is not None
        self.approve(change.approval.id)

    def approve(self, approval_id: str) -> None:
        """Approve as the demo's approvers, as many as the request needs, saying so."""
        approval = approvals.get(self.svc.store, approval_id)
        for approver in self.approvers[: approval.approvals_needed]:
            actions.decide(self.svc, approval_id=approval_id, actor=approver, approve=True)
        names = " and ".join(a.id for a in self.approvers[: approval.approvals_needed])
        self.detail(
            f"approved {approval_id} ({approval.description}) as {names}: the demo's configured approvers "
            "(in Slack, they would click Approve)"
        )

    # Traffic ---------------------------------------------------------------------------------------------

    def serve_days(self, days: int, *, what: str, guard: bool = False) -> list[float]:
        """Simulated days of support traffic through production; returns each day's accepted share."""
        self.step(f"Simulate {what}: customers are served by production, reviewers accept, edit or reject")
        shares = []
        for _ in range(days):
            shares.append(self.serve_day())
            if guard:
                self.tick()
        return shares

    def serve_day(self) -> float:
        """One day: every customer resolved to a version (sticky), its draft generated, reviewed and recorded."""
        start = self.clock.move(DAY)
        n = self.options.traffic_per_day
        prompts = users.prompts(AGENT, n, self.rng)
        routed = []
        for chunk in range(0, n, CHUNK):  # the engine queues a bounded number of calls: send them a batch at a time
            sent = []
            for k, prompt in enumerate(prompts[chunk : chunk + CHUNK], start=chunk):
                key = f"customer-{self.rng.randrange(10_000)}"
                found = registry.resolve_model(self.svc.store, MODEL, key=key)
                target = chat_target(self.svc.store, found.version_id, key=key)
                request = ChatRequest.build(
                    [{"role": "system", "content": self.system}, {"role": "user", "content": prompt}],
                    max_new_tokens=self.options.max_new_tokens, temperature=0.0,
                )  # fmt: skip
                sent.append((k, prompt, found, self.engine.submit(target, request)))
            routed += [(k, prompt, found, future.result()) for k, prompt, found, future in sent]
        events: list[dict[str, Any]] = []
        by_version: dict[str, list[tuple[bool, float]]] = {}
        for k, prompt, found, result in routed:
            reaction = users.react(AGENT, prompt, result.text, self.rng)
            self._served += 1
            event: dict[str, Any] = {
                "id": f"demo-traffic-{self._served:06d}", "agent": AGENT, "template": samples.profile(AGENT).template,
                "messages": [{"role": "system", "content": self.system}, {"role": "user", "content": prompt}],
                "output": result.text, "rating": reaction.rating, "user": reaction.user,
                "model_version": found.version_id, "arm": str(found.arm), "latency_ms": result.latency_ms,
                "created_at": iso(start - DAY + (k + 1) * DAY / (n + 1)),
            }  # fmt: skip
            if reaction.final is not None:
                event["final"] = reaction.final
            events.append(event)
            kept = 1.0 if reaction.final is None else edits.compare(result.text, reaction.final).acceptance
            by_version.setdefault(found.version_id, []).append((reaction.accepted, kept))
        report = feedback.record_outcomes(self.svc.store, events, actor=self.app, source="demo-shop")
        parts = [
            f"{version} {sum(a for a, _ in seen)}/{len(seen)} accepted unedited, "
            f"{sum(k for _, k in seen) / len(seen):.0%} of each draft kept"
            for version, seen in sorted(by_version.items())
        ]
        self.detail(f"day {start.date()}: {report.ingested} outcomes recorded; " + "; ".join(parts))
        kept_all = [k for seen in by_version.values() for _, k in seen]
        return sum(kept_all) / len(kept_all) if kept_all else 0.0

    # The loop ----------------------------------------------------------------------------------------------

    def tick(self) -> None:
        """What `finetune serve`'s scheduler does, in order, at the demo's clock."""
        jobs.poll_active_jobs(self.svc)
        loop.advance_runs(self.svc)
        run_queued_evaluations(self.svc, engine=self.engine)
        registry.advance_due(self.svc, now=self.clock())
        guard_canaries(self.svc)
        loop.advance_runs(self.svc)
        self.between()

    def round(self, number: int) -> LoopOutcome:
        from core.analytics import retrain

        self.step(f"Round {number}: the retraining trigger counts new corrections for support")
        proposals = retrain.check_retraining(self.svc)
        if not proposals:
            raise DemoStopped("the retraining trigger proposed nothing: too few new corrections")
        self.detail(proposals[0].text)
        loop.advance_runs(self.svc)
        run = self.current_run()
        self.result.runs.append(run.id)
        self.detail(f"loop run {run.id} started: it waits for {run.waiting_for()}")
        self.look(f"FINETUNE_DATA_DIR={self.svc.settings.data_dir} finetune loop {run.id}")
        assert run.retrain_approval_id is not None
        self.approve(run.retrain_approval_id)
        run = self.until(run.id, lambda r: r.step is not LoopStep.TRAINING and r.step is not LoopStep.RETRAIN_APPROVAL)
        if run.job_id:
            job = jobs.get_job(self.svc.store, run.job_id)
            self.detail(f"job {job.id} {job.status}: {self.losses(job.id)}; it trained {run.version_id or 'nothing'}")
        run = self.until(run.id, lambda r: r.step is not LoopStep.EVALUATING)
        if run.evaluation_id:
            from core.evaluation import get_evaluation

            evaluation = get_evaluation(self.svc.store, run.evaluation_id)
            self.step(
                f"Offline evaluation {evaluation.id}: {evaluation.candidate_label} against {evaluation.baseline_label}"
            )
            self.detail(evaluation.headline or "no pair judged")
            self.look(f"FINETUNE_DATA_DIR={self.svc.settings.data_dir} finetune eval show {evaluation.id}")
        if run.outcome is not None:
            self.detail(f"the run ended {run.outcome}: {run.reason}")
            return run.outcome
        if run.step is LoopStep.CANARY_APPROVAL and run.canary_approval_id:
            self.step(f"The loop requests a canary of {run.version_id}, the evaluation on its approval")
            self.approve(run.canary_approval_id)
            run = self.until(run.id, lambda r: r.step is not LoopStep.CANARY_APPROVAL)
        days = 0
        while run.outcome is None and days < 12:
            if run.step is LoopStep.ROLLBACK_APPROVAL and run.rollback_approval_id:
                self.step("The acceptance guard found the canary significantly worse and requests its rollback")
                self.detail(run.steps[-1].text if run.steps else "")
                self.approve(run.rollback_approval_id)
                run = self.until(run.id, lambda r: r.step is not LoopStep.ROLLBACK_APPROVAL)
                continue
            state = registry.alias_state(self.svc.store, MODEL, "production")
            share = state.canary_share if state else 0
            self.serve_days(1, what=f"a day under the canary ({share} % of customers on {run.version_id})", guard=True)
            days += 1
            run = loop.get_run(self.svc, run.id)
        run = loop.get_run(self.svc, run.id)
        self.step(f"Round {number} ends {run.outcome}: {run.reason}")
        if run.version_id:
            self.result.versions[f"v{number + 1}"] = run.version_id
        return run.outcome or LoopOutcome.CANCELLED

    def current_run(self) -> loop.LoopRun:
        runs = loop.list_runs(self.svc, active_only=True).runs
        if not runs:
            raise DemoStopped("no loop run took up the retraining request")
        return loop.get_run(self.svc, runs[0].id)

    def until(self, run_id: str, done: Callable[[loop.LoopRun], bool], *, timeout: float = 600) -> loop.LoopRun:
        """Tick the scheduler's work until the run satisfies `done` or ends."""
        deadline = time.monotonic() + timeout
        while True:
            self.tick()
            run = loop.get_run(self.svc, run_id)
            if run.outcome is not None or done(run):
                return run
            if time.monotonic() > deadline:
                raise DemoStopped(f"loop run {run_id} did not move on within {timeout:.0f} s: {run.waiting_for()}")
            time.sleep(0.5)
