"""Settings: empty means unset, names that are no setting are reported, the data directory is found, not invented."""

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.cli import main
from bot.serve import check_exposure
from core.errors import InvalidInput
from core.platform.settings import Settings, discover_data_dir, unknown_names
from core.platform.store import open_store
from tests.conftest import ROOT, free_port, wait_until
from tests.feedback_samples import make_events

SETTINGS = list(Settings.env_names().values())


def defaults() -> dict:
    return Settings(_env_file=None).model_dump()


# Empty means unset ------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", SETTINGS)
def test_an_empty_value_leaves_every_setting_at_its_default(env, monkeypatch):
    expected = defaults()
    monkeypatch.setenv(env, "")
    assert Settings(_env_file=None).model_dump() == expected


def test_a_blank_env_file_is_no_env_file(tmp_path):
    (tmp_path / ".env").write_text("".join(f"{env}=\n" for env in SETTINGS) + "FINETUNE_MCP_TOKEN=   \n")
    assert Settings().model_dump() == defaults()


def test_an_empty_token_does_not_open_mcp_off_loopback(monkeypatch):
    monkeypatch.setenv("FINETUNE_MCP_TOKEN", "")
    with pytest.raises(InvalidInput, match="without a token"):
        check_exposure(Settings(_env_file=None, host="0.0.0.0"))


def test_off_loopback_every_token_must_be_long(monkeypatch):
    with pytest.raises(InvalidInput, match="FINETUNE_MCP_TOKEN is shorter than 32"):
        check_exposure(Settings(_env_file=None, host="0.0.0.0", mcp_token="short"))
    with pytest.raises(InvalidInput, match=r"FINETUNE_MCP_TOKENS \(ci\) is shorter than 32"):
        check_exposure(Settings(_env_file=None, host="0.0.0.0", mcp_token="x" * 32, mcp_tokens="ci:tiny"))
    check_exposure(Settings(_env_file=None, host="0.0.0.0", mcp_tokens="ci:" + "y" * 32))
    check_exposure(Settings(_env_file=None, mcp_token="short"))  # loopback: any token will do


def test_a_bad_token_list_is_named_without_repeating_a_secret(monkeypatch, capsys):
    monkeypatch.setenv("FINETUNE_MCP_TOKENS", "laptop:first-supersecret-value,broken-supersecret-entry")
    with pytest.raises(SystemExit):
        main(["status"])
    err = capsys.readouterr().err
    assert "FINETUNE_MCP_TOKENS" in err and "NAME:TOKEN" in err and "supersecret" not in err


