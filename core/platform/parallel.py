"""Ordered, bounded parallel map over worker processes, for the data pipeline's CPU-bound steps.

Workers come from a fork server, not a fork of the caller: the caller may be
`finetune serve` with live threads and connections (fork would copy them in an
unknown state) or a process holding a large heap (its children would carry it).
At most two tasks per worker are in flight, so memory stays flat whatever the
input size, and results come back in input order.

Workers die with the process that started them, even when it is killed with
SIGKILL and never shuts its pool down. The fork server alone would not see to
it: every worker holds the fork server's liveness pipe, so the fork server
outlives its caller for as long as a worker does, and an orphaned worker waits
on its task queue forever. So `die_with_parent`, every pool's worker
initializer, starts a watchdog thread that ends the worker once the caller is
gone (or its own parent, when that changes), and on Linux also asks the kernel
(PR_SET_PDEATHSIG) for SIGKILL the moment its parent process exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

A = TypeVar("A")
R = TypeVar("R")

PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
WATCHDOG_SECONDS = 0.5


def ordered_map(fn: Callable[[A], R], tasks: Iterable[A], *, workers: int) -> Iterator[R]:
    """`map(fn, tasks)`, on `workers` processes when workers > 1."""
    if workers <= 1:
        yield from map(fn, tasks)
        return
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=die_with_parent, initargs=(os.getpid(),)
    ) as pool:
        pending: deque[Future[R]] = deque()
        for task in tasks:
            pending.append(pool.submit(fn, task))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def die_with_parent(caller_pid: int) -> None:
    """In a worker process: end this process as soon as its parent, or `caller_pid`, is gone."""
    parent = os.getppid()
    _ask_kernel_for_death_signal()
    if os.getppid() != parent or not _alive(caller_pid):  # it died before the request took effect
        os._exit(1)
    watchdog = threading.Thread(target=_watch, args=(parent, caller_pid), name="parent-watchdog", daemon=True)
    watchdog.start()


def _ask_kernel_for_death_signal() -> None:
    """prctl(PR_SET_PDEATHSIG, SIGKILL) on Linux; elsewhere the watchdog alone does the job."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # no usable libc: the watchdog still ends the worker


def _watch(parent: int, caller_pid: int) -> None:
    while os.getppid() == parent and _alive(caller_pid):
        time.sleep(WATCHDOG_SECONDS)
    os._exit(1)


def _alive(pid: int) -> bool:
    """Whether process `pid` is running: it exists and, where /proc tells, is not a zombie awaiting its reaper."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[:1] != [b"Z"]
    except OSError:
        return True  # no /proc here: existing is all we can tell
