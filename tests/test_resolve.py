"""Sticky canary resolution: the hash's properties, what a resolution names, and the cache's invalidation."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core import registry
from core.errors import InvalidInput, NotFound
from core.platform.actors import SCHEDULER, Actor
from core.platform.store import Store, open_store
from core.platform.timeutil import iso
from core.registry.resolve import arm_for, bucket, resolve_model
from core.services import build_services
from core.vocabulary import Arm, Face, Role

ANN = Actor("ann", Face.CLI, role=Role.OPERATOR)
names = st.text(min_size=1, max_size=40)
keys = st.text(min_size=1, max_size=80)  # any text, lone surrogates included
shares = st.integers(min_value=0, max_value=100)


@pytest.fixture
def services(store, settings):
    return build_services(settings, store=store)


def with_canary(store: Store, services, share: int, alias: str = "staging") -> None:
    """support: v1 stable on `alias`, v2 its canary at `share`%."""
    with store.write():
        for n in (1, 2):
            registry.register_version(
                store, name="support", provider="openai", provider_model_id=f"ft:support:{n}", job_id=None,
                dataset_version_id=None, base_model="gpt-4o-mini", metrics={}, cost_usd=None, actor=SCHEDULER,
                reason="test", now=iso(),
            )  # fmt: skip
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias=alias)
    registry.request_deploy(services, actor=ANN, name="support", version=2, alias=alias, canary_share=share)


# The hash -------------------------------------------------------------------------------------------------


def test_the_bucket_is_the_documented_hash():
    digest = hashlib.sha256(b"support\x00user-42").digest()
    assert bucket("support", "user-42") == int.from_bytes(digest[:8], "big") % 100


@hypothesis_settings(derandomize=True)
@given(name=names, key=keys, share=shares)
def test_the_same_key_always_lands_in_the_same_bucket_and_arm(name, key, share):
    place = bucket(name, key)
    assert 0 <= place < 100 and bucket(name, key) == place
    assert arm_for(place, share) is arm_for(bucket(name, key), share)


@hypothesis_settings(derandomize=True)
@given(name=names, key=keys, low=shares, high=shares)
def test_raising_the_share_never_moves_a_key_from_the_canary_back_to_stable(name, key, low, high):
    low, high = sorted((low, high))
    if arm_for(bucket(name, key), low) is Arm.CANARY:
        assert arm_for(bucket(name, key), high) is Arm.CANARY


@hypothesis_settings(max_examples=25, deadline=None, derandomize=True)
@given(name=names, share=shares)
def test_about_share_percent_of_many_keys_go_to_the_canary(name, share):
    count = 4000
    canary = sum(arm_for(bucket(name, f"user-{i}"), share) is Arm.CANARY for i in range(count))
    assert abs(100 * canary / count - share) < 3.5  # ~5 standard deviations at the worst share


def test_share_zero_and_a_hundred_send_nobody_and_everybody():
    places = [bucket("support", f"k{i}") for i in range(2000)]
    assert {arm_for(p, 0) for p in places} == {Arm.STABLE}
    assert {arm_for(p, 100) for p in places} == {Arm.CANARY}


# Resolution through the store -----------------------------------------------------------------------------


def test_a_resolution_names_the_version_its_provider_model_and_the_arm(store, services):
    with_canary(store, services, share=30)
    seen = {}
    for i in range(300):
        found = resolve_model(store, "support", f"user-{i}", alias="staging")
        seen[found.arm] = (found.version_id, found.provider, found.provider_model_id)
        assert found.bucket == bucket("support", f"user-{i}") and (found.arm is Arm.CANARY) == (found.bucket < 30)
    assert seen == {
        Arm.STABLE: ("support:v1", "openai", "ft:support:1"),
        Arm.CANARY: ("support:v2", "openai", "ft:support:2"),
    }


def test_raising_the_share_through_the_registry_only_moves_keys_from_stable_to_canary(store, services):
    with_canary(store, services, share=10)
    keys = [f"conversation-{i}" for i in range(500)]
    before = {key: resolve_model(store, "support", key, alias="staging").arm for key in keys}
    registry.set_canary_share(services, actor=ANN, name="support", alias="staging", share=40)
    after = {key: resolve_model(store, "support", key, alias="staging").arm for key in keys}
    assert all(after[key] is Arm.CANARY for key in keys if before[key] is Arm.CANARY)
    assert sum(arm is Arm.CANARY for arm in after.values()) > sum(arm is Arm.CANARY for arm in before.values())
    again = {key: resolve_model(store, "support", key, alias="staging").arm for key in keys}
    assert again == after  # unchanged share: every key keeps its arm


def test_the_cache_rereads_the_alias_table_only_after_a_move(store, services):
    with_canary(store, services, share=0)
    resolve_model(store, "support", "warm", alias="staging")
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        for i in range(50):
            resolve_model(store, "support", f"k{i}", alias="staging")
        assert len(statements) == 50 and all("counters" in s for s in statements)  # one counter read per call
    finally:
        store.db.conn.set_trace_callback(None)
    registry.promote_canary(services, actor=ANN, name="support", alias="staging")
    assert resolve_model(store, "support", "warm", alias="staging").version_id == "support:v2"


def test_a_move_made_by_another_process_is_seen_at_once(store, services, settings):
    with_canary(store, services, share=0)
    assert resolve_model(store, "support", "k", alias="staging").arm is Arm.STABLE
    other = open_store(settings.db_path)  # another connection to the same file, as another process has
    try:
        registry.set_canary_share(build_services(settings, store=other), actor=ANN, name="support", alias="staging",
                                  share=100)  # fmt: skip
    finally:
        other.close()
    assert resolve_model(store, "support", "k", alias="staging").version_id == "support:v2"


def test_unknown_models_aliases_and_empty_keys_are_named(store, services):
    with_canary(store, services, share=5)
    with pytest.raises(NotFound, match="no registered model 'nobody'"):
        resolve_model(store, "nobody", "k")
    with pytest.raises(NotFound, match="has no alias 'production'") as caught:
        resolve_model(store, "support", "k")
    assert "candidate, staging" in caught.value.message
    with pytest.raises(InvalidInput, match="`key` must be a non-empty string"):
        resolve_model(store, "support", "", alias="staging")
    assert resolve_model(store, "support", "\ud800 lone", alias="staging").version_id in ("support:v1", "support:v2")
