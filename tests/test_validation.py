"""Every documented rule catches its failing line, with the right line number and kind."""

import io
import json
from typing import Any

import pytest

from core.catalog.models import load_catalog
from core.data import validation
from core.data.targets import TARGETS
from core.data.validation import MAX_KEPT_ERRORS, validate_file, validate_lines
from core.errors import InvalidInput
from core.vocabulary import ExportTarget

CATALOG = load_catalog()
OPENAI = "gpt-4o-mini-2024-07-18"
NOVA_MICRO = "amazon.nova-micro-v1:0"
USER = {"role": "user", "content": "Where is order 1182?"}
ANSWER = {"role": "assistant", "content": "It ships today."}
IMAGE = {"image": {"format": "png", "source": {"s3Location": {"uri": "s3://bucket/a.png"}}}}
VIDEO = {"video": {"format": "mp4", "source": {"s3Location": {"uri": "s3://bucket/a.mp4"}}}}

VALID: dict[str, dict[str, Any]] = {
    "openai": {"messages": [{"role": "system", "content": "Be brief."}, USER, ANSWER]},
    "openai-dpo": {
        "input": {"messages": [USER]},
        "preferred_output": [ANSWER],
        "non_preferred_output": [{"role": "assistant", "content": "No idea."}],
    },
    "bedrock-nova": {
        "schemaVersion": "bedrock-conversation-2024",
        "system": [{"text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [{"text": "Where is order 1182?"}]},
            {"role": "assistant", "content": [{"text": "It ships today."}]},
        ],
    },
    "bedrock-claude": {"system": "Be brief.", "messages": [USER, ANSWER]},
    "bedrock-llama": {"prompt": "Where is order 1182?", "completion": "It ships today."},
    "hf-chat": {"messages": [USER, ANSWER]},
}
BAD_LINE = 6


def nova(*messages, **top):
    return {"schemaVersion": "bedrock-conversation-2024", "messages": list(messages), **top}


def turn(role, *blocks):
    return {"role": role, "content": list(blocks) or [{"text": "Fine."}]}


def report_with(target, bad, *, model=None, total=12, catalog=CATALOG):
    """A file of valid rows for `target` with `bad` (a row, or raw text) on line 6."""
    lines = [json.dumps(VALID[target])] * total
    lines[BAD_LINE - 1] = bad if isinstance(bad, str) else json.dumps(bad)
    return validate_lines(lines, target=target, model=model, catalog=catalog)


def issues_of(target, bad, **kwargs):
    report = report_with(target, bad, **kwargs)
    assert {issue.line for issue in report.errors} == {BAD_LINE}, report.errors
    assert report.valid_examples == 11 and not report.ok
    for issue in report.errors:
        assert issue.hint
        if issue.field:
            assert f"`{issue.field}`" in issue.message, issue
    return {(issue.kind, issue.field) for issue in report.errors}


CASES = [
    # any target: the line itself
    ("openai", "[1, 2]", "not_an_object", None),
    ("openai", '{"messages": [', "invalid_json", None),
    ("bedrock-llama", '"just text"', "not_an_object", None),
    # openai
    ("openai", {}, "missing_field", "messages"),
    ("openai", {"messages": "hi"}, "wrong_type", "messages"),
    ("openai", {"messages": []}, "too_few_messages", "messages"),
    ("openai", {"messages": ["hi", ANSWER]}, "wrong_type", "messages[0]"),
    ("openai", {"messages": [{"content": "hi"}, ANSWER]}, "missing_field", "messages[0].role"),
    ("openai", {"messages": [USER, {"role": "bot", "content": "hi"}]}, "invalid_role", "messages[1].role"),
    ("openai", {"messages": [{**USER, "weight": 1}, ANSWER]}, "unknown_field", "messages[0].weight"),
    ("openai", {"messages": [{"role": "user"}, ANSWER]}, "missing_field", "messages[0].content"),
    ("openai", {"messages": [USER, {"role": "assistant", "content": 7}]}, "wrong_type", "messages[1].content"),
    ("openai", {"messages": [USER, {"role": "assistant", "content": None}]}, "wrong_type", "messages[1].content"),
    ("openai", {"messages": [{"role": "user", "content": []}, ANSWER]}, "empty_content", "messages[0].content"),
    (
        "openai",
        {"messages": [USER, {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]},
        "invalid_content_part",
        "messages[1].content[0].type",
    ),
    (
        "openai",
        {"messages": [{"role": "user", "content": [{"type": "text"}]}, ANSWER]},
        "missing_field",
        "messages[0].content[0].text",
    ),
    (
        "openai",
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}, ANSWER]},
        "missing_field",
        "messages[0].content[0].image_url.url",
    ),
    ("openai", {"messages": [USER, {**ANSWER, "weight": 2}]}, "invalid_weight", "messages[1].weight"),
    ("openai", {"messages": [USER, {**ANSWER, "weight": True}]}, "invalid_weight", "messages[1].weight"),
    ("openai", {"messages": [{"role": "system", "content": "x"}, USER]}, "no_assistant_message", "messages"),
    ("openai", {"messages": [USER, ANSWER], "metadata": {}}, "unknown_field", "metadata"),
    ("openai", {"messages": [USER, ANSWER], "tools": {}}, "wrong_type", "tools"),
    ("openai", {"messages": [USER, ANSWER], "parallel_tool_calls": "yes"}, "wrong_type", "parallel_tool_calls"),
    (
        "openai",
        {"messages": [USER, {"role": "tool", "content": "42"}, ANSWER]},
        "missing_field",
        "messages[1].tool_call_id",
    ),
    (
        "openai",
        {"messages": [USER, {"role": "function", "content": "42"}, ANSWER]},
        "missing_field",
        "messages[1].name",
    ),
    ("openai", {"messages": [{**USER, "name": 5}, ANSWER]}, "wrong_type", "messages[0].name"),
    # openai-dpo
    ("openai-dpo", {**VALID["openai-dpo"], "input": None}, "wrong_type", "input"),
    ("openai-dpo", {k: v for k, v in VALID["openai-dpo"].items() if k != "input"}, "missing_field", "input"),
    ("openai-dpo", {**VALID["openai-dpo"], "input": {"messages": []}}, "too_few_messages", "input.messages"),
    ("openai-dpo", {**VALID["openai-dpo"], "input": {"messages": [USER], "seed": 1}}, "unknown_field", "input.seed"),
    (
        "openai-dpo",
        {**VALID["openai-dpo"], "input": {"messages": [{"role": "bot", "content": "x"}]}},
        "invalid_role",
        "input.messages[0].role",
    ),
    (
        "openai-dpo",
        {k: v for k, v in VALID["openai-dpo"].items() if k != "preferred_output"},
        "missing_field",
        "preferred_output",
    ),
    ("openai-dpo", {**VALID["openai-dpo"], "preferred_output": ANSWER}, "wrong_type", "preferred_output"),
    (
        "openai-dpo",
        {**VALID["openai-dpo"], "non_preferred_output": [ANSWER, ANSWER]},
        "wrong_output_count",
        "non_preferred_output",
    ),
    ("openai-dpo", {**VALID["openai-dpo"], "preferred_output": [USER]}, "invalid_role", "preferred_output[0].role"),
    ("openai-dpo", {**VALID["openai-dpo"], "score": 1}, "unknown_field", "score"),
    # bedrock-nova
    ("bedrock-nova", nova(turn("user"), turn("assistant")) | {"schemaVersion": 2024}, "wrong_type", "schemaVersion"),
    ("bedrock-nova", {"messages": [turn("user"), turn("assistant")]}, "missing_field", "schemaVersion"),
    ("bedrock-nova", nova(turn("user"), turn("assistant"), system="Be brief."), "wrong_type", "system"),
    ("bedrock-nova", nova(turn("user"), turn("assistant"), system=[{}]), "missing_field", "system[0].text"),
    (
        "bedrock-nova",
        nova(turn("user"), turn("assistant"), system=[{"text": "x", "role": "system"}]),
        "unknown_field",
        "system[0].role",
    ),
    ("bedrock-nova", nova(turn("user")), "too_few_messages", "messages"),
    (
        "bedrock-nova",
        nova(turn("assistant"), turn("user"), turn("assistant")),
        "must_start_with_user",
        "messages[0].role",
    ),
    ("bedrock-nova", nova(turn("user"), turn("user"), turn("assistant")), "roles_not_alternating", "messages[1].role"),
    (
        "bedrock-nova",
        nova(turn("user"), turn("assistant"), turn("user")),
        "must_end_with_assistant",
        "messages[2].role",
    ),
    ("bedrock-nova", nova(turn("system"), turn("user"), turn("assistant")), "invalid_role", "messages[0].role"),
    ("bedrock-nova", nova({"role": "user", "content": "hi"}, turn("assistant")), "wrong_type", "messages[0].content"),
    (
        "bedrock-nova",
        nova(turn("user", {"text": "a", **IMAGE}), turn("assistant")),
        "invalid_content_block",
        "messages[0].content[0]",
    ),
    ("bedrock-nova", nova(turn("user", {"text": ""}), turn("assistant")), "empty_content", "messages[0].content"),
    (
        "bedrock-nova",
        nova(turn("user", {"text": "User: hi"}), turn("assistant")),
        "reserved_keyword",
        "messages[0].content[0].text",
    ),
    (
        "bedrock-nova",
        nova(turn("user"), turn("assistant", {"text": "Done [EOS]"})),
        "reserved_keyword",
        "messages[1].content[0].text",
    ),
    (
        "bedrock-nova",
        nova(turn("user"), turn("assistant"), system=[{"text": "<image> here"}]),
        "reserved_keyword",
        "system[0].text",
    ),
    (
        "bedrock-nova",
        nova(turn("user"), turn("assistant", {"text": "a"}, IMAGE)),
        "media_not_allowed",
        "messages[1].content[1].image",
    ),
    (
        "bedrock-nova",
        nova(turn("user", {"text": "a"}, {"image": {**IMAGE["image"], "format": "bmp"}}), turn("assistant")),
        "invalid_media",
        "messages[0].content[1].image.format",
    ),
    (
        "bedrock-nova",
        nova(
            turn("user", {"text": "a"}, {"image": {"format": "png", "source": {"s3Location": {"uri": "http://x"}}}}),
            turn("assistant"),
        ),
        "invalid_media",
        "messages[0].content[1].image.source.s3Location.uri",
    ),
    ("bedrock-nova", nova(turn("user", {"text": "a"}, VIDEO, VIDEO), turn("assistant")), "too_many_media", "messages"),
    ("bedrock-nova", nova(turn("user", {"text": "a"}, VIDEO, IMAGE), turn("assistant")), "too_many_media", "messages"),
    ("bedrock-nova", nova(turn("user"), turn("assistant"), inferenceConfig={}), "unknown_field", "inferenceConfig"),
    ("bedrock-nova", nova({**turn("user"), "name": "ana"}, turn("assistant")), "unknown_field", "messages[0].name"),
    # bedrock-claude
    ("bedrock-claude", {"system": ["x"], "messages": [USER, ANSWER]}, "wrong_type", "system"),
    ("bedrock-claude", {"schemaVersion": "x", "messages": [USER, ANSWER]}, "unknown_field", "schemaVersion"),
    (
        "bedrock-claude",
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}, ANSWER]},
        "wrong_type",
        "messages[0].content",
    ),
    (
        "bedrock-claude",
        {"messages": [{"role": "user", "content": " "}, ANSWER]},
        "empty_content",
        "messages[0].content",
    ),
    (
        "bedrock-claude",
        {"messages": [{"role": "system", "content": "x"}, USER, ANSWER]},
        "invalid_role",
        "messages[0].role",
    ),
    ("bedrock-claude", {"messages": [{**USER, "name": "ana"}, ANSWER]}, "unknown_field", "messages[0].name"),
    ("bedrock-claude", {"messages": [USER]}, "too_few_messages", "messages"),
    ("bedrock-claude", {"messages": [ANSWER, USER, ANSWER]}, "must_start_with_user", "messages[0].role"),
    ("bedrock-claude", {"messages": [USER, ANSWER, ANSWER]}, "roles_not_alternating", "messages[2].role"),
    ("bedrock-claude", {"messages": [USER, ANSWER, USER]}, "must_end_with_assistant", "messages[2].role"),
    ("bedrock-claude", {"messages": [USER, {"content": "x"}]}, "missing_field", "messages[1].role"),
    # bedrock-llama
    ("bedrock-llama", {"prompt": "Where?"}, "missing_field", "completion"),
    ("bedrock-llama", {"prompt": 1, "completion": "x"}, "wrong_type", "prompt"),
    ("bedrock-llama", {"prompt": "Where?", "completion": ""}, "empty_content", "completion"),
    ("bedrock-llama", {"prompt": "Where?", "completion": "x", "system": "y"}, "unknown_field", "system"),
    # hf-chat
    ("hf-chat", {"messages": [USER, ANSWER], "parallel_tool_calls": True}, "unknown_field", "parallel_tool_calls"),
    ("hf-chat", {"messages": [USER]}, "no_assistant_message", "messages"),
]


