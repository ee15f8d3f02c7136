"""Local LoRA training, on the tiny model: labels, learning, DPO, the training process, cancel, crashes, restarts.

Everything runs offline on the CPU. The tiny model is built from the tests' own
feedback texts; the training process is the real worker, started by the real
provider, and every worker a test starts is stopped (and collected) by the
`workers` fixture.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.data import datasets, feedback
from core.errors import InvalidInput
from core.platform.actors import cli_actor
from core.providers import REGISTRY, ProviderError, ProviderNotConfigured
from core.providers.local import LocalProvider, RunStatus, locate_base_model, progress_line, runs_root, tiny, training
from core.providers.local import provider as local_provider
from core.providers.local.config import TrainConfig
from core.providers.local.runs import ProcessInfo, RunDir, RunRequest, RunState, Stopped, is_running, process_start
from core.services import build_services
from core.training import jobs, planning
from core.vocabulary import JobState, Method, Provider, values
from tests.conftest import wait_until
from tests.feedback_samples import make_events

FINAL = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def chat_rows(n: int = 60) -> list[dict]:
    return [
        {"messages": [*event["messages"], {"role": "assistant", "content": event.get("final") or event["output"]}]}
        for event in make_events(n)
    ]


def preference_rows(n: int = 60) -> list[dict]:
    return [
        {"input": {"messages": event["messages"]}, "preferred_output": [{"role": "assistant", "content": event["final"]}],
         "non_preferred_output": [{"role": "assistant", "content": event["output"]}]}
        for event in make_events(n) if event.get("final")
    ]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    texts = [*training.texts_of(chat_rows()), "System rules. Answer briefly."]
    return tiny.build_tiny_model(tmp_path_factory.mktemp("tiny") / "base", texts)


@pytest.fixture(scope="module")
def tokenizer(tiny_base):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base, local_files_only=True)


@pytest.fixture
def version(store):
    feedback.ingest_batch(store, make_events(60), actor=cli_actor())
    return datasets.build_dataset(store, name="support", actor=cli_actor())


@pytest.fixture
def workers(settings):
    """Every worker a test started is stopped and collected when it ends, however it ends."""
    yield runs_root(settings)
    for run_path in runs_root(settings).glob("*"):
        info = RunDir(run_path).read_process()
        if info is not None and is_running(info):
            os.killpg(info.pid, signal.SIGKILL)
    for pid, child in list(local_provider._children.items()):
        child.wait(timeout=30)
        local_provider._children.pop(pid, None)


def launch(store, settings, version, **kwargs):
    return jobs.launch_job(
        build_services(settings, store=store), dataset_version=version.id, provider="local", base_model="tiny",
        actor=cli_actor(), **kwargs,
    )  # fmt: skip


def wait_for(store, settings, job_id, predicate, *, what, timeout=90.0):
    services = build_services(settings, store=store)
    return wait_until(lambda: (job := jobs.poll_job(services, job_id)) and predicate(job) and job, timeout=timeout,
                      interval=0.2, what=what)  # fmt: skip


# Labels: the loss looks at the assistant's tokens only ----------------------------------------------------------


def labelled_text(tokenizer, encoded) -> str:
    return tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != -100])


def test_labels_cover_the_assistant_turns_and_nothing_else(tokenizer):
    messages = [
        {"role": "system", "content": "System rules."},
        {"role": "user", "content": "Where is my refund?"},
        {"role": "assistant", "content": "It ships Monday."},
        {"role": "user", "content": "Thanks, and the invoice?"},
        {"role": "assistant", "content": "Sent today."},
    ]
    encoded = training.encode_chat(tokenizer, messages, max_length=1024)
    assert len(encoded.input_ids) == len(encoded.labels)
    assert all(label in (-100, token) for token, label in zip(encoded.input_ids, encoded.labels, strict=True))
    assert labelled_text(tokenizer, encoded) == "It ships Monday.<|im_end|>\nSent today.<|im_end|>\n"
    prompt = training.render(tokenizer, messages[:2], generation_prompt=True)
    assert encoded.labels[: len(tokenizer(prompt, add_special_tokens=False)["input_ids"])] == [-100] * len(
        tokenizer(prompt, add_special_tokens=False)["input_ids"]
    )
    last = training.encode_chat(tokenizer, messages, max_length=1024, last_only=True)
    assert labelled_text(tokenizer, last) == "Sent today.<|im_end|>\n"


def test_a_template_that_rewrites_earlier_turns_still_labels_the_answers(tokenizer):
    """Without the prefix property, each answer is found by its text (and its end-of-turn token)."""
    messages = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello, how can I help?"}]
    original = tokenizer.chat_template
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}<|im_end|>{% endfor %}"
        "{% if add_generation_prompt %}assistant says: {% endif %}"
    )
    try:
        encoded = training.encode_chat(tokenizer, messages, max_length=1024)
    finally:
        tokenizer.chat_template = original
    assert (
        labelled_text(tokenizer, encoded) == " Hello, how can I help?<|im_end|>"
        or labelled_text(tokenizer, encoded).strip() == "Hello, how can I help?<|im_end|>"
    )


TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
    lambda text: text.strip() == text and "<|" not in text
)


@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=3))
def test_labelled_tokens_spell_exactly_the_answers(tokenizer, turns):
    messages = [m for user, answer in turns for m in ({"role": "user", "content": user}, {"role": "assistant", "content": answer})]  # fmt: skip
    encoded = training.encode_chat(tokenizer, messages, max_length=4096)
    assert labelled_text(tokenizer, encoded) == "".join(f"{answer}<|im_end|>\n" for _, answer in turns)


def test_long_examples_are_cut_and_rows_without_an_answer_left_are_left_out(tokenizer):
    config = TrainConfig(max_length=8)
    encoded, dropped = training.encode_rows(tokenizer, chat_rows(3), config)
    assert dropped == 3 and encoded == []  # the answer starts after 8 tokens in every row
    kept, none_dropped = training.encode_rows(tokenizer, chat_rows(3), TrainConfig())
    assert none_dropped == 0 and all(e.trained_tokens for e in kept)


# Learning -----------------------------------------------------------------------------------------------------------------


def tiny_lora(tiny_base, config: TrainConfig):
    model, tokenizer = training.load_base(str(tiny_base), device=training.pick_device())
    return training.add_lora(model, config), tokenizer


def test_the_training_loss_falls_over_a_few_dozen_steps(tiny_base):
    config = TrainConfig(epochs=10, batch_size=4, learning_rate=1e-2, lora_r=8, lora_alpha=16, max_steps=36)
    model, tokenizer = tiny_lora(tiny_base, config)
    examples, _ = training.encode_rows(tokenizer, chat_rows(), config)
    reporter = training.QuietReporter()
    result = training.train(model, tokenizer, examples[:48], examples[48:], config, reporter)
    losses = [log.train_loss for log in reporter.logs]
    assert result.steps == 36 and len(losses) == 36 and all(math.isfinite(loss) for loss in losses)
    first, last = sum(losses[:6]) / 6, sum(losses[-6:]) / 6
    assert last < first - 0.3, f"the loss did not fall: {first:.3f} -> {last:.3f}"
    assert reporter.evals and reporter.evals[-1][1] < reporter.evals[0][1] + 1e-6
    assert result.eval_loss == reporter.evals[-1][1] and result.trained_tokens > 0
    assert reporter.logs[-1].eta_seconds == 0 and reporter.logs[0].tokens_per_second > 0


def test_dpo_runs_a_few_steps_from_the_base_models_preferences(tiny_base):
    config = TrainConfig(
        method=Method.DPO, epochs=1, batch_size=4, learning_rate=1e-2, lora_r=8, lora_alpha=16, max_steps=4
    )
    model, tokenizer = tiny_lora(tiny_base, config)
    pairs, dropped = training.encode_rows(tokenizer, preference_rows(), config)
    assert pairs and dropped == 0
    reporter = training.QuietReporter()
    result = training.train(model, tokenizer, pairs, pairs[:4], config, reporter)
    losses = [log.train_loss for log in reporter.logs]
    assert result.steps == 4 and all(math.isfinite(loss) for loss in losses)
    assert losses[0] == pytest.approx(math.log(2), abs=1e-4)  # the adapter starts at zero: policy == reference
    assert losses[-1] < math.log(2) and result.eval_loss is not None


def test_gradient_accumulation_and_checkpointing_come_from_the_hyperparameters(tiny_base):
    config = TrainConfig.from_hyperparameters(
        "supervised", {"epochs": 1, "batch_size": 2, "gradient_accumulation_steps": 3, "gradient_checkpointing": 1}
    )
    model, tokenizer = training.load_base(str(tiny_base), device=training.pick_device(), gradient_checkpointing=True)
    assert model.is_activation_checkpointing
    model = training.add_lora(model, config)
    examples, _ = training.encode_rows(tokenizer, chat_rows(12), config)
    reporter = training.QuietReporter()
    result = training.train(model, tokenizer, examples, [], config, reporter)
    assert result.steps == 2 and [log.step for log in reporter.logs] == [1, 2]  # 6 micro-batches, 3 per step
    assert result.train_loss is not None and math.isfinite(result.train_loss)


def test_cancelling_between_steps_stops_the_loop(tiny_base):
    class StopAfterTwo(training.QuietReporter):
        def should_stop(self) -> bool:
            return len(self.logs) >= 2

    config = TrainConfig(epochs=5, batch_size=4, learning_rate=1e-2)
    model, tokenizer = tiny_lora(tiny_base, config)
    examples, _ = training.encode_rows(tokenizer, chat_rows(20), config)
    with pytest.raises(Stopped, match="stopped at step 2"):
        training.train(model, tokenizer, examples, [], config, StopAfterTwo())


# The training process, through the jobs service and the faces ---------------------------------------------------------


def test_cli_launch_on_tiny_registers_a_candidate_at_the_adapter_after_a_restart(
    cli, store, settings, version, workers, monkeypatch
):
    code, out, err = cli(
        "jobs", "launch", version.id, "--provider", "local", "--base-model", "tiny", "--epochs", "1", "--json"
    )
    assert code == 0, err
    launched = json.loads(out)["job"]
    assert launched["status"] == "running" and launched["estimated_cost_usd"] == 0
    job_id = launched["id"]
    # serve restarts: a new process with fresh Services and no memory of the worker it did not start
    monkeypatch.setattr(local_provider, "_children", {})
    restarted = build_services(settings)
    try:
        seen = jobs.poll_job(restarted, job_id)
        assert seen.status is JobState.RUNNING and seen.provider_job_id == job_id
        done = wait_until(lambda: (j := jobs.poll_job(restarted, job_id)).status in FINAL and j, timeout=90,
                          interval=0.2, what="the local job to finish")  # fmt: skip
    finally:
        restarted.close()
    assert done.status is JobState.SUCCEEDED, done.error
    adapter = Path(done.model_id)
    assert adapter == workers / job_id / "adapter"
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json"} <= {p.name for p in adapter.iterdir()}
    version_row = store.query("SELECT id, provider_model_id, job_id FROM model_versions")[0]
    assert version_row["provider_model_id"] == str(adapter) and version_row["job_id"] == job_id
    assert store.scalar("SELECT model_version_id FROM model_aliases WHERE alias = 'candidate'") == version_row["id"]
    events = jobs.job_events(store, job_id)
    messages = " | ".join(e.message or "" for e in events.events)
    assert "tiny model built from this job's data" in messages and "parameters" in messages
    assert f"ollama create support-v1 -f {workers / job_id / 'Modelfile'}" in messages
    assert events.loss_series()["train_loss"] and events.loss_series()["eval_loss"]
    modelfile = (workers / job_id / "Modelfile").read_text()
    assert f"FROM {workers / job_id / 'base'}" in modelfile and f"ADAPTER {adapter}" in modelfile
    assert json.loads((workers / job_id / "metrics.json").read_text())["train_loss"] > 0
    code, out, _ = cli("jobs", "show", job_id)
    assert code == 0 and "succeeded" in out


def test_the_adapter_loads_back_and_generates(store, settings, version, workers):
    job = launch(store, settings, version, hyperparameters={"epochs": 1, "merge": 1}).job
    done = wait_for(store, settings, job.id, lambda j: j.status in FINAL, what="the local job to finish")
    assert done.status is JobState.SUCCEEDED, done.error
    model, tokenizer = training.load_adapter(str(workers / job.id / "base"), done.model_id)
    prompt = training.render(
        tokenizer, [{"role": "user", "content": "Question 1: order refund"}], generation_prompt=True
    )
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]
    assert isinstance(tokenizer.decode(output[0][inputs["input_ids"].shape[1] :]), str)
    assert (workers / job.id / "merged" / "config.json").is_file()  # merge=1 asked for a merged copy


def test_cancel_stops_the_training_process_and_the_job_reads_cancelled(cli, store, settings, version, workers):
    job = launch(store, settings, version, hyperparameters={"epochs": 20, "batch_size": 2}).job
    running = wait_for(store, settings, job.id, lambda j: "step" in (j.status_detail or ""), what="training steps")
    assert running.status is JobState.RUNNING and "ETA" in running.status_detail
    code, out, _ = cli("jobs", "show", job.id)
    assert code == 0 and "ETA" in out and "tokens/s" in out  # the detail line while it runs
    info = RunDir(workers / job.id).read_process()
    assert info is not None
    started = time.monotonic()
    cancelled = jobs.cancel_job(build_services(settings, store=store), job_id=job.id, actor=cli_actor())
    assert cancelled.status is JobState.CANCELLED and time.monotonic() - started < 30
    assert not is_running(info)
    ended = RunDir(workers / job.id).read_state()
    assert ended is not None and ended.status is RunStatus.CANCELLED
    assert not (workers / job.id / "adapter").exists()


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace(settings, workers, monkeypatch):
    run = RunDir(workers / "job_stubborn")
    run.path.mkdir(parents=True)
    ready = run.path / "ready"
    stubborn = (
        "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "pathlib.Path(sys.argv[1]).touch(); time.sleep(120)"
    )
    child = subprocess.Popen([sys.executable, "-c", stubborn, str(ready)], start_new_session=True)
    local_provider._children[child.pid] = child
    run.write_request(RunRequest(job_id="job_stubborn", base_model="tiny", method="supervised", hyperparameters={},
                                 train_file="train.jsonl"))  # fmt: skip
    run.write_state(RunState(RunStatus.TRAINING, step=3, total_steps=10))
    run.write_process(ProcessInfo(pid=child.pid, started=process_start(child.pid)))
    wait_until(ready.exists, timeout=30, what="the process to ignore SIGTERM")
    monkeypatch.setattr(local_provider, "CANCEL_GRACE_SECONDS", 0.5)
    job = LocalProvider(settings).cancel("job_stubborn")
    assert job.status is JobState.CANCELLED and child.wait(timeout=10) == -signal.SIGKILL


def test_a_worker_killed_without_finishing_fails_its_job_with_the_reason(store, settings, version, workers):
    job = launch(store, settings, version, hyperparameters={"epochs": 20, "batch_size": 2}).job
    wait_for(store, settings, job.id, lambda j: "step" in (j.status_detail or ""), what="training steps")
    info = RunDir(workers / job.id).read_process()
    assert info is not None
    os.killpg(info.pid, signal.SIGKILL)
    wait_until(lambda: not is_running(info) or local_provider._children[info.pid].poll() is not None, timeout=30)
    failed = jobs.poll_job(build_services(settings, store=store), job.id)
    assert failed.status is JobState.FAILED
    assert f"the training process (pid {info.pid}) is gone without finishing; last log line:" in (failed.error or "")


def test_a_base_model_that_is_not_on_the_machine_fails_the_launch_saying_what_to_do(store, settings, version):
    result = jobs.launch_job(
        build_services(settings, store=store), dataset_version=version.id, provider="local",
        base_model=str(settings.data_dir / "no-such-model"), actor=cli_actor(),
    )  # fmt: skip
    assert result.job.status is JobState.FAILED and not result.ok
    error = result.job.error or ""
    assert "no-such-model" in error and "never downloads" in error and "FINETUNE_LOCAL_BASE_MODEL" in error
    with pytest.raises(ProviderError, match="not in the Hugging Face cache"):
        locate_base_model("acme-nowhere/no-such-model-7b")
    with pytest.raises(ProviderError, match="not a directory or a Hugging Face id"):
        locate_base_model("bad\nname")


def test_without_the_local_extra_the_launch_is_refused_before_anything_is_written(
    store, settings, version, monkeypatch
):
    real = importlib.util.find_spec  # what check_local asks; torch itself stays importable, as it is never imported
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    tables = ("jobs", "outbox", "approvals", "dataset_exports", "audit_log")
    before = {table: store.scalar(f"SELECT count(*) FROM {table}") for table in tables}
    with pytest.raises(ProviderNotConfigured) as caught:
        launch(store, settings, version)
    hint = caught.value.hint or ""
    assert "missing: torch" in caught.value.message and "pip install 'finetune-ops[local]'" in hint
    assert "python3 dev.py serve" in hint
    assert {table: store.scalar(f"SELECT count(*) FROM {table}") for table in tables} == before


# Base models outside the catalog, the default one, costs and suggestions ------------------------------------------------------


def test_a_model_outside_the_catalog_is_planned_as_local_compute(store, settings, version, tmp_path):
    model_dir = tmp_path / "models" / "my-llama"
    services = build_services(settings, store=store)
    cost = planning.estimate_version_cost(
        store, version=version.id, base_model=str(model_dir), actor=cli_actor(), data_dir=settings.data_dir,
        catalog=services.catalog,
    )  # fmt: skip
    assert (cost.provider, cost.usd, cost.usd_per_1m_tokens) == ("local", 0.0, 0.0)
    assert any("your own compute" in note for note in cost.notes)
    suggestion = planning.suggest_for_version(
        store, version=version.id, base_model="acme/assistant-7b", actor=cli_actor(), data_dir=settings.data_dir,
        catalog=services.catalog,
    )  # fmt: skip
    assert suggestion.provider == "local" and suggestion.learning_rate == planning.OUTSIDE_LEARNING_RATE
    assert planning.catalog_for(services.catalog, "gpt-4o-mini") is services.catalog  # not a local-looking name
    prefixed = planning.catalog_for(services.catalog, "Qwen/Qwen2.5-0.5B-Instruct-AWQ", provider="local")
    assert prefixed.require("Qwen/Qwen2.5-0.5B-Instruct-AWQ").id == "Qwen/Qwen2.5-0.5B-Instruct-AWQ"
    for hostile in ("a/" + "x" * 300, "models/\nname"):
        with pytest.raises(InvalidInput, match="printable characters"):
            planning.catalog_for(services.catalog, hostile, provider="local")


def test_default_names_the_configured_local_base_model(tmp_path, settings):
    with pytest.raises(InvalidInput, match="FINETUNE_LOCAL_BASE_MODEL") as caught:
        planning.local_base_model(settings, provider="local", base_model="default")
    assert "--base-model" in (caught.value.hint or "")
    configured = settings.model_copy(update={"local_base_model": "/models/llama"})
    assert planning.local_base_model(configured, provider="local", base_model="default") == "/models/llama"
    assert planning.local_base_model(configured, provider="openai", base_model="default") == "default"


# The provider's own parts ---------------------------------------------------------------------------------------------------------


def test_every_run_status_maps_to_one_job_state_and_the_registry_builds_the_provider(settings):
    assert set(LocalProvider.STATUS_MAP) == set(values(RunStatus))
    assert isinstance(REGISTRY[Provider.LOCAL](settings), LocalProvider)


def test_hyperparameters_are_read_strictly():
    config = TrainConfig.from_hyperparameters(
        "dpo", {"epochs": 2.0, "batch_size": "4", "merge": 1, "gradient_checkpointing": 0, "beta": 0.2}, seed=3
    )
    assert (config.method, config.epochs, config.batch_size, config.merge, config.gradient_checkpointing, config.seed) == (
        Method.DPO, 2, 4, True, False, 3,
    )  # fmt: skip
    for bad, message in (({"n_epochs": 2}, "no hyperparameter n_epochs"), ({"epochs": 1.5}, "whole number"),
                         ({"merge": 2}, "0 or 1"), ({"learning_rate": "fast"}, "not a number")):  # fmt: skip
        with pytest.raises(InvalidInput, match=message):
            TrainConfig.from_hyperparameters("supervised", bad)


def test_a_process_is_named_by_its_pid_and_start_time():
    me = ProcessInfo(pid=os.getpid(), started=process_start(os.getpid()))
    assert is_running(me)
    assert not is_running(ProcessInfo(pid=os.getpid(), started="1"))  # the same pid, another process
    assert not is_running(ProcessInfo(pid=2**22 + 17, started=me.started))


def test_progress_lines_are_read_whole_and_in_order(tmp_path):
    run = RunDir(tmp_path / "job_x")
    run.path.mkdir()
    run.append_event("message", message="starting")
    run.append_event("metrics", step=1, metrics={"train_loss": 2.5})
    with (run.path / "progress.jsonl").open("a") as handle:
        handle.write('{"at": "2026-12-01T00:00:00Z", "kind": "metr')  # a line still being written
    assert [(e.number, e.kind) for e in run.read_events()] == [(1, "message"), (2, "metrics")]
    assert [e.number for e in run.read_events(after=1)] == [2]


def test_the_progress_line_says_step_epoch_losses_speed_and_time_left():
    state = RunState(RunStatus.TRAINING, step=12, total_steps=40, epoch=0.9, epochs=3, train_loss=1.23456,
                     tokens_per_second=2345.4, eta_seconds=65)  # fmt: skip
    assert progress_line(state) == "step 12/40, epoch 0.90/3, train_loss 1.2346, 2,345 tokens/s, ETA 1m 05s"
    assert progress_line(RunState(RunStatus.PREPARING, message="loading")) == "loading"
    assert progress_line(RunState(RunStatus.FAILED, error="boom")) is None


def test_polling_a_run_that_is_not_there_says_so(settings):
    with pytest.raises(ProviderError, match="no local run job_missing"):
        LocalProvider(settings).poll("job_missing")
    with pytest.raises(InvalidInput, match="not a local run id"):
        LocalProvider(settings).poll("../../etc")
