"""OpenAI's chat completions API under `finetune serve`, answered by locally trained versions.

    POST /v1/chat/completions
    GET  /v1/models
    Authorization: Bearer <an application token from FINETUNE_APP_TOKENS>

`model` is a version id (`support:v3`), a model name (`support`: what its
`production` alias serves) or `support@staging`; a name resolves for the
caller named by `user` (else the application token's name) exactly as
`GET /v1/models/{name}/resolve?key=` does, so one user keeps one version while
a canary runs. Only local versions answer here; another provider's version is
refused with the model id to call it by there.

The body speaks OpenAI's schema closely enough for its SDKs: `messages` (text
content, as a string or text parts; `developer` is a system message),
`max_tokens` or `max_completion_tokens`, `temperature` (0 is greedy), `top_p`,
`stop`, `seed`, `n` (1 only), `user`, and `stream` (server-sent events in
OpenAI's chunk format, ending with `data: [DONE]`) with
`stream_options.include_usage`. Any other parameter is refused by name unless
it is null or its neutral value. Errors use OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}`, and name the parameter and
the fix; bodies are capped at MAX_BODY_BYTES (413 beyond).

Generation runs on the inference engine's threads (`core.inference`), never on
the event loop: calls for one model are batched, FINETUNE_INFERENCE_CONCURRENCY
batches run at once, and a full queue is answered 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bot.http_api import BEARER_CHALLENGE, application_caller, application_tokens
from core import inference, registry
from core.errors import FinetuneError, InvalidInput, NotFound, PermissionDenied
from core.inference import ChatCall, ChatRequest, ChatResult, InferenceBusy, InferenceEngine, Target
from core.platform.timeutil import parse_iso
from core.providers import ProviderError
from core.services import Services

log = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
MAX_BODY_BYTES = 2 * 1024 * 1024
RETRY_AFTER_SECONDS = 2
OWNER = "finetune-ops"

SUPPORTED = (
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed", "n",
    "stream", "stream_options", "user",
)  # fmt: skip
NEUTRAL: dict[str, object] = {  # parameters this endpoint cannot honour, accepted at the value that asks for nothing
    "frequency_penalty": 0,
    "presence_penalty": 0,
    "logprobs": False,
    "store": False,
    "response_format": {"type": "text"},
}
MESSAGE_KEYS = ("role", "content", "name")
_DONE = "data: [DONE]\n\n"


def openai_routes(services: Services, engine: InferenceEngine) -> list[Route]:
    """POST /v1/chat/completions and GET /v1/models, checking FINETUNE_APP_TOKENS as they are when serve starts."""
    api = _OpenAIApi(services, engine, application_tokens(services.settings))
    return [Route(CHAT_PATH, api.completions, methods=["POST"]), Route(MODELS_PATH, api.models, methods=["GET"])]


class _Refused(Exception):
    """An answer in OpenAI's error shape, raised where the problem is found."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None,
        kind: str = "invalid_request_error", headers: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        self.response = JSONResponse(self.body, status_code=status, headers=dict(headers or {}))


@dataclass(frozen=True, slots=True)
class _Chat:
    """A parsed request body."""

    model: str
    user: str | None
    stream: bool
    include_usage: bool
    request: ChatRequest


