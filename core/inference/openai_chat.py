"""Chats through OpenAI's chat completions API: OpenAI, Azure OpenAI, and any OpenAI-compatible server.

One class speaks the API; three backends differ in where they send it:

- `openai`: api.openai.com, or OPENAI_BASE_URL, with OPENAI_API_KEY; the model
  is a base model id (`gpt-4.1-mini`) or a fine-tuned one (`ft:...`).
- `azure`: the Azure OpenAI resource at AZURE_OPENAI_ENDPOINT, with
  AZURE_OPENAI_API_KEY and AZURE_OPENAI_API_VERSION; the model is the name of a
  deployment (`/openai/deployments/{name}/chat/completions?api-version=...`).
  A fine-tuned Azure version is called through the deployment named after its
  model id.
- `compatible`: the server at FINETUNE_COMPATIBLE_BASE_URL (Ollama, vLLM,
  another `finetune serve`'s /v1), with FINETUNE_COMPATIBLE_API_KEY when it
  asks for one. It is sent `max_tokens`, which such servers all read; OpenAI
  and Azure get `max_completion_tokens`, which their newer models require.

Sampling parameters are sent only when a request changes them from the API's
defaults (temperature 1, top_p 1), since some models refuse any other value.
The client's own retries are off: `core.inference.remote` retries transient
failures once, honouring Retry-After.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import openai
from openai.types.chat import ChatCompletion

from core.inference.base import ChatCall, FinishReason, ModelUnavailable, Outcome, Target
from core.inference.checks import check_compatible
from core.inference.remote import (
    TIMEOUT_SECONDS,
    ApiLabels,
    RemoteChatBackend,
    RetryPolicy,
    answered,
    retry_after,
    status_failure,
    unreachable,
)
from core.platform.settings import Settings
from core.providers.base import ProviderError
from core.providers.checks import check_azure, check_openai
from core.vocabulary import ChatOnlyProvider, ChatProvider, Provider

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
UNUSED_KEY = "unused"  # the client wants a key; a compatible server without one ignores it

# Every finish reason the API documents -> ours; a compatible server's own words count as a stop.
FINISH_REASONS: dict[str, FinishReason] = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "content_filter": FinishReason.STOP,
    "tool_calls": FinishReason.STOP,
    "function_call": FinishReason.STOP,
}


class OpenAIChatBackend(RemoteChatBackend[ChatCompletion]):
    """Answers through api.openai.com (or OPENAI_BASE_URL)."""

    provider: ClassVar[ChatProvider] = Provider.OPENAI
    labels: ClassVar[ApiLabels] = ApiLabels(
        api="OpenAI",
        key_setting="OPENAI_API_KEY",
        not_found_hint="Check the model id: a fine-tuned model belongs to the organisation and project that trained it.",
    )
    api: ClassVar[str] = labels.api
    token_limit: ClassVar[str] = "max_completion_tokens"

    def params(self, target: Target, call: ChatCall) -> dict[str, Any]:
        """The request's body: the conversation, the token limit, and what the request changes from the defaults."""
        request = call.request
        messages = [{"role": message.role.value, "content": message.content} for message in request.messages]
        params: dict[str, Any] = {"model": target.model, "messages": messages, self.token_limit: request.max_new_tokens}
        if request.temperature != 1.0:
            params["temperature"] = request.temperature
        if request.top_p != 1.0:
            params["top_p"] = request.top_p
        if request.stop:
            params["stop"] = list(request.stop)
        if request.seed is not None:
            params["seed"] = request.seed
        return params

    def send(self, target: Target, params: dict[str, Any]) -> ChatCompletion:
        try:
            completion: ChatCompletion = self.client.chat.completions.create(**params)
        except openai.APIStatusError as exc:
            raise self._status_error(exc, target) from exc
        except openai.APIConnectionError as exc:  # timeouts included
            raise unreachable(self.labels.api, target, exc) from exc
        except openai.OpenAIError as exc:  # an answer that is not a chat completion
            raise ModelUnavailable(
                f"{self.labels.api} answered {target.name} with something that is no chat completion: {exc}",
                hint="Check that the base URL points at a chat completions API.",
                model=target.name,
            ) from exc
        log.debug("%s answered %s (request id %s)", self.labels.api, target.name, completion._request_id)
        return completion

    def _status_error(self, exc: openai.APIStatusError, target: Target) -> ProviderError:
        body = exc.body if isinstance(exc.body, dict) else {}
        said = str(body.get("message") or exc.message)
        return status_failure(
            exc.status_code, said, labels=self.labels, target=target, request_id=exc.request_id,
            waited=retry_after(exc.response.headers), code=exc.code,
        )  # fmt: skip

    def read(self, target: Target, call: ChatCall, reply: ChatCompletion) -> Outcome:
        if not reply.choices:
            return ModelUnavailable(
                f"{self.labels.api} answered {target.name} with no choices.",
                hint="The server may not support chat completions for this model.",
                model=target.name,
            )
        choice = reply.choices[0]
        usage = reply.usage
        return answered(
            call, target,
            texts=[choice.message.content or ""],
            finish=FINISH_REASONS.get(str(choice.finish_reason), FinishReason.STOP),
            usage=(usage.prompt_tokens, usage.completion_tokens) if usage is not None else None,
        )  # fmt: skip