@pytest.mark.parametrize(("target", "bad", "kind", "field"), CASES)
def test_each_rule_reports_its_line_kind_and_field(target, bad, kind, field):
    assert (kind, field) in issues_of(target, bad)


@pytest.mark.parametrize(
    "row",
    [
        {"messages": [USER, {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function"}]}]},
        {"messages": [USER, {**ANSWER, "weight": 0}, USER, ANSWER]},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "a"},
                        {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}},
                    ],
                },
                ANSWER,
            ]
        },
        {
            "messages": [
                USER,
                {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}},
                {"role": "function", "name": "f", "content": "1"},
                ANSWER,
            ],
            "functions": [],
        },
        {"messages": [USER, ANSWER], "tools": [], "parallel_tool_calls": False},
    ],
)
def test_documented_openai_variants_are_valid(row):
    assert report_with("openai", row).ok


def test_nova_accepts_images_in_user_turns_except_for_micro():
    row = nova(turn("user", {"text": "What is this?"}, IMAGE), turn("assistant"))
    assert report_with("bedrock-nova", row).ok
    assert ("media_not_allowed", "messages[0].content[1].image") in issues_of("bedrock-nova", row, model=NOVA_MICRO)


def test_token_limit_uses_the_catalog_and_says_the_count_is_exact():
    long = {"messages": [USER, {"role": "assistant", "content": "hello " * 66_000}]}
    report = report_with("openai", long, model=OPENAI)
    (issue,) = report.errors
    assert (issue.line, issue.kind) == (BAD_LINE, "too_many_tokens")
    assert "estimated" not in issue.message and "65536" in issue.message
    assert report_with("openai", long).ok  # no model, no limit
    assert report_with("hf-chat", long).ok


