"""Shared fixtures: an isolated settings/store per test, a local Slack Web API, process helpers.

Everything binds 127.0.0.1 on a port the OS picks; every process a test starts is
stopped by PID in the fixture's teardown.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core import providers
from core.data import datasets, feedback
from core.platform.actors import cli_actor
from core.platform.settings import Settings
from core.platform.store import open_store
from core.vocabulary import Provider
from tests.fake_provider import FakeProvider
from tests.feedback_samples import make_events

ROOT = Path(__file__).resolve().parents[1]
SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token-0000"
MCP_TOKEN = "test-mcp-token-1234567890"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No setting leaks in from the machine or a developer's .env."""
    for env in Settings.env_names().values():
        monkeypatch.delenv(env, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))  # the per-user data directory, kept in the test


def make_settings(tmp_path: Path, **overrides) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", **overrides)


def svc(store, settings: Settings, registry=None):
    """Services over the test's store, with a provider registry of fakes when given."""
    from core.services import build_services

    return build_services(settings, store=store, providers=registry)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def store(settings):
    store = open_store(settings.db_path)
    yield store
    store.close()


@pytest.fixture
def cli(settings, monkeypatch, capsys):
    """Run `finetune ARGS` in-process on the test's data directory; returns (exit code, stdout, stderr)."""
    from bot.cli import main

    monkeypatch.setenv("FINETUNE_DATA_DIR", str(settings.data_dir))

    def run(*args: str):
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        out, err = capsys.readouterr()
        return exited.value.code, out, err

    return run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, *, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# A local Slack: the Web API methods finetune-ops calls, and response_url endpoints -------------


@dataclass
class SlackCall:
    path: str
    data: dict


@dataclass
class FakeSlack:
    """A small recording server that speaks the parts of Slack's Web API we use."""

    url: str = ""
    calls: list[SlackCall] = field(default_factory=list)
    fail_status: int | None = None  # answer every API call with this HTTP status (Slack down)
    usergroups: dict[str, list[str]] = field(default_factory=dict)  # user group id -> member user ids
    retry_after: int | None = None  # answer every API call with 429 and this Retry-After (rate limited)
    unknown_channels: set[str] = field(default_factory=set)  # chat.postMessage there: channel_not_found
    update_without_channel: bool = False  # chat.update replies without `channel`
    posted: list[dict] = field(default_factory=list)  # messages in channels, as conversations.history shows them
    _ts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str = "cmd") -> str:
        return f"{self.url}/response/{name}"

    def method_calls(self, method: str) -> list[dict]:
        with self.lock:
            return [c.data for c in self.calls if c.path == f"/api/{method}"]

    def responses(self, name: str = "cmd") -> list[dict]:
        with self.lock:
            return [c.data for c in self.calls if c.path == f"/response/{name}"]

    def answer(self, path: str, data: dict) -> tuple[int, dict]:
        with self.lock:
            self.calls.append(SlackCall(path, data))
            if path.startswith("/response/"):
                return 200, {"ok": True}
            if self.fail_status:
                return self.fail_status, {"ok": False, "error": "service_unavailable"}
            if self.retry_after is not None and not path.startswith("/upload/"):
                return 429, {"ok": False, "error": "ratelimited"}
            method = path.removeprefix("/api/")
            if method == "usergroups.users.list":
                members = self.usergroups.get(data.get("usergroup", ""))
                if members is None:
                    return 200, {"ok": False, "error": "no_such_subteam"}
                return 200, {"ok": True, "users": members}
            if method == "auth.test":
                return 200, {"ok": True, "user_id": "UBOT", "bot_id": "BBOT", "team_id": "T1", "user": "finetune"}
            if method == "chat.postMessage":
                if data.get("channel") in self.unknown_channels:
                    return 200, {"ok": False, "error": "channel_not_found"}
                self._ts += 1
                ts = f"{int(time.time())}.{self._ts:06d}"  # real time, so history windows find it
                self.posted.append({**data, "ts": ts})
                return 200, {"ok": True, "channel": data.get("channel"), "ts": ts}
            if method == "chat.update":
                if self.update_without_channel:
                    return 200, {"ok": True, "ts": data.get("ts")}
                return 200, {"ok": True, "channel": data.get("channel"), "ts": data.get("ts")}
            if method == "conversations.history":
                return 200, self.history(data)
            if method == "conversations.replies":  # a thread: its first message and its replies
                return 200, self.history(data, thread=str(data.get("ts") or ""))
            if method == "conversations.open":
                return 200, {"ok": True, "channel": {"id": "D" + str(data.get("users", "")).split(",")[0]}}
            if method == "chat.postEphemeral":
                return 200, {"ok": True, "message_ts": f"{int(time.time())}.000000"}
            if method == "views.open":
                return 200, {"ok": True, "view": {"id": "V1", **(data.get("view") or {})}}
            if method == "views.update":  # an open modal, replaced in place
                return 200, {"ok": True, "view": {"id": data.get("view_id"), **(data.get("view") or {})}}
            if method == "views.publish":  # a user's Home tab
                return 200, {"ok": True, "view": {"id": "VHOME", **(data.get("view") or {})}}
            if method == "files.getUploadURLExternal":
                return 200, {"ok": True, "upload_url": f"{self.url}/upload/F1", "file_id": "F1"}
            if method == "files.completeUploadExternal":
                return 200, {"ok": True, "files": [{"id": "F1", "title": "upload"}]}
            if path.startswith("/upload/"):
                return 200, {"ok": True}
            return 200, {"ok": False, "error": "unknown_method"}

    def history(self, query: dict, *, thread: str | None = None) -> dict:
        """conversations.history: newest first, `oldest`/`latest` inclusive, metadata on request, cursor paging;
        with `thread`, conversations.replies: that thread's messages only."""
        oldest, latest = float(query.get("oldest") or 0), float(query.get("latest") or time.time() + 1)
        found = [
            {k: v for k, v in m.items() if k != "metadata" or query.get("include_all_metadata") in ("1", "true")}
            for m in reversed(self.posted)
            if m.get("channel") == query.get("channel")
            and oldest <= float(m["ts"]) <= latest
            and (thread is None or thread in (m["ts"], m.get("thread_ts")))
        ]
        start, limit = int(query.get("cursor") or 0), int(query.get("limit") or 100)
        page, more = found[start : start + limit], start + limit < len(found)
        return {"ok": True, "messages": page, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}  # fmt: skip


