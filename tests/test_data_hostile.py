"""Hostile input to feedback ingest: every input gets a report or a refusal naming the line and field, never a crash.

Property tests feed arbitrary JSON values, bytes and CSV cells to file and batch
ingest; explicit tests cover each known trap (deep nesting, huge integers, lone
surrogates, broken or foreign encodings, oversized CSV cells, NaN where numbers
belong, lines that are not objects, oversized identifiers).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.data import feedback
from core.data.fields import MAX_ID_CHARS, MAX_TEXT_CHARS
from core.errors import InvalidInput
from core.platform import counters
from core.platform.actors import cli_actor
from core.platform.store import open_store

ACTOR = cli_actor()
VALID = {"agent": "support", "prompt": "Where is my refund?", "output": "It was sent today."}
NAMES_A_LINE = re.compile(r"\bline \d+")
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One store for the property tests (hypothesis reuses a test's fixtures across its examples)."""
    store = open_store(tmp_path_factory.mktemp("hostile") / "data" / "finetune.db")
    yield store
    store.close()


def answered(store, run):
    """Run an ingest; return its report, or None when it was refused with an error naming a line."""
    before = _stored(store)
    try:
        report = run()
    except InvalidInput as refused:
        assert NAMES_A_LINE.search(str(refused)), str(refused)
        assert _stored(store) == before, "a refused input must store nothing"
        return None
    assert isinstance(report, feedback.IngestReport)
    assert _stored(store) == before + report.ingested
    return report


def _stored(store) -> int:
    count = store.scalar("SELECT count(*) FROM feedback")
    assert counters.value(store, counters.FEEDBACK_EVENTS) == count, "the counter follows every insert"
    return count


# Properties ----------------------------------------------------------------------------------------

text = st.text(st.characters(codec=None), max_size=30)  # surrogates included
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)
field_names = st.sampled_from([*feedback.FIELDS, "metadata_key"])
events = st.one_of(
    json_values,
    st.dictionaries(field_names, json_values, max_size=8),
    st.builds(lambda extra: {**VALID, **extra}, st.dictionaries(field_names | text, json_values, max_size=3)),
)


@PROPERTY
@given(batch=st.lists(events, min_size=1, max_size=5), skip=st.booleans())
def test_any_json_batch_is_reported_or_refused_by_line(shared, batch, skip):
    report = answered(shared, lambda: feedback.ingest_batch(shared, batch, actor=ACTOR, skip_invalid=skip))
    if report is not None and not skip:
        assert report.error_count == 0


@PROPERTY
@given(batch=st.lists(events, min_size=1, max_size=5))
def test_any_json_lines_are_reported_or_refused_by_line(shared, tmp_path_factory, batch):
    lines = []
    for event in batch:
        try:
            lines.append(json.dumps(event, ensure_ascii=True))  # lone surrogates travel as \ud800 escapes
        except (ValueError, TypeError):
            assume(False)
    path = tmp_path_factory.mktemp("lines") / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    answered(shared, lambda: feedback.ingest_file(shared, path, actor=ACTOR, workers=1))


@PROPERTY
@given(data=st.binary(max_size=300), prefix=st.sampled_from([b"", b'{"agent": "a", "prompt": "p", "output": "']))
def test_any_bytes_as_jsonl_or_csv_are_reported_or_refused_by_line(shared, tmp_path_factory, data, prefix):
    folder = tmp_path_factory.mktemp("bytes")
    for name in ("events.jsonl", "events.csv"):
        path = folder / name
        path.write_bytes(prefix + data)
        answered(shared, lambda path=path: feedback.ingest_file(shared, path, actor=ACTOR, workers=1))


@PROPERTY
@given(cells=st.lists(st.text(st.characters(codec="utf-8"), max_size=40), min_size=4, max_size=6))
def test_any_csv_cells_are_reported_or_refused_by_line(shared, tmp_path_factory, cells):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["agent", "prompt", "output", "rating", "tags", "extra"][: len(cells)])
    writer.writerow(cells)
    path = tmp_path_factory.mktemp("cells") / "events.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    answered(shared, lambda: feedback.ingest_file(shared, path, actor=ACTOR, workers=1))


# Each known trap -----------------------------------------------------------------------------------


