"""The MCP face is strict and says so: unknown arguments refused, every argument described, truthful
annotations, errors that name MCP arguments (items counted from 1), and what can be trained."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from mcp import Client

from core.catalog import list_base_models
from core.data import datasets, feedback
from core.platform import cli_actor
from core.vocabulary import Provider
from mcp_server.server import build_server
from mcp_server.tools import in_mcp_words
from mcp_server.tools.arguments import location
from tests.conftest import svc
from tests.fake_provider import FakeProvider
from tests.feedback_samples import make_events

MODEL = "gpt-4o-mini-2024-07-18"


def session(services, *calls: tuple[str, dict]):
    async def go():
        async with Client(build_server(services)) as client:
            tools = (await client.list_tools()).tools
            return tools, [await client.call_tool(name, args) for name, args in calls]

    return anyio.run(go)


@pytest.fixture
def services(settings, store):
    fake = FakeProvider()
    return svc(store, settings, registry={provider: (lambda s: fake) for provider in Provider})


@pytest.fixture
def version(store):
    feedback.ingest_batch(store, make_events(40), actor=cli_actor())
    return datasets.build_dataset(store, name="support", actor=cli_actor())


def audit_rows(store, command):
    return store.query("SELECT outcome, args, detail FROM audit_log WHERE command = ? ORDER BY id", (command,))


# Contract -------------------------------------------------------------------------------------------


def described_properties(schema: dict, where: str = "") -> list[tuple[str, bool]]:
    """(path, described?) for every property of the schema and of its definitions."""
    found = [(f"{where}{name}", bool(prop.get("description"))) for name, prop in schema.get("properties", {}).items()]
    for name, definition in schema.get("$defs", {}).items():
        found += described_properties(definition, f"{where}$defs.{name}.")
    return found


def test_every_tool_has_truthful_annotations_and_every_argument_a_description(services):
    tools, _ = session(services)
    assert tools
    for tool in tools:
        notes = tool.annotations
        assert notes is not None, tool.name
        hints = (notes.read_only_hint, notes.destructive_hint, notes.idempotent_hint, notes.open_world_hint)
        assert None not in hints, f"{tool.name} leaves a hint to the client's default"
        assert not (notes.read_only_hint and notes.destructive_hint), tool.name
        undescribed = [path for path, described in described_properties(tool.input_schema) if not described]
        assert undescribed == [], f"{tool.name}: {undescribed}"
        assert tool.input_schema.get("additionalProperties") is False, tool.name


def test_annotations_say_what_each_tool_does(services):
    tools, _ = session(services)
    notes = {tool.name: tool.annotations for tool in tools}
    assert notes["get_status"].read_only_hint and notes["list_base_models"].read_only_hint
    assert not notes["launch_job"].read_only_hint and notes["launch_job"].open_world_hint  # it calls a provider
    assert not notes["launch_job"].idempotent_hint  # without a key, a second call is a second job
    assert notes["cancel_job"].destructive_hint and notes["cancel_job"].open_world_hint
    assert notes["ingest_feedback"].idempotent_hint and not notes["ingest_feedback"].destructive_hint


# Unknown arguments ------------------------------------------------------------------------------------


def test_a_top_level_epochs_is_refused_naming_the_valid_arguments_and_audited(services, store, version):
    args = {"version": version.id, "provider": "openai", "base_model": MODEL, "epochs": 2}
    _, [result] = session(services, ("launch_job", args))
    assert result.is_error
    text = result.content[0].text
    assert "unknown argument `epochs` for launch_job" in text
    assert "Valid arguments: version, provider, base_model, method, hyperparameters, key." in text
    assert '{"hyperparameters": {"epochs": ...}}' in text
    assert store.scalar("SELECT count(*) FROM jobs") == 0  # nothing launched with the epochs silently dropped
    [row] = audit_rows(store, "launch_job")
    assert row["outcome"] == "error" and "unknown argument `epochs`" in row["detail"]
    assert json.loads(row["args"])["epochs"] == 2


def test_an_unknown_key_inside_an_object_argument_is_refused_too(services, store):
    _, [result] = session(services, ("build_dataset", {"name": "support", "filters": {"min_ratings": 4}}))
    text = result.content[0].text
    assert result.is_error and "unknown key `min_ratings` in argument `filters`" in text
    assert "min_rating" in text  # the keys it takes
    assert store.scalar("SELECT count(*) FROM dataset_versions") == 0


def test_hyperparameters_are_named_as_arguments_not_flags(services, version):
    calls = [
        ("launch_job", {"version": version.id, "provider": "openai", "base_model": MODEL,
                        "hyperparameters": {"epochs": "lots"}}),
        ("launch_job", {"version": version.id, "provider": "openai", "base_model": MODEL,
                        "hyperparameters": {"epoch": 2}}),
    ]  # fmt: skip
    _, results = session(services, *calls)
    texts = [r.content[0].text for r in results]
    assert "argument `hyperparameters.epochs` of launch_job" in texts[0] and "(got 'lots')" in texts[0]
    assert "argument `hyperparameters.epoch` of launch_job" in texts[1] and "'epochs'" in texts[1]
    assert not any("--" in text for text in texts)


def test_core_hints_speak_of_tools_and_arguments_not_cli_flags(services, version):
    args = {"version": version.id, "provider": "bedrock", "base_model": MODEL}
    _, [result] = session(services, ("launch_job", args))
    text = result.content[0].text
    assert result.is_error and "provider=openai or azure" in text and "--provider" not in text


def test_cli_wording_becomes_tool_wording():
    hint = "See `finetune validate support@1 openai --model gpt-4o`; fix the data. Or pass --skip-invalid to store."
    assert in_mcp_words(hint) == (
        "See validate_dataset (version=support@1, target=openai, model=gpt-4o); fix the data. "
        "Or pass skip_invalid=true to store."
    )
    assert in_mcp_words("Use --epochs 3 or --lr-multiplier 0.1.") == (
        "Use hyperparameters.epochs=3 or hyperparameters.learning_rate_multiplier=0.1."
    )
    assert in_mcp_words("List jobs with `finetune jobs list`.") == "List jobs with list_jobs."


def test_items_count_from_one():
    assert location(("events", 0, "rating")) == "event 1, rating"
    assert location(("events", 2, "messages", 0, "role")) == "event 3, message 1, role"
    assert location(("hyperparameters", "epochs", "[key]")) == "hyperparameters.epochs"
    assert location(("split", 2)) == "split item 3"


def test_a_bad_event_is_named_from_one_in_every_message(services, store):
    events: list[Any] = make_events(3)
    events[1] = 5
    events_core = make_events(3)
    events_core[0]["rating"] = "great"
    _, [schema, core] = session(
        services, ("ingest_feedback", {"events": events}), ("ingest_feedback", {"events": events_core})
    )
    assert "argument `event 2` of ingest_feedback: Input should be a valid dictionary" in schema.content[0].text
    assert "event 1, field `rating`" in core.content[0].text
    assert [r["outcome"] for r in audit_rows(store, "ingest_feedback")] == ["error"]  # the core audits its own


def test_wrong_types_and_missing_arguments_are_tool_errors_naming_the_argument(services, store):
    _, results = session(
        services,
        ("job_status", {}),
        ("job_status", {"job_id": 7}),
        ("list_jobs", {"status": "runing"}),
    )
    texts = [r.content[0].text for r in results]
    assert "missing argument `job_id` for job_status" in texts[0]
    assert "argument `job_id` of job_status: Input should be a valid string (got 7)" in texts[1]
    assert "argument `status` of list_jobs" in texts[2] and "'running'" in texts[2]
    assert [r["outcome"] for r in audit_rows(store, "job_status")] == ["error", "error"]


# Idempotency keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_idempotency_key_is_refused(services, store, version, key):
    args = {"version": version.id, "provider": "openai", "base_model": MODEL, "key": key}
    _, [result] = session(services, ("launch_job", args))
    assert result.is_error and "the idempotency key is empty" in result.content[0].text
    assert store.scalar("SELECT count(*) FROM jobs") == 0


# What can be trained -------------------------------------------------------------------------------------


def test_list_base_models_shows_what_can_be_trained(services):
    _, [everything, azure] = session(services, ("list_base_models", {}), ("list_base_models", {"provider": "azure"}))
    models = {m["id"]: m for m in everything.structured_content["models"]}
    assert models.keys() == services.catalog.models.keys()
    mini = models[MODEL]
    assert mini["providers"] == ["openai", "azure"] and mini["methods"] == ["supervised"]
    assert mini["export_targets"] == {"supervised": "openai"} and mini["max_example_tokens"] == 65536
    assert mini["training_usd_per_1m_tokens"] == 3.0 and mini["price_as_of"] == services.catalog.as_of
    assert {m["id"] for m in azure.structured_content["models"]} == {
        m.id for m in list_base_models(services.catalog, provider="openai").models
    }
