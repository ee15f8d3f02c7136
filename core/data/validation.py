"""Validate any JSONL training file against an export target, rule by documented rule.

Every line is checked on its own (UTF-8, JSON, the target's row shape, the
model's per-example token limit), then the file as a whole (how many examples
the provider accepts). Each problem becomes a `ValidationIssue` with the
physical line number, a short `kind`, the field, and how to fix it. A UTF-8
byte order mark, CRLF line endings and blank lines are tolerated; blank lines
are skipped but still counted, so line numbers match any editor.

The rules of each target (`core.data.rules`, documented there) come from the
target registry (`core.data.targets`); the model's token limit and tokenizer
come from the caller's catalog, resolved once per run into a `ModelInfo` and a
`Tokenizer` that travel to the worker processes with the run.

Speed: `validate_file` streams the file in blocks of lines, so memory stays flat
whatever its size, and spreads the blocks over worker processes (tokenizing is
the expensive part), merging their results in file order. Reports are the same
for any number of workers, and the workers die with the process that started
them (`core.platform.parallel.die_with_parent`).
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import IO

from pydantic import BaseModel, Field

from core.catalog.models import Catalog, ModelInfo
from core.data.converters import Row
from core.data.rules import Issue, Issues, TargetRules, json_type
from core.data.targets import TARGETS, require_target, targets_of_family
from core.data.tokens import Tokenizer, TokenStats, TokenStatsBuilder, resolve, tokenizer_for
from core.errors import InvalidInput
from core.platform.parallel import die_with_parent
from core.vocabulary import ExportTarget

MAX_KEPT_ERRORS = 1000
SMALL_FILE_BYTES = 8 * 2**20  # files below this are validated in one process
BLOCK_BYTES = 512 * 2**10  # a unit of work for one worker
MAX_AUTO_WORKERS = 8
BOM = b"\xef\xbb\xbf"

LocatedIssue = tuple[int | None, str, str | None, str, str]
"""An issue and where it is: (line or None for the whole file, kind, field, message, hint)."""


class ValidationIssue(BaseModel):
    """One problem: where it is, what kind, which field, and how to fix it."""

    line: int | None = Field(description="Physical line of the file (1-based); None for the file as a whole.")
    kind: str = Field(description="Short snake_case code, e.g. invalid_json, missing_field, too_many_tokens.")
    field: str | None = Field(default=None, description="Path of the field, e.g. messages[2].content.")
    message: str
    hint: str


class ValidationReport(BaseModel):
    """The verdict on one file for one target (and model)."""

    target: str
    model: str | None
    source: str = Field(description="The file validated, or <lines>.")
    lines: int = Field(description="Physical lines, blank ones included.")
    examples: int = Field(description="Non-blank lines.")
    valid_examples: int
    error_count: int = Field(description="Every issue found, including those not kept in `errors`.")
    errors_by_kind: dict[str, int]
    errors: list[ValidationIssue] = Field(description=f"The first {MAX_KEPT_ERRORS} issues, in file order.")
    token_stats: TokenStats | None = Field(description="Tokens per valid example; None when none is valid.")
    ok: bool


def validate_lines(
    lines: Iterable[str | bytes],
    *,
    target: str,
    catalog: Catalog,
    model: str | None = None,
    source: str = "<lines>",
    training_file: bool = True,
) -> ValidationReport:
    """Validate JSONL given line by line (each item one physical line, newline optional), in this process.

    `model` is looked up in `catalog` for its token limit and tokenizer. `training_file=False` (a validation
    or test split) skips the provider's limits on the number of training examples, which apply to the
    training file alone.
    """
    run = _prepare(target, model, training_file, catalog)
    tally = _Tally(run)
    for number, raw in enumerate(lines, 1):
        tally.check_line(raw, number)
    return _report(run, tally, source)


def validate_file(
    path: str | os.PathLike[str],
    *,
    target: str,
    catalog: Catalog,
    model: str | None = None,
    workers: int | None = None,
    training_file: bool = True,
) -> ValidationReport:
    """Validate a JSONL file, streaming it; `workers` processes tokenize in parallel.

    By default files under 8 MiB use this process alone and larger ones one
    worker per available CPU (at most 8). Workers are forked from this process when it runs
    a single thread, so they share its loaded tokenizer; otherwise they start
    from the forkserver (safe beside other threads, but each loads its own).
    `catalog` and `training_file` are as for `validate_lines`.
    """
    run = _prepare(target, model, training_file, catalog)
    if workers is not None and workers < 1:
        raise InvalidInput(
            f"workers must be at least 1, got {workers}.", hint="Leave it unset to choose automatically."
        )
    path = Path(path)
    try:
        stream = path.open("rb")
        size = os.fstat(stream.fileno()).st_size
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}.", hint="Pass the path of a JSONL file.") from exc
    if workers is None:
        workers = 1 if size < SMALL_FILE_BYTES else min(_available_cpus(), MAX_AUTO_WORKERS)
    with stream:
        if workers == 1:
            tally = _Tally(run)
            for first_line, blob in _blocks(stream, BLOCK_BYTES):
                tally.check_block(first_line, blob)
        else:
            tally = _check_in_workers(run, _blocks(stream, BLOCK_BYTES), workers)
    return _report(run, tally, str(path))


def count_row_tokens(row: Row, *, target: str, catalog: Catalog, model: str | None = None) -> int:
    """Tokens of a valid `target` row for `model`, counted exactly as validation counts them."""
    return require_target(target).rules.count(row, resolve(model, catalog=catalog))


# ---------------------------------------------------------------- one validation run


@dataclass(frozen=True)
class _Run:
    """One validation's settings, resolved once; plain data, so it pickles into worker processes."""

    target: ExportTarget
    model: str | None
    info: ModelInfo | None  # the model's catalog entry, None without a model or when the catalog lacks it
    tokenizer: Tokenizer
    training_file: bool = True

    @property
    def max_tokens(self) -> int | None:
        return self.info.max_example_tokens if self.info is not None else None

    @property
    def rules(self) -> TargetRules:
        return TARGETS[self.target].rules


