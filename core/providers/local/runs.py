"""A local run's directory: everything a job is, kept in files, so any process can pick it up.

DATA_DIR/local/runs/JOB_ID/ (or FINETUNE_LOCAL_RUNS_DIR/JOB_ID/) holds:

    request.json    what to train; written once, before the worker starts
    process.json    the worker's pid and start time: the pair names one process, a reused pid has another start
    state.json      where the run stands (status, step, ETA; at the end the adapter or the error), replaced whole
    progress.jsonl  the worker's messages and step metrics, one JSON object per line, appended
    train.log       the worker's stdout and stderr
    cancel          present once a cancel was asked for
    base/           the tiny model built from the job's own data (base model `tiny` only)
    adapter/        the LoRA adapter (adapter_model.safetensors, adapter_config.json) and the tokenizer
    merged/         the base model with the adapter merged in (on request)
    metrics.json    the final metrics
    Modelfile       for `ollama create NAME -f Modelfile`

The worker writes state.json and progress.jsonl while it lives; the provider writes state.json only once the
worker is gone (to record a crash or a cancel), so the file never has two writers at once. Every file is
replaced atomically or appended a whole line at a time, so a reader never sees half of one. No torch here: a
serve without the `local` extra still reads runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from core.platform.settings import Settings
from core.platform.timeutil import iso

__all__ = [
    "FINAL_STATUSES",
    "WORKER_ENVIRONMENT",
    "ProcessInfo",
    "RunDir",
    "RunEvent",
    "RunRequest",
    "RunState",
    "RunStatus",
    "Stopped",
    "is_running",
    "process_start",
    "runs_root",
]


# The worker's environment, set before transformers is imported: never a download, no progress bars in train.log.
WORKER_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
}


class RunStatus(StrEnum):
    """What a local run says it is doing: the local provider's own status words."""

    PREPARING = "preparing"  # the worker starts: loading data, building or loading the model
    TRAINING = "training"
    SAVING = "saving"  # writing the adapter, tokenizer, merged model and Modelfile
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Stopped(Exception):
    """A run was asked to stop (a cancel or a signal); it ends between steps."""


FINAL_STATUSES: frozenset[RunStatus] = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


def runs_root(settings: Settings) -> Path:
    """Where local runs live: FINETUNE_LOCAL_RUNS_DIR, else DATA_DIR/local/runs."""
    return settings.local_runs_dir or settings.data_dir / "local" / "runs"


@dataclass(frozen=True)
class RunRequest:
    """What one run trains: everything the worker needs, so it reads no settings of its own."""

    job_id: str
    base_model: str  # `tiny`, a local directory or a Hugging Face id already in the cache
    method: str
    hyperparameters: dict[str, Any]
    train_file: str
    validation_file: str | None = None
    name: str = "finetuned"  # for `ollama create NAME`
    merge: bool = False
    seed: int = 0

    @classmethod
    def from_json(cls, text: str) -> RunRequest:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class RunState:
    """Where a run stands; at the end, what it produced or why it stopped."""

    status: RunStatus
    updated_at: str = field(default_factory=iso)
    message: str | None = None
    step: int | None = None
    total_steps: int | None = None
    epoch: float | None = None
    epochs: int | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None
    model_id: str | None = None  # the adapter directory, once succeeded
    metrics: dict[str, float] = field(default_factory=dict)
    trained_tokens: int | None = None
    error: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_json(cls, text: str) -> RunState:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        return cls(**{**values, "status": RunStatus(values["status"])})


@dataclass(frozen=True)
class RunEvent:
    """One line of progress.jsonl; `number` (its line, from 1) is its id."""

    number: int
    at: str
    kind: str  # "message" or "metrics"
    message: str | None = None
    step: int | None = None
    metrics: dict[str, float] | None = None


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    started: str | None  # the kernel's start time of the process (Linux); None where it cannot be read


class RunDir:
    """The files of one run, under `path` (its name is the job id)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def job_id(self) -> str:
        return self.path.name

    @property
    def request_file(self) -> Path:
        return self.path / "request.json"

    @property
    def log_file(self) -> Path:
        return self.path / "train.log"

    @property
    def base_dir(self) -> Path:
        return self.path / "base"

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"

    @property
    def merged_dir(self) -> Path:
        return self.path / "merged"

    @property
    def modelfile(self) -> Path:
        return self.path / "Modelfile"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def _state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def _process_file(self) -> Path:
        return self.path / "process.json"

    @property
    def _progress_file(self) -> Path:
        return self.path / "progress.jsonl"

    @property
    def _cancel_file(self) -> Path:
        return self.path / "cancel"

    def exists(self) -> bool:
        return self.request_file.is_file()

    # request ------------------------------------------------------------------------------------------

    def write_request(self, request: RunRequest) -> None:
        write_atomically(self.request_file, json.dumps(asdict(request), indent=2) + "\n")

    def read_request(self) -> RunRequest:
        return RunRequest.from_json(self.request_file.read_text(encoding="utf-8"))

    # state ----------------------------------------------------------------------------------------------

    def write_state(self, state: RunState) -> None:
        write_atomically(self._state_file, json.dumps(asdict(state)) + "\n")

    def read_state(self) -> RunState | None:
        try:
            return RunState.from_json(self._state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    # process ----------------------------------------------------------------------------------------------

    def write_process(self, info: ProcessInfo) -> None:
        write_atomically(self._process_file, json.dumps(asdict(info)) + "\n")

    def read_process(self) -> ProcessInfo | None:
        try:
            data = json.loads(self._process_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return ProcessInfo(pid=int(data["pid"]), started=data.get("started"))

    # progress ----------------------------------------------------------------------------------------------

    def append_event(
        self,
        kind: str,
        *,
        message: str | None = None,
        step: int | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """One line, written with one call, so a reader sees all of it or none."""
        line = {"at": iso(), "kind": kind, "message": message, "step": step, "metrics": dict(metrics or {}) or None}
        with self._progress_file.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")

    def read_events(self, *, after: int = 0) -> list[RunEvent]:
        """The events after line `after`, oldest first; a line still being written is left for the next read."""
        try:
            text = self._progress_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        events = []
        for number, line in enumerate(text.splitlines(keepends=True), start=1):
            if number <= after or not line.endswith("\n"):
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            events.append(
                RunEvent(number=number, at=data["at"], kind=data["kind"], message=data.get("message"),
                         step=data.get("step"), metrics=data.get("metrics"))
            )  # fmt: skip
        return events

    # cancel and logs ----------------------------------------------------------------------------------------

    def request_cancel(self) -> None:
        self._cancel_file.touch()

    def cancel_requested(self) -> bool:
        return self._cancel_file.exists()

    def last_log_line(self) -> str:
        """The last non-empty line the worker printed, for a crash's reason."""
        try:
            with self.log_file.open("rb") as handle:
                handle.seek(max(0, handle.seek(0, os.SEEK_END) - 4096))
                tail = handle.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        return lines[-1][:300] if lines else "(the log is empty)"


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


# Processes -----------------------------------------------------------------------------------------------------


def process_start(pid: int) -> str | None:
    """The kernel's start time of live process `pid` (clock ticks after boot); None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    after_name = stat.rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses; what follows may not
    state, start_time = after_name[0], after_name[19]  # fields 3 and 22 of proc(5)
    return None if state in ("Z", "X") else start_time


def is_running(info: ProcessInfo) -> bool:
    """Whether the process `info` names still runs: the same pid with the same start time."""
    if Path("/proc/self/stat").exists():
        return info.started is not None and process_start(info.pid) == info.started
    try:  # no /proc (macOS): the pid alone
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
