"""The data capability through every face: CLI, Slack, MCP."""

import json

import anyio
from mcp import Client

from bot.slack.blocks import render_outcome
from bot.slack.listeners.commands import run_slack_text
from mcp_server.server import build_server
from tests.conftest import svc
from tests.feedback_samples import make_events, write_jsonl


def test_cli_from_feedback_file_to_validated_export(cli, tmp_path):
    path = write_jsonl(tmp_path / "feedback.jsonl", make_events(40))
    code, out, _ = cli("data", "ingest", str(path), "--json")
    assert code == 0 and json.loads(out)["ingested"] == 40
    code, out, _ = cli("data", "build", "support", "--agent", "support,sales", "--min-rating", "2", "--json")
    version = json.loads(out)
    assert code == 0 and version["id"] == "support@1" and set(version["counts"]["by_agent"]) <= {"support", "sales"}
    code, out, _ = cli("data", "export", "support@1", "--target", "openai", "--json")
    export = json.loads(out)
    assert code == 0 and export["token_stats"]["exact"]
    code, out, _ = cli("data", "validate", export["files"]["train"], "--target", "openai")
    assert code == 0 and "valid" in out
    code, out, _ = cli("validate", "support@1", "bedrock-nova")
    assert code == 0 and "support@1" in out
    code, out, _ = cli("datasets")
    assert "support@1" in out
    code, out, _ = cli("dataset", "support")
    assert "support@1" in out and "Examples" in out


def test_cli_rejects_a_bad_file_naming_the_line_and_stores_nothing(cli, tmp_path, settings):
    events = make_events(5)
    events[2]["created_at"] = "yesterday"
    path = write_jsonl(tmp_path / "bad.jsonl", events)
    code, _, err = cli("data", "ingest", str(path))
    assert code == 1
    assert "line 3, field `created_at`" in err and "ISO-8601" in err and "nothing was stored" in err
    code, out, _ = cli("status", "--json")
    assert json.loads(out)["feedback_events"] == 0


