"""Contract tests: every registry keyed by the vocabulary is complete, and every map names each word once.

A new provider, action, event or job state that is added in one place and
forgotten in another fails here, with the missing name in the message.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable

import botocore.session
import pytest

from core import actions
from core.platform import events, outbox
from core.platform.actors import FACES
from core.platform.status import get_status
from core.providers import REGISTRY, FineTuneProvider
from core.providers.bedrock import BedrockProvider
from core.providers.local import LocalProvider, RunStatus
from core.providers.openai import OpenAIProvider
from core.training import db as training_db
from core.vocabulary import (
    Action,
    AlertKind,
    AliasMove,
    ApprovalState,
    CanaryAction,
    EvaluationState,
    ExperimentState,
    Face,
    JobState,
    LoopStep,
    Method,
    Provider,
    RolloutState,
    values,
)
from tests.conftest import ROOT

SPEC = ROOT.parent / "shared" / "specs" / "openai-fine-tuning-subset.json"

# Statuses OpenAI documents outside the FineTuningJob enum: the pause/resume endpoints answer `paused` and a job
# passes through `pausing`; Azure OpenAI's older API versions say `created` and `pending` for the first stages.
OPENAI_STATUSES_BESIDE_THE_ENUM = {"pausing", "paused", "created", "pending"}


def openai_documented() -> set[str]:
    if not SPEC.exists():
        pytest.skip(f"the OpenAI spec subset is not at {SPEC} (a checkout has ../shared/specs/ beside the repo)")
    spec = json.loads(SPEC.read_text())
    return set(spec["components"]["schemas"]["FineTuningJob"]["properties"]["status"]["enum"])


def bedrock_documented() -> set[str]:
    """The statuses in the Bedrock service model that botocore ships."""
    model = botocore.session.get_session().get_service_model("bedrock")
    return set(model.shape_for("ModelCustomizationJobStatus").enum)


DOCUMENTED: dict[type[FineTuneProvider], Callable[[], set[str]]] = {
    OpenAIProvider: lambda: openai_documented() | OPENAI_STATUSES_BESIDE_THE_ENUM,
    BedrockProvider: bedrock_documented,
    LocalProvider: lambda: set(values(RunStatus)),  # the worker's own words (core.providers.local.runs)
}


def provider_classes() -> set[type[FineTuneProvider]]:
    """Every FineTuneProvider defined in core.providers (test doubles live elsewhere and are not providers)."""
    found: set[type[FineTuneProvider]] = set()
    pending = list(FineTuneProvider.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("core.providers."):
            found.add(cls)
    return found


# Providers ------------------------------------------------------------------------------------------------


def test_every_provider_has_a_registry_entry_and_nothing_else_does():
    assert set(REGISTRY) == set(Provider), f"missing: {set(Provider) - set(REGISTRY)}"
    assert all(isinstance(name, Provider) for name in REGISTRY)
    assert all(callable(factory) for factory in REGISTRY.values())


def test_every_provider_class_has_its_documented_statuses_here():
    assert provider_classes() == set(DOCUMENTED)


@pytest.mark.parametrize("cls", list(DOCUMENTED), ids=[cls.__name__ for cls in DOCUMENTED])
def test_every_documented_status_maps_to_exactly_one_job_state(cls):
    documented = DOCUMENTED[cls]()
    assert set(cls.STATUS_MAP) == documented, (
        f"unmapped: {documented - set(cls.STATUS_MAP)}, undocumented: {set(cls.STATUS_MAP) - documented}"
    )
    for status, state in cls.STATUS_MAP.items():
        assert isinstance(state, JobState), (cls.__name__, status, state)


def test_the_test_double_is_not_a_provider():
    from tests.fake_provider import FakeProvider

    assert FakeProvider not in provider_classes()


def test_a_provider_without_webhooks_refuses_them():
    from core.providers import ProviderNotConfigured
    from tests.fake_provider import FakeProvider

    assert "verify_webhook" not in vars(FakeProvider)
    with pytest.raises(ProviderNotConfigured, match="sends no webhooks"):
        FakeProvider().verify_webhook(b"{}", {}, "whsec_x")


# Approval actions -----------------------------------------------------------------------------------------


def test_every_action_has_a_handler():
    assert set(actions.HANDLERS) == set(Action), f"missing: {set(Action) - set(actions.HANDLERS)}"
    for action, handler in actions.HANDLERS.items():
        assert callable(handler.on_decided), action
        assert handler.after_approved is None or callable(handler.after_approved), action


# Notification events --------------------------------------------------------------------------------------

SAMPLES: dict[type, events.Event] = {
    events.Notice: events.Notice(text="deploy at five", sent_by="cli:ops"),
    events.JobChanged: events.JobChanged(
        job_id="job_1",
        status=JobState.RUNNING,
        base_model="m",
        dataset_version="support@1",
        provider=Provider.OPENAI,
        detail="step 10",
        model_id=None,
        error=None,
    ),
    events.ApprovalRequested: events.ApprovalRequested(
        approval_id="ap_1",
        action=Action.LAUNCH,
        subject_id="job_1",
        description="launch job_1",
        requested_by="mcp:agent",
        cost_usd=12.5,
    ),
    events.ApprovalDecided: events.ApprovalDecided(
        approval_id="ap_1",
        action=Action.LAUNCH,
        subject_id="job_1",
        status=ApprovalState.REJECTED,
        decided_by="slack:U1",
        reason="too big",
    ),
    events.ApprovalAnswered: events.ApprovalAnswered(
        approval_id="ap_1",
        action=Action.LAUNCH,
        subject_id="job_1",
        status=ApprovalState.APPROVED,
        decided_by="slack:U2",
    ),
    events.AliasMoved: events.AliasMoved(
        model_name="support",
        alias="production",
        move=AliasMove.CANARY,
        from_version_id="support:v1",
        to_version_id="support:v1",
        canary_version_id="support:v2",
        canary_share=10,
        actor="cli:ann",
        approval_id="ap_1",
    ),
    events.RolloutChanged: events.RolloutChanged(
        rollout_id="ro_1",
        model_name="support",
        alias="production",
        version_id="support:v2",
        status=RolloutState.RUNNING,
        stage=1,
        stages=3,
        share=10,
        next_at="2026-11-24T09:00:00.000000Z",
        actor="slack:U2",
    ),
    events.EvaluationChanged: events.EvaluationChanged(
        evaluation_id="ev_1",
        status=EvaluationState.RUNNING,
        candidate="support:v2",
        baseline="production (support:v1)",
        dataset_version="support@1",
        judge="anthropic:claude-sonnet-5-5",
        done=4,
        total=12,
        cost_usd=0.012,
        requested_by="slack:U2",
    ),
    events.ExperimentEnded: events.ExperimentEnded(
        experiment_id="ab_1",
        name="support@production",
        control="support:v1",
        treatment="support:v2",
        status=ExperimentState.CONCLUDED,
        verdict="winner",
        reason="Winner: acceptance is better by 6 points (Holm-adjusted p = 0.01), and no metric is significantly worse.",
        actor="slack:U2",
    ),
    events.CanaryGuarded: events.CanaryGuarded(
        model_name="support",
        alias="production",
        canary_version_id="support:v2",
        stable_version_id="support:v1",
        evidence="acceptance 62.0% against 81.0% (−19 points; always-valid p = 0.0004).",
        action=CanaryAction.PROPOSED,
        approval_id="ap_1",
    ),
    events.RegressionAlert: events.RegressionAlert(
        alert_id=7,
        alert=AlertKind.ACCEPTANCE_DROP,
        agent="support",
        headline="Acceptance of support fell from 81% to 62% (−19 points) in the 7 days to 2026-11-22.",
    ),
    events.LoopChanged: events.LoopChanged(
        run_id="loop-1",
        model_name="support",
        alias="production",
        step=LoopStep.TRAINING,
        waiting_for="the fine-tuning job to finish",
        latest="Retraining approved by slack:U2: job job_1 trains tiny on support@2 via local.",
        job_id="job_1",
    ),
    events.LoopStepPosted: events.LoopStepPosted(
        run_id="loop-1", seq=2, step=LoopStep.TRAINING, text="Retraining approved.", by="scheduler:scheduler"
    ),
    events.DigestReady: events.DigestReady(
        week="2026-W03",
        headline="2026-W03: 247 drafts, acceptance 80.2% (-12.2 points), 1 open alert, $5.79 spent",
        digest={"week": {"week": "2026-W03"}},
        page_url="https://finetune.example.com/reports/2026-W03.html",
    ),
}


def test_every_event_kind_is_in_the_event_union_once():
    union = set(typing.get_args(typing.get_args(events.Event)[0]))
    assert union == set(events.EVENT_KINDS)
    kinds = [cls.model_fields["kind"].default for cls in events.EVENT_KINDS]
    assert len(kinds) == len(set(kinds))


@pytest.mark.parametrize("cls", events.EVENT_KINDS, ids=[cls.__name__ for cls in events.EVENT_KINDS])
def test_every_event_round_trips_through_the_outbox(store, cls):
    assert cls in SAMPLES, f"add a sample {cls.__name__} to SAMPLES"
    sample = SAMPLES[cls]
    outbox.enqueue(store, sample)
    [message] = outbox.due(store)
    assert type(message.event) is cls and message.event == sample
    assert message.kind == sample.kind and message.message_key == sample.message_key
    assert message.text == sample.summary()


# Job and approval states ----------------------------------------------------------------------------------


def _dataset_version(store) -> str:
    with store.write() as db:
        db.execute("INSERT INTO datasets (id, name, created_by, created_at) VALUES ('ds_1', 'support', 'cli:t', 't')")
        db.execute(
            "INSERT INTO dataset_versions (id, dataset_id, version, split_seed, content_hash, created_by, created_at)"
            " VALUES ('support@1', 'ds_1', 1, 0, 'h', 'cli:t', 't')"
        )
    return "support@1"


def test_every_job_state_is_storable_and_counted_in_the_status_report(store):
    assert set(get_status(store).jobs_by_state) == set(values(JobState))
    version = _dataset_version(store)
    with store.write():
        for state in JobState:  # the table's CHECK constraint must accept each one
            training_db.insert_job(
                store, job_id=f"job_{state}", provider=Provider.OPENAI, dataset_version_id=version, base_model="m",
                method=Method.SUPERVISED, hyperparameters={}, status=state, estimated_cost_usd=None,
                idempotency_key=f"key_{state}", requested_by="cli:t", requested_via=Face.CLI, now="t", next_poll_at="t",
            )  # fmt: skip
    assert get_status(store).jobs_by_state == dict.fromkeys(values(JobState), 1)


def test_every_approval_state_is_storable(store):
    with store.write() as db:
        for state in ApprovalState:
            db.execute(
                "INSERT INTO approvals (id, action, status, requested_by, requested_via, created_at)"
                " VALUES (?, ?, ?, 'U1', ?, 't')",
                (f"ap_{state}", Action.LAUNCH, state, Face.SLACK),
            )
    assert store.scalar("SELECT count(*) FROM approvals") == len(ApprovalState)


def test_faces_are_listed_from_the_vocabulary():
    assert values(Face) == list(FACES)
