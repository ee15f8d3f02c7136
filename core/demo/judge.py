"""The demo's judge: an OpenAI-compatible chat endpoint on 127.0.0.1 that judges as the simulated users would.

`finetune demo` runs with no keys and no network, so no LLM can judge its
evaluations. This stand-in reads the judge prompt the evaluation sends (the
rubric with the conversation and the two answers), works out which agent and
customer message it is about, and prefers the answer that agent's simulated
reviewers would keep more of (`core.demo.users.preference_score`: nothing of a
draft that does not answer the customer, else the share their edit keeps), or
says TIE when the two are within `TIE_WITHIN`. It is therefore
well calibrated on the demo's data by construction, which a real judge has to
earn: the evaluation reports its agreement with the users' own edits either way.
With ANTHROPIC_API_KEY set, a real model judges instead (FINETUNE_JUDGE_MODEL).

It is served over HTTP, not called in process, so the evaluation talks to it
through the same OpenAI-compatible client as it would to Ollama or vLLM
(FINETUNE_COMPATIBLE_BASE_URL).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.demo import users
from core.demo.samples import AGENTS, profile
from core.errors import FinetuneError

MODEL = "demo-judge"
TIE_WITHIN = 0.02
MAX_BODY = 1 << 20
_ANSWERS = re.compile(r"<answer_a>\n(.*?)\n</answer_a>.*?<answer_b>\n(.*?)\n</answer_b>", re.S)
_SYSTEM = re.compile(r"^SYSTEM: (.*?)$", re.M)
_USER = re.compile(r"\n\nUSER: (.*?)(?=\n\n(?:ASSISTANT|USER): |\n</conversation>)", re.S)


def verdict(prompt: str) -> str:
    """`A`, `B` or `TIE` for one judge prompt; TIE when the prompt is not about a demo conversation."""
    answers = _ANSWERS.search(prompt)
    user = _USER.search(prompt)
    agent = _agent(prompt)
    if answers is None or user is None or agent is None:
        return "TIE"
    try:
        first, second = (users.preference_score(agent, user.group(1).strip(), answer) for answer in answers.groups())
    except FinetuneError:
        return "TIE"
    if abs(first - second) <= TIE_WITHIN:
        return "TIE"
    return "A" if first > second else "B"


def _agent(prompt: str) -> str | None:
    system = _SYSTEM.search(prompt)
    if system is None:
        return None
    for agent in AGENTS:
        if profile(agent).system.strip() == system.group(1).strip():
            return agent
    return None


@dataclass
class JudgeServer:
    url: str  # the OpenAI-compatible base URL, ending in /v1
    server: ThreadingHTTPServer
    judged: int = 0

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_judge() -> JudgeServer:
    """Serve the judge on a free port of 127.0.0.1 until `stop()`."""
    state: dict[str, JudgeServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if not self.path.endswith("/chat/completions") or length > MAX_BODY:
                self._answer(404, {"error": {"message": f"unknown path {self.path}", "type": "invalid_request_error"}})
                return
            try:
                body = json.loads(self.rfile.read(length))
                prompt = str(body["messages"][-1]["content"])
            except (ValueError, KeyError, IndexError, TypeError):
                self._answer(400, {"error": {"message": "messages are required", "type": "invalid_request_error"}})
                return
            pick = verdict(prompt)
            state["judge"].judged += 1
            text = f"Compared with what the reviewers want for this customer.\n\nWINNER: {pick}"
            self._answer(200, _completion(text, model=str(body.get("model") or MODEL), prompt=prompt))

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    judge = JudgeServer(url=f"http://127.0.0.1:{server.server_address[1]}/v1", server=server)
    state["judge"] = judge
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return judge


def _completion(text: str, *, model: str, prompt: str) -> dict[str, Any]:
    prompt_tokens, completion_tokens = len(prompt.split()), len(text.split())
    return {
        "id": f"chatcmpl-demo-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }  # fmt: skip
