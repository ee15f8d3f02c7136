import json

import pytest

from core.data import feedback
from core.data.edits import compare
from core.errors import InvalidInput
from core.platform.actors import cli_actor
from tests.feedback_samples import make_events, write_jsonl

ACTOR = cli_actor()


def ingest(store, path, **kwargs):
    return feedback.ingest_file(store, path, actor=ACTOR, workers=1, **kwargs)


def test_jsonl_ingest_stores_events_with_derived_fields(store, tmp_path):
    report = ingest(store, write_jsonl(tmp_path / "f.jsonl", make_events(30)))
    assert (report.lines, report.ingested, report.duplicates, report.error_count) == (30, 30, 0, 0)
    row = store.query("SELECT * FROM feedback WHERE final_output IS NOT NULL LIMIT 1")[0]
    assert 0 < row["acceptance"] < 1
    ops = json.loads(row["edit_ops"])
    assert any("Thanks" in op["deleted"] and "Thank you" in op["added"] for op in ops)
    unedited = store.query("SELECT acceptance, edit_ops FROM feedback WHERE final_output IS NULL LIMIT 1")[0]
    assert unedited == {"acceptance": 1.0, "edit_ops": "[]"}
    assert store.scalar("SELECT count(*) FROM feedback WHERE rating NOT BETWEEN 1 AND 5") == 0


def test_reingesting_changes_nothing(store, tmp_path):
    path = write_jsonl(tmp_path / "f.jsonl", make_events(20))
    ingest(store, path)
    before = store.query("SELECT * FROM feedback ORDER BY id")
    again = ingest(store, path)
    assert (again.ingested, again.duplicates) == (0, 20)
    assert store.query("SELECT * FROM feedback ORDER BY id") == before


def test_a_bad_line_rejects_the_whole_file_and_names_line_field_and_fix(store, tmp_path):
    events = make_events(5)
    events[3]["rating"] = 9
    with pytest.raises(feedback.IngestRejected) as caught:
        ingest(store, write_jsonl(tmp_path / "f.jsonl", events))
    error = caught.value.report.errors[0]
    assert (error.line, error.field) == (4, "rating")
    assert "9 is not a rating" in error.message and "1 to 5" in error.hint
    assert caught.value.hint is not None
    assert "--skip-invalid" in caught.value.hint
    assert store.scalar("SELECT count(*) FROM feedback") == 0


def test_skip_invalid_stores_the_rest_and_reports_each_skipped_line(store, tmp_path):
    path = tmp_path / "f.jsonl"
    lines = [json.dumps(e) for e in make_events(4)]
    lines.insert(1, "{not json")
    lines.insert(3, json.dumps({"agent": "x", "prompt": "hi"}))  # no output
    path.write_text("\n".join(lines) + "\n\n")
    report = ingest(store, path, skip_invalid=True)
    assert (report.ingested, report.skipped) == (4, 2)
    assert [(e.line, e.field) for e in report.errors] == [(2, None), (4, "output")]
    assert "not valid JSON" in report.errors[0].message


def test_field_map_and_epoch_seconds(store, tmp_path):
    event = {"bot": "support", "q": "Where is my order?", "model_output": "It ships today.", "final_output": "It ships today!",
             "ts": 1767225600, "score": "up", "channel": "web"}  # fmt: skip
    path = write_jsonl(tmp_path / "log.jsonl", [event])
    mapping = feedback.parse_field_map(
        "agent=bot,prompt=q,output=model_output,final=final_output,created_at=ts,rating=score"
    )
    report = ingest(store, path, field_map=mapping)
    assert report.ingested == 1
    row = store.query("SELECT agent, created_at, rating, metadata, input_messages FROM feedback")[0]
    assert row["agent"] == "support" and row["created_at"].startswith("2026-01-01T00:00:00")
    assert row["rating"] == 5.0 and json.loads(row["metadata"]) == {"channel": "web"}
    assert json.loads(row["input_messages"]) == [{"role": "user", "content": "Where is my order?"}]


def test_errors_name_the_files_own_field_when_mapped(store, tmp_path):
    path = write_jsonl(tmp_path / "log.jsonl", [{"agent": "a", "prompt": "p", "model_output": 42}])
    with pytest.raises(feedback.IngestRejected) as caught:
        ingest(store, path, field_map={"output": "model_output"})
    assert caught.value.report.errors[0].field == "model_output (mapped to output)"


@pytest.mark.parametrize(
    "text, fragment",
    [("output", "write OURS=THEIRS"), ("outptu=x", "unknown field 'outptu'"), ("output=", "write OURS=THEIRS")],
)
def test_bad_field_maps_are_explained(text, fragment):
    with pytest.raises(InvalidInput) as caught:
        feedback.parse_field_map(text)
    assert fragment in str(caught.value).replace("Write", "write")


