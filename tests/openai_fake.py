"""A stateful stand-in for the OpenAI fine-tuning API, for tests of the OpenAI provider.

It keeps uploaded files, jobs, their events and checkpoints in memory and speaks
the parts of the API the provider calls, under `/v1/...` (OpenAI) and
`/openai/...` (Azure OpenAI) alike. A test moves jobs along with `advance`, adds
events and checkpoints, and makes the next requests fail with `fail(...)`.
Like the real API it lists jobs and events newest first, pages them with
`after`, filters jobs on `metadata[key]=value`, and sends `x-request-id` on
every reply. Binds 127.0.0.1 on a port the OS picks.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "sk-test-0000"
AZURE_KEY = "azure-test-key"

# Where each status may go next; `advance` refuses anything else, so tests stay realistic.
MOVES = {
    "validating_files": {"queued", "failed", "cancelled"},
    "queued": {"running", "failed", "cancelled"},
    "running": {"pausing", "paused", "succeeded", "failed", "cancelled"},
    "pausing": {"paused", "failed", "cancelled"},
    "paused": {"running", "cancelled"},
}
FINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class Recorded:
    method: str
    path: str  # without the /v1 or /openai prefix
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None


@dataclass
class Failure:
    status: int
    times: int
    on: str | None  # "METHOD /path" prefix this failure applies to; None for every request
    body: dict
    headers: dict[str, str]
    after_processing: bool  # do the work, then answer with the error (a reply lost on the way back)


@dataclass
class FakeOpenAI:
    url: str = ""
    files: dict[str, dict] = field(default_factory=dict)
    jobs: dict[str, dict] = field(default_factory=dict)
    events: dict[str, list[dict]] = field(default_factory=dict)  # job id -> events, oldest first
    checkpoints: dict[str, list[dict]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    idempotency: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> job id
    honour_idempotency_key: bool = True
    delay: float = 0.0  # seconds to wait before answering (timeouts)
    stalls: dict[str, threading.Event] = field(default_factory=dict)  # "METHOD /path" prefix -> release
    stalled: list[str] = field(default_factory=list)  # requests processed and now held, not yet answered
    lock: threading.RLock = field(default_factory=threading.RLock)
    _failures: list[Failure] = field(default_factory=list)
    _counter: int = 0
    _clock: int = 1_760_000_000

    # Controls for tests ------------------------------------------------------------------------------

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        on: str | None = None,
        code: str | None = None,
        message: str = "injected failure",
        type: str | None = None,
        headers: dict[str, str] | None = None,
        after_processing: bool = False,
    ) -> None:
        """Answer the next `times` matching requests with HTTP `status` and an OpenAI-shaped error body."""
        body = {"error": {"message": message, "type": type or _error_type(status), "param": None, "code": code}}
        retry = {"retry-after-ms": "5"} if status in (408, 409, 429) or status >= 500 else {}
        with self.lock:
            self._failures.append(Failure(status, times, on, body, {**retry, **(headers or {})}, after_processing))

    def advance(self, job_id: str, status: str, **fields: Any) -> dict:
        """Move a job to `status` (only along documented moves), with any job fields, and log an event."""
        with self.lock:
            job = self.jobs[job_id]
            if status not in MOVES.get(job["status"], set()):
                raise AssertionError(f"a job cannot move from {job['status']} to {status}")
            job.update(status=status, **fields)
            if status in FINAL:
                job["finished_at"] = self._tick()
            self.add_event(job_id, f"Job status is now {status}")
            return job

    def add_event(self, job_id: str, message: str, *, data: dict | None = None, level: str = "info") -> dict:
        with self.lock:
            event = {
                "object": "fine_tuning.job.event",
                "id": f"ftevent-{self._next():05d}",
                "created_at": self._tick(),
                "level": level,
                "message": message,
                "data": data or {},
                "type": "metrics" if data and "step" in data else "message",
            }
            self.events.setdefault(job_id, []).append(event)
            return event

    def add_metrics(self, job_id: str, step: int, *, train_loss: float, total_steps: int = 100, **more: float) -> dict:
        data = {"step": step, "train_loss": train_loss, "total_steps": total_steps, **more}
        return self.add_event(job_id, f"Step {step}/{total_steps}: training loss={train_loss:.4f}", data=data)

    def add_checkpoint(self, job_id: str, step: int, **metrics: float) -> dict:
        with self.lock:
            job = self.jobs[job_id]
            checkpoint = {
                "object": "fine_tuning.job.checkpoint",
                "id": f"ftckpt-{self._next():05d}",
                "created_at": self._tick(),
                "fine_tuned_model_checkpoint": f"ft:{job['model']}:org::{job_id[-6:]}:ckpt-step-{step}",
                "fine_tuning_job_id": job_id,
                "step_number": step,
                "metrics": {"step": float(step), **metrics},
            }
            self.checkpoints.setdefault(job_id, []).append(checkpoint)
            return checkpoint

    def stall_after(self, on: str) -> threading.Event:
        """Process requests matching `on` ("POST /fine_tuning/jobs") but hold their answers until released:
        the caller can be killed after the work was done and before it heard so."""
        release = threading.Event()
        with self.lock:
            self.stalls[on] = release
        return release

    def hold_if_stalled(self, recorded: Recorded) -> None:
        key = f"{recorded.method} {recorded.path}"
        release = next((event for on, event in self.stalls.items() if key.startswith(on) and key == on), None)
        if release is not None:
            with self.lock:
                self.stalled.append(key)
            release.wait(30)

    def calls(self, method: str, path_prefix: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # The API -------------------------------------------------------------------------------------------

    def answer(self, recorded: Recorded) -> tuple[int, dict, dict[str, str]]:
        with self.lock:
            self.requests.append(recorded)
            failure = self._failure_for(recorded)
            if failure and not failure.after_processing:
                return failure.status, failure.body, failure.headers
            status, body = self._route(recorded)
            if failure:
                return failure.status, failure.body, failure.headers
            return status, body, {}

    def _failure_for(self, recorded: Recorded) -> Failure | None:
        for failure in self._failures:
            if failure.on is None or f"{recorded.method} {recorded.path}".startswith(failure.on):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _route(self, r: Recorded) -> tuple[int, dict]:
        parts = [p for p in r.path.split("/") if p]
        if parts == ["files"] and r.method == "POST":
            return self._upload(r.body)
        if parts[:2] == ["files"] and len(parts) == 2 and r.method == "GET":
            return self._found(self.files, parts[1], _public_file)
        if parts[:2] != ["fine_tuning", "jobs"]:
            return 404, _error("Unknown path", "invalid_request_error")
        rest = parts[2:]
        if not rest:
            return self._create(r) if r.method == "POST" else (200, self._list_jobs(r.query))
        job_id, action = rest[0], (rest[1] if len(rest) > 1 else None)
        if job_id not in self.jobs:
            return 404, _error(
                f"Could not find fine-tune: {job_id}", "invalid_request_error", code="fine_tune_not_found"
            )
        if action is None and r.method == "GET":
            return 200, self.jobs[job_id]
        if action in ("cancel", "pause", "resume") and r.method == "POST":
            return self._steer(job_id, action)
        if action == "events" and r.method == "GET":
            return 200, _page(list(reversed(self.events.get(job_id, []))), r.query)
        if action == "checkpoints" and r.method == "GET":
            return 200, _page(list(reversed(self.checkpoints.get(job_id, []))), r.query)
        return 404, _error("Unknown path", "invalid_request_error")

    def _upload(self, form: dict) -> tuple[int, dict]:
        if form.get("purpose") != "fine-tune" or "file" not in form:
            return 400, _error("Expected purpose 'fine-tune' and a file", "invalid_request_error", param="purpose")
        filename, content = form["file"]
        file_id = f"file-{self._next():05d}"
        self.files[file_id] = {
            "object": "file", "id": file_id, "bytes": len(content), "created_at": self._tick(),
            "filename": filename, "purpose": "fine-tune", "status": "processed", "content": content,
        }  # fmt: skip
        return 200, _public_file(self.files[file_id])

    def _create(self, r: Recorded) -> tuple[int, dict]:
        body = r.body or {}
        key = r.headers.get("idempotency-key")
        if self.honour_idempotency_key and key in self.idempotency:
            return 200, self.jobs[self.idempotency[key]]
        for name in ("training_file", "validation_file"):
            if body.get(name) is not None and body[name] not in self.files:
                return 400, _error(f"invalid {name}: {body[name]}", "invalid_request_error", param=name)
        if not body.get("model") or not body.get("training_file"):
            return 400, _error("model and training_file are required", "invalid_request_error")
        job_id = f"ftjob-{self._next():05d}"
        method = body.get("method") or {"type": "supervised", "supervised": {"hyperparameters": {}}}
        self.jobs[job_id] = {
            "object": "fine_tuning.job", "id": job_id, "model": body["model"], "created_at": self._tick(),
            "status": "validating_files", "fine_tuned_model": None, "finished_at": None, "estimated_finish": None,
            "organization_id": "org-test", "result_files": [], "trained_tokens": None, "error": None,
            "training_file": body["training_file"], "validation_file": body.get("validation_file"),
            "hyperparameters": method.get(method["type"], {}).get("hyperparameters", {}),
            "method": method, "seed": body.get("seed", 42), "suffix": body.get("suffix"),
            "metadata": body.get("metadata"), "integrations": [],
        }  # fmt: skip
        if key:
            self.idempotency[key] = job_id
        self.add_event(job_id, f"Created fine-tuning job: {job_id}")
        return 200, self.jobs[job_id]

    def _list_jobs(self, query: dict[str, str]) -> dict:
        wanted = {k[len("metadata[") : -1]: v for k, v in query.items() if k.startswith("metadata[")}
        jobs = [
            job
            for job in reversed(self.jobs.values())
            if all((job.get("metadata") or {}).get(k) == v for k, v in wanted.items())
        ]
        return _page(jobs, query)

    def _steer(self, job_id: str, action: str) -> tuple[int, dict]:
        job = self.jobs[job_id]
        target = {"cancel": "cancelled", "pause": "paused", "resume": "running"}[action]
        allowed = {"cancel": set(MOVES) - {"pausing"}, "pause": {"running"}, "resume": {"paused"}}[action]
        if job["status"] not in allowed:
            return 400, _error(f"Cannot {action} a job that is {job['status']}", "invalid_request_error")
        self.advance(job_id, target)
        return 200, job

    def _found(self, table: dict, key: str, view) -> tuple[int, dict]:
        if key not in table:
            return 404, _error(f"No such object: {key}", "invalid_request_error")
        return 200, view(table[key])

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def _tick(self) -> int:
        self._clock += 1
        return self._clock


def _page(items: list[dict], query: dict[str, str]) -> dict:
    """One page of a newest-first list: items after the `after` id, at most `limit` of them."""
    limit = int(query.get("limit", 20))
    if "after" in query:
        ids = [item["id"] for item in items]
        items = items[ids.index(query["after"]) + 1 :] if query["after"] in ids else []
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}


def _public_file(stored: dict) -> dict:
    return {k: v for k, v in stored.items() if k != "content"}


def _error(message: str, type: str, *, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _error_type(status: int) -> str:
    return {401: "invalid_request_error", 403: "invalid_request_error", 429: "requests"}.get(status, "server_error")


def _parse_form(content_type: str, raw: bytes) -> dict[str, Any]:
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = str(part.get_param("name", header="content-disposition"))
        content = part.get_payload(decode=True)
        assert isinstance(content, bytes), f"form field {name} is not a plain part"
        form[name] = (part.get_filename(), content) if part.get_filename() else content.decode()
    return form


def _strip_prefix(path: str) -> str:
    for prefix in ("/v1", "/openai"):
        if path.startswith(prefix + "/"):
            return path[len(prefix) :]
    return path


def start_fake() -> tuple[FakeOpenAI, ThreadingHTTPServer]:
    """Start the fake on 127.0.0.1 and a free port; stop it with `server.shutdown(); server.server_close()`."""
    fake = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self._handle()

        def do_POST(self):
            self._handle()

        def _handle(self):
            url = urllib.parse.urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            raw = self.rfile.read(int(headers.get("content-length") or 0))
            if fake.delay:
                time.sleep(fake.delay)
            extra: dict[str, str]
            body_in: Any
            if headers.get("authorization") != f"Bearer {API_KEY}" and headers.get("api-key") != AZURE_KEY:
                status, body, extra = (
                    401,
                    _error("Incorrect API key provided", "invalid_request_error", code="invalid_api_key"),
                    {},
                )
                with fake.lock:
                    fake.requests.append(Recorded(self.command, _strip_prefix(url.path), {}, headers))
            else:
                content_type = headers.get("content-type", "")
                if content_type.startswith("multipart/form-data"):
                    body_in = _parse_form(content_type, raw)
                else:
                    body_in = json.loads(raw) if raw else None
                query = dict(urllib.parse.parse_qsl(url.query))
                recorded = Recorded(self.command, _strip_prefix(url.path), query, headers, body_in)
                status, body, extra = fake.answer(recorded)
                fake.hold_if_stalled(recorded)
            payload = json.dumps(body).encode()
            try:
                self._reply(status, payload, extra)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def _reply(self, status: int, payload: bytes, extra: dict[str, str]):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-request-id", f"req_{len(fake.requests):06d}")
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return fake, server
