"""Chats with every provider behind the one inference contract, against local counterparts: no network, no keys.

OpenAI, Azure OpenAI and OpenAI-compatible servers answer from a small local chat completions server,
Anthropic from a local Messages API (`tests/chat_fakes.py`), Bedrock's `converse` through botocore's
Stubber, which checks every request against the service model. Retries wait through a recorded
`sleep`, so no test waits for a backoff.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import boto3
import botocore.session
import pytest
from anthropic.types import StopReason
from botocore.stub import Stubber
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from openai.types.chat.chat_completion import Choice
from pydantic import ValidationError

from core import inference, registry
from core.catalog import load_catalog
from core.errors import Conflict, FinetuneError, InvalidInput, NotFound
from core.inference import (
    BACKENDS,
    BackendEntry,
    ChatRefused,
    ChatResult,
    ChatUnanswered,
    FinishReason,
    ModelUnavailable,
    RetryPolicy,
    Target,
    build_engine,
    chat_target,
    check_configured,
)
from core.inference.anthropic_chat import STOP_REASONS as ANTHROPIC_STOPS
from core.inference.anthropic_chat import anthropic_backend
from core.inference.bedrock_chat import STOP_REASONS as BEDROCK_STOPS
from core.inference.bedrock_chat import bedrock_backend
from core.inference.openai_chat import FINISH_REASONS, OpenAIChatBackend, openai_backend
from core.inference.remote import retry_after
from core.platform.actors import SCHEDULER
from core.platform.timeutil import iso
from core.providers import ProviderNotConfigured, ProviderRefused
from core.vocabulary import CHAT_PROVIDERS, ChatOnlyProvider, Provider
from tests.chat_fakes import ANTHROPIC_KEY, AZURE_KEY, OPENAI_KEY, ChatFake, start_chat_fake
from tests.conftest import make_settings, svc

HELLO = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
NOVA = "amazon.nova-micro-v1:0"
CUSTOM_MODEL_ARN = "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-micro-v1:0:128k/abc123def456"
DEPLOYMENT_ARN = "arn:aws:bedrock:us-east-1:123456789012:custom-model-deployment/0a1b2c3d4e5f"


# Local counterparts and helpers ----------------------------------------------------------------------


@pytest.fixture
def openai_fake():
    fake = start_chat_fake("openai")
    yield fake
    fake.stop()


@pytest.fixture
def anthropic_fake():
    fake = start_chat_fake("anthropic")
    yield fake
    fake.stop()


@pytest.fixture
def waits() -> list[float]:
    """The waits between retries, recorded instead of slept."""
    return []


@pytest.fixture
def policy(waits) -> RetryPolicy:
    return RetryPolicy(sleep=waits.append, jitter=lambda: 1.0)


@pytest.fixture
def engines():
    """build_engine for one test; every engine is closed at the end."""
    made: list[inference.InferenceEngine] = []

    def make(settings, backends=None):
        engine = build_engine(settings, backends=backends)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


def ask(engine, target: Target, messages=HELLO, **options: Any) -> ChatResult:
    return engine.generate(target, messages, **options)


def refusal(engine, target: Target, messages=HELLO, **options: Any) -> FinetuneError:
    with pytest.raises(FinetuneError) as raised:
        ask(engine, target, messages, **options)
    return raised.value


def base(store, model: str) -> Target:
    return chat_target(store, model, key="caller-1")


def usd(input_tokens: int, output_tokens: int, rate_in: float, rate_out: float) -> float:
    return round((input_tokens * rate_in + output_tokens * rate_out) / 1_000_000, 9)


def register(store, *, name: str, provider: str, model_id: str, base_model: str | None):
    return registry.register_version(
        store, name=name, provider=provider, provider_model_id=model_id, job_id=None, dataset_version_id=None,
        base_model=base_model, metrics={}, cost_usd=None, actor=SCHEDULER, reason="trained", now=iso(),
    )  # fmt: skip


def catalog_file(folder, inference_entries: dict) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "catalog.json"
    path.write_text(json.dumps({"inference": inference_entries}))
    return path


PRICE_FACTS = {"as_of": "2026-12-01", "sources": ["https://example.com/prices"]}


# One registry, complete maps --------------------------------------------------------------------------


def test_every_chat_provider_has_a_backend_with_a_settings_check():
    assert set(BACKENDS) == set(CHAT_PROVIDERS)
    for provider, entry in BACKENDS.items():
        assert provider == Provider.LOCAL or isinstance(entry, BackendEntry), provider


def test_every_documented_finish_and_stop_reason_maps_to_ours():
    assert set(FINISH_REASONS) == set(typing.get_args(Choice.model_fields["finish_reason"].annotation))
    assert set(ANTHROPIC_STOPS) == set(typing.get_args(StopReason))
    converse = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("Converse")
    assert set(BEDROCK_STOPS) == set(converse.output_shape.members["stopReason"].enum)
    assert (
        FINISH_REASONS["length"] is ANTHROPIC_STOPS["max_tokens"] is BEDROCK_STOPS["max_tokens"] is FinishReason.LENGTH
    )


# OpenAI ------------------------------------------------------------------------------------------------


def openai_settings(tmp_path, fake: ChatFake, **more):
    return make_settings(tmp_path, openai_api_key=OPENAI_KEY, openai_base_url=f"{fake.url}/v1", **more)


def test_openai_base_model_answers_with_its_usage_and_its_catalog_cost(tmp_path, store, openai_fake, engines):
    engine = engines(openai_settings(tmp_path, openai_fake))  # the real BACKENDS entry
    target = base(store, "openai:gpt-4.1-mini")
    pieces: list[str] = []
    result = engine.submit(target, inference.ChatRequest.build(HELLO, max_new_tokens=64), on_text=pieces.append)
    answer = result.result(timeout=30)
    assert (answer.text, answer.input_tokens, answer.output_tokens) == ("Hello from the fake.", 12, 5)
    assert answer.finish_reason is FinishReason.STOP and answer.model == "gpt-4.1-mini"
    assert answer.cost_usd == usd(12, 5, 0.4, 1.6) and answer.cost_note is None
    assert answer.latency_ms > 0 and "".join(pieces) == answer.text
    [sent] = openai_fake.chats()
    assert sent.path == "/v1/chat/completions" and sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent.body["model"] == "gpt-4.1-mini" and sent.body["max_completion_tokens"] == 64
    assert sent.body["messages"] == HELLO
    assert "temperature" not in sent.body and "top_p" not in sent.body  # defaults are not sent


def test_openai_sends_what_a_request_changes(tmp_path, store, openai_fake, engines):
    engine = engines(openai_settings(tmp_path, openai_fake))
    openai_fake.finish = "length"
    answer = ask(engine, base(store, "openai:gpt-4o-mini"), temperature=0, top_p=0.5, stop=["END"], seed=7)
    assert answer.finish_reason is FinishReason.LENGTH
    [sent] = openai_fake.chats()
    assert (sent.body["temperature"], sent.body["top_p"], sent.body["stop"], sent.body["seed"]) == (0, 0.5, ["END"], 7)


def test_cloud_calls_are_bounded_by_the_engines_concurrency(tmp_path, store, openai_fake, engines):
    openai_fake.pause = 0.2
    engine = engines(openai_settings(tmp_path, openai_fake, inference_concurrency=2))
    request = inference.ChatRequest.build(HELLO)
    futures = [engine.submit(base(store, "openai:gpt-4.1-mini"), request) for _ in range(6)]
    assert all(future.result(timeout=30).text == "Hello from the fake." for future in futures)
    assert 1 <= openai_fake.most_in_flight <= 2 and len(openai_fake.chats()) == 6  # never more than the bound


def test_openai_retries_429_and_500_honouring_retry_after_then_answers(
    tmp_path, store, openai_fake, engines, policy, waits
):
    settings = openai_settings(tmp_path, openai_fake)
    engine = engines(settings, {Provider.OPENAI: lambda s: openai_backend(s, retry=policy)})
    openai_fake.fail(429, headers={"retry-after-ms": "250"}, message="Rate limit reached")
    openai_fake.fail(503, message="The server is overloaded")
    answer = ask(engine, base(store, "openai:gpt-4.1-mini"))
    assert answer.text == "Hello from the fake." and len(openai_fake.chats()) == 3
    assert waits == [0.25, 1.0]  # the API's own wait, then the second backoff step (0.5 s doubled, no jitter)


def test_openai_refusal_is_named_and_never_retried(tmp_path, store, openai_fake, engines, policy, waits):
    engine = engines(
        openai_settings(tmp_path, openai_fake), {Provider.OPENAI: lambda s: openai_backend(s, retry=policy)}
    )
    openai_fake.fail(400, message="Invalid 'messages[1].content': string too long.")
    refused = refusal(engine, base(store, "openai:gpt-4.1-mini"))
    assert isinstance(refused, ChatRefused) and not refused.transient
    assert "HTTP 400" in refused.message and "string too long" in refused.message
    assert refused.request_id == "req_0001" and "req_0001" in refused.message
    assert len(openai_fake.chats()) == 1 and waits == []


def test_openai_wrong_key_names_the_setting(tmp_path, store, openai_fake, engines):
    engine = engines(make_settings(tmp_path, openai_api_key="sk-wrong", openai_base_url=f"{openai_fake.url}/v1"))
    refused = refusal(engine, base(store, "openai:gpt-4.1-mini"))
    assert isinstance(refused, ChatRefused) and "OPENAI_API_KEY" in (refused.hint or "")


def test_openai_quota_is_refused_not_retried(tmp_path, store, openai_fake, engines, policy, waits):
    engine = engines(
        openai_settings(tmp_path, openai_fake), {Provider.OPENAI: lambda s: openai_backend(s, retry=policy)}
    )
    openai_fake.fail(429, code="insufficient_quota", message="You exceeded your current quota.")
    assert isinstance(refusal(engine, base(store, "openai:gpt-4.1-mini")), ProviderRefused)
    assert len(openai_fake.chats()) == 1 and waits == []


def test_transient_failures_give_up_after_the_last_attempt(tmp_path, store, openai_fake, engines, policy, waits):
    engine = engines(
        openai_settings(tmp_path, openai_fake), {Provider.OPENAI: lambda s: openai_backend(s, retry=policy)}
    )
    openai_fake.fail(500, times=10)
    failed = refusal(engine, base(store, "openai:gpt-4.1-mini"))
    assert isinstance(failed, ChatUnanswered) and failed.transient and "tried 4 times" in failed.message
    assert len(openai_fake.chats()) == 4 and waits == [0.5, 1.0, 2.0]


def test_a_retry_after_beyond_the_cap_is_not_waited_out(tmp_path, store, openai_fake, engines, policy, waits):
    engine = engines(
        openai_settings(tmp_path, openai_fake), {Provider.OPENAI: lambda s: openai_backend(s, retry=policy)}
    )
    openai_fake.fail(429, headers={"retry-after": "3600"})
    failed = refusal(engine, base(store, "openai:gpt-4.1-mini"))
    assert isinstance(failed, ChatUnanswered) and failed.retry_after == 3600 and "3600" in (failed.hint or "")
    assert len(openai_fake.chats()) == 1 and waits == []


def test_a_timeout_is_retried(tmp_path, store, openai_fake, engines, policy, waits):
    import openai

    client = openai.OpenAI(api_key=OPENAI_KEY, base_url=f"{openai_fake.url}/v1", max_retries=0, timeout=0.5)
    engine = engines(make_settings(tmp_path), {Provider.OPENAI: lambda s: OpenAIChatBackend(client, retry=policy)})
    openai_fake.fail(500, delay=3)  # not answered in time
    answer = ask(engine, base(store, "openai:gpt-4.1-mini"))
    assert answer.text == "Hello from the fake." and len(waits) == 1


def test_a_fine_tuned_openai_version_is_unpriced_with_the_reason(tmp_path, store, openai_fake, engines):
    ft = "ft:gpt-4.1-mini-2025-04-14:acme::abc123"
    register(store, name="writer", provider="openai", model_id=ft, base_model="gpt-4.1-mini-2025-04-14")
    target = chat_target(store, "writer:v1", key="caller-1")
    assert (target.provider, target.model, target.version_id) == (Provider.OPENAI, ft, "writer:v1")
    answer = ask(engines(openai_settings(tmp_path, openai_fake)), target)
    assert answer.model == "writer:v1" and answer.cost_usd is None
    assert "fine_tuned_input_usd_per_1m_tokens" in (answer.cost_note or "")
    assert "FINETUNE_CATALOG_FILE" in (answer.cost_note or "")
    assert openai_fake.chats()[0].body["model"] == ft


def test_catalog_file_prices_fine_tuned_versions(tmp_path, store, openai_fake, engines):
    ft = "ft:gpt-4.1-mini-2025-04-14:acme::abc123"
    register(store, name="writer", provider="openai", model_id=ft, base_model="gpt-4.1-mini")
    override = catalog_file(tmp_path, {"openai:gpt-4.1-mini-2025-04-14": {
        "fine_tuned_input_usd_per_1m_tokens": 0.8, "fine_tuned_output_usd_per_1m_tokens": 3.2, **PRICE_FACTS,
    }})  # fmt: skip
    engine = engines(openai_settings(tmp_path, openai_fake, catalog_file=override))
    answer = ask(engine, chat_target(store, "writer:v1", key="caller-1"))
    assert answer.cost_usd == usd(12, 5, 0.8, 3.2)
    base_answer = ask(engine, base(store, "openai:gpt-4.1-mini"))  # the bundled base prices are kept
    assert base_answer.cost_usd == usd(12, 5, 0.4, 1.6)


# Azure OpenAI and OpenAI-compatible servers ------------------------------------------------------------


def test_azure_calls_its_deployment_with_its_api_version(tmp_path, store, openai_fake, engines):
    settings = make_settings(
        tmp_path, azure_openai_endpoint=openai_fake.url, azure_openai_api_key=AZURE_KEY,
        azure_openai_api_version="2024-10-21",
    )  # fmt: skip
    answer = ask(engines(settings), base(store, "azure:support-judge"))
    [sent] = openai_fake.chats()
    assert sent.path == "/openai/deployments/support-judge/chat/completions"
    assert sent.query["api-version"] == "2024-10-21" and sent.headers["api-key"] == AZURE_KEY
    assert answer.text == "Hello from the fake." and answer.cost_usd is None
    assert "azure:support-judge" in (answer.cost_note or "")


def test_an_azure_version_is_called_through_the_deployment_named_after_its_model(tmp_path, store, openai_fake, engines):
    model_id = "gpt-4.1-mini-2025-04-14.ft-0e208cf33a6a"
    register(store, name="writer", provider="azure", model_id=model_id, base_model="gpt-4.1-mini-2025-04-14")
    settings = make_settings(tmp_path, azure_openai_endpoint=openai_fake.url, azure_openai_api_key=AZURE_KEY)
    ask(engines(settings), chat_target(store, "writer:v1", key="k"))
    assert openai_fake.chats()[0].path == f"/openai/deployments/{model_id}/chat/completions"


def test_a_missing_azure_deployment_says_how_to_make_one(tmp_path, store, openai_fake, engines):
    openai_fake.fail(404, message="The API deployment for this resource does not exist.", code="DeploymentNotFound")
    settings = make_settings(tmp_path, azure_openai_endpoint=openai_fake.url, azure_openai_api_key=AZURE_KEY)
    missing = refusal(engines(settings), base(store, "azure:nowhere"))
    assert isinstance(missing, ModelUnavailable) and "deployment" in (missing.hint or "")


def test_the_compatible_base_url_points_at_any_openai_compatible_server(tmp_path, store, openai_fake, engines):
    openai_fake.keys = ()  # like Ollama: no key asked
    settings = make_settings(tmp_path, compatible_base_url=f"{openai_fake.url}/v1")
    answer = ask(engines(settings), base(store, "compatible:llama3"), max_new_tokens=32)
    [sent] = openai_fake.chats()
    assert sent.body["model"] == "llama3" and sent.body["max_tokens"] == 32 and "max_completion_tokens" not in sent.body
    assert answer.text == "Hello from the fake." and answer.cost_usd is None
    assert "compatible:llama3" in (answer.cost_note or "") and "0 for a server of your own" in (answer.cost_note or "")


def test_a_compatible_server_priced_in_the_catalog_file(tmp_path, store, openai_fake, engines):
    override = catalog_file(tmp_path, {"compatible:llama3": {
        "input_usd_per_1m_tokens": 0, "output_usd_per_1m_tokens": 0, **PRICE_FACTS
    }})  # fmt: skip
    settings = make_settings(
        tmp_path, compatible_base_url=f"{openai_fake.url}/v1", compatible_api_key=OPENAI_KEY, catalog_file=override
    )
    assert ask(engines(settings), base(store, "compatible:llama3")).cost_usd == 0.0
    assert openai_fake.chats()[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_a_server_reporting_no_usage_leaves_the_cost_unknown(tmp_path, store, openai_fake, engines):
    openai_fake.usage = None
    answer = ask(engines(openai_settings(tmp_path, openai_fake)), base(store, "openai:gpt-4.1-mini"))
    assert (answer.input_tokens, answer.output_tokens, answer.cost_usd) == (0, 0, None)
    assert "reported no token usage" in (answer.cost_note or "")


class EchoBackend(inference.ChatBackend):
    """A local backend that answers at once, so `finetune serve`'s own endpoint can be called without a model."""

    provider = Provider.LOCAL

    def generate(self, target, calls):
        return [self.echo(target, call) for call in calls]

    @staticmethod
    def echo(target, call) -> ChatResult:
        text = f"echo: {call.request.messages[-1].content}"
        return ChatResult(text, FinishReason.STOP, 7, 3, latency_ms=0.0, cost_usd=0.0, model=target.name)


