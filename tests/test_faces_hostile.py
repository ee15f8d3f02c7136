"""Whatever arrives at a face is answered with a result or a usage/tool error, never an internal error.

Hypothesis drives the real grammar (`run_text` as Slack types it, `run_command` as a
terminal passes argv) and the real MCP server (in-memory client) with arbitrary text
and arguments: quotes left open, NUL bytes, lone surrogates, huge values, wrong
types, deep nesting. Providers are test doubles, so nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import anyio.from_thread
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from bot.commands import ErrorResult, Invocation, run_command, run_text
from bot.commands.groups import SLACK, TERMINAL
from bot.invoke import slack_actor, terminal_actor
from core.data import datasets, feedback
from core.platform import cli_actor
from core.platform.store import open_store
from core.services import Services
from core.vocabulary import Provider
from mcp_server.server import TOOLBOXES, build_server
from tests.conftest import make_settings, svc
from tests.fake_provider import FakeProvider
from tests.feedback_samples import make_events

HOSTILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text with everything a face can be sent: controls, NUL, lone surrogates, quotes, astral characters.
ANY_CHAR = st.characters(codec=None, categories=None)
WORDS = st.text(ANY_CHAR, max_size=30) | st.sampled_from(["'", '"', "\\", "--", "-h", "--json", "\x00", "\ud800"])
SERVER_COMMANDS = {"serve", "mcp"}  # they would start servers: the rest of the grammar is fair game


class Quiet(Services):
    """Services whose repr stays short in hypothesis' reports of a falsifying example."""

    def __repr__(self) -> str:
        return "Services(...)"


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> Iterator[Services]:
    """One data directory for the module, with a dataset version so launches get past the lookup."""
    folder = tmp_path_factory.mktemp("hostile")
    base = make_settings(folder, admins=["UADMIN"])
    store = open_store(base.db_path)
    feedback.ingest_batch(store, make_events(30), actor=cli_actor())
    datasets.build_dataset(store, name="support", actor=cli_actor())
    fakes = {provider: FakeProvider() for provider in Provider}
    registry: dict[Provider, Any] = {provider: (lambda s, fake=fake: fake) for provider, fake in fakes.items()}
    built = svc(store, base, registry=registry)
    yield Quiet(settings=built.settings, catalog=built.catalog, providers=built.providers, _store=store)
    store.close()


def grammar_words(group) -> list[str]:
    words = {name for name in group.commands if name not in SERVER_COMMANDS}
    for command in group.commands.values():
        words |= set(getattr(command, "commands", {}))
        for param in command.params:
            words |= set(getattr(param, "opts", []))
    return sorted(words | {"support", "support@1", "openai", "gpt-4o-mini", "job_x", "ap_x"})


def assert_answered(outcome) -> None:
    result = outcome.result
    assert outcome.exit_code in (0, 1, 2), outcome
    assert not (isinstance(result, ErrorResult) and result.error == "InternalError"), result
    if isinstance(result, ErrorResult):
        assert len(result.message) <= 2000 and len(result.hint or "") <= 2000


def slack_text(draw_words: list[str]) -> str:
    return " ".join(draw_words)


@HOSTILE
@given(st.lists(st.sampled_from(grammar_words(SLACK)) | WORDS, max_size=8).map(" ".join))
def test_slack_text_is_always_answered(services, text):
    inv = Invocation(services=services, actor=slack_actor(services.settings, "UADMIN"), request_key=None)
    assert_answered(run_text(SLACK, text, inv, prog="/finetune"))


@HOSTILE
@given(st.lists(st.sampled_from(grammar_words(TERMINAL)) | WORDS, max_size=8))
def test_terminal_argv_is_always_answered(services, argv):
    if argv and argv[0] in SERVER_COMMANDS:
        argv = ["help", *argv]
    inv = Invocation(services=services, actor=terminal_actor(services.settings))
    assert_answered(run_command(TERMINAL, argv, inv, prog="finetune"))


@pytest.mark.parametrize(
    "text",
    [
        'notify "unterminated',
        "status \x00",
        "status \ud800",
        "notify " + "x" * 100_000,
        "job " + "j" * 9_000,
        "job " + "\U0001f600" * 500,
    ],
)
def test_known_hostile_texts_are_usage_problems_or_results(services, text):
    inv = Invocation(services=services, actor=slack_actor(services.settings, "UADMIN"))
    assert_answered(run_text(SLACK, text, inv, prog="/finetune"))


# MCP ------------------------------------------------------------------------------------------------