def test_cli_validate_any_file_reports_every_error_with_exit_1(cli, tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"messages": [{"role": "user", "content": "hi"}]}\r\n\r\nnot json\r\n')
    code, out, _ = cli("data", "validate", str(path), "--target", "openai", "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    assert {e["line"] for e in report["errors"] if e["line"]} == {1, 3}
    code, out, _ = cli("data", "validate", str(path), "--target", "openai")
    assert code == 1 and "line 3" in out


def test_cli_diff_and_help(cli, tmp_path):
    cli("data", "ingest", str(write_jsonl(tmp_path / "f.jsonl", make_events(30))))
    cli("data", "build", "d", "--include-rejected")
    cli("data", "build", "d", "--agent", "support", "--include-rejected")
    code, out, _ = cli("data", "diff", "d@1", "d@2")
    assert code == 0 and "d@1 → d@2: +0 −20" in out
    code, out, _ = cli("help", "data")
    assert code == 0 and "data ingest" in out and "data build" in out
    code, out, _ = cli("data", "build", "--help")
    assert code == 0 and "--min-acceptance" in out
    code, _, err = cli("data", "export", "d@1", "--target", "gemini")
    assert code == 2 and "'gemini' is not one of" in err


def test_slack_datasets_dataset_and_validate(settings, store, tmp_path):
    from core.data import datasets, feedback
    from core.platform.actors import cli_actor

    feedback.ingest_batch(store, make_events(30), actor=cli_actor())
    datasets.build_dataset(store, name="support", actor=cli_actor())

    services = svc(store, settings.model_copy(update={"operators": ["slack:U1"]}))  # validating writes an export
    blocks = json.dumps(render_outcome(run_slack_text(services, user_id="U1", text="datasets")).blocks)
    assert "support" in blocks and "support@1" in blocks
    blocks = json.dumps(render_outcome(run_slack_text(services, user_id="U1", text="dataset support@1")).blocks)
    assert "Dataset support@1" in blocks and "Examples" in blocks
    outcome = run_slack_text(services, user_id="U1", text="validate support@1 bedrock-llama")
    assert outcome.ok and "valid" in render_outcome(outcome).text
    outcome = run_slack_text(services, user_id="U1", text="dataset nope@3")
    assert not outcome.ok and "no dataset version 'nope@3'" in render_outcome(outcome).text
    outcome = run_slack_text(services, user_id="U1", text="data ingest /etc/passwd")
    assert outcome.exit_code == 2  # reading server files is terminal-only


def mcp_session(settings, store, steps):
    async def go():
        async with Client(build_server(svc(store, settings))) as client:
            return await steps(client)

    return anyio.run(go)


def test_mcp_tools_cover_ingest_to_validation(settings, store):
    async def steps(client):
        out = {}
        out["ingest"] = await client.call_tool("ingest_feedback", {"events": make_events(40), "field_map": None})
        out["build"] = await client.call_tool("build_dataset", {"name": "agentset", "filters": {"min_rating": 2}})
        out["list"] = await client.call_tool("list_datasets", {})
        out["export"] = await client.call_tool("export_dataset", {"version": "agentset@1", "target": "hf-chat"})
        out["validate"] = await client.call_tool("validate_dataset", {"version": "agentset", "target": "openai"})
        out["cost"] = await client.call_tool("estimate_cost", {"version": "agentset@1", "base_model": "gpt-4o-mini"})
        out["hp"] = await client.call_tool(
            "suggest_hyperparameters", {"version": "agentset@1", "base_model": "meta.llama3-1-8b-instruct-v1:0"}
        )
        out["stats"] = await client.read_resource("finetune://datasets/agentset@1/stats")
        out["report"] = await client.read_resource("finetune://datasets/agentset@1/validation/openai")
        return out

    out = mcp_session(settings, store, steps)
    errors = {k: r.content[0].text for k, r in out.items() if k not in ("stats", "report") and r.is_error}
    assert errors == {}
    assert out["ingest"].structured_content["ingested"] == 40
    assert out["build"].structured_content["id"] == "agentset@1"
    assert out["list"].structured_content["datasets"][0]["latest"] == "agentset@1"
    assert out["export"].structured_content["target"] == "hf-chat"
    assert out["validate"].structured_content["ok"] is True
    assert out["cost"].structured_content["usd"] > 0
    assert 1 <= out["hp"].structured_content["epochs"] <= 10
    assert json.loads(out["stats"].contents[0].text)["id"] == "agentset@1"
    assert json.loads(out["report"].contents[0].text)["target"] == "openai"
    commands = {r["command"] for r in store.query("SELECT command FROM audit_log WHERE face = 'mcp'")}
    assert {"ingest", "build_dataset", "export_dataset", "validate_dataset", "list_datasets"} <= commands


def test_mcp_ingest_errors_name_the_event_and_field(settings, store):
    events = make_events(3)
    events[1]["rating"] = "great"

    async def steps(client):
        return await client.call_tool("ingest_feedback", {"events": events})

    result = mcp_session(settings, store, steps)
    assert result.is_error
    text = result.content[0].text
    assert "event 2, field `rating`" in text and "nothing was stored" in text
    assert store.scalar("SELECT count(*) FROM feedback") == 0


def test_cli_build_refuses_bad_filters_naming_the_option_and_writes_nothing(cli, tmp_path, store):
    cli("data", "ingest", str(write_jsonl(tmp_path / "f.jsonl", make_events(30))))
    refusals = [
        (("--since", "yesterday"), 1, "`filters.since` is 'yesterday'"),
        (("--until", "2026-13-45"), 1, "`filters.until`"),
        (("--split", "nan,0,0"), 1, "`split`"),
        (("--split", "0.5,0.2,0.2"), 1, "`split`"),
        (("--min-rating", "7"), 2, "--min-rating"),
        (("--min-rating", "nan"), 1, "`filters.min_rating`"),
        (("--min-acceptance", "1.5"), 2, "--min-acceptance"),
        (("--min-quality", "-1"), 2, "--min-quality"),
        (("--seed", "-1"), 2, "--seed"),
        (("--seed", str(2**63)), 2, "--seed"),
    ]
    for args, code, fragment in refusals:
        exit_code, _, err = cli("data", "build", "d", *args)
        assert (exit_code, fragment in err) == (code, True), (args, err)
        assert "Traceback" not in err and "internal error" not in err
    assert store.scalar("SELECT count(*) FROM dataset_versions") == 0


def test_cli_build_leaves_rejected_drafts_out_unless_asked(cli, tmp_path):
    cli("data", "ingest", str(write_jsonl(tmp_path / "f.jsonl", make_events(30))))
    code, out, _ = cli("data", "build", "d", "--json")
    curated = json.loads(out)
    assert code == 0 and curated["counts"]["rejected_drafts"] > 0
    assert curated["stats"]["left_out"]["rejected_drafts"] == curated["counts"]["rejected_drafts"]
    code, out, _ = cli("data", "build", "d", "--include-rejected", "--json")
    assert code == 0 and json.loads(out)["counts"]["examples"] == 30


def test_cli_export_refuses_impossible_epochs(cli, tmp_path):
    cli("data", "ingest", str(write_jsonl(tmp_path / "f.jsonl", make_events(30))))
    cli("data", "build", "d")
    for epochs in ("0", "-1", str(10**20)):
        code, _, err = cli("data", "export", "d@1", "--target", "openai", "--epochs", epochs)
        assert code == 2 and "--epochs" in err and "Traceback" not in err


def test_mcp_refuses_bad_recipes_and_epochs_with_the_field_named(settings, store):
    feedback_events = make_events(30)

    async def steps(client):
        out = {"ingest": await client.call_tool("ingest_feedback", {"events": feedback_events})}
        for seed in (-1, 2**63):
            out[f"seed {seed}"] = await client.call_tool("build_dataset", {"name": "d", "seed": seed})
        out["split"] = await client.call_tool("build_dataset", {"name": "d", "split": [0.5, 0.2, 0.2]})
        out["since"] = await client.call_tool("build_dataset", {"name": "d", "filters": {"since": "yesterday"}})
        out["build"] = await client.call_tool("build_dataset", {"name": "d", "filters": {"include_rejected": True}})
        for epochs in (0, -1, 10**20):
            out[f"export {epochs}"] = await client.call_tool(
                "export_dataset", {"version": "d@1", "target": "openai", "epochs": epochs}
            )
            out[f"cost {epochs}"] = await client.call_tool(
                "estimate_cost", {"version": "d@1", "base_model": "gpt-4o-mini", "epochs": epochs}
            )
        return out

    out = mcp_session(settings, store, steps)
    assert not out["ingest"].is_error and not out["build"].is_error
    assert out["build"].structured_content["counts"]["examples"] == 30
    for name, result in out.items():
        if name in ("ingest", "build"):
            continue
        text = result.content[0].text
        assert result.is_error and "internal error" not in text.lower(), (name, text)
        field = name.split()[0].replace("export", "epochs").replace("cost", "epochs")
        assert field in text, (name, text)
    assert store.scalar("SELECT count(*) FROM dataset_versions") == 1