def test_compatible_chats_with_this_projects_own_chat_completions(tmp_path, store, monkeypatch, policy, engines):
    import openai
    from starlette.testclient import TestClient

    from bot.serve import build_app
    from core.inference.openai_chat import CompatibleChatBackend

    monkeypatch.setitem(inference.BACKENDS, Provider.LOCAL, lambda s: EchoBackend())
    register(store, name="support", provider="local", model_id=str(tmp_path), base_model=None)
    token = "test-app-token-abcdefghijklmnop"
    http = TestClient(build_app(svc(store, make_settings(tmp_path, app_tokens=f"shop:{token}"))))
    client = openai.OpenAI(api_key=token, base_url="http://testserver/v1", http_client=http, max_retries=0)
    engine = engines(
        make_settings(tmp_path), {ChatOnlyProvider.COMPATIBLE: lambda s: CompatibleChatBackend(client, retry=policy)}
    )
    answer = ask(engine, base(store, "compatible:support:v1"))
    assert (answer.text, answer.input_tokens, answer.output_tokens) == ("echo: Hello", 7, 3)
    assert answer.model == "support:v1" and answer.cost_usd is None  # no price for compatible:support:v1
    refused = refusal(engine, base(store, "compatible:support:v9"))
    assert isinstance(refused, ModelUnavailable) and "support:v9" in refused.message