class AzureChatBackend(OpenAIChatBackend):
    """Answers through an Azure OpenAI resource: `target.model` names the deployment."""

    provider: ClassVar[ChatProvider] = Provider.AZURE
    labels: ClassVar[ApiLabels] = ApiLabels(
        api="Azure OpenAI",
        key_setting="AZURE_OPENAI_API_KEY",
        not_found_hint="Azure OpenAI calls a model through a deployment: deploy the model in Azure under this name "
        "(a fine-tuned version under its model id), or call azure:DEPLOYMENT; check AZURE_OPENAI_API_VERSION too.",
    )
    api: ClassVar[str] = labels.api


class CompatibleChatBackend(OpenAIChatBackend):
    """Answers through the OpenAI-compatible server at FINETUNE_COMPATIBLE_BASE_URL."""

    provider: ClassVar[ChatProvider] = ChatOnlyProvider.COMPATIBLE
    labels: ClassVar[ApiLabels] = ApiLabels(
        api="The OpenAI-compatible server",
        key_setting="FINETUNE_COMPATIBLE_API_KEY",
        not_found_hint="Check the model name against the server's own list (GET /v1/models); an Ollama model must "
        "be pulled first.",
    )
    api: ClassVar[str] = labels.api
    token_limit: ClassVar[str] = "max_tokens"


CLIENT_OPTIONS: dict[str, Any] = {"max_retries": 0, "timeout": TIMEOUT_SECONDS}  # one retry loop: ours


def openai_backend(settings: Settings, *, retry: RetryPolicy | None = None) -> OpenAIChatBackend:
    check_openai(settings)
    assert settings.openai_api_key is not None  # check_openai says so otherwise
    client = openai.OpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url or OPENAI_BASE_URL,
        **CLIENT_OPTIONS,
    )
    return OpenAIChatBackend(client, retry=retry)


def azure_backend(settings: Settings, *, retry: RetryPolicy | None = None) -> OpenAIChatBackend:
    check_azure(settings)
    endpoint, key = settings.azure_openai_endpoint, settings.azure_openai_api_key
    assert endpoint is not None and key is not None  # check_azure says so otherwise
    client = openai.AzureOpenAI(
        azure_endpoint=endpoint,
        api_key=key.get_secret_value(),
        api_version=settings.azure_openai_api_version,
        **CLIENT_OPTIONS,
    )
    return AzureChatBackend(client, retry=retry)


def compatible_backend(settings: Settings, *, retry: RetryPolicy | None = None) -> OpenAIChatBackend:
    base_url = check_compatible(settings)
    key = settings.compatible_api_key.get_secret_value() if settings.compatible_api_key else UNUSED_KEY
    client = openai.OpenAI(api_key=key, base_url=base_url, **CLIENT_OPTIONS)
    return CompatibleChatBackend(client, retry=retry)
