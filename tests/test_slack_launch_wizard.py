"""`/finetune launch` alone: the modal wizard, driven by signed slash-command, block_actions and view_submission payloads."""

import json
import time
import urllib.parse

import pytest
from starlette.testclient import TestClient

from bot.serve import build_app
from bot.slack.blocks.launch import (
    LAUNCH_VIEW,
    METHOD_ACTION,
    MODEL_ACTION,
    PROVIDER_ACTION,
    VERSION_ACTION,
    hyperparameter_action,
)
from bot.slack.listeners.launch_wizard import Choices, launch_argv, opens_wizard
from core.data import datasets
from core.platform.actors import cli_actor
from core.training import planning
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, slash_body, svc, wait_until

MODEL = "gpt-4o-mini-2024-07-18"
EPOCHS = hyperparameter_action("epochs")


def wizard_settings(tmp_path, fake_slack, **overrides):
    return make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url,
        slack_channel="CNOTIFY", operators=["UOP"], approvers=["UAPPROVER"], **overrides,
    )  # fmt: skip


@pytest.fixture
def settings(tmp_path, fake_slack):
    return wizard_settings(tmp_path, fake_slack)


@pytest.fixture
def services(store, settings, fake):
    return svc(store, settings)


@pytest.fixture
def versions(version, store):
    """support@1 (every agent) and, built after it, support@2 (the support agent only)."""
    recipe = datasets.recipe_from(filters={"agents": ["support"]})
    newer = datasets.build_dataset(store, name="support", actor=cli_actor(), recipe=recipe)
    return version.id, newer.id


def client_for(services):
    return TestClient(build_app(services), base_url="http://127.0.0.1")


@pytest.fixture
def app(services):
    with client_for(services) as client:
        yield client


def post(app, body: str):
    return app.post("/slack/events", content=body, headers=sign(body))


def slash_launch(app, fake_slack, *, user="UOP", text="launch"):
    return post(app, slash_body(text, user_id=user, response_url=fake_slack.response_url("launch")))


def updates(fake_slack) -> list[dict]:
    return [call["view"] for call in fake_slack.method_calls("views.update")]


def next_view(fake_slack, seen: int) -> dict:
    """The modal as the worker updated it after `seen` earlier updates."""
    found = wait_until(lambda: len(updates(fake_slack)) > seen and updates(fake_slack), what="the wizard's update")
    return found[seen]


def inputs(view: dict) -> dict[str, dict]:
    """action id -> the input block holding it."""
    return {block["element"]["action_id"]: block for block in view["blocks"] if block["type"] == "input"}


def options(view: dict, action_id: str) -> list[str]:
    return [option["value"] for option in inputs(view)[action_id]["element"]["options"]]


def state_of(view: dict, **chosen: str) -> dict:
    """The view's state.values as Slack sends them: initial values, with `chosen` (action id -> value) changed."""
    values = {}
    for action_id, block in inputs(view).items():
        element = block["element"]
        if element["type"] == "static_select":
            value = chosen.get(action_id, (element.get("initial_option") or {}).get("value"))
            state = {"type": "static_select", "selected_option": {"value": value} if value else None}
        else:
            state = {"type": element["type"], "value": chosen.get(action_id, element.get("initial_value"))}
        values[block["block_id"]] = {action_id: state}
    return values


def payload_view(view: dict, **chosen: str) -> dict:
    return {"id": "V1", "type": "modal", "callback_id": LAUNCH_VIEW, "private_metadata": view["private_metadata"],
            "hash": "1.x", "state": {"values": state_of(view, **chosen)}}  # fmt: skip


