"""Small local stand-ins for the chat APIs the inference backends call, on 127.0.0.1 and a port the OS picks.

`start_chat_fake("openai")` speaks OpenAI's chat completions, under `/v1/chat/completions`
(OpenAI, any compatible server) and `/openai/deployments/{name}/chat/completions` (Azure OpenAI,
which names its API version in `?api-version=`); `start_chat_fake("anthropic")` speaks Anthropic's
Messages API, `POST /v1/messages`, checking the headers and fields the real API requires. Each
records every request, answers with `text` and `usage`, and fails the next requests on demand
(`fail`), in the API's own error shape, with a request id on every reply. Stop it with `stop()`.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

OPENAI_KEY = "sk-chat-test"
AZURE_KEY = "azure-chat-test"
ANTHROPIC_KEY = "sk-ant-chat-test"
ANTHROPIC_ERRORS = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error",
}  # fmt: skip

Dialect = Literal["openai", "anthropic"]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Failure:
    status: int
    message: str
    headers: dict[str, str]
    code: str | None
    delay: float  # seconds before answering at all (a client timeout)


@dataclass
class ChatFake:
    dialect: Dialect
    url: str = ""
    text: str = "Hello from the fake."
    usage: tuple[int, int] | None = (12, 5)  # input, output tokens; None: the reply carries no usage
    finish: str | None = None  # the API's own word; None: a natural stop
    thinking: bool = True  # Anthropic: a thinking block before the text, as adaptive thinking adds
    keys: tuple[str, ...] = (OPENAI_KEY, AZURE_KEY, ANTHROPIC_KEY)  # () accepts any key (an Ollama server)
    pause: float = 0.0  # seconds each answer takes
    in_flight: int = 0
    most_in_flight: int = 0  # the most requests answered at once
    requests: list[Seen] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: Any = None

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        message: str = "injected failure",
        headers: dict[str, str] | None = None,
        code: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` requests with HTTP `status` (after `delay` seconds)."""
        with self.lock:
            self.failures += [Failure(status, message, dict(headers or {}), code, delay) for _ in range(times)]

    def chats(self) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if r.method == "POST"]

    # Answers ----------------------------------------------------------------------------------------

    def answer(self, seen: Seen) -> tuple[int, dict, dict[str, str], float]:
        with self.lock:
            self.requests.append(seen)
            number = len(self.requests)
            failure = self.failures.pop(0) if self.failures else None
        ids = {"x-request-id": f"req_{number:04d}"} if self.dialect == "openai" else {"request-id": f"req_{number:04d}"}
        refused = self._refusal(seen)
        if refused is not None:
            return refused[0], refused[1], ids, 0.0
        if failure is not None:
            return (
                failure.status,
                self._error(failure.status, failure.message, failure.code),
                {**ids, **failure.headers},
                failure.delay,
            )
        reply = self._completion(seen) if self.dialect == "openai" else self._message(seen)
        return 200, reply, ids, 0.0

    def _refusal(self, seen: Seen) -> tuple[int, dict] | None:
        """What the real API refuses whatever happens: a wrong path, key or body."""
        if self.dialect == "openai":
            if not seen.path.endswith("/chat/completions"):
                return 404, self._error(404, f"Unknown path {seen.path}")
            given = seen.headers.get("api-key") or seen.headers.get("authorization", "").removeprefix("Bearer ")
        else:
            if seen.path != "/v1/messages":
                return 404, self._error(404, f"Unknown path {seen.path}")
            given = seen.headers.get("x-api-key") or seen.headers.get("authorization", "").removeprefix("Bearer ")
            if not seen.headers.get("anthropic-version"):
                return 400, self._error(400, "anthropic-version: header is required")
        if self.keys and given not in self.keys:
            return 401, self._error(401, "invalid x-api-key" if self.dialect == "anthropic" else "Incorrect API key")
        body = seen.body if isinstance(seen.body, dict) else {}
        if not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list) or not body["messages"]:
            return 400, self._error(400, "model and messages are required")
        if self.dialect == "anthropic" and not isinstance(body.get("max_tokens"), int):
            return 400, self._error(400, "max_tokens: Field required")
        return None

    def _completion(self, seen: Seen) -> dict:
        reply: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": seen.body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self.text},
                         "finish_reason": self.finish or "stop", "logprobs": None}],
        }  # fmt: skip
        if self.usage is not None:
            reply["usage"] = {"prompt_tokens": self.usage[0], "completion_tokens": self.usage[1],
                              "total_tokens": sum(self.usage)}  # fmt: skip
        return reply

    def _message(self, seen: Seen) -> dict:
        content = [{"type": "thinking", "thinking": "Let me think.", "signature": "c2ln"}] if self.thinking else []
        content.append({"type": "text", "text": self.text})
        input_tokens, output_tokens = self.usage or (0, 0)
        return {
            "id": f"msg_{len(self.requests):04d}", "type": "message", "role": "assistant",
            "model": seen.body["model"], "content": content, "stop_reason": self.finish or "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }  # fmt: skip

    def _error(self, status: int, message: str, code: str | None = None) -> dict:
        if self.dialect == "anthropic":
            return {"type": "error", "error": {"type": ANTHROPIC_ERRORS.get(status, "api_error"), "message": message}}
        kind = "invalid_request_error" if status < 500 and status != 429 else "server_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def start_chat_fake(dialect: Dialect) -> ChatFake:
    fake = ChatFake(dialect)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self._handle()

        def do_GET(self):
            self._handle()

        def _handle(self):
            url = urllib.parse.urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            raw = self.rfile.read(int(headers.get("content-length") or 0))
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            seen = Seen(self.command, url.path, dict(urllib.parse.parse_qsl(url.query)), headers, body)
            status, reply, extra, delay = fake.answer(seen)
            with fake.lock:
                fake.in_flight += 1
                fake.most_in_flight = max(fake.most_in_flight, fake.in_flight)
            time.sleep(delay or fake.pause)
            with fake.lock:
                fake.in_flight -= 1
            payload = json.dumps(reply).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    fake.stop = stop
    return fake
