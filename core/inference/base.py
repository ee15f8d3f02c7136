"""The provider-neutral chat contract: messages in; text, tokens, latency and cost out.

A `ChatRequest` is checked when it is built (`ChatRequest.build` names each
wrong argument the way its caller spelled it). A `ChatBackend` answers a batch
of `ChatCall`s for one `Target`; the engine (`core.inference.engine`) queues
calls, groups those a backend can answer together (`batch_key`) and bounds how
many batches run at once. A backend that cannot batch (a cloud API) keeps
`max_batch = 1` and answers one call at a time.

Errors: `InferenceBusy` (too many calls waiting: retry shortly),
`ModelUnavailable` (the target cannot be loaded or called here), `ChatRefused`
(a model's API refused the request as it stands: never retried) and
`ChatUnanswered` (a model's API did not answer this time: retried, then
raised as transient) join the `ProviderError` branch of the tree in
`core.errors`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from core.errors import FinetuneError, InvalidInput
from core.platform.settings import Settings
from core.providers.base import ProviderError
from core.vocabulary import ChatProvider

MAX_NEW_TOKENS = 4096  # the most tokens one answer may ask for
DEFAULT_MAX_NEW_TOKENS = 512  # when the caller names no limit
MAX_TEMPERATURE = 2.0
MAX_STOPS = 4  # stop sequences per request, as OpenAI allows
MAX_STOP_CHARS = 200
MAX_SEED = 2**63 - 1
MAX_MESSAGES = 2048


class FinishReason(StrEnum):
    """Why an answer ended: a stop (end of turn or a stop sequence), or the token limit."""

    STOP = "stop"
    LENGTH = "length"


class MessageRole(StrEnum):
    """Who says a chat message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class InferenceBusy(ProviderError):
    """Too many calls are waiting for a model; retry shortly."""


class ModelUnavailable(ProviderError):
    """The model cannot be loaded or called here (files missing, not downloaded, no chat template)."""


class ChatRefused(ProviderError):
    """A model's API refused the request as it stands (a 4xx); sending it again unchanged cannot help."""


class ChatUnanswered(ProviderError):
    """A model's API did not answer this time (throttled, overloaded, failing, timed out); always transient.

    `retry_after` is how long the API asked the caller to wait (its Retry-After), when it said.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        **ids: object,
    ) -> None:
        super().__init__(message, hint=hint, transient=True, request_id=request_id, **ids)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Target:
    """What answers: a provider and its model id; for a fine-tuned model, the base model it was trained from."""

    provider: ChatProvider
    # local: an adapter or model directory, or a Hugging Face id in the local cache; openai: a model or ft: id;
    # azure: a deployment name; bedrock: a model id or the ARN of a custom model's deployment; anthropic and
    # compatible: the API's model id
    model: str
    base_model: str | None = None
    version_id: str | None = None  # the registry version it came from, if any

    @property
    def name(self) -> str:
        """How answers name it: the version id when there is one, else the model id."""
        return self.version_id or self.model


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: MessageRole
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One conversation to answer and how: built through `build`, which checks every argument."""

    messages: tuple[ChatMessage, ...]
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 1.0  # 0: greedy decoding
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @classmethod
    def build(
        cls,
        messages: Sequence[Mapping[str, Any] | ChatMessage],
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: str | Sequence[str] | None = None,
        seed: int | None = None,
        names: Mapping[str, str] | None = None,
    ) -> ChatRequest:
        """A checked request; InvalidInput names the wrong argument as `names` spells it (default: as here)."""
        said = dict(names or {})
        return cls(
            messages=_messages(messages, said.get("messages", "messages")),
            max_new_tokens=_whole(max_new_tokens, said.get("max_new_tokens", "max_new_tokens"), 1, MAX_NEW_TOKENS),
            temperature=_number(temperature, said.get("temperature", "temperature"), 0.0, MAX_TEMPERATURE),
            top_p=_top_p(top_p, said.get("top_p", "top_p")),
            stop=_stops(stop, said.get("stop", "stop")),
            seed=None if seed is None else _whole(seed, said.get("seed", "seed"), 0, MAX_SEED),
        )


@dataclass(frozen=True, slots=True)
class ChatResult:
    """One answer. `latency_ms` runs from submission to the answer, waiting in the queue and retries included.

    `cost_usd` is the token usage times the catalog's inference prices (`core.inference.pricing`);
    when it is None, `cost_note` says why (no price in the catalog, no usage reported): never a guess.
    """

    text: str
    finish_reason: FinishReason
    input_tokens: int  # the model's own tokenizer's count
    output_tokens: int
    latency_ms: float
    cost_usd: float | None  # None when the price is unknown; local models are free
    model: str  # what answered: the target's name
    cost_note: str | None = None  # why cost_usd is None


