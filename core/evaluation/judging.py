"""Asking a judge model which of two answers is better, in both orders, and reading its answer.

The rubric is a template the team can edit: `core/evaluation/rubric.md` is the
bundled one, and `DATA_DIR/evaluation/rubric.md`, when it exists, replaces it
(`load_rubric`). Its placeholders, `{conversation}`, `{answer_a}` and
`{answer_b}`, are each replaced once, in one pass over the template, so an
answer that happens to contain `{answer_b}` stays as written. HTML comments
are dropped before the judge reads it.

Whatever the rubric says, the prompt ends with `FORMAT`: the judge's last line
must be `WINNER: A`, `WINNER: B` or `WINNER: TIE` (`parse_answer` reads it,
tolerating markdown around it). An answer without such a last line is read as
a tie and counted as unreadable, never guessed at.

Every pair is asked twice (`PairOrder`): baseline first, then candidate first,
because judges favour a position; `core.evaluation.judge` counts a pair whose
two orders disagree as a tie. Calibration asks the same rubric about a user's
final text beside the draft they edited, in both orders (`CalibrationOrder`);
the user's pick is the position of their final text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path

from core.errors import InvalidInput
from core.evaluation.judge import Pick
from core.inference import ChatRequest, ChatResult, MessageRole, Target
from core.vocabulary import ChatOnlyProvider, ChatProvider

RUBRIC_NAME = "rubric.md"
PLACEHOLDERS = ("conversation", "answer_a", "answer_b")
JUDGE_MAX_TOKENS = 1024  # room to reason before the verdict line
MAX_RUBRIC_CHARS = 50_000
FORMAT = (
    "\n\nThink it through first if you need to. Then end your reply with exactly one line, the last one: "
    "`WINNER: A` if answer A is better, `WINNER: B` if answer B is better, or `WINNER: TIE`."
)

_COMMENT = re.compile(r"<!--.*?-->\n?", re.S)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_VERDICT = re.compile(
    r"[\s*_#>`\-]*winner[\s*_`]*[:=][\s*_`\"'\[(]*(?:answer\s+)?(a|b|tie)[\s*_`\"'\].)!]*",
    re.IGNORECASE,
)
_PICKS = {"a": Pick.FIRST, "b": Pick.SECOND, "tie": Pick.TIE}

# Recent Claude models refuse sampling parameters other than their defaults (HTTP 400): ask them at their
# default temperature; every other provider decodes greedily, so the same pair gets the same answer.
_DEFAULT_TEMPERATURE: dict[ChatProvider, float] = {ChatOnlyProvider.ANTHROPIC: 1.0}


class PairOrder(StrEnum):
    """In which order a judge sees a candidate's and a baseline's answers."""

    BASELINE_FIRST = "baseline_first"
    CANDIDATE_FIRST = "candidate_first"


class CalibrationOrder(StrEnum):
    """In which order a judge sees a user's final text and the draft they edited."""

    FINAL_FIRST = "final_first"
    DRAFT_FIRST = "draft_first"


USER_PICK: dict[CalibrationOrder, Pick] = {
    CalibrationOrder.FINAL_FIRST: Pick.FIRST,
    CalibrationOrder.DRAFT_FIRST: Pick.SECOND,
}


@dataclass(frozen=True)
class Rubric:
    """The rubric template, checked, and where it came from (a file path, or `bundled`)."""

    text: str
    source: str


@dataclass(frozen=True)
class JudgeAnswer:
    """What a judge said: its pick by position, and whether its last line could be read (else a tie)."""

    pick: Pick
    readable: bool


def steady_temperature(provider: ChatProvider) -> float:
    """The temperature that keeps a provider's answers as repeatable as it allows."""
    return _DEFAULT_TEMPERATURE.get(provider, 0.0)


# The rubric ----------------------------------------------------------------------------------------


def rubric_path(data_dir: Path) -> Path:
    """Where a team's own rubric lives: DATA_DIR/evaluation/rubric.md."""
    return data_dir / "evaluation" / RUBRIC_NAME


def load_rubric(data_dir: Path) -> Rubric:
    """The team's rubric when DATA_DIR/evaluation/rubric.md exists, else the bundled one; checked either way."""
    path = rubric_path(data_dir)
    if path.is_file():
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(
                f"the rubric {path} cannot be read: {exc.strerror}.",
                hint="Fix its permissions, or remove it to use the bundled rubric.",
                path=str(path),
            ) from None
        return check_rubric(_decoded(raw, path), source=str(path))
    bundled = resources.files("core.evaluation").joinpath(RUBRIC_NAME).read_text(encoding="utf-8")
    return check_rubric(bundled, source="bundled")


