"""Staged rollouts: a plan of canary shares advanced by the scheduler after each hold, under the policy."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timedelta

import anyio
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from mcp import Client

from bot.slack.blocks import render
from core import actions, registry
from core.errors import Conflict, InvalidInput, PermissionDenied
from core.platform import approvals, events
from core.platform.actors import SCHEDULER, Actor
from core.platform.approvals import Approval
from core.platform.store import Store, open_store
from core.platform.timeutil import iso, parse_iso, utcnow
from core.registry import rollouts
from core.services import build_services
from core.vocabulary import ApprovalState, Face, GuardDecision, Role, RolloutApproval, RolloutState
from mcp_server.server import build_server
from tests.conftest import make_settings, wait_until
from tests.test_registry_faces import slack_settings, slash

ANN = Actor("ann", Face.CLI, role=Role.OPERATOR)  # os:ann asks for rollouts
ANN_IN_SLACK = Actor("U1", Face.SLACK, role=Role.APPROVER, person="ann", identities={"os:ann", "slack:U1"})
BOB = Actor("U2", Face.SLACK, role=Role.APPROVER)
CAT = Actor("U3", Face.SLACK, role=Role.APPROVER)
VIEWER = Actor("U9", Face.SLACK, role=Role.VIEWER)
DAY = timedelta(hours=24)
PLAN = [10, 50, 100]


class Clock:
    """Moves only when told. Approvals stamp their decisions with the real time, so it starts an hour ahead of
    it: a stage approved during the test is due a hold after the decision, never later than a tick reaches."""

    def __init__(self) -> None:
        self.now = utcnow() + timedelta(hours=1)

    def __call__(self):
        return self.now

    def tick(self, delta: timedelta = DAY):
        self.now += delta
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def services(store, settings, clock):
    return build_services(settings, store=store, clock=clock)


def with_settings(services, **overrides):
    """The same store and clock under other settings."""
    settings = services.settings.model_copy(update=overrides)
    return build_services(settings, store=services.store, clock=services.clock)


def register(store: Store, count: int = 2, name: str = "support") -> None:
    with store.write():
        for number in range(1, count + 1):
            registry.register_version(
                store, name=name, provider="openai", provider_model_id=f"ft:{name}:{number}", job_id=None,
                dataset_version_id=None, base_model="gpt-4o-mini", metrics={}, cost_usd=None, actor=SCHEDULER,
                reason="trained", now=iso(),
            )  # fmt: skip


def alias_of(store: Store, alias: str) -> tuple[str, str | None, int]:
    [state] = [a for a in registry.list_aliases(store, "support") if a.alias == alias]
    return state.version_id, state.canary_version_id, state.canary_share


def moves(store: Store, alias: str) -> list[tuple[str, int, str, str | None]]:
    rows = store.query("SELECT * FROM promotions WHERE alias = ? AND move != 'register' ORDER BY id", (alias,))
    return [(r["move"], r["canary_share"], r["actor"], r["approval_id"]) for r in rows]


def outbox_events(store: Store, kind: str) -> list[dict]:
    return [json.loads(e) for (e,) in store.db.execute("SELECT event FROM outbox WHERE kind = ? ORDER BY id", (kind,))]


def ask_of(change: registry.RegistryChange) -> Approval:
    """The approval a change waits on (it must wait on one)."""
    assert change.approval is not None and not change.applied
    return change.approval


def plan_of(change: registry.RegistryChange) -> registry.Rollout:
    """The rollout a deploy with a plan started."""
    assert change.rollout is not None
    return change.rollout


def waits_on(rollout: registry.Rollout) -> str:
    assert rollout.approval_id is not None, rollout
    return rollout.approval_id


def why(rollout: registry.Rollout) -> str:
    assert rollout.status_reason is not None, rollout
    return rollout.status_reason


def due(rollout: registry.Rollout) -> datetime:
    assert rollout.next_at is not None, rollout
    return parse_iso(rollout.next_at)


def staging(services) -> registry.RegistryChange:
    """support:v1 serves staging (unprotected); a rollout of v2 starts there."""
    register(services.store)
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging")
    return registry.request_deploy(
        services, actor=ANN, name="support", version=2, alias="staging", plan=PLAN, every=DAY, reason="refunds"
    )


def production(services, approvers=(BOB,)) -> registry.RegistryChange:
    """support:v1 serves production (approved); a rollout of v2 is requested there by ann."""
    register(services.store)
    first = registry.request_deploy(services, actor=ANN, name="support", version=1)
    for approver in approvers:
        actions.decide(services, approval_id=ask_of(first).id, actor=approver, approve=True)
    return registry.request_deploy(services, actor=ANN, name="support", version=2, plan=PLAN, every="24h")


def rollout_of(services, alias: str = "staging") -> registry.Rollout:
    return registry.get_rollout(services.store, "support", alias=alias)


def advance(services, clock: Clock, delta: timedelta = DAY) -> int:
    return registry.advance_due(services, now=clock.tick(delta))


# Advancing -----------------------------------------------------------------------------------------------


def test_a_plan_on_an_unprotected_alias_advances_after_each_hold_with_a_ledger_row_each(services, store, clock):
    started = staging(services)
    first = plan_of(started)
    assert started.applied and (first.status, first.stage, first.share) == ("running", 1, 10)
    assert alias_of(store, "staging") == ("support:v1", "support:v2", 10)
    assert due(first) == clock.now + DAY

    assert advance(services, clock, DAY - timedelta(minutes=1)) == 0  # the hold has not passed yet
    assert alias_of(store, "staging") == ("support:v1", "support:v2", 10)
    assert advance(services, clock, timedelta(minutes=1)) == 1
    assert alias_of(store, "staging") == ("support:v1", "support:v2", 50)
    assert rollout_of(services).progress() == "stage 2 of 3"
    assert advance(services, clock) == 1
    assert alias_of(store, "staging") == ("support:v2", None, 0)
    done = rollout_of(services)
    assert (done.status, done.stage, done.share, done.next_at) == ("completed", 3, 100, None)
    assert advance(services, clock) == 0  # nothing is left to do

    assert moves(store, "staging") == [
        ("deploy", 0, "cli:ann", None),
        ("canary", 10, "cli:ann", None),
        ("canary", 50, "scheduler:scheduler", None),
        ("promote", 0, "scheduler:scheduler", None),
    ]
    reasons = [m.reason for m in registry.history(store, "support").moves if m.alias == "staging"][1:]
    assert reasons == [f"rollout {done.id}, stage {k} of 3: refunds" for k in (1, 2, 3)]
    stages = [(e["stage"], e["stages"]) for e in outbox_events(store, "alias_moved") if e["alias"] == "staging"][1:]
    assert stages == [(1, 3), (2, 3), (3, 3)]
    assert store.scalar("SELECT count(*) FROM audit_log WHERE command = 'advance_rollout'") == 2


def test_on_production_stage_one_waits_for_approval_and_the_approved_plan_advances_itself(services, store, clock):
    started = production(services, approvers=(BOB, CAT))  # production needs two approvers by default
    ask = ask_of(started)
    assert not started.applied and ask.approvals_needed == 2
    assert "stage 1 of 3" in str(ask.description)
    assert (plan_of(started).status, plan_of(started).stage) == ("waiting_approval", 0)
    assert advance(services, clock) == 0  # nothing runs before its first stage is approved
    assert alias_of(store, "production") == ("support:v1", None, 0)

    actions.decide(services, approval_id=ask.id, actor=BOB, approve=True)
    assert rollout_of(services, "production").stage == 0  # one of two approvals
    actions.decide(services, approval_id=ask.id, actor=CAT, approve=True)
    live = rollout_of(services, "production")
    assert (live.status, live.stage, live.plan_approval_id) == ("running", 1, ask.id)
    assert alias_of(store, "production") == ("support:v1", "support:v2", 10)

    assert due(live) - DAY == clock.now  # the hold counts from the approval, on the services' clock
    assert advance(services, clock) == 1
    assert advance(services, clock) == 1
    assert alias_of(store, "production") == ("support:v2", None, 0)
    assert rollout_of(services, "production").status == "completed"
    assert moves(store, "production")[-2:] == [
        ("canary", 50, "scheduler:scheduler", ask.id),
        ("promote", 0, "scheduler:scheduler", ask.id),
    ]
    assert approvals.pending_count(store) == 0  # no new request: the plan was approved


def test_in_stage_mode_every_stage_waits_for_its_own_approval_asked_for_the_requester(services, store, clock):
    services = with_settings(services, rollout_approval=RolloutApproval.STAGE, approvals_needed={"production": 1})
    started = production(services)
    actions.decide(services, approval_id=ask_of(started).id, actor=BOB, approve=True)
    assert advance(services, clock) == 1
    waiting = rollout_of(services, "production")
    assert (waiting.status, waiting.stage, waiting.approval_mode) == ("waiting_approval", 1, "stage")
    ask = approvals.get(store, waits_on(waiting))
    assert (ask.requested_by, ask.requested_by_identity, ask.status) == ("ann", "os:ann", "pending")
    assert "stage 2 of 3" in str(ask.description)
    assert alias_of(store, "production") == ("support:v1", "support:v2", 10)  # nothing moved yet
    assert advance(services, clock) == 0  # asking again would ask twice
    with pytest.raises(PermissionDenied, match="four eyes"):  # ann, from Slack: still the requester
        actions.decide(services, approval_id=ask.id, actor=ANN_IN_SLACK, approve=True)

    actions.decide(services, approval_id=ask.id, actor=BOB, approve=True)
    assert alias_of(store, "production") == ("support:v1", "support:v2", 50)
    assert moves(store, "production")[-1] == ("canary", 50, "cli:ann", ask.id)
    assert advance(services, clock) == 1
    last = rollout_of(services, "production")
    actions.decide(services, approval_id=waits_on(last), actor=BOB, approve=False, reason="latency")
    stopped = rollout_of(services, "production")
    assert stopped.status == "cancelled" and "was rejected by slack:U2: latency" in why(stopped)
    assert alias_of(store, "production") == ("support:v1", "support:v2", 50)  # the alias stays


def test_an_expired_stage_approval_cancels_the_rollout(services, store, clock):
    services = with_settings(services, approvals_needed={"production": 1})
    started = production(services)
    expired = approvals.expire_overdue(
        store, on_decided=lambda a: actions.HANDLERS[a.action].on_decided, now=utcnow() + timedelta(days=2)
    )
    assert expired == 1
    stopped = rollout_of(services, "production")
    assert stopped.status == "cancelled" and f"({ask_of(started).id}) was expired" in why(stopped)
    assert alias_of(store, "production") == ("support:v1", None, 0)


# Guards --------------------------------------------------------------------------------------------------


def test_a_halting_guard_stops_the_rollout_with_its_reason_and_the_alias_stays(services, store, clock, monkeypatch):
    staging(services)
    seen: list[str] = []

    def acceptance(svc, rollout):
        seen.append(rollout.progress())
        return rollouts.GuardVerdict(GuardDecision.HALT, "acceptance fell from 0.81 to 0.62")

    monkeypatch.setitem(registry.ROLLOUT_GUARDS, "acceptance", acceptance)
    assert advance(services, clock) == 0
    halted = rollout_of(services)
    assert halted.status == "halted" and halted.status_reason == "guard acceptance: acceptance fell from 0.81 to 0.62"
    assert seen == ["stage 1 of 3"]
    assert alias_of(store, "staging") == ("support:v1", "support:v2", 10)
    assert advance(services, clock) == 0 and seen == ["stage 1 of 3"]  # never asked again
    [last] = outbox_events(store, "rollout")[-1:]
    assert (last["status"], last["reason"]) == ("halted", halted.status_reason)


def test_a_holding_or_failing_guard_waits_and_asks_again_later(services, store, clock, monkeypatch):
    staging(services)
    answers = iter([rollouts.GuardVerdict(GuardDecision.HOLD, "too little feedback"), RuntimeError("down")])

    def acceptance(svc, rollout):
        answer = next(answers, rollouts.PASS)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setitem(registry.ROLLOUT_GUARDS, "acceptance", acceptance)
    assert advance(services, clock) == 0
    held = rollout_of(services)
    assert (held.status, held.status_reason) == ("running", "guard acceptance: too little feedback")
    assert due(held) == clock.now + rollouts.GUARD_RETRY
    assert advance(services, clock, rollouts.GUARD_RETRY) == 0  # the guard raised: held again
    assert "could not tell" in why(rollout_of(services))
    assert advance(services, clock, rollouts.GUARD_RETRY) == 1
    assert alias_of(store, "staging") == ("support:v1", "support:v2", 50)


# The alias moved by hand ---------------------------------------------------------------------------------


def test_a_rollback_in_the_middle_supersedes_the_rollout(services, store, clock):
    staging(services)
    advance(services, clock)
    registry.rollback(services, actor=ANN, name="support", alias="staging", reason="errors")
    stopped = rollout_of(services)
    assert stopped.status == "superseded" and "rollback by cli:ann" in why(stopped)
    assert advance(services, clock) == 0 and advance(services, clock) == 0
    assert alias_of(store, "staging") == ("support:v1", None, 0)  # the rollout never moves it again


def test_a_deploy_by_hand_supersedes_a_rollout_and_withdraws_the_stage_approval_it_waits_on(services, store, clock):
    services = with_settings(services, rollout_approval=RolloutApproval.STAGE, approvals_needed={"production": 1})
    register(store, 3)
    actions.decide(
        services, actor=BOB, approve=True,
        approval_id=ask_of(registry.request_deploy(services, actor=ANN, name="support", version=1)).id,
    )  # fmt: skip
    started = registry.request_deploy(services, actor=ANN, name="support", version=2, plan=PLAN, every=DAY)
    actions.decide(services, approval_id=ask_of(started).id, actor=BOB, approve=True)
    advance(services, clock)
    stage_two = waits_on(rollout_of(services, "production"))
    manual = registry.request_deploy(services, actor=ANN, name="support", version=3)
    actions.decide(services, approval_id=ask_of(manual).id, actor=BOB, approve=True)
    assert alias_of(store, "production") == ("support:v3", None, 0)
    assert rollout_of(services, "production").status == "superseded"
    assert approvals.get(store, stage_two).status == ApprovalState.CANCELLED
    withdrawn = [e for e in outbox_events(store, "approval_decided") if e["approval_id"] == stage_two]
    assert withdrawn[-1]["status"] == "cancelled" and "superseded" in withdrawn[-1]["reason"]
    with pytest.raises(Conflict, match="already cancelled"):
        actions.decide(services, approval_id=stage_two, actor=BOB, approve=True)


def test_an_alias_changed_behind_the_ledger_is_noticed_before_a_stage_is_proposed(services, store, clock):
    staging(services)
    with store.write() as db:  # as a restored backup or another tool might leave it
        db.execute("UPDATE model_aliases SET canary_share = 30 WHERE alias = 'staging'")
    assert advance(services, clock) == 0
    stopped = rollout_of(services)
    assert stopped.status == "superseded" and "not what stage 1 left" in why(stopped)
    assert alias_of(store, "staging") == ("support:v1", "support:v2", 30)


# Operators' controls -------------------------------------------------------------------------------------


def test_pause_resume_and_cancel_are_for_operators_and_audited(services, store, clock):
    staging(services)
    with pytest.raises(PermissionDenied, match="pause, resume or cancel staged rollouts"):
        registry.pause_rollout(services, actor=VIEWER, name="support", alias="staging")
    paused = registry.pause_rollout(services, actor=ANN, name="support", alias="staging", reason="incident")
    assert (paused.status, paused.status_reason) == ("paused", "paused by cli:ann: incident")
    with pytest.raises(Conflict, match="already paused"):
        registry.pause_rollout(services, actor=ANN, name="support", alias="staging")
    assert advance(services, clock) == 0 and advance(services, clock) == 0
    assert alias_of(store, "staging") == ("support:v1", "support:v2", 10)

    assert registry.resume_rollout(services, actor=ANN, name="support", alias="staging").status == "running"
    assert registry.advance_due(services, now=clock.now) == 1  # its hold passed while it was paused
    assert alias_of(store, "staging") == ("support:v1", "support:v2", 50)
    with pytest.raises(Conflict, match="not paused"):
        registry.resume_rollout(services, actor=ANN, name="support", alias="staging")

    cancelled = registry.cancel_rollout(services, actor=ANN, name="support", alias="staging")
    assert (cancelled.status, cancelled.next_at, why(cancelled)) == ("cancelled", None, "cancelled by cli:ann")
    assert advance(services, clock) == 0
    assert alias_of(store, "staging") == ("support:v1", "support:v2", 50)  # the alias stays where it was
    with pytest.raises(Conflict, match="no rollout in progress to cancel"):
        registry.cancel_rollout(services, actor=ANN, name="support", alias="staging")
    audited = [r["command"] for r in store.query("SELECT command FROM audit_log WHERE actor = 'ann' ORDER BY id")]
    assert [c for c in audited if c.endswith("_rollout")] == [
        "start_rollout", "pause_rollout", "resume_rollout", "cancel_rollout"
    ]  # fmt: skip


def test_pausing_withdraws_a_stage_approval_and_resuming_asks_again(services, store, clock):
    services = with_settings(services, rollout_approval=RolloutApproval.STAGE, approvals_needed={"production": 1})
    started = production(services)
    with pytest.raises(Conflict, match="waits for the approval of its first stage"):
        registry.pause_rollout(services, actor=ANN, name="support", alias="production")
    actions.decide(services, approval_id=ask_of(started).id, actor=BOB, approve=True)
    advance(services, clock)
    asked = waits_on(rollout_of(services, "production"))
    registry.pause_rollout(services, actor=ANN, name="support", alias="production")
    assert approvals.get(store, asked).status == ApprovalState.CANCELLED
    registry.resume_rollout(services, actor=ANN, name="support", alias="production")
    assert registry.advance_due(services, now=clock.now) == 1
    again = rollout_of(services, "production")
    assert again.status == "waiting_approval" and again.approval_id not in (None, asked)


def test_a_second_plan_on_the_same_alias_is_refused_until_the_first_ends(services, store, clock):
    first = plan_of(staging(services))
    register(store, 1)  # support:v3
    with pytest.raises(Conflict, match=f"already has rollout {first.id}"):
        registry.request_deploy(services, actor=ANN, name="support", version=3, alias="staging", plan=PLAN, every=DAY)
    registry.cancel_rollout(services, actor=ANN, name="support", alias="staging")
    second = registry.request_deploy(
        services, actor=ANN, name="support", version=3, alias="staging", plan=[20, 100], every="1h"
    )
    assert plan_of(second).stages == [20, 100] and plan_of(second).hold == "1h"
    assert [r.id for r in registry.describe_model(store, "support").rollouts] == [plan_of(second).id]


# Durability ----------------------------------------------------------------------------------------------


def test_a_restarted_scheduler_loses_nothing_and_two_advances_at_once_move_once(settings, clock):
    first = open_store(settings.db_path)
    services = build_services(settings, store=first, clock=clock)
    rollout = plan_of(staging(services))
    first.close()  # serve stops between stages

    second = open_store(settings.db_path)
    restarted = build_services(settings, store=second, clock=clock)
    when = clock.tick()
    results: list[int] = []
    barrier = threading.Barrier(2)

    def run():
        barrier.wait()
        results.append(registry.advance_due(restarted, now=when))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [0, 1]
    assert [share for move, share, *_ in moves(second, "staging")] == [0, 10, 50]
    assert registry.get_rollout(second, "support", alias="staging").id == rollout.id
    second.close()


# Bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "names"),
    [
        ({"plan": [], "every": DAY}, "`plan` has 0 stages"),
        ({"plan": [10, 5, 100], "every": DAY}, "`plan` stage 2 (5%) is not above stage 1 (10%)"),
        ({"plan": [10, 50], "every": DAY}, "`plan` ends at 50%"),
        ({"plan": [0, 100], "every": DAY}, "`plan` stage 1 is 0%"),
        ({"plan": [10, 101], "every": DAY}, "`plan` stage 2 is 101%"),
        ({"plan": [*range(1, 22), 100], "every": DAY}, "`plan` has 22 stages"),
        ({"plan": "10,50,100x", "every": DAY}, "`plan` must be a list"),
        ({"plan": [True, 100], "every": DAY}, "`plan` must be a list"),
        ({"plan": PLAN, "every": "0m"}, "`every` is 0s"),
        ({"plan": PLAN, "every": "31d"}, "`every` is 31d"),
        ({"plan": PLAN, "every": "soon"}, "`every` must be a duration"),
        ({"plan": PLAN, "every": 30}, "`every` must be a duration"),
        ({"plan": PLAN}, "`every` is missing"),
        ({"every": DAY}, "`plan` is missing"),
        ({"plan": PLAN, "every": DAY, "canary_share": 10}, "`canary_share` and `plan` cannot go together"),
    ],
)
def test_bad_plans_and_holds_are_refused_by_name_before_anything_is_written(services, store, arguments, names):
    register(store)
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging")
    before = store.scalar("SELECT count(*) FROM promotions"), store.scalar("SELECT count(*) FROM audit_log")
    with pytest.raises(InvalidInput) as refused:
        registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging", **arguments)
    assert names in refused.value.message and refused.value.hint
    assert store.scalar("SELECT count(*) FROM rollouts") == 0
    assert (store.scalar("SELECT count(*) FROM promotions"), store.scalar("SELECT count(*) FROM audit_log")) == before


def test_a_plan_needs_a_stable_version_and_a_new_one(services, store):
    register(store)
    with pytest.raises(Conflict, match="has no version yet"):
        registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging", plan=PLAN, every=DAY)
    registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging")
    with pytest.raises(Conflict, match="already the stable version"):
        registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging", plan=PLAN, every=DAY)
    with pytest.raises(PermissionDenied):
        registry.request_deploy(
            services, actor=VIEWER, name="support", version=1, alias="staging", plan=PLAN, every=DAY
        )
    assert store.scalar("SELECT count(*) FROM rollouts") == 0


def test_a_one_stage_plan_is_a_deploy(services, store):
    register(store)
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging")
    done = registry.request_deploy(
        services, actor=ANN, name="support", version=2, alias="staging", plan=[100], every="1m"
    )
    assert plan_of(done).status == "completed" and alias_of(store, "staging") == ("support:v2", None, 0)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_plan_text_is_a_checked_plan_or_a_named_refusal(text):
    try:
        plan = registry.parse_plan(text)
    except InvalidInput as refused:
        assert refused.message.startswith("`plan`") and refused.hint
        return
    assert 1 <= len(plan) <= 20 and plan[-1] == 100 and plan == sorted(set(plan)) and plan[0] >= 1


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 99), max_size=19, unique=True).map(lambda shares: [*sorted(shares), 100]))
def test_every_valid_plan_reads_back_from_its_text(plan):
    assert registry.parse_plan(",".join(map(str, plan))) == plan
    assert registry.parse_plan(", ".join(f"{share}%" for share in plan)) == plan


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789mhdsw ,.-", max_size=12) | st.text(max_size=12))
def test_any_hold_text_is_a_hold_within_bounds_or_a_named_refusal(text):
    try:
        hold = registry.parse_hold(text)
    except InvalidInput as refused:
        assert refused.message.startswith("`every`") and refused.hint
        return
    assert rollouts.MIN_HOLD <= hold <= rollouts.MAX_HOLD
    assert registry.parse_hold(registry.format_hold(hold)) == hold


def test_every_rollout_state_is_storable(store):
    register(store)
    with store.write() as db:
        for number, state in enumerate(RolloutState):  # the table's CHECK constraint must accept each one
            db.execute(
                "INSERT INTO rollouts (id, model_name, alias, version_id, stages, hold_seconds, approval_mode,"
                " status, requested_by, requested_by_identity, requested_via, created_at, updated_at)"
                " VALUES (?, 'support', ?, 'support:v2', '[100]', 60, 'plan', ?, 'cli:ann', 'os:ann', 'cli', 't', 't')",
                (f"ro_{number}", f"alias{number}", state),
            )
    with pytest.raises(sqlite3.IntegrityError):
        with store.write() as db:
            db.execute("UPDATE rollouts SET status = 'unknown' WHERE id = 'ro_0'")


# Faces ---------------------------------------------------------------------------------------------------


def test_the_cli_starts_shows_and_controls_a_rollout(cli, store):
    register(store)
    assert cli("deploy", "support", "v1", "--alias", "staging")[0] == 0
    code, out, err = cli("deploy", "support", "v2", "--alias", "staging", "--plan", "10,50,100", "--every", "24h")
    assert code == 0, err
    assert "Started rollout ro_" in out and "running: stage 1 of 3 (10%) live; next stage at" in out
    assert "Plan: 10% → 50% → 100%, every 1d." in out
    code, out, _ = cli("models", "rollout", "support", "--alias", "staging", "--json")
    shown = json.loads(out)
    assert code == 0 and (shown["stage"], shown["share"], shown["status"]) == (1, 10, "running")
    code, out, _ = cli("models", "show", "support")
    assert code == 0 and "on staging, running: stage 1 of 3 (10%) live; next stage at" in out
    code, out, _ = cli("models", "rollout", "support", "pause", "--alias", "staging", "--reason", "incident")
    assert code == 0 and "paused: stage 1 of 3 (10%) live (paused by cli:" in out and "incident" in out
    code, out, _ = cli("models", "rollout", "support", "cancel", "--alias", "staging")
    assert code == 0 and "cancelled" in out


@pytest.mark.parametrize(
    ("options", "names"),
    [
        (["--plan", "10,5,100", "--every", "1h"], "'--plan'"),
        (["--plan", "ten", "--every", "1h"], "stage 1 is 'ten'"),
        (["--plan", "10,100", "--every", "forever"], "'--every'"),
        (["--plan", "10,100"], "`every` is missing"),
    ],
)
def test_the_cli_refuses_a_bad_plan_naming_the_option(cli, store, options, names):
    register(store)
    cli("deploy", "support", "v1", "--alias", "staging")
    code, out, err = cli("deploy", "support", "v2", "--alias", "staging", *options)
    assert code != 0 and names in out + err
    assert store.scalar("SELECT count(*) FROM rollouts") == 0


def test_a_slack_deploy_with_a_plan_waits_for_approval_of_its_first_stage(tmp_path, fake_slack):
    settings = slack_settings(tmp_path, fake_slack)
    store = open_store(settings.db_path)
    services = build_services(settings, store=store)
    register(store)
    first = registry.request_deploy(services, actor=ANN, name="support", version=1)
    for approver in (BOB, CAT):
        actions.decide(services, approval_id=ask_of(first).id, actor=approver, approve=True)
    shown = json.loads(slash(settings, store, fake_slack, "deploy support v2 --plan 10,50,100 --every 24h"))
    shown = json.dumps(shown, ensure_ascii=False)
    [rollout] = store.query("SELECT id, status, requested_by, approval_id FROM rollouts")
    assert (rollout["status"], rollout["requested_by"]) == ("waiting_approval", "slack:U123")
    assert f"Started rollout {rollout['id']}" in shown and f"Waiting for approval {rollout['approval_id']}" in shown
    assert f"stage 1 of 3 (10%) waits for approval {rollout['approval_id']}" in shown
    assert "Plan: 10% → 50% → 100%, every 1d." in shown
    store.close()


def test_a_slack_deploy_with_a_bad_plan_names_the_option(tmp_path, fake_slack):
    settings = slack_settings(tmp_path, fake_slack)
    store = open_store(settings.db_path)
    register(store)
    shown = slash(settings, store, fake_slack, "deploy support v2 --plan 50,10 --every 24h")
    assert "--plan" in shown and "not above stage 1" in shown
    assert store.scalar("SELECT count(*) FROM rollouts") == 0
    store.close()


def test_notifications_say_which_stage_a_move_is_and_how_a_rollout_stands():
    moved = events.AliasMoved(
        model_name="support", alias="production", move="canary", from_version_id="support:v1",
        to_version_id="support:v1", canary_version_id="support:v2", canary_share=50, actor="scheduler:scheduler",
        approval_id="ap_1", rollout_id="ro_1", stage=2, stages=3,
    )  # fmt: skip
    assert "rollout ro_1, stage 2 of 3" in moved.summary()
    assert "rollout ro_1, stage 2 of 3" in json.dumps(render(moved).blocks)
    halted = events.RolloutChanged(
        rollout_id="ro_1", model_name="support", alias="production", version_id="support:v2", status="halted",
        stage=2, stages=3, share=50, actor="scheduler:scheduler", reason="guard acceptance: dropped",
    )  # fmt: skip
    message = render(halted)
    assert "halted" in message.text and "stage 2 of 3 (50%)" in message.text and "dropped" in message.text
    assert halted.message_key == "rollout:ro_1"


def mcp_session(services, *calls: tuple[str, dict]):
    async def go():
        async with Client(build_server(services)) as client:
            return [await client.call_tool(name, args) for name, args in calls]

    return anyio.run(go)


def test_an_agent_requests_a_staged_rollout_and_reads_its_state(services, store):
    register(store)
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging")
    asked, shown = mcp_session(
        services,
        ("request_deployment", {"name": "support", "version": 2, "alias": "staging", "plan": PLAN, "every": "2d"}),
        ("get_model", {"name": "support"}),
    )
    assert not asked.is_error, asked.content[0].text
    rollout = asked.structured_content["rollout"]
    assert (rollout["stage"], rollout["share"], rollout["hold"], rollout["status"]) == (1, 10, "2d", "running")
    assert rollout["requested_by"].startswith("mcp:")
    [listed] = shown.structured_content["rollouts"]
    assert (listed["id"], listed["status"], listed["stages"]) == (rollout["id"], "running", PLAN)


@pytest.mark.parametrize(
    ("arguments", "names"),
    [
        ({"plan": [10, 50], "every": "1d"}, "`plan` ends at 50%"),
        ({"plan": [10, 500, 100], "every": "1d"}, "plan"),
        ({"plan": PLAN, "every": "tomorrow"}, "`every` must be a duration"),
        ({"plan": PLAN, "every": "1d", "stages": 3}, "stages"),
    ],
)
def test_an_agent_with_a_bad_plan_is_told_which_argument_and_the_fix(services, store, arguments, names):
    register(store)
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging")
    [refused] = mcp_session(
        services, ("request_deployment", {"name": "support", "version": 2, "alias": "staging", **arguments})
    )
    assert refused.is_error and names in refused.content[0].text
    assert store.scalar("SELECT count(*) FROM rollouts") == 0


def test_serve_advances_rollouts_every_minute(tmp_path, start_serve):
    settings = make_settings(tmp_path)
    store = open_store(settings.db_path)
    server = start_serve(settings)
    try:
        wait_until(
            lambda: store.query("SELECT detail FROM scheduler_runs WHERE job_id = 'rollouts'"),
            timeout=30, what="the rollouts job's first run",
        )  # fmt: skip
        [run] = store.query("SELECT detail FROM scheduler_runs WHERE job_id = 'rollouts'")
        assert run["detail"] == "advanced 0"
    finally:
        server.stop()
        store.close()


def test_a_stage_that_cannot_be_proposed_halts_the_rollout_with_the_reason(services, store, clock, monkeypatch):
    staging(services)

    def refused(*args, **kwargs):
        raise Conflict("support:v2 cannot serve here.", hint="Pick another version.")

    monkeypatch.setattr(registry.service, "_change", refused)
    assert advance(services, clock) == 0
    halted = rollout_of(services)
    assert halted.status == "halted" and why(halted) == "stage 2: support:v2 cannot serve here. Pick another version."
    assert alias_of(store, "staging") == ("support:v1", "support:v2", 10)
