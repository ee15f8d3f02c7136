"""The one module that touches SQLite.

A `Store` is one database file shared by the serve process and any number of
stdio MCP processes. WAL lets readers run beside the single writer; every write
is a `BEGIN IMMEDIATE` transaction so writers queue on the busy timeout instead
of failing half-way (threads of one process queue on a lock first, woken as soon
as the writer before them commits). Each thread gets its own connection (sqlite3
connections must not be shared across threads while in use). Opening a database
whose schema is current takes no write lock; a full disk rolls the write back and
says so (`StoreError`, "disk full"), leaving the file intact.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from core.errors import SchemaTooNew, StoreError
from core.platform import migrations
from core.platform.timeutil import iso

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000

# Positional (`?`) or named (`:name`) parameters of one statement.
Params = Sequence[Any] | dict[str, Any]


class Store:
    """A SQLite file with one connection per thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # Threads of this process take turns here, woken as soon as the writer before them commits;
        # SQLite's own busy handler (left for other processes) sleeps up to 100 ms between tries.
        self._writer = threading.Lock()

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection, opened on first use."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite_utils.Database(self._connect())
            self._local.db = db
        return db

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: the driver opens no implicit transactions; we
        # open every write transaction ourselves in write().
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        with self._lock:
            self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction: all of the block commits, or none of it.

        Nested calls become savepoints of the outer transaction.
        """
        db = self.db
        if db.conn.in_transaction:
            with db.atomic():
                yield db
            return
        if not self._writer.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
            raise sqlite3.OperationalError("database is locked (another thread of this process kept writing)")
        try:
            db.conn.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.conn.in_transaction:
                    db.conn.execute("ROLLBACK")
                raise
            else:
                db.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if db.conn.in_transaction:  # a failed COMMIT leaves the transaction open
                db.conn.execute("ROLLBACK")
            if is_disk_full(exc):
                raise disk_full(self.path) from exc
            raise
        finally:
            self._writer.release()

    def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.db.query(sql, params)]

    def scalar(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row, or None when there is no row."""
        row = self.db.execute(sql, params).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


def is_disk_full(exc: sqlite3.Error) -> bool:
    """SQLITE_FULL: the disk (or the database's page limit) has no room for the write."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc)


def disk_full(path: Path) -> StoreError:
    return StoreError(
        f"disk full: {path} could not grow, so the write was rolled back; the database is intact.",
        hint=f"Free space on the disk holding {path.parent} (or move FINETUNE_DATA_DIR to a larger one), then retry.",
        path=str(path),
    )


def open_store(path: Path | str, *, migrate: bool = True) -> Store:
    """Open (creating if needed) the database at `path`, in WAL mode, migrated to the latest schema."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the data directory {path.parent}: {exc.strerror}",
            hint="Set FINETUNE_DATA_DIR to a writable directory.",
        ) from exc
    store = Store(path)
    try:
        store.db.conn.execute("PRAGMA journal_mode = WAL")
    except sqlite3.DatabaseError as exc:
        if is_disk_full(exc):
            raise disk_full(path) from exc
        raise StoreError(
            f"{path} is not a usable SQLite database: {exc}",
            hint="Point FINETUNE_DATA_DIR at another directory or restore the file from a backup.",
        ) from exc
    if migrate:
        migrate_store(store)
    return store


def schema_version(store: Store) -> int:
    return int(store.scalar("PRAGMA user_version"))


def migrate_store(store: Store, *, target: int | None = None) -> list[int]:
    """Apply pending migrations up to `target` (default: latest), each in its own transaction.

    Safe when several processes start at once: BEGIN IMMEDIATE serialises them and
    each re-reads the version inside its transaction.
    """
    latest = migrations.LATEST
    target = latest if target is None else target
    applied: list[int] = []
    current = schema_version(store)  # a plain read: a current database takes no write lock at all
    if current > latest:
        raise SchemaTooNew(
            f"{store.path} has schema version {current}, newer than this finetune-ops knows ({latest}).",
            hint="Upgrade finetune-ops (pip install -U finetune-ops) before using this database.",
            version=current,
        )
    for migration in migrations.MIGRATIONS:
        if migration.version > target:
            break
        if migration.version <= current:
            continue
        with store.write() as db:
            if schema_version(store) >= migration.version:
                continue
            for statement in migration.statements:
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, iso()),
            )
            db.execute(f"PRAGMA user_version = {migration.version}")
        log.info("applied migration %s (%s) to %s", migration.version, migration.name, store.path)
        applied.append(migration.version)
    return applied
