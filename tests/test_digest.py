"""The weekly digest on a seeded world (tests/digest_world.py): its numbers are the core's, and every face and
delivery path works: the CLI, Slack (Block Kit within limits, signed button clicks), the HTML page behind a token,
the weekly job (one post per week, its charts uploaded once), MCP, and the page as a browser draws it."""

from __future__ import annotations

import base64
import json
import re
import shutil
import sqlite3
import subprocess
import time
import urllib.parse
from datetime import UTC, date, datetime
from pathlib import Path

import anyio
import pytest
from mcp import Client
from slack_sdk import WebClient
from starlette.testclient import TestClient

from bot import serve as serve_module
from bot.serve import build_app
from bot.slack.blocks import render
from bot.slack.delivery import deliver_due
from bot.slack.listeners.digest import ACTION
from core import analytics
from core.analytics import Span, cost_summary
from core.errors import InvalidInput
from core.platform import approvals, outbox
from core.platform.scheduler import add_weekly_job, build_scheduler, publish_digest
from core.platform.store import open_store
from core.services import build_services
from core.vocabulary import Action, ApprovalState, ExperimentState
from mcp_server.server import build_server
from reports.digest import Digest, build_digest
from reports.render_blocks import (
    MAX_BLOCKS,
    MAX_BUTTON_TEXT,
    MAX_FIELD,
    MAX_FIELDS,
    MAX_HEADER,
    MAX_SECTION,
    digest_blocks,
)
from reports.render_html import render_html
from reports.weeks import parse_week
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, slash_body, wait_until
from tests.digest_world import MONDAY, NOW, TZ, WEEK, Clock, build_world

APP_TOKEN = "digest-app-token-0123456789abcdef"
CHANNEL = "CDIGEST"


@pytest.fixture(scope="module")
def world_db(tmp_path_factory) -> Path:
    """The world, built once; each test works on a copy of its database."""
    folder = tmp_path_factory.mktemp("world")
    settings = make_settings(folder, timezone=TZ)
    store = open_store(settings.db_path)
    build_world(build_services(settings, store=store, clock=Clock()))
    store.close()
    return settings.db_path


@pytest.fixture
def settings(tmp_path, fake_slack):
    return make_settings(
        tmp_path, timezone=TZ, app_tokens=f"viewer-app:{APP_TOKEN}", slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url, slack_channel=CHANNEL,
        operators=["UOP"], approvers=["UOP", "UAPP"], public_url="https://finetune.example.com",
    )  # fmt: skip


@pytest.fixture
def store(settings, world_db):
    settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(world_db, settings.db_path)
    store = open_store(settings.db_path)
    yield store
    store.close()


@pytest.fixture
def services(settings, store):
    return build_services(settings, store=store, clock=Clock())


@pytest.fixture
def digest(services) -> Digest:
    return build_digest(services, week=WEEK)


# The model's numbers are the core's -------------------------------------------------------------------------


def test_the_default_week_is_the_last_full_week_in_the_time_zone(services):
    assert build_digest(services).week.week == WEEK
    week = parse_week(None, today=date(2026, 1, 19), timezone=TZ)  # a Monday: the week before is full
    assert (week.week, week.start, week.end, week.complete) == ("2026-W03", MONDAY, date(2026, 1, 18), True)
    running = parse_week("2026-W04", today=date(2026, 1, 21), timezone=TZ)
    assert not running.complete and running.utc_start == "2026-01-18T23:00:00.000000Z"  # Berlin is UTC+1


@pytest.mark.parametrize(
    ("week", "says"),
    [("2026-3", "is not an ISO week"), ("2025-W53", "2025 has ISO weeks 01 to 52"), ("2026-W05", "has not started")],
)
def test_a_bad_week_is_refused_naming_the_argument_and_the_form(services, week, says):
    with pytest.raises(InvalidInput) as refused:
        build_digest(services, week=week)
    assert says in refused.value.message and refused.value.ids["argument"] == "week"
    assert "YYYY-Www" in (refused.value.hint or "") or "Pick" in (refused.value.hint or "")


