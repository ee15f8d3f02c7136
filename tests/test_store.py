import multiprocessing
import sqlite3
import time

import pytest

from core.errors import SchemaTooNew, StoreError
from core.platform import migrations
from core.platform.store import Store, migrate_store, open_store, schema_version


def test_fresh_database_is_wal_with_foreign_keys_and_latest_schema(store):
    assert store.scalar("PRAGMA journal_mode") == "wal"
    assert store.scalar("PRAGMA foreign_keys") == 1
    assert store.scalar("PRAGMA busy_timeout") >= 5000
    assert schema_version(store) == migrations.LATEST
    tables = set(store.db.table_names())
    domain = {
        "feedback", "datasets", "dataset_versions", "dataset_examples", "jobs", "job_events", "model_versions",
        "promotions", "approvals", "evaluations", "eval_results", "experiments", "experiment_samples", "alerts",
        "outbox", "audit_log",
    }  # fmt: skip
    assert domain <= tables
    history = store.query("SELECT version FROM schema_migrations ORDER BY version")
    assert [row["version"] for row in history] == list(range(1, migrations.LATEST + 1))


def test_reopening_applies_nothing(settings, store):
    assert migrate_store(store) == []
    again = open_store(settings.db_path)
    assert schema_version(again) == migrations.LATEST


def test_upgrade_from_first_schema_keeps_existing_rows(tmp_path):
    old = Store(tmp_path / "old.db")
    assert migrate_store(old, target=1) == [1]
    old.db.table("audit_log").insert(
        {"at": "2026-01-01T00:00:00Z", "actor": "ann", "face": "cli", "request_id": "r1", "command": "status",
         "args": "{}", "outcome": "ok"}
    )  # fmt: skip
    old.db.table("outbox").insert({"created_at": "x", "kind": "notice", "text": "hi", "next_attempt_at": "x"})
    old.close()

    upgraded = open_store(tmp_path / "old.db")
    assert schema_version(upgraded) == migrations.LATEST
    assert upgraded.query("SELECT actor, command FROM audit_log") == [{"actor": "ann", "command": "status"}]
    assert upgraded.scalar("SELECT text FROM outbox") == "hi"
    assert "jobs" in upgraded.db.table_names()


def test_database_from_a_newer_version_is_refused(settings, store):
    store.db.execute(f"PRAGMA user_version = {migrations.LATEST + 1}")
    with pytest.raises(SchemaTooNew) as caught:
        open_store(settings.db_path)
    assert "newer" in caught.value.message and "Upgrade" in (caught.value.hint or "")


def test_a_file_that_is_not_sqlite_gets_a_clear_error(tmp_path):
    path = tmp_path / "finetune.db"
    path.write_text("this is not a database" * 100)
    with pytest.raises(StoreError) as caught:
        open_store(path)
    assert str(path) in caught.value.message and "FINETUNE_DATA_DIR" in (caught.value.hint or "")


def test_a_failing_write_leaves_nothing_behind(store):
    with pytest.raises(RuntimeError), store.write() as db:
        db["alerts"].insert({"kind": "k", "severity": "info", "message": "m", "created_at": "t"})
        raise RuntimeError("boom")
    assert store.scalar("SELECT count(*) FROM alerts") == 0


def test_nested_writes_are_savepoints_of_one_transaction(store):
    with pytest.raises(sqlite3.IntegrityError), store.write() as db:
        db["alerts"].insert({"kind": "outer", "severity": "info", "message": "m", "created_at": "t"})
        with store.write() as inner:
            inner["alerts"].insert({"kind": "inner", "severity": "info", "message": "m", "created_at": "t"})
        db["alerts"].insert({"kind": None, "severity": "info", "message": "m", "created_at": "t"})  # NOT NULL
    assert store.scalar("SELECT count(*) FROM alerts") == 0


def test_foreign_keys_are_enforced(store):
    with pytest.raises(sqlite3.IntegrityError), store.write() as db:
        db["dataset_examples"].insert({"dataset_version_id": "nope", "feedback_id": "nope", "split": "train"})