def choose(app, view: dict, action_id: str, value: str, *, user="UOP"):
    """A person picks `value` in the select (or types it in the number input) `action_id`."""
    block = inputs(view)[action_id]
    action = {"action_id": action_id, "block_id": block["block_id"], "action_ts": f"{time.time():.6f}"}
    if block["element"]["type"] == "static_select":
        action |= {"type": "static_select", "selected_option": {"value": value}}
    else:
        action |= {"type": "number_input", "value": value}
    payload = {
        "type": "block_actions", "team": {"id": "T1"}, "user": {"id": user, "team_id": "T1"}, "api_app_id": "A1",
        "trigger_id": f"trig-{time.monotonic_ns()}", "container": {"type": "view", "view_id": "V1"},
        "view": payload_view(view, **{action_id: value}), "actions": [action],
    }  # fmt: skip
    return post(app, urllib.parse.urlencode({"payload": json.dumps(payload)}))


def submit(app, view: dict, *, user="UOP", trigger=None, **chosen: str):
    payload = {
        "type": "view_submission", "team": {"id": "T1"}, "user": {"id": user, "team_id": "T1"}, "api_app_id": "A1",
        "trigger_id": trigger or f"trig-{time.monotonic_ns()}", "view": payload_view(view, **chosen),
    }  # fmt: skip
    return post(app, urllib.parse.urlencode({"payload": json.dumps(payload)}))


def text_of(view: dict) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def walk_to_model(app, fake_slack, *, version: str, provider: str = "openai", model: str = MODEL) -> tuple[dict, int]:
    """Open the wizard and choose a version, a provider and a base model; the last view and updates so far."""
    slash_launch(app, fake_slack)
    view = next_view(fake_slack, 0)
    for step, (action_id, value) in enumerate(
        [(VERSION_ACTION, version), (PROVIDER_ACTION, provider), (MODEL_ACTION, model)], start=1
    ):
        assert choose(app, view, action_id, value).status_code == 200
        view = next_view(fake_slack, step)
    return view, 4


def launch_answer(fake_slack) -> str:
    [answer] = wait_until(lambda: fake_slack.responses("launch"), what="the launch's answer")
    return json.dumps(answer, ensure_ascii=False)


# Opening -------------------------------------------------------------------------------------------------------


def test_launch_alone_opens_the_wizard_with_the_versions_newest_first(app, fake_slack, versions):
    started = time.monotonic()
    assert slash_launch(app, fake_slack).status_code == 200
    assert time.monotonic() - started < 3
    [opened] = wait_until(lambda: fake_slack.method_calls("views.open"), timeout=3, what="views.open")
    assert opened["view"]["callback_id"] == LAUNCH_VIEW
    view = next_view(fake_slack, 0)
    assert options(view, VERSION_ACTION) == [versions[1], versions[0]]
    assert options(view, METHOD_ACTION) == ["supervised", "dpo"]
    assert PROVIDER_ACTION not in inputs(view)  # it appears once a version is chosen
    assert all(inputs(view)[a].get("dispatch_action") for a in (VERSION_ACTION, METHOD_ACTION))
    metadata = json.loads(view["private_metadata"])
    assert metadata == {"channel": "C1", "response_url": fake_slack.response_url("launch")}
    assert fake_slack.responses("launch") == []  # no typed command ran


def test_launch_with_arguments_is_still_the_typed_command(app, fake_slack, versions):
    slash_launch(app, fake_slack, text=f"launch {versions[0]} openai {MODEL}")
    assert "job_" in launch_answer(fake_slack)
    assert fake_slack.method_calls("views.open") == []


def test_without_any_version_the_wizard_says_how_to_build_one(app, fake_slack):
    slash_launch(app, fake_slack)
    assert "finetune data build NAME" in text_of(next_view(fake_slack, 0))


def test_a_person_who_may_not_launch_gets_no_wizard(app, fake_slack, store, versions):
    slash_launch(app, fake_slack, user="UVIEWER")
    view = next_view(fake_slack, 0)
    assert "may not launch fine-tuning jobs" in text_of(view) and "submit" not in view
    [row] = store.query("SELECT actor, outcome FROM audit_log WHERE command = 'launch form'")
    assert row == {"actor": "UVIEWER", "outcome": "error"}


# Choosing ------------------------------------------------------------------------------------------------------


