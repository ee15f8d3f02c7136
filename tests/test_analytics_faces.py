"""Analytics through every face: the terminal, `/finetune` (its shortcuts, the chart, the pattern buttons), MCP;
and what the pattern actions build: DPO pairs selected by edit phrase, a prompt experiment on templates.

The world is seven weeks of `tests.test_analytics`'s: `support` loses acceptance when `support:v2` starts on
day 100 and its users delete "Let me analyze this." and "I think maybe" and add a refund-policy sentence;
`sales` only fluctuates. It is built once per module and copied for each test.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import zoneinfo
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time

import anyio
import pytest
from mcp import Client
from starlette.testclient import TestClient

from bot.commands import Invocation, run_command
from bot.commands.groups import TERMINAL
from bot.invoke import terminal_actor
from bot.serve import build_app
from bot.slack.blocks import render_message, render_outcome
from bot.slack.blocks.analytics import EXPERIMENT_ACTION, PAIRS_ACTION
from bot.slack.listeners.commands import run_slack_text
from bot.slack.listeners.patterns import pattern_click
from core import analytics
from core.analytics import patterns
from core.data import datasets, feedback
from core.errors import Conflict, InvalidInput, NotFound
from core.platform import events, outbox
from core.platform.actors import cli_actor
from core.platform.store import open_store
from core.services import build_services
from core.vocabulary import AlertKind
from mcp_server.server import build_server
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, wait_until
from tests.test_analytics import CHANGE_DAY, TZ, day, world_events

FIRST, LAST = 62, 112  # days of the world ingested
NOW = datetime.combine(day(LAST), clock_time(10), tzinfo=zoneinfo.ZoneInfo(TZ)).astimezone(UTC)
CHANNEL = "CANALYTICS"
OPERATOR, VIEWER = "UOPS", "UVIEW"


@pytest.fixture(scope="module")
def base_db(tmp_path_factory):
    """The world's database, rolled up, mined and checked once (with its alert raised)."""
    path = tmp_path_factory.mktemp("analytics-faces") / "finetune.db"
    store = open_store(path)
    feedback.ingest_batch(store, world_events(FIRST, LAST, seed=31), actor=cli_actor(), redact=False)
    analytics.roll_up(store, timezone=TZ)
    analytics.mine_patterns(store)
    analytics.check_regressions(store, rules=analytics.RegressionRules(), as_of=day(CHANGE_DAY + 9))
    store.close()
    return path


@pytest.fixture
def settings(tmp_path, fake_slack):
    return make_settings(
        tmp_path, timezone=TZ, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.api_url, slack_channel=CHANNEL, operators=[OPERATOR],
    )  # fmt: skip


@pytest.fixture
def services(settings, base_db):
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(base_db, settings.db_path)
    services = build_services(settings, store=open_store(settings.db_path), clock=lambda: NOW)
    yield services
    services.close()


def terminal(services, *argv: str):
    """Run `finetune ARGV` through the terminal's grammar as the OS user; (exit code, result)."""
    outcome = run_command(
        TERMINAL, list(argv), Invocation(services, terminal_actor(services.settings)), prog="finetune"
    )
    return outcome.exit_code, outcome.result


# The terminal -----------------------------------------------------------------------------------------------------


def test_agent_detail_has_trend_days_intents_breakdown_and_a_tested_comparison(services):
    code, result = terminal(services, "analytics", "agent", "support", "--window", "7d", "--by", "version",
                            "--previous")  # fmt: skip
    assert code == 0 and isinstance(result, analytics.AgentPerformance)
    assert result.span.end == day(LAST) and [d.day for d in result.daily] == [day(i) for i in range(LAST - 6, LAST)]
    assert {row.value for row in result.breakdown} == {"support:v2"}
    assert result.compared_with == "previous" and result.comparison is not None
    previous = analytics.Slice(agent="support", span=result.span.before())
    assert result.comparison == analytics.compare(
        services.store, baseline=previous, candidate=analytics.Slice(agent="support", span=result.span)
    )
    code, against_sales = terminal(services, "agent", "support", "--compare-with", "sales", "--by", "intent")
    assert code == 0 and against_sales.compared_with == "sales" and against_sales.intents.worst[0].value == "refund"
    assert against_sales.comparison.acceptance.difference < -0.05
    assert {a.name: a.significant for a in against_sales.comparison.adjusted}["acceptance"]


