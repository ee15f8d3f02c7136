"""Outcomes of served drafts: model_version and arm on feedback, POST /v1/feedback, MCP record_outcomes."""

from __future__ import annotations

import asyncio
import http.client
import json
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import MutableMapping
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from mcp import Client
from starlette.testclient import TestClient

from bot import feedback_api, invoke
from core.data import feedback
from core.data.fields import normalise
from core.platform import store as store_module
from core.platform.actors import cli_actor
from core.platform.store import migrate_store, open_store
from core.vocabulary import Face, Operation
from mcp_server.server import build_server
from tests.conftest import MCP_TOKEN, make_settings, svc, wait_until
from tests.feedback_samples import write_jsonl
from tests.test_http_api import register

APP_TOKEN = "test-app-token-abcdefghijklmnop"
URL = "/v1/feedback"
AUTH = {"Authorization": f"Bearer {APP_TOKEN}"}


def outcome(i: int, **fields: Any) -> dict[str, Any]:
    """One application's feedback on draft `i`, served by support:v2 on the canary arm."""
    return {
        "id": f"conv-{i}", "agent": "support", "prompt": f"Where is order {i}?", "output": f"Order {i} ships Monday.",
        "final": f"Order {i} shipped today.", "rating": "up", "model_version": "support:v2", "arm": "canary",
        **fields,
    }  # fmt: skip


def app_client(tmp_path, store, **settings: Any) -> TestClient:
    from bot.serve import build_app

    options = {"app_tokens": f"shop:{APP_TOKEN}", "mcp_token": MCP_TOKEN, **settings}
    return TestClient(build_app(svc(store, make_settings(tmp_path, **options))))


@pytest.fixture
def client(tmp_path, store):
    return app_client(tmp_path, store)


def post(client: TestClient, body: Any, *, query: str = "", headers: dict[str, str] | None = None):
    return client.post(URL + query, json=body, headers=AUTH if headers is None else headers)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def stored(store) -> list[dict[str, Any]]:
    return store.query("SELECT id, model_version, arm, ai_output, final_output FROM feedback ORDER BY id")


# The fields -------------------------------------------------------------------------------------------


def test_events_without_a_version_or_arm_keep_the_content_hash_they_always_had():
    event = {
        "agent": "support", "prompt": "Where is my refund?", "output": "Monday.", "final": "Today.", "rating": "up",
        "model": "gpt-4.1-mini", "created_at": "2026-11-20T10:00:00Z", "tags": ["vip"],
    }  # fmt: skip
    assert normalise(event, {})["content_hash"] == "6d1995e46c295c4ee379c15fd6e520627465dfa5ea95948f4cf98b82faf0092d"


def test_two_outcomes_differing_only_by_arm_are_two_events_and_reingesting_them_changes_nothing(store):
    pair = [outcome(1, id=None, arm="stable"), outcome(1, id=None, arm="canary")]
    first = feedback.ingest_batch(store, pair, actor=cli_actor())
    again = feedback.ingest_batch(store, pair, actor=cli_actor())
    assert (first.ingested, again.ingested, again.duplicates) == (2, 0, 2)
    assert sorted(r["arm"] for r in stored(store)) == ["canary", "stable"]


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"arm": "blue"}, "arm", "'blue' is not an arm; an arm is stable or canary"),
        ({"arm": 1}, "arm", "1 is not an arm"),
        ({"arm": "Canary"}, "arm", "is not an arm"),
        ({"model_version": None}, "arm", "is given without `model_version`"),
        ({"model_version": "support"}, "model_version", "'support' is not a model version id"),
        ({"model_version": "support:v0"}, "model_version", "is not a model version id"),
        ({"model_version": 3}, "model_version", "must be a string"),
        ({"model_version": "m" * 300 + ":v1"}, "model_version", "identifiers hold at most 256"),
    ],
)
def test_a_bad_version_or_arm_is_refused_naming_the_field_and_the_fix(store, fields, field, says):
    with pytest.raises(feedback.IngestRejected) as caught:
        feedback.ingest_batch(store, [outcome(1, **fields)], actor=cli_actor())
    [error] = caught.value.report.errors
    assert error.field == field and says in error.message and error.hint
    assert store.scalar("SELECT count(*) FROM feedback") == 0