def test_token_limit_for_estimated_models_says_so():
    catalog = CATALOG.model_copy(deep=True)
    catalog.models[NOVA_MICRO] = catalog.models[NOVA_MICRO].model_copy(update={"max_example_tokens": 50})
    long = nova(turn("user", {"text": "word " * 100}), turn("assistant"))
    assert report_with("bedrock-nova", long, model=NOVA_MICRO).ok  # the bundled catalog gives Nova no limit
    (issue,) = report_with("bedrock-nova", long, model=NOVA_MICRO, catalog=catalog).errors
    assert (issue.line, issue.kind) == (BAD_LINE, "too_many_tokens") and "estimated" in issue.message


def test_token_stats_cover_valid_examples_exactly_for_openai_models():
    report = report_with("openai", "not json", model=OPENAI)
    stats = report.token_stats
    assert stats.examples == 11 and stats.exact and stats.min == stats.max == stats.total // 11
    estimated = report_with("bedrock-claude", "not json", model="anthropic.claude-3-haiku-20240307-v1:0")
    assert estimated.token_stats.exact is False


@pytest.mark.parametrize(
    ("target", "count", "kind"),
    [
        ("openai", 9, "too_few_examples"),
        ("openai-dpo", 9, "too_few_examples"),
        ("bedrock-nova", 7, "too_few_examples"),
        ("openai", 0, "empty_file"),
    ],
)
def test_file_level_rules(target, count, kind):
    report = validate_lines([json.dumps(VALID[target])] * count + [""], target=target, catalog=CATALOG)
    assert [(i.line, i.kind) for i in report.errors] == [(None, kind)]
    assert report.valid_examples == count and not report.ok