def test_agent_detail_reads_feedback_that_arrived_a_moment_ago(services):
    before = analytics.agent_performance(services, agent="sales", window="7d").summary.events
    late = world_events(LAST - 1, LAST, seed=77)[:5]
    for number, event in enumerate(late):
        event.update(id=f"just-now-{number}", agent="sales")
    feedback.ingest_batch(services.store, late, actor=cli_actor(), redact=False)
    code, result = terminal(services, "analytics", "agent", "sales", "--window", "7d")
    assert code == 0 and result.summary.events == before + 5


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["analytics", "agent", "ghost"], "Agents with feedback: billing, sales, support"),
        (["analytics", "agent", "support", "--compare-with", "sales", "--previous"], "not both"),
        (["analytics", "agent", "support", "--compare-with", "support"], "itself"),
        (["analytics", "agent", "support", "--window", "all", "--previous"], "no previous window"),
        (["analytics", "agent", "support", "--by", "colour"], "'colour' is not one of"),
        (["analytics", "patterns", "--agent", "ghost"], "Agents mined: billing, sales, support"),
        (["analytics", "dpo-pairs", "support", "never said this"], "Its top patterns: 'let me analyze this'"),
        (["analytics", "prompt-experiment", "support", "..."], "holds no words"),
    ],
)
def test_bad_input_is_refused_naming_what_to_do(services, argv, says):
    code, result = terminal(services, *argv)
    assert code in (1, 2)
    assert says in f"{result.message} {getattr(result, 'hint', '') or ''}"


def test_the_terminal_text_says_it_in_words(services, capsys):
    from rich.console import Console

    from bot.terminal import render

    console = Console(width=200, force_terminal=False)
    for argv in (["analytics", "agents"], ["agent", "support", "--by", "version"], ["patterns", "support"],
                 ["alerts"]):  # fmt: skip
        code, result = terminal(services, *argv)
        assert code == 0
        render(result, console)
    shown = capsys.readouterr().out
    assert "support:v2" in shown and "trend:" in shown and "against the 30 days before" in shown
    assert "finetune analytics prompt-experiment support 'let me analyze this'" in shown
    assert "Attributed to: model_version support:v2 since" in shown


# Slack ---------------------------------------------------------------------------------------------------------------


def test_the_agent_shortcut_in_slack_attaches_a_chart_of_daily_acceptance(services):
    outcome = run_slack_text(services, user_id=VIEWER, text="agent support --window 30d")
    assert outcome.exit_code == 0
    message = render_outcome(outcome)
    [chart] = message.files
    assert chart.content.startswith(b"\x89PNG") and chart.filename == "support-acceptance.png"
    assert "Daily acceptance attached" in json.dumps(message.blocks)


def test_the_alerts_shortcut_shows_the_evidence(services):
    message = render_outcome(run_slack_text(services, user_id=VIEWER, text="alerts"))
    shown = json.dumps(message.blocks)
    assert "acceptance_drop" in shown and "support:v2" in shown and "Welch" in shown and "Baseline" in shown


def pattern_buttons(message) -> list[dict]:
    return [e for block in message.blocks if block["type"] == "actions" for e in block["elements"]]


def test_the_patterns_message_carries_a_button_for_each_action_that_fits(services):
    message = render_outcome(run_slack_text(services, user_id=VIEWER, text="patterns support --limit 3"))
    buttons = pattern_buttons(message)
    named = [(b["action_id"], json.loads(b["value"])["phrase"]) for b in buttons]
    assert (EXPERIMENT_ACTION, "let me analyze this") in named and (PAIRS_ACTION, "let me analyze this") in named
    content = [p for a, p in named if p.startswith("our refund")]
    assert content and all(a == PAIRS_ACTION for a, p in named if p in content)  # content: DPO pairs only