def test_acceptance_by_agent_is_the_analytics_report_of_the_week_with_its_trend(services, digest):
    report = analytics.acceptance_report(services.store, window="7d", as_of=date(2026, 1, 18))
    assert [a.agent for a in digest.agents] == [r.agent for r in report.rows]
    for agent, row in zip(digest.agents, report.rows, strict=True):
        assert (agent.events, agent.acceptance, agent.unedited_share, agent.rating) == (
            row.events, row.acceptance, row.unedited_share, row.rating,
        )  # fmt: skip
        assert row.trend is not None and agent.change == row.trend.change
        assert agent.previous_acceptance == row.trend.previous_acceptance
    support = next(a for a in digest.agents if a.agent == "support")
    assert support.change is not None and support.change < -0.2  # the planted drop
    total = sum(a.events for a in digest.agents)
    assert digest.headline.events == total
    weighted = sum((a.acceptance or 0) * a.events for a in digest.agents) / total
    assert digest.headline.acceptance == pytest.approx(weighted)
    assert digest.history.weeks[-1] == WEEK and len(digest.history.weeks) == 8
    assert digest.history.series["support"][-1] == support.acceptance


def test_patterns_alerts_jobs_moves_approvals_and_experiments_are_the_cores(services, digest):
    store = services.store
    mined = analytics.pattern_report(store, agent="support", limit=2)
    shown = [(p.phrase, p.frequency) for p in digest.patterns if p.agent == "support"]
    assert shown == [(p.phrase, p.frequency) for p in mined.patterns]
    assert shown[0][0] == "let me analyze this"
    assert [a.id for a in digest.alerts] == [a.id for a in analytics.open_alerts(store)]
    assert [(a.agent, a.kind) for a in digest.alerts] == [("support", "acceptance_drop")]
    assert [(j.id, j.status) for j in digest.jobs] == [("job_ok", "succeeded"), ("job_bad", "failed")]
    assert [(m.model, m.move) for m in digest.moves] == [
        ("support", "deploy"), ("sales", "deploy"), ("billing", "canary"), ("sales", "rollback"),
    ]  # fmt: skip
    assert (digest.headline.deployments, digest.headline.rollbacks) == (3, 1)
    assert [a.id for a in digest.approvals] == [a.id for a in approvals.pending(store).approvals]
    [experiment] = digest.experiments
    assert experiment.status is ExperimentState.RUNNING and experiment.title == "sales templates: s-b against s-a"


def test_costs_are_the_cost_ledgers_for_the_week_and_the_weeks_before(services, digest):
    week = cost_summary(services, span=Span(start=MONDAY, end=date(2026, 1, 18)))
    assert digest.costs is not None
    assert (digest.costs.total_usd, digest.costs.training_usd, digest.costs.inference_usd) == (
        week.total_usd, week.training_usd, week.inference_usd,
    )  # fmt: skip
    assert digest.costs.training_usd == pytest.approx(4.2 + 1.1)  # job_ok and job_bad, created in the week
    assert digest.costs.history[-1].total_usd == pytest.approx(week.total_usd)
    before = cost_summary(services, span=Span(start=date(2026, 1, 5), end=date(2026, 1, 11)))
    assert digest.costs.previous_total_usd == pytest.approx(before.total_usd)
    assert digest.headline.spend_usd == week.total_usd


def test_the_next_actions_follow_the_numbers(digest):
    assert [(a.kind, a.value) for a in digest.actions] == [
        ("rollback", "support@production"), ("retrain", "support"), ("ab", "billing@production"),
    ]  # fmt: skip
    assert [a.command for a in digest.actions] == [
        "finetune rollback support --alias production", "finetune retrain support",
        "finetune ab create billing --alias production",
    ]  # fmt: skip


# The terminal --------------------------------------------------------------------------------------------------


@pytest.fixture
def terminal(cli, settings, store, monkeypatch):
    monkeypatch.setenv("FINETUNE_TIMEZONE", TZ)
    return cli


def test_the_terminal_prints_markdown_and_json_equal_to_the_model(terminal, services, digest):
    code, out, _ = terminal("report", "weekly", "--week", WEEK)
    assert code == 0 and out.startswith(f"# Weekly digest {WEEK}\n")
    assert "| support | 82 |" in out and "`finetune rollback support --alias production`" in out
    code, out, _ = terminal("report", "weekly", "--week", WEEK, "--json")
    shown = Digest.model_validate_json(out)
    assert shown.model_dump(exclude={"generated_at"}) == digest.model_dump(exclude={"generated_at"})


