"""Every export target gets the row its provider documents, and every row validates."""

import json
from typing import Any

import pytest

from core.catalog.models import load_catalog
from core.data.examples import Example
from core.data.formats import to_row
from core.data.targets import TARGETS
from core.data.validation import count_row_tokens, validate_lines
from core.errors import InvalidInput

CATALOG = load_catalog()
EDITED = Example(
    id="ex-edited",
    system="Be brief.",
    messages=(
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! What do you need?"},
        {"role": "user", "content": "Draft the release note."},
    ),
    output="Release 1.2 is out.",
    final="Release 1.2 is out: faster exports.",
)
UNEDITED = Example(
    id="ex-plain", messages=({"role": "user", "content": "Summarise the call."},), output="We agreed to ship."
)
# Two user turns in a row, an assistant turn before any user turn, and an empty message.
RAGGED = Example(
    id="ex-ragged",
    system="You help the support team.",
    messages=(
        {"role": "assistant", "content": "How can I help?"},
        {"role": "user", "content": "Order 1182 is late."},
        {"role": "user", "content": ""},
        {"role": "user", "content": "It was due Monday."},
    ),
    output="Sorry about that.",
    final="Sorry! Order 1182 ships today.",
)
# Turns holding only white space in the history: they carry nothing, so no target gets them.
BLANK_TURNS = Example(
    id="ex-blank-turns",
    messages=(
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": " \n "},
        {"role": "user", "content": "   "},
        {"role": "user", "content": "Where is order 1182?"},
    ),
    output="It ships today.",
)
NO_USER = Example(id="ex-no-user", system="Write the daily digest.", messages=(), output="Digest: all green.")


def row_for(example: Example, target: str) -> dict[str, Any]:
    """`to_row` for an example that has a row in `target`."""
    row = to_row(example, target)
    assert row is not None, (example.id, target)
    return row


def test_every_target_has_a_converter():
    assert all(callable(spec.converter) for spec in TARGETS.values())
    assert {spec.family for spec in TARGETS.values()} == {"openai", "nova", "claude", "llama", "hf"}


def test_openai_keeps_the_conversation_and_trains_on_the_final_text():
    assert to_row(EDITED, "openai") == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! What do you need?"},
            {"role": "user", "content": "Draft the release note."},
            {"role": "assistant", "content": "Release 1.2 is out: faster exports."},
        ]
    }
    assert row_for(UNEDITED, "openai")["messages"][-1] == {"role": "assistant", "content": "We agreed to ship."}


def test_dpo_prefers_the_edit_and_skips_unedited_examples():
    assert to_row(EDITED, "openai-dpo") == {
        "input": {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello! What do you need?"},
                {"role": "user", "content": "Draft the release note."},
            ]
        },
        "preferred_output": [{"role": "assistant", "content": "Release 1.2 is out: faster exports."}],
        "non_preferred_output": [{"role": "assistant", "content": "Release 1.2 is out."}],
    }
    assert to_row(UNEDITED, "openai-dpo") is None
    same = Example(id="same", messages=UNEDITED.messages, output="We agreed.", final="We agreed.")
    assert to_row(same, "openai-dpo") is None


def test_nova_rows_follow_the_bedrock_conversation_schema():
    assert to_row(EDITED, "bedrock-nova") == {
        "schemaVersion": "bedrock-conversation-2024",
        "system": [{"text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [{"text": "Hi"}]},
            {"role": "assistant", "content": [{"text": "Hello! What do you need?"}]},
            {"role": "user", "content": [{"text": "Draft the release note."}]},
            {"role": "assistant", "content": [{"text": "Release 1.2 is out: faster exports."}]},
        ],
    }
    assert "system" not in row_for(UNEDITED, "bedrock-nova")


def test_alternating_targets_merge_turns_and_start_with_the_user():
    expected = [
        {"role": "user", "content": "Order 1182 is late.\n\nIt was due Monday."},
        {"role": "assistant", "content": "Sorry! Order 1182 ships today."},
    ]
    assert to_row(RAGGED, "bedrock-claude") == {"system": "You help the support team.", "messages": expected}
    assert to_row(RAGGED, "hf-chat") == {
        "messages": [{"role": "system", "content": "You help the support team."}, *expected]
    }
    assert [m["role"] for m in row_for(RAGGED, "bedrock-nova")["messages"]] == ["user", "assistant"]
    assert row_for(RAGGED, "openai")["messages"][1] == {"role": "assistant", "content": "How can I help?"}


def test_llama_renders_the_llama3_template_into_the_prompt():
    assert to_row(EDITED, "bedrock-llama") == {
        "prompt": (
            "<|begin_of_text|>"
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello! What do you need?<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nDraft the release note.<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n"
        ),
        "completion": "Release 1.2 is out: faster exports.",
    }


def test_examples_that_a_target_cannot_express_have_no_row():
    for target in ("bedrock-nova", "bedrock-claude", "bedrock-llama", "hf-chat"):
        assert to_row(NO_USER, target) is None, target
    assert row_for(NO_USER, "openai")["messages"][-1]["content"] == "Digest: all green."
    blank = Example(id="blank", messages=UNEDITED.messages, output="   ")
    assert all(to_row(blank, target) is None for target in TARGETS)


def test_unknown_target_names_the_valid_ones():
    with pytest.raises(InvalidInput) as error:
        to_row(EDITED, "vertex")
    for name in TARGETS:
        assert name in str(error.value)


def test_a_message_role_outside_the_conversation_is_rejected():
    odd = Example(id="odd", messages=({"role": "system", "content": "x"},), output="y")
    with pytest.raises(InvalidInput, match="odd"):
        to_row(odd, "openai")


def _family_model(family):
    return next(m.id for m in CATALOG.models.values() if m.family == family)


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("with_model", [False, True])
def test_every_targets_rows_validate_cleanly(target, with_model):
    examples = [EDITED, UNEDITED, RAGGED, BLANK_TURNS] * 5
    rows = [row for example in examples if (row := to_row(example, target)) is not None]
    model = _family_model(TARGETS[target].family) if with_model else None
    report = validate_lines([json.dumps(row) for row in rows], target=target, model=model, catalog=CATALOG)
    assert report.errors == [] and report.ok, report.errors
    assert report.valid_examples == len(rows) == (10 if target == "openai-dpo" else 20)
    assert report.token_stats is not None
    assert report.token_stats.exact is (with_model and target.startswith("openai"))
    assert report.token_stats.total == sum(
        count_row_tokens(row, target=target, model=model, catalog=CATALOG) for row in rows
    )
