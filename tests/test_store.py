import multiprocessing
import sqlite3

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
