"""Chats through Amazon Bedrock's Converse API (boto3 `bedrock-runtime`).

The model is a base model id (`amazon.nova-micro-v1:0`, an inference profile
such as `us.amazon.nova-micro-v1:0`), or, for a registered custom model, the
ARN of its active deployment (on-demand or provisioned throughput), which is
what `core.registry.resolve` answers: Bedrock invokes custom models only
through one.

System messages go apart (`system`), the other turns in order, each one text
block; `inferenceConfig` carries `maxTokens` and, when a request changes them,
`temperature` (Bedrock takes 0 to 1, so above 1 is refused before any call),
`topP` and `stopSequences`. Converse takes no seed. The answer's text is its
text blocks joined; usage is `inputTokens` and `outputTokens`.

AWS_REGION and AWS_ENDPOINT_URL choose where the client goes; credentials come
from the AWS chain. botocore's own retries are off (one attempt per call):
`core.inference.remote` retries throttling, 5xx, model timeouts and network
failures, honouring a Retry-After.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from core.errors import InvalidInput
from core.inference.base import (
    ChatCall,
    ChatRefused,
    ChatUnanswered,
    FinishReason,
    ModelUnavailable,
    Outcome,
    Target,
)
from core.inference.checks import check_bedrock_chat
from core.inference.remote import (
    TIMEOUT_SECONDS,
    RemoteChatBackend,
    RetryPolicy,
    answered,
    check_temperature,
    retry_after,
    system_and_turns,
    unreachable,
)
from core.platform.settings import Settings
from core.providers.base import ProviderError, ProviderNotConfigured, ProviderRefused
from core.vocabulary import ChatProvider, Provider

log = logging.getLogger(__name__)

CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=10, read_timeout=TIMEOUT_SECONDS
)

# Every stop reason the Converse API documents -> ours.
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.STOP,
    "guardrail_intervened": FinishReason.STOP,
    "content_filtered": FinishReason.STOP,
    "malformed_model_output": FinishReason.STOP,
    "malformed_tool_use": FinishReason.STOP,
}

TRANSIENT_CODES = frozenset({
    "ThrottlingException", "ServiceUnavailableException", "InternalServerException", "ModelTimeoutException",
    "ModelNotReadyException", "ServiceUnavailable", "InternalFailure", "RequestTimeout", "RequestTimeoutException",
})  # fmt: skip
CREDENTIAL_CODES = frozenset({
    "UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "ExpiredToken", "ExpiredTokenException",
})  # fmt: skip
NETWORK_ERRORS = (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError)


class BedrockChatBackend(RemoteChatBackend[dict[str, Any]]):
    """Answers through `converse`, one conversation per call (the client: a boto3 bedrock-runtime client)."""

    provider: ClassVar[ChatProvider] = Provider.BEDROCK
    api: ClassVar[str] = "Bedrock"

    def read(self, target: Target, call: ChatCall, reply: dict[str, Any]) -> Outcome:
        blocks = reply.get("output", {}).get("message", {}).get("content", [])
        usage = reply.get("usage") or {}
        return answered(
            call, target,
            texts=[block["text"] for block in blocks if isinstance(block.get("text"), str)],
            finish=STOP_REASONS.get(str(reply.get("stopReason")), FinishReason.STOP),
            usage=(usage["inputTokens"], usage["outputTokens"]) if "inputTokens" in usage else None,
        )  # fmt: skip

    def params(self, target: Target, call: ChatCall) -> dict[str, Any]:
        """The `converse` arguments; InvalidInput for what Bedrock would refuse anyway."""
        check_temperature(call, api="Bedrock", highest=1.0)
        system, turns = system_and_turns(call, api="Bedrock")
        request = call.request
        config: dict[str, Any] = {"maxTokens": request.max_new_tokens}
        if request.temperature != 1.0:
            config["temperature"] = request.temperature
        if request.top_p != 1.0:
            config["topP"] = request.top_p
        if request.stop:
            config["stopSequences"] = list(request.stop)
        params: dict[str, Any] = {
            "modelId": target.model,
            "messages": [{"role": role, "content": [{"text": text}]} for role, text in turns],
            "inferenceConfig": config,
        }
        if system is not None:
            params["system"] = [{"text": system}]
        return params

    def send(self, target: Target, params: dict[str, Any]) -> dict[str, Any]:
        try:
            response: dict[str, Any] = self.client.converse(**params)
        except ParamValidationError as exc:
            raise InvalidInput(
                f"Bedrock cannot take this request for {target.name}: {exc}",
                hint="Check the model id (a Bedrock model id, inference profile or deployment ARN).",
                param="model",
            ) from exc
        except (ClientError, BotoCoreError) as exc:
            raise chat_error(exc, target) from exc
        log.debug("Bedrock answered %s (request id %s)", target.name, _request_id(response))
        return response


def chat_error(exc: Exception, target: Target) -> ProviderError:
    """The ProviderError for a failed `converse`: transient for throttling, 5xx, model timeouts, the network."""
    model = target.name
    if isinstance(exc, NoCredentialsError):
        hint = "Give this process AWS credentials (an instance or task role, AWS_PROFILE, or an access key pair)."
        return ProviderNotConfigured(
            f"Bedrock cannot answer with {target.name}: no AWS credentials.", hint=hint, model=model
        )
    if isinstance(exc, NETWORK_ERRORS):
        return unreachable("Bedrock", target, exc)
    if not isinstance(exc, ClientError):
        return ProviderError(f"Bedrock could not answer with {target.name}: {exc}", model=model)
    error = exc.response.get("Error", {})
    code, said = str(error.get("Code", "")), str(error.get("Message") or exc)
    metadata = exc.response.get("ResponseMetadata", {})
    status, request_id = int(metadata.get("HTTPStatusCode") or 0), _request_id(exc.response)
    text = f"Bedrock did not answer with {target.name}: {code}: {said}" + (
        f" (AWS request id {request_id})" if request_id else ""
    )
    if code in TRANSIENT_CODES or status == 429 or status >= 500:
        waited = retry_after(metadata.get("HTTPHeaders") or {})
        return ChatUnanswered(
            text, hint="Tried again with backoff.", request_id=request_id, retry_after=waited, model=model
        )
    if code in CREDENTIAL_CODES:
        return ProviderRefused(
            text, hint="AWS rejected the credentials; renew or replace them.", request_id=request_id, model=model
        )
    if code == "AccessDeniedException" or status == 403:
        hint = (
            "Let this AWS identity call bedrock:InvokeModel on the model, and enable access to the model in AWS_REGION."
        )
        return ProviderRefused(text, hint=hint, request_id=request_id, model=model)
    if code == "ResourceNotFoundException" or status == 404:
        hint = "Check the model id and AWS_REGION; a custom model answers only through an active deployment."
        return ModelUnavailable(text, hint=hint, request_id=request_id, model=model)
    hint = "Bedrock refused the request as it stands, so it was not retried; change what the message names."
    return ChatRefused(text, hint=hint, request_id=request_id, aws_code=code, model=model)


def _request_id(response: dict[str, Any]) -> str | None:
    found = response.get("ResponseMetadata", {}).get("RequestId")
    return str(found) if found else None


def bedrock_backend(
    settings: Settings, *, retry: RetryPolicy | None = None, session: boto3.Session | None = None
) -> BedrockChatBackend:
    check_bedrock_chat(settings)
    options: dict[str, Any] = {"region_name": settings.aws_region.strip(), "config": CLIENT_CONFIG}
    if settings.aws_endpoint_url:
        options["endpoint_url"] = settings.aws_endpoint_url.strip()
    try:
        client = (session or boto3.Session()).client("bedrock-runtime", **options)
    except BotoCoreError as exc:
        raise ProviderNotConfigured(
            f"cannot set up the AWS client for Bedrock chats: {exc}",
            hint="Check the AWS profile and configuration this process runs with (AWS_PROFILE, ~/.aws/config).",
        ) from exc
    return BedrockChatBackend(client, retry=retry)
