"""Who may do what: the one policy table, its contract with every command and tool, and its use by every face."""

import anyio
import click
import pytest
from mcp import Client

from bot import invoke
from bot.commands import ErrorResult, Outcome
from bot.commands.groups import SLACK, TERMINAL
from bot.slack.listeners.commands import run_slack_text
from core import actions
from core.errors import PermissionDenied
from core.platform import notify
from core.platform.actors import Actor, os_user
from core.platform.policy import POLICY, authorize, may
from core.services import build_services
from core.vocabulary import Face, Operation, Role, role_rank
from mcp_server.server import build_server
from tests.conftest import BOT_TOKEN, make_settings, svc


def command_paths(group: click.Group, path: tuple[str, ...] = ()) -> list[str]:
    found = []
    for name, command in group.commands.items():
        found.append(" ".join((*path, name)))
        if isinstance(command, click.Group):
            found += command_paths(command, (*path, name))
    return found


def tool_names(settings) -> list[str]:
    async def listing():
        async with Client(build_server(build_services(settings))) as client:
            return [tool.name for tool in (await client.list_tools()).tools]

    return anyio.run(listing)


def said(outcome: Outcome) -> str:
    """The message of a command that did not succeed."""
    assert isinstance(outcome.result, ErrorResult), outcome.result
    return outcome.result.message


# The table and its contract ----------------------------------------------------------------------------


def test_every_operation_has_a_rule():
    assert set(POLICY) == set(Operation), f"missing: {set(Operation) - set(POLICY)}"


def test_every_command_and_tool_declares_its_operation_and_nothing_else_does(settings):
    paths = set(command_paths(TERMINAL)) | set(command_paths(SLACK))
    assert paths - set(invoke.COMMANDS) == set(), "add these commands to bot.invoke.COMMANDS"
    assert set(invoke.COMMANDS) - paths == {"unknown"}, "bot.invoke.COMMANDS names commands that do not exist"
    tools = set(tool_names(settings))
    assert tools - set(invoke.TOOLS) == set(), "add these tools to bot.invoke.TOOLS"
    assert set(invoke.TOOLS) - tools == set(), "bot.invoke.TOOLS names tools that do not exist"


@pytest.mark.parametrize("operation", list(Operation))
@pytest.mark.parametrize("role", list(Role))
def test_a_role_may_run_exactly_the_operations_at_or_below_it(operation, role):
    actor = Actor(id="U1", face=Face.SLACK, role=role)
    allowed = role_rank(role) >= role_rank(POLICY[operation].least)
    assert may(actor, operation) is allowed
    if allowed:
        authorize(actor, operation)
    else:
        with pytest.raises(PermissionDenied) as caught:
            authorize(actor, operation)
        assert f"needs the {POLICY[operation].least} role" in caught.value.message


def test_agents_over_mcp_may_never_decide_whatever_their_role(store, settings):
    admin_agent = Actor(id="root-token", face=Face.MCP, role=Role.ADMIN)
    assert not may(admin_agent, Operation.DECIDE)
    with pytest.raises(PermissionDenied, match="never decide"):
        actions.decide(svc(store, settings), approval_id="ap_x", actor=admin_agent, approve=True)


@pytest.mark.parametrize(
    ("actor", "named"),
    [
        (Actor(id="U9", face=Face.SLACK), ["slack:U9", "FINETUNE_ADMINS"]),
        (Actor(id="alice", face=Face.CLI, role=Role.VIEWER), ["os:alice", "FINETUNE_ADMINS", "FINETUNE_CLI_ROLE"]),
        (Actor(id="laptop", face=Face.MCP), ["mcp:laptop", "FINETUNE_ADMINS"]),
    ],
)
def test_a_refusal_names_the_identity_and_the_setting_to_change(actor, named):
    with pytest.raises(PermissionDenied) as caught:
        authorize(actor, Operation.NOTIFY)
    assert "may not send notices" in caught.value.message
    for word in named:
        assert word in (caught.value.hint or "")


def test_the_core_checks_notices_whatever_face_calls_it(store):
    with pytest.raises(PermissionDenied):
        notify(store, actor=Actor(id="U1", face=Face.SLACK, role=Role.APPROVER), text="hello")
    assert store.scalar("SELECT count(*) FROM outbox") == 0


# Through the faces -------------------------------------------------------------------------------------


def test_unknown_slack_users_are_viewers_and_listed_ones_get_their_role(tmp_path, store):
    settings = make_settings(tmp_path, operators=["U2"], admins=["slack:U3"])
    services = svc(store, settings)
    assert run_slack_text(services, user_id="U1", text="status").ok
    refused = run_slack_text(services, user_id="U1", text="jobs cancel job_x")
    assert not refused.ok and "may not cancel jobs" in said(refused)
    assert "no job 'job_x'" in said(run_slack_text(services, user_id="U2", text="jobs cancel job_x"))
    assert not run_slack_text(services, user_id="U2", text='notify "hi"').ok
    assert run_slack_text(services, user_id="U3", text='notify "hi"').ok