class _OpenAIApi:
    def __init__(self, services: Services, engine: InferenceEngine, tokens: Mapping[str, bytes]) -> None:
        self.services = services
        self.engine = engine
        self.tokens = tokens

    async def completions(self, request: Request) -> Response:
        try:
            caller = self._caller(request)
            chat = parse_chat(await read_json(request))
            target = await asyncio.to_thread(
                inference.target_for, self.services.store, chat.model, key=chat.user or caller
            )
            if chat.stream:
                return await self._stream(target, chat)
            result = await self.engine.chat(target, chat.request)
        except _Refused as refused:
            return refused.response
        except FinetuneError as exc:
            return refusal(exc).response
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read it
        except Exception:
            log.exception("a chat completion failed")
            return _internal().response
        return JSONResponse(completion(_completion_id(), int(time.time()), result))

    async def models(self, request: Request) -> Response:
        try:
            self._caller(request)
            found = await asyncio.to_thread(inference.callable_models, self.services.store)
        except _Refused as refused:
            return refused.response
        except Exception:
            log.exception("listing the models callable over /v1 failed")
            return _internal().response
        data = [
            {
                "id": m.id,
                "object": "model",
                "created": _epoch(m.created_at),
                "owned_by": OWNER,
                "versions": list(m.versions),
            }
            for m in found
        ]
        return JSONResponse({"object": "list", "data": data})

    def _caller(self, request: Request) -> str:
        name, message = application_caller(request, self.tokens)
        if name is None:
            raise _Refused(
                401, message, code="invalid_api_key", kind="authentication_error",
                headers={"WWW-Authenticate": BEARER_CHALLENGE},
            )  # fmt: skip
        return name

    async def _stream(self, target: Target, chat: _Chat) -> Response:
        """Start the answer; the response begins once generation has (so a refusal is still a plain error)."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()

        def put(item: str | None) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, item)  # in order, after every piece before it

        call = ChatCall(chat.request, on_text=put)
        future = self.engine.submit_call(target, call)
        future.add_done_callback(lambda _: _quietly(put, None))
        try:
            first = await pieces.get()
        except asyncio.CancelledError:  # the client left while the call waited
            future.cancel()
            call.stopped.set()
            raise
        if first is None:  # over before it began: refused, so this raises the refusal
            pieces.put_nowait(future.result().text)
            pieces.put_nowait(None)
        chunks = _chunks(call, future, pieces, model=target.name, include_usage=chat.include_usage)
        return StreamingResponse(
            chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )


# Reading the request ------------------------------------------------------------------------------


async def read_json(request: Request) -> Any:
    """The body as JSON, at most MAX_BODY_BYTES of UTF-8; _Refused (413 or 400) saying what is wrong."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        parts.append(chunk)
    raw = b"".join(parts)
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _Refused(
            400, f"the body is not UTF-8 text (invalid byte at offset {exc.start}); send JSON in UTF-8."
        ) from None
    except RecursionError:
        raise _Refused(
            400, "the body nests arrays or objects too deeply; send the request as OpenAI documents it."
        ) from None
    except ValueError as exc:
        raise _Refused(400, f"the body is not JSON ({exc}); send a JSON object such as {_EXAMPLE}.") from None


_EXAMPLE = '{"model": "support", "messages": [{"role": "user", "content": "Hello"}]}'


def parse_chat(body: Any) -> _Chat:
    """The request a chat completions body asks for; _Refused or InvalidInput naming the parameter."""
    if not isinstance(body, dict):
        raise _Refused(400, f"the body must be a JSON object such as {_EXAMPLE}.")
    _refuse_unsupported(body)
    stream = _flag(body, "stream")
    limit_name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    both = body.get("max_tokens") is not None and limit_name == "max_completion_tokens"
    if both and body["max_tokens"] != body["max_completion_tokens"]:
        raise _Refused(400, "give one of `max_tokens` and `max_completion_tokens`, not both.", param="max_tokens")
    request = ChatRequest.build(
        _messages(body.get("messages")),
        max_new_tokens=_given(body, limit_name, inference.DEFAULT_MAX_NEW_TOKENS),
        temperature=_given(body, "temperature", 1.0),
        top_p=_given(body, "top_p", 1.0),
        stop=body.get("stop"),
        seed=body.get("seed"),
        names={"max_new_tokens": limit_name},
    )
    return _Chat(
        model=_text(body, "model", required=True),
        user=_text(body, "user") or None,
        stream=stream,
        include_usage=_include_usage(body, stream),
        request=request,
    )


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for name, value in body.items():
        if name in SUPPORTED or value is None or (name in NEUTRAL and value == NEUTRAL[name]):
            continue
        shown = name if len(name) <= 60 else name[:60] + "…"
        raise _Refused(
            400,
            f"parameter `{shown}` is not supported by this endpoint; leave it out (supported: {', '.join(SUPPORTED)}).",
            param=shown,
            code="unsupported_parameter",
        )
    if body.get("n") not in (None, 1) or isinstance(body.get("n"), bool):
        raise _Refused(
            400, "`n` must be 1 here: one answer per request; send several requests for several answers.",
            param="n", code="unsupported_value",
        )  # fmt: skip


def _given(body: dict[str, Any], name: str, default: Any) -> Any:
    """A parameter's value; null means the default, as in OpenAI's API."""
    value = body.get(name)
    return default if value is None else value


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value or len(value) > registry.KEY_LIMIT or not _is_unicode(value):
        what = (
            "a model version (support:v3), a model name (support) or name@alias"
            if name == "model"
            else "the caller's stable id"
        )
        raise _Refused(
            400,
            f"`{name}` must be 1-{registry.KEY_LIMIT} characters of text: {what}.",
            param=name,
            code="invalid_value",
        )
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    value = _given(body, name, False)
    if not isinstance(value, bool):
        raise _Refused(400, f"`{name}` must be true or false.", param=name, code="invalid_type")
    return value