def _prepare(target: str, model: str | None, training_file: bool, catalog: Catalog) -> _Run:
    spec = require_target(target)
    info = catalog.get(model) if model else None
    if info is not None and info.family != spec.family and spec.name not in info.export_targets.values():
        fitting = ", ".join(targets_of_family(info.family)) or info.export_target
        raise InvalidInput(
            f"model {model!r} is a {info.family} model; it does not train on {target} files.",
            hint=f"Validate against {fitting}, or pass a {spec.family} model.",
            model=model,
            target=target,
        )
    return _Run(spec.name, model, info, tokenizer_for(info), training_file)


def _report(run: _Run, tally: _Tally, source: str) -> ValidationReport:
    file_issues: list[LocatedIssue] = (
        [(None, *issue) for issue in run.rules.dataset_issues(tally.examples)] if run.training_file else []
    )
    kinds = dict(tally.kinds)
    for issue in file_issues:
        kinds[issue[1]] = kinds.get(issue[1], 0) + 1
    kept = (file_issues + tally.errors)[:MAX_KEPT_ERRORS]  # issues with the whole file come first
    return ValidationReport(
        target=run.target,
        model=run.model,
        source=source,
        lines=tally.lines,
        examples=tally.examples,
        valid_examples=tally.valid,
        error_count=tally.error_count + len(file_issues),
        errors_by_kind=dict(sorted(kinds.items())),
        errors=[
            ValidationIssue(line=line, kind=kind, field=field, message=message, hint=hint)
            for line, kind, field, message, hint in kept
        ],
        token_stats=tally.stats.build() if tally.valid else None,
        ok=tally.error_count + len(file_issues) == 0,
    )