def refusal(store, path, **kwargs) -> str:
    with pytest.raises(InvalidInput) as caught:
        feedback.ingest_file(store, path, actor=ACTOR, workers=1, **kwargs)
    assert store.scalar("SELECT count(*) FROM feedback") == 0
    return str(caught.value)


def line_with(**fields) -> str:
    return json.dumps({**VALID, **fields})


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "line, expected",
    [
        ("[" * 10_000 + "]" * 10_000, "line 1: the JSON is nested too deeply"),
        ('{"agent": "a", "prompt": "p", "output": "o", "x": ' + "[" * 10_000 + "]" * 10_000 + "}", "nested too deeply"),
        (line_with(x={"a": nested(40)}), "field `x.a[0][0]"),
        (line_with()[:-1] + ', "latency_ms": ' + "9" * 5000 + "}", "line 1: a number on the line is too long to read"),
        (line_with(user="\ud800"), "line 1, field `user`: `user` holds an unpaired surrogate"),
        (line_with(messages=None, prompt=None)[:-1] + ', "messages": [{"role": "user", "content": "\\udfff"}]}',
         "field `messages[0].content`"),
        ("null", "line 1: an event must be a JSON object, got null"),
        ("42", "got number"),
        ('["a", "b"]', "got list"),
        ('"text"', "got string"),
    ],
)  # fmt: skip
def test_unreadable_lines_name_the_line_and_the_fix(store, tmp_path, line, expected):
    path = tmp_path / "events.jsonl"
    path.write_text(line + "\n")
    message = refusal(store, path)
    assert expected in message and "nothing was stored" in message


@pytest.mark.parametrize(
    "field, value",
    [
        ("rating", "NaN"), ("rating", "Infinity"), ("rating", "true"), ("rating", "-Infinity"),
        ("latency_ms", "NaN"), ("latency_ms", "Infinity"), ("latency_ms", "true"), ("latency_ms", '"nan"'),
        ("cost_usd", "NaN"), ("cost_usd", "false"), ("cost_usd", '"inf"'), ("cost_usd", "1e999"),
        ("created_at", "NaN"), ("created_at", "Infinity"), ("created_at", "true"), ("created_at", '"\\u00b2"'),
        ("created_at", '"9999-12-31T23:59:59-23:59"'), ("created_at", "1" + "0" * 300),
    ],
)  # fmt: skip
def test_nan_infinity_and_booleans_are_not_numbers(store, tmp_path, field, value):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(VALID)[:-1] + f', "{field}": {value}}}\n')
    message = refusal(store, path)
    assert f"line 1, field `{field}`" in message


def test_a_line_that_is_just_null_is_an_error_not_a_blank(store, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(VALID) + "\n\nnull\n")
    report = feedback.ingest_file(store, path, actor=ACTOR, workers=1, skip_invalid=True)
    assert (report.lines, report.ingested, report.skipped) == (2, 1, 1)
    assert report.errors[0].line == 3


@pytest.mark.parametrize("name", ["id", "agent", "intent", "user", "template", "model"])
def test_identifiers_are_bounded(store, tmp_path, name):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({**VALID, name: "x" * 1_000_000}) + "\n")
    message = refusal(store, path)
    assert f"field `{name}`" in message and f"at most {MAX_ID_CHARS}" in message


def test_tags_and_texts_are_bounded(store, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({**VALID, "tags": ["ok", "t" * (MAX_ID_CHARS + 1)]}) + "\n")
    assert "field `tags[1]`" in refusal(store, path)
    path.write_text(json.dumps({**VALID, "output": "o" * (MAX_TEXT_CHARS + 1)}) + "\n")
    assert "field `output`" in refusal(store, path)
    path.write_text(json.dumps({**VALID, "tags": [f"t{i}" for i in range(500)]}) + "\n")
    assert "field `tags`" in refusal(store, path)


def test_a_line_too_long_to_read_is_refused_by_line_and_the_next_one_read(store, tmp_path, monkeypatch):
    from core.data import sources

    monkeypatch.setattr(sources, "MAX_LINE_BYTES", 1000)
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({**VALID, "output": "o" * 5000}) + "\n" + json.dumps(VALID) + "\n")
    report = feedback.ingest_file(store, path, actor=ACTOR, workers=1, skip_invalid=True)
    assert (report.ingested, report.skipped, report.errors[0].line) == (1, 1, 1)
    assert "longer than 1,000 bytes" in report.errors[0].message


