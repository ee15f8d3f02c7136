"""Identities the caller cannot choose, people across faces, and four eyes between people."""

import anyio
import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mcp import Client, Implementation
from mcp.client.streamable_http import streamable_http_client
from starlette.testclient import TestClient

from bot.invoke import MCP_TOKEN_NAME_KEY, mcp_actor
from bot.serve import build_app
from core import actions
from core.errors import PermissionDenied
from core.platform.actors import os_user
from core.platform.identity import Identity, actor_for, parse_identities, parse_identity, parse_people, parse_tokens
from core.platform.store import Store, migrate_store, open_store
from core.vocabulary import Face, IdentityKind, Role
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, slash_body, svc, wait_until

MODEL = "gpt-4o-mini-2024-07-18"
AGENT_TOKEN = "agent-token-" + "a" * 40
WATCHER_TOKEN = "watcher-token-" + "w" * 40


# Parsing what the settings say ------------------------------------------------------------------------

slack_ids = st.from_regex(r"[UW][A-Z0-9]{1,12}", fullmatch=True)
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True).filter(lambda n: n != "anonymous")
identities = st.one_of(
    slack_ids.map(lambda i: f"slack:{i}"),
    st.from_regex(r"S[A-Z0-9]{1,12}", fullmatch=True).map(lambda i: f"slack-group:{i}"),
    names.map(lambda n: f"os:{n}"),
    names.map(lambda n: f"mcp:{n}"),
)


@given(identities)
def test_an_identity_reads_back_as_written(text):
    assert str(parse_identity(text)) == text


@given(slack_ids)
def test_a_bare_slack_id_is_a_slack_user(user):
    assert parse_identity(user) == Identity(IdentityKind.SLACK, user)


@given(st.text(max_size=60))
def test_any_text_is_an_identity_or_a_value_error_that_shows_the_forms(text):
    try:
        parse_identities(text)
    except ValueError as exc:
        assert "slack:" in str(exc) or "slack-group" in str(exc) or "identity" in str(exc)


@given(st.text(max_size=80))
def test_any_people_text_parses_or_says_what_is_wrong(text):
    try:
        people = parse_people(text)
    except ValueError:
        return
    owners = [identity for ids in people.values() for identity in ids]
    assert len(owners) == len(set(owners))  # nobody's identity is someone else's too