class _Tally:
    """Counts and the first issues of a run, or of one block of it; merges in file order."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.rules = run.rules
        self.lines = self.examples = self.valid = self.error_count = 0
        self.kinds: dict[str, int] = {}
        self.errors: list[LocatedIssue] = []
        self.stats = TokenStatsBuilder(exact=run.tokenizer.exact)

    def __getstate__(self) -> dict[str, object]:
        return {key: value for key, value in self.__dict__.items() if key != "rules"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.rules = self.run.rules

    def record(self, line: int | None, issue: Issue) -> None:
        self.error_count += 1
        self.kinds[issue[0]] = self.kinds.get(issue[0], 0) + 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append((line, *issue))

    def merge(self, other: _Tally) -> None:
        self.lines += other.lines
        self.examples += other.examples
        self.valid += other.valid
        self.error_count += other.error_count
        for kind, count in other.kinds.items():
            self.kinds[kind] = self.kinds.get(kind, 0) + count
        self.errors.extend(other.errors[: MAX_KEPT_ERRORS - len(self.errors)])
        self.stats.merge(other.stats)

    def check_block(self, first_line: int, blob: bytes) -> None:
        lines = blob.split(b"\n")
        if lines[-1] == b"":
            lines.pop()  # the newline ending the block ends its last line
        for offset, raw in enumerate(lines):
            self.check_line(raw, first_line + offset)

    def check_line(self, raw: str | bytes, number: int) -> None:
        self.lines += 1
        if number == 1:
            raw = raw.removeprefix(BOM) if isinstance(raw, bytes) else raw.removeprefix("\ufeff")
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.examples += 1
                self.record(number, _invalid_utf8(exc))
                return
        if not raw.strip():
            return
        self.examples += 1
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            self.record(number, _invalid_json(exc))
            return
        if type(row) is not dict:
            self.record(number, _not_an_object(row))
            return
        found = Issues()
        self.rules.check(row, found, self.run.model)
        if not found:
            n = self.rules.count(row, self.run.tokenizer)
            limit = self.run.max_tokens
            if limit is not None and n > limit:
                found.too_many_tokens(n, model=self.run.model, limit=limit, exact=self.run.tokenizer.exact)
            else:
                self.valid += 1
                self.stats.add(n)
        for issue in found:
            self.record(number, issue)


def _invalid_utf8(exc: UnicodeDecodeError) -> Issue:
    return (
        "invalid_utf8",
        None,
        f"the line is not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at byte {exc.start + 1}).",
        "Save the file as UTF-8; re-export it rather than editing it in a tool that changes encodings.",
    )


def _invalid_json(exc: json.JSONDecodeError) -> Issue:
    return (
        "invalid_json",
        None,
        f"the line is not valid JSON: {exc.msg} at column {exc.colno}.",
        "Put exactly one complete JSON object on each line; check quotes, commas and brackets.",
    )


def _not_an_object(row: object) -> Issue:
    return (
        "not_an_object",
        None,
        f"the line is a JSON {json_type(row)}, not an object.",
        'Each line must be one JSON object, e.g. {"messages": [...]}.',
    )


# ---------------------------------------------------------------- worker processes


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _blocks(stream: IO[bytes], size: int) -> Iterator[tuple[int, bytes]]:
    """(first line number, bytes of whole lines) of about `size` bytes each."""
    line, pieces = 1, []
    while data := stream.read(size):
        cut = data.rfind(b"\n")
        if cut < 0:
            pieces.append(data)  # a line longer than a block: keep reading
            continue
        blob = b"".join([*pieces, data[: cut + 1]])
        pieces = [data[cut + 1 :]] if cut + 1 < len(data) else []
        yield line, blob
        line += blob.count(b"\n")
    if pieces:
        yield line, b"".join(pieces)


_worker_run: _Run | None = None


def _start_worker(run: _Run, caller_pid: int) -> None:
    global _worker_run
    die_with_parent(caller_pid)
    _worker_run = run
    run.tokenizer.warm()


def _check_block_in_worker(first_line: int, blob: bytes) -> _Tally:
    if _worker_run is None:
        raise RuntimeError("a validation worker got a block before its run")
    tally = _Tally(_worker_run)
    tally.check_block(first_line, blob)
    return tally


def _check_in_workers(run: _Run, blocks: Iterator[tuple[int, bytes]], workers: int) -> _Tally:
    context = _process_context()
    if context.get_start_method() == "fork":
        run.tokenizer.warm()  # forked workers inherit the loaded tokenizer instead of each loading one
    gc.freeze()  # keep the collector from touching, and so copying, pages workers share
    try:
        pool = context.Pool(workers, initializer=_start_worker, initargs=(run, os.getpid()))
    finally:
        gc.unfreeze()
    tally = _Tally(run)
    pending: deque[AsyncResult[_Tally]] = deque()
    try:
        for block in blocks:
            pending.append(pool.apply_async(_check_block_in_worker, block))
            if len(pending) >= 2 * workers:  # bounded read-ahead keeps memory flat
                tally.merge(pending.popleft().get())
        while pending:
            tally.merge(pending.popleft().get())
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return tally


def _process_context() -> BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
