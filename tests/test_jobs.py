import sys

import pytest

from core import actions
from core.data import datasets, feedback
from core.data.datasets import DatasetFilters, Recipe
from core.errors import Conflict, InvalidInput, PermissionDenied
from core.platform import approvals
from core.platform.actors import Actor, cli_actor
from core.providers.base import ProviderError, ProviderEvent, ProviderNotConfigured
from core.training import jobs
from core.vocabulary import ApprovalState, Face, JobState, Provider, Role
from tests.conftest import make_settings, svc
from tests.fake_provider import FakeProvider
from tests.feedback_samples import make_events

ALICE = Actor(id="UALICE", face=Face.SLACK, role=Role.APPROVER)
BOB = Actor(id="UBOB", face=Face.SLACK, role=Role.APPROVER)
AGENT = Actor(id="claude-desktop", face=Face.MCP, role=Role.OPERATOR)
CAROL = Actor(id="UCAROL", face=Face.SLACK, role=Role.OPERATOR)
MODEL = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def fake():
    return FakeProvider()


@pytest.fixture
def registry(fake):
    return {Provider.OPENAI: lambda settings: fake, Provider.AZURE: lambda settings: fake}


@pytest.fixture
def version(store):
    feedback.ingest_batch(store, make_events(60), actor=cli_actor())
    return datasets.build_dataset(store, name="support", actor=cli_actor())


def launch(store, settings, registry, version, actor=ALICE, **kwargs):
    return jobs.launch_job(svc(store, settings, registry), dataset_version=version.id, provider="openai", base_model=MODEL,
                           actor=actor, **kwargs)  # fmt: skip


def test_launch_under_budget_submits_at_once(store, settings, registry, version, fake):
    result = launch(store, settings, registry, version, hyperparameters={"epochs": 2})
    job = result.job
    assert result.created and result.approval is None and result.cost.usd < settings.auto_approve_usd
    assert job.status is JobState.VALIDATING and job.provider_job_id == "ftjob-1"
    assert job.hyperparameters["epochs"] == 2 and fake.launches[0].train_file.exists()
    assert store.scalar("SELECT count(*) FROM outbox WHERE message_key = ?", (f"job:{job.id}",)) >= 1
    assert store.scalar("SELECT outcome FROM audit_log WHERE command = 'launch_job'") == "ok"


def test_the_same_key_launches_one_job(store, settings, registry, version, fake):
    first = launch(store, settings, registry, version, key="slack-trigger-123")
    again = launch(store, settings, registry, version, key="slack-trigger-123")
    assert again.job.id == first.job.id and not again.created
    assert store.scalar("SELECT count(*) FROM jobs") == 1 and len(fake.jobs) == 1


def test_over_budget_waits_for_another_approver(tmp_path, store, registry, version, fake):
    settings = make_settings(tmp_path, auto_approve_usd=0)
    result = launch(store, settings, registry, version, actor=AGENT)
    assert (
        result.job.status is JobState.PENDING_APPROVAL
        and result.approval.status is ApprovalState.PENDING
        and not fake.launches
    )
    with pytest.raises(PermissionDenied):
        actions.decide(
            svc(store, settings, registry),
            approval_id=result.approval.id,
            actor=Actor(id="UX", face=Face.SLACK),
            approve=True,
        )
    decided = actions.decide(svc(store, settings, registry), approval_id=result.approval.id, actor=BOB, approve=True)
    assert decided.status is ApprovalState.APPROVED and decided.decided_by == "slack:UBOB"
    assert jobs.get_job(store, result.job.id).status is JobState.VALIDATING and len(fake.launches) == 1
    with pytest.raises(Conflict):
        actions.decide(svc(store, settings, registry), approval_id=result.approval.id, actor=BOB, approve=True)


