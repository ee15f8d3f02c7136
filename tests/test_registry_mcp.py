"""The registry over MCP: agents list models, resolve callers and request alias moves; approvers decide them."""

from __future__ import annotations

import anyio
import pytest
from mcp import Client

from core import actions, registry
from core.errors import PermissionDenied
from core.platform.actors import SCHEDULER, Actor
from core.platform.timeutil import iso
from core.vocabulary import Face, Role
from mcp_server.server import build_server
from tests.conftest import make_settings, svc

ANN = Actor("ann", Face.CLI, role=Role.OPERATOR)


def session(services, *calls: tuple[str, dict]):
    async def go():
        async with Client(build_server(services)) as client:
            tools = (await client.list_tools()).tools
            return tools, [await client.call_tool(name, args) for name, args in calls]

    return anyio.run(go)


def register(store, name: str = "support", count: int = 2) -> None:
    with store.write():
        for n in range(1, count + 1):
            registry.register_version(
                store, name=name, provider="openai", provider_model_id=f"ft:{name}:{n}", job_id=None,
                dataset_version_id=None, base_model="gpt-4o-mini", metrics={"loss": 0.5}, cost_usd=1.0,
                actor=SCHEDULER, reason="trained", now=iso(),
            )  # fmt: skip


@pytest.fixture
def services(settings, store):
    services = svc(store, settings)
    register(store)
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging")
    return services


def data(result) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def production(store) -> list[dict]:
    return store.query("SELECT model_version_id FROM model_aliases WHERE alias = 'production'")


def test_an_agent_asking_for_production_gets_the_approval_it_waits_on_and_nothing_moves(services, store):
    args = {"name": "support", "version": "v2", "reason": "better on refunds"}
    _, [asked, listed] = session(services, ("request_deployment", args), ("list_approvals", {}))
    change = data(asked)
    assert change["applied"] is False and change["approval"]["status"] == "pending"
    assert change["approval"]["action"] == "deploy" and change["approval"]["requested_via"] == "mcp"
    assert [a["id"] for a in data(listed)["approvals"]] == [change["approval"]["id"]]
    assert production(store) == []
    _, [shown] = session(services, ("get_approval", {"approval_id": change["approval"]["id"]}))
    assert data(shown)["subject_id"] == "support@production"


def test_an_agent_cannot_decide_the_approval_whatever_its_role(services, store):
    _, [asked] = session(services, ("request_deployment", {"name": "support", "version": 2}))
    approval_id = data(asked)["approval"]["id"]
    tools, _ = session(services)
    assert not {tool.name for tool in tools} & {"approve", "reject", "decide_approval", "approve_deployment"}
    agent = Actor("laptop", Face.MCP, role=Role.ADMIN)
    with pytest.raises(PermissionDenied, match="never decide"):
        actions.decide(services, approval_id=approval_id, actor=agent, approve=True)
    assert production(store) == []
    for approver in (Actor("U1", Face.SLACK, role=Role.APPROVER), Actor("U2", Face.SLACK, role=Role.APPROVER)):
        actions.decide(services, approval_id=approval_id, actor=approver, approve=True)  # production needs two
    assert production(store) == [{"model_version_id": "support:v2"}]


def test_an_alias_that_is_not_protected_moves_at_once_and_rolls_back(services, store):
    _, [moved, back] = session(
        services,
        ("request_deployment", {"name": "support", "version": "support:v2", "alias": "staging"}),
        ("request_rollback", {"name": "support", "alias": "staging"}),
    )
    assert data(moved)["applied"] is True and data(moved)["alias"]["version_id"] == "support:v2"
    assert data(back)["applied"] is True and data(back)["alias"]["version_id"] == "support:v1"


def test_resolve_model_answers_the_same_version_for_the_same_key(services):
    registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging", canary_share=50)
    calls = [("resolve_model", {"name": "support", "key": f"user-{i}", "alias": "staging"}) for i in range(20)]
    _, first = session(services, *calls)
    _, again = session(services, *calls)
    answers = [data(result) for result in first]
    assert answers == [data(result) for result in again]
    assert {a["arm"] for a in answers} == {"stable", "canary"}  # 20 keys at 50%: both arms, each key sticky
    for (_, args), answer in zip(calls, answers, strict=True):
        expected = registry.resolve_model(services.store, "support", args["key"], "staging")
        assert answer["version"] == expected.version_id and answer["provider_model_id"] == expected.provider_model_id


def test_list_get_and_history_show_versions_aliases_and_moves(services):
    _, [listed, shown, history, before] = session(
        services,
        ("list_models", {}),
        ("get_model", {"name": "support"}),
        ("model_history", {"name": "support"}),
        ("model_history", {"name": "support", "at": "2000-01-01T00:00:00Z"}),
    )
    [model] = data(listed)["models"]
    assert model["name"] == "support" and {a["alias"] for a in model["aliases"]} == {"candidate", "staging"}
    assert [v["id"] for v in data(shown)["versions"]] == ["support:v1", "support:v2"]
    assert {a["alias"]: a["version_id"] for a in data(history)["aliases"]}["staging"] == "support:v1"
    assert data(before)["aliases"] == [] and data(before)["moves"] == []


@pytest.mark.parametrize(
    ("tool", "args", "says"),
    [
        ("get_model", {"name": "nope"}, "no registered model 'nope'"),
        ("resolve_model", {"name": "support", "key": ""}, "argument `key` of resolve_model"),
        ("resolve_model", {"name": "support", "key": "k", "alias": "gone"}, "has no alias 'gone'"),
        ("request_deployment", {"name": "support", "version": "v9"}, "support has no version 'support:v9'"),
        ("request_deployment", {"name": "support", "version": 2, "canary_share": 101}, "argument `canary_share`"),
        ("model_history", {"name": "support", "at": "yesterday"}, "`at` must be an ISO-8601 time"),
        ("get_approval", {"approval_id": "ap_missing"}, "no approval 'ap_missing'"),
        ("request_rollback", {"name": "support", "version": 1}, "unknown argument `version` for request_rollback"),
    ],
)
def test_bad_requests_are_answered_with_the_argument_and_the_fix(services, tool, args, says):
    _, [result] = session(services, (tool, args))
    assert result.is_error and says in result.content[0].text


def test_a_viewer_agent_may_read_but_not_request(tmp_path, store):
    services = svc(store, make_settings(tmp_path, cli_role="viewer"))
    register(store)
    _, [listed, asked] = session(
        services, ("list_models", {}), ("request_deployment", {"name": "support", "version": 1, "alias": "staging"})
    )
    assert not listed.is_error
    assert asked.is_error and "may not move model aliases" in asked.content[0].text