@given(st.text(max_size=80))
def test_token_errors_never_repeat_a_token(text):
    try:
        parse_tokens(text)
    except ValueError as exc:
        for entry in text.split(","):
            secret = entry.partition(":")[2].strip()
            if len(secret) > 3:
                assert secret not in str(exc)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("alice", "is not an identity"),
        ("email:a@b.c", "unknown kind"),
        ("slack:alice", "Slack user id starts with U or W"),
        ("os:two words", "no spaces"),
        ("mcp:anonymous", "reserved"),
    ],
)
def test_a_bad_identity_says_what_to_write(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_identity(text)


def test_people_link_identities_once():
    assert parse_people("alice=slack:U1,os:alice; bob=U2") == {
        "alice": [Identity(IdentityKind.SLACK, "U1"), Identity(IdentityKind.OS, "alice")],
        "bob": [Identity(IdentityKind.SLACK, "U2")],
    }
    with pytest.raises(ValueError, match="linked to both"):
        parse_people("alice=slack:U1;bob=slack:U1")
    with pytest.raises(ValueError, match="not one person's identity"):
        parse_people("team=slack-group:S1")


# Who the MCP caller is ----------------------------------------------------------------------------------


class FakeRequest:
    def __init__(self, scope):
        self.scope = scope


def test_an_mcp_caller_is_its_token_over_http_and_the_os_user_over_stdio(tmp_path):
    settings = make_settings(tmp_path, operators=["mcp:agent"], approvers=[f"os:{os_user()}"])
    over_stdio = mcp_actor(settings, None)
    assert (over_stdio.identity, over_stdio.role, over_stdio.face) == (f"os:{os_user()}", Role.APPROVER, Face.MCP)
    agent = mcp_actor(settings, FakeRequest({"type": "http", MCP_TOKEN_NAME_KEY: "agent"}))
    assert (agent.id, agent.identity, agent.role) == ("agent", "mcp:agent", Role.OPERATOR)
    unnamed = mcp_actor(settings, FakeRequest({"type": "http"}))
    assert (unnamed.identity, unnamed.role) == ("mcp:anonymous", Role.VIEWER)


# Four eyes between people, through the faces ------------------------------------------------------------


def slack_says(client, fake_slack, text, *, user_id, name):
    body = slash_body(text, user_id=user_id, response_url=fake_slack.response_url(name))
    assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
    [answer] = wait_until(lambda: fake_slack.responses(name), what=f"the answer to {text!r}")
    return str(answer["blocks"])


def test_a_launch_from_the_cli_cannot_be_approved_by_the_same_person_in_slack(
    tmp_path, cli, monkeypatch, fake, version, store, fake_slack
):
    people = f"alice=slack:UALICE,os:{os_user()};bob=slack:UBOB"
    for env, value in {"FINETUNE_PEOPLE": people, "FINETUNE_AUTO_APPROVE_USD": "0"}.items():
        monkeypatch.setenv(env, value)
    code, _, err = cli("launch", version.id, "openai", MODEL, "--json")
    assert code == 0, err
    approval_id = store.scalar("SELECT id FROM approvals")
    assert store.scalar("SELECT requested_by_identity FROM approvals") == f"os:{os_user()}"

    settings = make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url,
        people=people, approvers=["UALICE", "UBOB"],
    )  # fmt: skip
    with TestClient(build_app(svc(store, settings)), base_url="http://127.0.0.1") as client:
        refused = slack_says(client, fake_slack, f"approve {approval_id}", user_id="UALICE", name="alice")
        assert "four eyes" in refused and not fake.launches
        approved = slack_says(client, fake_slack, f"approve {approval_id}", user_id="UBOB", name="bob")
    assert "approved" in approved and len(fake.launches) == 1


def test_four_eyes_compares_people_in_the_core(tmp_path, store, fake, version):
    settings = make_settings(tmp_path, auto_approve_usd=0, people=f"alice=slack:UALICE,os:{os_user()}")
    alice_in_slack = actor_for(settings, Identity(IdentityKind.SLACK, "UALICE"), face=Face.SLACK)
    alice_at_terminal = actor_for(settings, Identity(IdentityKind.OS, os_user()), face=Face.CLI)
    assert alice_in_slack.person == alice_at_terminal.person == "alice"
    pending = actions_launch(store, settings, alice_at_terminal, version)
    approver_alice = actor_for(
        settings.model_copy(update={"approvers": ["slack:UALICE"]}), Identity(IdentityKind.SLACK, "UALICE"),
        face=Face.SLACK,
    )  # fmt: skip
    with pytest.raises(PermissionDenied, match="four eyes"):
        actions.decide(svc(store, settings), approval_id=pending, actor=approver_alice, approve=True)


def actions_launch(store, settings, actor, version) -> str:
    from core.training import jobs

    result = jobs.launch_job(svc(store, settings), dataset_version=version.id, provider="openai", base_model=MODEL,
                             actor=actor)  # fmt: skip
    assert result.approval is not None
    return result.approval.id


# MCP over HTTP: the token names the caller --------------------------------------------------------------


def mcp_over_http(url: str, token: str, steps, *, client_name: str):
    async def go():
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=15) as http_client:
            transport = streamable_http_client(f"{url}/mcp", http_client=http_client)
            async with Client(transport, client_info=Implementation(name=client_name, version="1")) as client:
                return await steps(client)

    return anyio.run(go)