def test_a_version_need_not_be_registered_and_is_stored_as_given(store):
    feedback.ingest_batch(store, [outcome(1, model_version="not-yet-registered:v12")], actor=cli_actor())
    assert stored(store)[0]["model_version"] == "not-yet-registered:v12"


def test_a_version_id_carrying_a_secret_is_redacted_like_any_identifier(store):
    report = feedback.ingest_batch(store, [outcome(1, model_version="sk-abc123def456ghi789jkl:v1")], actor=cli_actor())
    assert stored(store)[0]["model_version"] == "[API_KEY]:v1" and report.redactions.by_type == {"API_KEY": 1}


def test_jsonl_and_csv_files_carry_the_version_and_arm_and_old_events_have_neither(store, tmp_path):
    feedback.ingest_file(
        store, write_jsonl(tmp_path / "f.jsonl", [outcome(1), outcome(2, arm="stable")]), actor=cli_actor()
    )
    csv = tmp_path / "f.csv"
    csv.write_text(
        "id,agent,prompt,output,model_version,arm\r\n"
        "csv-1,support,Hi,Hello,support:v3,stable\r\n"
        "csv-2,support,Hi again,Hello again,,\r\n",
        encoding="utf-8",
    )
    feedback.ingest_file(store, csv, actor=cli_actor())
    found = {r["id"]: (r["model_version"], r["arm"]) for r in stored(store)}
    assert found == {
        "conv-1": ("support:v2", "canary"), "conv-2": ("support:v2", "stable"),
        "csv-1": ("support:v3", "stable"), "csv-2": (None, None),
    }  # fmt: skip
    assert store.scalar("SELECT metadata FROM feedback WHERE id = 'csv-1'") == "{}"  # columns, not metadata


def test_an_arm_outside_stable_and_canary_rejects_a_csv_file_naming_line_and_field(store, tmp_path):
    csv = tmp_path / "f.csv"
    csv.write_text("agent,prompt,output,model_version,arm\nsupport,Hi,Hello,support:v3,treatment\n", encoding="utf-8")
    with pytest.raises(feedback.IngestRejected) as caught:
        feedback.ingest_file(store, csv, actor=cli_actor())
    assert "line 2, field `arm`" in caught.value.message and "stable or canary" in caught.value.message


def test_the_migration_adds_empty_columns_to_events_stored_before_it(tmp_path):
    old = open_store(tmp_path / "old.db", migrate=False)
    migrate_store(old, target=11)
    with old.write() as db:
        db.execute(
            "INSERT INTO feedback (id, content_hash, agent, input_messages, ai_output, created_at, ingested_at)"
            " VALUES ('old-1', 'h', 'support', '[]', 'draft', '2026-01-01', '2026-01-01')"
        )
    migrate_store(old)
    assert old.query("SELECT id, model_version, arm FROM feedback") == [
        {"id": "old-1", "model_version": None, "arm": None}
    ]
    plan = old.query("EXPLAIN QUERY PLAN SELECT count(*) FROM feedback WHERE model_version = 'a:v1' AND arm = 'canary'")
    assert any("feedback_outcomes" in row["detail"] for row in plan)
    old.close()


# POST /v1/feedback ------------------------------------------------------------------------------------


def test_a_batch_from_an_application_is_stored_with_its_version_and_arm_redacted_and_audited(client, store):
    events = [outcome(1, output="Mail ann@example.com for order 1."), outcome(2, arm="stable")]
    reply = post(client, {"events": events})
    assert reply.status_code == 200
    body = reply.json()
    assert (body["received"], body["stored"], body["duplicates"], body["rejected"], body["errors"]) == (2, 2, 0, 0, [])
    assert body["redactions"]["by_type"] == {"EMAIL": 1}
    rows = stored(store)
    assert [(r["id"], r["model_version"], r["arm"]) for r in rows] == [
        ("conv-1", "support:v2", "canary"), ("conv-2", "support:v2", "stable"),
    ]  # fmt: skip
    assert rows[0]["ai_output"] == "Mail [EMAIL] for order 1."
    audit = store.query("SELECT actor, face, command, outcome, args FROM audit_log")
    assert [(a["actor"], a["face"], a["command"], a["outcome"]) for a in audit] == [("shop", "app", "ingest", "ok")]
    assert json.loads(audit[0]["args"])["source"] == URL


