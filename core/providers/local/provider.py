"""Local LoRA fine-tuning: each job is a training process on this machine, watched through its run directory.

`launch` checks the request, finds the base model on the machine (never a
download), writes the run directory and starts `python -m
core.providers.local.worker RUN_DIR` in a session of its own. The provider
holds no state: `poll`, `events` and `cancel` read the run directory
(`core.providers.local.runs`), so a restarted serve, or any other process,
picks a running job up where it is. A worker that died without writing its
end (killed, out of memory) is recognised by its pid and start time and the job
fails with the reason and the last line it printed. `cancel` asks the worker to
stop (SIGTERM to its process group; it stops before its next step), waits a few
seconds, then kills the group.

The provider job id is the job id, which names the run directory.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import core
from core.errors import InvalidInput
from core.platform.settings import Settings
from core.providers.base import FineTuneProvider, LaunchRequest, ProviderError, ProviderEvent, ProviderJob
from core.providers.local.base_models import locate_base_model
from core.providers.local.config import TrainConfig
from core.providers.local.runs import (
    WORKER_ENVIRONMENT,
    ProcessInfo,
    RunDir,
    RunRequest,
    RunState,
    RunStatus,
    is_running,
    process_start,
    runs_root,
)
from core.vocabulary import JobState, Provider

__all__ = ["CANCEL_GRACE_SECONDS", "LocalProvider"]

CANCEL_GRACE_SECONDS = 5.0  # how long a cancelled worker may take to stop by itself before it is killed
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_children: dict[int, subprocess.Popen[bytes]] = {}  # workers this process started, so their exits are collected


class LocalProvider(FineTuneProvider):
    """LoRA fine-tuning in a subprocess on this machine; the run directory is the job's whole state."""

    name = Provider.LOCAL
    STATUS_MAP: ClassVar[dict[str, JobState]] = {
        RunStatus.PREPARING: JobState.RUNNING,
        RunStatus.TRAINING: JobState.RUNNING,
        RunStatus.SAVING: JobState.RUNNING,
        RunStatus.SUCCEEDED: JobState.SUCCEEDED,
        RunStatus.FAILED: JobState.FAILED,
        RunStatus.CANCELLED: JobState.CANCELLED,
    }

    def __init__(self, settings: Settings) -> None:
        self.root = runs_root(settings)
        self.merge = settings.local_merge

    # Launch ---------------------------------------------------------------------------------------------------

    def launch(self, request: LaunchRequest) -> ProviderJob:
        config = TrainConfig.from_hyperparameters(request.method, request.hyperparameters, seed=request.seed or 0)
        for path in (request.train_file, request.validation_file):
            if path is not None and not path.is_file():
                raise InvalidInput(f"training data file {path} does not exist.", hint="Export the dataset again.")
        run = self._run(request.job_id)
        if run.exists():  # launched before (a retried submission): the same run, never a second one
            return self.poll(request.job_id)
        base = locate_base_model(request.base_model)
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_request(
            RunRequest(
                job_id=request.job_id, base_model=base.name, method=str(request.method),
                hyperparameters=dict(request.hyperparameters), train_file=str(request.train_file.resolve()),
                validation_file=str(request.validation_file.resolve()) if request.validation_file else None,
                name=_ollama_name(request.suffix or request.job_id), merge=self.merge or config.merge,
                seed=request.seed or 0,
            )
        )  # fmt: skip
        run.write_state(RunState(RunStatus.PREPARING, message="starting the training process"))
        self._start(run)
        return self.poll(request.job_id)

    def _start(self, run: RunDir) -> None:
        root = str(Path(core.__file__).resolve().parents[1])  # importable from the run directory, installed or not
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        with run.log_file.open("ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "core.providers.local.worker", str(run.path)],
                cwd=run.path, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, **WORKER_ENVIRONMENT, "PYTHONPATH": path},
            )  # fmt: skip
        _children[child.pid] = child
        run.write_process(ProcessInfo(pid=child.pid, started=process_start(child.pid)))

    # Watching ------------------------------------------------------------------------------------------------------

    def poll(self, provider_job_id: str) -> ProviderJob:
        run = self._existing(provider_job_id)
        state = run.read_state()
        if state is not None and state.final:
            return self._job(run, state)
        if self._alive(run):
            return self._job(run, state or RunState(RunStatus.PREPARING))
        return self._job(run, self._gone(run))

    def _gone(self, run: RunDir) -> RunState:
        """The worker is gone: its own last word if it wrote one, else a failure saying so (or the cancel asked for)."""
        state = run.read_state()  # again: it may have ended just now
        if state is not None and state.final:
            return state
        info = run.read_process()
        if run.cancel_requested():
            ended = RunState(RunStatus.CANCELLED, error="cancelled")
        elif info is None:
            ended = RunState(RunStatus.FAILED, error=f"the training process never started; see {run.log_file}")
        else:
            ended = RunState(
                RunStatus.FAILED,
                error=f"the training process (pid {info.pid}) is gone without finishing; "
                f"last log line: {run.last_log_line()}",
            )
        run.append_event("message", message=ended.error)
        run.write_state(ended)
        return ended

    def events(self, provider_job_id: str, *, after: str | None = None) -> list[ProviderEvent]:
        run = self._existing(provider_job_id)
        seen = int(after) if after and after.isdigit() else 0
        return [
            ProviderEvent(id=f"{event.number:08d}", at=event.at, kind=event.kind, message=event.message,
                          step=event.step, metrics=event.metrics)
            for event in run.read_events(after=seen)
        ]  # fmt: skip

    # Cancel -----------------------------------------------------------------------------------------------------------

    def cancel(self, provider_job_id: str) -> ProviderJob:
        run = self._existing(provider_job_id)
        state = run.read_state()
        if state is not None and state.final:
            return self._job(run, state)
        run.request_cancel()
        info = run.read_process()
        if info is not None and self._alive(run):
            _signal_group(info.pid, signal.SIGTERM)
            if not self._wait_gone(run, CANCEL_GRACE_SECONDS):
                _signal_group(info.pid, signal.SIGKILL)
                self._wait_gone(run, CANCEL_GRACE_SECONDS)
        return self._job(run, self._gone(run))

    def _wait_gone(self, run: RunDir, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self._alive(run):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    # Helpers --------------------------------------------------------------------------------------------------------------

    def _run(self, job_id: str) -> RunDir:
        if not _RUN_ID.fullmatch(job_id or ""):
            raise InvalidInput(
                f"{job_id!r} is not a local run id.", hint="Local runs are named by their job id (job_...)."
            )
        return RunDir(self.root / job_id)

    def _existing(self, job_id: str) -> RunDir:
        run = self._run(job_id)
        if not run.exists():
            raise ProviderError(
                f"there is no local run {job_id} in {self.root}.",
                hint="Its directory was removed, or FINETUNE_LOCAL_RUNS_DIR changed since it was launched; launch it again.",
                provider_job=job_id,
            )
        return run

    def _alive(self, run: RunDir) -> bool:
        info = run.read_process()
        if info is None:
            return False
        child = _children.get(info.pid)
        if child is not None and child.poll() is not None:  # ours, and ended: collect it so it is no zombie
            _children.pop(info.pid, None)
            return False
        return is_running(info)

    def _job(self, run: RunDir, state: RunState) -> ProviderJob:
        return ProviderJob(
            provider_job_id=run.job_id, status=self.unified(state.status), provider_status=str(state.status),
            detail=progress_line(state), model_id=state.model_id, metrics=dict(state.metrics), error=state.error,
            trained_tokens=state.trained_tokens,
        )  # fmt: skip


def progress_line(state: RunState) -> str | None:
    """What `finetune jobs show` says while a run trains: step, epoch, losses, speed and time left."""
    if state.status in (RunStatus.FAILED, RunStatus.CANCELLED):
        return None
    if state.step is None or not state.total_steps:
        return state.message or str(state.status)
    parts = [f"step {state.step}/{state.total_steps}"]
    if state.epoch is not None and state.epochs:
        parts.append(f"epoch {state.epoch:.2f}/{state.epochs}")
    parts += [f"{name} {value:.4f}" for name, value in (("train_loss", state.train_loss), ("eval_loss", state.eval_loss)) if value is not None]  # fmt: skip
    if state.tokens_per_second:
        parts.append(f"{state.tokens_per_second:,.0f} tokens/s")
    if state.status is RunStatus.TRAINING and state.eta_seconds is not None:
        parts.append(f"ETA {duration(state.eta_seconds)}")
    if state.status is RunStatus.SAVING:
        parts.append("saving")
    return ", ".join(parts)


def duration(seconds: float) -> str:
    """`45s`, `3m 05s`, `2h 01m`."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _signal_group(pid: int, signum: signal.Signals) -> None:
    """Signal the worker's process group (it leads its own session), or the worker alone where that fails."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, signum)


def _ollama_name(text: str) -> str:
    """A model name Ollama accepts: lower case letters, digits, '-', '_' and '.'."""
    name = re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-.")
    return name[:60] or "finetuned"
