"""The model registry: lineage, immutability, aliases and canaries under the policy, the ledger and its history."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core import actions, registry
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.platform.actors import SCHEDULER, Actor
from core.platform.approvals import Approval
from core.platform.store import Store, migrate_store
from core.platform.timeutil import iso
from core.services import build_services
from core.vocabulary import Action, AliasMove, ApprovalState, Face, Role

ANN = Actor("ann", Face.CLI, role=Role.OPERATOR)  # os:ann
ANN_IN_SLACK = Actor("U1", Face.SLACK, role=Role.APPROVER, person="ann", identities={"os:ann", "slack:U1"})
BOB = Actor("U2", Face.SLACK, role=Role.APPROVER)
CAROL = Actor("carol", Face.CLI, role=Role.APPROVER)  # os:carol
VIEWER = Actor("U9", Face.SLACK, role=Role.VIEWER)
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, minutes: int = 10) -> datetime:
        self.now += timedelta(minutes=minutes)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def services(store, settings, clock):
    return build_services(settings, store=store, clock=clock)


def lineage(store: Store) -> tuple[str, str]:
    """A dataset version and a succeeded job trained on it."""
    with store.write() as db:
        db.execute("INSERT INTO datasets (id, name, created_by, created_at) VALUES ('ds_1', 'support', 'ann', 't')")
        db.execute(
            "INSERT INTO dataset_versions (id, dataset_id, version, split_seed, content_hash, created_by, created_at)"
            " VALUES ('support@1', 'ds_1', 1, 0, 'h', 'ann', 't')"
        )
        db.execute(
            "INSERT INTO jobs (id, provider, dataset_version_id, base_model, status, requested_by, created_at,"
            " updated_at) VALUES ('job_1', 'openai', 'support@1', 'gpt-4o-mini', 'succeeded', 'ann', 't', 't')"
        )
    return "support@1", "job_1"


def register(store: Store, name: str = "support", count: int = 1) -> list[str]:
    ids: list[str] = []
    with store.write():
        for _ in range(count):
            version = registry.register_version(
                store, name=name, provider="openai", provider_model_id=f"ft:{name}:{len(ids) + 1}", job_id=None,
                dataset_version_id=None, base_model="gpt-4o-mini", metrics={}, cost_usd=None, actor=SCHEDULER,
                reason="test", now=iso(),
            )  # fmt: skip
            ids.append(version.id)
    return ids


def approve(services, change: registry.RegistryChange, actor: Actor | None = None) -> Approval:
    """Approve as `actor`; without one, as Bob then Carol until the request has the approvers it needs."""
    approval_id = requested(change).id
    if actor is not None:
        return actions.decide(services, approval_id=approval_id, actor=actor, approve=True)
    return approve_by_quorum(services, approval_id)


def approve_by_quorum(services, approval_id: str) -> Approval:
    """Approve as Bob, then Carol if it needs a second approver (production does by default)."""
    for voter in (BOB, CAROL):
        decided = actions.decide(services, approval_id=approval_id, actor=voter, approve=True)
        if decided.status is not ApprovalState.PENDING:
            return decided
    raise AssertionError(f"{approval_id} is still pending after two approvals")


def alias_of(store: Store, alias: str, name: str = "support") -> registry.AliasState:
    found = next((a for a in registry.list_aliases(store, name) if a.alias == alias), None)
    assert found is not None, f"{name}@{alias} does not exist"
    return found


def has_alias(store: Store, alias: str, name: str = "support") -> bool:
    return any(a.alias == alias for a in registry.list_aliases(store, name))


def requested(change: registry.RegistryChange) -> Approval:
    """The approval a change waits on (it must wait on one)."""
    assert change.approval is not None and not change.applied
    return change.approval


def now_at(change: registry.RegistryChange) -> registry.AliasState:
    """The alias an applied change left behind."""
    assert change.applied and change.alias is not None
    return change.alias


def ledger_rows(store: Store) -> list[dict]:
    return store.query("SELECT * FROM promotions ORDER BY id")


# Versions and lineage -------------------------------------------------------------------------------------


def test_a_registered_version_keeps_its_lineage_and_takes_the_candidate_alias(store):
    dataset_version, job_id = lineage(store)
    with store.write():
        version = registry.register_version(
            store, name="support", provider="openai", provider_model_id="ft:gpt-4o-mini:acme:support:1",
            job_id=job_id, dataset_version_id=dataset_version, base_model="gpt-4o-mini",
            metrics={"train_loss": 1.2}, cost_usd=3.5, actor=SCHEDULER, reason=f"trained by {job_id}", now=iso(),
        )  # fmt: skip
    assert version == registry.get_version(store, "support:v1")
    assert (version.dataset_version_id, version.job_id, version.provider_model_id) == (
        dataset_version, job_id, "ft:gpt-4o-mini:acme:support:1",
    )  # fmt: skip
    assert (version.cost_usd, version.metrics, version.status) == (3.5, {"train_loss": 1.2}, "registered")
    assert alias_of(store, "candidate").version_id == "support:v1"
    [row] = ledger_rows(store)
    assert (row["move"], row["from_version_id"], row["to_version_id"], row["actor"], row["face"]) == (
        AliasMove.REGISTER, None, "support:v1", "scheduler:scheduler", "scheduler",
    )  # fmt: skip
    assert register(store) == ["support:v2"] and alias_of(store, "candidate").version_id == "support:v2"


def test_versions_and_the_ledger_cannot_be_rewritten_or_deleted(store):
    register(store, count=2)
    for statement in (
        "UPDATE model_versions SET provider_model_id = 'other' WHERE id = 'support:v1'",
        "UPDATE model_versions SET metrics = '{}' WHERE id = 'support:v1'",
        "DELETE FROM model_versions WHERE id = 'support:v1'",
        "UPDATE promotions SET actor = 'mallory'",
        "DELETE FROM promotions",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="immutable|never deleted|append-only"):
            with store.write() as db:
                db.execute(statement)
    assert registry.get_version(store, "support:v1").provider_model_id == "ft:support:1"
    assert len(ledger_rows(store)) == 2


def test_upgrading_keeps_versions_aliases_and_ledger_rows_written_before_the_registry(tmp_path):
    old = Store(tmp_path / "old.db")
    migrate_store(old, target=6)
    with old.write() as db:
        db.execute(
            "INSERT INTO model_versions (id, name, version, provider, created_at) VALUES ('support:v1', 'support', 1,"
            " 'openai', '2026-01-01T00:00:00.000000Z')"
        )
        db.execute(
            "INSERT INTO model_aliases (model_name, alias, model_version_id, updated_at)"
            " VALUES ('support', 'candidate', 'support:v1', '2026-01-01T00:00:00.000000Z')"
        )
        db.execute(
            "INSERT INTO promotions (model_name, alias, to_version_id, actor, at)"
            " VALUES ('support', 'candidate', 'support:v1', 'scheduler:scheduler', '2026-01-01T00:00:00.000000Z')"
        )
    migrate_store(old)
    assert [v.id for v in registry.list_versions(old, "support")] == ["support:v1"]
    assert alias_of(old, "candidate").canary_share == 0
    [entry] = registry.history(old, "support").aliases
    assert (entry.version_id, entry.put_by, entry.face) == ("support:v1", "scheduler:scheduler", None)
    old.close()


# Aliases under the policy ---------------------------------------------------------------------------------


def test_an_operator_moves_an_unprotected_alias_directly_with_a_ledger_row_an_event_and_an_audit_row(store, services):
    register(store, count=2)
    change = registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging", reason="try")
    assert change.applied and change.approval is None and now_at(change).version_id == "support:v2"
    row = ledger_rows(store)[-1]
    assert (row["move"], row["alias"], row["to_version_id"], row["actor"], row["face"], row["approval_id"]) == (
        "deploy", "staging", "support:v2", "cli:ann", "cli", None,
    )  # fmt: skip
    [event] = [json.loads(e) for (e,) in store.db.execute("SELECT event FROM outbox WHERE kind = 'alias_moved'")][-1:]
    assert (event["alias"], event["to_version_id"], event["actor"]) == ("staging", "support:v2", "cli:ann")
    assert store.scalar("SELECT count(*) FROM audit_log WHERE command = 'deploy' AND actor = 'ann'") == 1
    with pytest.raises(PermissionDenied, match="move model aliases"):
        registry.request_deploy(services, actor=VIEWER, name="support", version=1, alias="staging")
    with pytest.raises(Conflict, match="already support:v2"):
        registry.request_deploy(services, actor=ANN, name="support", version="v2", alias="staging")


def test_a_protected_alias_moves_only_when_two_other_people_approve(store, services):
    register(store)
    change = registry.request_deploy(services, actor=ANN, name="support", version="support:v1")
    assert requested(change).action is Action.DEPLOY and requested(change).subject_id == "support@production"
    assert requested(change).approvals_needed == 2  # production needs two approvers by default
    assert not has_alias(store, "production")  # nothing moved yet
    with pytest.raises(PermissionDenied, match="four eyes"):  # ann again, from Slack: the same person
        approve(services, change, actor=ANN_IN_SLACK)
    first = approve(services, change, actor=BOB)
    assert (first.status, first.approved_by, first.progress()) == (
        ApprovalState.PENDING, ["slack:U2"], "1 of 2 approvals",
    )  # fmt: skip
    assert not has_alias(store, "production")  # one approval of two moves nothing
    bob_in_cli = Actor("bob", Face.CLI, role=Role.APPROVER, person="bob", identities={"os:bob", "slack:U2"})
    for again in (BOB, bob_in_cli):  # the same person approving twice, on any face, does not count twice
        with pytest.raises(PermissionDenied, match="already approved"):
            approve(services, change, actor=again)
    assert not has_alias(store, "production")
    decided = approve(services, change, actor=CAROL)
    assert decided.status is ApprovalState.APPROVED and decided.approved_by == ["slack:U2", "cli:carol"]
    assert alias_of(store, "production").version_id == "support:v1"
    row = ledger_rows(store)[-1]
    assert (row["actor"], row["face"], row["approval_id"], row["at"]) == (
        "cli:ann", "cli", requested(change).id, decided.decided_at,
    )  # fmt: skip
    [entry] = [a for a in registry.history(store, "support").aliases if a.alias == "production"]
    assert (entry.put_by, entry.approved_by) == ("cli:ann", "slack:U2, cli:carol")


def test_a_rejected_or_expired_request_moves_nothing(store, services):
    register(store)
    change = registry.request_deploy(services, actor=ANN, name="support", version=1)
    actions.decide(services, approval_id=requested(change).id, actor=BOB, approve=False, reason="not today")
    assert not has_alias(store, "production")
    assert store.scalar("SELECT count(*) FROM promotions WHERE alias = 'production'") == 0


def test_a_canary_on_a_protected_alias_is_started_ramped_and_promoted_by_approval(store, services):
    register(store, count=2)
    approve(services, registry.request_deploy(services, actor=ANN, name="support", version=1))
    canary = registry.request_deploy(services, actor=ANN, name="support", version=2, canary_share=10)
    assert requested(canary).action is Action.CANARY
    approve(services, canary)
    state = alias_of(store, "production")
    assert (state.version_id, state.canary_version_id, state.canary_share) == ("support:v1", "support:v2", 10)
    ramp = registry.set_canary_share(services, actor=ANN, name="support", alias="production", share=50)
    assert requested(ramp).action is Action.CANARY and alias_of(store, "production").canary_share == 10
    approve(services, ramp)
    assert alias_of(store, "production").canary_share == 50
    promote = registry.promote_canary(services, actor=ANN, name="support")
    assert requested(promote).action is Action.PROMOTE
    approve(services, promote)
    state = alias_of(store, "production")
    assert (state.version_id, state.canary_version_id, state.canary_share) == ("support:v2", None, 0)
    shares = [(r["move"], r["canary_share"]) for r in ledger_rows(store) if r["alias"] == "production"]
    assert shares == [("deploy", 0), ("canary", 10), ("canary", 50), ("promote", 0)]


def test_approving_a_request_whose_alias_moved_meanwhile_is_refused_and_it_can_still_be_rejected(store, services):
    register(store, count=3)
    approve(services, registry.request_deploy(services, actor=ANN, name="support", version=1))
    first = registry.request_deploy(services, actor=ANN, name="support", version=2)
    second = registry.request_deploy(services, actor=ANN, name="support", version=3)
    approve(services, first)
    with pytest.raises(Conflict, match="changed since this was asked"):
        approve(services, second)
    assert alias_of(store, "production").version_id == "support:v2"
    assert actions.decide(services, approval_id=requested(second).id, actor=BOB, approve=False).status == "rejected"


def test_canary_changes_need_a_canary_and_a_stable_version(store, services):
    register(store, count=2)
    with pytest.raises(Conflict, match="has no version yet"):
        registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging", canary_share=5)
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging")
    with pytest.raises(Conflict, match="runs no canary"):
        registry.set_canary_share(services, actor=ANN, name="support", alias="staging", share=20)
    with pytest.raises(Conflict, match="runs no canary"):
        registry.promote_canary(services, actor=ANN, name="support", alias="staging")
    with pytest.raises(Conflict, match="already the stable version"):
        registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging", canary_share=5)


# Rollback and retirement ----------------------------------------------------------------------------------


def test_rollback_ends_a_canary_then_returns_to_the_previous_version_by_the_ledger(store, services):
    register(store, count=3)
    with pytest.raises(Conflict, match="nothing to roll back"):
        registry.rollback(services, actor=ANN, name="support", alias="staging")
    for version in (1, 2):
        registry.request_deploy(services, actor=ANN, name="support", version=version, alias="staging")
    registry.request_deploy(services, actor=ANN, name="support", version=3, alias="staging", canary_share=20)
    registry.rollback(services, actor=ANN, name="support", alias="staging")
    state = alias_of(store, "staging")
    assert (state.version_id, state.canary_version_id) == ("support:v2", None)  # the canary ended first
    registry.rollback(services, actor=ANN, name="support", alias="staging")
    assert alias_of(store, "staging").version_id == "support:v1"
    registry.rollback(services, actor=ANN, name="support", alias="staging", to=3)
    assert alias_of(store, "staging").version_id == "support:v3"
    assert ledger_rows(store)[-1]["move"] == "rollback"


def test_rollback_of_a_protected_alias_waits_for_approval(store, services):
    register(store, count=2)
    approve(services, registry.request_deploy(services, actor=ANN, name="support", version=1))
    approve(services, registry.request_deploy(services, actor=ANN, name="support", version=2))
    change = registry.rollback(services, actor=ANN, name="support")
    assert requested(change).action is Action.ROLLBACK and alias_of(store, "production").version_id == "support:v2"
    approve(services, change)
    assert alias_of(store, "production").version_id == "support:v1"
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias="fresh")
    with pytest.raises(Conflict, match="no version support@fresh pointed at before"):
        registry.rollback(services, actor=ANN, name="support", alias="fresh")


def test_retire_refuses_a_version_an_alias_serves_and_retired_versions_serve_nowhere(store, services):
    register(store, count=4)  # candidate: v4
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging")
    registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging", canary_share=5)
    for version in (1, 2):  # stable and canary alike
        with pytest.raises(Conflict, match="still serves support@staging"):
            registry.retire(services, actor=ANN, name="support", version=version)
    change = registry.retire(services, actor=ANN, name="support", version=3)
    assert (
        requested(change).action is Action.RETIRE and registry.get_version(store, "support:v3").status == "registered"
    )
    approve(services, change)
    retired = registry.get_version(store, "support:v3")
    assert retired.status == "retired" and retired.retired_at
    with pytest.raises(Conflict, match="was retired"):
        registry.request_deploy(services, actor=ANN, name="support", version=3, alias="staging")
    with pytest.raises(Conflict, match="was retired"):
        registry.rollback(services, actor=ANN, name="support", alias="staging", to=3)


def test_a_retirement_approved_after_the_version_went_live_is_refused(store, services):
    register(store, count=3)  # candidate: v3
    change = registry.retire(services, actor=ANN, name="support", version=2)
    registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging")
    with pytest.raises(Conflict, match="still serves"):
        approve(services, change)
    assert registry.get_version(store, "support:v2").status == "registered"


# History ---------------------------------------------------------------------------------------------------


def test_history_at_a_moment_says_what_served_each_alias_and_who_put_it_there(store, services, clock):
    register(store, count=3)
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging")
    first = clock.tick()
    carol = Actor("carol", Face.MCP, role=Role.OPERATOR)
    registry.request_deploy(services, actor=carol, name="support", version=2, alias="staging", canary_share=25)
    clock.tick()
    registry.request_deploy(services, actor=ANN, name="support", version=3, alias="staging")

    def staging(at):
        return next(a for a in registry.history(store, "support", at=at).aliases if a.alias == "staging")

    assert staging(T0).version_id == "support:v1" and staging(T0).put_by == "cli:ann"
    between = staging(first + timedelta(minutes=5))
    assert (between.version_id, between.canary_version_id, between.canary_share, between.put_by, between.face) == (
        "support:v1", "support:v2", 25, "mcp:carol", "mcp",
    )  # fmt: skip
    assert staging(None).version_id == "support:v3"
    assert staging("2026-11-23T09:15:00Z").canary_version_id == "support:v2"
    assert staging(datetime(2026, 11, 23, 9, 15)).canary_version_id == "support:v2"  # naive: UTC
    early = registry.history(store, "support", at=T0 - timedelta(days=1))
    assert "staging" not in [a.alias for a in early.aliases] and early.at == "2026-11-22T09:00:00.000000Z"
    with pytest.raises(InvalidInput, match="`at` must be an ISO-8601 time"):
        registry.history(store, "support", at="yesterday")


# Bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "error", "names"),
    [
        ({"alias": "Prod uction"}, InvalidInput, "`alias`"),
        ({"alias": ""}, InvalidInput, "`alias`"),
        ({"canary_share": 101}, InvalidInput, "`canary_share`"),
        ({"canary_share": True}, InvalidInput, "`canary_share`"),
        ({"canary_share": "10"}, InvalidInput, "`canary_share`"),
        ({"version": "latest"}, InvalidInput, "`version`"),
        ({"version": 0}, InvalidInput, "`version`"),
        ({"version": "other:v1"}, InvalidInput, "`version`"),
        ({"version": 9}, NotFound, "support:v9"),
        ({"name": "nobody"}, NotFound, "no registered model 'nobody'"),
    ],
)
def test_bad_arguments_are_refused_by_name_before_anything_is_written(store, services, arguments, error, names):
    register(store)
    before = ledger_rows(store)
    call = {"actor": ANN, "name": "support", "version": 1, "alias": "staging"} | arguments
    with pytest.raises(error) as caught:
        registry.request_deploy(services, **call)
    assert names in caught.value.message and caught.value.hint
    assert ledger_rows(store) == before


def test_any_version_argument_is_answered_with_a_move_or_a_named_error(store, services):
    register(store, count=2)

    @hypothesis_settings(max_examples=200, deadline=None, derandomize=True)
    @given(version=st.one_of(st.text(max_size=30), st.integers(), st.booleans(), st.none(), st.floats()))
    def check(version):
        try:
            change = registry.request_deploy(services, actor=ANN, name="support", version=version, alias="staging")
        except (InvalidInput, NotFound, Conflict) as exc:
            assert exc.message and exc.hint
        else:
            assert change.applied and now_at(change).version_id in ("support:v1", "support:v2")

    check()