def _decoded(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"the rubric {path} is not UTF-8 text (byte {exc.start + 1} cannot be read).",
            hint="Save it as UTF-8 text.",
            path=str(path),
        ) from None


def check_rubric(text: str, *, source: str) -> Rubric:
    """The rubric without its comments; InvalidInput naming the line of an unknown placeholder or the missing one."""
    if len(text) > MAX_RUBRIC_CHARS:
        raise InvalidInput(
            f"the rubric ({source}) is {len(text):,} characters; at most {MAX_RUBRIC_CHARS:,} are read.",
            hint="Shorten it: the judge reads it once for every answer it compares.",
            path=source,
        )
    body = _COMMENT.sub("", text).strip()
    for number, line in enumerate(body.splitlines(), start=1):
        unknown = [name for name in _PLACEHOLDER.findall(line) if name not in PLACEHOLDERS]
        if unknown:
            raise InvalidInput(
                f"line {number} of the rubric ({source}, comments left out) names {{{unknown[0]}}}, which is no "
                "placeholder.",
                hint=f"Use {', '.join('{' + name + '}' for name in PLACEHOLDERS)}; write other braces without a "
                "word between them.",
                path=source,
                line=number,
            )
    missing = [name for name in PLACEHOLDERS if "{" + name + "}" not in body]
    if missing:
        raise InvalidInput(
            f"the rubric ({source}) never says {{{missing[0]}}}, so the judge would not see it.",
            hint=f"Put each of {', '.join('{' + name + '}' for name in PLACEHOLDERS)} where its text belongs.",
            path=source,
        )
    return Rubric(text=body, source=source)


def render_prompt(rubric: Rubric, *, conversation: str, answer_a: str, answer_b: str) -> str:
    """The rubric with its placeholders filled in one pass, then the verdict format."""
    values = {"conversation": conversation, "answer_a": answer_a, "answer_b": answer_b}
    filled = _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), rubric.text)
    return filled + FORMAT


def conversation_text(messages: Sequence[Mapping[str, str]], *, system: str | None) -> str:
    """`SYSTEM: ...`, then `USER: ...` / `ASSISTANT: ...` per turn, a blank line between them."""
    turns = [f"SYSTEM: {system}"] if system else []
    turns += [f"{str(message.get('role', 'user')).upper()}: {message.get('content', '')}" for message in messages]
    return "\n\n".join(turns)


# Asking ----------------------------------------------------------------------------------------------


def judge_request(rubric: Rubric, judge: Target, *, conversation: str, answer_a: str, answer_b: str) -> ChatRequest:
    """One question to the judge: the filled rubric as the user's message."""
    prompt = render_prompt(rubric, conversation=conversation, answer_a=answer_a, answer_b=answer_b)
    return ChatRequest.build(
        [{"role": MessageRole.USER, "content": prompt}],
        max_new_tokens=JUDGE_MAX_TOKENS,
        temperature=steady_temperature(judge.provider),
    )


Submit = Callable[[Target, ChatRequest], Future[ChatResult]]  # queues one call (the engine's `submit`)


def ask_pair(
    submit: Submit, judge: Target, rubric: Rubric, *, conversation: str, baseline: str, candidate: str
) -> dict[PairOrder, Future[ChatResult]]:
    """Ask the judge about one pair in both orders; the answers arrive as futures."""
    shown = {PairOrder.BASELINE_FIRST: (baseline, candidate), PairOrder.CANDIDATE_FIRST: (candidate, baseline)}
    return {
        order: submit(judge, judge_request(rubric, judge, conversation=conversation, answer_a=a, answer_b=b))
        for order, (a, b) in shown.items()
    }


def ask_calibration(
    submit: Submit, judge: Target, rubric: Rubric, *, conversation: str, final: str, draft: str
) -> dict[CalibrationOrder, Future[ChatResult]]:
    """Ask the judge to choose between a user's final text and the draft they edited, in both orders."""
    shown = {CalibrationOrder.FINAL_FIRST: (final, draft), CalibrationOrder.DRAFT_FIRST: (draft, final)}
    return {
        order: submit(judge, judge_request(rubric, judge, conversation=conversation, answer_a=a, answer_b=b))
        for order, (a, b) in shown.items()
    }


# Reading the answer -------------------------------------------------------------------------------------


def parse_answer(text: str) -> JudgeAnswer:
    """The pick on the answer's last non-empty line (`WINNER: A|B|TIE`); anything else is an unreadable tie."""
    lines = [line for line in text.splitlines() if line.strip()]
    match = _VERDICT.fullmatch(lines[-1].strip()) if lines else None
    if match is None:
        return JudgeAnswer(pick=Pick.TIE, readable=False)
    return JudgeAnswer(pick=_PICKS[match.group(1).lower()], readable=True)
