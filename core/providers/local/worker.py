"""The training process of one local run: `python -m core.providers.local.worker RUN_DIR`.

The provider starts it in a session (and process group) of its own, so serve
stays responsive and a cancel can signal the whole group. It reads
`request.json`, writes its progress to the run directory (`core.providers.local.runs`)
and ends by writing `succeeded` (with the adapter), `failed` (with the reason)
or `cancelled`. It never downloads: HF_HUB_OFFLINE is set before transformers
is imported.

SIGTERM or SIGINT while the model loads stops it at once; during training it
stops before the next micro-batch, and while saving it finishes first.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from core.providers.local.config import TrainConfig
from core.providers.local.runs import WORKER_ENVIRONMENT, RunDir, RunRequest, RunState, RunStatus, Stopped

if TYPE_CHECKING:
    from core.providers.local.training import StepReport, TrainResult

__all__ = ["main", "run_training"]


class StopSignal:
    """SIGTERM/SIGINT: stop now while preparing, between steps while training, after saving."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.requested = False
        self.immediate = True

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.requested = True
        if self.immediate:
            raise Stopped(f"stopped by {signal.Signals(signum).name} while preparing")

    def should_stop(self) -> bool:
        return self.requested or self.run.cancel_requested()


class RunReporter:
    """Step metrics to progress.jsonl (what the poller stores as job events) and state.json (the detail line)."""

    def __init__(self, run: RunDir, stop: StopSignal, *, epochs: int) -> None:
        self.run, self.stop, self.epochs = run, stop, epochs
        self.latest: dict[str, Any] = {}

    def on_log(self, report: StepReport) -> None:
        metrics = {
            "train_loss": report.train_loss, "epoch": report.epoch, "tokens_per_second": round(report.tokens_per_second, 1),
            "eta_seconds": round(report.eta_seconds, 1), "learning_rate": report.learning_rate,
        }  # fmt: skip
        self.run.append_event("metrics", step=report.step, metrics=metrics)
        self.latest = {"step": report.step, "total_steps": report.total_steps, "epoch": report.epoch, **metrics}
        self._state()

    def on_eval(self, step: int, eval_loss: float) -> None:
        self.run.append_event("metrics", step=step, metrics={"eval_loss": eval_loss})
        self.latest["eval_loss"] = eval_loss
        self._state()

    def should_stop(self) -> bool:
        return self.stop.should_stop()

    def _state(self) -> None:
        fields = ("step", "total_steps", "epoch", "train_loss", "eval_loss", "tokens_per_second", "eta_seconds")
        values = {name: self.latest[name] for name in fields if name in self.latest}
        self.run.write_state(RunState(RunStatus.TRAINING, epochs=self.epochs, **values))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m core.providers.local.worker RUN_DIR", file=sys.stderr)
        return 2
    os.environ.update(WORKER_ENVIRONMENT)  # before transformers is imported
    run = RunDir(Path(args[0]))
    stop = StopSignal(run)
    stop.install()
    try:
        run_training(run, run.read_request(), stop)
    except Stopped as stopped:
        _stopped(run, stop, str(stopped))
        return 0
    except Exception as exc:  # the run's end, whatever it is, is written down for the poller
        traceback.print_exc()
        _end(run, RunState(RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000]))
        return 1
    return 0


def _stopped(run: RunDir, stop: StopSignal, why: str) -> None:
    if run.cancel_requested():
        _end(run, RunState(RunStatus.CANCELLED, error=f"cancelled: {why}"))
    else:  # a signal from outside finetune-ops (a shutdown, a kill): not a cancel anyone asked for
        _end(run, RunState(RunStatus.FAILED, error=f"the training process was {why}, not cancelled"))


def _end(run: RunDir, state: RunState) -> None:
    last = run.read_state()
    if last is not None and last.final:
        return
    run.append_event("message", message=state.error or str(state.status))
    run.write_state(state)


