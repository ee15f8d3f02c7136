"""kill -9 of `finetune serve` in the middle of a launch and of a poll: no duplicate job, no lost
notification, polling resumes. The provider is the stateful OpenAI fake; Slack is the local recorder."""

import signal

import pytest

from core.data import datasets, feedback
from core.platform.actors import cli_actor
from core.platform.store import open_store
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, sign, slash_body, svc, wait_until
from tests.feedback_samples import make_events
from tests.openai_fake import API_KEY, start_fake

MODEL = "gpt-4o-mini-2024-07-18"


@pytest.fixture
def openai_fake():
    fake, server = start_fake()
    yield fake
    for release in fake.stalls.values():
        release.set()
    server.shutdown()
    server.server_close()


def test_kill_during_launch_and_poll(settings, store, start_serve, fake_slack, openai_fake):
    import urllib.request

    feedback.ingest_batch(store, make_events(60), actor=cli_actor())
    version = datasets.build_dataset(store, name="support", actor=cli_actor())
    env = {
        "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": f"{openai_fake.url}/v1", "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake_slack.api_url, "FINETUNE_SLACK_CHANNEL": "CJOBS",
        "FINETUNE_POLL_SECONDS": "0.3", "FINETUNE_OUTBOX_SECONDS": "0.2", "FINETUNE_AUTO_APPROVE_USD": "100",
        "FINETUNE_OPERATORS": "U123",  # the Slack user who launches
    }  # fmt: skip

    # 1. Kill serve after the provider created the job but before serve heard back.
    release_create = openai_fake.stall_after("POST /fine_tuning/jobs")
    serve = start_serve(settings, **env)
    body = slash_body(
        f"launch {version.id} openai {MODEL} --epochs 1", response_url=fake_slack.response_url(), trigger_id="T-42"
    )
    request = urllib.request.Request(f"{serve.url}/slack/events", data=body.encode(), headers=sign(body), method="POST")
    assert urllib.request.urlopen(request, timeout=5).status == 200
    wait_until(lambda: openai_fake.stalled, timeout=30, what="the job creation at the provider")
    serve.stop(signal.SIGKILL)
    release_create.set()
    [job] = open_store(settings.db_path).query("SELECT id, status, provider_job_id FROM jobs")
    assert job["status"] == "submitting" and job["provider_job_id"] is None
    assert len(openai_fake.jobs) == 1

    # 2. Restart: the poller resubmits with the same key and finds the job; nothing is created twice.
    serve = start_serve(settings, **env)
    db = open_store(settings.db_path)
    wait_until(lambda: db.scalar("SELECT provider_job_id FROM jobs"), timeout=30, what="resubmission")
    assert len(openai_fake.jobs) == 1
    provider_job = db.scalar("SELECT provider_job_id FROM jobs")
    assert provider_job in openai_fake.jobs

    # 3. Kill serve in the middle of a poll, then let the job finish while serve is down.
    openai_fake.advance(provider_job, "queued")
    openai_fake.advance(provider_job, "running")
    release_poll = openai_fake.stall_after(f"GET /fine_tuning/jobs/{provider_job}")
    openai_fake.stalled.clear()
    wait_until(lambda: openai_fake.stalled, timeout=30, what="a poll in flight")
    serve.stop(signal.SIGKILL)
    release_poll.set()
    openai_fake.stalls.clear()
    openai_fake.advance(provider_job, "succeeded", fine_tuned_model="ft:gpt-4o-mini:acme:support:1")

    # 4. Restart: polling resumes, the job succeeds, the model is registered, and Slack heard every step.
    start_serve(settings, **env)
    wait_until(lambda: db.scalar("SELECT status FROM jobs") == "succeeded", timeout=30, what="success after restart")
    assert db.scalar("SELECT provider_model_id FROM model_versions") == "ft:gpt-4o-mini:acme:support:1"
    assert len(openai_fake.jobs) == 1 and db.scalar("SELECT count(*) FROM jobs") == 1
    wait_until(
        lambda: db.scalar("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0, timeout=30, what="delivery"
    )
    posted = fake_slack.method_calls("chat.postMessage")
    updates = fake_slack.method_calls("chat.update")
    job_posts = [p for p in posted if job["id"] in p["text"]]
    assert len(job_posts) == 1, "one Slack message per job"
    assert any("succeeded" in u["text"] for u in updates)


def test_openai_webhook_triggers_an_immediate_poll(settings, store, start_serve, openai_fake):
    import base64
    import hashlib
    import hmac
    import json
    import time
    import urllib.error
    import urllib.request

    secret = "whsec_" + base64.b64encode(b"webhook-secret-for-tests-0001").decode()
    feedback.ingest_batch(store, make_events(60), actor=cli_actor())
    version = datasets.build_dataset(store, name="support", actor=cli_actor())
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": f"{openai_fake.url}/v1", "OPENAI_WEBHOOK_SECRET": secret,
               "FINETUNE_POLL_SECONDS": "3600"}  # fmt: skip
    from core.platform.settings import Settings
    from core.training.jobs import launch_job

    launched = launch_job(
        svc(store, Settings(_env_file=None, data_dir=settings.data_dir, openai_api_key=API_KEY,
                            openai_base_url=f"{openai_fake.url}/v1")),
        dataset_version=version.id, provider="openai", base_model=MODEL, actor=cli_actor(),
    )  # fmt: skip
    provider_job = launched.job.provider_job_id
    serve = start_serve(settings, **env)
    time.sleep(0.5)  # let serve's first scheduled poll pass; from now on only the webhook can update the job
    openai_fake.advance(provider_job, "cancelled")
    body = json.dumps({"id": "evt_1", "object": "event", "type": "fine_tuning.job.cancelled", "created_at": int(time.time()),
                       "data": {"id": provider_job}}).encode()  # fmt: skip

    def post(headers):
        request = urllib.request.Request(f"{serve.url}/webhooks/openai", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    ts = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signature = base64.b64encode(hmac.new(key, f"wh_1.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    headers = {
        "webhook-id": "wh_1",
        "webhook-timestamp": ts,
        "webhook-signature": f"v1,{signature}",
        "Content-Type": "application/json",
    }
    assert post({**headers, "webhook-signature": "v1,AAAA"})[0] == 400
    status, answer = post(headers)
    assert status == 200 and answer == {"job": launched.job.id, "status": "cancelled"}


def test_racing_workers_of_one_delivery_act_once(settings):
    """Redeliveries are acked at once and race in their workers: exactly one records the key and acts."""
    import threading

    from bot.slack.listeners.redelivery import first_delivery

    services = [svc(open_store(settings.db_path), settings) for _ in range(6)]  # a connection per worker
    start, firsts = threading.Barrier(len(services)), []

    def worker(service):
        start.wait()
        firsts.append(first_delivery(service, {"trigger_id": "T-race"}))

    threads = [threading.Thread(target=worker, args=(s,)) for s in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for service in services:
        service.close()
    assert sorted(firsts) == [False] * 5 + [True]
