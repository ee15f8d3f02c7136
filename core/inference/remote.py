"""What every backend calling a provider's chat API shares: retries, errors by HTTP status, the answer.

Retries: only transient failures are tried again (429, 408, 409, 5xx,
timeouts, throttling: a `ChatUnanswered`, or any `ProviderError` marked
transient); a refusal (another 4xx: `ChatRefused`, `ProviderRefused`,
`ModelUnavailable`) propagates at once. `RetryPolicy` waits twice as long
each time, capped, with jitter; when the API says how long to wait
(Retry-After, or OpenAI's retry-after-ms) that wait is honoured as it stands,
and a wait longer than the cap ends the retries instead. The SDKs' own
retries are switched off where the clients are built, so there is one loop.

The failed call's request id goes into the error and the log.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from core.errors import FinetuneError, InvalidInput
from core.inference.base import (
    ChatBackend,
    ChatCall,
    ChatRefused,
    ChatResult,
    ChatUnanswered,
    FinishReason,
    MessageRole,
    ModelUnavailable,
    Outcome,
    Target,
)
from core.platform.timeutil import retry_after_seconds
from core.providers.base import ProviderError, ProviderRefused

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")  # what one API answers a call with

TIMEOUT_SECONDS = 120.0  # one chat call, connecting included
TRANSIENT_STATUSES = frozenset({408, 409, 429})  # besides every 5xx


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a call that failed transiently is tried again: `attempts` tries in all, the first included."""

    attempts: int = 4
    base_seconds: float = 0.5  # the first wait; each next one doubles
    cap_seconds: float = 30.0  # the longest wait, a Retry-After's included
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random  # 0..1: a wait is half to all of its backoff

    def wait(self, tried: int, retry_after: float | None) -> float | None:
        """Seconds to wait after try number `tried`; None when no try is left or the API asks for longer."""
        if tried >= self.attempts:
            return None
        if retry_after is not None:
            return max(retry_after, 0.0) if retry_after <= self.cap_seconds else None
        backoff = min(self.cap_seconds, self.base_seconds * 2.0 ** (tried - 1))
        return backoff * (0.5 + self.jitter() / 2)


def call_with_retries(
    attempt: Callable[[], T], *, policy: RetryPolicy, what: str, stopped: threading.Event | None = None
) -> T:
    """`attempt()`, tried again after each transient ProviderError as `policy` allows (not once `stopped` is set)."""
    tried = 0
    while True:
        tried += 1
        try:
            return attempt()
        except ProviderError as exc:
            if not exc.transient:
                raise
            retry_after = exc.retry_after if isinstance(exc, ChatUnanswered) else None
            wait = policy.wait(tried, retry_after)
            if wait is None or (stopped is not None and stopped.is_set()):
                raise _given_up(exc, tried) from exc
            log.warning("%s failed (%s); try %d of %d in %.2f s", what, exc.message, tried + 1, policy.attempts, wait)
            policy.sleep(wait)


def _given_up(exc: ProviderError, tried: int) -> ProviderError:
    if not isinstance(exc, ChatUnanswered):
        return exc
    asked = exc.retry_after
    hint = f"The API asked to wait {asked:g} s; try again then." if asked is not None else "Try again later."
    return ChatUnanswered(
        f"{exc.message} (tried {tried} time{'s' if tried != 1 else ''})",
        hint=hint,
        request_id=exc.request_id,
        retry_after=asked,
        **exc.ids,
    )