def click_body(action_id: str, phrase: str, *, user: str, fake_slack) -> str:
    payload = {
        "type": "block_actions", "team": {"id": "T1"}, "user": {"id": user, "team_id": "T1"}, "api_app_id": "A1",
        "trigger_id": f"trig-{time.monotonic_ns()}",
        "container": {"type": "message", "message_ts": "1.000001", "channel_id": CHANNEL, "is_ephemeral": True},
        "channel": {"id": CHANNEL}, "response_url": fake_slack.response_url(f"click-{user}"),
        "actions": [{"type": "button", "action_id": action_id, "block_id": "b1",
                     "value": json.dumps({"agent": "support", "phrase": phrase}), "action_ts": f"{time.time():.6f}"}],
    }  # fmt: skip
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def test_clicking_add_to_dpo_pairs_builds_the_next_pairs_version_as_the_clicker(services, fake_slack):
    with TestClient(build_app(services), base_url="http://127.0.0.1") as app:
        for phrase in ("let me analyze this", "i think maybe"):
            body = click_body(PAIRS_ACTION, phrase, user=OPERATOR, fake_slack=fake_slack)
            assert app.post("/slack/events", content=body, headers=sign(body)).status_code == 200
            wait_until(lambda p=phrase: any(p in r.get("text", "") for r in fake_slack.responses(f"click-{OPERATOR}")),
                       what=f"the answer to the click on {phrase}")  # fmt: skip
        body = click_body(PAIRS_ACTION, "let me analyze this", user=VIEWER, fake_slack=fake_slack)
        app.post("/slack/events", content=body, headers=sign(body))
        wait_until(lambda: fake_slack.responses(f"click-{VIEWER}"), what="the viewer's answer")
    first, second = (datasets.get_version(services.store, f"support-pairs@{n}") for n in (1, 2))
    assert first.recipe.filters.edit_phrases == ["let me analyze this"]
    assert second.recipe.filters.edit_phrases == ["i think maybe", "let me analyze this"]
    assert second.recipe.filters.agents == ["support"] and second.recipe.filters.edited_only
    assert second.counts["examples"] > first.counts["examples"]
    [refused] = fake_slack.responses(f"click-{VIEWER}")
    assert "operator" in refused["text"] and datasets.list_datasets(services.store).datasets[0].versions == 2
    audited = services.store.query("SELECT actor, face FROM audit_log WHERE command = 'build_dataset'")
    assert {(row["actor"], row["face"]) for row in audited} == {(OPERATOR, "slack")}


def test_a_click_that_names_no_pattern_is_ignored():
    assert pattern_click({"user": {"id": "U1"}, "actions": [{"action_id": PAIRS_ACTION, "value": "{not json"}]}) is None
    assert pattern_click({"user": {"id": "U1"}, "actions": [{"action_id": "other", "value": "{}"}]}) is None
    click = pattern_click({
        "user": {"id": "U1"}, "container": {"channel_id": "C1"},
        "actions": [{"action_id": EXPERIMENT_ACTION, "value": json.dumps({"agent": "a b", "phrase": "x'y"})}],
    })  # fmt: skip
    assert click is not None
    user, text, channel = click
    assert (user, channel) == ("U1", "C1") and text == "analytics prompt-experiment 'a b' 'x'\"'\"'y'"


def test_a_regression_alert_in_slack_carries_its_evidence_and_a_chart(services):
    rows = services.store.query("SELECT id, kind, message_key, channel, text, event, attempts, created_at FROM outbox")
    [row] = [r for r in rows if r["kind"] == "regression"]
    event = events.parse_event(row["event"])
    assert isinstance(event, events.RegressionAlert)
    assert event.metric == "acceptance" and event.recent_start == day(CHANGE_DAY + 2).isoformat()
    assert event.facts["Attributed to"].startswith(f"model_version support:v2 carried 100% of events since {day(100)}")
    message = render_message(outbox.OutboxMessage(**{**row, "event": event}))
    assert "Welch" in json.dumps(message.blocks)
    [chart] = message.files
    assert chart.content.startswith(b"\x89PNG")


# The pattern actions --------------------------------------------------------------------------------------------


def test_dpo_pairs_hold_exactly_the_edited_drafts_whose_edits_show_the_phrase(services):
    code, added = terminal(services, "analytics", "dpo-pairs", "support", "Let me analyze this.", "--json")
    assert code == 0 and added.version.id == "support-pairs@1" and added.phrases == ["let me analyze this"]
    rows = services.store.query("SELECT id, edit_ops, acceptance FROM feedback WHERE agent = 'support'")
    showing = {row["id"] for row in rows if patterns.edits_show(row["edit_ops"], ["let me analyze this"])}
    chosen = {e.id for e in datasets.examples(services.store, added.version.id)}
    assert chosen <= showing and len(chosen) >= 0.9 * len(showing)  # all of them but near-duplicates
    assert added.version.counts["candidates"] == len(showing)
    assert "--method dpo" in added.next_step
    again = analytics.add_dpo_pairs(services, actor=cli_actor(), agent="support", phrase="let me analyze this")
    assert again.version.reused and again.version.id == added.version.id


def test_pairs_never_narrow_a_dataset_built_without_phrases(services):
    datasets.build_dataset(services.store, name="plain", actor=cli_actor(), recipe=datasets.recipe_from(
        filters={"agents": ["support"]}))  # fmt: skip
    with pytest.raises(Conflict, match="narrow") as refused:
        analytics.add_dpo_pairs(services, actor=cli_actor(), agent="support", phrase="i think maybe", dataset="plain")
    assert "--dataset" in (refused.value.hint or "")
    analytics.add_dpo_pairs(services, actor=cli_actor(), agent="support", phrase="i think maybe")
    with pytest.raises(Conflict, match="not of sales"):
        analytics.add_dpo_pairs(services, actor=cli_actor(), agent="sales", phrase=_top_phrase(services, "sales"),
                                dataset="support-pairs")  # fmt: skip


