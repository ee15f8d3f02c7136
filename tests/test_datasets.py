import json

import pytest

from core.data import datasets, feedback
from core.data.datasets import DatasetFilters, Recipe
from core.errors import InvalidInput, NotFound
from core.platform.actors import cli_actor
from tests.feedback_samples import make_events

ACTOR = cli_actor()
EVERYTHING = Recipe(filters=DatasetFilters(include_rejected=True))


@pytest.fixture
def loaded(store):
    feedback.ingest_batch(store, make_events(120), actor=ACTOR)
    return store


def test_build_records_an_immutable_version_with_lineage(loaded):
    version = datasets.build_dataset(loaded, name="support-replies", actor=ACTOR, recipe=EVERYTHING)
    assert version.id == "support-replies@1" and version.counts["examples"] == 120
    assert sum(version.counts["splits"].values()) == 120
    assert set(version.counts["by_agent"]) == {"support", "sales", "billing"}
    assert loaded.scalar("SELECT count(*) FROM dataset_examples WHERE dataset_version_id = 'support-replies@1'") == 120
    assert version.created_by == "cli:" + ACTOR.id


def test_same_recipe_same_data_reuses_the_version(loaded):
    first = datasets.build_dataset(loaded, name="d", actor=ACTOR)
    again = datasets.build_dataset(loaded, name="d", actor=ACTOR)
    assert again.id == first.id and again.reused and again.content_hash == first.content_hash
    feedback.ingest_batch(loaded, make_events(5, start=500), actor=ACTOR)
    third = datasets.build_dataset(loaded, name="d", actor=ACTOR)
    assert third.id == "d@2" and not third.reused
    assert datasets.get_version(loaded, "d").id == "d@2"  # a bare name means the latest


def test_split_is_deterministic_stratified_and_seeded(loaded):
    a = datasets.build_dataset(loaded, name="a", actor=ACTOR, recipe=EVERYTHING.model_copy(update={"seed": 1}))
    b = datasets.build_dataset(loaded, name="b", actor=ACTOR, recipe=EVERYTHING.model_copy(update={"seed": 1}))
    c = datasets.build_dataset(loaded, name="c", actor=ACTOR, recipe=EVERYTHING.model_copy(update={"seed": 2}))
    splits = lambda v: loaded.query(  # noqa: E731
        "SELECT feedback_id, split FROM dataset_examples WHERE dataset_version_id = ? ORDER BY feedback_id", (v.id,)
    )
    assert splits(a) == splits(b) and splits(a) != splits(c)
    for agent_counts in a.counts["by_agent"].values():
        assert agent_counts == {"train": 32, "validation": 4, "test": 4}


def test_filters_select_what_they_say(loaded):
    version = datasets.build_dataset(
        loaded, name="f", actor=ACTOR,
        recipe=Recipe(filters=DatasetFilters(agents=["support"], min_rating=4, edited_only=True, tags=["vip", "eu"])),
    )  # fmt: skip
    rows = loaded.query(
        "SELECT f.agent, f.rating, f.final_output, f.tags FROM dataset_examples e JOIN feedback f ON f.id = e.feedback_id"
        " WHERE e.dataset_version_id = ?", (version.id,)
    )  # fmt: skip
    assert rows and all(r["agent"] == "support" and r["rating"] >= 4 and r["final_output"] for r in rows)
    assert all(("vip" in r["tags"]) or ("eu" in r["tags"]) for r in rows)


def test_exact_and_near_duplicates_are_removed(store):
    base = make_events(2)[1]  # an unedited event: its draft is what trains
    assert "final" not in base
    near = base["output"].replace("Hello!", "Hi!")
    events = [
        base,
        base | {"output": base["output"].upper(), "created_at": "2026-10-05T00:00:00Z"},  # same after normalising
        base | {"output": near, "created_at": "2026-10-06T00:00:00Z"},  # near duplicate
        make_events(1, start=50)[0],
    ]
    feedback.ingest_batch(store, events, actor=ACTOR)
    version = datasets.build_dataset(store, name="d", actor=ACTOR)
    assert (version.counts["exact_duplicates"], version.counts["near_duplicates"], version.counts["examples"]) == (
        1,
        1,
        2,
    )
    kept_all = datasets.build_dataset(store, name="all", actor=ACTOR, recipe=Recipe(dedupe=False))
    assert kept_all.counts["examples"] == 4


def test_quality_floor_and_empty_selection(loaded):
    with pytest.raises(InvalidInput) as caught:
        datasets.build_dataset(
            loaded, name="none", actor=ACTOR, recipe=Recipe(filters=DatasetFilters(agents=["nobody"]))
        )
    assert "selects no examples" in caught.value.message
    high = datasets.build_dataset(
        loaded, name="high", actor=ACTOR, recipe=Recipe(filters=DatasetFilters(min_quality=0.8))
    )
    assert 0 < high.counts["examples"] < 120 and high.counts["low_quality"] > 0


def test_bad_names_and_recipes_are_explained(loaded):
    with pytest.raises(InvalidInput) as caught:
        datasets.build_dataset(loaded, name="Bad Name", actor=ACTOR)
    assert caught.value.hint is not None
    assert "lowercase" in caught.value.hint
    with pytest.raises(ValueError):
        Recipe(split=(0.5, 0.2, 0.2))
    with pytest.raises(ValueError):
        DatasetFilters(since="last tuesday")