def test_csv_with_bom_json_cells_and_tags(store, tmp_path):
    path = tmp_path / "f.csv"
    path.write_text(
        "\ufeffagent,messages,output,final,rating,tags,created_at\r\n"
        'support,"[{""role"": ""user"", ""content"": ""hi""}]",Hello there,Hello there!,4,"vip,eu",2026-11-01\r\n'
        "sales,,Hi,,5,,\r\n",
        encoding="utf-8",
    )
    report = ingest(store, path, skip_invalid=True)
    assert report.ingested == 1 and report.errors[0].line == 3 and report.errors[0].field == "messages"
    row = store.query("SELECT tags, created_at FROM feedback")[0]
    assert json.loads(row["tags"]) == ["eu", "vip"] and row["created_at"].startswith("2026-11-01T00:00:00")


def test_pii_is_redacted_at_ingest_and_counted(store, tmp_path):
    event = make_events(1)[0] | {"output": "Mail me at dana@example.com or call +1 415 555 2671."}
    report = ingest(store, write_jsonl(tmp_path / "f.jsonl", [event]))
    stored = store.scalar("SELECT ai_output FROM feedback")
    assert "dana@example.com" not in stored and "[EMAIL]" in stored and "[PHONE]" in stored
    assert report.redactions.by_type == {"EMAIL": 1, "PHONE": 1}


def test_redaction_can_be_turned_off_at_ingest(store, tmp_path):
    event = make_events(1)[0] | {"output": "Mail me at dana@example.com"}
    ingest(store, write_jsonl(tmp_path / "f.jsonl", [event]), redact=False)
    assert "dana@example.com" in store.scalar("SELECT ai_output FROM feedback")


def test_same_id_with_different_content_is_refused_not_overwritten(store, tmp_path):
    first = make_events(1)[0] | {"id": "evt-1"}
    ingest(store, write_jsonl(tmp_path / "a.jsonl", [first]))
    changed = first | {"output": "something else entirely"}
    with pytest.raises(feedback.IngestRejected) as caught:
        ingest(store, write_jsonl(tmp_path / "b.jsonl", [changed]))
    assert "already ingested with different content" in caught.value.report.errors[0].message
    assert store.scalar("SELECT ai_output FROM feedback WHERE id = 'evt-1'") == first["output"]


def test_parallel_workers_give_the_same_result(store, tmp_path, settings):
    from core.platform.store import open_store

    path = write_jsonl(tmp_path / "f.jsonl", make_events(300))
    single = ingest(store, path)
    other = open_store(tmp_path / "other.db")
    multi = feedback.ingest_file(other, path, actor=ACTOR, workers=2)
    assert single.ingested == multi.ingested == 300
    assert store.query("SELECT id, acceptance FROM feedback ORDER BY id") == other.query(
        "SELECT id, acceptance FROM feedback ORDER BY id"
    )


def test_acceptance_falls_as_edits_grow():
    draft = "Your refund was approved and will arrive within five business days on your original card."
    light = compare(draft, draft.replace("five", "three")).acceptance
    heavy = compare(draft, "Refund approved. Expect it in three days.").acceptance
    assert compare(draft, draft).acceptance == 1.0 == compare(draft, None).acceptance
    assert 1.0 > light > heavy >= 0.0
    assert compare(draft, "").acceptance == 0.0


def test_every_stored_text_is_redacted_and_counted_and_reingest_stays_idempotent(store, tmp_path):
    key = "sk-proj-abcdefghijklmnopqrstuvwx1234"
    event = make_events(1)[0] | {
        "user": "dana@example.com", "intent": "refund for ops@example.com", "agent": "support ops@example.com",
        "tags": ["vip", "owner:ops@example.com"], "template": f"reply-v2 {key}", "model": f"ft:{key}",
        "account": {"owner": "dana@example.com", "keys": [key], "plan": "pro"},
    }  # fmt: skip
    path = write_jsonl(tmp_path / "f.jsonl", [event])
    report = ingest(store, path)
    row = store.query("SELECT agent, intent, user, tags, template, model, metadata FROM feedback")[0]
    stored = json.dumps(row)
    assert "example.com" not in stored and "sk-proj" not in stored
    assert row["user"] == "[EMAIL]" and row["agent"] == "support [EMAIL]"
    assert json.loads(row["metadata"]) == {"account": {"owner": "[EMAIL]", "keys": ["[API_KEY]"], "plan": "pro"}}
    assert json.loads(row["tags"]) == ["owner:[EMAIL]", "vip"]
    assert report.redactions.by_type == {"EMAIL": 5, "API_KEY": 3}
    again = ingest(store, path)
    assert (again.ingested, again.duplicates) == (0, 1)