def test_the_terminal_writes_the_page_and_names_a_bad_week(terminal, tmp_path):
    page = tmp_path / "digest.html"
    code, out, _ = terminal("report", "weekly", "--week", WEEK, "--html", str(page))
    assert code == 0 and str(page) in out
    assert page.read_text().startswith("<!DOCTYPE html>") and f"Weekly digest {WEEK}" in page.read_text()
    code, _, err = terminal("report", "weekly", "--week", "last")
    assert code == 1 and "`week` 'last' is not an ISO week" in err and "YYYY-Www" in err


# Slack: Block Kit within limits -------------------------------------------------------------------------------


def check_slack_limits(blocks: list[dict]) -> None:
    assert len(blocks) <= MAX_BLOCKS
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= MAX_HEADER
        if block["type"] == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert 0 < len(block["text"]["text"]) <= MAX_SECTION
            assert len(block.get("fields", [])) <= MAX_FIELDS
            assert all(len(f["text"]) <= MAX_FIELD for f in block.get("fields", []))
        if block["type"] == "context":
            assert all(len(e["text"]) <= MAX_SECTION for e in block["elements"])
        if block["type"] == "actions":
            ids = [e["action_id"] for e in block["elements"]]
            assert len(ids) == len(set(ids)) and len(ids) <= 25
            for button in block["elements"]:
                assert len(button["text"]["text"]) <= MAX_BUTTON_TEXT and ACTION.fullmatch(button["action_id"])
                assert len(button["value"]) <= 2000
    assert len(json.dumps(blocks)) < 50_000


def test_the_blocks_fit_slacks_limits_and_carry_a_button_per_action(digest):
    text, blocks = digest_blocks(digest, page_url="https://finetune.example.com/reports/2026-W03.html")
    check_slack_limits(blocks)
    assert text.startswith(f"Weekly digest {WEEK}: 247 drafts")
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("digest_rollback:0", "support@production"), ("digest_retrain:1", "support"),
        ("digest_ab:2", "billing@production"),
    ]  # fmt: skip
    assert "confirm" in buttons[0] and buttons[0]["style"] == "danger"
    assert "<https://finetune.example.com/reports/2026-W03.html|2026-W03.html>" in json.dumps(blocks)


def test_a_huge_week_still_fits_slacks_limits(digest):
    agent = digest.agents[0]
    alert = digest.alerts[0]
    action = digest.actions[0]
    huge = digest.model_copy(
        update={
            "agents": [agent.model_copy(update={"agent": f"agent-{n:03d}-" + "x" * 200}) for n in range(300)],
            "alerts": [alert.model_copy(update={"message": "<b>& " * 2000}) for _ in range(100)],
            "actions": [action.model_copy(update={"label": "Roll back " + "y" * 300}) for _ in range(40)],
            "notes": ["a note " * 1000],
        }
    )
    _, blocks = digest_blocks(huge, page_url=None)
    check_slack_limits(blocks)
    shown = json.dumps(blocks, ensure_ascii=False)
    assert "…and 96 more" in shown and "&lt;b&gt;&amp;" in shown
    assert not re.search(r"&[a-z]{0,3}…", shown)  # whole lines, escaped, never cut inside an escape


def test_the_slack_command_answers_with_the_blocks_and_the_charts(digest):
    message = render(digest)
    check_slack_limits(message.blocks or [])
    assert [f.filename for f in message.files] == [f"digest-{WEEK}-acceptance.png", f"digest-{WEEK}-spend.png"]
    assert all(f.content.startswith(b"\x89PNG") and len(f.content) > 5_000 for f in message.files)


def test_slash_report_answers_in_block_kit_and_uploads_the_charts_to_the_channel(services, fake_slack):
    with TestClient(build_app(services), base_url="http://127.0.0.1") as app:
        body = slash_body(f"report weekly --week {WEEK}", user_id="UVIEW", response_url=fake_slack.response_url("r"))
        post(app, body)
        [answer] = wait_until(lambda: fake_slack.responses("r"), what="the digest")
        uploads = wait_until(lambda: fake_slack.method_calls("files.completeUploadExternal")[1:], what="two charts")
    check_slack_limits(answer["blocks"])
    assert answer["blocks"][0]["text"]["text"] == f"Weekly digest {WEEK}" and "digest_rollback:0" in json.dumps(answer)
    assert {u["channel_id"] for u in fake_slack.method_calls("files.completeUploadExternal")} == {"C1"}
    assert len(uploads) == 1