# Anthropic ---------------------------------------------------------------------------------------------


def anthropic_settings(tmp_path, fake: ChatFake, **more):
    return make_settings(tmp_path, anthropic_api_key=ANTHROPIC_KEY, anthropic_base_url=fake.url, **more)


def test_anthropic_answers_with_its_text_usage_and_cost(tmp_path, store, anthropic_fake, engines):
    anthropic_fake.usage = (40, 9)
    engine = engines(anthropic_settings(tmp_path, anthropic_fake))  # the real BACKENDS entry
    answer = ask(engine, base(store, "anthropic:claude-sonnet-5-5"), max_new_tokens=300)
    assert answer.text == "Hello from the fake."  # the thinking block is not part of the answer
    assert (answer.input_tokens, answer.output_tokens, answer.finish_reason) == (40, 9, FinishReason.STOP)
    assert answer.cost_usd == usd(40, 9, 2.0, 10.0)
    [sent] = anthropic_fake.chats()
    assert ANTHROPIC_KEY in (
        sent.headers.get("x-api-key"),
        sent.headers.get("authorization", "").removeprefix("Bearer "),
    )
    assert sent.headers["anthropic-version"]
    assert sent.body["system"] == "Be brief." and sent.body["messages"] == [{"role": "user", "content": "Hello"}]
    assert sent.body["max_tokens"] == 300 and "temperature" not in sent.body and "top_p" not in sent.body


