"""Where an ingest keeps its events until it publishes them: a private database file beside the store.

A long ingest must not hold the store's write lock, or every other process
(`finetune status`, Slack, MCP) waits on it or fails with "database is locked".
So an ingest writes its validated events into a staging file of its own,
`DATA_DIR/staging/ingest-PID-RANDOM.db`, attached to its connection as `stage`:
writing there locks nothing anyone else uses, and nothing but the ingest reads
it. When every line has been read, one short write transaction copies the
staged events into `feedback` (`core.data.db.publish_staged`); if the ingest
fails or is rejected, the file is removed and nothing was ever visible.

A killed ingest leaves its file behind, never published. Each ingest holds an
exclusive `flock` on a lock file beside its staging file while it runs; the
next ingest to start removes every staging file whose lock no process holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from core.data import db
from core.platform.store import Store

STAGING_DIR = "staging"
_SIDE_FILES = ("", "-journal", "-wal", "-shm")
_ABANDONED_CLAIM_SECONDS = 3600  # a claim never renamed into place: its ingest died in between


@contextlib.contextmanager
def staging_area(store: Store) -> Iterator[Path]:
    """Attach a fresh staging database to this thread's connection as `stage`; remove it when the block ends."""
    if store.db.conn.in_transaction:
        raise RuntimeError("an ingest publishes in a transaction of its own: call it outside store.write()")
    directory = store.path.parent / STAGING_DIR
    directory.mkdir(parents=True, exist_ok=True)
    sweep(directory)
    with _claimed(directory) as path:
        db.attach_stage(store, str(path))
        try:
            yield path
        finally:
            db.detach_stage(store)


def sweep(directory: Path) -> list[Path]:
    """Remove the staging files of ingests that are no longer running; the files removed."""
    removed: list[Path] = []
    for lock_path in sorted(directory.glob("ingest-*.lock")):
        try:
            handle = open(lock_path, "a")  # noqa: SIM115  # held while the files go
        except FileNotFoundError:
            continue  # another sweep removed it
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its ingest is running
            removed += _remove(lock_path.with_suffix(".db"))
            lock_path.unlink(missing_ok=True)
    for claim in directory.glob(".ingest-*.claim"):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - claim.stat().st_mtime > _ABANDONED_CLAIM_SECONDS:
                claim.unlink()
    return removed


@contextlib.contextmanager
def _claimed(directory: Path) -> Iterator[Path]:
    """A staging file path whose lock this process holds until the block ends; the files go afterwards."""
    name = f"ingest-{os.getpid()}-{secrets.token_hex(6)}"
    lock = _lock(directory, name)
    path = directory / f"{name}.db"
    try:
        yield path
    finally:
        _remove(path)
        (directory / f"{name}.lock").unlink(missing_ok=True)
        lock.close()


def _lock(directory: Path, name: str) -> IO[str]:
    """Create `name.lock` already locked: locked under a private name first, then renamed into place."""
    claim = directory / f".{name}.claim"
    handle = open(claim, "w")  # noqa: SIM115  # held for the whole ingest
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        claim.rename(directory / f"{name}.lock")
    except BaseException:
        handle.close()
        claim.unlink(missing_ok=True)
        raise
    return handle


def _remove(path: Path) -> list[Path]:
    removed = []
    for suffix in _SIDE_FILES:
        side = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            side.unlink()
            removed.append(side)
    return removed