# The HTML page -------------------------------------------------------------------------------------------------


def test_the_page_is_self_contained_and_escapes_what_it_shows(digest):
    hostile = digest.model_copy(
        update={"agents": [digest.agents[0].model_copy(update={"agent": '<script>alert("x")</script>'})]}
    )
    page = render_html(hostile)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<script" not in page.lower() and "@import" not in page and "url(" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    images = re.findall(r'<img alt="[^"]*" src="([^"]+)"', render_html(digest))
    assert len(images) == 2 and all(src.startswith("data:image/png;base64,") for src in images)
    assert base64.b64decode(images[0].split(",", 1)[1]).startswith(b"\x89PNG")


def test_serve_answers_the_page_only_with_an_application_token(services, settings):
    with TestClient(build_app(services), base_url="http://127.0.0.1") as app:
        path = f"/reports/{WEEK}.html"
        refused = app.get(path)
        assert refused.status_code == 401
        assert any(c.startswith("Basic ") for c in refused.headers.get_list("www-authenticate"))  # browsers ask
        assert app.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert app.get(path, headers={"Authorization": "Bearer test-mcp-token-1234567890"}).status_code == 401
        answered = app.get(path, headers={"Authorization": f"Bearer {APP_TOKEN}"})
        assert answered.status_code == 200 and answered.headers["content-type"].startswith("text/html")
        assert "img-src data:" in answered.headers["content-security-policy"]
        assert f"Weekly digest {WEEK}" in answered.text
        assert (settings.data_dir / "reports" / f"{WEEK}.html").is_file()  # a finished week's page is kept
        basic = base64.b64encode(f"anyone:{APP_TOKEN}".encode()).decode()
        assert app.get(path, headers={"Authorization": f"Basic {basic}"}).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/reports/..%2Ffinetune.db", "/reports/%2E%2E/finetune.db", "/reports/2026-W03.html%2F..%2F..%2Ffinetune.db",
        "/reports/2026-W03.htm", "/reports/finetune.db", "/reports/2026-W99.html", "/reports/2099-W01.html",
        "/reports/..%5Cfinetune.db",
    ],
)  # fmt: skip
def test_nothing_but_a_week_page_is_ever_served(services, path):
    with TestClient(build_app(services), base_url="http://127.0.0.1") as app:
        answered = app.get(path, headers={"Authorization": f"Bearer {APP_TOKEN}"})
        assert answered.status_code in (404, 405) and "SQLite format" not in answered.text


# The weekly job and its delivery ------------------------------------------------------------------------------


def digest_rows(store) -> list[dict]:
    return store.query("SELECT id, status, event FROM outbox WHERE kind = 'digest'")


def test_the_weekly_job_posts_one_digest_per_week_and_writes_its_page(services, settings):
    publish_digest(services)
    publish_digest(services)  # a restart, a run by hand: nothing is posted twice
    [row] = digest_rows(services.store)
    event = json.loads(row["event"])
    assert event["week"] == WEEK and event["page_url"] == f"https://finetune.example.com/reports/{WEEK}.html"
    assert Digest.model_validate(event["digest"]).headline.events == 247
    assert (settings.data_dir / "reports" / f"{WEEK}.html").is_file()
    runs = services.store.query("SELECT detail FROM scheduler_runs WHERE job_id = 'digest'")
    assert runs == [{"detail": f"{WEEK}: already posted"}]
    audited = services.store.query("SELECT actor, command FROM audit_log WHERE command = 'publish_digest'")
    assert audited == [{"actor": "scheduler", "command": "publish_digest"}]
    services.clock.now = datetime(2026, 1, 26, 8, 0, tzinfo=UTC)  # the next Monday: the next week
    publish_digest(services)
    assert [json.loads(r["event"])["week"] for r in digest_rows(services.store)] == [WEEK, "2026-W04"]


