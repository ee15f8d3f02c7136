"""The docs tell the truth: every command, tool and setting is documented."""

import re

import anyio
import yaml
from mcp import Client

from bot.cli import CLI
from bot.slack.app import GRAMMAR
from core.platform.settings import Settings
from core.services import build_services
from mcp_server.server import build_server
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    opening = re.search(r"```bash\n(.*?)```", README, re.S)
    assert opening is not None, "the README opens with a bash block"
    first_block = opening.group(1)
    assert "python3 dev.py serve" in first_block and "python3 dev.py test" in first_block
    assert "python3 dev.py test" in (ROOT / ".ci" / "run").read_text()


def test_readme_tables_are_generated_from_the_code():
    from tools import readme

    assert readme.render(README) == README, "README.md is out of date: run `python3 dev.py docs`"


def test_every_cli_command_is_in_the_readme():
    for name, command in CLI.commands.items():
        assert f"`finetune {name}" in README, name
        for sub in getattr(command, "commands", {}):
            assert f"finetune {name} {sub}" in README, f"{name} {sub}"


def test_every_slack_command_is_a_cli_command():
    assert set(GRAMMAR.commands) <= set(CLI.commands)


def test_every_mcp_tool_is_in_the_readme(settings, store):
    async def tools():
        async with Client(build_server(build_services(settings, store=store))) as client:
            return (await client.list_tools()).tools

    for tool in anyio.run(tools):
        assert f"`{tool.name}`" in README, tool.name


def test_every_setting_is_in_env_example_and_the_readme():
    example = (ROOT / ".env.example").read_text()
    for env in Settings.env_names().values():
        assert re.search(rf"^{env}=", example, re.M), env
        assert f"`{env}`" in README, env


def test_manifest_declares_the_command_and_endpoints():
    manifest = yaml.safe_load((ROOT / "bot" / "manifest.yml").read_text())
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/finetune" and command["url"].endswith("/slack/events")
    assert manifest["settings"]["interactivity"]["request_url"].endswith("/slack/events")
    assert "socket_mode_enabled" in manifest["settings"]
    assert {"commands", "chat:write"} <= set(manifest["oauth_config"]["scopes"]["bot"])