def test_a_bad_identity_names_the_setting_and_the_forms(monkeypatch, capsys):
    monkeypatch.setenv("FINETUNE_APPROVERS", "U1,alice")
    with pytest.raises(SystemExit) as exited:
        main(["status"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "FINETUNE_APPROVERS" in err and "'alice' is not an identity" in err


def test_public_host_names_are_checked(monkeypatch, capsys):
    monkeypatch.setenv("FINETUNE_PUBLIC_HOSTS", "https://finetune.example.com/mcp")
    with pytest.raises(SystemExit):
        main(["status"])
    assert "FINETUNE_PUBLIC_HOSTS" in capsys.readouterr().err


# Names that are no setting ----------------------------------------------------------------------------


def test_a_misspelt_setting_is_reported_with_the_closest_name(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("FINETUNE_ADMIN", "U1")
    (tmp_path / ".env").write_text("FINETUNE_TIMEZON=Europe/Paris\nSOMETHING_ELSE=1\n")
    code, _, err = cli("status")
    assert code == 0
    assert "FINETUNE_ADMIN (in the environment) is not a setting; did you mean FINETUNE_ADMINS?" in err
    assert "FINETUNE_TIMEZON (in the .env) is not a setting; did you mean FINETUNE_TIMEZONE?" in err
    assert "SOMETHING_ELSE" not in err


@given(st.from_regex(r"FINETUNE_[A-Z_]{1,30}", fullmatch=True))
def test_every_unknown_finetune_name_is_reported_and_no_known_one(name):
    lines = unknown_names({name: "environment"})
    assert (lines == []) is (name in SETTINGS)


# The data directory -----------------------------------------------------------------------------------


def test_the_data_directory_is_found_walking_up(tmp_path, monkeypatch):
    project = tmp_path / "project"
    open_store(project / ".finetune" / "finetune.db").close()
    deeper = project / "src" / "deeper"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    settings = Settings(_env_file=None)
    assert settings.data_dir == project / ".finetune"
    assert settings.data_dir_source == f"found walking up from {deeper}"


def test_without_one_the_per_user_directory_is_used(tmp_path, monkeypatch):
    assert Settings(_env_file=None).data_dir == tmp_path / "xdg-data" / "finetune-ops"  # XDG_DATA_HOME
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = Settings(_env_file=None)
    assert settings.data_dir == tmp_path / "home" / ".local" / "share" / "finetune-ops"
    assert settings.data_dir_source.startswith("per-user default")


def test_an_empty_folder_named_dot_finetune_is_not_a_data_directory(tmp_path):
    (tmp_path / ".finetune").mkdir()
    found, source = discover_data_dir(tmp_path, {"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert found == tmp_path / "xdg" / "finetune-ops" and "per-user" in source


def test_the_setting_wins_and_is_made_absolute(tmp_path, monkeypatch):
    open_store(tmp_path / ".finetune" / "finetune.db").close()
    monkeypatch.setenv("FINETUNE_DATA_DIR", "elsewhere")
    settings = Settings(_env_file=None)
    assert settings.data_dir == tmp_path / "elsewhere" and settings.data_dir_source == "FINETUNE_DATA_DIR"


def test_config_shows_the_data_directory_and_where_it_came_from(cli, settings):
    code, out, _ = cli("config", "--json")
    report = json.loads(out)
    assert code == 0 and report["data_dir"] == str(settings.data_dir)
    assert report["data_dir_source"] == "FINETUNE_DATA_DIR"
    [entry] = [e for e in report["entries"] if e["env"] == "FINETUNE_DATA_DIR"]
    assert entry["value"] == f"{settings.data_dir} (FINETUNE_DATA_DIR)"


def test_a_command_in_a_subdirectory_uses_the_project_database(tmp_path):
    project = tmp_path / "project"
    first = run(["data", "ingest", str(write_feedback(tmp_path))], cwd=project, env={"FINETUNE_DATA_DIR": ".finetune"})
    assert first.returncode == 0, first.stderr
    sub = project / "notebooks"
    sub.mkdir()
    status = run(["status", "--json"], cwd=sub)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["database"] == str(project / ".finetune" / "finetune.db")
    assert json.loads(status.stdout)["feedback_events"] == 30
    assert not (sub / ".finetune").exists()


# .env.example, copied verbatim ------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS and not k.startswith("FINETUNE_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, env=clean_env(**(env or {})), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def write_feedback(folder: Path) -> Path:
    path = folder / "feedback.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event in make_events(30)))
    return path


def test_env_example_copied_verbatim_runs_every_command(tmp_path):
    team = tmp_path / "team"
    team.mkdir()
    shutil.copy(ROOT / ".env.example", team / ".env")
    for args in (["status"], ["config"], ["data", "ingest", str(write_feedback(tmp_path))], ["data", "build", "support"],
                 ["data", "export", "support@1", "--target", "openai"]):  # fmt: skip
        done = run(args, cwd=team)
        assert done.returncode == 0, f"finetune {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        assert "Warning" not in done.stderr, done.stderr
    assert "per-user default" in run(["config"], cwd=team).stdout

    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=team, env=clean_env(FINETUNE_PORT=str(port)),
                             stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_until(lambda: healthy(port, serve), timeout=30, what="serve from a verbatim .env.example")
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(15) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(5)
        log.close()
    assert "Slack is off" in (tmp_path / "serve.log").read_text()


def healthy(port: int, serve: subprocess.Popen) -> bool:
    if serve.poll() is not None:
        raise AssertionError(f"serve exited with {serve.returncode}")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def test_env_example_lists_every_setting_once():
    lines = [line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line
             and not line.startswith("#")]  # fmt: skip
    assert sorted(lines) == sorted(SETTINGS)
