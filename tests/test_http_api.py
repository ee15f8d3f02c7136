"""The application API under serve: GET /v1/models/{name}/resolve with application tokens, ETags and clear errors."""

from __future__ import annotations

import sqlite3
import time
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.testclient import TestClient

from core import registry
from core.platform.actors import SCHEDULER, Actor
from core.platform.timeutil import iso
from core.services import Services
from core.vocabulary import Face, Role
from tests.conftest import MCP_TOKEN, make_settings, svc

APP_TOKEN = "test-app-token-abcdefghijklmnop"
ANN = Actor("ann", Face.CLI, role=Role.OPERATOR)
URL = "/v1/models/support/resolve"


def texts(**sizes: int) -> st.SearchStrategy[str]:
    """Any text a URL can carry (lone surrogates are not text and cannot be percent-encoded)."""
    return st.text(alphabet=st.characters(exclude_categories=["Cs"]), **sizes)


def register(store, name: str = "support") -> None:
    with store.write():
        for n in (1, 2):
            registry.register_version(
                store, name=name, provider="openai", provider_model_id=f"ft:{name}:{n}", job_id=None,
                dataset_version_id=None, base_model="gpt-4o-mini", metrics={}, cost_usd=None, actor=SCHEDULER,
                reason="trained", now=iso(),
            )  # fmt: skip


def client_for(tmp_path, store, **settings) -> tuple[TestClient, Services]:
    from bot.serve import build_app

    services = svc(store, make_settings(tmp_path, **settings))
    return TestClient(build_app(services)), services


@pytest.fixture
def app(tmp_path, store):
    register(store)
    client, services = client_for(tmp_path, store, app_tokens=f"shop:{APP_TOKEN}", mcp_token=MCP_TOKEN)
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging")
    return client, services


def get(client: TestClient, url: str = URL, *, token: str | None = APP_TOKEN, **params: str):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(url, params=params or {"key": "user-42", "alias": "staging"}, headers=headers)


def test_resolve_answers_the_version_to_call_with_an_etag_and_a_short_max_age(app):
    client, _ = app
    reply = get(client)
    assert reply.status_code == 200
    assert reply.json() == {
        "model": "support", "alias": "staging", "version": "support:v1", "provider": "openai",
        "provider_model_id": "ft:support:1", "arm": "stable",
    }  # fmt: skip
    assert reply.headers["cache-control"] == "max-age=5" and reply.headers["etag"].startswith('"')


def test_the_same_key_gets_the_same_version_and_a_canary_reaches_some_keys(app):
    client, services = app
    registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging", canary_share=50)
    first = [get(client, key=f"user-{i}", alias="staging").json() for i in range(30)]
    again = [get(client, key=f"user-{i}", alias="staging").json() for i in range(30)]
    assert first == again and {a["arm"] for a in first} == {"stable", "canary"}


def test_if_none_match_is_answered_304_until_the_alias_moves(app):
    client, services = app
    etag = get(client).headers["etag"]
    unchanged = client.get(
        URL, params={"key": "user-42", "alias": "staging"},
        headers={"Authorization": f"Bearer {APP_TOKEN}", "If-None-Match": f'W/"other", {etag}'},
    )  # fmt: skip
    assert unchanged.status_code == 304 and unchanged.headers["etag"] == etag and unchanged.content == b""
    registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging")
    moved = client.get(
        URL, params={"key": "user-42", "alias": "staging"},
        headers={"Authorization": f"Bearer {APP_TOKEN}", "If-None-Match": etag},
    )  # fmt: skip
    assert moved.status_code == 200 and moved.json()["version"] == "support:v2" and moved.headers["etag"] != etag


@pytest.mark.parametrize("token", [None, "wrong-token", MCP_TOKEN])
def test_without_an_application_token_the_answer_is_401(app, token):
    client, _ = app
    reply = get(client, token=token)
    assert reply.status_code == 401 and "FINETUNE_APP_TOKENS" in reply.json()["message"]
    assert reply.headers["www-authenticate"].startswith("Bearer")


