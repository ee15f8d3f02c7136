"""The MCP face: in-memory client, and the real stdio process."""

import json
import subprocess
import sys

import anyio
from mcp import Client, StdioServerParameters

from core.platform.actors import os_user
from core.platform.status import get_status
from mcp_server.server import build_server
from tests.conftest import finetune_env, svc


def call(server, tool: str, args: dict | None = None):
    async def go():
        async with Client(server) as client:
            return await client.list_tools(), await client.call_tool(tool, args or {})

    return anyio.run(go)


def test_get_status_has_an_output_schema_and_returns_the_core_report(settings, store):
    tools, result = call(build_server(svc(store, settings)), "get_status")
    [tool] = [t for t in tools.tools if t.name == "get_status"]
    assert tool.description and "pending approvals" in tool.description
    assert set(tool.output_schema["properties"]) >= {"feedback_events", "jobs_by_state", "scheduler_heartbeat"}
    assert not result.is_error
    assert result.structured_content == get_status(store, settings=settings).model_dump()


def test_tool_calls_are_audited_as_the_os_user_not_the_name_the_client_declares(settings, store):
    call(build_server(svc(store, settings)), "get_status")  # the in-memory client declares itself "mcp"
    rows = store.query("SELECT actor, face, command, outcome FROM audit_log")
    assert rows == [{"actor": os_user(), "face": "mcp", "command": "get_status", "outcome": "ok"}]


def test_unknown_tool_is_an_error_result(settings, store):
    _, result = call(build_server(svc(store, settings)), "launch_rocket")
    assert result.is_error and "Unknown tool" in result.content[0].text


def test_stdio_process_serves_tools(settings, store):
    params = StdioServerParameters(command=sys.executable, args=["-m", "bot", "mcp"], env=finetune_env(settings))

    async def go():
        async with Client(params) as client:
            return await client.call_tool("get_status", {})

    result = anyio.run(go)
    assert result.structured_content["feedback_events"] == 0
    faces = {row["face"] for row in store.query("SELECT face FROM audit_log")}
    assert faces == {"cli", "mcp"}  # `finetune mcp` started (cli), then the tool call (mcp)


def test_stdio_writes_nothing_but_protocol_to_stdout(settings):
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_status", "arguments": {}}},
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "mcp"],
        env=finetune_env(settings, FINETUNE_LOG_LEVEL="DEBUG"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdin, stdout, stderr_pipe = proc.stdin, proc.stdout, proc.stderr
    assert stdin is not None and stdout is not None and stderr_pipe is not None
    try:
        for message in messages:
            stdin.write(json.dumps(message) + "\n")
            stdin.flush()
        lines = [stdout.readline(), stdout.readline()]
    finally:
        stdin.close()
        proc.wait(15)
    stderr = stderr_pipe.read()
    replies = [json.loads(line) for line in lines]  # every stdout line is JSON-RPC
    assert [r["id"] for r in replies] == [1, 2]
    assert replies[1]["result"]["structuredContent"]["pending_approvals"] == 0
    assert stdout.read() == ""
    assert "applied migration" in stderr  # logs went to stderr, even at DEBUG