def test_invalid_utf8_names_the_line(store, tmp_path):
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_bytes(json.dumps(VALID).encode() + b"\n" + b'{"agent": "a\xff", "prompt": "p", "output": "o"}\n')
    assert "line 2: the line is not valid UTF-8 (byte 0xff" in refusal(store, jsonl)
    table = tmp_path / "events.csv"
    table.write_bytes(b"agent,prompt,output\nsupport,hi,hello\nsupport,caf\xe9,ok\n")
    assert "line 3: the row (or the header) is not valid UTF-8" in refusal(store, table)


def test_a_csv_cell_over_the_field_size_limit_is_refused_naming_the_line(store, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("agent,prompt,output\nsupport,hi,hello\nsupport,hi," + "x" * (csv.field_size_limit() + 1) + "\n")
    message = refusal(store, path, skip_invalid=True)  # the lines after it cannot be told apart: no skipping
    assert "past line 3" in message and "field larger than field limit" in message and "JSONL" in message


def test_csv_rows_with_more_cells_than_the_header_are_named(store, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("agent,prompt,output\n,,,,x\n")
    assert "line 2: the row has more cells than the header has columns" in refusal(store, path)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_utf16_and_utf32_files_are_decoded(store, tmp_path, encoding):
    event = {**VALID, "output": "Ça coûte 5 € — merci 👍"}
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_bytes((json.dumps(event, ensure_ascii=False) + "\r\n").encode(encoding))
    assert feedback.ingest_file(store, jsonl, actor=ACTOR, workers=1).ingested == 1
    assert store.scalar("SELECT ai_output FROM feedback") == event["output"]
    table = tmp_path / "events.csv"
    table.write_bytes("agent,prompt,output\nsales,Bonjour,Ça va très bien\n".encode(encoding))
    assert feedback.ingest_file(store, table, actor=ACTOR, workers=1).ingested == 1


def test_broken_utf16_is_refused_by_line(store, tmp_path):
    path = tmp_path / "events.jsonl"
    good = (json.dumps(VALID) + "\n").encode("utf-16-le")
    path.write_bytes(b"\xff\xfe" + good + b"\x00\xd8" + "x\n".encode("utf-16-le"))  # a lone high surrogate
    assert "line 2: the line is not valid UTF-16" in refusal(store, path)


@pytest.mark.parametrize(
    "event, field",
    [
        ({**VALID, "rating": 10**5000}, "rating"),
        ({**VALID, "id": 10**5000}, "id"),
        ({**VALID, "id": True}, "id"),
        ({**VALID, "x": {"y": math.nan}}, "x.y"),
        ({**VALID, "x": {1: "a"}}, "x"),
        ({**VALID, "x": object()}, "x"),
        ({**VALID, "x": "\udc80"}, "x"),
    ],
)  # fmt: skip
def test_batch_values_no_json_reader_could_take_back_are_named(store, event, field):
    with pytest.raises(InvalidInput) as caught:
        feedback.ingest_batch(store, [VALID, event], actor=ACTOR)
    assert f"line 2, field `{field}`" in str(caught.value)
    assert store.scalar("SELECT count(*) FROM feedback") == 0


def test_deeply_nested_batch_values_are_named_not_recursed(store):
    deep: object = "bottom"
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(InvalidInput) as caught:
        feedback.ingest_batch(store, [{**VALID, "x": deep}], actor=ACTOR)
    assert "line 1, field `x" in str(caught.value) and "levels deep" in str(caught.value)


def test_batch_items_that_are_not_objects_are_named(store):
    with pytest.raises(InvalidInput) as caught:
        feedback.ingest_batch(store, [VALID, None], actor=ACTOR)  # type: ignore[list-item]
    assert "line 2: an event must be a JSON object, got null" in str(caught.value)


def test_an_edit_of_a_huge_repetitive_text_is_diffed_in_bounded_time(store):
    import time

    draft = " ".join("ab"[i % 2] for i in range(150_000))
    final = " ".join("ba"[i % 3 % 2] for i in range(150_000))
    started = time.monotonic()
    report = feedback.ingest_batch(store, [{**VALID, "output": draft, "final": final}], actor=ACTOR)
    assert report.ingested == 1 and time.monotonic() - started < 30