def test_an_application_token_does_not_open_mcp(app):
    client, _ = app
    reply = client.post("/mcp", json={}, headers={"Authorization": f"Bearer {APP_TOKEN}"})
    assert reply.status_code == 401


def test_without_any_application_token_configured_the_endpoint_says_how_to_configure_one(tmp_path, store):
    register(store)
    client, _ = client_for(tmp_path, store)
    reply = get(client, token="anything")
    assert reply.status_code == 401
    assert "no application token is configured" in reply.json()["message"]
    assert "FINETUNE_APP_TOKENS=NAME:TOKEN" in reply.json()["message"]


def test_an_unknown_model_is_404_naming_it(app):
    client, _ = app
    reply = get(client, "/v1/models/nope/resolve")
    assert reply.status_code == 404
    assert reply.json()["model"] == "nope" and "no registered model 'nope'" in reply.json()["message"]
    unknown_alias = get(client, key="k", alias="gone")
    assert unknown_alias.status_code == 404 and unknown_alias.json()["alias"] == "gone"


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"alias": "staging"}, "`key` is missing or empty"),
        ({"key": "", "alias": "staging"}, "`key` is missing or empty"),
        ({"key": "k" * 201, "alias": "staging"}, "`key` is 201 characters long"),
        ({"key": "k", "alias": ""}, "`alias` must be"),
    ],
)
def test_a_bad_key_or_alias_is_400_naming_it(app, params, says):
    client, _ = app
    reply = client.get(URL, params=params, headers={"Authorization": f"Bearer {APP_TOKEN}"})
    assert reply.status_code == 400 and says in reply.json()["message"] and reply.json()["hint"]


def test_an_oversized_model_name_is_400(app):
    client, _ = app
    reply = get(client, f"/v1/models/{'m' * 500}/resolve")
    assert reply.status_code == 400 and "at most 200" in reply.json()["message"]


@hypothesis_settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=texts(min_size=1, max_size=300).filter(lambda n: "/" not in n and n not in (".", "..")),  # else another path
    key=texts(max_size=300),
    alias=texts(max_size=50),
)
def test_hostile_input_is_answered_never_a_server_error(app, name, key, alias):
    client, _ = app
    path = f"/v1/models/{quote(name, safe='')}/resolve"
    reply = client.get(path, params={"key": key, "alias": alias}, headers={"Authorization": f"Bearer {APP_TOKEN}"})
    assert reply.status_code in (200, 400, 404)
    assert "message" in reply.json() or "version" in reply.json()


@pytest.mark.parametrize("query", ["key=%ED%A0%80", "key=%FF%FE&alias=%00", "key=a&key=b&alias=staging"])
def test_bytes_that_are_not_text_are_answered_too(app, query):
    client, _ = app
    reply = client.get(f"/v1/models/%ED%A0%80%FF/resolve?{query}", headers={"Authorization": f"Bearer {APP_TOKEN}"})
    assert reply.status_code == 404 and reply.json()["error"] == "NotFound"


def test_resolution_never_waits_for_a_writer_even_after_an_alias_move(app, settings):
    """Resolve runs on the event loop: a write transaction held by another process must not stall it."""
    client, services = app
    assert get(client).status_code == 200  # cached
    other = sqlite3.connect(settings.db_path, timeout=0)
    try:
        registry.request_deploy(services, actor=ANN, name="support", version=2, alias="beta")  # a move
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock from here on
        started = time.monotonic()
        found = get(client, key="user-42", alias="beta")  # the cache is reread (the move), the lock still held
        assert found.status_code == 200 and found.json()["version"] == "support:v2"
        assert time.monotonic() - started < 1.0
    finally:
        other.rollback()
        other.close()


def test_a_malformed_app_token_list_is_refused_naming_the_setting(tmp_path):
    with pytest.raises(ValidationError, match="app_tokens|FINETUNE_APP_TOKENS") as caught:
        make_settings(tmp_path, app_tokens="no-colon-here")
    assert "NAME:TOKEN" in str(caught.value)