def test_each_choice_updates_the_modal_down_to_the_estimate(app, fake_slack, services, versions):
    view, _ = walk_to_model(app, fake_slack, version=versions[0])
    [first, second] = updates(fake_slack)[1:3]
    assert {"openai", "azure", "bedrock", "local"} == set(options(first, PROVIDER_ACTION))
    assert MODEL in options(second, MODEL_ACTION) and "amazon.nova-micro-v1:0" not in options(second, MODEL_ACTION)
    fields = inputs(view)
    assert {EPOCHS, hyperparameter_action("batch_size"), hyperparameter_action("learning_rate_multiplier")} <= set(
        fields
    )
    estimate = planning.estimate_version_cost(
        services.store, version=versions[0], base_model=MODEL, actor=cli_actor(), data_dir=services.data_dir,
        catalog=services.catalog,
    )  # fmt: skip
    assert fields[EPOCHS]["element"]["initial_value"] == str(estimate.epochs)  # the suggestion, prefilled
    text = text_of(view)
    assert f"${estimate.usd:,.2f}" in text and f"{estimate.billed_tokens:,} billed tokens" in text
    assert "exact token counts" in text and "starts at once" in text


def test_changing_the_epochs_updates_the_estimate_and_keeps_what_was_typed(app, fake_slack, services, versions):
    view, seen = walk_to_model(app, fake_slack, version=versions[0])
    choose(app, view, EPOCHS, "7")
    updated = next_view(fake_slack, seen)
    estimate = planning.estimate_version_cost(
        services.store, version=versions[0], base_model=MODEL, actor=cli_actor(), data_dir=services.data_dir,
        epochs=7, catalog=services.catalog,
    )  # fmt: skip
    assert "× 7 epochs" in text_of(updated) and f"${estimate.usd:,.2f}" in text_of(updated)
    assert inputs(updated)[EPOCHS]["element"]["initial_value"] == "7"
    assert inputs(updated)[EPOCHS]["block_id"] == inputs(view)[EPOCHS]["block_id"]  # Slack keeps the typed value


def test_another_base_model_brings_its_own_suggestions(app, fake_slack, versions):
    view, seen = walk_to_model(app, fake_slack, version=versions[0])
    choose(app, view, PROVIDER_ACTION, "local")
    local = next_view(fake_slack, seen)
    assert MODEL_ACTION in inputs(local) and EPOCHS not in inputs(local)  # the model was openai's: choose again
    assert "tiny" in options(local, MODEL_ACTION)
    choose(app, local, MODEL_ACTION, "tiny")
    tiny = next_view(fake_slack, seen + 1)
    assert inputs(tiny)[EPOCHS]["block_id"] != inputs(view)[EPOCHS]["block_id"]
    assert hyperparameter_action("learning_rate") in inputs(tiny) and "$0.00" in text_of(tiny)


def test_dpo_offers_only_the_base_models_that_train_with_it(app, fake_slack, versions):
    view, seen = walk_to_model(app, fake_slack, version=versions[0])
    choose(app, view, METHOD_ACTION, "dpo")
    dpo = next_view(fake_slack, seen)
    assert "gpt-4.1-mini-2025-04-14" in options(dpo, MODEL_ACTION)
    assert MODEL not in options(dpo, MODEL_ACTION)  # gpt-4o-mini offers no DPO: it is no longer chosen
    assert EPOCHS not in inputs(dpo) and "Estimated cost" not in text_of(dpo)


# Launching -----------------------------------------------------------------------------------------------------