def test_the_poller_never_races_a_submission_in_flight(tmp_path, store, registry, version, fake):
    """An approved launch is submitted by its approver; the poller waits, unless serve restarted since."""
    settings = make_settings(tmp_path, auto_approve_usd=0)
    result = launch(store, settings, registry, version, actor=AGENT)
    approvals.decide(  # the decision commits; the approver's submission has not happened yet
        store, approval_id=result.approval.id, actor=BOB, approve=True, four_eyes=True,
        on_decided=jobs.on_launch_decided,
    )  # fmt: skip
    assert jobs.get_job(store, result.job.id).status is JobState.SUBMITTING
    assert jobs.poll_active_jobs(svc(store, settings, registry)) == 0 and not fake.launches
    assert jobs.release_submissions(svc(store, settings, registry)) == 1  # what serve does when it starts
    assert jobs.poll_active_jobs(svc(store, settings, registry)) == 1 and len(fake.launches) == 1


def test_requesters_cannot_approve_their_own_launch(tmp_path, store, registry, version):
    settings = make_settings(tmp_path, auto_approve_usd=0)
    result = launch(store, settings, registry, version, actor=ALICE)
    with pytest.raises(PermissionDenied) as caught:
        actions.decide(svc(store, settings, registry), approval_id=result.approval.id, actor=ALICE, approve=True)
    assert "four eyes" in caught.value.message


def test_a_rejected_launch_is_cancelled(tmp_path, store, registry, version, fake):
    settings = make_settings(tmp_path, auto_approve_usd=0)
    result = launch(store, settings, registry, version, actor=AGENT)
    actions.decide(
        svc(store, settings, registry), approval_id=result.approval.id, actor=BOB, approve=False, reason="too big"
    )
    job = jobs.get_job(store, result.job.id)
    assert job.status is JobState.CANCELLED and "too big" in (job.error or "") and not fake.launches


def test_polling_to_success_registers_a_candidate_with_lineage(store, settings, registry, version, fake):
    job = launch(store, settings, registry, version).job
    fake.advance("ftjob-1", "running")
    fake.events_by_job["ftjob-1"] = [
        ProviderEvent(id="ev1", at="2026-11-23T10:00:00Z", kind="metrics", step=1, metrics={"train_loss": 2.1}),
        ProviderEvent(id="ev2", at="2026-11-23T10:01:00Z", kind="metrics", step=2, metrics={"train_loss": 1.4}),
    ]
    assert jobs.poll_active_jobs(svc(store, settings, registry)) == 1
    jobs.poll_job(svc(store, settings, registry), job.id)  # events are stored once
    assert [e.step for e in jobs.job_events(store, job.id).events if e.kind == "metrics"] == [1, 2]
    fake.advance("ftjob-1", "succeeded", model="ft:gpt-4o-mini:acme:support:abc", metrics={"train_loss": 1.2})
    done = jobs.poll_job(svc(store, settings, registry), job.id)
    assert done.status is JobState.SUCCEEDED and done.model_id == "ft:gpt-4o-mini:acme:support:abc" and done.finished_at
    row = store.query("SELECT * FROM model_versions")[0]
    assert (row["id"], row["job_id"], row["dataset_version_id"]) == ("support:v1", job.id, version.id)
    assert store.scalar("SELECT model_version_id FROM model_aliases WHERE alias = 'candidate'") == "support:v1"
    [move] = store.query("SELECT from_version_id, to_version_id, actor, reason FROM promotions")
    assert move == {"from_version_id": None, "to_version_id": "support:v1", "actor": "scheduler:scheduler",
                    "reason": f"trained by {job.id}"}  # fmt: skip
    assert jobs.due_jobs(store) == []


def test_transient_errors_back_off_and_permanent_ones_fail(store, settings, registry, version, fake):
    job = launch(store, settings, registry, version).job
    fake.fail_next = [ProviderError("429 slow down", transient=True)]
    after = jobs.poll_job(svc(store, settings, registry), job.id)
    assert after.status is JobState.VALIDATING and "retrying" in (after.status_detail or "")
    assert jobs.due_jobs(store) == []  # backing off
    store.db.execute("UPDATE jobs SET next_poll_at = '2000-01-01T00:00:00Z'")
    fake.fail_next = [ProviderError("job not found", transient=False)]
    failed = jobs.poll_job(svc(store, settings, registry), job.id)
    assert failed.status is JobState.FAILED and "job not found" in (failed.error or "")