def test_diff_between_versions(loaded):
    a = datasets.build_dataset(loaded, name="d", actor=ACTOR, recipe=EVERYTHING)
    b = datasets.build_dataset(
        loaded, name="d", actor=ACTOR,
        recipe=Recipe(filters=DatasetFilters(agents=["support", "sales"], include_rejected=True)),
    )  # fmt: skip
    diff = datasets.diff_versions(loaded, a.id, b.id)
    assert (diff.added, diff.removed, diff.kept) == (0, 40, 80)
    assert diff.recipe_changes["filters.agents"] == [[], ["support", "sales"]]
    assert diff.count_changes["examples"] == [120, 80]
    assert len(diff.sample_removed) == 5


def test_unknown_version_lists_the_known_ones(loaded):
    datasets.build_dataset(loaded, name="d", actor=ACTOR)
    with pytest.raises(NotFound) as caught:
        datasets.get_version(loaded, "d@9")
    assert caught.value.hint is not None
    assert "d@1" in caught.value.hint


def test_rejected_unedited_drafts_are_left_out_by_default_and_counted(store):
    base = make_events(6, start=300)
    for event in base:
        event.pop("final", None)
    events = [
        base[0] | {"rating": 1},  # rejected
        base[1] | {"rating": "down"},  # rejected
        base[2] | {"rating": 2, "final": base[2]["output"]},  # rejected: "corrected" to the same text
        base[3] | {"rating": 1, "final": base[3]["output"] + " Corrected."},  # the user fixed it: kept
        base[4] | {"rating": 5},
        {k: v for k, v in base[5].items() if k != "rating"},  # unrated: kept
    ]
    feedback.ingest_batch(store, events, actor=ACTOR)
    version = datasets.build_dataset(store, name="d", actor=ACTOR, recipe=Recipe(dedupe=False))
    assert version.counts["examples"] == 3 and version.counts["rejected_drafts"] == 3
    assert version.stats["left_out"] == {
        "rejected_drafts": 3, "length": 0, "low_quality": 0, "exact_duplicates": 0, "near_duplicates": 0,
    }  # fmt: skip
    kept = {r["feedback_id"] for r in store.query("SELECT feedback_id FROM dataset_examples")}
    assert kept == {r["id"] for r in store.query("SELECT id FROM feedback WHERE rating IS NULL OR rating > 2 OR "
                                                  "final_output != ai_output")}  # fmt: skip
    everything = datasets.build_dataset(
        store, name="all", actor=ACTOR, recipe=Recipe(filters=DatasetFilters(include_rejected=True), dedupe=False)
    )
    assert everything.counts["examples"] == 6 and everything.stats["left_out"]["rejected_drafts"] == 0


def test_a_recipe_selecting_only_rejected_drafts_says_why_it_is_empty(store):
    feedback.ingest_batch(store, [e | {"rating": 1} for e in make_events(3) if "final" not in e], actor=ACTOR)
    with pytest.raises(InvalidInput) as caught:
        datasets.build_dataset(store, name="d", actor=ACTOR)
    assert "rejected_drafts" in caught.value.message and "include_rejected" in str(caught.value.hint)


@pytest.mark.parametrize(
    "given, field",
    [
        ({"filters": {"since": "yesterday"}}, "filters.since"),
        ({"filters": {"until": "2026-13-45"}}, "filters.until"),
        ({"filters": {"since": "0001-01-01T00:00:00+05:00"}}, "filters.since"),
        ({"filters": {"min_rating": 0}}, "filters.min_rating"),
        ({"filters": {"min_rating": 6}}, "filters.min_rating"),
        ({"filters": {"min_rating": float("nan")}}, "filters.min_rating"),
        ({"filters": {"min_acceptance": 1.5}}, "filters.min_acceptance"),
        ({"filters": {"min_acceptance": -0.1}}, "filters.min_acceptance"),
        ({"filters": {"min_quality": float("nan")}}, "filters.min_quality"),
        ({"filters": {"min_quality": 2}}, "filters.min_quality"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"split": (float("nan"), 0.0, 0.0)}, "split"),
        ({"split": (float("inf"), 0.0, 0.0)}, "split"),
        ({"split": (1.2, -0.1, -0.1)}, "split"),
        ({"split": (0.5, 0.2, 0.2)}, "split"),
        ({"split": (0.0, 0.5, 0.5)}, "split"),
    ],
)
def test_bad_recipes_are_refused_naming_the_field_before_anything_is_written(loaded, given, field):
    with pytest.raises(InvalidInput) as caught:
        datasets.recipe_from(**given)
    assert f"`{field}`" in caught.value.message and caught.value.hint
    assert loaded.scalar("SELECT count(*) FROM dataset_versions") == 0


def test_every_version_built_reads_back(loaded):
    recipe = datasets.recipe_from(
        filters={"min_rating": 2, "since": "2026-10-02"}, seed=2**63 - 1, split=(0.7, 0.2, 0.1)
    )
    version = datasets.build_dataset(loaded, name="d", actor=ACTOR, recipe=recipe)
    assert datasets.get_version(loaded, version.id).recipe == recipe


def test_versions_recorded_before_the_rejected_default_still_say_they_kept_rejected_drafts(loaded):
    store = loaded
    version = datasets.build_dataset(store, name="history", actor=cli_actor(), recipe=Recipe(seed=3))
    assert version.recipe.filters.include_rejected is False
    stored = json.loads(store.scalar("SELECT filters FROM dataset_versions WHERE id = ?", (version.id,)))
    del stored["filters"]["include_rejected"]  # how a version built by an earlier release was stored
    with store.write() as db:
        db.execute("UPDATE dataset_versions SET filters = ? WHERE id = ?", (json.dumps(stored), version.id))
    assert datasets.get_version(store, version.id).recipe.filters.include_rejected is True