def test_nova_has_an_upper_bound(monkeypatch):
    assert TARGETS[ExportTarget.BEDROCK_NOVA].rules.max_examples == 20_000
    monkeypatch.setattr(TARGETS[ExportTarget.BEDROCK_NOVA].rules, "max_examples", 9)
    report = validate_lines([json.dumps(VALID["bedrock-nova"])] * 10, target="bedrock-nova", catalog=CATALOG)
    assert [(i.line, i.kind) for i in report.errors] == [(None, "too_many_examples")]


def test_minimums_apply_only_where_documented():
    for target in ("bedrock-claude", "bedrock-llama", "hf-chat"):
        assert validate_lines([json.dumps(VALID[target])], target=target, catalog=CATALOG).ok, target


def test_bom_crlf_and_blank_lines_keep_physical_line_numbers(tmp_path):
    row = json.dumps(VALID["openai"]).encode()
    content = b"\xef\xbb\xbf" + row + b"\r\n\r\n   \r\n" + (row + b"\r\n") * 10 + b"{oops}\r\n\n" + row
    path = tmp_path / "train.jsonl"
    path.write_bytes(content)
    report = validate_file(path, target="openai", catalog=CATALOG)
    assert (report.lines, report.examples, report.valid_examples) == (16, 13, 12)
    assert [(i.line, i.kind) for i in report.errors] == [(14, "invalid_json")]
    as_lines = validate_lines(io.BytesIO(content), target="openai", source=str(path), catalog=CATALOG)
    assert as_lines == report
    as_text = validate_lines(
        content.decode("utf-8").splitlines(keepends=True), target="openai", source=str(path), catalog=CATALOG
    )
    assert as_text == report