def test_the_default_slack_role_can_be_raised(tmp_path, store):
    services = svc(store, make_settings(tmp_path, default_slack_role="operator"))
    assert "no job 'job_x'" in said(run_slack_text(services, user_id="U7", text="jobs cancel job_x"))


def test_a_subcommand_is_checked_as_itself_whatever_comes_before_it(tmp_path, store):
    services = svc(store, make_settings(tmp_path))
    outcome = run_slack_text(
        services, user_id="U1", text="jobs --json launch support@1 --provider openai --base-model m"
    )
    assert not outcome.ok and "may not launch fine-tuning jobs" in said(outcome)


def test_the_os_user_is_admin_by_default_and_settings_can_lower_them(cli, monkeypatch):
    assert cli("notify", "deploy at five")[0] == 0
    monkeypatch.setenv("FINETUNE_CLI_ROLE", "operator")
    code, _, err = cli("notify", "deploy at six")
    assert code == 1 and "may not send notices" in err and f"os:{os_user()}" in err
    monkeypatch.setenv("FINETUNE_CLI_ROLE", "admin")
    monkeypatch.setenv("FINETUNE_VIEWERS", f"os:{os_user()}")  # a list names them: it wins over the default
    code, _, err = cli("data", "build", "support")
    assert code == 1 and "may not build datasets" in err
    assert cli("status")[0] == 0


def test_a_command_without_an_operation_is_for_admins_only(monkeypatch, tmp_path, store):
    monkeypatch.delitem(invoke.COMMANDS, "status")
    services = svc(store, make_settings(tmp_path, admins=["U3"]))
    refused = run_slack_text(services, user_id="U1", text="status")
    assert not refused.ok and "no entry in the policy table" in said(refused)
    assert run_slack_text(services, user_id="U3", text="status").ok


def test_mcp_tools_are_checked_too(tmp_path, store):
    settings = make_settings(tmp_path, cli_role="viewer")  # the stdio / in-memory caller is the OS user

    async def steps():
        async with Client(build_server(svc(store, settings))) as client:
            status = await client.call_tool("get_status", {})
            build = await client.call_tool("build_dataset", {"name": "support"})
            return status, build

    status, build = anyio.run(steps)
    assert not status.is_error
    assert build.is_error and "may not build datasets" in build.content[0].text


# Slack user groups ------------------------------------------------------------------------------------


def group_settings(tmp_path, fake_slack, **extra):
    return make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_api_url=fake_slack.api_url, approvers=["slack-group:SAPPROVE"],
        operators=["slack-group:SOPS"], **extra,
    )  # fmt: skip


def test_a_slack_user_group_gives_its_members_a_role(tmp_path, store, fake_slack):
    fake_slack.usergroups = {"SAPPROVE": ["U5"], "SOPS": ["U6"]}
    services = svc(store, group_settings(tmp_path, fake_slack))
    approver = invoke.slack_actor(services.settings, "U5")
    operator = invoke.slack_actor(services.settings, "U6")
    outsider = invoke.slack_actor(services.settings, "U7")
    assert (approver.role, operator.role, outsider.role) == (Role.APPROVER, Role.OPERATOR, Role.VIEWER)
    asked = len(fake_slack.method_calls("usergroups.users.list"))
    invoke.slack_actor(services.settings, "U5")
    assert len(fake_slack.method_calls("usergroups.users.list")) == asked  # answers are kept a while
    assert run_slack_text(services, user_id="U5", text="approvals").ok


def test_when_slack_cannot_say_who_is_in_a_group_nobody_gets_its_role(tmp_path, store, fake_slack):
    fake_slack.usergroups = {"SAPPROVE": ["U5"]}
    fake_slack.fail_status = 503
    settings = group_settings(tmp_path, fake_slack, default_slack_role="viewer")
    assert invoke.slack_actor(settings, "U5").role is Role.VIEWER
    fake_slack.fail_status = None
    assert invoke.slack_actor(settings, "U5").role is Role.APPROVER  # a failure is not remembered


def test_a_user_listed_directly_is_not_looked_up(tmp_path, store, fake_slack):
    settings = group_settings(tmp_path, fake_slack, admins=["U5"])
    assert invoke.slack_actor(settings, "U5").role is Role.ADMIN
    assert fake_slack.method_calls("usergroups.users.list") == []


def test_the_policy_is_audited_when_it_refuses(tmp_path, store):
    services = svc(store, make_settings(tmp_path))
    run_slack_text(services, user_id="U1", text='notify "hi"')
    [row] = store.query("SELECT actor, outcome, detail FROM audit_log WHERE command = 'notify'")
    assert (row["actor"], row["outcome"]) == ("U1", "error") and "may not send notices" in row["detail"]


def test_the_readme_shows_every_role_and_its_least_operations():
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Who may do what") :]
    for role in Role:
        assert f"\n| {role} |" in section, role
    for operation, words in {
        Operation.DECIDE: "approve",
        Operation.NOTIFY: "notify",
        Operation.LAUNCH: "launch",
    }.items():
        row = next(line for line in section.splitlines() if line.startswith(f"| {POLICY[operation].least} |"))
        assert words in row, (operation, row)
