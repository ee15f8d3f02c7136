"""Local inference and the OpenAI-compatible chat API: a tiny model with peft adapters, batched and streamed."""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import torch
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionMessageParam
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from core import inference, registry
from core.errors import FinetuneError, InvalidInput, NotFound
from core.inference import (
    ChatCall,
    ChatRequest,
    ChatResult,
    FinishReason,
    InferenceBusy,
    LocalBackend,
    ModelUnavailable,
    Outcome,
    Target,
)
from core.platform.actors import SCHEDULER, Actor
from core.platform.store import open_store
from core.platform.timeutil import iso
from core.providers.local import inference as local_inference
from core.providers.local.inference import LocalGenerator, ModelRef
from core.providers.local.tiny import build_tiny_model
from core.vocabulary import Face, Provider, Role
from tests.conftest import MCP_TOKEN, make_settings, svc, wait_until

APP_TOKEN = "test-app-token-abcdefghijklmnop"
ANN = Actor("ann", Face.CLI, role=Role.OPERATOR)
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Where is my refund?"}]
PROMPTS = ["Where is my refund?", "Hello", "Can you help me with my order please, it has not arrived yet"]
TEXTS = [
    "Where is my refund? Your refund was sent today.",
    "Hello, how can I help you with your order?",
    "Your order ships on Monday; the tracking link follows by email.",
] * 10


@dataclass(frozen=True)
class Models:
    base: Path
    adapter: Path  # tokenizer saved beside it
    other: Path  # tokenizer in the run directory above it

    def target(self, which: Path | None = None, version: str | None = None) -> Target:
        if which is None:
            return Target(Provider.LOCAL, str(self.base))
        return Target(Provider.LOCAL, str(which), str(self.base), version)