def run_training(run: RunDir, request: RunRequest, stop: StopSignal) -> None:
    from core.providers.local import training

    config = TrainConfig.from_hyperparameters(request.method, request.hyperparameters, seed=request.seed)
    run.write_state(RunState(RunStatus.PREPARING, message="reading the data and loading the base model"))
    train_rows = read_rows(Path(request.train_file))
    eval_rows = read_rows(Path(request.validation_file)) if request.validation_file else []
    base_name = _base_model(run, request, train_rows)
    device = training.pick_device()
    model, tokenizer = training.load_base(
        base_name, device=device, gradient_checkpointing=config.gradient_checkpointing
    )
    if training.ensure_chat_template(tokenizer):
        run.append_event("message", message="the base model has no chat template; ChatML is used")
    parameters, _ = training.parameter_counts(model)
    model = training.add_lora(model, config)
    _, trainable = training.parameter_counts(model)
    train_set, dropped = training.encode_rows(tokenizer, train_rows, config)
    eval_set, _ = training.encode_rows(tokenizer, eval_rows, config)
    run.append_event("message", message=_describe(request, base_name, parameters, trainable, device, config))
    if dropped:
        run.append_event(
            "message",
            message=f"{dropped} training example(s) left out: no answer token within {config.max_length} tokens",
        )
    if not train_set:
        raise ValueError("no training example has an answer to learn from")
    stop.immediate = False
    run.write_state(RunState(RunStatus.TRAINING, epochs=config.epochs, step=0))
    result = training.train(model, tokenizer, train_set, eval_set, config, RunReporter(run, stop, epochs=config.epochs))
    run.write_state(RunState(RunStatus.SAVING, message="saving the adapter"))
    _save(run, request, model, tokenizer, base_name, result)


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path.name} line {number} is not JSON: {exc}") from None
    return rows


def _base_model(run: RunDir, request: RunRequest, rows: list[dict[str, Any]]) -> str:
    """The name from_pretrained loads: the tiny model is built first, from the job's own texts."""
    from core.providers.local import training
    from core.providers.local.tiny import TINY_MODEL, build_tiny_model

    if request.base_model != TINY_MODEL:
        return request.base_model
    if not (run.base_dir / "config.json").is_file():
        build_tiny_model(run.base_dir, training.texts_of(rows))
    return str(run.base_dir)


def _describe(request: RunRequest, base: str, parameters: int, trainable: int, device: Any, config: TrainConfig) -> str:
    from core.providers.local import training

    kind = "the tiny model built from this job's data" if request.base_model == "tiny" else "a real model"
    where = str(device)
    if device.type == "cuda":
        import torch

        where = f"GPU {torch.cuda.get_device_name(device)}"
    return (
        f"training {base} ({kind}, {parameters:,} parameters) with LoRA r={config.lora_r} alpha={config.lora_alpha} "
        f"on every linear layer ({trainable:,} trainable), {config.method}, on {where} in {training.dtype_for(device)}"
    ).replace("torch.", "")


def _save(run: RunDir, request: RunRequest, model: Any, tokenizer: Any, base: str, result: TrainResult) -> None:
    model.save_pretrained(run.adapter_dir)
    tokenizer.save_pretrained(run.adapter_dir)
    if request.merge:
        merged = model.merge_and_unload()
        merged.save_pretrained(run.merged_dir)
        tokenizer.save_pretrained(run.merged_dir)
    modelfile = _modelfile(run, base)
    metrics = _final_metrics(result)
    run.metrics_file.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    outputs = f"adapter in {run.adapter_dir}" + (f", merged model in {run.merged_dir}" if request.merge else "")
    run.append_event("message", message=f"{outputs}; serve it with Ollama: ollama create {request.name} -f {modelfile}")
    run.write_state(
        RunState(RunStatus.SUCCEEDED, model_id=str(run.adapter_dir), metrics=metrics, trained_tokens=result.trained_tokens,
                 train_loss=result.train_loss, eval_loss=result.eval_loss, step=result.steps, total_steps=result.steps)
    )  # fmt: skip


def _modelfile(run: RunDir, base: str) -> Path:
    """FROM the base model's directory, ADAPTER the adapter's: what `ollama create NAME -f Modelfile` reads."""
    directory = Path(base)
    if not directory.is_dir():  # a Hugging Face id: its snapshot in the cache
        from huggingface_hub import snapshot_download

        directory = Path(snapshot_download(base, local_files_only=True))
    run.modelfile.write_text(f"FROM {directory}\nADAPTER {run.adapter_dir}\n", encoding="utf-8")
    return run.modelfile


def _final_metrics(result: TrainResult) -> dict[str, float]:
    metrics: Mapping[str, float | None] = {
        "train_loss": result.train_loss, "eval_loss": result.eval_loss, "steps": float(result.steps),
        "trained_tokens": float(result.trained_tokens), "seen_tokens": float(result.seen_tokens),
        "tokens_per_second": round(result.tokens_per_second, 1), "train_seconds": round(result.seconds, 2),
        **peak_memory(),
    }  # fmt: skip
    return {name: float(value) for name, value in metrics.items() if value is not None}


def peak_memory() -> dict[str, float]:
    """This process's peak resident memory, and on a GPU the most torch allocated there, in MB."""
    import resource

    import torch

    peak = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}  # KB on Linux
    if torch.cuda.is_available():
        peak["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


if __name__ == "__main__":
    sys.exit(main())