def schema_names(value: Any) -> set[str]:
    """Every property name in the tools' input schemas, nested ones too (`filters` -> `agents`)."""
    if isinstance(value, dict):
        found = set(value.get("properties", {})) if isinstance(value.get("properties"), dict) else set()
        return found.union(*(schema_names(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(schema_names(v) for v in value))
    return set()


NAMES = sorted(schema_names([tool.parameters for box in TOOLBOXES for tool in box.build_tools()]))
# The in-memory client cannot serialise a lone surrogate in a key, only in a value.
KEY = st.sampled_from(NAMES) | st.text(st.characters(codec="utf-8"), max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(ANY_CHAR, max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEY, children, max_size=4),
    max_leaves=12,
)


@contextlib.contextmanager
def mcp_client(services: Services) -> Iterator[tuple[Any, Any]]:
    """An in-memory MCP session usable from synchronous (hypothesis) code."""
    with anyio.from_thread.start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(Client(build_server(services))) as client:
            yield portal, client


@pytest.fixture(scope="module")
def mcp(services):
    with mcp_client(services) as (portal, client):
        tools = {tool.name: tool for tool in portal.call(client.list_tools).tools}
        yield portal, client, tools


def arguments_for(tools: dict[str, Any]) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    def for_tool(name: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
        names = list(tools[name].input_schema.get("properties", {}))
        keys = st.sampled_from(names) | KEY if names else KEY
        return st.tuples(st.just(name), st.dictionaries(keys, JSON, max_size=5))

    return st.sampled_from(sorted(tools)).flatmap(for_tool)


def assert_tool_answered(name: str, result) -> None:
    if not result.is_error:
        return
    text = result.content[0].text
    assert "Internal error" not in text, text
    assert text.startswith(f"Error executing tool {name}: "), text  # a bare prefix is the SDK's word for a crash
    assert len(text) <= 2500, text[:200]


@HOSTILE
@given(data=st.data())
def test_mcp_arguments_are_always_answered(mcp, data):
    portal, client, tools = mcp
    name, arguments = data.draw(arguments_for(tools))
    assert_tool_answered(name, portal.call(client.call_tool, name, arguments))


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("job_status", {"job_id": "j" * 1_000_000}),
        ("job_status", {"job_id": ["not", "a", "string"]}),
        ("job_status", {"job_id": "job_\x00"}),
        ("job_status", {"job_id": "job_\udc80"}),
        ("ingest_feedback", {"events": [{"agent": "a", "output": "o", "prompt": nested(100)}]}),
        ("build_dataset", {"name": "x" * 10_000, "filters": {"agents": nested(100)}}),
        ("build_dataset", {"name": "support", "filters": {"agents": ["\ud800"]}}),
        ("build_dataset", {"name": "support", "filters": {"since": "s" * 100_000}}),
        ("launch_job", {"version": "support@1", "provider": "openai", "base_model": "b" * 5000}),
        ("list_jobs", {"status": {"$ne": None}}),
    ],
)
def test_known_hostile_arguments_are_tool_errors(mcp, name, arguments):
    portal, client, _ = mcp
    result = portal.call(client.call_tool, name, arguments)
    assert_tool_answered(name, result)
    assert result.is_error


def test_a_long_text_inside_an_event_is_data_not_an_attack(mcp):
    portal, client, _ = mcp
    events = [{"agent": "long", "output": "o" * 300_000, "prompt": "p"}]
    result = portal.call(client.call_tool, "ingest_feedback", {"events": events})
    assert not result.is_error and result.structured_content["lines"] == 1


def test_a_huge_argument_is_echoed_clipped_and_audited_clipped(services, mcp):
    portal, client, _ = mcp
    huge = "v" * 1_000_000
    result = portal.call(
        client.call_tool, "validate_dataset", {"version": "support@1", "target": "openai", "model": huge}
    )
    text = result.content[0].text
    assert result.is_error and len(text) < 2000 and "v" * 81 not in text
    [row] = services.store.query(
        "SELECT args, detail FROM audit_log WHERE command = 'validate_dataset' ORDER BY id DESC LIMIT 1"
    )
    assert len(row["args"]) < 1000 and len(row["detail"] or "") <= 500
    assert json.loads(row["args"])["model"].startswith("vvv")


def test_json_no_tool_could_take_is_a_parse_error_over_http(settings, store):
    """Lone surrogates and deep nesting in the JSON itself stop at the transport: 400, never 500."""
    from starlette.testclient import TestClient

    from bot.serve import build_app

    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    initialize = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}},
    }  # fmt: skip
    call = b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ingest_feedback","arguments":'
    with TestClient(build_app(svc(store, settings)), base_url="http://127.0.0.1") as client:
        session = client.post("/mcp", json=initialize, headers=headers).headers["mcp-session-id"]
        headers = {**headers, "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
        client.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
        for arguments in (b'{"events":[{"\\ud800":1}]}', b'{"events":' + b"[" * 3000 + b"]" * 3000 + b"}"):
            response = client.post("/mcp", content=call + arguments + b"}}", headers=headers)
            assert response.status_code == 400 and response.json()["error"]["code"] == -32700


# Slack over HTTP ----------------------------------------------------------------------------------------

SLACK_KEYS = st.sampled_from(
    ["type", "event", "event_id", "team_id", "team", "user", "user_id", "actions", "trigger_id", "command", "text",
     "channel_id", "enterprise", "authorizations", "is_enterprise_install", "api_app_id", "view", "response_url"]
)  # fmt: skip
SLACK_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=5)
    | st.sampled_from(["/finetune", "url_verification", "event_callback", "block_actions", "view_submission"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(SLACK_KEYS, children, max_size=4),
    max_leaves=10,
)


@pytest.fixture
def slack_http(tmp_path, fake_slack):
    from starlette.testclient import TestClient

    from bot.serve import build_app
    from tests.conftest import BOT_TOKEN, SIGNING_SECRET

    config = make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url
    )
    store = open_store(config.db_path)
    with TestClient(build_app(svc(store, config)), base_url="http://127.0.0.1") as client:
        yield client
    store.close()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(SLACK_KEYS, SLACK_VALUES, max_size=6), st.booleans())
def test_signed_slack_payloads_of_any_shape_are_never_a_500(slack_http, payload, as_form):
    from urllib.parse import urlencode

    from tests.conftest import sign

    if as_form:
        body = urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in payload.items()})
        content_type = "application/x-www-form-urlencoded"
    else:
        body, content_type = json.dumps(payload), "application/json"
    response = slack_http.post("/slack/events", content=body, headers={**sign(body), "Content-Type": content_type})
    assert response.status_code < 500, body
