"""Latency of `status` on a large database, through Slack and through MCP over HTTP.

    .venv/bin/python bench/status.py                              # 1,000,000 events, 400 requests per face
    .venv/bin/python bench/status.py --events 100000 --requests 200

Builds a data directory holding N synthetic feedback rows (inserted directly,
with the feedback counter set to match, as ingest keeps it), starts `finetune
serve` on it with Slack configured against a local no-op Slack Web API, then
sends M signed `/finetune status` slash commands to /slack/events from 20
concurrent clients, timing each one to its HTTP 200 (the ack), and makes M
`get_status` calls over streamable HTTP from 20 concurrent MCP clients.
Prints p50 and p99 per face and the events count that status reported.
Everything listens on 127.0.0.1; serve is stopped by PID at the end. The run
is bounded: each phase gives up after --timeout seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLIENTS = 20
SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench-0000"
T = "2026-11-20T10:00:00.000000Z"
BATCH = 20_000


def build_database(db_path: Path, events: int) -> float:
    """N feedback rows and a matching counter, written directly in one transaction; returns seconds taken."""
    from core.platform import counters
    from core.platform.store import open_store

    started = time.perf_counter()
    store = open_store(db_path)
    messages = json.dumps([{"role": "user", "content": "Where is my refund?"}])
    with store.write() as db:
        for start in range(0, events, BATCH):
            rows = (
                (
                    f"fb{i:09d}",
                    hashlib.sha1(str(i).encode()).hexdigest(),
                    f"agent{i % 7}",
                    messages,
                    "Your refund.",
                    T,
                    T,
                )
                for i in range(start, min(start + BATCH, events))
            )
            db.conn.executemany(
                "INSERT INTO feedback (id, content_hash, agent, input_messages, ai_output, created_at, ingested_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        counters.bump(store, counters.FEEDBACK_EVENTS, events)
    store.close()
    return time.perf_counter() - started


def status_cost(db_path: Path) -> tuple[float, float]:
    """Milliseconds of one `get_status`, and of the full count of feedback rows it no longer runs."""
    from core.platform.status import get_status
    from core.platform.store import open_store

    store = open_store(db_path)
    get_status(store)
    started = time.perf_counter()
    for _ in range(200):
        get_status(store)
    status_ms = (time.perf_counter() - started) * 1000 / 200
    started = time.perf_counter()
    store.scalar("SELECT count(*) FROM feedback")
    count_ms = (time.perf_counter() - started) * 1000
    store.close()
    return status_ms, count_ms


class _NoOpSlack(BaseHTTPRequestHandler):
    """Answers every Web API call and response_url post with ok."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"ok": true, "channel": "C1", "ts": "1.000001"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_serve(data_dir: Path, slack_url: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINETUNE_", "SLACK_"))}
    env.update({
        "FINETUNE_DATA_DIR": str(data_dir), "FINETUNE_PORT": str(port), "FINETUNE_LOG_LEVEL": "WARNING",
        "SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": f"{slack_url}/api/",
        "FINETUNE_SLACK_CHANNEL": "C1",
    })  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bot", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("serve did not answer /healthz within 60 s")


