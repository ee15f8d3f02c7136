import json

import pytest

from bot.cli import main
from core.platform import outbox
from core.platform.status import get_status
from core.platform.store import open_store


def test_status_shows_every_fact(cli):
    code, out, _ = cli("status")
    assert code == 0
    for label in ("Feedback events", "Datasets", "Jobs", "Models", "Pending approvals", "Scheduler heartbeat"):
        assert label in out


def test_status_json_is_the_core_report(cli, settings):
    code, out, _ = cli("status", "--json")
    assert code == 0
    assert json.loads(out) == get_status(open_store(settings.db_path), settings=settings).model_dump()


def test_help_lists_every_command_with_a_description(cli):
    from bot.cli import CLI

    code, out, _ = cli("help")
    assert code == 0
    for name, command in CLI.commands.items():
        assert name in out
        assert command.get_short_help_str(limit=90)[:20] in out


def test_no_arguments_and_dash_dash_help_show_help(cli):
    assert "status" in cli()[1]
    code, out, _ = cli("notify", "--help")
    assert code == 0 and "Usage: finetune notify [OPTIONS] TEXT" in out


def test_unknown_command_says_what_was_wrong_and_how_to_continue(cli):
    code, out, err = cli("statsu")
    assert code == 2 and out == ""
    assert "No such command 'statsu'" in err
    assert "Did you mean 'status'" in err  # click's suggestion
    assert "finetune help" in err
    assert "Traceback" not in err


def test_bad_argument_names_the_option_and_shows_usage(cli):
    code, _, err = cli("audit", "--limit", "lots")
    assert code == 2
    assert "'--limit'" in err and "'lots' is not a valid integer" in err
    assert "Usage: finetune audit [OPTIONS]" in err


def test_core_error_shows_message_and_fix(cli):
    code, _, err = cli("audit", "--limit", "0")
    assert code == 1
    assert "`limit` must be between 1 and 1000" in err and "Fix:" in err


def test_notify_queues_an_outbox_row_and_audits_it_once(cli, settings):
    code, out, _ = cli("notify", "Deploy at 5pm, token xoxb-123456789012")
    assert code == 0 and "Queued notice #1" in out
    store = open_store(settings.db_path)
    [message] = outbox.due(store)
    assert "Deploy at 5pm" in message.text
    rows = store.query("SELECT command, face, args, outcome FROM audit_log WHERE command = 'notify'")
    assert len(rows) == 1
    assert rows[0]["face"] == "cli" and rows[0]["outcome"] == "ok"
    assert "xoxb-123456789012" not in rows[0]["args"] and "[SLACK_TOKEN]" in rows[0]["args"]


def test_every_command_writes_an_audit_row_with_its_outcome(cli, settings):
    cli("status")
    cli("nope")
    cli("notify", "  ")
    code, out, _ = cli("audit", "--json")
    assert code == 0
    entries = json.loads(out)["entries"]
    assert [(e["command"], e["outcome"]) for e in entries[:3]] == [
        ("notify", "error"),
        ("unknown", "usage"),
        ("status", "ok"),
    ]
    assert all(e["face"] == "cli" and e["at"].endswith("Z") for e in entries)


def test_config_masks_secrets(cli, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("FINETUNE_MCP_TOKEN", "mcp-very-secret")
    code, out, _ = cli("config", "--json")
    assert code == 0
    assert "very-secret" not in out
    values = {e["env"]: e["value"] for e in json.loads(out)["entries"]}
    assert values["SLACK_BOT_TOKEN"] == "********" and values["FINETUNE_MCP_TOKEN"] == "********"
    assert values["SLACK_SIGNING_SECRET"] is None


def test_invalid_setting_names_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("FINETUNE_PORT", "eighty")
    with pytest.raises(SystemExit) as exited:
        main(["status"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert "FINETUNE_PORT" in err and "eighty" in err


def test_unknown_time_zone_is_refused_with_an_example(monkeypatch, capsys):
    monkeypatch.setenv("FINETUNE_TIMEZONE", "Mars/Olympus")
    with pytest.raises(SystemExit):
        main(["status"])
    assert "FINETUNE_TIMEZONE" in capsys.readouterr().err


def test_catalog_shows_what_can_be_trained(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = cli("catalog", "--provider", "azure", "--json")
    assert code == 0
    listing = json.loads(out)
    assert listing["models"] and all("azure" in m["providers"] for m in listing["models"])
    mini = next(m for m in listing["models"] if m["id"] == "gpt-4o-mini-2024-07-18")
    assert mini["training_usd_per_1m_tokens"] == 3.0 and mini["price_as_of"] == listing["as_of"]

    code, out, _ = cli("catalog")
    assert code == 0
    for fact in ("amazon.nova-micro-v1:0", "bedrock-nova", "65,536", "free", "(legacy)", "training price"):
        assert fact in out, fact


def test_catalog_refuses_an_unknown_provider(cli):
    code, _, err = cli("catalog", "--provider", "openia")
    assert code == 2 and "'--provider'" in err and "'openia' is not one of" in err


@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_idempotency_key_is_refused(cli, key):
    code, _, err = cli("launch", "support@1", "openai", "gpt-4o-mini", "--key", key)
    assert code == 2
    assert "'--key'" in err and "the idempotency key is empty" in err


def test_a_huge_argument_is_echoed_clipped_and_audited_clipped(cli, settings):
    huge = "j" * 1_000_000
    code, _, err = cli("job", huge)
    [error] = [line for line in err.splitlines() if line.startswith("Error:")]
    assert code == 1 and "no job 'jjj" in error
    answer = err[err.index("Error:") :]  # what follows the log of a fresh database's migrations
    assert len(answer) < 2000 and "j" * 100 not in err
    store = open_store(settings.db_path)
    [row] = store.query("SELECT args, detail FROM audit_log WHERE command = 'job'")
    assert len(row["args"]) < 1000 and len(row["detail"]) <= 500


def test_undecodable_bytes_in_argv_are_a_usage_error(cli):
    code, out, err = cli("notify", "caf\udce9")  # how Python hands a terminal's non-UTF-8 bytes to a program
    assert code == 2 and out == ""
    assert "word 2 of the command contains U+DCE9, a lone surrogate" in err