def test_a_bare_list_is_a_batch_too(client, store):
    assert post(client, [outcome(1)]).json()["stored"] == 1


def test_a_retried_batch_stores_nothing_twice(client, store):
    events = [outcome(i) for i in range(5)]
    assert post(client, {"events": events}).json()["stored"] == 5
    again = post(client, {"events": events}).json()
    assert (again["stored"], again["duplicates"]) == (0, 5)
    assert store.scalar("SELECT count(*) FROM feedback") == 5


def test_a_bad_event_rejects_the_batch_naming_its_index_and_field_and_nothing_is_stored(client, store):
    events = [outcome(0), outcome(1), outcome(2, arm="treatment")]
    reply = post(client, {"events": events})
    assert reply.status_code == 400
    body = reply.json()
    assert body["error"] == "IngestRejected"
    assert "nothing was stored" in body["message"] and "events[2], field `arm`" in body["message"]
    assert "stable or canary" in body["message"] and "?skip_invalid=true" in body["hint"]
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(2, "arm")]
    assert store.scalar("SELECT count(*) FROM feedback") == 0
    [row] = store.query("SELECT actor, face, outcome FROM audit_log")
    assert row == {"actor": "shop", "face": "app", "outcome": "error"}


def test_an_id_already_stored_with_other_content_is_refused_naming_it(client, store):
    post(client, [outcome(1)])
    reply = post(client, [outcome(1, rating=2)])
    assert reply.status_code == 400
    assert "field `id`" in reply.json()["message"] and "'conv-1' was already ingested" in reply.json()["message"]
    assert store.scalar("SELECT rating FROM feedback WHERE id = 'conv-1'") == 5


def test_skip_invalid_stores_the_good_events_and_lists_the_bad(client, store):
    events = [outcome(0), "not an event", outcome(2, model_version="v2"), outcome(3), {"agent": "support"}]
    reply = post(client, {"events": events}, query="?skip_invalid=true")
    assert reply.status_code == 200
    body = reply.json()
    assert (body["received"], body["stored"], body["rejected"]) == (5, 2, 3)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, None), (2, "model_version"), (4, "messages")]
    assert all(e["message"] and e["hint"] for e in body["errors"])
    assert [r["id"] for r in stored(store)] == ["conv-0", "conv-3"]