def test_launch_runs_the_typed_commands_path_and_answers_where_it_was_asked(app, fake_slack, store, versions):
    view, _ = walk_to_model(app, fake_slack, version=versions[0])
    response = submit(app, view, trigger="trig-launch", **{EPOCHS: "2"})
    assert response.status_code == 200 and not response.content
    answer = launch_answer(fake_slack)
    [job] = store.query("SELECT id, status, requested_by, hyperparameters, base_model FROM jobs")
    assert job["id"] in answer and job["requested_by"] == "slack:UOP" and job["base_model"] == MODEL
    assert job["status"] != "pending_approval" and json.loads(job["hyperparameters"])["epochs"] == 2
    [row] = store.query("SELECT actor, face FROM audit_log WHERE command = 'launch_job'")
    assert row == {"actor": "UOP", "face": "slack"}
    submit(app, view, trigger="trig-launch-retry", **{EPOCHS: "2"})  # the same modal again: no second job
    wait_until(lambda: len(fake_slack.responses("launch")) == 2, what="the second answer")
    assert store.scalar("SELECT count(*) FROM jobs") == 1
    assert "already launched a job" in json.dumps(fake_slack.responses("launch")[1])


def test_over_budget_the_launch_waits_for_an_approver(tmp_path, fake_slack, store, fake, versions):
    services = svc(store, wizard_settings(tmp_path, fake_slack, auto_approve_usd=0))
    with client_for(services) as app:
        view, _ = walk_to_model(app, fake_slack, version=versions[0])
        assert "wait for an approver" in text_of(view)
        submit(app, view)
        answer = launch_answer(fake_slack)
    assert "Waiting for approval" in answer
    assert store.scalar("SELECT status FROM jobs") == "pending_approval"
    assert store.scalar("SELECT count(*) FROM approvals WHERE status = 'pending'") == 1


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [("epochs", "999", "outside the allowed range"), ("batch_size", "2.5", "must be a whole number")],
)
def test_a_bad_hyperparameter_is_reported_on_its_field(app, fake_slack, store, versions, name, value, said):
    view, _ = walk_to_model(app, fake_slack, version=versions[0])
    action = hyperparameter_action(name)
    answer = submit(app, view, **{action: value}).json()
    block = inputs(view)[action]["block_id"]
    assert answer["response_action"] == "errors" and list(answer["errors"]) == [block]
    assert f"{name}={value!r}" in answer["errors"][block] and said in answer["errors"][block]
    time.sleep(0.3)
    assert store.scalar("SELECT count(*) FROM jobs") == 0


def test_launch_without_a_base_model_asks_for_it_under_its_select(app, fake_slack, versions):
    slash_launch(app, fake_slack)
    view = next_view(fake_slack, 0)
    choose(app, view, VERSION_ACTION, versions[0])
    view = next_view(fake_slack, 1)
    assert submit(app, view).json()["errors"] == {PROVIDER_ACTION: "Choose where to train."}
    assert submit(app, view, **{VERSION_ACTION: ""}).json()["errors"] == {
        VERSION_ACTION: "Choose the dataset version to train on."
    }


def test_hyperparameters_of_an_earlier_model_are_not_launched(services, versions):
    stale = Choices(version=versions[0], provider="openai", model=MODEL, token="0000000000",
                    hyperparameters={"epochs": "3"}, blocks={MODEL_ACTION: MODEL_ACTION})  # fmt: skip
    from bot.slack.listeners.launch_wizard import launch_problems

    assert "catching up" in launch_problems(services, stale)[MODEL_ACTION]


# The pieces ----------------------------------------------------------------------------------------------------


def test_the_wizard_builds_the_command_a_person_would_type():
    choices = Choices(version="support@1", provider="openai", model=MODEL, method="supervised",
                      hyperparameters={"epochs": "3.0", "learning_rate_multiplier": "0.5", "batch_size": ""})  # fmt: skip
    assert launch_argv(choices) == [
        "launch", "support@1", "openai", MODEL, "--method", "supervised", "--epochs", "3", "--lr-multiplier", "0.5",
    ]  # fmt: skip
    assert opens_wizard("launch") and opens_wizard("  launch ")
    assert not opens_wizard("launch support@1") and not opens_wizard("jobs launch")


def test_in_the_terminal_launch_without_arguments_is_a_usage_error_naming_them(cli):
    code, _, err = cli("launch")
    assert code == 2
    assert "Missing argument 'VERSION'" in err
    assert "Usage: finetune launch [OPTIONS] VERSION {openai|azure|bedrock|local} BASE_MODEL" in err
