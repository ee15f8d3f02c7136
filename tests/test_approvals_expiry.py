"""Approvals that expire do so for real: committed, the waiting job cancelled, Slack told; serve expires them itself."""

import json

import pytest

from bot.slack.delivery import deliver_due
from core import actions
from core.errors import Conflict
from core.platform import approvals, outbox
from core.platform.actors import Actor
from core.platform.scheduler import expire_approvals
from core.vocabulary import Action, ApprovalState, Face, JobState
from tests.conftest import svc, wait_until
from tests.test_delivery import client_for

T = "2026-11-20T10:00:00.000000Z"
PAST = "2000-01-01T00:00:00.000000Z"
AGENT = Actor(id="claude-desktop", face=Face.MCP)
BOB = Actor(id="UBOB", face=Face.SLACK, is_admin=True)


def waiting_launch(store, job_id: str, *, overdue: bool) -> approvals.Approval:
    """A job in pending_approval and its approval request, as an over-budget launch leaves them."""
    with store.write() as db:
        if not store.scalar("SELECT 1 FROM datasets WHERE id = 'ds1'"):
            db["datasets"].insert({"id": "ds1", "name": "support", "created_by": "ann", "created_at": T})
            db["dataset_versions"].insert(
                {"id": "ds1@1", "dataset_id": "ds1", "version": 1, "split_seed": 7, "content_hash": "c",
                 "created_by": "ann", "created_at": T}
            )  # fmt: skip
        db["jobs"].insert(
            {"id": job_id, "provider": "openai", "dataset_version_id": "ds1@1", "base_model": "gpt-4o-mini",
             "status": JobState.PENDING_APPROVAL, "requested_by": str(AGENT), "created_at": T, "updated_at": T}
        )  # fmt: skip
        approval = approvals.request(
            store, action=Action.LAUNCH, subject_id=job_id, summary=f"launch {job_id}", actor=AGENT, ttl_hours=24
        )
        db.execute("UPDATE jobs SET approval_id = ? WHERE id = ?", (approval.id, job_id))
        if overdue:
            db.execute("UPDATE approvals SET expires_at = ? WHERE id = ?", (PAST, approval.id))
    return approvals.get(store, approval.id)


def job_status(store, job_id: str) -> str:
    return store.scalar("SELECT status FROM jobs WHERE id = ?", (job_id,))


def expiry_notices(store, approval_id: str) -> list[dict]:
    rows = store.query("SELECT event FROM outbox WHERE kind = 'approval_decided'")
    return [e for e in (json.loads(r["event"]) for r in rows) if e["approval_id"] == approval_id]


def test_deciding_an_overdue_approval_expires_it_for_real(settings, store):
    approval = waiting_launch(store, "job_1", overdue=True)
    with pytest.raises(Conflict) as caught:
        actions.decide(svc(store, settings), approval_id=approval.id, actor=BOB, approve=True)
    assert "expired" in caught.value.message and "Request the action again" in (caught.value.hint or "")

    assert approvals.get(store, approval.id).status is ApprovalState.EXPIRED  # committed, not rolled back
    assert job_status(store, "job_1") == JobState.CANCELLED  # the job no longer waits forever
    assert "launch expired" in store.scalar("SELECT error FROM jobs WHERE id = 'job_1'")
    [notice] = expiry_notices(store, approval.id)
    assert notice["status"] == "expired" and notice["decided_by"] is None
    assert store.scalar("SELECT count(*) FROM audit_log WHERE command = 'expire_approval'") == 1
    with pytest.raises(Conflict) as again:
        actions.decide(svc(store, settings), approval_id=approval.id, actor=BOB, approve=True)
    assert "already expired" in again.value.message


def test_an_overdue_approval_refused_through_the_cli_stays_expired(store, cli):
    approval = waiting_launch(store, "job_1", overdue=True)
    code, _out, err = cli("approve", approval.id)
    assert code == 1 and "expired" in err
    assert approvals.get(store, approval.id).status is ApprovalState.EXPIRED
    assert job_status(store, "job_1") == JobState.CANCELLED


def test_the_scheduler_job_expires_overdue_approvals_only(settings, store):
    overdue = waiting_launch(store, "job_1", overdue=True)
    fresh = waiting_launch(store, "job_2", overdue=False)
    services = svc(store, settings)
    expire_approvals(services)
    assert approvals.get(store, overdue.id).status is ApprovalState.EXPIRED
    assert approvals.get(store, fresh.id).status is ApprovalState.PENDING
    assert (job_status(store, "job_1"), job_status(store, "job_2")) == (JobState.CANCELLED, JobState.PENDING_APPROVAL)
    assert len(expiry_notices(store, overdue.id)) == 1
    assert store.scalar("SELECT detail FROM scheduler_runs WHERE job_id = 'approvals'") == "expired 1"
    expire_approvals(services)
    assert len(expiry_notices(store, overdue.id)) == 1  # once only
    assert store.scalar("SELECT detail FROM scheduler_runs WHERE job_id = 'approvals'") == "expired 0"


def test_one_request_that_cannot_expire_does_not_hold_up_the_others(store, caplog):
    broken = waiting_launch(store, "job_1", overdue=True)
    fine = waiting_launch(store, "job_2", overdue=True)

    def handler_for(approval):
        if approval.id == broken.id:

            def explode(store, approval, approved):
                raise RuntimeError("handler bug")

            return explode
        return actions.HANDLERS[approval.action].on_decided

    assert approvals.expire_overdue(store, on_decided=handler_for) == 1
    assert approvals.get(store, broken.id).status is ApprovalState.PENDING  # rolled back whole, tried next run
    assert approvals.get(store, fine.id).status is ApprovalState.EXPIRED
    assert "could not expire" in caplog.text


def test_an_expiry_edits_the_approval_message_in_slack(settings, store, fake_slack):
    client = client_for(fake_slack.api_url)
    approval = waiting_launch(store, "job_1", overdue=False)
    deliver_due(store, client, default_channel="CAPPROVE")
    store.db.execute("UPDATE approvals SET expires_at = ? WHERE id = ?", (PAST, approval.id))
    expire_approvals(svc(store, settings))
    store.db.execute("UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending'", (PAST,))
    deliver_due(store, client, default_channel="CAPPROVE")
    [request] = [p for p in fake_slack.method_calls("chat.postMessage") if approval.id in p["text"]]
    edits = [u for u in fake_slack.method_calls("chat.update") if u["ts"] == fake_slack.posted[0]["ts"]]
    assert edits and ":hourglass: expired" in edits[-1]["text"] and "launch job_1" in edits[-1]["text"]
    assert "Approval needed" in request["text"]
    assert outbox.stats(store).pending == 0


def test_serve_expires_overdue_approvals_on_its_own(settings, store, start_serve):
    approval = waiting_launch(store, "job_1", overdue=True)
    start_serve(settings)  # the scheduler's first run of each job is at start
    wait_until(
        lambda: approvals.get(store, approval.id).status is ApprovalState.EXPIRED, timeout=20, what="the expiry job"
    )
    assert job_status(store, "job_1") == JobState.CANCELLED
    assert store.scalar("SELECT detail FROM scheduler_runs WHERE job_id = 'approvals'") == "expired 1"
