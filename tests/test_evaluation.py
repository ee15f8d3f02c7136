"""Offline evaluations end to end: two versions of the tiny local model answer a dataset version's held-out
examples, an Anthropic-compatible judge on 127.0.0.1 compares every pair in both orders, and the summary is
what `core.evaluation`'s statistics say on the same inputs; through the terminal, Slack and MCP too.

The judge is scripted and deterministic: it prefers the longer answer, except that it always says A (a
position bias, so the two orders disagree: a tie) when the conversation's question number is a multiple of
5, and writes no verdict line (unreadable: a tie) when it is a multiple of 7.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient
from transformers import AutoTokenizer

from core import inference, registry
from core.data import datasets, feedback
from core.data.datasets import Recipe
from core.errors import Conflict, FinetuneError, InvalidInput, NotFound, PermissionDenied
from core.evaluation import (
    EvaluationRunner,
    JudgedPair,
    Pick,
    calibrate_judge,
    compare_means,
    get_evaluation,
    head_to_head,
    request_evaluation,
    run_evaluation,
    run_queued_evaluations,
)
from core.evaluation import db as evaluation_db
from core.evaluation.judging import (
    FORMAT,
    check_rubric,
    load_rubric,
    parse_answer,
    render_prompt,
    rubric_path,
)
from core.platform import outbox
from core.platform.actors import SCHEDULER, Actor, cli_actor, os_user
from core.platform.scheduler import run_evaluations
from core.platform.timeutil import iso
from core.providers.local.tiny import build_tiny_model
from core.registry.facts import evaluation_summary
from core.vocabulary import EvaluationState, Face, Provider, Role
from tests.chat_fakes import ANTHROPIC_KEY, OPENAI_KEY, ChatFake, Seen, start_chat_fake
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, slash_body, svc, wait_until
from tests.feedback_samples import make_events
from tests.test_local_inference import TEXTS, make_adapter
from tests.test_registry_mcp import session

OPERATOR = Actor("olga", Face.CLI, role=Role.OPERATOR)
TOKENS = 10  # each model's longest answer: enough to differ, quick on a CPU
CALL_USD = 0.003  # one judge answer: 1,000 input and 100 output tokens at Claude Sonnet 5.5's $2 / $10 per 1M
CHANNEL = "CEVAL"

_ANSWERS = re.compile(r"<answer_a>\n(.*?)\n</answer_a>.*?<answer_b>\n(.*?)\n</answer_b>", re.S)
_QUESTION = re.compile(r"Question (\d+):")


# The judge ---------------------------------------------------------------------------------------------------


def scripted_pick(question: int, first: str, second: str) -> str:
    """What the scripted judge answers, by position: A, B, TIE, or None for an answer without a verdict."""
    if question % 5 == 0:
        return "A"
    if question % 7 == 0:
        return "None"
    return "A" if len(first) > len(second) else "B" if len(second) > len(first) else "TIE"


def judge_reply(prompt: str) -> str:
    first, second = _ANSWERS.search(prompt).groups()  # type: ignore[union-attr]
    pick = scripted_pick(int(_QUESTION.search(prompt).group(1)), first, second)  # type: ignore[union-attr]
    if pick == "None":
        return "Both replies have merit; I cannot choose between them."
    return f"The {'first' if pick == 'A' else 'second'} reply reads better.\n\n**WINNER: {pick}**"


def as_pick(letter: str) -> Pick:
    return {"A": Pick.FIRST, "B": Pick.SECOND}.get(letter, Pick.TIE)


@pytest.fixture(scope="module")
def judge() -> Iterator[ChatFake]:
    fake = start_chat_fake("anthropic")
    fake.thinking = False

    def message(seen: Seen) -> dict:
        reply = ChatFake._message(fake, seen)
        reply["content"][-1]["text"] = judge_reply(seen.body["messages"][0]["content"])
        return reply

    fake._message = message  # type: ignore[method-assign]
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def fresh_judge(judge: ChatFake) -> Iterator[ChatFake]:
    judge.usage = (1000, 100)
    with judge.lock:
        judge.requests.clear()
        judge.failures.clear()
    yield judge


def prompts(judge: ChatFake) -> list[str]:
    return [seen.body["messages"][0]["content"] for seen in judge.chats()]


# The models and the data ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Models:
    base: Path
    first: Path
    second: Path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Models:
    root = tmp_path_factory.mktemp("models")
    base = build_tiny_model(root / "base", TEXTS)
    adapters = [make_adapter(base, root / f"run-{seed}" / "adapter", seed=seed) for seed in (1, 2)]
    for adapter in adapters:
        AutoTokenizer.from_pretrained(base).save_pretrained(adapter)
    return Models(base, *adapters)


def judged_settings(path: Path, judge: ChatFake, **more):
    return make_settings(path, anthropic_api_key=ANTHROPIC_KEY, anthropic_base_url=judge.url, **more)


@pytest.fixture(scope="module")
def engine(tmp_path_factory, judge):
    engine = inference.build_engine(judged_settings(tmp_path_factory.mktemp("engine"), judge))
    yield engine
    engine.close()


@pytest.fixture
def settings(tmp_path, judge):
    return judged_settings(tmp_path, judge)


@pytest.fixture
def services(store, settings):
    return svc(store, settings)


def build(store, *, split=(0.6, 0.1, 0.3), name: str = "support") -> str:
    return datasets.build_dataset(store, name=name, actor=cli_actor(), recipe=Recipe(split=split)).id


def make_lab(services, models: Models) -> str:
    """support@1 (about 13 test examples, a third of them edited); support:v1 and support:v2, two adapters of
    the tiny model trained on it; `staging` serves v1. Returns the dataset version."""
    store = services.store
    feedback.ingest_batch(store, make_events(60), actor=cli_actor())
    version = build(store)
    with store.write():
        for adapter in (models.first, models.second):
            registry.register_version(
                store, name="support", provider="local", provider_model_id=str(adapter), job_id=None,
                dataset_version_id=version, base_model=str(models.base), metrics={}, cost_usd=None,
                actor=SCHEDULER, reason="trained", now=iso(),
            )  # fmt: skip
    registry.request_deploy(services, actor=OPERATOR, name="support", version=1, alias="staging")
    return version


@pytest.fixture
def lab(services, models) -> str:
    return make_lab(services, models)


def evaluate(services, engine, **options):
    arguments = {"candidate": "support:v2", "baseline": "staging", "max_new_tokens": TOKENS, **options}
    return run_evaluation(services, actor=OPERATOR, engine=engine, **arguments)


def rows_by_example(store, evaluation_id: str) -> dict[str, list[evaluation_db.ResultRow]]:
    found: dict[str, list[evaluation_db.ResultRow]] = {}
    for row in evaluation_db.results(store, evaluation_id):
        found.setdefault(row.feedback_id, []).append(row)
    return found


def question(example) -> int:
    return int(_QUESTION.search(example.messages[0]["content"]).group(1))  # type: ignore[union-attr]


# End to end ----------------------------------------------------------------------------------------------------


def test_a_run_stores_every_example_asks_both_orders_and_sums_up_as_the_statistics_do(
    services, engine, lab, judge, models
):
    progress: list[tuple[int, int]] = []
    done = evaluate(services, engine, on_progress=lambda n, total: progress.append((n, total)))
    assert done.status is EvaluationState.SUCCEEDED and done.status_reason is None, done.status_reason
    examples = list(datasets.examples(services.store, lab, split="test"))
    assert done.split == "test" and done.total == done.done == len(examples) >= 10
    assert progress == [(n, len(examples)) for n in range(1, len(examples) + 1)]
    assert (done.candidate_ref, done.baseline_ref, done.baseline_label) == ("support:v2", "support:v1",
                                                                           "staging (support:v1)")  # fmt: skip

    # Every example is stored whole: both outputs with their scores, the judge in both orders, calibration
    # where the user edited the draft; the outputs are what the models answer.
    stored = rows_by_example(services.store, done.id)
    assert set(stored) == {example.id for example in examples}
    first = examples[0]
    again = engine.generate(
        inference.Target(Provider.LOCAL, str(models.second), str(models.base), "support:v2"), list(first.messages),
        temperature=0, max_new_tokens=TOKENS,
    )  # fmt: skip
    [candidate_row] = [r for r in stored[first.id] if (r.metric, r.arm) == ("output", "candidate")]
    assert candidate_row.output == again.text and candidate_row.detail["scores"]["output_chars"] == len(again.text)
    edited = [example for example in examples if example.edited]
    assert 0 < len(edited) < len(examples)
    for example in examples:
        kinds = sorted((r.metric, r.arm) for r in stored[example.id])
        expected = [("judgment", "baseline_first"), ("judgment", "candidate_first"), ("output", "baseline"),
                    ("output", "candidate")]  # fmt: skip
        if example.edited:
            expected = [("calibration", "draft_first"), ("calibration", "final_first"), *expected]
        assert kinds == expected, example.id

    # Both orders were asked for every pair, and the final text against the draft for every edited example.
    asked = [_ANSWERS.search(p).groups() for p in prompts(judge)]  # type: ignore[union-attr]
    assert len(asked) == 2 * len(examples) + 2 * len(edited)
    pairs, calibration_judge, calibration_users, unreadable = [], [], [], 0
    for example in examples:
        outputs = {r.arm: r.output or "" for r in stored[example.id] if r.metric == "output"}
        base, cand = outputs["baseline"], outputs["candidate"]
        assert (base, cand) in asked and (cand, base) in asked
        n = question(example)
        picks = [scripted_pick(n, base, cand), scripted_pick(n, cand, base)]
        unreadable += picks.count("None")
        pairs.append(JudgedPair(baseline_first=as_pick(picks[0]), candidate_first=as_pick(picks[1])))
        if example.final is not None and example.edited:
            assert (example.final, example.output) in asked and (example.output, example.final) in asked
            calibration_judge += [as_pick(scripted_pick(n, example.final, example.output)),
                                  as_pick(scripted_pick(n, example.output, example.final))]  # fmt: skip
            calibration_users += [Pick.FIRST, Pick.SECOND]

    # The summary is exactly what the statistics give on the same picks and scores.
    summary = done.summary
    assert summary is not None and summary.examples == len(examples) and summary.rubric == "bundled"
    expected_h2h = head_to_head(pairs)
    assert summary.judge is not None and summary.judge.head_to_head == expected_h2h
    assert expected_h2h.ties >= sum(question(e) % 5 == 0 for e in examples) > 0  # position bias: ties
    assert summary.judge.unreadable == unreadable > 0
    assert summary.calibration.result == calibrate_judge(calibration_judge, calibration_users)
    acceptance = {arm: [r.value or 0.0 for rows in stored.values() for r in rows if (r.metric, r.arm) == ("output", arm)]
                  for arm in ("baseline", "candidate")}  # fmt: skip
    welch = compare_means(acceptance["baseline"], acceptance["candidate"])
    assert summary.acceptance is not None and summary.acceptance.p_value == welch.p_value
    assert summary.decision is not None and summary.decision.reason

    # Spend: every judge answer at the catalog's price; local answers are free.
    assert done.cost_usd == pytest.approx(len(asked) * CALL_USD)
    assert summary.judge.cost_usd + summary.calibration.cost_usd == pytest.approx(done.cost_usd)
    assert summary.candidate.cost_usd == 0 and summary.candidate.latency is not None

    # The headline, as a later deploy approval of the candidate shows it.
    rate, interval = expected_h2h.win_rate, expected_h2h.interval
    assert f"{rate:.0%} (CI {interval.low * 100:.0f}-{interval.high * 100:.0f}%) of {len(examples)} pairs" in (
        done.headline or ""
    )
    assert done.headline.startswith("support:v2 ") and "staging (support:v1)" in done.headline
    kappa = summary.calibration.result.kappa
    accuracy = summary.calibration.result.accuracy
    assert done.headline.endswith(f"judge agrees with users {accuracy:.0%} (kappa {kappa:.2f})")
    change = registry.request_deploy(services, actor=OPERATOR, name="support", version=2, alias="production")
    assert change.approval is not None and change.approval.facts["Evaluation"] == done.headline

    # Slack hears of it in one message: the outbox rows share one key, the last carries the headline.
    outbox.collapse(services.store)  # what delivery does first: only a message's newest update goes out
    [row] = [m for m in outbox.due(services.store, limit=200) if m.message_key == f"evaluation:{done.id}"]
    assert row.event.headline == done.headline and done.headline in row.text  # type: ignore[union-attr]


def test_a_cost_cap_stops_cleanly_and_keeps_what_was_measured(services, engine, lab, judge):
    cap = 0.05
    stopped = evaluate(services, engine, max_cost_usd=cap)
    assert stopped.status is EvaluationState.STOPPED and stopped.status_reason.startswith("cost cap: $")
    assert 0 < stopped.done < stopped.total
    assert cap - 4 * CALL_USD < stopped.cost_usd <= cap  # every judge answer costs the same here: the cap holds
    stored = rows_by_example(services.store, stopped.id)
    assert len(stored) == stopped.done and all(len(rows) in (4, 6) for rows in stored.values())
    assert len(judge.chats()) == sum(r.metric != "output" for rows in stored.values() for r in rows)  # nothing more
    assert stopped.summary is not None and stopped.summary.examples == stopped.done
    spent = stopped.summary.judge.cost_usd + stopped.summary.calibration.cost_usd
    assert spent == pytest.approx(stopped.cost_usd)
    assert stopped.ok and stopped.finished_at  # a cap that was kept is no failure
    assert evaluation_summary(services.store, "support:v2") is None  # deploy approvals show finished ones only


def test_an_answer_of_unknown_cost_stops_a_capped_run(tmp_path, store, models):
    fake = start_chat_fake("openai")
    fake.usage = None  # an OpenAI-compatible server that reports no usage: its answers' cost cannot be told
    settings = make_settings(tmp_path, openai_api_key=OPENAI_KEY, openai_base_url=f"{fake.url}/v1")
    services = svc(store, settings)
    make_lab(services, models)
    engine = inference.build_engine(settings)
    try:
        stopped = run_evaluation(
            services, candidate="support:v2", baseline="staging", judge="openai:gpt-4.1-mini", max_cost_usd=1.0,
            max_new_tokens=TOKENS, actor=OPERATOR, engine=engine,
        )  # fmt: skip
    finally:
        engine.close()
        fake.stop()
    assert stopped.status is EvaluationState.STOPPED and stopped.done == 1
    assert "cost is unknown" in stopped.status_reason and stopped.unpriced > 0  # type: ignore[operator]
    assert stopped.summary is not None and stopped.summary.judge.unreadable == 2  # type: ignore[union-attr]


def test_a_failure_ends_the_evaluation_with_its_reason(services, engine, lab, judge):
    judge.fail(400, times=200, message="prompt is too long")
    failed = evaluate(services, engine, limit=2)
    assert failed.status is EvaluationState.FAILED and not failed.ok
    assert "prompt is too long" in failed.status_reason and "HTTP 400" in failed.status_reason
    assert failed.done == 0 and failed.finished_at is not None


def test_without_a_test_split_the_validation_split_is_measured_and_it_says_so(services, engine, lab):
    version = build(services.store, split=(0.8, 0.2, 0.0), name="nosplit")
    done = evaluate(services, engine, dataset_version=version, limit=3)
    assert done.split == "validation" and done.status is EvaluationState.SUCCEEDED
    assert done.summary is not None and "no test split" in (done.summary.split_note or "")
    with pytest.raises(Conflict, match="no test or validation examples"):
        evaluate(services, engine, dataset_version=build(services.store, split=(1.0, 0.0, 0.0), name="alltrain"))


def test_a_queued_evaluation_runs_in_the_serve_runner_and_resumes_after_a_crash(services, engine, lab, judge):
    queued = request_evaluation(services, candidate="support:v2", baseline="support@staging", limit=4,
                                max_new_tokens=TOKENS, actor=OPERATOR, key="agent-1")  # fmt: skip
    assert queued.status is EvaluationState.QUEUED and queued.total == 4 and queued.summary is None
    assert request_evaluation(services, candidate="x", baseline="y", actor=OPERATOR, key="agent-1").id == queued.id

    # A runner that died after two examples left it running; serve takes it over and measures only the rest.
    store = services.store
    with store.write():
        row = evaluation_db.evaluation(store, queued.id)
        assert row is not None
        evaluation_db.claim(store, queued.id, runner="elsewhere:1", expected=row, now="2000-01-01T00:00:00.000000Z")
    half = evaluate(services, engine, limit=2)  # the same first two examples, measured by another evaluation
    with store.write():
        evaluation_db.insert_results(store, queued.id, evaluation_db.results(store, half.id))
    judge.requests.clear()
    runner = EvaluationRunner(engine)
    run_evaluations(services, runner)
    runner.join(60)
    finished = get_evaluation(store, queued.id)
    assert finished.status is EvaluationState.SUCCEEDED and finished.done == 4 and finished.summary.examples == 4  # type: ignore[union-attr]
    first_four = list(datasets.examples(store, lab, split="test"))[:4]
    calls = [4 if example.edited else 2 for example in first_four]
    assert len(judge.chats()) == sum(calls[2:])  # only the two examples left were judged
    assert finished.cost_usd == pytest.approx(sum(calls) * CALL_USD)  # what the first runner spent counts too
    assert store.scalar("SELECT detail FROM scheduler_runs WHERE job_id = 'evaluations'")


# Bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"candidate": ""}, InvalidInput, "`candidate`"),
        ({"candidate": "support:v9"}, NotFound, "`candidate`"),
        ({"candidate": "line\nbreak"}, InvalidInput, "`candidate`"),
        ({"baseline": "support:v2"}, InvalidInput, "`baseline`"),
        ({"baseline": "nosuchalias"}, NotFound, "`baseline`"),
        ({"baseline": "support@nosuchalias"}, NotFound, "`baseline`"),
        ({"judge": "anthropic:"}, InvalidInput, "`judge`"),
        ({"judge": "openai:gpt-4.1-mini"}, FinetuneError, "OPENAI_API_KEY"),
        ({"dataset_version": "nope@3"}, NotFound, "`dataset_version`"),
        ({"limit": 0}, InvalidInput, "`limit`"),
        ({"limit": True}, InvalidInput, "`limit`"),
        ({"max_cost_usd": float("nan")}, InvalidInput, "`max_cost_usd`"),
        ({"max_cost_usd": -1}, InvalidInput, "`max_cost_usd`"),
        ({"max_cost_usd": 5, "judge": "anthropic:claude-unpriced-1"}, InvalidInput, "`max_cost_usd`"),
        ({"max_new_tokens": 0}, InvalidInput, "`max_new_tokens`"),
    ],
)
def test_bad_arguments_are_refused_by_name_before_anything_is_stored(services, engine, lab, options, error, named):
    with pytest.raises(error) as refused:
        evaluate(services, engine, **options)
    assert named in refused.value.message and refused.value.hint
    assert services.store.scalar("SELECT count(*) FROM evaluations") == 0


def test_a_base_model_candidate_needs_a_dataset_and_viewers_may_not_evaluate(services, engine, lab):
    with pytest.raises(InvalidInput, match="`dataset_version` is needed"):
        evaluate(services, engine, candidate="local:tiny", baseline="support:v1")
    with pytest.raises(PermissionDenied, match="needs the operator role"):
        run_evaluation(services, candidate="support:v2", baseline="staging", actor=Actor("v", Face.CLI), engine=engine)


# The rubric and the judge's answers --------------------------------------------------------------------------


def test_the_teams_rubric_replaces_the_bundled_one_and_is_checked(services, engine, lab, judge):
    path = rubric_path(services.data_dir)
    path.parent.mkdir(parents=True)
    path.write_text("<!-- ours -->\nPrefer the kinder reply.\n{conversation}\n<answer_a>\n{answer_a}\n</answer_a>\n"
                    "<answer_b>\n{answer_b}\n</answer_b>\n")  # fmt: skip
    done = evaluate(services, engine, limit=1)
    assert done.summary is not None and done.summary.rubric == str(path)
    assert all(p.startswith("Prefer the kinder reply.") and p.endswith(FORMAT) for p in prompts(judge))
    path.write_text("Compare.\n{conversation}\n{answer_a} or {answer_c}\n{answer_b}\n")
    with pytest.raises(InvalidInput, match=r"line 3 of the rubric .* names \{answer_c\}"):
        load_rubric(services.data_dir)
    path.write_text("Compare {conversation} and {answer_a}.")
    with pytest.raises(InvalidInput, match=r"never says \{answer_b\}"):
        load_rubric(services.data_dir)
    path.write_bytes(b"\xff\xfe{conversation}")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        load_rubric(services.data_dir)
    failed = evaluate(services, engine, limit=1)  # a rubric broken after the request fails the run, saying why
    assert failed.status is EvaluationState.FAILED and "not UTF-8" in failed.status_reason


def test_placeholders_are_filled_once_so_an_answer_cannot_rewrite_the_prompt():
    rubric = check_rubric("{conversation}|{answer_a}|{answer_b}", source="test")
    prompt = render_prompt(rubric, conversation="Q {answer_b}", answer_a="{answer_b}", answer_b='{"json": 1}')
    assert prompt == 'Q {answer_b}|{answer_b}|{"json": 1}' + FORMAT


@pytest.mark.parametrize(
    ("answer", "pick", "readable"),
    [
        ("Reasons.\nWINNER: A", Pick.FIRST, True),
        ("Reasons.\n\n**Winner: b**\n", Pick.SECOND, True),
        ("winner: TIE.", Pick.TIE, True),
        ("> WINNER: `Answer A`", Pick.FIRST, True),
        ("WINNER: A\nActually, on reflection, B is better.", Pick.TIE, False),
        ("WINNER: C", Pick.TIE, False),
        ("", Pick.TIE, False),
    ],
)
def test_the_verdict_line_is_read_strictly(answer, pick, readable):
    assert (parse_answer(answer).pick, parse_answer(answer).readable) == (pick, readable)


@given(st.text(), st.sampled_from(["A", "B", "TIE", "a", "b", "tie"]), st.sampled_from(["", "**", "`"]))
def test_any_reasoning_followed_by_a_verdict_line_is_read(reasoning, letter, mark):
    read = parse_answer(f"{reasoning}\n{mark}WINNER: {letter}{mark}\n")
    assert read.readable and read.pick is {"a": Pick.FIRST, "b": Pick.SECOND, "tie": Pick.TIE}[letter.lower()]


@given(st.text())
def test_any_answer_is_a_pick_and_never_an_error(text):
    read = parse_answer(text)
    assert read.pick in set(Pick) and (read.readable or read.pick is Pick.TIE)


# Faces -----------------------------------------------------------------------------------------------------


def test_the_terminal_runs_in_the_foreground_and_shows_and_lists(cli, monkeypatch, settings, lab, judge):
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", judge.url)
    code, out, err = cli("eval", "run", "support:v2", "--baseline", "staging", "--limit", "3", "--max-tokens", "8",
                         "--json")  # fmt: skip
    assert code == 0, err
    done = json.loads(out)
    assert done["status"] == "succeeded" and done["done"] == 3 and done["summary"]["headline"]
    code, out, _ = cli("eval", "show", done["id"])
    assert code == 0 and done["summary"]["headline"] in " ".join(out.split()) and "rouge_l" in out
    code, out, _ = cli("eval")
    assert code == 0 and done["id"] in out
    code, _, err = cli("eval", "run", "support:v2", "--baseline", "staging", "--max-cost", "nan")
    assert code == 2 and "--max-cost" in err
    code, _, err = cli("eval", "support:v2", "--baseline", "support:v2")
    assert code == 1 and "`baseline`" in err
    code, _, err = cli("eval", "show", "ev_nope")
    assert code == 1 and "no evaluation 'ev_nope'" in err


@pytest.fixture
def slack_settings(tmp_path, judge, fake_slack):
    return judged_settings(
        tmp_path, judge, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url,
        slack_channel=CHANNEL, operators=["U123"], outbox_seconds=1,
    )  # fmt: skip


def test_slack_queues_it_and_serve_runs_it_editing_one_message(slack_settings, store, models, engine, fake_slack):
    from bot.serve import build_app

    services = svc(store, slack_settings)
    make_lab(services, models)
    body = slash_body(
        "eval support:v2 --baseline staging --limit 3 --max-tokens 8", response_url=fake_slack.response_url()
    )
    with TestClient(build_app(services), base_url="http://127.0.0.1") as client:
        assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
        [answer] = wait_until(lambda: fake_slack.responses(), what="the answer to /finetune eval")
        shown = json.dumps(answer["blocks"])
        assert "queued" in shown and "finetune serve" in shown
        [queued] = evaluation_db.recent_evaluations(store, limit=1)
        assert queued["created_by"] == "slack:U123"
        [posted] = wait_until(lambda: [p for p in fake_slack.posted if queued["id"] in p["text"]], what="the post")
        run_queued_evaluations(services, engine=engine)
        finished = wait_until(lambda: get_evaluation(store, queued["id"]).headline, timeout=30, what="the result")
        edits = wait_until(
            lambda: [u for u in fake_slack.method_calls("chat.update") if u.get("ts") == posted["ts"]
                     and finished in json.dumps(u["blocks"])],
            what="the message edited with the headline",
        )  # fmt: skip
    assert edits and len([p for p in fake_slack.posted if queued["id"] in p["text"]]) == 1


def test_an_agent_requests_an_evaluation_and_reads_it_back(tmp_path, store, settings, models, engine, judge):
    services = svc(store, settings)
    make_lab(services, models)
    arguments = {"candidate": "support:v2", "baseline": "staging", "limit": 2, "max_new_tokens": 8}
    _, [asked, unknown, wrong] = session(
        services,
        ("evaluate_model", arguments),
        ("evaluate_model", {**arguments, "epochs": 2}),
        ("evaluate_model", {**arguments, "max_cost_usd": -1}),
    )
    assert not asked.is_error, asked.content[0].text
    assert asked.structured_content["status"] == "queued"
    assert unknown.is_error and "epochs" in unknown.content[0].text
    assert wrong.is_error and "max_cost_usd" in wrong.content[0].text
    run_queued_evaluations(services, engine=engine)
    _, [read] = session(services, ("get_evaluation", {"evaluation_id": asked.structured_content["id"]}))
    assert read.structured_content["status"] == "succeeded" and read.structured_content["summary"]["headline"]

    viewer = svc(store, judged_settings(tmp_path, judge, viewers=[f"os:{os_user()}"]))
    _, [refused] = session(viewer, ("evaluate_model", arguments))
    assert refused.is_error and "needs the operator role" in refused.content[0].text