@pytest.mark.parametrize("token", [None, "wrong-token", MCP_TOKEN])
def test_without_an_application_token_the_answer_is_401_as_for_resolve(client, store, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = post(client, [outcome(1)], headers=headers)
    assert reply.status_code == 401 and reply.headers["www-authenticate"].startswith("Bearer")
    assert "FINETUNE_APP_TOKENS" in reply.json()["message"] and "MCP tokens do not work here" in reply.json()["message"]
    assert store.scalar("SELECT count(*) FROM feedback") == 0


def test_without_any_application_token_configured_the_answer_says_how_to_configure_one(tmp_path, store):
    reply = post(app_client(tmp_path, store, app_tokens=None), [outcome(1)])
    assert reply.status_code == 401 and "FINETUNE_APP_TOKENS=NAME:TOKEN" in reply.json()["message"]


def test_an_application_a_role_list_lowers_to_viewer_is_refused_with_403(tmp_path, store):
    reply = post(app_client(tmp_path, store, viewers="app:shop"), [outcome(1)])
    assert reply.status_code == 403 and "app:shop" in reply.json()["message"]
    assert "FINETUNE_OPERATORS" in reply.json()["hint"]
    assert store.scalar("SELECT count(*) FROM feedback") == 0


def test_the_application_call_declares_its_operation():
    assert invoke.operation_of(Face.APP, feedback_api.CALL) is Operation.INGEST


def test_more_events_than_a_batch_takes_is_413_naming_the_limit(client, store):
    reply = post(client, {"events": [outcome(i) for i in range(feedback.MAX_OUTCOMES + 1)]})
    assert reply.status_code == 413 and reply.json()["error"] == "TooManyEvents"
    assert "1,001 events" in reply.json()["message"] and "batches of at most 1,000" in reply.json()["hint"]
    assert store.scalar("SELECT count(*) FROM feedback") == 0


def test_a_body_over_the_byte_cap_is_413_even_without_a_content_length(client, store):
    chunk = b" " * 2**20

    def body():
        yield b"["
        for _ in range(9):
            yield chunk
        yield b"]"

    reply = client.post(URL, content=body(), headers={**AUTH, "Content-Type": "application/json"})
    assert reply.status_code == 413 and "8,388,608 bytes" in reply.json()["message"]


def test_a_declared_oversized_body_is_refused_before_any_of_it_is_read(tmp_path, store):
    from bot.serve import build_app

    app = build_app(svc(store, make_settings(tmp_path, app_tokens=f"shop:{APP_TOKEN}")))
    sent: list[dict[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        raise AssertionError("the body was read")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    headers = [(b"authorization", AUTH["Authorization"].encode()), (b"content-length", b"9999999999")]
    scope: dict[str, Any] = {
        "type": "http", "method": "POST", "path": URL, "raw_path": URL.encode(), "query_string": b"",
        "headers": headers, "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1), "root_path": "",
    }  # fmt: skip

    async def request() -> None:
        await app(scope, receive, send)

    anyio.run(request)
    assert sent[0]["status"] == 413 and b"declares 9,999,999,999 bytes" in sent[1]["body"]


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nests arrays or objects too deeply"),
        (b'{"events": [{"agent": "\xff\xfe"}]}', "not UTF-8 text (invalid byte at offset 23)"),
        (b'{"events": [', "the body is not JSON"),
        (b"", "the body is not JSON"),
        (b'"events"', "`events` must be a list"),
        (b'{"events": {"agent": "support"}}', "`events` must be a list"),
        (b'{"events": [], "skip_invalid": true}', "unknown key 'skip_invalid'"),
        (b'{"events": [' + b"1" * 5000 + b"]}", "the body is not JSON"),
    ],
)
def test_hostile_bodies_are_answered_400_with_a_message(client, store, raw, says):
    reply = client.post(URL, content=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert reply.status_code == 400 and says in reply.json()["message"] and reply.json()["hint"]
    assert store.scalar("SELECT count(*) FROM feedback") == 0


@pytest.mark.parametrize(
    ("events", "field", "says"),
    [
        ([outcome(0, output="x" * 1_000_001)], "output", "1,000,001 characters long"),
        ([outcome(0, tags="t" * 300)], "tags[0]", "identifiers hold at most 256"),
        ([outcome(0, context=nested(40))], "context", "levels deep"),
        ([outcome(0, rating=[5])], "rating", "is not a rating"),
        ([outcome(0, agent=7)], "agent", "must be a string"),
        ([outcome(0, latency_ms=2**70)], "latency_ms", "bits"),
        ([7], None, "an event must be a JSON object"),
    ],
)
def test_events_of_the_wrong_type_or_size_are_named_by_index_and_field(client, store, events, field, says):
    reply = post(client, {"events": [outcome(9), *events]})
    assert reply.status_code == 400
    [error] = reply.json()["errors"]
    assert (
        error["index"] == 1 and (error["field"] or "").startswith(field or "") and bool(error["field"]) == bool(field)
    )
    assert says in error["message"]
    assert store.scalar("SELECT count(*) FROM feedback") == 0


def test_a_bad_skip_invalid_is_400_naming_it(client):
    reply = post(client, [outcome(1)], query="?skip_invalid=maybe")
    assert reply.status_code == 400 and "`skip_invalid`" in reply.json()["message"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
_EVENT = st.fixed_dictionaries(
    {"agent": _JSON, "prompt": _JSON, "output": _JSON},
    optional={"model_version": _JSON, "arm": _JSON, "rating": _JSON, "id": _JSON, "created_at": _JSON, "x": _JSON},
)


@hypothesis_settings(
    max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=_JSON | st.lists(_EVENT | _JSON, max_size=4) | st.fixed_dictionaries({"events": st.lists(_EVENT, max_size=4)}),
    skip=st.sampled_from(["", "?skip_invalid=true"]),
)
def test_any_json_body_is_answered_with_a_message_never_a_server_error(client, body, skip):
    reply = client.post(
        URL + skip, content=json.dumps(body).encode(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert reply.status_code in (200, 400), reply.text
    answer = reply.json()
    assert ("stored" in answer) if reply.status_code == 200 else (answer["message"] and answer["hint"])


@hypothesis_settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=200))
def test_any_bytes_are_answered_with_a_message_never_a_server_error(client, raw):
    reply = client.post(URL, content=raw, headers=AUTH)
    assert reply.status_code in (200, 400) and ("stored" in reply.json() or reply.json()["message"])


# Never on the event loop, never failed by another writer ----------------------------------------------


def test_storing_runs_off_the_event_loop_so_other_requests_are_answered_meanwhile(tmp_path, store, monkeypatch):
    from bot.serve import build_app

    register(store)
    app = build_app(svc(store, make_settings(tmp_path, app_tokens=f"shop:{APP_TOKEN}")))
    entered, release = threading.Event(), threading.Event()
    held: list[bool] = []
    original = feedback.record_outcomes

    def slow(*args: Any, **kwargs: Any) -> feedback.IngestReport:
        entered.set()
        held.append(release.wait(timeout=10))
        return original(*args, **kwargs)

    monkeypatch.setattr(feedback, "record_outcomes", slow)

    async def scenario() -> tuple[httpx.Response, httpx.Response, bool]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            posting = asyncio.create_task(http.post(URL, json=[outcome(1)], headers=AUTH))
            while not entered.is_set():
                await asyncio.sleep(0.01)
            resolved = await http.get(
                "/v1/models/support/resolve", params={"key": "k", "alias": "candidate"}, headers=AUTH
            )
            answered_meanwhile = not release.is_set()
            release.set()
            return await posting, resolved, answered_meanwhile

    posted, resolved, answered_meanwhile = asyncio.run(scenario())
    assert held == [True] and answered_meanwhile
    assert resolved.status_code == 200 and posted.status_code == 200 and posted.json()["stored"] == 1


def test_a_long_ingest_elsewhere_does_not_make_a_batch_fail(client, store, settings):
    staged, finish = threading.Event(), threading.Event()
    done: list[feedback.IngestReport] = []

    def long_file():  # a large file being read: its first events are staged, the rest still to come
        yield from ((i, outcome(i, id=f"file-{i}", output=f"From the file: {i}")) for i in range(1, 51))
        staged.set()
        finish.wait(timeout=10)
        yield 51, outcome(51, id="file-51", output="From the file: 51")

    other = open_store(settings.db_path)
    worker = threading.Thread(
        target=lambda: done.append(feedback.ingest(other, long_file(), actor=cli_actor(), source="big.jsonl"))
    )
    worker.start()
    try:
        assert staged.wait(timeout=10)
        reply = post(client, [outcome(1)])
        assert reply.status_code == 200 and reply.json()["stored"] == 1
    finally:
        finish.set()
        worker.join(timeout=30)
        other.close()
    assert done[0].ingested == 51 and store.scalar("SELECT count(*) FROM feedback") == 52


def test_a_database_kept_busy_by_another_writer_is_503_with_retry_after_and_the_retry_stores_it(
    client, store, settings, monkeypatch
):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 300)  # the request's worker thread connects afresh
    other = sqlite3.connect(settings.db_path, timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        busy = post(client, [outcome(1)])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert busy.status_code == 503 and busy.headers["retry-after"] == str(feedback_api.RETRY_AFTER_SECONDS)
    assert "nothing was stored" in busy.json()["message"] and "again" in busy.json()["hint"]
    assert store.scalar("SELECT count(*) FROM feedback") == 0
    assert post(client, [outcome(1)]).json()["stored"] == 1


# MCP record_outcomes --------------------------------------------------------------------------------------


def mcp_call(services, *calls: tuple[str, dict[str, Any]]):
    async def go():
        async with Client(build_server(services)) as mcp:
            return await mcp.list_tools(), [await mcp.call_tool(name, args) for name, args in calls]

    return anyio.run(go)


def test_record_outcomes_stores_a_batch_with_the_same_semantics(settings, store):
    events = [outcome(1, output="Call +1 415 555 0100."), outcome(2, arm="stable")]
    tools, [first, again] = mcp_call(
        svc(store, settings), ("record_outcomes", {"events": events}), ("record_outcomes", {"events": events})
    )
    [tool] = [t for t in tools.tools if t.name == "record_outcomes"]
    assert "model_version" in tool.description and "1000" in tool.description
    assert tool.input_schema["properties"]["events"]["maxItems"] == feedback.MAX_OUTCOMES
    assert not first.is_error and first.structured_content["ingested"] == 2
    assert again.structured_content["duplicates"] == 2
    assert [(r["model_version"], r["arm"]) for r in stored(store)] == [
        ("support:v2", "canary"),
        ("support:v2", "stable"),
    ]
    assert "[PHONE]" in stored(store)[0]["ai_output"]
    faces = store.query("SELECT face, command FROM audit_log WHERE outcome = 'ok'")
    assert faces == [{"face": "mcp", "command": "ingest"}, {"face": "mcp", "command": "ingest"}]


def test_record_outcomes_names_a_bad_event_and_refuses_strays_and_oversized_batches(settings, store):
    _, [bad, skipped, stray, too_many] = mcp_call(
        svc(store, settings),
        ("record_outcomes", {"events": [outcome(1), outcome(2, arm="blue")]}),
        ("record_outcomes", {"events": [outcome(1), outcome(2, arm="blue")], "skip_invalid": True}),
        ("record_outcomes", {"events": [outcome(3)], "field_map": {"output": "draft"}}),
        ("record_outcomes", {"events": [outcome(i) for i in range(feedback.MAX_OUTCOMES + 1)]}),
    )
    text = bad.content[0].text
    assert bad.is_error and "event 2, field `arm`" in text and "skip_invalid=true" in text and "--" not in text
    assert not skipped.is_error and skipped.structured_content["skipped"] == 1
    assert skipped.structured_content["errors"][0]["field"] == "arm"
    assert stray.is_error and "unknown argument `field_map` for record_outcomes" in stray.content[0].text
    assert too_many.is_error and "argument `events` of record_outcomes" in too_many.content[0].text
    assert [r["id"] for r in stored(store)] == ["conv-1"]


def test_more_outcomes_than_a_batch_takes_are_refused_by_the_core_too(store):
    with pytest.raises(feedback.TooManyEvents, match="a batch takes at most 1,000"):
        feedback.record_outcomes(store, [outcome(1)] * 1001, actor=cli_actor(), source="test")


# A real serve --------------------------------------------------------------------------------------------


def test_a_real_serve_takes_feedback_from_an_application(start_serve, settings, store):
    server = start_serve(settings, FINETUNE_APP_TOKENS=f"shop:{APP_TOKEN}")
    body = json.dumps({"events": [outcome(1, output="Write to ann@example.com.")]}).encode()
    request = urllib.request.Request(
        server.url + URL, data=body, headers={**AUTH, "Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200 and json.loads(response.read())["stored"] == 1
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(server.url + URL, data=body, method="POST"), timeout=10)
    assert refused.value.code == 401
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", URL)
    connection.putheader("Authorization", AUTH["Authorization"])
    connection.putheader("Content-Length", str(64 * 2**20))
    connection.endheaders()  # and never send the body: the answer comes anyway
    too_large = connection.getresponse()
    assert too_large.status == 413 and b"declares" in too_large.read()
    connection.close()
    wait_until(lambda: store.scalar("SELECT count(*) FROM feedback") == 1, what="the stored event")
    assert stored(store)[0]["ai_output"] == "Write to [EMAIL]." and stored(store)[0]["arm"] == "canary"
    assert store.query("SELECT actor, face FROM audit_log WHERE command = 'ingest'") == [
        {"actor": "shop", "face": "app"}
    ]