def retry_after(headers: Mapping[str, str], *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the API asks to wait: `retry-after-ms`, else `retry-after` in seconds or as an HTTP date."""
    found = {key.lower(): value for key, value in headers.items()}
    milliseconds = retry_after_seconds(found.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000.0
    return retry_after_seconds(found.get("retry-after"), now=datetime.fromtimestamp(now(), UTC))


# Errors by HTTP status --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiLabels:
    """How one API is named in errors, and which settings its errors point to."""

    api: str  # "OpenAI", "Anthropic", ...
    key_setting: str  # the setting holding its key
    not_found_hint: str  # what to check when the model is not found


def status_failure(
    status: int,
    said: str,
    *,
    labels: ApiLabels,
    target: Target,
    request_id: str | None,
    waited: float | None,
    code: str | None = None,
) -> ProviderError:
    """The error for an HTTP error answer: transient for 408, 409, 429 and 5xx; a refusal otherwise."""
    where = f"HTTP {status}" + (f", request id {request_id}" if request_id else "")
    text = f"{labels.api} did not answer with {target.name} ({where}): {said}"
    model = target.name
    if status == 429 and code == "insufficient_quota":
        hint = "Add credit or raise the quota; retrying sooner will not help."
        return ProviderRefused(text, hint=hint, request_id=request_id, model=model)
    if status in TRANSIENT_STATUSES or status >= 500:
        return ChatUnanswered(
            text, hint="Tried again with backoff.", request_id=request_id, retry_after=waited, model=model
        )
    if status == 401:
        hint = f"Check {labels.key_setting}: the key was not accepted."
        return ChatRefused(text, hint=hint, request_id=request_id, model=model)
    if status == 403:
        hint = f"The key in {labels.key_setting} may not use this model; check its permissions, project or region."
        return ProviderRefused(text, hint=hint, request_id=request_id, model=model)
    if status == 404:
        return ModelUnavailable(text, hint=labels.not_found_hint, request_id=request_id, model=model)
    hint = "The API refused the request as it stands, so it was not retried; change what the message names."
    return ChatRefused(text, hint=hint, request_id=request_id, model=model)


def unreachable(api: str, target: Target, exc: Exception) -> ChatUnanswered:
    """A call that got no answer at all (connection refused or reset, a timeout)."""
    return ChatUnanswered(
        f"{api} could not be reached to answer with {target.name}: {type(exc).__name__}: {exc}",
        hint="Check the network and the API's base URL; it was tried again with backoff.",
        model=target.name,
    )


# Requests and answers -----------------------------------------------------------------------------------


def system_and_turns(call: ChatCall, *, api: str) -> tuple[str | None, list[tuple[str, str]]]:
    """The system messages joined (for APIs that take the system prompt apart) and the other turns in order."""
    messages = call.request.messages
    system = [m.content for m in messages if m.role is MessageRole.SYSTEM]
    turns = [(m.role.value, m.content) for m in messages if m.role is not MessageRole.SYSTEM]
    if not turns:
        raise InvalidInput(
            f"`messages` holds only system messages; {api} needs at least one user message to answer.",
            hint='Add e.g. {"role": "user", "content": "..."} after the system message.',
            param="messages",
        )
    return ("\n\n".join(system) if system else None), turns


def check_temperature(call: ChatCall, *, api: str, highest: float) -> None:
    """InvalidInput, before any call, when `temperature` is above what the API takes."""
    if call.request.temperature > highest:
        raise InvalidInput(
            f"`temperature` must be at most {highest:g} for {api}, got {call.request.temperature:g}.",
            hint=f"Use a temperature from 0 to {highest:g} with {api} models.",
            param="temperature",
        )


def answered(
    call: ChatCall,
    target: Target,
    *,
    texts: Iterable[str],
    finish: FinishReason,
    usage: tuple[int, int] | None,
) -> ChatResult:
    """The ChatResult of a whole answer, its text handed to `on_text`; cost is left to the engine's pricing."""
    text = "".join(texts)
    if call.on_text is not None:
        call.on_text("")
        if text:
            call.on_text(text)
    input_tokens, output_tokens = usage if usage is not None else (0, 0)
    return ChatResult(
        text=text,
        finish_reason=finish,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_ms=0.0,  # the engine measures it
        cost_usd=None,
        model=target.name,
        cost_note=None if usage is not None else f"{target.name} reported no token usage, so its cost is unknown.",
    )


def stopped_early(target: Target) -> ProviderError:
    return ProviderError(f"the call to {target.name} was abandoned by its caller before it was sent.")


class RemoteChatBackend(ChatBackend, Generic[R]):
    """A provider's chat API, one conversation per call: build the request, send it with retries, read the answer.

    Subclasses say how (`params`, `send`, `read`); the retries, the stop check and turning named errors into
    the call's outcome are the same for every API.
    """

    api: ClassVar[str]  # how the API is named in errors: "OpenAI", "Anthropic", "Bedrock", ...

    def __init__(self, client: Any, *, retry: RetryPolicy | None = None) -> None:
        self.client = client
        self.retry = retry or RetryPolicy()

    def generate(self, target: Target, calls: Sequence[ChatCall]) -> list[Outcome]:
        return [self._answer(target, call) for call in calls]

    def close(self) -> None:
        self.client.close()

    def _answer(self, target: Target, call: ChatCall) -> Outcome:
        try:
            params = self.params(target, call)
            reply = call_with_retries(
                lambda: self._send(target, call, params),
                policy=self.retry,
                what=f"{self.api} chat with {target.name}",
                stopped=call.stopped,
            )
            return self.read(target, call, reply)
        except FinetuneError as exc:
            return exc

    def _send(self, target: Target, call: ChatCall, params: dict[str, Any]) -> R:
        if call.stopped.is_set():
            raise stopped_early(target)
        return self.send(target, params)

    @abstractmethod
    def params(self, target: Target, call: ChatCall) -> dict[str, Any]:
        """The API's arguments for `call`; InvalidInput for what the API would refuse anyway."""

    @abstractmethod
    def send(self, target: Target, params: dict[str, Any]) -> R:
        """One attempt; a named ProviderError (transient or not) for every failure."""

    @abstractmethod
    def read(self, target: Target, call: ChatCall, reply: R) -> Outcome:
        """The call's outcome from the API's answer."""