TextSink = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ChatCall:
    """A request as a backend receives it, with where its text goes while it is being written.

    `on_text` receives "" once generation starts (the model is loaded and the prompt fits), then each new
    piece of text; the pieces add up to the answer's text. Setting `stopped` ends the answer early (the caller
    went away).
    """

    request: ChatRequest
    on_text: TextSink | None = None
    stopped: threading.Event = field(default_factory=threading.Event)


Outcome = ChatResult | FinetuneError  # per call: one bad prompt in a batch fails alone


class ChatBackend(ABC):
    """One way to answer chats: a local model, or a provider's API."""

    provider: ClassVar[ChatProvider]
    max_batch: ClassVar[int] = 1  # calls answered together; 1 for APIs taking one conversation per call

    def batch_key(self, request: ChatRequest) -> Hashable:
        """Calls of one target whose keys are equal may share a batch; by default none do."""
        return id(request)

    @abstractmethod
    def generate(self, target: Target, calls: Sequence[ChatCall]) -> list[Outcome]:
        """Answer `calls` (at most `max_batch`), in order; blocking, run on the engine's worker threads."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to free
        """Free what the backend holds (loaded models, clients)."""


BackendFactory = Callable[[Settings], ChatBackend]


# Checks at the boundary ---------------------------------------------------------------------------


def _messages(given: object, name: str) -> tuple[ChatMessage, ...]:
    if isinstance(given, (str, bytes)) or not isinstance(given, Sequence) or not given:
        raise InvalidInput(
            f"`{name}` must be a non-empty list of messages, got {_kind(given) if given else 'an empty one'}.",
            hint='Send e.g. [{"role": "user", "content": "Hello"}].',
            param=name,
        )
    if len(given) > MAX_MESSAGES:
        raise InvalidInput(
            f"`{name}` has {len(given)} messages; at most {MAX_MESSAGES} are accepted.",
            hint="Drop or summarise the oldest turns.",
            param=name,
        )
    return tuple(_message(item, f"{name}[{index}]") for index, item in enumerate(given))


def _message(item: object, name: str) -> ChatMessage:
    if isinstance(item, ChatMessage):
        return ChatMessage(_role(item.role, f"{name}.role"), _text(item.content, f"{name}.content"))
    if not isinstance(item, Mapping):
        raise InvalidInput(
            f"`{name}` must be an object with `role` and `content`, got {_kind(item)}.",
            hint='Send e.g. {"role": "user", "content": "Hello"}.',
            param=name,
        )
    return ChatMessage(_role(item.get("role"), f"{name}.role"), _text(item.get("content"), f"{name}.content"))


def _role(value: object, name: str) -> MessageRole:
    try:
        return MessageRole(value) if isinstance(value, str) else MessageRole("")
    except ValueError:
        raise InvalidInput(
            f"`{name}` must be one of {', '.join(MessageRole)}, got {_shown(value)}.",
            hint="Tool and function messages are not supported here.",
            param=name,
        ) from None


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(
            f"`{name}` must be a string, got {_kind(value)}.", hint="Send the message's text.", param=name
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"`{name}` contains a lone surrogate (an escape like \\ud800 that is no character).",
            hint="Send valid Unicode text: a character outside the BMP is one \\uXXXX\\uXXXX pair.",
            param=name,
        ) from None
    return value


def _whole(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(
            f"`{name}` must be a whole number from {low} to {high}, got {_shown(value)}.",
            hint=f"For example {name}={max(low, 1)}.",
            param=name,
        )
    return value


def _number(value: object, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidInput(
            f"`{name}` must be a number from {low:g} to {high:g}, got {_shown(value)}.",
            hint="0 picks the most likely token every time (greedy, repeatable); higher values vary more.",
            param=name,
        )
    return float(value)


def _top_p(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise InvalidInput(
            f"`{name}` must be a number above 0 and at most 1, got {_shown(value)}.",
            hint="1 samples from every token; 0.9 from the most likely ones making up 90%.",
            param=name,
        )
    return float(value)


def _stops(value: object, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, (list, tuple)) or len(stops) > MAX_STOPS:
        raise InvalidInput(
            f"`{name}` must be a string or a list of at most {MAX_STOPS} strings, got {_kind(value)}.",
            hint='For example "\\n\\n" or ["END", "\\n\\n"].',
            param=name,
        )
    for index, stop in enumerate(stops):
        where = f"{name}[{index}]" if not isinstance(value, str) else name
        text = _text(stop, where)
        if not 1 <= len(text) <= MAX_STOP_CHARS:
            raise InvalidInput(
                f"`{where}` must be 1-{MAX_STOP_CHARS} characters long, got {len(text)}.",
                hint="Leave out empty stop sequences.",
                param=where,
            )
    return tuple(stops)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    names = {dict: "an object", list: "a list", tuple: "a list", str: "a string", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else _kind(value)
