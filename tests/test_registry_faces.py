"""Models and deployments through the human faces: the `finetune` CLI and signed `/finetune` requests to bolt."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from bot.serve import build_app
from bot.slack.blocks import render_outcome
from bot.slack.listeners.commands import run_slack_text
from core import actions, registry
from core.platform.actors import SCHEDULER, Actor
from core.platform.store import Store, open_store
from core.platform.timeutil import iso
from core.vocabulary import Face, Role
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, slash_body, svc, wait_until
from tests.test_registry import approve_by_quorum, lineage

ANN = Actor("ann", Face.CLI, role=Role.OPERATOR)
BOB = Actor("U2", Face.SLACK, role=Role.APPROVER)


def register(store: Store, count: int, *, job_id: str | None = None, dataset_version: str | None = None) -> None:
    with store.write():
        for number in range(1, count + 1):
            registry.register_version(
                store, name="support", provider="openai", provider_model_id=f"ft:gpt-4o-mini:acme:support:{number}",
                job_id=job_id, dataset_version_id=dataset_version, base_model="gpt-4o-mini",
                metrics={"train_loss": 1.25}, cost_usd=3.5, actor=SCHEDULER, reason="trained", now=iso(),
            )  # fmt: skip


def serving(store: Store, alias: str) -> registry.AliasState | None:
    return next((a for a in registry.list_aliases(store, "support") if a.alias == alias), None)


def slack_settings(tmp_path, fake_slack, **overrides):
    return make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url,
        operators=["U123"], **overrides,
    )  # fmt: skip


def slash(settings, store: Store, fake_slack, text: str) -> str:
    """Send `/finetune TEXT` as U123 through the real bolt app; the answer's blocks as JSON text."""
    body = slash_body(text, response_url=fake_slack.response_url())
    with TestClient(build_app(svc(store, settings)), base_url="http://127.0.0.1") as client:
        assert client.post("/slack/events", content=body, headers=sign(body)).status_code == 200
        [answer] = wait_until(lambda: fake_slack.responses(), what=f"the answer to {text!r}")
    return json.dumps(answer["blocks"])


# Reading ------------------------------------------------------------------------------------------


def test_list_and_show_a_model_registered_by_a_succeeded_job(cli, store):
    dataset_version, job_id = lineage(store)
    register(store, 1, job_id=job_id, dataset_version=dataset_version)
    code, out, err = cli("models")
    assert code == 0, err
    assert "support" in out and "1 version(s), latest support:v1" in out and "candidate -> support:v1" in out
    code, out, _ = cli("models", "list", "--json")
    [model] = json.loads(out)["models"]
    assert (model["name"], model["versions"], model["aliases"][0]["alias"]) == ("support", 1, "candidate")
    code, out, _ = cli("models", "show", "support")
    assert code == 0 and "support:v1" in out and "support@1 by job_1" in out and "$3.50" in out
    code, out, _ = cli("models", "show", "support:v1", "--json")
    shown = json.loads(out)
    assert (shown["job_id"], shown["dataset_version_id"], shown["provider_model_id"]) == (
        "job_1", "support@1", "ft:gpt-4o-mini:acme:support:1",
    )  # fmt: skip
    code, out, _ = cli("models", "show", "support:1")
    assert code == 0 and "job: job_1" in out and "dataset version: support@1" in out


def test_an_empty_registry_says_how_models_arrive(cli):
    code, out, _ = cli("models")
    assert code == 0 and "No registered models yet" in out


# Changing aliases ----------------------------------------------------------------------------------


def test_a_deploy_to_an_unprotected_alias_applies_at_once(cli, store):
    register(store, 2)
    code, out, err = cli("deploy", "support", "v2", "--alias", "staging", "--reason", "try it")
    assert code == 0, err
    assert "support@staging now serves support:v2." in out
    alias = serving(store, "staging")
    assert alias is not None and alias.version_id == "support:v2"
    [move] = [m for m in registry.history(store, "support").moves if m.alias == "staging"]
    assert (move.move, move.face, move.reason, move.approval_id) == ("deploy", "cli", "try it", None)