def test_an_agent_over_http_is_its_token_whatever_name_it_declares(tmp_path, store, version, start_serve, fake):
    env = {
        "FINETUNE_MCP_TOKENS": f"agent:{AGENT_TOKEN},watcher:{WATCHER_TOKEN}",
        "FINETUNE_OPERATORS": "mcp:agent",
        "FINETUNE_APPROVERS": "UBOB,UCAROL",
        "FINETUNE_PEOPLE": "bob=slack:UBOB,mcp:agent",
        "FINETUNE_AUTO_APPROVE_USD": "0",
        "OPENAI_API_KEY": "sk-test-never-used",
    }
    settings = make_settings(tmp_path)
    server = start_serve(settings, **env)
    args = {"version": version.id, "provider": "openai", "base_model": MODEL}

    async def launch(client):
        return await client.call_tool("launch_job", args)

    launched = mcp_over_http(server.url, AGENT_TOKEN, launch, client_name="UCAROL")  # claims to be an approver
    assert not launched.is_error, launched.content
    approval = launched.structured_content["approval"]
    assert approval["requested_by"] == "agent" and approval["requested_by_identity"] == "mcp:agent"
    watched = mcp_over_http(server.url, WATCHER_TOKEN, launch, client_name="agent")
    assert watched.is_error and "mcp:watcher (viewer) may not launch" in watched.content[0].text
    actors = {
        row["actor"] for row in open_store(settings.db_path).query("SELECT actor FROM audit_log WHERE face='mcp'")
    }
    assert actors == {"agent", "watcher"}

    in_process = make_settings(tmp_path, approvers=["UBOB", "UCAROL"], people="bob=slack:UBOB,mcp:agent")
    services = svc(store, in_process)
    bob = actor_for(in_process, Identity(IdentityKind.SLACK, "UBOB"), face=Face.SLACK)
    with pytest.raises(PermissionDenied, match="four eyes"):  # bob's agent asked: bob may not approve
        actions.decide(services, approval_id=approval["id"], actor=bob, approve=True)
    carol = actor_for(in_process, Identity(IdentityKind.SLACK, "UCAROL"), face=Face.SLACK)
    assert actions.decide(services, approval_id=approval["id"], actor=carol, approve=True).status == "approved"
    assert len(fake.launches) == 1


# Rows written before identities were kept ---------------------------------------------------------------


def test_an_older_database_learns_who_asked_for_its_jobs_and_approvals(tmp_path):
    old = Store(tmp_path / "old.db")
    migrate_store(old, target=5)
    with old.write() as db:
        db.execute("INSERT INTO datasets (id, name, created_by, created_at) VALUES ('ds', 'support', 'x', 't')")
        db.execute(
            "INSERT INTO dataset_versions (id, dataset_id, version, split_seed, content_hash, created_by, created_at)"
            " VALUES ('support@1', 'ds', 1, 0, 'h', 'x', 't')"
        )
        for job_id, by in (("j1", "cli:alice"), ("j2", "slack:U1"), ("j3", "mcp:claude")):
            db.execute(
                "INSERT INTO jobs (id, provider, dataset_version_id, base_model, status, requested_by, created_at,"
                " updated_at) VALUES (?, 'openai', 'support@1', 'm', 'running', ?, 't', 't')",
                (job_id, by),
            )
        for approval_id, by, via in (("a1", "alice", "cli"), ("a2", "U1", "slack")):
            db.execute(
                "INSERT INTO approvals (id, action, status, requested_by, requested_via, created_at)"
                " VALUES (?, 'launch', 'pending', ?, ?, 't')",
                (approval_id, by, via),
            )
    old.close()
    upgraded = open_store(tmp_path / "old.db")
    jobs = dict(upgraded.db.execute("SELECT id, requested_by_identity FROM jobs ORDER BY id").fetchall())
    assert jobs == {"j1": "os:alice", "j2": "slack:U1", "j3": "mcp:claude"}
    approvals = dict(upgraded.db.execute("SELECT id, requested_by_identity FROM approvals ORDER BY id").fetchall())
    assert approvals == {"a1": "os:alice", "a2": "slack:U1"}
    assert upgraded.scalar("SELECT requested_by FROM jobs WHERE id = 'j1'") == "cli:alice"  # nothing is lost
