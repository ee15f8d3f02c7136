"""The official MCP Inspector CLI and conformance suite against our server (Node 22, pinned in tools/node)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import MCP_TOKEN, ROOT

NODE_BIN = ROOT / "tools" / "node" / "node_modules" / ".bin"
SCENARIOS = ["server-initialize", "ping", "tools-list", "tools-call-error", "dns-rebinding-protection"]


@pytest.fixture(scope="module")
def node_env():
    if not (NODE_BIN / "mcp-inspector").exists():
        message = "the Node toolchain is not installed: run `python3 dev.py test` (npm ci in tools/node)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ['PATH']}"}


def inspector(node_env, *args: str, env: dict | None = None) -> dict:
    result = subprocess.run(
        [str(NODE_BIN / "mcp-inspector"), "--cli", *args],
        env={**node_env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_inspector_over_stdio(node_env, settings):
    target = ["-e", f"FINETUNE_DATA_DIR={settings.data_dir}", "--", sys.executable, "-m", "bot", "mcp"]
    listed = inspector(node_env, "--method", "tools/list", *target, env={"PYTHONPATH": str(ROOT)})
    assert "get_status" in [tool["name"] for tool in listed["tools"]]
    called = inspector(
        node_env, "--method", "tools/call", "--tool-name", "get_status", *target, env={"PYTHONPATH": str(ROOT)}
    )
    assert called["structuredContent"]["feedback_events"] == 0


def test_inspector_over_http_with_a_token(node_env, settings, start_serve):
    server = start_serve(settings, FINETUNE_MCP_TOKEN=MCP_TOKEN)
    called = inspector(
        node_env,
        f"{server.url}/mcp",
        "--transport", "http",
        "--header", f"Authorization: Bearer {MCP_TOKEN}",
        "--method", "tools/call",
        "--tool-name", "get_status",
    )  # fmt: skip
    assert called["structuredContent"]["pending_approvals"] == 0


def test_conformance_scenarios(node_env, settings, start_serve, tmp_path):
    server = start_serve(settings)  # loopback, no token: the suite sends no auth header
    failures = {}
    for scenario in SCENARIOS:
        out = tmp_path / scenario
        result = subprocess.run(
            [
                str(NODE_BIN / "conformance"),
                "server",
                "--url",
                f"{server.url}/mcp",
                "--scenario",
                scenario,
                "-o",
                str(out),
            ],
            env=node_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        checks = [check for path in out.rglob("checks.json") for check in json.loads(path.read_text())]
        failed = [c for c in checks if c["status"] != "SUCCESS"]
        if result.returncode != 0 or not checks or failed:
            failures[scenario] = failed or result.stdout[-2000:]
    assert failures == {}