def test_a_launch_interrupted_before_submission_is_resubmitted_once(store, settings, registry, version, fake):
    fake.fail_next = [ProviderError("503 unavailable", transient=True)]
    job = launch(store, settings, registry, version).job
    assert job.status is JobState.SUBMITTING and job.provider_job_id is None
    store.db.execute("UPDATE jobs SET next_poll_at = '2000-01-01T00:00:00Z'")
    jobs.poll_active_jobs(svc(store, settings, registry))
    jobs.poll_active_jobs(svc(store, settings, registry))
    assert jobs.get_job(store, job.id).provider_job_id == "ftjob-1" and len(fake.jobs) == 1


def test_cancel_running_and_pending_jobs(tmp_path, store, settings, registry, version, fake):
    running = launch(store, settings, registry, version).job
    assert jobs.cancel_job(svc(store, settings, registry), job_id=running.id, actor=ALICE).status is JobState.CANCELLED
    with pytest.raises(Conflict):
        jobs.cancel_job(svc(store, settings, registry), job_id=running.id, actor=ALICE)
    pricey = make_settings(tmp_path, auto_approve_usd=0)
    waiting = launch(store, pricey, registry, version, actor=AGENT)
    jobs.cancel_job(svc(store, pricey, registry), job_id=waiting.job.id, actor=ALICE)
    assert approvals.get(store, waiting.approval.id).status is ApprovalState.CANCELLED


def test_bad_launches_are_explained(store, settings, registry, version):
    with pytest.raises(InvalidInput) as caught:
        jobs.launch_job(
            svc(store, settings, registry),
            dataset_version=version.id,
            provider="bedrock",
            base_model=MODEL,
            actor=ALICE,
        )
    assert "openai model" in caught.value.message
    with pytest.raises(InvalidInput) as caught:
        launch(store, settings, registry, version, hyperparameters={"epochs": 500})
    assert "500" in caught.value.message
    with pytest.raises(InvalidInput):
        jobs.launch_job(
            svc(store, settings, registry),
            dataset_version=version.id,
            provider="gcp",
            base_model=MODEL,
            actor=ALICE,
        )


def test_preflight_validation_stops_a_launch(store, settings, registry):
    feedback.ingest_batch(store, make_events(12), actor=cli_actor())
    small = datasets.build_dataset(
        store, name="tiny", actor=cli_actor(), recipe=Recipe(filters=DatasetFilters(agents=["support"]))
    )
    with pytest.raises(InvalidInput) as caught:
        launch(store, settings, registry, small)
    assert "does not pass openai validation" in caught.value.message and "finetune validate" in (
        caught.value.hint or ""
    )


def test_two_processes_racing_with_one_key_get_one_job(store, settings, registry, version, fake, monkeypatch):
    from core.training import jobs as jobs_module

    first = launch(store, settings, registry, version, key="race")
    real = jobs_module._launched_with
    calls = {"n": 0}

    def blind_once(store_, key):  # the second launcher looks before the first has committed
        calls["n"] += 1
        return None if calls["n"] == 1 else real(store_, key)

    monkeypatch.setattr(jobs_module, "_launched_with", blind_once)
    second = launch(store, settings, registry, version, key="race")
    assert second.job.id == first.job.id and not second.created
    assert store.scalar("SELECT count(*) FROM jobs") == 1 and len(fake.jobs) == 1