def test_identifiers_are_kept_verbatim_when_redaction_is_off(store, tmp_path):
    event = make_events(1)[0] | {"user": "dana@example.com", "channel": "ops@example.com"}
    ingest(store, write_jsonl(tmp_path / "f.jsonl", [event]), redact=False)
    row = store.query("SELECT user, metadata FROM feedback")[0]
    assert row["user"] == "dana@example.com" and "ops@example.com" in row["metadata"]


def test_the_feedback_counter_follows_every_ingest(store, tmp_path):
    from core.platform import counters

    ingest(store, write_jsonl(tmp_path / "f.jsonl", make_events(30)))
    feedback.ingest_batch(store, make_events(5, start=100), actor=ACTOR)
    ingest(store, write_jsonl(tmp_path / "f.jsonl", make_events(30)))  # all duplicates: no change
    with pytest.raises(feedback.IngestRejected):
        feedback.ingest_batch(store, [*make_events(3, start=200), {"agent": "x"}], actor=ACTOR)
    assert counters.value(store, counters.FEEDBACK_EVENTS) == store.scalar("SELECT count(*) FROM feedback") == 35


def test_a_rejected_ingest_leaves_no_staged_file_behind(store, tmp_path, settings):
    events = make_events(5)
    events[4]["rating"] = 9
    with pytest.raises(feedback.IngestRejected):
        ingest(store, write_jsonl(tmp_path / "f.jsonl", events))
    assert list((settings.data_dir / "staging").iterdir()) == []
    ingest(store, write_jsonl(tmp_path / "g.jsonl", make_events(5)))
    assert list((settings.data_dir / "staging").iterdir()) == []


def test_nothing_is_visible_until_the_whole_input_is_read(store, tmp_path, settings):
    from core.platform.store import open_store

    other = open_store(settings.db_path)
    seen = []
    path = write_jsonl(tmp_path / "f.jsonl", make_events(4500))  # three chunks, staged one by one
    ingest(store, path, on_progress=lambda _: seen.append(other.scalar("SELECT count(*) FROM feedback")))
    assert seen[:-1] == [0, 0, 0] and seen[-1] == 4500
    other.close()


def test_an_id_stored_elsewhere_while_staging_is_refused_at_publish(store, tmp_path, settings):
    from core.platform.store import open_store

    other = open_store(settings.db_path)
    first = make_events(1)[0] | {"id": "evt-1"}
    elsewhere = first | {"output": "written by another process meanwhile"}
    path = write_jsonl(tmp_path / "f.jsonl", [first, *make_events(3, start=10)])

    def meanwhile(_):
        if not other.scalar("SELECT count(*) FROM feedback"):
            feedback.ingest_batch(other, [elsewhere], actor=ACTOR)

    with pytest.raises(feedback.IngestRejected) as caught:
        ingest(store, path, on_progress=meanwhile)
    assert (caught.value.report.errors[0].line, caught.value.report.errors[0].field) == (1, "id")
    assert store.scalar("SELECT count(*) FROM feedback") == 1
    report = ingest(store, path, skip_invalid=True)
    assert (report.ingested, report.skipped) == (3, 1)
    other.close()


def test_events_stored_elsewhere_while_staging_count_as_duplicates(store, tmp_path, settings):
    from core.platform import counters
    from core.platform.store import open_store

    other = open_store(settings.db_path)
    events = make_events(4)
    path = write_jsonl(tmp_path / "f.jsonl", events)

    def meanwhile(_):
        if not other.scalar("SELECT count(*) FROM feedback"):
            feedback.ingest_batch(other, events[:2], actor=ACTOR)

    report = ingest(store, path, on_progress=meanwhile)
    assert (report.ingested, report.duplicates) == (2, 2)
    assert counters.value(store, counters.FEEDBACK_EVENTS) == 4 == store.scalar("SELECT count(*) FROM feedback")
    other.close()


def test_staging_files_of_dead_ingests_are_swept_and_never_published(store, tmp_path, settings):
    from core.data import staging

    directory = settings.data_dir / "staging"
    directory.mkdir(parents=True)
    (directory / "ingest-1-dead.db").write_bytes(b"rows a killed ingest staged")
    (directory / "ingest-1-dead.lock").touch()
    ingest(store, write_jsonl(tmp_path / "f.jsonl", make_events(3)))
    assert list(directory.iterdir()) == [] and store.scalar("SELECT count(*) FROM feedback") == 3
    with staging.staging_area(store) as live:  # a running ingest's files are left alone
        assert staging.sweep(directory) == [] and live.name.endswith(".db")
    assert list(directory.iterdir()) == []