def test_invalid_utf8_is_reported_on_its_line():
    lines = [json.dumps(VALID["openai"]).encode()] * 12
    lines[2] = b'{"messages": "caf\xe9"}'
    (issue,) = validate_lines(lines, target="openai", catalog=CATALOG).errors
    assert (issue.line, issue.kind) == (3, "invalid_utf8") and "0xe9" in issue.message


def test_summary_counts_every_issue_and_keeps_the_first_thousand():
    lines = ["nope"] * 1_200 + [json.dumps({"messages": [USER]})] * 3
    report = validate_lines(lines, target="openai", catalog=CATALOG)
    assert report.errors_by_kind == {"invalid_json": 1_200, "no_assistant_message": 3}
    assert report.error_count == 1_203 and len(report.errors) == MAX_KEPT_ERRORS
    assert [issue.line for issue in report.errors] == list(range(1, MAX_KEPT_ERRORS + 1))


def test_file_level_issues_are_kept_first_even_past_the_cap(monkeypatch):
    monkeypatch.setattr(TARGETS[ExportTarget.BEDROCK_NOVA].rules, "max_examples", 1_000)
    report = validate_lines(["nope"] * 1_500, target="bedrock-nova", catalog=CATALOG)
    assert (report.errors[0].line, report.errors[0].kind) == (None, "too_many_examples")
    assert len(report.errors) == MAX_KEPT_ERRORS and report.error_count == 1_501


def test_wrong_target_model_or_arguments_are_refused(tmp_path):
    with pytest.raises(InvalidInput, match="bedrock-nova"):
        validate_lines([], target="openai", model=NOVA_MICRO, catalog=CATALOG)
    with pytest.raises(InvalidInput, match="openai, openai-dpo"):
        validate_lines([], target="jsonl", catalog=CATALOG)
    with pytest.raises(InvalidInput, match="workers"):
        validate_file(__file__, target="openai", workers=0, catalog=CATALOG)
    with pytest.raises(InvalidInput, match="cannot read"):
        validate_file(tmp_path / "missing.jsonl", target="openai", catalog=CATALOG)
    unknown = validate_lines(
        [json.dumps(VALID["openai"])] * 10, target="openai", model="gpt-9-preview", catalog=CATALOG
    )
    assert unknown.token_stats is not None
    assert unknown.ok and unknown.token_stats.exact is False