def _parse_body(handler: BaseHTTPRequestHandler) -> dict:
    raw_bytes = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    if handler.path.startswith("/upload/"):  # a file's bytes, as files_upload_v2 sends them
        return {"size": len(raw_bytes), "png": raw_bytes.startswith(b"\x89PNG")}
    raw = raw_bytes.decode()
    if "json" in (handler.headers.get("Content-Type") or ""):
        return json.loads(raw or "{}")
    data = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
    for key in ("blocks", "view"):
        if key in data:
            data[key] = json.loads(data[key])
    return data


@pytest.fixture
def fake_slack():
    with serve_fake_slack() as slack:
        yield slack


@contextlib.contextmanager
def serve_fake_slack():
    """A FakeSlack listening on 127.0.0.1 until the block ends (the `fake_slack` fixture, for any scope)."""
    slack = FakeSlack()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            status, payload = slack.answer(self.path, _parse_body(self))
            body = json.dumps(payload).encode()
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", str(slack.retry_after))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    slack.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield slack
    finally:
        server.shutdown()
        server.server_close()


def sign(body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack sends: v0=HMAC_SHA256(secret, 'v0:{ts}:{body}')."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def slash_body(text: str, *, user_id: str = "U123", response_url: str, trigger_id: str | None = None) -> str:
    return urllib.parse.urlencode(
        {
            "token": "legacy-unused",
            "team_id": "T1",
            "channel_id": "C1",
            "user_id": user_id,
            "user_name": "dana",
            "command": "/finetune",
            "text": text,
            "response_url": response_url,
            "trigger_id": trigger_id or f"trig-{time.monotonic_ns()}",
        }
    )


# Processes ------------------------------------------------------------------------------------


def finetune_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in Settings.env_names().values()}
    env.update({"FINETUNE_DATA_DIR": str(settings.data_dir), "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def run_finetune(args: list[str], env: dict[str, str], *, timeout: float = 60, input: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, capture_output=True, text=True, timeout=timeout, input=input
    )


@dataclass
class ServeProcess:
    proc: subprocess.Popen
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, sig=signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@pytest.fixture
def start_serve(tmp_path):
    started: list[ServeProcess] = []

    def start(settings: Settings, **env_extra: str) -> ServeProcess:
        port = free_port()
        env = finetune_env(settings, FINETUNE_PORT=str(port), **env_extra)
        log_path = tmp_path / f"serve-{port}.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        server = ServeProcess(proc, f"http://127.0.0.1:{port}", log_path)
        started.append(server)

        def healthy():
            if proc.poll() is not None:
                raise AssertionError(f"serve exited with {proc.returncode}:\n{server.log()}")
            try:
                with urllib.request.urlopen(f"{server.url}/healthz", timeout=1) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(healthy, timeout=30, what="finetune serve /healthz")
        return server

    yield start
    for server in started:
        server.stop(signal.SIGKILL)


# Jobs: a fake provider standing in for OpenAI, and a dataset version to train on --------------------


@pytest.fixture
def fake(monkeypatch):
    """A FakeProvider that every OpenAI launch in the test reaches (modules may define their own `fake`)."""
    provider = FakeProvider()
    monkeypatch.setitem(providers.REGISTRY, Provider.OPENAI, lambda settings: provider)
    return provider


@pytest.fixture
def version(store):
    """`support@1`, built from 60 sample events."""
    feedback.ingest_batch(store, make_events(60), actor=cli_actor())
    return datasets.build_dataset(store, name="support", actor=cli_actor())