def test_a_slack_deploy_to_production_waits_for_two_approvers_then_applies(tmp_path, cli, fake_slack):
    settings = slack_settings(tmp_path, fake_slack)
    store = open_store(settings.db_path)
    register(store, 2)
    shown = slash(settings, store, fake_slack, "deploy support v2")
    [approval] = store.query("SELECT id, action, subject_id, status FROM approvals")
    assert (approval["action"], approval["subject_id"], approval["status"]) == (
        "deploy",
        "support@production",
        "pending",
    )
    assert f"Waiting for approval {approval['id']}" in shown and f"/finetune approve {approval['id']}" in shown
    assert serving(store, "production") is None  # nothing moved yet

    code, out, err = cli("approve", approval["id"], "--reason", "evaluated")  # the OS user: another person
    assert code == 0, err
    assert "pending, 1 of 2 approvals" in out and serving(store, "production") is None  # production needs two
    actions.decide(svc(store, settings), approval_id=approval["id"], actor=BOB, approve=True)
    alias = serving(store, "production")
    assert alias is not None and alias.version_id == "support:v2"
    [entry] = [a for a in registry.history(store, "support").aliases if a.alias == "production"]
    assert (entry.put_by, entry.approval_id) == ("slack:U123", approval["id"])
    assert entry.approved_by is not None and entry.approved_by.startswith("cli:")
    assert entry.approved_by.endswith(", slack:U2")  # both approvers, in the order they approved
    store.close()


def test_a_canary_runs_beside_the_stable_version_then_is_promoted(cli, store):
    register(store, 2)
    assert cli("deploy", "support", "1", "--alias", "staging")[0] == 0
    code, out, err = cli("models", "deploy", "support", "support:v2", "--alias", "staging", "--canary", "10")
    assert code == 0, err
    assert "support@staging now serves support:v1 with canary support:v2 at 10%." in out
    code, out, _ = cli("models", "canary", "support", "60", "--alias", "staging")
    assert code == 0 and "with canary support:v2 at 60%" in out
    code, out, _ = cli("models", "promote", "support", "--alias", "staging")
    assert code == 0 and "support@staging now serves support:v2." in out
    alias = serving(store, "staging")
    assert alias is not None and (alias.version_id, alias.canary_version_id) == ("support:v2", None)
    moves = [m.move for m in registry.history(store, "support").moves if m.alias == "staging"]
    assert moves == ["deploy", "canary", "canary", "promote"]


def test_a_slack_rollback_restores_the_previous_version(tmp_path, fake_slack):
    settings = slack_settings(tmp_path, fake_slack)
    store = open_store(settings.db_path)
    register(store, 2)
    services = svc(store, settings)
    for version in (1, 2):
        registry.request_deploy(services, actor=ANN, name="support", version=version, alias="staging")
    shown = slash(settings, store, fake_slack, "rollback support --alias staging --reason regression")
    assert "support@staging* now serves `support:v1`" in shown
    alias = serving(store, "staging")
    assert alias is not None and alias.version_id == "support:v1"
    last = registry.history(store, "support").moves[-1]
    assert (last.move, last.face, last.actor, last.reason) == ("rollback", "slack", "slack:U123", "regression")
    store.close()


def test_a_rollback_of_production_from_slack_waits_for_approval_then_restores_the_previous_version(tmp_path):
    settings = make_settings(tmp_path, operators=["U123"])
    store = open_store(settings.db_path)
    register(store, 2)
    services = svc(store, settings)
    for version in (1, 2):
        change = registry.request_deploy(services, actor=ANN, name="support", version=version)
        assert change.approval is not None
        approve_by_quorum(services, change.approval.id)
    outcome = run_slack_text(services, user_id="U123", text="rollback support")
    assert outcome.ok, outcome.result
    [approval_id] = [row["id"] for row in store.query("SELECT id FROM approvals WHERE action = 'rollback'")]
    message = render_outcome(outcome)
    assert approval_id in message.text and f"/finetune approve {approval_id}" in json.dumps(message.blocks)
    assert "Until then `support@production -> support:v2`" in json.dumps(message.blocks)
    approve_by_quorum(services, approval_id)
    alias = serving(store, "production")
    assert alias is not None and alias.version_id == "support:v1"
    store.close()


def test_a_retirement_waits_for_an_approver(cli, store):
    register(store, 2)
    code, out, err = cli("models", "retire", "support", "v1", "--reason", "superseded")
    assert code == 0, err
    [approval_id] = [row["id"] for row in store.query("SELECT id FROM approvals WHERE action = 'retire'")]
    assert f"Waiting for approval {approval_id}" in out and f"finetune approve {approval_id}" in out
    assert registry.get_version(store, "support:v1").status == "registered"