def _mixed_file(path):
    rows = []
    for index in range(3_000):
        if index % 97 == 0:
            rows.append(b"")
        elif index % 89 == 0:
            rows.append(b"{broken")
        elif index % 83 == 0:
            rows.append(b"\xff\xfe")
        elif index % 79 == 0:
            rows.append(json.dumps({"messages": [USER]}).encode())
        elif index % 101 == 0:
            rows.append(json.dumps({"messages": [USER, {"role": "assistant", "content": "long " * 5_000}]}).encode())
        else:
            rows.append(
                json.dumps({"messages": [USER, {"role": "assistant", "content": f"Answer number {index}."}]}).encode()
            )
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(rows))  # no newline after the last line
    return path


def test_worker_processes_give_the_same_report_as_one_process(tmp_path, monkeypatch):
    monkeypatch.setattr(validation, "BLOCK_BYTES", 4_096)  # many blocks, some shorter than a line
    path = _mixed_file(tmp_path / "mixed.jsonl")
    pools: list[int] = []
    in_workers = validation._check_in_workers

    def recording_check_in_workers(*args: Any) -> Any:
        pools.append(args[2])
        return in_workers(*args)

    monkeypatch.setattr(validation, "_check_in_workers", recording_check_in_workers)
    single = validate_file(path, target="openai", model=OPENAI, workers=1, catalog=CATALOG)
    parallel = validate_file(path, target="openai", model=OPENAI, workers=2, catalog=CATALOG)
    assert pools == [2] and parallel == single
    assert single.lines == 3_000 and single.error_count > 100
    assert set(single.errors_by_kind) == {"invalid_json", "invalid_utf8", "no_assistant_message"}
    lines = path.read_bytes().split(b"\n")
    assert validate_lines(lines, target="openai", model=OPENAI, source=str(path), catalog=CATALOG) == single


@pytest.mark.parametrize("size", [1, 3, 7, 64, 10_000])
def test_blocks_hold_whole_lines_and_know_where_they_start(size):
    data = b"a\nbb\n\nccc" + b"d" * 100 + b"\neeee\n"
    blocks = list(validation._blocks(io.BytesIO(data), size))
    assert b"".join(blob for _, blob in blocks) == data
    line = 1
    for first, blob in blocks:
        assert first == line and blob.endswith(b"\n")
        line += blob.count(b"\n")


BLANK_ANSWER = {"role": "assistant", "content": " \n\t "}
EMPTY_ANSWERS = [
    ("openai", {"messages": [USER, {"role": "assistant", "content": ""}]}, "messages[1].content"),
    ("openai", {"messages": [USER, BLANK_ANSWER]}, "messages[1].content"),
    ("openai", {"messages": [USER, BLANK_ANSWER, USER, ANSWER]}, "messages[1].content"),
    ("openai", {"messages": [USER, {"role": "assistant", "content": [{"type": "text", "text": "  "}]}]},
     "messages[1].content"),
    ("hf-chat", {"messages": [USER, BLANK_ANSWER]}, "messages[1].content"),
    ("openai-dpo", {**VALID["openai-dpo"], "preferred_output": [BLANK_ANSWER]}, "preferred_output[0].content"),
    ("openai-dpo", {**VALID["openai-dpo"], "non_preferred_output": [{"role": "assistant", "content": ""}]},
     "non_preferred_output[0].content"),
    ("bedrock-nova", nova(turn("user"), turn("assistant", {"text": "   "})), "messages[1].content"),
    ("bedrock-claude", {"messages": [USER, BLANK_ANSWER]}, "messages[1].content"),
    ("bedrock-llama", {"prompt": "Where?", "completion": " \n "}, "completion"),
]  # fmt: skip


@pytest.mark.parametrize(("target", "bad", "field"), EMPTY_ANSWERS)
def test_an_empty_or_blank_answer_is_an_error_for_every_target(target, bad, field):
    report = report_with(target, bad)
    assert not report.ok and ("empty_content", field) in issues_of(target, bad)
    assert {target for target, _, _ in EMPTY_ANSWERS} == set(VALID)


def test_an_assistant_turn_with_tool_calls_may_leave_content_empty():
    call = {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function"}]}
    assert report_with("openai", {"messages": [USER, call, {"role": "tool", "tool_call_id": "c1", "content": "1"},
                                               ANSWER]}).ok  # fmt: skip