def _top_phrase(services, agent: str) -> str:
    return analytics.pattern_report(services.store, agent=agent, limit=1).patterns[0].phrase


def test_a_prompt_experiment_compares_the_current_template_with_one_named_after_the_change(services):
    code, opened = terminal(services, "analytics", "prompt-experiment", "support", "let me analyze this", "--split",
                            "20")  # fmt: skip
    assert code == 0
    experiment = opened.experiment.experiment
    counts = services.store.query(
        "SELECT template, total(events) AS n FROM analytics_rollups WHERE agent = 'support' AND day >= ?"
        " GROUP BY template ORDER BY n DESC", (day(LAST - 29).isoformat(),),
    )  # fmt: skip
    assert experiment.control == counts[0]["template"]
    assert experiment.treatment == f"{experiment.control}-without-let-me-analyze-this"
    assert experiment.split == pytest.approx(0.2) and experiment.name == "support"
    assert "remove it from the prompt" in opened.next_step and experiment.treatment in opened.next_step


def test_without_a_template_in_the_feedback_the_experiment_asks_for_the_control(services):
    plain = [
        {"id": f"plain-{n}", "agent": "plain", "prompt": "Hi", "output": f"Sure thing. Answer number {n} is here.",
         "final": f"Answer number {n} is here.", "created_at": (NOW - timedelta(days=1, minutes=n)).isoformat()}
        for n in range(12)
    ]  # fmt: skip
    feedback.ingest_batch(services.store, plain, actor=cli_actor(), redact=False)
    with pytest.raises(InvalidInput, match="names a template") as refused:
        analytics.open_prompt_experiment(services, actor=cli_actor(), agent="plain", phrase="Sure thing")
    assert "--control" in (refused.value.hint or "")
    [entry] = analytics.improvement_opportunities(services, agent="plain").agents
    experiment = entry.opportunities[0].actions[0]
    assert not experiment.ready and experiment.command.endswith("--control TEMPLATE")
    opened = analytics.open_prompt_experiment(services, actor=cli_actor(), agent="plain", phrase="sure thing",
                                              control="p1")  # fmt: skip
    assert opened.experiment.experiment.treatment == "p1-without-sure-thing"


# MCP ---------------------------------------------------------------------------------------------------------------


def call_tool(services, tool: str, args: dict):
    async def go():
        async with Client(build_server(services)) as client:
            return await client.call_tool(tool, args)

    return anyio.run(go)


def test_agents_read_performance_opportunities_and_alerts_over_mcp(services):
    performance = call_tool(services, "agent_performance", {"agent": "support", "by": "version", "previous": True})
    assert not performance.is_error
    assert performance.structured_content["comparison"]["acceptance"]["difference"] < 0
    found = call_tool(services, "improvement_opportunities", {"agent": "support", "limit": 3})
    [entry] = found.structured_content["agents"]
    top = entry["opportunities"][0]
    assert top["pattern"]["phrase"] == "let me analyze this"
    assert [a["command"] for a in top["actions"]] == [
        "finetune analytics prompt-experiment support 'let me analyze this'",
        "finetune analytics dpo-pairs support 'let me analyze this'",
    ]
    alerts = call_tool(services, "list_alerts", {})
    [alert] = alerts.structured_content["alerts"]
    assert alert["kind"] == AlertKind.ACCEPTANCE_DROP and alert["evidence"]["attribution"]["value"] == "support:v2"
    refused = call_tool(services, "agent_performance", {"agent": "support", "by": "colour"})
    assert refused.is_error and "by" in refused.content[0].text
    missing = call_tool(services, "improvement_opportunities", {"agent": "ghost"})
    assert missing.is_error and "Agents mined" in missing.content[0].text


# The recipe option -------------------------------------------------------------------------------------------------


def test_edit_phrases_are_normalised_and_leave_other_recipes_hashed_as_before():
    recipe = datasets.recipe_from(filters={"edit_phrases": ["Let me  analyze this.", "let me analyze this", "OK!"]})
    assert recipe.filters.edit_phrases == ["let me analyze this", "ok"]
    assert "edit_phrases" not in datasets.Recipe().model_dump_json()  # versions built before keep their hash
    with pytest.raises(InvalidInput) as refused:
        datasets.recipe_from(filters={"edit_phrases": ["..."]})
    assert refused.value.ids["field"] == "filters.edit_phrases"


def test_an_unknown_agent_has_no_patterns_to_act_on(services):
    with pytest.raises(NotFound, match="'ghost'"):
        analytics.add_dpo_pairs(services, actor=cli_actor(), agent="ghost", phrase="hello")