def _include_usage(body: dict[str, Any], stream: bool) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not stream:
        raise _Refused(400, '`stream_options` is only allowed with "stream": true.', param="stream_options")
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise _Refused(
            400, '`stream_options` must be {"include_usage": true|false}; nothing else is supported.',
            param="stream_options",
        )  # fmt: skip
    return _flag(options, "include_usage")


def _messages(given: Any) -> Any:
    """OpenAI's message forms as the core reads them: text parts joined, `developer` as `system`."""
    if not isinstance(given, list):
        return given  # the core names what is wrong with it
    return [_message(item, f"messages[{index}]") for index, item in enumerate(given)]


def _message(item: Any, where: str) -> Any:
    if not isinstance(item, dict):
        return item
    for key, value in item.items():
        if key not in MESSAGE_KEYS and value is not None:
            shown = key if len(key) <= 60 else key[:60] + "…"
            raise _Refused(
                400, f"`{where}.{shown}` is not supported here: messages carry text only (no tools, audio or images).",
                param=f"{where}.{shown}", code="unsupported_parameter",
            )  # fmt: skip
    role = "system" if item.get("role") == "developer" else item.get("role")
    return {"role": role, "content": _content(item.get("content"), f"{where}.content")}


def _content(content: Any, where: str) -> Any:
    if not isinstance(content, list):
        return content
    texts = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise _Refused(
                400, f'`{where}[{index}]` must be a text part, {{"type": "text", "text": "..."}}; only text is supported.',
                param=f"{where}[{index}]", code="invalid_value",
            )  # fmt: skip
        texts.append(part["text"])
    return "\n".join(texts)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Answers ------------------------------------------------------------------------------------------


def completion(ident: str, created: int, result: ChatResult) -> dict[str, Any]:
    """A `chat.completion` object."""
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text, "refusal": None},
                "logprobs": None,
                "finish_reason": str(result.finish_reason),
            }
        ],
        "usage": usage(result),
        "system_fingerprint": None,
    }


def usage(result: ChatResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.input_tokens,
        "completion_tokens": result.output_tokens,
        "total_tokens": result.input_tokens + result.output_tokens,
    }


async def _chunks(
    call: ChatCall, future: Future[ChatResult], pieces: asyncio.Queue[str | None], *, model: str, include_usage: bool
) -> AsyncIterator[str]:
    """`chat.completion.chunk` events: the role, each piece of text, the finish reason, usage if asked, [DONE]."""
    ident, created = _completion_id(), int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}  # fmt: skip
        return _event(body)

    try:
        yield chunk({"role": "assistant", "content": ""})
        while (piece := await pieces.get()) is not None:
            if piece:
                yield chunk({"content": piece})
        try:
            result = future.result()
        except FinetuneError as exc:
            yield _event(refusal(exc).body)
            yield _DONE
            return
        yield chunk({}, str(result.finish_reason))
        if include_usage:
            yield _event({"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                          "choices": [], "usage": usage(result)})  # fmt: skip
        yield _DONE
    finally:
        call.stopped.set()  # a client that went away ends its answer early


def _event(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


def refusal(exc: FinetuneError) -> _Refused:
    """A core error in OpenAI's error shape, naming the parameter it concerns."""
    message = f"{exc.message} {exc.hint}" if exc.hint else exc.message
    param = exc.ids.get("param")
    param = str(param) if param is not None else ("model" if "model" in exc.ids or "alias" in exc.ids else None)
    if isinstance(exc, InferenceBusy):
        return _Refused(
            503, message, code="server_busy", kind="server_error",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )  # fmt: skip
    if isinstance(exc, ProviderError):
        return _Refused(503, message, code="model_unavailable", kind="server_error", param=param)
    if isinstance(exc, NotFound):
        return _Refused(404, message, param="model", code="model_not_found")
    if isinstance(exc, PermissionDenied):
        return _Refused(403, message, param=param, code="permission_denied", kind="permission_error")
    code = "invalid_value" if isinstance(exc, InvalidInput) else "conflict"
    return _Refused(400, message, param=param, code=code)


def _internal() -> _Refused:
    return _Refused(500, "internal error; the server log has details.", code="internal_error", kind="server_error")


def _too_large() -> _Refused:
    return _Refused(
        413, f"the body is larger than {MAX_BODY_BYTES} bytes; shorten the conversation.", code="request_too_large"
    )


def _completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


def _epoch(moment: str) -> int:
    return int(parse_iso(moment).timestamp())


def _quietly(put: Any, item: str | None) -> None:
    """Deliver `item` unless the event loop is gone (serve stopping)."""
    with contextlib.suppress(RuntimeError):
        put(item)