def _writer(path: str, worker: int, count: int) -> None:
    store = open_store(path)
    for i in range(count):
        with store.write() as db:
            db.table("alerts").insert({"kind": f"w{worker}", "severity": "info", "message": str(i), "created_at": "t"})
    store.close()


def test_processes_share_the_file_without_losing_writes(settings, store):
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(str(settings.db_path), w, 150)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert store.scalar("SELECT count(*) FROM alerts") == 450


def test_opening_a_current_database_takes_no_write_lock(settings, store):
    """Another process in the middle of a long write must not hold up a CLI command or an MCP server starting."""
    writer = sqlite3.connect(settings.db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO alerts (kind, severity, message, created_at) VALUES ('k', 'info', 'm', 't')")
    try:
        started = time.monotonic()
        again = open_store(settings.db_path)
        assert migrate_store(again) == []
        assert schema_version(again) == migrations.LATEST
        assert time.monotonic() - started < 2  # the busy timeout is 10 s: no waiting happened
        again.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_full_disk_is_named_and_the_database_stays_intact(settings, store):
    with store.write() as db:
        db["alerts"].insert({"kind": "before", "severity": "info", "message": "kept", "created_at": "t"})
    pages = store.scalar("PRAGMA page_count")
    store.db.execute(f"PRAGMA max_page_count = {pages + 2}")  # this connection may not grow the file further
    with pytest.raises(StoreError) as caught, store.write() as db:
        for i in range(200):
            db["alerts"].insert({"kind": "big", "severity": "info", "message": "x" * 4000, "created_at": str(i)})
    assert caught.value.message.startswith("disk full")
    assert "backup" not in str(caught.value) and "Free space" in (caught.value.hint or "")
    assert str(settings.db_path) in caught.value.message

    reopened = open_store(settings.db_path)  # a new connection has no page limit
    assert reopened.query("SELECT kind, message FROM alerts") == [{"kind": "before", "message": "kept"}]
    assert reopened.scalar("PRAGMA integrity_check") == "ok"
    with reopened.write() as db:
        db.table("alerts").insert({"kind": "after", "severity": "info", "message": "fine", "created_at": "t"})
    assert reopened.scalar("SELECT count(*) FROM alerts") == 2


def test_a_full_disk_while_opening_is_not_called_corruption(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "_connect", full)
    with pytest.raises(StoreError) as caught:
        open_store(tmp_path / "finetune.db")
    assert "disk full" in caught.value.message and "backup" not in str(caught.value)


def test_outbox_rows_survive_the_rebuild_that_adds_delivery_states(tmp_path):
    old = Store(tmp_path / "old.db")
    migrate_store(old, target=4)
    for status in ("pending", "delivered"):
        old.db.table("outbox").insert(
            {"created_at": "t", "kind": "notice", "text": status, "status": status, "attempts": 2,
             "next_attempt_at": "t", "last_error": "e", "slack_ts": "1.2", "event": '{"kind": "notice"}'}
        )  # fmt: skip
    before = old.query("SELECT * FROM outbox ORDER BY id")
    old.close()

    upgraded = open_store(tmp_path / "old.db")
    after = upgraded.query("SELECT * FROM outbox ORDER BY id")
    assert [{k: v for k, v in row.items() if k != "sending_at"} for row in after] == before
    from core.platform.outbox import OutboxState

    with upgraded.write() as db:
        for state in OutboxState:  # every state the code knows is storable
            db.execute("UPDATE outbox SET status = ? WHERE id = 1", (state,))
    assert {row["name"] for row in upgraded.query("PRAGMA index_list(outbox)")} >= {"outbox_due", "outbox_key"}


def test_threads_of_one_process_take_turns_instead_of_sleeping_on_the_lock(store):
    """Writers in one process queue on the store, so SQLite's busy handler (sleeps of up to 100 ms) never runs."""
    import threading

    failures: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            store.db.execute("PRAGMA busy_timeout = 0")  # a collision would fail at once instead of waiting
            for i in range(100):
                with store.write() as db:
                    db.table("alerts").insert(
                        {"kind": f"t{worker}", "severity": "info", "message": str(i), "created_at": "t"}
                    )
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == [] and store.scalar("SELECT count(*) FROM alerts") == 400
