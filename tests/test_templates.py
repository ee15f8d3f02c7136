"""Prompt templates: every template's numbers and two templates compared, checked against the raw feedback with
scipy and statsmodels called here directly; through the terminal, Slack (a signed slash command) and MCP.

The feedback is made relative to today (the commands read windows ending today): agent `support` served
template greet-v1 from 20 to 11 days ago and greet-v2 from 10 days ago to yesterday, with greet-v2's drafts edited
less often; agent `sales` served pitch-a, and some of its events name no template.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from statistics import mean

import anyio
import pytest
from mcp.client import Client
from scipy import stats as scipy_stats
from starlette.testclient import TestClient
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from core.analytics import TemplateMetric, compare_templates, list_templates
from core.data import feedback
from core.errors import InvalidInput, NotFound
from core.evaluation import Verdict
from core.platform.actors import cli_actor
from core.services import build_services
from mcp_server.server import build_server
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, slash_body, wait_until

WORDS = ["thanks", "for", "reaching", "out", "your", "order", "ships", "today", "and", "the", "refund", "is", "on",
         "its", "way", "to", "you"]  # fmt: skip


def _day(days_ago: int, hour: int) -> str:
    moment = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0) - timedelta(days=days_ago)
    return moment.isoformat().replace("+00:00", "Z")


def _event(rng: random.Random, *, agent: str, template: str | None, days_ago: int, number: int, edit_rate: float):
    draft = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 30)))
    event: dict[str, object] = {
        "id": f"{agent}-{template}-{days_ago}-{number}", "agent": agent,
        "messages": [{"role": "user", "content": f"Question {number} of day {days_ago}"}], "output": draft,
        "created_at": _day(days_ago, 8 + number % 12),
    }  # fmt: skip
    if template is not None:
        event["template"] = template
    if rng.random() < edit_rate:
        words = draft.split()
        cut = rng.randint(1, len(words) // 2)
        event["final"] = " ".join([*words[:-cut], "Kind regards."])
    if rng.random() < 0.7:
        event["rating"] = rng.choice([2, 3, 4, 5] if template != "greet-v2" else [3, 4, 5, 5])
    if rng.random() < 0.8:
        event["cost_usd"] = round(rng.uniform(0.001, 0.004), 6)
    if rng.random() < 0.9:
        event["latency_ms"] = rng.randint(300, 1500)
    return event


def make_feedback(seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    events = []
    for days_ago in range(20, 0, -1):
        template, edit_rate = ("greet-v1", 0.6) if days_ago > 10 else ("greet-v2", 0.25)
        events += [_event(rng, agent="support", template=template, days_ago=days_ago, number=n, edit_rate=edit_rate)
                   for n in range(12)]  # fmt: skip
        if days_ago <= 5:
            events += [_event(rng, agent="sales", template=t, days_ago=days_ago, number=n, edit_rate=0.4)
                       for n, t in enumerate(["pitch-a", "pitch-a", "pitch-a", None])]  # fmt: skip
    return events


@pytest.fixture
def services(settings, store):
    feedback.ingest_batch(store, make_feedback(), actor=cli_actor(), redact=False)
    return build_services(settings, store=store)


def stored(store) -> dict[tuple[str, str | None], list[dict]]:
    """The feedback as ingest stored it, by agent and template: what every expected number is computed from."""
    rows = store.query("SELECT agent, template, acceptance, edit_ops, rating, latency_ms, cost_usd, created_at"
                       " FROM feedback")  # fmt: skip
    found: dict[tuple[str, str | None], list[dict]] = defaultdict(list)
    for row in rows:
        row["unedited"] = row["acceptance"] >= 1 and (row["edit_ops"] or "[]") == "[]"
        found[(row["agent"], row["template"])].append(row)
    return found


def daily(rows: list[dict], column: str) -> list[float]:
    by_day: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row[column] is not None:
            by_day[row["created_at"][:10]].append(row[column])
    return [mean(by_day[day]) for day in sorted(by_day)]


# The core ---------------------------------------------------------------------------------------------------


def test_every_template_of_every_agent_is_summed_from_its_feedback(services):
    report = list_templates(services, window="30d")
    expected = stored(services.store)
    assert {(row.agent, row.template) for row in report.rows} == set(expected)
    assert [row.agent for row in report.rows] == sorted(row.agent for row in report.rows)
    for row in report.rows:
        rows = expected[(row.agent, row.template)]
        days = sorted({r["created_at"][:10] for r in rows})
        costs = [r["cost_usd"] for r in rows if r["cost_usd"] is not None]
        assert (row.events, row.days, str(row.first_day), str(row.last_day)) == (len(rows), len(days), days[0],
                                                                                days[-1])  # fmt: skip
        assert row.acceptance == pytest.approx(mean(r["acceptance"] for r in rows))
        assert row.unedited_share == pytest.approx(sum(r["unedited"] for r in rows) / len(rows))
        assert row.rating == pytest.approx(mean(r["rating"] for r in rows if r["rating"] is not None))
        assert row.cost_per_event_usd == pytest.approx(mean(costs))
        assert row.cost_usd == pytest.approx(sum(costs))
        assert row.latency_ms == pytest.approx(mean(r["latency_ms"] for r in rows if r["latency_ms"] is not None))
        accepted = [r["acceptance"] for r in rows]
        low, high = scipy_stats.t.interval(0.95, len(accepted) - 1, loc=mean(accepted),
                                           scale=scipy_stats.sem(accepted))  # fmt: skip
        assert row.acceptance_interval is not None
        assert (row.acceptance_interval.low, row.acceptance_interval.high) == pytest.approx((max(0, low), min(1, high)))

    only = list_templates(services, agent="support", window="7d")
    assert [(row.template, row.days) for row in only.rows] == [("greet-v2", 6)]  # today and 6 days back; v1 ended
    # 11 days ago
    assert only.span.days == 7 and only.agent == "support"


def test_two_templates_are_compared_with_the_tests_of_an_experiment(services):
    found = compare_templates(services, a="greet-v1", b="greet-v2", window="30d")
    assert found.agent == "support"  # the one agent whose feedback names both
    expected = stored(services.store)
    v1, v2 = expected[("support", "greet-v1")], expected[("support", "greet-v2")]
    by_metric = {test.metric: test for test in found.tests}

    welch = scipy_stats.ttest_ind(daily(v2, "acceptance"), daily(v1, "acceptance"), equal_var=False)
    acceptance = by_metric[TemplateMetric.ACCEPTANCE]
    assert (acceptance.baseline_n, acceptance.candidate_n) == (10, 10)
    assert acceptance.difference == pytest.approx(mean(daily(v2, "acceptance")) - mean(daily(v1, "acceptance")))
    assert acceptance.p_value == pytest.approx(welch.pvalue)
    low, high = welch.confidence_interval(0.95)
    assert acceptance.interval is not None
    assert (acceptance.interval.low, acceptance.interval.high) == pytest.approx((low, high))

    kept = [sum(r["unedited"] for r in rows) for rows in (v2, v1)]
    _, z_p = proportions_ztest(kept, [len(v2), len(v1)])
    unedited = by_metric[TemplateMetric.UNEDITED]
    assert unedited.rate and (unedited.baseline_n, unedited.candidate_n) == (len(v1), len(v2))
    assert unedited.difference == pytest.approx(kept[0] / len(v2) - kept[1] / len(v1))
    assert unedited.p_value == pytest.approx(z_p)

    rating_welch = scipy_stats.ttest_ind(daily(v2, "rating"), daily(v1, "rating"), equal_var=False)
    rating = by_metric[TemplateMetric.RATING]
    assert rating.p_value == pytest.approx(rating_welch.pvalue)

    p_values = [welch.pvalue, z_p, rating_welch.pvalue]
    reject, adjusted, _, _ = multipletests(p_values, alpha=0.05, method="holm")
    assert [t.adjusted_p_value for t in found.tests] == pytest.approx(list(adjusted))
    assert [t.significant for t in found.tests] == list(reject)
    assert all(reject) and found.verdict is Verdict.WINNER  # greet-v2's drafts are kept whole far more often
    assert found.reason.startswith("greet-v2 against greet-v1: Winner: ") and found.reason.endswith(".")

    backwards = compare_templates(services, a="greet-v2", b="greet-v1", agent="support")
    assert backwards.verdict is Verdict.LOSER


def test_too_little_feedback_leaves_a_test_out_and_says_why(services):
    found = compare_templates(services, a="greet-v1", b="greet-v2", window="all")
    assert found.verdict is Verdict.WINNER  # the same data: all time adds nothing
    feedback.ingest_batch(
        services.store,
        [{"id": "one-b", "agent": "support", "template": "greet-v3", "output": "Hi.", "created_at": _day(1, 9),
          "messages": [{"role": "user", "content": "Hello"}]}],
        actor=cli_actor(),
    )  # fmt: skip
    single = compare_templates(services, a="greet-v2", b="greet-v3")  # rolled up first: greet-v3 is seen at once
    by_metric = {test.metric: test for test in single.tests}
    assert by_metric[TemplateMetric.ACCEPTANCE].p_value is None
    assert "needs 2 days on each side; A has 10, B has 1" in (by_metric[TemplateMetric.ACCEPTANCE].note or "")
    assert by_metric[TemplateMetric.UNEDITED].p_value is not None  # one draft is enough for a share
    assert single.verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("kwargs", "error", "says"),
    [
        ({"a": "greet-v1", "b": "greet-v1"}, InvalidInput, "not compared with itself"),
        ({"a": "greet-v1", "b": "nope"}, NotFound, "names template 'nope'"),
        ({"a": "greet-v1", "b": "greet-v2", "agent": "nobody"}, NotFound, "no feedback from agent 'nobody'"),
        ({"a": "greet-v1", "b": "pitch-a"}, NotFound, "no agent's feedback names both"),
        ({"a": "greet-v1", "b": "greet-v2", "window": "week"}, InvalidInput, "is not a window"),
        ({"a": " ", "b": "greet-v2"}, InvalidInput, "`a` must be a name"),
    ],
)
def test_bad_input_is_named(services, kwargs, error, says):
    with pytest.raises(error, match=says):
        compare_templates(services, **kwargs)


def test_an_agent_without_feedback_is_named_with_those_that_have_some(services):
    with pytest.raises(NotFound, match="no feedback from agent 'nobody'") as raised:
        list_templates(services, agent="nobody")
    assert "sales, support" in (raised.value.hint or "")


# The faces ---------------------------------------------------------------------------------------------------


def test_the_terminal_lists_and_compares(cli, services):
    code, out, err = cli("templates", "--agent", "support", "--json")
    assert code == 0, err
    assert [row["template"] for row in json.loads(out)["rows"]] == ["greet-v2", "greet-v1"]

    code, out, err = cli("templates")
    assert code == 0, err
    assert "greet-v1" in out and "pitch-a" in out and "(no template)" in out and "/event" in out

    code, out, err = cli("templates", "compare", "greet-v1", "greet-v2", "--window", "90d")
    assert code == 0, err
    assert "WINNER" in out and "greet-v2 against greet-v1" in out and "Welch's t-test on the daily mean" in out

    code, out, err = cli("templates", "compare", "greet-v1", "missing")
    assert code == 1 and "names template 'missing'" in err and "Templates seen then: greet-v1, greet-v2" in err


def test_slack_compares_two_templates(tmp_path, store, fake_slack, services):
    from bot.serve import build_app

    settings = make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url
    )  # a viewer: reading is open to everyone
    with TestClient(build_app(build_services(settings, store=store)), base_url="http://127.0.0.1") as client:
        body = slash_body("templates compare greet-v1 greet-v2", response_url=fake_slack.response_url("cmp"))
        assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
        body = slash_body("templates --agent sales", response_url=fake_slack.response_url("list"))
        assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
        [compared] = wait_until(lambda: fake_slack.responses("cmp"), what="the comparison")
        [listed] = wait_until(lambda: fake_slack.responses("list"), what="the list")
    blocks = json.dumps(compared["blocks"])
    assert "Template greet-v2 against greet-v1" in blocks and "*winner*" in blocks and "unedited share" in blocks
    listed_blocks = json.dumps(listed["blocks"])
    assert "pitch-a" in listed_blocks and "greet-v1" not in listed_blocks


def test_agents_list_and_compare_templates_over_mcp(services):
    async def go():
        async with Client(build_server(services)) as client:
            return [
                await client.call_tool("list_templates", {"agent": "support", "window": "7d"}),
                await client.call_tool("compare_templates", {"a": "greet-v1", "b": "greet-v2"}),
                await client.call_tool("compare_templates", {"a": "greet-v1", "b": "greet-v2", "agent": "x",
                                                             "window": "30d"}),
                await client.call_tool("compare_templates", {"a": "greet-v1", "c": "greet-v2"}),
            ]  # fmt: skip

    listed, compared, unknown_agent, bad_argument = anyio.run(go)
    assert not listed.is_error, listed.content[0].text
    assert [row["template"] for row in listed.structured_content["rows"]] == ["greet-v2"]
    assert compared.structured_content["verdict"] == "winner"
    assert [t["metric"] for t in compared.structured_content["tests"]] == ["acceptance", "unedited share", "rating"]
    assert unknown_agent.is_error and "no feedback from agent 'x'" in unknown_agent.content[0].text
    assert "window" in unknown_agent.content[0].text  # the hint names the argument, not the CLI flag
    assert bad_argument.is_error and "c" in bad_argument.content[0].text
