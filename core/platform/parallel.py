"""Ordered, bounded parallel map over worker processes, for the data pipeline's CPU-bound steps.

Workers come from a fork server, not a fork of the caller: the caller may be
`finetune serve` with live threads and connections (fork would copy them in an
unknown state) or a process holding a large heap (its children would carry it).
At most two tasks per worker are in flight, so memory stays flat whatever the
input size, and results come back in input order.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

A = TypeVar("A")
R = TypeVar("R")


def ordered_map(fn: Callable[[A], R], tasks: Iterable[A], *, workers: int) -> Iterator[R]:
    """`map(fn, tasks)`, on `workers` processes when workers > 1."""
    if workers <= 1:
        yield from map(fn, tasks)
        return
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending: deque[Future[R]] = deque()
        for task in tasks:
            pending.append(pool.submit(fn, task))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
