"""Chats with Claude through Anthropic's Messages API (POST /v1/messages), with the official client.

System messages go apart (`system`), the other turns in order; `max_tokens` is
the request's `max_new_tokens`. Sampling parameters are sent only when a
request changes them from the defaults (recent Claude models refuse others
with HTTP 400), and `temperature` above 1 is refused before any call, as the
API takes 0 to 1. The API takes no seed. The answer's text is its text
blocks, joined; thinking blocks are not part of it, though their tokens are
billed as output. Usage is the API's `input_tokens` and `output_tokens`.

The key is ANTHROPIC_API_KEY and the base URL ANTHROPIC_BASE_URL (else
Anthropic's), both passed to the client, so it reads no credentials of its
own. The client's retries are off: `core.inference.remote` retries transient
failures (429, 529 overloaded, other 5xx, timeouts) honouring Retry-After.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import anthropic
from anthropic.types import Message

from core.inference.base import ChatCall, FinishReason, ModelUnavailable, Outcome, Target
from core.inference.checks import check_anthropic
from core.inference.remote import (
    TIMEOUT_SECONDS,
    ApiLabels,
    RemoteChatBackend,
    RetryPolicy,
    answered,
    check_temperature,
    retry_after,
    status_failure,
    system_and_turns,
    unreachable,
)
from core.platform.settings import Settings
from core.providers.base import ProviderError, ProviderNotConfigured
from core.vocabulary import ChatOnlyProvider, ChatProvider

log = logging.getLogger(__name__)

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
LABELS = ApiLabels(
    api="Anthropic",
    key_setting="ANTHROPIC_API_KEY",
    not_found_hint="Check the model id against Anthropic's list of models (e.g. claude-sonnet-5-5); a retired "
    "model answers 404.",
)

# Every stop reason the API documents -> ours.
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.STOP,
    "pause_turn": FinishReason.STOP,
    "refusal": FinishReason.STOP,
}


class AnthropicChatBackend(RemoteChatBackend[Message]):
    """Answers with Claude models through the Messages API."""

    provider: ClassVar[ChatProvider] = ChatOnlyProvider.ANTHROPIC
    api: ClassVar[str] = "Anthropic"

    def read(self, target: Target, call: ChatCall, reply: Message) -> Outcome:
        return answered(
            call, target,
            texts=[block.text for block in reply.content if block.type == "text"],
            finish=STOP_REASONS.get(str(reply.stop_reason), FinishReason.STOP),
            usage=(reply.usage.input_tokens, reply.usage.output_tokens),
        )  # fmt: skip

    def params(self, target: Target, call: ChatCall) -> dict[str, Any]:
        """The request's body; InvalidInput for what the API would refuse anyway."""
        check_temperature(call, api="Anthropic", highest=1.0)
        system, turns = system_and_turns(call, api="Anthropic")
        request = call.request
        messages = [{"role": role, "content": text} for role, text in turns]
        params: dict[str, Any] = {"model": target.model, "max_tokens": request.max_new_tokens, "messages": messages}
        if system is not None:
            params["system"] = system
        if request.temperature != 1.0:
            params["temperature"] = request.temperature
        if request.top_p != 1.0:
            params["top_p"] = request.top_p
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        return params

    def send(self, target: Target, params: dict[str, Any]) -> Message:
        try:
            message: Message = self.client.messages.create(**params)
        except anthropic.APIStatusError as exc:
            raise _status_error(exc, target) from exc
        except anthropic.APIConnectionError as exc:  # timeouts included
            raise unreachable(LABELS.api, target, exc) from exc
        except anthropic.AnthropicError as exc:  # an answer that is no message
            raise ModelUnavailable(
                f"Anthropic answered {target.name} with something that is no message: {exc}",
                hint="Check that ANTHROPIC_BASE_URL points at the Messages API.",
                model=target.name,
            ) from exc
        log.debug("Anthropic answered %s (request id %s)", target.name, message._request_id)
        return message


def _status_error(exc: anthropic.APIStatusError, target: Target) -> ProviderError:
    said = exc.api_message or exc.message
    return status_failure(
        exc.status_code, str(said), labels=LABELS, target=target, request_id=exc.request_id,
        waited=retry_after(exc.response.headers), code=exc.type,
    )  # fmt: skip


def anthropic_backend(settings: Settings, *, retry: RetryPolicy | None = None) -> AnthropicChatBackend:
    check_anthropic(settings)
    assert settings.anthropic_api_key is not None  # check_anthropic says so otherwise
    try:
        client = anthropic.Anthropic(
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url or ANTHROPIC_BASE_URL,
            max_retries=0,  # one retry loop: ours
            timeout=TIMEOUT_SECONDS,
        )
    except anthropic.AnthropicError as exc:
        raise ProviderNotConfigured(
            f"cannot set up the Anthropic client: {exc}", hint="Check ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL."
        ) from exc
    return AnthropicChatBackend(client, retry=retry)