def test_anthropic_retries_overloaded_and_rate_limited_then_answers(
    tmp_path, store, anthropic_fake, engines, policy, waits
):
    engine = engines(
        anthropic_settings(tmp_path, anthropic_fake),
        {ChatOnlyProvider.ANTHROPIC: lambda s: anthropic_backend(s, retry=policy)},
    )
    anthropic_fake.fail(529, message="Overloaded")
    anthropic_fake.fail(429, headers={"retry-after": "2"}, message="Number of requests has exceeded your rate limit")
    anthropic_fake.finish = "max_tokens"
    answer = ask(engine, base(store, "anthropic:claude-haiku-4-5"))
    assert answer.finish_reason is FinishReason.LENGTH and len(anthropic_fake.chats()) == 3
    assert waits == [0.5, 2.0]


def test_anthropic_refusals_are_named_and_not_retried(tmp_path, store, anthropic_fake, engines, policy, waits):
    engine = engines(
        anthropic_settings(tmp_path, anthropic_fake),
        {ChatOnlyProvider.ANTHROPIC: lambda s: anthropic_backend(s, retry=policy)},
    )
    anthropic_fake.fail(400, message="temperature: range: 0..1")
    refused = refusal(engine, base(store, "anthropic:claude-sonnet-5-5"))
    assert (
        isinstance(refused, ChatRefused) and "temperature: range" in refused.message and "req_0001" in refused.message
    )
    anthropic_fake.keys = ("another-key",)
    refused = refusal(engine, base(store, "anthropic:claude-sonnet-5-5"))
    assert isinstance(refused, ChatRefused) and "ANTHROPIC_API_KEY" in (refused.hint or "")
    assert len(anthropic_fake.chats()) == 2 and waits == []