def make_adapter(base: Path, directory: Path, *, seed: int) -> Path:
    """A LoRA adapter with random A and B, so that it changes what the base model says."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(
        r=8, lora_alpha=64, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False
    )
    get_peft_model(model, config).save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Models:
    root = tmp_path_factory.mktemp("models")
    base = build_tiny_model(root / "base", TEXTS)
    adapter = make_adapter(base, root / "run-1" / "adapter", seed=1)
    AutoTokenizer.from_pretrained(base).save_pretrained(adapter)
    other = make_adapter(base, root / "run-2" / "adapter", seed=2)
    AutoTokenizer.from_pretrained(base).save_pretrained(other.parent)
    return Models(base, adapter, other)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    engine = inference.build_engine(make_settings(tmp_path_factory.mktemp("engine")))
    yield engine
    engine.close()


def answered(outcomes: list[Outcome]) -> list[ChatResult]:
    """The answers, each checked to be one (not an error)."""
    assert all(isinstance(outcome, ChatResult) for outcome in outcomes), outcomes
    return [outcome for outcome in outcomes if isinstance(outcome, ChatResult)]


def greedy(messages=None, **options) -> ChatRequest:
    return ChatRequest.build(messages or HELLO, temperature=0, **{"max_new_tokens": 8, **options})


def ask(engine, target: Target, prompt: str, **options):
    return engine.generate(
        target, [{"role": "user", "content": prompt}], **{"temperature": 0, "max_new_tokens": 8, **options}
    )


# Generation --------------------------------------------------------------------------------------


def test_the_adapter_changes_what_the_base_model_answers(engine, models):
    with_adapter = [ask(engine, models.target(models.adapter), p).text for p in PROMPTS]
    base_alone = [ask(engine, models.target(), p).text for p in PROMPTS]
    assert with_adapter != base_alone
    assert [ask(engine, models.target(models.adapter), p).text for p in PROMPTS] == with_adapter  # greedy repeats


def test_a_batch_answers_exactly_what_each_call_gets_alone(models):
    generator = LocalGenerator()
    ref = ModelRef(str(models.adapter), str(models.base))
    requests = [
        greedy([{"role": "user", "content": p}], max_new_tokens=n) for p, n in zip(PROMPTS, (3, 9, 6), strict=True)
    ]
    together = answered(generator.generate(ref, [ChatCall(r) for r in requests], name="v"))
    alone = [answer for r in requests for answer in answered(generator.generate(ref, [ChatCall(r)], name="v"))]
    assert [(a.text, a.finish_reason, a.input_tokens, a.output_tokens) for a in together] == [
        (a.text, a.finish_reason, a.input_tokens, a.output_tokens) for a in alone
    ]
    assert [a.output_tokens for a in together] == [3, 9, 6] and {a.finish_reason for a in together} == {"length"}
    assert generator.models.loads == 1


def test_concurrent_calls_for_one_model_share_one_generate(models, tmp_path):
    engine = inference.build_engine(make_settings(tmp_path))
    backend = engine.backend(Provider.LOCAL)
    assert isinstance(backend, LocalBackend)
    batches: list[int] = []
    release = threading.Event()
    real = backend.generator.generate

    def spy(ref, calls, *, name):
        batches.append(len(calls))
        release.wait(30)  # the first batch holds the only worker while the others queue
        return real(ref, calls, name=name)

    backend.generator.generate = spy  # type: ignore[method-assign]
    target = models.target(models.adapter, "support:v1")
    futures = [engine.submit(target, greedy([{"role": "user", "content": p}])) for p in PROMPTS * 2]
    release.set()
    answers = [future.result(timeout=60) for future in futures]
    assert sum(batches) == 6 and len(batches) <= 2  # the calls queued behind the first one ran as one batch
    assert all(a.model == "support:v1" for a in answers)
    assert [a.text for a in answers[:3]] == [a.text for a in answers[3:]]


def test_a_seed_repeats_a_sample_and_temperature_zero_is_greedy(engine, models):
    target = models.target(models.adapter)
    sampled = [ask(engine, target, "Hello", temperature=1.0, seed=7, max_new_tokens=12).text for _ in range(2)]
    assert sampled[0] == sampled[1]
    assert ask(engine, target, "Hello", temperature=1.0, seed=8, max_new_tokens=12).text != sampled[0]


def test_a_stop_sequence_ends_the_answer_just_before_it(engine, models):
    target = models.target(models.adapter)
    full = ask(engine, target, "Hello", temperature=1.0, seed=5, max_new_tokens=16)
    start = next(
        i for i in range(1, len(full.text) - 1) if full.text[i : i + 2].isascii() and full.text[i : i + 2].isprintable()
    )
    stop = full.text[start : start + 2]
    stopped = ask(engine, target, "Hello", temperature=1.0, seed=5, max_new_tokens=16, stop=[stop, "never-said"])
    assert stopped.text == full.text[: full.text.find(stop)] and stopped.finish_reason is FinishReason.STOP
    assert stopped.output_tokens < full.output_tokens


def test_token_counts_are_the_tokenizers_and_local_answers_are_free(engine, models):
    tokenizer = AutoTokenizer.from_pretrained(models.adapter)
    messages = [{"role": "user", "content": "Where is my refund?"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    answer = engine.generate(models.target(models.adapter), HELLO, temperature=0, max_new_tokens=5)
    assert answer.input_tokens == len(prompt) and answer.output_tokens == 5
    assert answer.finish_reason is FinishReason.LENGTH and answer.cost_usd == 0.0 and answer.latency_ms > 0


def test_the_tokenizer_is_found_beside_the_adapter_or_in_its_run_directory(engine, models):
    assert not (models.other / "tokenizer_config.json").exists()
    assert ask(engine, models.target(models.other), "Hello").output_tokens == 8


def test_the_model_cache_keeps_the_two_latest_models_and_reloads_nothing_else(models):
    generator = LocalGenerator()
    refs = [ModelRef(str(models.adapter), str(models.base)), ModelRef(str(models.base)), ModelRef(str(models.other))]
    for ref in [refs[0], refs[1], refs[0], refs[1]]:
        generator.generate(ref, [ChatCall(greedy(max_new_tokens=1))], name="m")
    assert generator.models.loads == 2
    generator.generate(refs[2], [ChatCall(greedy(max_new_tokens=1))], name="m")  # the least recently used goes
    assert generator.models.loaded() == [refs[1], refs[2]] and generator.models.loads == 3


def test_a_prompt_longer_than_the_model_reads_is_refused_alone_in_its_batch(models):
    generator = LocalGenerator()
    long = greedy([{"role": "user", "content": "refund " * 2000}])
    fine = greedy()
    refused, answer = generator.generate(ModelRef(str(models.base)), [ChatCall(long), ChatCall(fine)], name="m")
    assert isinstance(refused, InvalidInput) and "at most 1024 tokens" in refused.message
    assert isinstance(answer, ChatResult) and refused.ids["param"] == "messages" and answer.output_tokens == 8


def test_a_model_that_is_not_on_this_machine_is_never_downloaded(engine, tmp_path, monkeypatch):
    lookups: list[object] = []

    def no_network(host, *args, **kwargs):
        lookups.append(host)
        raise OSError("tests do not reach the network")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(ModelUnavailable, match="does not exist on this machine"):
        engine.generate(Target(Provider.LOCAL, str(tmp_path / "gone")), HELLO, temperature=0)
    with pytest.raises(ModelUnavailable, match="not on this machine") as refused:
        engine.generate(Target(Provider.LOCAL, "finetune-ops-tests/no-such-model"), HELLO, temperature=0)
    assert "hf download finetune-ops-tests/no-such-model" in str(refused.value) and lookups == []


def test_without_peft_installed_local_chat_says_what_to_install(app, monkeypatch):
    http, _ = app
    real = importlib.util.find_spec  # what the provider checks ask
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    reply = post(http, {"model": "support:v1", "messages": HELLO})
    assert reply.status_code == 503 and "pip install 'peft'" in reply.json()["error"]["message"]


def test_an_adapter_on_the_wrong_base_is_refused_naming_it(engine, models, tmp_path):
    broken = tmp_path / "adapter"
    broken.mkdir()
    (broken / "adapter_config.json").write_text("{not json")
    with pytest.raises(ModelUnavailable, match="adapter_config.json cannot be read"):
        engine.generate(Target(Provider.LOCAL, str(broken), str(models.base)), HELLO, temperature=0)


def test_a_full_queue_is_refused_as_busy_and_the_engine_holds_no_idle_thread(settings):
    release = threading.Event()

    class Slow(inference.ChatBackend):
        provider = Provider.LOCAL

        def generate(self, target, calls):
            release.wait(30)
            return [inference.ChatResult("ok", FinishReason.STOP, 1, 1, 0.0, 0.0, target.name) for _ in calls]

    engine = inference.InferenceEngine(
        settings, backends={Provider.LOCAL: lambda s: Slow()}, concurrency=1, max_waiting=2
    )
    target = Target(Provider.LOCAL, "m")
    futures = [engine.submit(target, greedy())]
    wait_until(lambda: engine.waiting == 0, what="the first call to run")
    futures += [engine.submit(target, greedy()) for _ in range(2)]  # one runs, two wait
    with pytest.raises(InferenceBusy, match="already waiting"):
        engine.submit(target, greedy())
    release.set()
    assert [f.result(timeout=10).text for f in futures] == ["ok"] * 3
    wait_until(lambda: engine.waiting == 0 and not _inference_threads(), what="idle workers to end")


def _inference_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "finetune-inference"]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"max_new_tokens": 0}, "`max_new_tokens` must be a whole number from 1 to 4096"),
        ({"max_new_tokens": True}, "`max_new_tokens` must be a whole number"),
        ({"temperature": 2.5}, "`temperature` must be a number from 0 to 2"),
        ({"temperature": "hot"}, "`temperature` must be a number"),
        ({"top_p": 0}, "`top_p` must be a number above 0 and at most 1"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "`stop` must be a string or a list of at most 4"),
        ({"stop": [""]}, "`stop[0]` must be 1-200 characters"),
        ({"seed": -1}, "`seed` must be a whole number from 0"),
    ],
)
def test_a_bad_argument_is_named(options, says):
    with pytest.raises(InvalidInput) as refused:
        ChatRequest.build(HELLO, **options)
    assert says in refused.value.message and refused.value.hint


@pytest.mark.parametrize(
    ("messages", "says"),
    [
        ([], "`messages` must be a non-empty list"),
        ("hello", "`messages` must be a non-empty list of messages, got a string"),
        ([{"role": "tool", "content": "x"}], "`messages[0].role` must be one of system, user, assistant"),
        ([{"role": "user", "content": None}], "`messages[0].content` must be a string, got null"),
        ([{"role": "user", "content": "\ud800"}], "`messages[0].content` contains a lone surrogate"),
    ],
)
def test_bad_messages_are_named(messages, says):
    with pytest.raises(InvalidInput, match=r".") as refused:
        ChatRequest.build(messages)
    assert says in refused.value.message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


json_documents = st.recursive(  # what a JSON body can carry
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@hypothesis_settings(max_examples=200, deadline=None, derandomize=True)
@given(
    messages=json_values,
    max_new_tokens=json_values,
    temperature=json_values,
    top_p=json_values,
    stop=json_values,
    seed=json_values,
)
def test_any_argument_is_accepted_or_refused_by_name(messages, max_new_tokens, temperature, top_p, stop, seed):
    try:
        ChatRequest.build(
            messages, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, stop=stop, seed=seed
        )
    except InvalidInput as refused:
        assert str(refused.ids["param"]) in refused.message


# The OpenAI-compatible API ----------------------------------------------------------------------


def register(store, models: Models) -> None:
    """support:v1 (adapter), support:v2 (the other adapter), support:v3 (the base alone), writer:v1 (OpenAI)."""
    with store.write():
        for path, base in ((models.adapter, models.base), (models.other, models.base), (models.base, None)):
            registry.register_version(
                store, name="support", provider="local", provider_model_id=str(path), job_id=None,
                dataset_version_id=None, base_model=str(base) if base else None, metrics={}, cost_usd=None,
                actor=SCHEDULER, reason="trained", now=iso(),
            )  # fmt: skip
        registry.register_version(
            store, name="writer", provider="openai", provider_model_id="ft:gpt-4o-mini:acme::abc123", job_id=None,
            dataset_version_id=None, base_model="gpt-4o-mini", metrics={}, cost_usd=None, actor=SCHEDULER,
            reason="trained", now=iso(),
        )  # fmt: skip


@pytest.fixture
def app(tmp_path, store, models):
    from starlette.testclient import TestClient

    from bot.serve import build_app

    register(store, models)
    services = svc(store, make_settings(tmp_path, app_tokens=f"shop:{APP_TOKEN}", mcp_token=MCP_TOKEN))
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging")
    registry.request_deploy(services, actor=ANN, name="writer", version=1, alias="staging")
    return TestClient(build_app(services)), services


def client_of(http: Any, token: str = APP_TOKEN) -> openai.OpenAI:
    """The OpenAI client, talking to the app in process through the test client (an httpx client alike)."""
    return openai.OpenAI(api_key=token, base_url="http://testserver/v1", http_client=http, max_retries=0)


def post(http, body: dict | bytes, *, token: str | None = APP_TOKEN, **headers: str):
    headers = {"Authorization": f"Bearer {token}", **headers} if token else headers
    if isinstance(body, bytes):
        return http.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json", **headers})
    return http.post("/v1/chat/completions", json=body, headers=headers)


def test_the_openai_client_chats_with_a_version_id(app, engine, models):
    http, _ = app
    reply = client_of(http).chat.completions.create(model="support:v1", messages=HELLO, max_tokens=6, temperature=0)
    expected = engine.generate(models.target(models.adapter), HELLO, temperature=0, max_new_tokens=6)
    assert reply.model == "support:v1" and reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    [choice] = reply.choices
    assert choice.message.role == "assistant" and choice.message.content == expected.text
    assert choice.finish_reason == "length"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (expected.input_tokens, 6)
    assert reply.usage.total_tokens == expected.input_tokens + 6


def test_a_model_name_resolves_per_user_like_resolve_and_a_canary_splits_users(app, models):
    http, services = app
    registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging", canary_share=50)
    client = client_of(http)

    def served(user: str) -> str:
        reply = client.chat.completions.create(
            model="support@staging", messages=HELLO, max_tokens=1, temperature=0, user=user
        )
        return reply.model

    users = [f"user-{i}" for i in range(12)]
    first = [served(user) for user in users]
    assert first == [served(user) for user in users]  # the same user keeps their version
    assert first == [registry.resolve_model(services.store, "support", user, "staging").version_id for user in users]
    assert set(first) == {"support:v1", "support:v2"}


def test_without_a_user_the_application_token_is_the_callers_key(app):
    http, services = app
    registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging", canary_share=50)
    reply = client_of(http).chat.completions.create(model="support@staging", messages=HELLO, max_tokens=1)
    assert reply.model == registry.resolve_model(services.store, "support", "shop", "staging").version_id


def test_streamed_chunks_add_up_to_the_answer_and_end_with_done(app):
    http, _ = app
    client = client_of(http)
    whole = client.chat.completions.create(model="support:v1", messages=HELLO, max_tokens=12, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="support:v1", messages=HELLO, max_tokens=12, temperature=0, stream=True,
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None and usage.completion_tokens == 12
    raw = post(http, {"model": "support:v1", "messages": HELLO, "max_tokens": 12, "temperature": 0, "stream": True})
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = [line for line in raw.text.split("\n\n") if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert json.loads(events[1].removeprefix("data: "))["object"] == "chat.completion.chunk"


def test_plain_http_gets_openais_shapes(app):
    http, _ = app
    reply = post(http, {"model": "support", "messages": HELLO, "max_completion_tokens": 2, "stop": None, "n": 1})
    assert reply.status_code == 404  # support has no production alias yet
    assert reply.json()["error"]["code"] == "model_not_found" and reply.json()["error"]["param"] == "model"
    answered = post(http, {"model": "support:v3", "messages": [{"role": "developer", "content": "Be brief."},
                                                               {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                           "max_completion_tokens": 2, "frequency_penalty": 0, "logprobs": False})  # fmt: skip
    assert answered.status_code == 200 and answered.json()["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize("token", [None, "wrong-token", MCP_TOKEN])
def test_without_an_application_token_the_answer_is_401_in_openais_shape(app, token):
    http, _ = app
    reply = post(http, {"model": "support:v1", "messages": HELLO}, token=token)
    assert reply.status_code == 401 and reply.headers["www-authenticate"].startswith("Bearer")
    assert (
        reply.json()["error"]["type"] == "authentication_error"
        and "FINETUNE_APP_TOKENS" in reply.json()["error"]["message"]
    )
    with pytest.raises(openai.AuthenticationError):
        client_of(http, token=token or "none").models.list()


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"n": 2}, "n", "`n` must be 1 here"),
        ({"temperature": 3}, "temperature", "`temperature` must be a number from 0 to 2"),
        ({"top_p": "all"}, "top_p", "`top_p` must be a number above 0"),
        ({"max_tokens": 0}, "max_tokens", "`max_tokens` must be a whole number from 1 to 4096"),
        ({"max_completion_tokens": 1.5}, "max_completion_tokens", "`max_completion_tokens` must be a whole number"),
        ({"max_tokens": 3, "max_completion_tokens": 4}, "max_tokens", "give one of `max_tokens` and"),
        ({"stop": ["a"] * 5}, "stop", "at most 4 strings"),
        ({"seed": "lucky"}, "seed", "`seed` must be a whole number"),
        ({"stream": "yes"}, "stream", "`stream` must be true or false"),
        ({"stream_options": {"include_usage": True}}, "stream_options", 'only allowed with "stream": true'),
        ({"tools": [{"type": "function"}]}, "tools", "parameter `tools` is not supported"),
        ({"logprobs": True}, "logprobs", "parameter `logprobs` is not supported"),
        ({"messages": []}, "messages", "`messages` must be a non-empty list"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role", "must be one of system, user"),
        ({"messages": [{"role": "user", "content": "x", "tool_calls": []}]}, "messages[0].tool_calls", "not supported"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content[0]", "text part"),
        ({"model": ""}, "model", "`model` must be 1-200 characters"),
        ({"model": 7}, "model", "`model` must be 1-200 characters"),
        ({"user": "u" * 201}, "user", "`user` must be 1-200 characters"),
    ],
)
def test_a_bad_parameter_is_400_naming_it_and_the_fix(app, body, param, says):
    http, _ = app
    reply = post(http, {"model": "support:v1", "messages": HELLO, **body})
    error = reply.json()["error"]
    assert reply.status_code == 400 and error["param"] == param and says in error["message"], error
    assert error["type"] == "invalid_request_error"


def test_a_cloud_version_is_refused_saying_where_it_is_served(app):
    http, _ = app
    for model in ("writer:v1", "writer@staging"):
        with pytest.raises(openai.BadRequestError) as refused:
            client_of(http).chat.completions.create(model=model, messages=HELLO)
        error = refused.value.body
        assert isinstance(error, dict)
        assert "writer:v1 was trained at openai; only locally trained versions are answered here" in error["message"]
        assert "ft:gpt-4o-mini:acme::abc123" in error["message"] and error["param"] == "model"


def test_a_retired_or_unknown_version_is_refused_naming_it(app):
    http, _ = app
    missing = post(http, {"model": "support:v9", "messages": HELLO})
    assert missing.status_code == 404 and "support:v9" in missing.json()["error"]["message"]
    unknown_alias = post(http, {"model": "support@nope", "messages": HELLO})
    assert unknown_alias.status_code == 404 and "no alias 'nope'" in unknown_alias.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{" * 3_000_000, 413, "larger than"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nests"),
        (b'{"model": "\xff\xfe"}', 400, "not UTF-8"),
        (b'{"model": ', 400, "not JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"model": "support:v1", "messages": [{"role": "user", "content": "\\ud800"}]}', 400, "lone surrogate"),
        (b'{"model": "support\\ud800", "messages": [{"role": "user", "content": "hi"}]}', 400, "`model` must be"),
        (
            b'{"model": "support:v1", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
            400,
            "temperature",
        ),
    ],
)
def test_hostile_bodies_are_answered_never_a_traceback(app, body, status, says):
    http, _ = app
    reply = post(http, body)
    assert reply.status_code == status and says in reply.json()["error"]["message"]


def test_a_body_declared_too_large_is_refused_before_it_is_read(app):
    http, _ = app
    reply = post(http, b"{}", **{"Content-Length": str(10**9)})
    assert reply.status_code == 413


@hypothesis_settings(
    max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.dictionaries(
        st.sampled_from(["model", "messages", "max_tokens", "temperature", "stop", "n", "user", "stream", "x"]),
        json_documents,
        max_size=6,
    )
)
def test_any_json_body_is_answered_in_openais_error_shape(app, body):
    http, _ = app
    reply = post(http, body)
    assert reply.status_code in (400, 404), reply.text
    assert set(reply.json()["error"]) == {"message", "type", "param", "code"}


def test_models_lists_the_local_versions_and_aliases_callable_here(app):
    http, services = app
    registry.request_deploy(services, actor=ANN, name="support", version=3, alias="beta")
    listed = {m.id: m for m in client_of(http).models.list()}
    assert {"support:v1", "support:v2", "support:v3", "support@staging", "support@beta", "support@candidate"} <= set(
        listed
    )
    assert not [name for name in listed if name.startswith("writer")]
    assert listed["support@staging"].owned_by == "finetune-ops" and listed["support:v1"].created > 0


def test_the_server_reuses_a_loaded_model_instead_of_loading_it_per_request(app, monkeypatch):
    http, _ = app
    loads: list[str] = []
    real = local_inference.load_model

    def counting(ref, **options):
        loads.append(ref.model)
        return real(ref, **options)

    monkeypatch.setattr(local_inference, "load_model", counting)
    client = client_of(http)
    for _ in range(3):
        client.chat.completions.create(model="support:v1", messages=HELLO, max_tokens=1)
    for _ in client.chat.completions.create(model="support:v1", messages=HELLO, max_tokens=1, stream=True):
        pass
    assert len(loads) == 1


def test_a_real_serve_answers_the_openai_client_streamed_and_not(start_serve, settings, models):
    store = open_store(settings.db_path)
    try:
        register(store, models)
    finally:
        store.close()
    server = start_serve(settings, FINETUNE_APP_TOKENS=f"shop:{APP_TOKEN}")
    with openai.OpenAI(api_key=APP_TOKEN, base_url=f"{server.url}/v1", max_retries=0, timeout=120) as client:
        whole = client.chat.completions.create(model="support:v1", messages=HELLO, max_tokens=300, temperature=0)
        stream = client.chat.completions.create(
            model="support:v1", messages=HELLO, max_tokens=300, temperature=0, stream=True
        )
        chunks = iter(stream)
        pieces = [next(chunks).choices[0].delta.content or ""]  # generating from here on
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=10) as health:  # serve answers meanwhile
            assert health.status == 200
        pieces += [chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices]
        assert "".join(pieces) == whole.choices[0].message.content
        assert whole.usage is not None and whole.usage.completion_tokens == 300
        assert [m.id for m in client.models.list()][:3] == ["support:v1", "support:v2", "support:v3"]


def test_an_unexpected_failure_is_a_500_in_openais_shape_and_logged(app, monkeypatch, caplog):
    http, _ = app

    def broken(store, model, *, key):
        raise RuntimeError("boom")

    monkeypatch.setattr(inference, "target_for", broken)
    reply = post(http, {"model": "support:v1", "messages": HELLO})
    assert reply.status_code == 500 and reply.json()["error"]["type"] == "server_error"
    assert "boom" not in reply.text and "a chat completion failed" in caplog.text


def test_core_errors_keep_their_kind(app):
    assert isinstance(NotFound("x"), FinetuneError)  # the mapping below relies on the tree
    from bot.openai_api import refusal

    assert refusal(InferenceBusy("busy", transient=True)).response.status_code == 503
    assert refusal(InferenceBusy("busy", transient=True)).response.headers["retry-after"] == "2"
    assert refusal(ModelUnavailable("gone")).response.status_code == 503
