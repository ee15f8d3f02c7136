"""A long ingest beside everything else: others keep reading and writing, and its events appear all at once.

Also what a killed ingest leaves: no worker processes, nothing visible, and staged
files that the next ingest removes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from core.data import feedback
from core.platform import audit, counters, get_status
from core.platform.actors import cli_actor
from tests.conftest import BOT_TOKEN, ROOT, SIGNING_SECRET, finetune_env, make_settings, sign, slash_body, wait_until
from tests.feedback_samples import WORDS, make_events

ACTOR = cli_actor()
BIG = 60_000  # events: several seconds of ingest on a 2-core machine
QUICK = 2.0  # seconds any read or short write may take while the ingest runs (the busy timeout is 10 s)


def write_big_file(path: Path, n: int) -> Path:
    rng = random.Random(5)
    with open(path, "w") as out:
        for i in range(n):
            draft = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 120)))
            event = {
                "id": f"big-{i:06d}", "agent": f"agent-{i % 4}", "prompt": f"Question {i}: {draft[:80]}",
                "output": draft, "rating": 1 + i % 5, "created_at": 1_760_000_000 + i,
            }  # fmt: skip
            if i % 3 == 0:
                event["final"] = draft[: len(draft) // 2] + " Reach me at dana@example.com."
            out.write(json.dumps(event) + "\n")
    return path


def big_events_visible(store) -> int:
    return int(store.scalar("SELECT count(*) FROM feedback WHERE id >= 'big-' AND id < 'big.'"))


def timed(action) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


@pytest.fixture
def faces(tmp_path, fake_slack, store):
    """The real serve app (signed Slack requests, MCP over streamable HTTP) on the test's database."""
    from starlette.testclient import TestClient

    from bot.serve import build_app
    from core.services import build_services

    slack_settings = make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url
    )
    with TestClient(build_app(build_services(slack_settings, store=store)), base_url="http://127.0.0.1") as client:
        yield client, fake_slack


def slack_status(client, fake_slack) -> None:
    body = slash_body("status", response_url=fake_slack.response_url())
    assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200


def mcp_get_status(client) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}}  # fmt: skip
    opened = client.post("/mcp", json=init, headers=headers)
    assert opened.status_code == 200, opened.text
    session = {**headers, "mcp-session-id": opened.headers["mcp-session-id"]}
    client.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_status", "arguments": {}}}
    answered = client.post("/mcp", json=call, headers=session)
    assert answered.status_code == 200 and "feedback_events" in answered.text, answered.text


def test_a_long_ingest_leaves_reads_and_writes_quick_and_publishes_at_once(settings, store, cli, tmp_path, faces):
    client, fake_slack = faces
    path = write_big_file(tmp_path / "big.jsonl", BIG)
    staging = settings.data_dir / "staging"
    ingest = subprocess.Popen(
        [sys.executable, "-m", "bot", "data", "ingest", str(path), "--json"],
        env=finetune_env(settings), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(lambda: ingest.poll() is not None or any(staging.glob("ingest-*.lock")), what="staging to start")
        seen: list[int] = []
        timings: dict[str, float] = {}
        while ingest.poll() is None:
            small = make_events(1, start=10_000 + len(seen))
            for name, action in (
                ("status", lambda: get_status(store)),
                ("signed /finetune status", lambda: slack_status(client, fake_slack)),
                ("MCP get_status", lambda: mcp_get_status(client)),
                ("finetune status", lambda: cli("status", "--json")),
                ("audit row", lambda: _audit_row(store)),
                ("small ingest", partial(feedback.ingest_batch, store, small, actor=ACTOR)),
            ):
                timings[name] = max(timings.get(name, 0.0), timed(action))
            seen.append(big_events_visible(store))
        out, err = ingest.communicate(timeout=60)
    finally:
        if ingest.poll() is None:
            ingest.kill()
            ingest.wait(10)
    assert ingest.returncode == 0, err[-2000:]
    assert json.loads(out)["ingested"] == BIG
    assert seen.count(0) >= 3, f"the ingest ended before the probes could run beside it: {seen}"
    assert set(seen) <= {0, BIG}, "a partial ingest was visible"
    assert max(timings.values()) < QUICK, timings
    assert big_events_visible(store) == BIG
    total = store.scalar("SELECT count(*) FROM feedback")
    assert counters.value(store, counters.FEEDBACK_EVENTS) == total == BIG + len(seen)
    assert list(staging.iterdir()) == []


def _audit_row(store) -> None:
    with store.write():
        audit.record(store, ACTOR, "probe", {})


# A killed ingest ------------------------------------------------------------------------------------

ENDLESS_INGEST = """
import itertools, sys, time
from core.data import feedback
from core.platform.actors import cli_actor
from core.platform.store import open_store
from tests.feedback_samples import make_events

def endless():
    for n in itertools.count(1):
        if n % 500 == 0:
            time.sleep(0.05)
        yield n, make_events(1, start=n)[0]

feedback.ingest(open_store(sys.argv[1]), endless(), actor=cli_actor(), source="endless", workers=2)
"""


def descendants(pid: int) -> set[int]:
    """Live (not zombie) processes descended from `pid`, by /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if stat[0] != "Z":
                parents[int(entry)] = int(stat[1])
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = {child for child, ppid in parents.items() if ppid == parent} - found
        found |= children
        frontier.extend(children)
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            living.add(pid)
    return living


def _with_workers(tree: set[int]) -> set[int] | None:
    """The tree once it holds the fork server and at least two workers under it."""
    return tree if len(tree) >= 3 else None


def test_a_killed_ingest_takes_its_workers_with_it_and_leaves_nothing_visible(settings, store, tmp_path):
    ingest = subprocess.Popen(
        [sys.executable, "-c", ENDLESS_INGEST, str(settings.db_path)],
        env={**finetune_env(settings), "PYTHONPATH": str(ROOT)}, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    tree: set[int] = set()
    try:
        tree = wait_until(lambda: _with_workers(descendants(ingest.pid)), timeout=30, what="the ingest's workers")
        wait_until(lambda: any((settings.data_dir / "staging").glob("ingest-*.db")), what="events to be staged")
        ingest.send_signal(signal.SIGKILL)
        ingest.wait(10)
        wait_until(lambda: not alive(tree), timeout=10, what=f"workers {alive(tree)} to exit after their parent")
    finally:  # when the test failed: leave nothing running
        if ingest.poll() is None:
            tree |= descendants(ingest.pid)
            ingest.kill()
            ingest.wait(10)
        for pid in alive(tree):
            os.kill(pid, signal.SIGKILL)
    assert store.scalar("SELECT count(*) FROM feedback") == 0
    left = sorted(p.name for p in (settings.data_dir / "staging").iterdir())
    assert any(name.endswith(".db") for name in left), left
    report = feedback.ingest_batch(store, make_events(3), actor=ACTOR)
    assert report.ingested == 3 == store.scalar("SELECT count(*) FROM feedback")
    assert list((settings.data_dir / "staging").iterdir()) == []
