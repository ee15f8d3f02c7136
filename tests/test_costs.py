"""The cost ledger and ROI: numbers checked by hand, through the core, the terminal, Slack and MCP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from mcp import Client
from starlette.testclient import TestClient

from core import analytics, registry
from core.analytics import cost_summary, window_span
from core.catalog.pricing import usd_for
from core.data import exports, feedback
from core.platform.actors import SCHEDULER, cli_actor
from core.platform.timeutil import iso
from core.services import build_services
from core.training import jobs
from core.vocabulary import Provider
from mcp_server.server import build_server
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, slash_body, svc, wait_until
from tests.fake_provider import FakeProvider

TODAY = datetime.now(UTC).date()
MODEL = "gpt-4o-mini-2024-07-18"


def day(days_ago: int, hour: int = 12) -> str:
    return f"{TODAY - timedelta(days=days_ago)}T{hour:02d}:00:00Z"


def drafts(agent: str, *, n: int, accepted: int, cost: float | None, version: str | None, days: int, tag: str):
    """`n` drafts of `agent` spread over the last `days` days: `accepted` kept whole, the rest rewritten entirely."""
    events = []
    for i in range(n):
        draft = f"{tag} draft {i} alpha beta gamma delta"
        event: dict[str, str | float] = {
            "id": f"{tag}-{i}", "agent": agent, "prompt": f"{tag} question {i}", "output": draft,
            "created_at": day(i % days, hour=8 + i // days),
        }  # fmt: skip
        if i >= accepted:
            event["final"] = "Completely rewritten reply, nothing kept."
        if cost is not None:
            event["cost_usd"] = cost
        if version is not None:
            event["model_version"] = version
        events.append(event)
    return events


def job_row(job_id: str, dataset_version: str, *, status: str, estimated: float | None, actual: float | None = None,
            provider_job_id: str | None = "ft-1", created: str | None = None, provider: str = "openai") -> dict:  # fmt: skip
    created = created or day(3)
    return {
        "id": job_id, "provider": provider, "dataset_version_id": dataset_version, "base_model": MODEL,
        "status": status, "estimated_cost_usd": estimated, "actual_cost_usd": actual,
        "provider_job_id": provider_job_id, "requested_by": "cli:ann", "created_at": created, "updated_at": created,
    }  # fmt: skip


def register(store, name: str, job_id: str, cost: float | None) -> str:
    with store.write():
        return registry.register_version(
            store, name=name, provider="openai", provider_model_id=f"ft:{name}", job_id=job_id,
            dataset_version_id=None, base_model=MODEL, metrics={}, cost_usd=cost, actor=SCHEDULER, reason="trained",
            now=iso(),
        ).id  # fmt: skip


@pytest.fixture
def world(tmp_path, store, version):
    """Jobs and drafts over the last 30 days, with an accepted draft worth $1 (2 minutes at $0.50)."""
    settings = make_settings(tmp_path, minutes_saved_per_accepted_draft=2, cost_per_minute_usd=0.5)
    with store.write() as db:
        db.table("jobs").insert_all(
            [
                job_row("job_support", version.id, status="succeeded", estimated=5.10),
                job_row("job_sales", version.id, status="succeeded", estimated=2.50, actual=2.00),
                job_row("job_waiting", version.id, status="pending_approval", estimated=99.0, provider_job_id=None),
                job_row("job_dropped", version.id, status="cancelled", estimated=50.0, provider_job_id=None),
                job_row("job_old", version.id, status="succeeded", estimated=40.0, created=day(45)),
            ]
        )
    support, sales = register(store, "support", "job_support", 5.10), register(store, "sales", "job_sales", 2.50)
    events = [
        *drafts("support", n=10, accepted=4, cost=0.003, version=None, days=20, tag="base"),  # acceptance 0.4
        *drafts("support", n=14, accepted=7, cost=0.001, version=support, days=7, tag="tuned"),  # 0.5, 2 a day
        *drafts("sales", n=5, accepted=5, cost=None, version=sales, days=5, tag="sales"),  # no base, no cost
    ]
    feedback.ingest_batch(store, events, actor=cli_actor())
    analytics.roll_up(store, timezone=settings.timezone)
    return svc(store, settings)


def summary(services, window: str = "30d"):
    return cost_summary(services, span=window_span(window, as_of=TODAY))


def test_training_shows_actual_costs_else_estimates_of_billed_jobs_in_the_window(world):
    result = summary(world)
    training = {row.version: row for row in result.rows if row.kind == "training"}
    assert set(training) == {"support:v1", "sales:v1"}  # waiting, never-submitted and older jobs cost nothing here
    assert training["support:v1"].usd == 5.10 and training["support:v1"].estimated
    assert training["sales:v1"].usd == 2.00 and not training["sales:v1"].estimated  # the actual beats the estimate
    assert result.training_usd == pytest.approx(7.10) and result.training_estimated
    assert any("estimates" in note for note in result.notes)


def test_inference_sums_reported_costs_and_counts_the_unpriced_drafts(world):
    result = summary(world)
    inference = {(row.agent, row.version): row for row in result.rows if row.kind == "inference"}
    assert inference[("support", None)].usd == pytest.approx(10 * 0.003)
    assert inference[("support", "support:v1")].usd == pytest.approx(14 * 0.001)
    sales = inference[("sales", "sales:v1")]
    assert sales.usd == 0 and sales.unpriced_events == 5 and "unknown" in sales.basis
    assert result.inference_usd == pytest.approx(0.044) and result.unpriced_events == 5
    assert result.total_usd == pytest.approx(7.144)
    assert any("5 draft(s) reported no cost_usd" in note for note in result.notes)


def test_roi_and_payback_of_a_version_against_its_base(world):
    [roi] = [r for r in summary(world).roi if r.version == "support:v1"]
    # lift 0.5 - 0.4 = 10 points; price saved 0.003 - 0.001 = $0.002 a draft; a draft's value 0.002 + 0.1 x $1
    assert roi.acceptance == pytest.approx(0.5) and roi.base_acceptance == pytest.approx(0.4)
    assert roi.lift_points == pytest.approx(10.0) and roi.price_saving_per_event_usd == pytest.approx(0.002)
    assert roi.value_per_event_usd == pytest.approx(0.102)
    assert roi.daily_events == pytest.approx(2.0)  # 14 drafts over the last 7 days
    assert roi.net_benefit_per_day_usd == pytest.approx(0.204)
    assert roi.training_usd == 5.10 and roi.training_estimated
    assert roi.payback_days == pytest.approx(25.0) and roi.reason is None  # 5.10 / 0.204


def test_roi_without_base_traffic_says_it_cannot_be_computed_and_why(world):
    [roi] = [r for r in summary(world).roi if r.version == "sales:v1"]
    assert roi.value_per_event_usd is None and roi.payback_days is None
    assert "cannot be computed" in roi.reason and "'sales' sent no drafts from the base model" in roi.reason


def test_days_and_weeks_add_up_to_the_totals(world):
    result = summary(world)
    assert len(result.daily) == 30 and result.daily[-1].start == TODAY
    assert sum(p.training_usd for p in result.daily) == pytest.approx(result.training_usd)
    assert sum(p.inference_usd for p in result.daily) == pytest.approx(result.inference_usd)
    assert sum(p.total_usd for p in result.weekly) == pytest.approx(result.total_usd)
    assert all(week.start.weekday() == 0 for week in result.weekly)
    assert result.daily[-4].training_usd == pytest.approx(7.10)  # both billed jobs were created three days ago


def test_a_shorter_window_leaves_out_what_came_before_it(world):
    result = summary(world, "7d")
    assert result.span.start == TODAY - timedelta(days=6)
    base = [r for r in result.rows if r.kind == "inference" and r.version is None]
    assert base[0].events == 7  # of the 10 base drafts spread over 20 days, 7 fall in the last 7
    assert summary(world, "all").span.start is None


def test_a_price_difference_without_costs_or_equal_rates_is_not_guessed(tmp_path, store, version):
    settings = make_settings(tmp_path)
    with store.write() as db:
        db.table("jobs").insert(job_row("job_support", version.id, status="succeeded", estimated=1.0))
    tuned = register(store, "support", "job_support", 1.0)
    events = [
        *drafts("support", n=4, accepted=2, cost=None, version=None, days=4, tag="b"),
        *drafts("support", n=4, accepted=3, cost=None, version=tuned, days=4, tag="t"),
    ]
    feedback.ingest_batch(store, events, actor=cli_actor())
    analytics.roll_up(store, timezone="UTC")
    [roi] = summary(svc(store, settings)).roi
    assert roi.lift_points == pytest.approx(25.0) and roi.value_per_event_usd is None
    assert "price difference per draft is unknown" in roi.reason and "cost_usd" in roi.reason


def test_a_launched_job_is_billed_as_the_catalog_formula_says(tmp_path, store, version):
    fake = FakeProvider()
    services = svc(store, make_settings(tmp_path), {Provider.OPENAI: lambda settings: fake})
    launched = jobs.launch_job(
        services, dataset_version=version.id, provider="openai", base_model=MODEL, actor=cli_actor(),
        hyperparameters={"epochs": 2},
    )  # fmt: skip
    export = exports.get_export(store, version=version.id, target="openai", model=MODEL)
    assert export is not None
    expected = export.train_tokens * 2 * 3.0 / 1_000_000  # training tokens x epochs x $3 per 1M (the catalog's)
    [row] = [r for r in summary(services).rows if r.kind == "training"]
    assert row.usd == pytest.approx(expected, abs=1e-4) == usd_for(export.train_tokens * 2, 3.0)
    assert row.estimated and row.model == "support" and row.version is None and launched.job.id


# Faces --------------------------------------------------------------------------------------------------


def test_the_terminal_prints_the_ledger_and_roi_and_json_on_request(world, cli, monkeypatch):
    monkeypatch.setenv("FINETUNE_MINUTES_SAVED_PER_ACCEPTED_DRAFT", "2")
    monkeypatch.setenv("FINETUNE_COST_PER_MINUTE_USD", "0.5")
    code, out, _ = cli("analytics", "costs", "--window", "30d")
    assert code == 0
    assert "$7.14 in all" in out and "training $7.10 (est.)" in out and "5 unpriced" in out
    assert "support:v1 on support: lift +10.0 points" in out and "pays back in 25.0 days" in out
    code, out, _ = cli("analytics", "costs", "--json")
    assert code == 0 and json.loads(out)["training_usd"] == pytest.approx(7.10)
    code, _, err = cli("analytics", "costs", "--window", "3d")
    assert code == 2 and "--window" in err and "7d" in err


def test_slack_answers_the_ledger_with_a_chart(world, store, tmp_path, fake_slack):
    from bot.serve import build_app

    settings = make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url,
        minutes_saved_per_accepted_draft=2, cost_per_minute_usd=0.5,
    )  # fmt: skip
    with TestClient(build_app(build_services(settings, store=store)), base_url="http://127.0.0.1") as client:
        body = slash_body("analytics costs --window 30d", response_url=fake_slack.response_url("costs"))
        assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
        [answer] = wait_until(lambda: fake_slack.responses("costs"), what="the costs answer")
        uploads = wait_until(lambda: [c.data for c in fake_slack.calls if c.path.startswith("/upload/")],
                             what="the chart")  # fmt: skip
    blocks = json.dumps(answer["blocks"])
    assert "$7.14 in all" in blocks and "pays back in 25.0 days" in blocks and "sent no drafts" in blocks
    assert uploads[0]["png"]


def test_an_agent_reads_the_ledger_over_mcp(world):
    async def go():
        async with Client(build_server(world)) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            return (
                tools,
                await client.call_tool("cost_summary", {"window": "30d"}),
                await client.call_tool("cost_summary", {"window": "2w"}),
            )

    tools, answer, refused = anyio.run(go)
    assert tools["cost_summary"].annotations.read_only_hint
    data = answer.structured_content
    assert data["total_usd"] == pytest.approx(7.144) and data["unpriced_events"] == 5
    assert [r["payback_days"] for r in data["roi"] if r["version"] == "support:v1"] == [pytest.approx(25.0)]
    assert refused.is_error and "window" in refused.content[0].text