def _slash(slack_url: str, n: int) -> tuple[bytes, dict[str, str]]:
    body = urllib.parse.urlencode({
        "team_id": "T1", "channel_id": "C1", "user_id": "UBENCH", "user_name": "bench", "command": "/finetune",
        "text": "status", "response_url": f"{slack_url}/response/{n}", "trigger_id": f"bench-{n}-{time.time_ns()}",
    })  # fmt: skip
    ts = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {
        "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }  # fmt: skip
    return body.encode(), headers


def slack_latencies(url: str, slack_url: str, requests: int, timeout: float) -> list[float]:
    """Seconds from sending each signed slash command to its HTTP 200, from CLIENTS connections at once.

    Each client opens its connection and sends one unmeasured command first; then all start together.
    """
    parts = urllib.parse.urlsplit(url)
    counter = iter(range(10**9))
    lock = threading.Lock()
    ready = threading.Barrier(CLIENTS)
    deadline = time.monotonic() + timeout

    def send(conn: http.client.HTTPConnection) -> float:
        with lock:
            n = next(counter)
        body, headers = _slash(slack_url, n)
        started = time.perf_counter()
        conn.request("POST", "/slack/events", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"/slack/events answered {response.status}")
        return time.perf_counter() - started

    def client(share: int) -> list[float]:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        send(conn)
        ready.wait(timeout)
        seen = [send(conn) for _ in range(share) if time.monotonic() < deadline]
        conn.close()
        return seen

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [s for batch in pool.map(client, _shares(requests)) for s in batch]


def mcp_latencies(url: str, requests: int, timeout: float) -> tuple[list[float], int]:
    """Seconds per `get_status` call over streamable HTTP from CLIENTS sessions at once; and the events count seen.

    Each session initializes, lists the tools and calls once, unmeasured; then all start together, and
    they close together once every measured call is done.
    """
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    events: list[int] = []
    warmed = finished = 0
    ready, done = asyncio.Event(), asyncio.Event()

    async def call(session: Client) -> float:
        started = time.perf_counter()
        result = await session.call_tool("get_status", {})
        took = time.perf_counter() - started
        if result.is_error:
            raise SystemExit(f"get_status failed: {result.content}")
        events.append(int((result.structured_content or {})["feedback_events"]))
        return took

    async def client(share: int) -> list[float]:
        nonlocal warmed, finished
        async with (
            httpx2.AsyncClient(timeout=10) as http_client,
            Client(streamable_http_client(f"{url}/mcp", http_client=http_client)) as session,
        ):
            await session.list_tools()
            await call(session)
            warmed += 1
            if warmed == CLIENTS:
                ready.set()
            await ready.wait()
            seen = [await call(session) for _ in range(share)]
            finished += 1
            if finished == CLIENTS:
                done.set()
            await done.wait()  # sessions close together, after the last measured call
            return seen

    async def everyone() -> list[float]:
        batches = await asyncio.wait_for(asyncio.gather(*(client(s) for s in _shares(requests))), timeout)
        return [s for batch in batches for s in batch]

    return asyncio.run(everyone()), (events[-1] if events else -1)


def _shares(requests: int) -> list[int]:
    return [requests // CLIENTS + (1 if i < requests % CLIENTS else 0) for i in range(CLIENTS)]


def percentiles(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"p50 {statistics.median(ms):6.1f} ms  p99 {p99:6.1f} ms  max {ms[-1]:6.1f} ms  (n={len(ms)})"


@contextlib.contextmanager
def running(start: Callable[[], tuple[subprocess.Popen[bytes], str]]) -> Iterator[tuple[int, str]]:
    """serve, started and stopped by PID (SIGTERM, then SIGKILL if it lingers)."""
    proc, url = start()
    try:
        yield proc.pid, url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc); 0 where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, run: Callable[[], list[float]]) -> tuple[list[float], float]:
    """The latencies `run` returns, and serve's CPU milliseconds per request while it ran."""
    before = cpu_seconds(pid)
    seconds = run()
    return seconds, (cpu_seconds(pid) - before) * 1000 / max(1, len(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="feedback rows in the database")
    parser.add_argument("--requests", type=int, default=400, help="status requests per face")
    parser.add_argument("--timeout", type=float, default=120, help="seconds each measured phase may take")
    args = parser.parse_args()
    if args.events < 0 or args.requests < CLIENTS:
        parser.error(f"--events must be >= 0 and --requests >= {CLIENTS}")

    slack = ThreadingHTTPServer(("127.0.0.1", 0), _NoOpSlack)
    threading.Thread(target=slack.serve_forever, daemon=True).start()
    slack_url = f"http://127.0.0.1:{slack.server_address[1]}"
    with tempfile.TemporaryDirectory(prefix="finetune-bench-status-") as folder:
        data_dir = Path(folder) / "data"
        built = build_database(data_dir / "finetune.db", args.events)
        print(f"database: {args.events:,} feedback events written in {built:.1f} s", flush=True)
        status_ms, count_ms = status_cost(data_dir / "finetune.db")
        print(f"get_status in process: {status_ms:.2f} ms (counting the feedback rows instead: {count_ms:.1f} ms)")
        with running(lambda: start_serve(data_dir, slack_url, Path(folder) / "serve.log")) as (pid, url):
            slack_times, slack_cpu = measured(pid, lambda: slack_latencies(url, slack_url, args.requests, args.timeout))
            time.sleep(3)  # let the slash commands' background answers finish before measuring MCP
            events = -1

            def mcp() -> list[float]:
                nonlocal events
                seconds, events = mcp_latencies(url, args.requests, args.timeout)
                return seconds

            mcp_times, mcp_cpu = measured(pid, mcp)
    slack.shutdown()
    print(
        f"slack /finetune status, to the ack ({CLIENTS} clients): {percentiles(slack_times)}  serve CPU {slack_cpu:.1f} ms/req"
    )
    print(
        f"mcp get_status, streamable HTTP ({CLIENTS} clients):   {percentiles(mcp_times)}  serve CPU {mcp_cpu:.1f} ms/req"
    )
    print(f"events reported by status: {events:,}")


if __name__ == "__main__":
    main()
