"""The OpenAI / Azure OpenAI provider.

Three layers: the real openai client against Prism mocking OpenAI's own OpenAPI
spec (do our requests and its replies fit the published contract?), the same
client against a stateful fake (states, paging, errors, refusals, idempotent
launch), and the status map and webhook checks, which need no server at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import time
import typing
from pathlib import Path

import openai
import pytest

from core.catalog.models import load_catalog
from core.errors import InvalidInput
from core.providers import REGISTRY
from core.providers.base import (
    LaunchRequest,
    ProviderError,
    ProviderEvent,
    ProviderJob,
    ProviderNotConfigured,
    ProviderRefused,
)
from core.providers.openai.provider import (
    HYPERPARAMETER_NAMES,
    JOB_METADATA_KEY,
    MAX_RETRIES,
    OpenAIProvider,
    ProviderCheckpoint,
    azure_provider,
    openai_provider,
)
from core.vocabulary import ACTIVE_JOB_STATES, JobState, Provider, values
from tests.conftest import ROOT, free_port, make_settings, wait_until
from tests.openai_fake import API_KEY, AZURE_KEY, start_fake

SPEC = ROOT.parent / "shared" / "specs" / "openai-fine-tuning-subset.json"
NODE_BIN = ROOT / "tools" / "node" / "node_modules" / ".bin"
PRISM = NODE_BIN / "prism"


# Fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture
def fake():
    fake, server = start_fake()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def provider(fake, tmp_path) -> OpenAIProvider:
    settings = make_settings(tmp_path, openai_api_key=API_KEY, openai_base_url=f"{fake.url}/v1")
    return openai_provider(settings)


@pytest.fixture
def data(tmp_path) -> tuple[Path, Path]:
    train, validation = tmp_path / "train.jsonl", tmp_path / "validation.jsonl"
    line = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    train.write_text(json.dumps(line) + "\n")
    validation.write_text(json.dumps(line) + "\n")
    return train, validation


def request(train: Path, validation: Path | None = None, **overrides) -> LaunchRequest:
    fields = {
        "job_id": "job-1", "idempotency_key": "job-1", "base_model": "gpt-4.1-mini-2025-04-14", "method": "supervised",
        "hyperparameters": {"epochs": 3.0, "batch_size": 8.0, "learning_rate_multiplier": 0.5},
        "train_file": train, "validation_file": validation, "suffix": "support-v3", "seed": 7,
    }  # fmt: skip
    return LaunchRequest(**{**fields, **overrides})


def spec_or_skip() -> dict:
    if not SPEC.exists():
        needs(f"the OpenAI spec subset is not at {SPEC} (a CI checkout has ../shared/specs/ beside the repo)")
    return json.loads(SPEC.read_text())


def needs(message: str):
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# 1. Contract: the real client against Prism mocking the official spec ------------------------------------


@pytest.fixture(scope="module")
def prism_url():
    if not SPEC.exists():
        needs(f"the OpenAI spec subset is not at {SPEC} (a CI checkout has ../shared/specs/ beside the repo)")
    if not PRISM.exists():
        needs("Prism is not installed: run `python3 dev.py test` (npm ci in tools/node)")
    port = free_port()
    env = {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), str(SPEC)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip

    output = proc.stdout
    assert output is not None  # stdout=PIPE

    def listening():
        if proc.poll() is not None:
            raise AssertionError(f"prism exited with {proc.returncode}: {output.read().decode()[-2000:]}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(listening, timeout=30, what="prism mock to listen")
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # prism's process group, led by the PID we started
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        output.close()


@pytest.fixture
def prism(prism_url, tmp_path) -> OpenAIProvider:
    return openai_provider(make_settings(tmp_path, openai_api_key=API_KEY, openai_base_url=prism_url))


def test_contract_supervised_launch_uploads_and_creates(prism, data):
    job = prism.launch(request(*data))
    assert isinstance(job, ProviderJob)
    assert job.provider_status in prism.STATUS_MAP and job.status in values(JobState)


def test_contract_dpo_launch_sends_beta(prism, data):
    job = prism.launch(request(data[0], method="dpo", hyperparameters={"epochs": 2, "beta": 0.1}))
    assert job.status in values(JobState)


def test_contract_requests_outside_the_spec_are_refused_for_good(prism, data):
    with pytest.raises(ProviderError) as raised:
        prism.launch(request(data[0], method="dpo", hyperparameters={"beta": 5}))  # the spec says 0 < beta <= 2
    assert not raised.value.transient
    assert "HTTP 422" in raised.value.message


def test_contract_poll_events_checkpoints(prism):
    job = prism.poll("ftjob-abc123")
    assert isinstance(job, ProviderJob) and job.status in values(JobState)
    events = prism.events("ftjob-abc123")
    assert events and all(isinstance(e, ProviderEvent) and e.kind in ("message", "metrics") for e in events)
    assert prism.events("ftjob-abc123", after=events[-1].id) == []
    checkpoints = prism.checkpoints("ftjob-abc123")
    assert checkpoints and isinstance(checkpoints[0], ProviderCheckpoint)
    assert "train_loss" in checkpoints[0].metrics


@pytest.mark.parametrize("action", ["cancel", "pause", "resume"])
def test_contract_steering(prism, action):
    job = getattr(prism, action)("ftjob-abc123")
    assert isinstance(job, ProviderJob) and job.status in values(JobState)


# 2. Against the stateful fake --------------------------------------------------------------------------------


def test_launch_uploads_files_and_creates_a_supervised_job(provider, fake, data):
    job = provider.launch(request(*data, validation_file=data[1]))
    assert (job.status, job.provider_status) == ("validating", "validating_files")
    stored = fake.jobs[job.provider_job_id]
    assert {f["purpose"] for f in fake.files.values()} == {"fine-tune"}
    assert fake.files[stored["training_file"]]["content"] == data[0].read_bytes()
    assert stored["validation_file"] in fake.files
    assert stored["method"] == {
        "type": "supervised",
        "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 0.5}},
    }
    assert type(stored["method"]["supervised"]["hyperparameters"]["n_epochs"]) is int
    assert (stored["suffix"], stored["seed"], stored["model"]) == ("support-v3", 7, "gpt-4.1-mini-2025-04-14")
    assert stored["metadata"][JOB_METADATA_KEY] == "job-1"
    create = fake.calls("POST", "/fine_tuning/jobs")[0]
    assert create.headers["idempotency-key"] == "job-1"


def test_launch_dpo_passes_beta(provider, fake, data):
    job = provider.launch(request(data[0], method="dpo", hyperparameters={"epochs": 1, "beta": 0.2}))
    assert fake.jobs[job.provider_job_id]["method"] == {
        "type": "dpo",
        "dpo": {"hyperparameters": {"n_epochs": 1, "beta": 0.2}},
    }


def test_a_repeated_launch_reuses_the_job_it_created(provider, fake, data):
    first = provider.launch(request(*data))
    again = provider.launch(request(*data))
    assert again.provider_job_id == first.provider_job_id
    assert len(fake.jobs) == 1 and len(fake.files) == 2  # nothing uploaded the second time
    listed = fake.calls("GET", "/fine_tuning/jobs")[-1]
    assert listed.query[f"metadata[{JOB_METADATA_KEY}]"] == "job-1"  # the API filters; we check again


def test_a_launch_whose_reply_was_lost_is_found_on_the_next_try(provider, fake, data):
    fake.fail(502, times=MAX_RETRIES + 1, on="POST /fine_tuning/jobs", after_processing=True)
    with pytest.raises(ProviderError) as raised:
        provider.launch(request(*data))
    assert raised.value.transient
    assert len(fake.jobs) == 1  # the client's own retries carried the same Idempotency-Key
    job = provider.launch(request(*data))  # the poller submits again
    assert job.provider_job_id in fake.jobs and len(fake.jobs) == 1
    assert len(fake.calls("POST", "/fine_tuning/jobs")) == MAX_RETRIES + 1


def test_a_new_idempotency_key_makes_a_new_job(provider, fake, data):
    first = provider.launch(request(*data))
    fake.advance(first.provider_job_id, "failed", error={"code": "invalid_file", "message": "bad line 3"})
    second = provider.launch(request(*data, idempotency_key="job-1-retry"))
    assert second.provider_job_id != first.provider_job_id


def test_a_job_moves_through_its_states(provider, fake, data):
    job_id = provider.launch(request(*data)).provider_job_id
    seen = [provider.poll(job_id).status]
    fake.advance(job_id, "queued")
    seen.append(provider.poll(job_id).status)
    fake.advance(job_id, "running", estimated_finish=1_900_000_000)
    running = provider.poll(job_id)
    seen.append(running.status)
    assert running.detail.startswith("estimated finish 2030-")
    fake.add_checkpoint(job_id, 50, train_loss=0.9, valid_loss=1.1)
    fake.add_checkpoint(job_id, 100, train_loss=0.4, valid_loss=0.6, full_valid_loss=0.55)
    fake.advance(job_id, "succeeded", fine_tuned_model="ft:gpt-4.1-mini:org:support-v3:abc", trained_tokens=12345)
    done = provider.poll(job_id)
    seen.append(done.status)
    assert seen == ["validating", "queued", "running", "succeeded"]
    assert (done.model_id, done.trained_tokens, done.error) == ("ft:gpt-4.1-mini:org:support-v3:abc", 12345, None)
    assert done.metrics == {"train_loss": 0.4, "valid_loss": 0.6, "full_valid_loss": 0.55}


def test_a_failed_job_reports_why(provider, fake, data):
    job_id = provider.launch(request(*data)).provider_job_id
    fake.advance(
        job_id,
        "failed",
        error={"code": "invalid_training_file", "message": "Line 3 has no assistant message", "param": "training_file"},
    )
    failed = provider.poll(job_id)
    assert failed.status == "failed"
    assert failed.error == "Line 3 has no assistant message (invalid_training_file, param training_file)"


def test_cancel_pause_and_resume(provider, fake, data):
    job_id = provider.launch(request(*data)).provider_job_id
    fake.advance(job_id, "queued")
    fake.advance(job_id, "running")
    paused = provider.pause(job_id)
    assert (paused.provider_status, paused.status) == ("paused", "queued")
    assert paused.status in ACTIVE_JOB_STATES and "resume" in paused.detail
    assert provider.resume(job_id).status == "running"
    assert provider.cancel(job_id).status == "cancelled"
    with pytest.raises(ProviderError) as raised:
        provider.resume(job_id)
    assert not raised.value.transient and "HTTP 400" in raised.value.message


def test_events_page_until_exhausted_oldest_first(provider, fake, data):
    job_id = provider.launch(request(*data)).provider_job_id
    for step in range(1, 231):
        fake.add_metrics(job_id, step, train_loss=1 / step, train_mean_token_accuracy=0.5)
    fake.add_event(job_id, "Checkpoint created at step 230")
    events = provider.events(job_id)
    assert len(events) == 232
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert events[0].kind == "message" and events[0].message.startswith("Created fine-tuning job")
    assert events[1].kind == "metrics" and events[1].step == 1
    assert events[1].metrics == {"train_loss": 1.0, "total_steps": 100.0, "train_mean_token_accuracy": 0.5}
    assert events[-1].kind == "message"
    assert len(fake.calls("GET", f"/fine_tuning/jobs/{job_id}/events")) == 3  # pages of 100 via `after`


def test_events_after_an_id_returns_only_newer_ones(provider, fake, data):
    job_id = provider.launch(request(*data)).provider_job_id
    first = provider.events(job_id)
    for step in (1, 2):
        fake.add_metrics(job_id, step, train_loss=0.5)
    newer = provider.events(job_id, after=first[-1].id)
    assert [e.step for e in newer] == [1, 2]
    assert provider.events(job_id, after=newer[-1].id) == []
    assert len(fake.calls("GET", f"/fine_tuning/jobs/{job_id}/events")) == 3  # one page each: stops at `after`


def test_checkpoints_carry_their_metrics(provider, fake, data):
    job_id = provider.launch(request(*data)).provider_job_id
    fake.add_checkpoint(job_id, 10, train_loss=0.8, train_mean_token_accuracy=0.7)
    fake.add_checkpoint(job_id, 20, train_loss=0.6, train_mean_token_accuracy=0.8)
    found = provider.checkpoints(job_id)
    assert [c.step for c in found] == [10, 20]
    assert found[1].metrics == {"train_loss": 0.6, "train_mean_token_accuracy": 0.8}
    assert found[1].model_id.endswith("ckpt-step-20")


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503])
def test_transient_errors_after_the_clients_own_retries(provider, fake, data, status):
    job_id = provider.launch(request(*data)).provider_job_id
    before = len(fake.requests)
    fake.fail(status, times=MAX_RETRIES + 1, on="GET /fine_tuning/jobs/")
    with pytest.raises(ProviderError) as raised:
        provider.poll(job_id)
    error = raised.value
    assert error.transient
    assert error.request_id and error.request_id.startswith("req_") and error.request_id in error.message
    assert len(fake.requests) - before == MAX_RETRIES + 1  # the client's retries, no second loop of ours


def test_one_throttled_call_is_retried_by_the_client(provider, fake, data):
    job_id = provider.launch(request(*data)).provider_job_id
    fake.fail(429, on="GET /fine_tuning/jobs/")
    assert provider.poll(job_id).status == "validating"


@pytest.mark.parametrize(
    ("status", "hint_part"), [(400, None), (401, "OPENAI_API_KEY"), (404, "Check the id"), (422, None)]
)
def test_permanent_errors_are_final_and_not_retried(provider, fake, data, status, hint_part):
    job_id = provider.launch(request(*data)).provider_job_id
    before = len(fake.requests)
    fake.fail(status, on="GET /fine_tuning/jobs/", message="no good")
    with pytest.raises(ProviderError) as raised:
        provider.poll(job_id)
    assert not raised.value.transient and not isinstance(raised.value, ProviderRefused)
    assert f"HTTP {status}" in raised.value.message and "no good" in raised.value.message
    if hint_part:
        assert hint_part in (raised.value.hint or "")
    assert len(fake.requests) - before == 1


def test_an_unknown_job_is_a_permanent_error(provider):
    with pytest.raises(ProviderError) as raised:
        provider.poll("ftjob-missing")
    assert not raised.value.transient and "HTTP 404" in raised.value.message
    assert "Could not find fine-tune" in raised.value.message


@pytest.mark.parametrize(
    ("status", "message", "code"),
    [
        (403, "You do not have access to fine-tuning.", None),
        (400, "Fine-tuning is not available for your organization.", "model_not_available"),
        (404, "This model is no longer available for fine-tuning.", None),
        (401, "Permission denied for this project.", "permission_denied"),
    ],
)
def test_a_refusal_says_openai_is_winding_down_and_names_the_alternatives(provider, fake, data, status, message, code):
    fake.fail(status, on="POST /fine_tuning/jobs", message=message, code=code)
    with pytest.raises(ProviderRefused) as raised:
        provider.launch(request(*data))
    error = raised.value
    assert not error.transient and error.request_id
    assert message.rstrip(".") in error.message
    assert "winding down self-serve fine-tuning" in error.message and "2027-01-06" in error.message
    assert "many organisations are already refused" in error.message
    for name in ("Azure OpenAI", "AZURE_OPENAI_ENDPOINT", "AWS Bedrock", "Nova", "Llama", "local LoRA"):
        assert name in (error.hint or "")


def test_no_quota_left_is_refused_not_retried_later(provider, fake, data):
    fake.fail(
        429,
        times=MAX_RETRIES + 1,
        on="POST /fine_tuning/jobs",
        code="insufficient_quota",
        message="You exceeded your current quota.",
    )
    with pytest.raises(ProviderRefused) as raised:
        provider.launch(request(*data))
    assert not raised.value.transient and "quota" in raised.value.message


def test_unreachable_and_slow_servers_are_transient(fake, tmp_path):
    closed = OpenAIProvider(
        openai.OpenAI(api_key=API_KEY, base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    )
    with pytest.raises(ProviderError) as raised:
        closed.poll("ftjob-1")
    assert raised.value.transient
    slow = OpenAIProvider(openai.OpenAI(api_key=API_KEY, base_url=f"{fake.url}/v1", max_retries=0, timeout=0.2))
    fake.delay = 1.0
    with pytest.raises(ProviderError) as raised:
        slow.poll("ftjob-1")
    assert raised.value.transient


@pytest.mark.parametrize(
    ("overrides", "message_part"),
    [
        ({"hyperparameters": {"learning_rate": 1e-5}}, "no hyperparameter learning_rate"),
        ({"hyperparameters": {"beta": 0.1}}, "no hyperparameter beta"),
        ({"method": "reinforcement"}, "method 'reinforcement'"),
        ({"train_file": Path("/nonexistent/train.jsonl")}, "does not exist"),
    ],
)
def test_launch_checks_its_request_before_calling_out(provider, fake, data, overrides, message_part):
    with pytest.raises(InvalidInput) as raised:
        provider.launch(request(*data, **overrides))
    assert message_part in raised.value.message
    assert fake.requests == []


def test_an_empty_job_id_is_refused_at_the_boundary(provider, fake):
    with pytest.raises(InvalidInput, match="expected an OpenAI fine-tuning job id"):
        provider.poll("")
    assert fake.requests == []


def test_azure_speaks_the_same_api_with_its_own_key_and_version(fake, tmp_path, data):
    settings = make_settings(
        tmp_path,
        azure_openai_endpoint=fake.url,
        azure_openai_api_key=AZURE_KEY,
        azure_openai_api_version="2025-04-01-preview",
    )
    azure = azure_provider(settings)
    assert azure.name == "azure"
    job = azure.launch(request(*data))
    assert azure.poll(job.provider_job_id).status == "validating"
    create = fake.calls("POST", "/fine_tuning/jobs")[0]
    assert create.headers["api-key"] == AZURE_KEY and create.query["api-version"] == "2025-04-01-preview"


def test_an_azure_refusal_does_not_blame_openai(fake, tmp_path, data):
    azure = azure_provider(make_settings(tmp_path, azure_openai_endpoint=fake.url, azure_openai_api_key=AZURE_KEY))
    fake.fail(403, on="POST /fine_tuning/jobs", message="Principal does not have access.")
    with pytest.raises(ProviderRefused) as raised:
        azure.launch(request(*data))
    assert "Azure OpenAI refused" in raised.value.message and "winding down" not in raised.value.message
    assert "AWS Bedrock" in (raised.value.hint or "")


# Registry and settings ----------------------------------------------------------------------------------------


def test_both_providers_are_registered(tmp_path):
    key_settings = make_settings(tmp_path, openai_api_key="sk-test")
    azure_settings = make_settings(
        tmp_path, azure_openai_endpoint="https://x.openai.azure.com", azure_openai_api_key="k"
    )
    assert REGISTRY[Provider.OPENAI](key_settings).name == "openai"
    assert REGISTRY[Provider.AZURE](azure_settings).name == "azure"


def test_openai_without_a_key_is_not_configured(settings):
    with pytest.raises(ProviderNotConfigured, match="OPENAI_API_KEY"):
        openai_provider(settings)


@pytest.mark.parametrize(
    ("overrides", "missing"),
    [
        ({}, ["AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY"]),
        ({"azure_openai_endpoint": "https://x.openai.azure.com"}, ["AZURE_OPENAI_API_KEY"]),
        ({"azure_openai_api_key": "k"}, ["AZURE_OPENAI_ENDPOINT"]),
    ],
)
def test_azure_names_the_missing_settings(tmp_path, overrides, missing):
    with pytest.raises(ProviderNotConfigured) as raised:
        azure_provider(make_settings(tmp_path, **overrides))
    named = [env for env in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY") if env in raised.value.message]
    assert named == missing


def test_the_clients_retry_modestly(tmp_path):
    settings = make_settings(
        tmp_path, openai_api_key="k", azure_openai_endpoint="https://x.openai.azure.com", azure_openai_api_key="k"
    )
    assert openai_provider(settings).client.max_retries == MAX_RETRIES == 2
    assert azure_provider(settings).client.max_retries == MAX_RETRIES


# 3. The status map --------------------------------------------------------------------------------------------


def sdk_statuses() -> set[str]:
    annotation = openai.types.fine_tuning.FineTuningJob.model_fields["status"].annotation
    return set(typing.get_args(annotation))


def test_status_map_targets_only_unified_states():
    assert set(OpenAIProvider.STATUS_MAP.values()) <= set(values(JobState))


def test_status_map_covers_every_status_the_client_knows():
    assert sdk_statuses() and sdk_statuses() <= set(OpenAIProvider.STATUS_MAP)


def test_status_map_covers_every_status_the_spec_documents():
    spec = spec_or_skip()
    documented = set(spec["components"]["schemas"]["FineTuningJob"]["properties"]["status"]["enum"])
    assert documented <= set(OpenAIProvider.STATUS_MAP)


def test_status_map_covers_pause_and_keeps_paused_jobs_active():
    # Documented beside the enum: pause/resume return `paused`, and a job passes through `pausing`.
    assert OpenAIProvider.STATUS_MAP["pausing"] == "running"
    assert OpenAIProvider.STATUS_MAP["paused"] == "queued"
    assert {"pausing", "paused"} <= set(OpenAIProvider.DETAILS)


def test_an_unknown_status_is_an_error_not_a_guess():
    with pytest.raises(ProviderError, match="does not know: 'exploded'") as caught:
        OpenAIProvider(openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")).unified("exploded")
    assert caught.value.transient  # the job stays as it was and is polled again, never failed on a guess


def test_hyperparameter_names_agree_with_the_catalog():
    for info in load_catalog().models.values():
        if info.provider != "openai":
            continue
        for method in info.methods:
            names = HYPERPARAMETER_NAMES[method]
            for ours, theirs in info.provider_hyperparameter_names.items():
                if ours == "beta" and method != "dpo":
                    continue
                assert names[ours] == theirs, (info.id, method, ours)


# 4. Webhooks ----------------------------------------------------------------------------------------------------


SECRET = "whsec_" + base64.b64encode(b"finetune-ops-webhook-secret-0001").decode()


def signed(body: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """The headers OpenAI sends: base64 HMAC-SHA256 of 'id.timestamp.body' under the decoded whsec_ secret."""
    webhook_id, ts = "wh_test_1", str(int(time.time()) if timestamp is None else timestamp)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def webhook_body(kind: str = "fine_tuning.job.succeeded") -> bytes:
    return json.dumps(
        {"id": "evt_123", "object": "event", "created_at": int(time.time()), "type": kind, "data": {"id": "ftjob-abc"}}
    ).encode()


@pytest.fixture
def offline() -> OpenAIProvider:
    return OpenAIProvider(openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=0))


@pytest.mark.parametrize("kind", ["fine_tuning.job.succeeded", "fine_tuning.job.failed", "fine_tuning.job.cancelled"])
def test_a_correctly_signed_webhook_is_accepted(offline, kind):
    body = webhook_body(kind)
    assert offline.verify_webhook(body, signed(body), SECRET) == {
        "type": kind,
        "job_id": "ftjob-abc",
        "event_id": "evt_123",
    }


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body: (body, signed(body, secret="whsec_" + base64.b64encode(b"another-secret").decode())),
        lambda body: (body.replace(b"ftjob-abc", b"ftjob-xyz"), signed(body)),
        lambda body: (body, signed(body, timestamp=int(time.time()) - 3600)),
        lambda body: (body, {k: v for k, v in signed(body).items() if k != "webhook-signature"}),
    ],
    ids=["wrong-secret", "altered-body", "stale", "unsigned"],
)
def test_a_badly_signed_webhook_is_rejected(offline, tamper):
    body, headers = tamper(webhook_body())
    with pytest.raises(ProviderError) as raised:
        offline.verify_webhook(body, headers, SECRET)
    assert not raised.value.transient and "rejected" in raised.value.message


def test_a_webhook_without_a_secret_cannot_be_verified(offline):
    body = webhook_body()
    with pytest.raises(ProviderError, match="no webhook secret"):
        offline.verify_webhook(body, signed(body), "")