def test_the_job_runs_on_mondays_at_nine_in_the_time_zone_and_serve_registers_it(services, monkeypatch):
    scheduler = build_scheduler(TZ)
    add_weekly_job(scheduler, publish_digest, job_id="digest", day_of_week="mon", hour=9, args=(services,))
    [job] = scheduler.get_jobs()
    fire = job.trigger.get_next_fire_time(None, NOW)
    assert fire.isoformat() == "2026-01-26T09:00:00+01:00" and job.misfire_grace_time >= 3600
    built = []

    def building(timezone):
        built.append(build_scheduler(timezone))
        return built[-1]

    monkeypatch.setattr(serve_module, "build_scheduler", building)
    with TestClient(build_app(services), base_url="http://127.0.0.1"):
        registered = built[0].get_job("digest")
        assert registered is not None and str(registered.trigger) == str(job.trigger)


def test_delivery_posts_the_digest_once_and_uploads_its_charts_once(services, fake_slack, monkeypatch):
    publish_digest(services)
    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)
    failing = {"left": 1}
    marked = outbox.mark_delivered

    def mark_or_fail(*args, **kwargs):
        if failing["left"]:
            failing["left"] -= 1
            raise sqlite3.OperationalError("database is locked")
        return marked(*args, **kwargs)

    monkeypatch.setattr(outbox, "mark_delivered", mark_or_fail)
    deliver_due(services.store, client, default_channel=CHANNEL)  # posted and uploaded, but not marked
    assert digest_rows(services.store)[0]["status"] == "pending"
    deliver_due(services.store, client, default_channel=CHANNEL)  # finds its post, marks it
    deliver_due(services.store, client, default_channel=CHANNEL)
    assert digest_rows(services.store)[0]["status"] == "delivered"
    [post] = [p for p in fake_slack.method_calls("chat.postMessage") if "Weekly digest" in p.get("text", "")]
    assert post["channel"] == CHANNEL and post["blocks"][0]["text"]["text"] == f"Weekly digest {WEEK}"
    assert len(fake_slack.method_calls("files.completeUploadExternal")) == 2
    uploads = [c.data for c in fake_slack.calls if c.path.startswith("/upload/")]
    assert len(uploads) == 2 and all(u["png"] for u in uploads)


# Buttons: signed interactive payloads into the real bolt app ---------------------------------------------------


def click(action_id: str, value: str, *, user: str, action_ts: str | None = None) -> str:
    payload = {
        "type": "block_actions", "team": {"id": "T1"}, "user": {"id": user, "team_id": "T1"}, "api_app_id": "A1",
        "trigger_id": f"trig-{time.monotonic_ns()}",
        "container": {"type": "message", "message_ts": "1.000001", "channel_id": CHANNEL, "is_ephemeral": False},
        "channel": {"id": CHANNEL}, "message": {"ts": "1.000001", "text": "Weekly digest"},
        "response_url": "http://127.0.0.1:9/unused",
        "actions": [{"type": "button", "action_id": action_id, "block_id": "digest_actions:0", "value": value,
                     "action_ts": action_ts or f"{time.time():.6f}"}],
    }  # fmt: skip
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def post(app, body: str):
    answered = app.post("/slack/events", content=body, headers=sign(body))
    assert answered.status_code == 200
    return answered


def told(fake_slack, user: str) -> list[str]:
    return [e["text"] for e in fake_slack.method_calls("chat.postEphemeral") if e.get("user") == user]


def rollbacks(store) -> list[approvals.Approval]:
    return [a for a in approvals.pending(store).approvals if a.action == Action.ROLLBACK]


def test_the_rollback_button_requests_it_as_the_clicker_once_and_they_cannot_approve_it(services, fake_slack):
    store = services.store
    with TestClient(build_app(services), base_url="http://127.0.0.1") as app:
        body = click("digest_rollback:0", "support@production", user="UOP", action_ts="1700000000.000001")
        post(app, body)
        post(app, body)  # Slack redelivers the same click
        wait_until(lambda: told(fake_slack, "UOP"), what="the answer to the click")
        time.sleep(0.4)
        [request] = rollbacks(store)
        assert request.subject_id == "support@production" and request.requested_by == "UOP"
        assert len(told(fake_slack, "UOP")) == 1 and request.id in told(fake_slack, "UOP")[0]
        post(app, click("digest_rollback:0", "support@production", user="UOP"))  # a second click, later
        wait_until(lambda: len(told(fake_slack, "UOP")) == 2, what="the second answer")
        assert "already waits for approval" in told(fake_slack, "UOP")[1] and len(rollbacks(store)) == 1
        post(app, click("approval_approve", request.id, user="UOP"))  # the requester tries to approve it
        wait_until(lambda: len(told(fake_slack, "UOP")) == 3, what="the refusal")
        assert (
            approvals.get(store, request.id).status == ApprovalState.PENDING
            and not approvals.get(store, request.id).approved_by
        )
    audited = store.query("SELECT actor, face, command FROM audit_log WHERE actor = 'UOP' ORDER BY id")
    assert {"actor": "UOP", "face": "slack", "command": "request_rollback"} in audited


