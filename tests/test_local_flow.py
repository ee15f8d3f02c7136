"""With no keys and no network: a Slack user launches a local job, watches its loss in Slack and the terminal,
and the candidate it registers answers an OpenAI client through /v1/chat/completions; an agent launches one
over MCP as it would on any provider."""

from __future__ import annotations

import json

import openai
import pytest
from starlette.testclient import TestClient

from bot.serve import build_app
from core.providers.local import provider as local_provider
from core.providers.local.runs import RunDir, is_running, runs_root
from core.training import jobs
from core.vocabulary import JobState
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, make_settings, sign, slash_body, svc, wait_until
from tests.test_registry_mcp import session

APP_TOKEN = "shop-token-" + "x" * 32
FINAL = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


@pytest.fixture
def settings(tmp_path, fake_slack):
    return make_settings(
        tmp_path, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.api_url,
        slack_channel="CNOTIFY", operators=["U123"], app_tokens=f"shop:{APP_TOKEN}",
    )  # fmt: skip


@pytest.fixture
def services(store, settings):
    services = svc(store, settings)
    yield services
    for run_path in runs_root(settings).glob("*"):  # stop any training process a failed assertion left behind
        info = RunDir(run_path).read_process()
        if info is not None and is_running(info):
            local_provider.LocalProvider(settings).cancel(run_path.name)
    for child in list(local_provider._children.values()):
        child.wait(timeout=30)


def slash(http: TestClient, fake_slack, text: str, name: str) -> dict:
    body = slash_body(text, response_url=fake_slack.response_url(name))
    assert http.post("/slack/events", content=body, headers=sign(body)).status_code == 200
    [answer] = wait_until(lambda: fake_slack.responses(name), what=f"the answer to {text!r}", timeout=30)
    return answer


def test_a_local_job_launched_in_slack_trains_shows_its_loss_and_its_candidate_answers_openai_clients(
    services, store, version, fake_slack, cli
):
    with TestClient(build_app(services), base_url="http://127.0.0.1") as http:
        launched = slash(http, fake_slack, f"jobs launch {version.id} --provider local --base-model tiny --epochs 2",
                         "launch")  # fmt: skip
        [job_id] = [row["id"] for row in store.query("SELECT id FROM jobs")]
        assert job_id in json.dumps(launched)

        # serve's poller follows the job; here the test polls as it would
        done = wait_until(lambda: (j := jobs.poll_job(services, job_id)).status in FINAL and j, timeout=120,
                          interval=0.3, what="the local job to finish")  # fmt: skip
        assert done.status is JobState.SUCCEEDED, done.error
        losses = [value for _, value in jobs.job_events(store, job_id).loss_series()["train_loss"]]
        assert len(losses) >= 4 and min(losses[-2:]) < losses[0]  # the loss fell

        code, out, _ = cli("job", job_id)
        assert code == 0 and "succeeded" in out and "train_loss" in out
        shown = slash(http, fake_slack, f"job {job_id}", "show")
        assert "Loss curve attached" in json.dumps(shown)
        assert wait_until(lambda: fake_slack.method_calls("files.completeUploadExternal"), what="the loss curve")

        [candidate] = store.query("SELECT model_version_id FROM model_aliases WHERE alias = 'candidate'")
        version_id = candidate["model_version_id"]
        client = openai.OpenAI(api_key=APP_TOKEN, base_url="http://127.0.0.1/v1", http_client=http, max_retries=0)
        reply = client.chat.completions.create(
            model=version_id, messages=[{"role": "user", "content": "Where is my order?"}], max_tokens=8,
            temperature=0,
        )  # fmt: skip
        assert reply.model == version_id and reply.choices[0].message.content is not None
        assert reply.usage is not None and reply.usage.completion_tokens >= 1


def test_an_agent_launches_a_local_job_over_mcp_and_reads_it_succeed(services, store, version):
    _, [launched] = session(
        services,
        ("launch_job", {"version": version.id, "provider": "local", "base_model": "tiny",
                        "hyperparameters": {"epochs": 1}}),
    )  # fmt: skip
    assert not launched.is_error, launched.content[0].text
    job_id = launched.structured_content["job"]["id"]
    done = wait_until(lambda: (j := jobs.poll_job(services, job_id)).status in FINAL and j, timeout=120,
                      interval=0.3, what="the local job to finish")  # fmt: skip
    assert done.status is JobState.SUCCEEDED, done.error
    _, [status] = session(services, ("job_status", {"job_id": job_id}))
    assert status.structured_content["status"] == "succeeded" and status.structured_content["model_id"]