# The ledger and resolution -------------------------------------------------------------------------


def test_history_at_a_time_answers_what_served_then(cli, store):
    register(store, 2)
    assert cli("deploy", "support", "v1", "--alias", "staging")[0] == 0
    assert cli("deploy", "support", "v2", "--alias", "staging")[0] == 0
    first_deploy = next(m for m in registry.history(store, "support").moves if m.move == "deploy")
    code, out, err = cli("models", "history", "support", "--at", first_deploy.at)
    assert code == 0, err
    assert "staging -> support:v1" in out and "by cli:" in out and "staging -> support:v2" not in out
    code, out, _ = cli("models", "history", "support", "--json")
    now = {a["alias"]: a["version_id"] for a in json.loads(out)["aliases"]}
    assert now == {"candidate": "support:v2", "staging": "support:v2"}
    code, out, _ = cli("models", "history", "support", "--at", "2000-01-01T00:00:00Z")
    assert code == 0 and "no alias served a version then" in out


def test_resolve_prints_the_version_that_serves_a_key(cli, store, settings):
    register(store, 2)
    services = svc(store, settings)
    registry.request_deploy(services, actor=ANN, name="support", version=1, alias="staging")
    registry.request_deploy(services, actor=ANN, name="support", version=2, alias="staging", canary_share=50)
    for key in ("user-1", "user-2", "user-3", "user-4"):
        expected = "support:v2" if registry.bucket("support", key) < 50 else "support:v1"
        code, out, err = cli("models", "resolve", "support", "--key", key, "--alias", "staging")
        assert code == 0, err
        assert f"serves {expected}" in out and f"bucket {registry.bucket('support', key)}" in out
    code, out, _ = cli("models", "resolve", "support", "--key", "user-1", "--alias", "staging", "--json")
    assert json.loads(out)["version_id"] == registry.resolve_model(store, "support", "user-1", "staging").version_id


# Bad arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (("models", "show", "nope"), 1, "no registered model 'nope'"),
        (("models", "show", "support:v9"), 1, "no model version 'support:v9'"),
        (("deploy", "nope", "v1"), 1, "no registered model 'nope'"),
        (("deploy", "support", "v9", "--alias", "staging"), 1, "support has no version 'support:v9'"),
        (("deploy", "support", "latest"), 1, "`version` must be a version of support"),
        (("deploy", "support", "v1", "--alias", "Prod!"), 1, "`alias` must be 1-40 lowercase letters"),
        (("deploy", "support", "v2", "--canary", "101"), 2, "101 is not in the range 0<=x<=100"),
        (("models", "canary", "support", "150", "--alias", "staging"), 2, "150 is not in the range 0<=x<=100"),
        (("models", "canary", "support", "ten"), 2, "'ten' is not a valid integer"),
        (("models", "history", "support", "--at", "yesterday"), 1, "`at` must be an ISO-8601 time"),
        (("models", "resolve", "support"), 2, "Missing option '--key'"),
        (("models", "resolve", "support", "--key", "u1", "--alias", "staging"), 1, "has no alias 'staging'"),
        (("models", "promote", "support", "--alias", "candidate"), 1, "runs no canary"),
        (("rollback", "support", "--alias", "staging"), 1, "support@staging points at no version"),
        (("models", "retire", "support", "v2"), 1, "still serves support@candidate"),
        (("deploy", "support"), 2, "Missing argument 'VERSION'"),
    ],
)
def test_bad_arguments_get_a_usage_or_named_error(cli, store, argv, code, message):
    register(store, 2)
    exit_code, out, err = cli(*argv)
    assert exit_code == code, out + err
    assert message in " ".join(err.split()), err


def test_bad_arguments_from_slack_are_answered_with_the_usage(tmp_path):
    settings = make_settings(tmp_path, operators=["U123"])
    store = open_store(settings.db_path)
    register(store, 1)
    outcome = run_slack_text(svc(store, settings), user_id="U123", text="deploy support v1 --canary 250")
    assert outcome.exit_code == 2
    shown = json.dumps(render_outcome(outcome).blocks)
    assert "--canary" in shown and "0<=x<=100" in shown
    viewer = run_slack_text(svc(store, settings), user_id="U999", text="deploy support v1 --alias staging")
    assert viewer.exit_code == 1 and "move model aliases" in render_outcome(viewer).text
    store.close()