def test_anthropic_refuses_a_temperature_above_one_before_calling(tmp_path, store, anthropic_fake, engines):
    refused = refusal(
        engines(anthropic_settings(tmp_path, anthropic_fake)),
        base(store, "anthropic:claude-haiku-5-5"),
        temperature=1.5,
    )
    assert isinstance(refused, InvalidInput) and refused.ids["param"] == "temperature"
    assert anthropic_fake.chats() == []


def test_anthropic_long_prompts_are_billed_at_their_own_rates(tmp_path, store, anthropic_fake, engines):
    engine = engines(anthropic_settings(tmp_path, anthropic_fake))
    anthropic_fake.usage = (150_000, 100)
    assert ask(engine, base(store, "anthropic:claude-haiku-5-5")).cost_usd == usd(150_000, 100, 0.5, 2.5)
    anthropic_fake.usage = (90_000, 100)
    assert ask(engine, base(store, "anthropic:claude-haiku-5-5")).cost_usd == usd(90_000, 100, 0.1, 0.5)


def test_the_default_judge_is_a_priced_claude_model(store, settings):
    judge = chat_target(store, settings.judge_model, key="judge")
    assert (judge.provider, judge.model) == (ChatOnlyProvider.ANTHROPIC, "claude-sonnet-5-5")
    assert isinstance(inference.price_for(load_catalog(None), judge), inference.TokenRates)


