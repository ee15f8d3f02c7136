"""Operating finetune-ops: what an operator sees when serve cannot start, and where the data lives."""

from __future__ import annotations

import json
import socket

from bot.slack.blocks import render_outcome
from bot.slack.listeners.commands import run_slack_text
from tests.conftest import finetune_env, run_finetune, svc


def test_serve_on_a_busy_port_says_so_in_one_line_and_exits_2(settings, store):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = finetune_env(settings, FINETUNE_PORT=str(port), FINETUNE_LOG_LEVEL="WARNING")
        result = run_finetune(["serve"], env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert (
        line
        == f"Error: port {port} on 127.0.0.1 is already in use: set FINETUNE_PORT to a free port, or stop what uses it."
    )


def test_serve_that_cannot_listen_starts_nothing(settings, store):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = finetune_env(settings, FINETUNE_PORT=str(busy.getsockname()[1]), FINETUNE_HEARTBEAT_SECONDS="0.1")
        result = run_finetune(["serve"], env, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Scheduler started" not in result.stderr and "Waiting for application startup" not in result.stderr
    assert store.scalar("SELECT count(*) FROM scheduler_runs") == 0  # no heartbeat: the scheduler never ran


def test_status_names_the_database_in_every_face(settings, store):
    path = str(settings.db_path)
    cli = run_finetune(["status", "--json"], finetune_env(settings))
    assert json.loads(cli.stdout)["database"] == path
    terminal = run_finetune(["status"], finetune_env(settings, COLUMNS="300"))
    assert path in terminal.stdout
    slack = render_outcome(run_slack_text(svc(store, settings), user_id="U1", text="status"))
    assert path in json.dumps(slack.blocks)