def test_a_viewer_is_refused_and_the_other_buttons_start_what_they_name(services, fake_slack):
    store = services.store
    with TestClient(build_app(services), base_url="http://127.0.0.1") as app:
        post(app, click("digest_rollback:0", "support@production", user="UVIEW"))
        wait_until(lambda: told(fake_slack, "UVIEW"), what="the refusal")
        assert "may not" in told(fake_slack, "UVIEW")[0] and not rollbacks(store)
        post(app, click("digest_ab:2", "billing@production", user="UOP"))
        wait_until(lambda: told(fake_slack, "UOP"), what="the experiment")
        assert "Started A/B experiment" in told(fake_slack, "UOP")[0]
        post(app, click("digest_retrain:1", "support", user="UOP"))
        wait_until(lambda: len(told(fake_slack, "UOP")) == 2, what="the proposal")
        assert "Retraining proposed" in told(fake_slack, "UOP")[1]
    running = [e for e in analytics_experiments(store) if e["alias"] == "production"]
    assert [(e["name"], e["created_by"]) for e in running] == [("billing", "slack:UOP")]
    [retrain] = [a for a in approvals.pending(store).approvals if a.action == Action.RETRAIN]
    assert retrain.subject_id == "support" and retrain.requested_by == "UOP"


def analytics_experiments(store) -> list[dict]:
    return store.query("SELECT name, alias, created_by FROM experiments WHERE status = 'running'")


# MCP -----------------------------------------------------------------------------------------------------------


def call(server, tool: str, args: dict):
    async def go():
        async with Client(server) as client:
            return await client.list_tools(), await client.call_tool(tool, args)

    return anyio.run(go)


def test_the_mcp_tool_answers_the_model_and_its_markdown(services, digest):
    tools, result = call(build_server(services), "get_report", {"week": WEEK})
    [tool] = [t for t in tools.tools if t.name == "get_report"]
    assert tool.annotations.read_only_hint and "week" in tool.input_schema["properties"]
    assert set(tool.output_schema["properties"]) >= {"week", "headline", "agents", "actions"}
    assert not result.is_error
    shown = Digest.model_validate(result.structured_content)
    assert shown.model_dump(exclude={"generated_at"}) == digest.model_dump(exclude={"generated_at"})
    assert result.content[0].text.startswith(f"# Weekly digest {WEEK}")
    _, refused = call(build_server(services), "get_report", {"week": "next week"})
    assert refused.is_error and "`week`" in refused.content[0].text


# The page as a browser draws it ------------------------------------------------------------------------------------

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def test_a_browser_draws_the_page_as_a_full_non_blank_image(digest, tmp_path):
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        pytest.skip(f"no headless browser on PATH (looked for {', '.join(BROWSERS)}): the page is not drawn")
    page, shot = tmp_path / "digest.html", tmp_path / "digest.png"
    page.write_text(render_html(digest), encoding="utf-8")
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}", "--window-size=1280,2000",
         "--hide-scrollbars", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 50_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2000)
    from matplotlib import image

    pixels = image.imread(str(shot))[:, :, :3]
    colours = {tuple(p) for p in (pixels[::16, ::16].reshape(-1, 3) * 255).round().astype(int).tolist()}
    assert pixels.std() > 0.05 and len(colours) > 50  # text, cards, charts: far from one flat colour
    red = ((pixels[:, :, 0] > 0.7) & (pixels[:, :, 1] < 0.3) & (pixels[:, :, 2] < 0.3)).sum()
    assert red > 100  # the drop is drawn in red