# Bedrock -------------------------------------------------------------------------------------------------


@pytest.fixture
def aws_session(monkeypatch, tmp_path) -> boto3.Session:
    """Fake keys; no AWS profile, config or credentials file of the machine is read."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


@pytest.fixture
def bedrock(settings, aws_session, policy, engines):
    """An engine whose Bedrock backend's client is stubbed; yields (engine, stubber)."""
    backend = bedrock_backend(settings, retry=policy, session=aws_session)
    with Stubber(backend.client) as stubber:
        yield engines(settings, {Provider.BEDROCK: lambda s: backend}), stubber
        stubber.assert_no_pending_responses()


def converse_reply(text="Hi from Nova.", usage=(20, 8), stop="end_turn") -> dict:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop,
        "usage": {"inputTokens": usage[0], "outputTokens": usage[1], "totalTokens": sum(usage)},
        "metrics": {"latencyMs": 120},
        "ResponseMetadata": {"RequestId": "aws-req-1", "HTTPStatusCode": 200},
    }


def converse_request(model_id: str, **config: Any) -> dict:
    return {
        "modelId": model_id,
        "messages": [{"role": "user", "content": [{"text": "Hello"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 512, **config},
    }


def test_bedrock_base_model_answers_through_converse_priced_by_its_deployment_facts(store, bedrock):
    engine, stubber = bedrock
    stubber.add_response("converse", converse_reply(), converse_request(NOVA, temperature=0.0, stopSequences=["END"]))
    answer = ask(engine, base(store, f"bedrock:{NOVA}"), temperature=0, stop="END")
    assert (answer.text, answer.input_tokens, answer.output_tokens) == ("Hi from Nova.", 20, 8)
    assert answer.cost_usd == usd(20, 8, 0.035, 0.14)


def test_bedrock_retries_throttling_and_server_errors_then_answers(store, bedrock, waits):
    engine, stubber = bedrock
    stubber.add_client_error(
        "converse", "ThrottlingException", "Too many requests", 429,
        response_meta={"HTTPHeaders": {"retry-after": "3"}},
    )  # fmt: skip
    stubber.add_client_error("converse", "InternalServerException", "Internal error", 500)
    stubber.add_response("converse", converse_reply(stop="max_tokens"), converse_request(NOVA))
    answer = ask(engine, base(store, f"bedrock:{NOVA}"))
    assert answer.finish_reason is FinishReason.LENGTH and waits == [3.0, 1.0]


def test_bedrock_validation_errors_are_refused_not_retried(store, bedrock, waits):
    engine, stubber = bedrock
    stubber.add_client_error("converse", "ValidationException", "The model returned the following errors: bad", 400)
    refused = refusal(engine, base(store, f"bedrock:{NOVA}"))
    assert isinstance(refused, ChatRefused) and "ValidationException" in refused.message and waits == []


def test_bedrock_refuses_a_temperature_above_one_before_calling(store, bedrock):
    engine, _stubber = bedrock
    refused = refusal(engine, base(store, f"bedrock:{NOVA}"), temperature=1.2)
    assert isinstance(refused, InvalidInput) and refused.ids["param"] == "temperature"


def add_deployment(store, version_id: str, *, kind: str = "on_demand") -> None:
    now = iso()
    with store.write() as sql:
        sql.execute(
            "INSERT INTO deployments (id, model_version_id, provider, kind, status, provider_model_id, provider_arn,"
            " next_poll_at, created_at, updated_at) VALUES (?, ?, 'bedrock', ?, 'active', ?, ?, ?, ?, ?)",
            ("dep_test01", version_id, kind, CUSTOM_MODEL_ARN, DEPLOYMENT_ARN, now, now, now),
        )


def test_a_bedrock_version_is_called_through_its_deployment_arn(store, bedrock):
    engine, stubber = bedrock
    version = register(store, name="nova-writer", provider="bedrock", model_id=CUSTOM_MODEL_ARN, base_model=NOVA)
    with pytest.raises(ModelUnavailable, match="no active Bedrock deployment"):
        chat_target(store, "nova-writer:v1", key="k")
    add_deployment(store, version.id)
    target = chat_target(store, "nova-writer:v1", key="k")
    assert (target.model, target.version_id, target.base_model) == (DEPLOYMENT_ARN, "nova-writer:v1", NOVA)
    stubber.add_response("converse", converse_reply(), converse_request(DEPLOYMENT_ARN))
    answer = ask(engine, target)
    assert answer.model == "nova-writer:v1" and answer.cost_usd == usd(20, 8, 0.035, 0.14)


def test_a_bedrock_version_on_provisioned_throughput_is_unpriced_with_the_reason(store):
    llama = "meta.llama3-2-90b-instruct-v1:0"
    target = Target(Provider.BEDROCK, DEPLOYMENT_ARN, llama, "big-writer:v1")
    found = inference.price_for(load_catalog(None), target)
    assert isinstance(found, inference.Unpriced) and "provisioned throughput" in found.reason


def test_bedrock_without_credentials_names_the_fix(store, settings, monkeypatch, tmp_path, engines):
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in (
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    session = boto3.Session(region_name="us-east-1")
    settings = make_settings(tmp_path, aws_endpoint_url="http://127.0.0.1:9")
    engine = engines(settings, {Provider.BEDROCK: lambda s: bedrock_backend(s, session=session)})
    missing = refusal(engine, base(store, f"bedrock:{NOVA}"))
    assert isinstance(missing, ProviderNotConfigured) and "credentials" in missing.message


# Settings checked before any call --------------------------------------------------------------------------


MISSING: list[tuple[Any, str, dict[str, Any]]] = [
    (Provider.OPENAI, "OPENAI_API_KEY", {}),
    (Provider.AZURE, "AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY", {}),
    (Provider.AZURE, "AZURE_OPENAI_API_KEY", {"azure_openai_endpoint": "https://acme.openai.azure.com"}),
    (ChatOnlyProvider.ANTHROPIC, "ANTHROPIC_API_KEY", {}),
    (ChatOnlyProvider.ANTHROPIC, "ANTHROPIC_BASE_URL", {"anthropic_api_key": "k", "anthropic_base_url": "api.example"}),
    (ChatOnlyProvider.COMPATIBLE, "FINETUNE_COMPATIBLE_BASE_URL", {}),
    (ChatOnlyProvider.COMPATIBLE, "FINETUNE_COMPATIBLE_BASE_URL", {"compatible_base_url": "ftp://host/v1"}),
    (Provider.BEDROCK, "AWS_REGION", {"aws_region": "the moon"}),
    (Provider.BEDROCK, "AWS_ENDPOINT_URL", {"aws_endpoint_url": "not a url"}),
]


@pytest.mark.parametrize(("provider", "setting", "given"), MISSING)
def test_bad_settings_are_named_before_any_call(tmp_path, store, openai_fake, engines, provider, setting, given):
    settings = make_settings(tmp_path, **given)
    with pytest.raises(ProviderNotConfigured) as refused:
        check_configured(provider, settings)
    assert setting in refused.value.message
    with pytest.raises(ProviderNotConfigured) as again:
        engines(settings).submit(Target(provider, "some-model"), inference.ChatRequest.build(HELLO))
    assert setting in again.value.message
    assert openai_fake.requests == []


def test_configured_backends_pass_their_checks(tmp_path):
    settings = make_settings(
        tmp_path, openai_api_key="k", azure_openai_endpoint="https://acme.openai.azure.com", azure_openai_api_key="k",
        anthropic_api_key="k", compatible_base_url="http://127.0.0.1:11434/v1",
    )  # fmt: skip
    for provider in (
        Provider.OPENAI,
        Provider.AZURE,
        Provider.BEDROCK,
        ChatOnlyProvider.ANTHROPIC,
        ChatOnlyProvider.COMPATIBLE,
    ):
        check_configured(provider, settings)


@pytest.mark.parametrize("value", ["gpt-4.1", "anthropic:", "acme:model", ":claude"])
def test_a_bad_judge_model_setting_is_named(tmp_path, value):
    with pytest.raises(ValidationError) as refused:
        make_settings(tmp_path, judge_model=value)
    assert "judge_model" in str(refused.value) and "PROVIDER:MODEL" in str(refused.value)


def test_bad_inference_prices_in_the_catalog_file_are_named(tmp_path):
    with pytest.raises(InvalidInput, match="acme:model"):
        load_catalog(
            catalog_file(
                tmp_path, {"acme:model": {"input_usd_per_1m_tokens": 1, "output_usd_per_1m_tokens": 1, **PRICE_FACTS}}
            )
        )
    with pytest.raises(InvalidInput, match="go together"):
        load_catalog(catalog_file(tmp_path / "half", {"openai:x": {"input_usd_per_1m_tokens": 1, **PRICE_FACTS}}))


# What callers name -------------------------------------------------------------------------------------------


def test_base_models_are_named_provider_colon_model(store):
    assert base(store, f"bedrock:{NOVA}") == Target(Provider.BEDROCK, NOVA)
    assert base(store, "openai:gpt-4.1-mini") == Target(Provider.OPENAI, "gpt-4.1-mini")
    assert base(store, "local:tiny") == Target(Provider.LOCAL, "tiny")
    with pytest.raises(InvalidInput, match="anthropic:MODEL"):
        base(store, "anthropic:")
    with pytest.raises(NotFound) as unknown:
        base(store, "claude-sonnet-5-5")
    assert "PROVIDER:MODEL" in (unknown.value.hint or "")


def test_a_registered_model_named_like_a_provider_keeps_its_name(store):
    register(store, name="openai", provider="openai", model_id="ft:gpt-4o-mini:acme::x1", base_model="gpt-4o-mini")
    assert chat_target(store, "openai:v1", key="k").version_id == "openai:v1"


def test_a_retired_cloud_version_answers_no_more(store):
    version = register(store, name="writer", provider="openai", model_id="ft:gpt-4o-mini:acme::x1", base_model=None)
    with store.write() as sql:
        sql.execute("UPDATE model_versions SET retired_at = ?, status = 'retired' WHERE id = ?", (iso(), version.id))
    with pytest.raises(Conflict, match="retired"):
        chat_target(store, "writer:v1", key="k")


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=80), st.from_regex(r"(openai|anthropic|bedrock|azure|compatible|local|x):.{0,40}")))
def test_any_model_name_is_answered_with_a_target_or_a_named_error(store, model):
    try:
        found = chat_target(store, model, key="k")
    except FinetuneError as exc:
        assert exc.message
    else:
        assert isinstance(found, Target) and found.model


@given(st.integers(min_value=0, max_value=10**6))
def test_retry_after_reads_seconds_and_milliseconds(seconds):
    assert retry_after({"Retry-After": str(seconds)}) == seconds
    assert retry_after({"retry-after-ms": str(seconds)}) == seconds / 1000


def test_retry_after_reads_an_http_date_and_ignores_nonsense():
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=lambda: 1445412470.0) == 10.0
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None


def test_the_wait_policy_is_capped_and_jittered():
    policy = RetryPolicy(attempts=10, base_seconds=1, cap_seconds=8, jitter=lambda: 0.0)
    assert [policy.wait(n, None) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert policy.wait(10, None) is None and policy.wait(1, 9.0) is None and policy.wait(1, 8.0) == 8.0