def test_webhooks_are_taken_only_where_they_are_set_up(tmp_path, store, registry):
    with pytest.raises(ProviderNotConfigured, match="OPENAI_WEBHOOK_SECRET"):
        jobs.handle_webhook(svc(store, make_settings(tmp_path), registry), provider="openai", payload=b"{}", headers={})
    configured = make_settings(tmp_path, openai_webhook_secret="whsec_x")
    with pytest.raises(ProviderNotConfigured, match="not set up"):
        jobs.handle_webhook(svc(store, configured, registry), provider="bedrock", payload=b"{}", headers={})
    with pytest.raises(ProviderNotConfigured, match="sends no webhooks"):  # the fake has none to verify
        jobs.handle_webhook(svc(store, configured, registry), provider="openai", payload=b"{}", headers={})


# Who may launch and cancel; launches refused before anything is written --------------------------------


def test_viewers_may_not_launch_and_operators_cancel_only_their_own_jobs(store, settings, registry, version):
    viewer = Actor(id="UVIEW", face=Face.SLACK)
    with pytest.raises(PermissionDenied, match="needs the operator role") as caught:
        launch(store, settings, registry, version, actor=viewer)
    assert "FINETUNE_OPERATORS" in (caught.value.hint or "") and store.scalar("SELECT count(*) FROM jobs") == 0
    agents_job = launch(store, settings, registry, version, actor=AGENT).job
    with pytest.raises(PermissionDenied, match="cancel other people's jobs"):
        jobs.cancel_job(svc(store, settings, registry), job_id=agents_job.id, actor=CAROL)
    carols_job = launch(store, settings, registry, version, actor=CAROL).job
    assert (
        jobs.cancel_job(svc(store, settings, registry), job_id=carols_job.id, actor=CAROL).status is JobState.CANCELLED
    )
    assert jobs.cancel_job(svc(store, settings, registry), job_id=agents_job.id, actor=BOB).status is JobState.CANCELLED


def written(store) -> dict[str, int]:
    tables = ("jobs", "outbox", "approvals", "dataset_exports", "audit_log")
    return {table: store.scalar(f"SELECT count(*) FROM {table}") for table in tables}


@pytest.mark.parametrize(
    ("provider", "model", "missing"),
    [
        ("openai", MODEL, "OPENAI_API_KEY"),
        ("azure", MODEL, "AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY"),
        ("bedrock", "amazon.nova-micro-v1:0", "FINETUNE_BEDROCK_BUCKET"),
    ],
)
def test_an_unconfigured_provider_is_refused_before_anything_is_written(
    store, settings, version, provider, model, missing
):
    before = written(store)
    with pytest.raises(ProviderNotConfigured) as caught:
        jobs.launch_job(
            svc(store, settings), dataset_version=version.id, provider=provider, base_model=model, actor=ALICE
        )
    assert missing in caught.value.message and caught.value.hint
    assert written(store) == before


def test_bedrock_needs_its_role_too(tmp_path, store, version):
    settings = make_settings(tmp_path, bedrock_bucket="finetune-data")
    with pytest.raises(ProviderNotConfigured, match="FINETUNE_BEDROCK_ROLE_ARN"):
        jobs.launch_job(svc(store, settings), dataset_version=version.id, provider="bedrock",
                        base_model="amazon.nova-micro-v1:0", actor=ALICE)  # fmt: skip
    assert store.scalar("SELECT count(*) FROM jobs") == 0


def test_a_missing_sdk_is_named_with_the_package_to_install(tmp_path, store, version, monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)  # as if the package were not installed
    settings = make_settings(tmp_path, openai_api_key="sk-test")
    with pytest.raises(ProviderNotConfigured, match="`openai` package") as caught:
        jobs.launch_job(
            svc(store, settings), dataset_version=version.id, provider="openai", base_model=MODEL, actor=ALICE
        )
    assert "pip install" in (caught.value.hint or "") and store.scalar("SELECT count(*) FROM jobs") == 0


def test_a_failed_submission_is_a_failed_launch(store, settings, registry, version, fake):
    fake.fail_next = [ProviderError("this organization may not fine-tune", transient=False)]
    result = launch(store, settings, registry, version)
    assert result.job.status is JobState.FAILED and not result.ok
    assert "may not fine-tune" in (result.message or "")
