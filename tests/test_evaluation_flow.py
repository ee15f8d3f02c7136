"""The evaluation work end to end, with no keys and no network: everything is real but the model providers'
remote servers (the candidate is the local provider's tiny model; the judge an Anthropic-compatible fake).

A local job launched from Slack trains `support:v2` while production serves `support:v1` (an adapter of the
tiny model registered before it). A signed `/finetune eval support:v2 --baseline production` is queued and
serve's scheduler runs it: head to head, judged, with the judge calibrated on the team's edited drafts. `/finetune deploy support v2 --canary 10` then
asks for an approval whose Slack message shows that evaluation; the requester cannot approve it, two other
approvers do with signed button clicks, and the canary serves 10% of callers. Simulated users resolve their
version through `GET /v1/models/support/resolve` and post what became of each draft to `POST /v1/feedback`,
naming the version and arm that served it. When the candidate is truly better, serve's canary guard leaves it
alone and the A/B experiment concludes with the candidate as the winner; on a fresh setup where it is truly
worse, the guard requests the rollback with its evidence in Slack, or performs it under
FINETUNE_CANARY_AUTO_ROLLBACK=true.

Volumes and effects are sized so the always-valid test decides on a thousand outcomes (a 25-30 point
difference, about a hundred of them on the canary); every random draw is seeded.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bot.serve import build_app
from core import registry
from core.data import datasets, feedback
from core.data.datasets import Recipe
from core.evaluation import get_evaluation
from core.evaluation.verdict import Verdict
from core.platform import approvals
from core.platform.actors import SCHEDULER, cli_actor
from core.platform.scheduler import guard_canaries
from core.platform.timeutil import iso
from core.providers.local import provider as local_provider
from core.providers.local.runs import RunDir, is_running, runs_root
from core.services import Services, build_services
from core.training import jobs
from core.vocabulary import ApprovalState, EvaluationState, JobState
from tests import test_evaluation
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, sign, slash_body, wait_until
from tests.feedback_samples import make_events
from tests.test_evaluation import judged_settings
from tests.test_slack_approvals import CHANNEL, click, edits_of, ephemerals, post

APP_TOKEN = "shop-token-" + "y" * 32
APP_AUTH = {"Authorization": f"Bearer {APP_TOKEN}"}
REQUESTER = "UREQ"  # an approver too, who may still never approve their own request
APPROVERS = ("UANN", "UBOB")  # production needs two approvals (FINETUNE_APPROVALS_NEEDED's default)
USERS = 1000  # simulated callers, one outcome each: about 100 on a 10% canary
# The offline evaluation tests' scripted judge and tiny adapters, module fixtures here too.
judge, models = test_evaluation.judge, test_evaluation.models


def flow_settings(tmp_path, referee, fake_slack):
    return judged_settings(
        tmp_path, referee, slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.api_url, slack_channel=CHANNEL, operators=[REQUESTER],
        approvers=[REQUESTER, *APPROVERS], app_tokens=f"shop:{APP_TOKEN}", outbox_seconds=1, poll_seconds=1,
    )  # fmt: skip


@pytest.fixture
def settings(tmp_path, judge, fake_slack):
    return flow_settings(tmp_path, judge, fake_slack)


@pytest.fixture
def services(store, settings) -> Iterator[Services]:
    services = build_services(settings, store=store)
    yield services
    for run_path in runs_root(settings).glob("*"):  # stop any training process a failed assertion left behind
        info = RunDir(run_path).read_process()
        if info is not None and is_running(info):
            local_provider.LocalProvider(settings).cancel(run_path.name)
    for child in list(local_provider._children.values()):
        child.wait(timeout=30)


# Slack and the application, as their clients speak to serve -----------------------------------------------


def as_text(blocks: object) -> str:
    """Block Kit as the text it shows (non-ASCII kept, such as the minus sign of a difference)."""
    return json.dumps(blocks, ensure_ascii=False)


def ask(http: TestClient, fake_slack, text: str, *, name: str, user: str = REQUESTER) -> str:
    """A signed `/finetune TEXT` from `user`; the answer's blocks as text."""
    body = slash_body(text, user_id=user, response_url=fake_slack.response_url(name))
    assert http.post("/slack/events", content=body, headers=sign(body)).status_code == 200
    [answer] = wait_until(lambda: fake_slack.responses(name), timeout=30, what=f"the answer to {text!r}")
    return as_text(answer.get("blocks") or answer)


def posted(fake_slack, *needles: str, timeout: float = 15) -> dict:
    """The one channel message serve's outbox delivered that says every one of `needles`."""

    def says(message: dict) -> bool:
        shown = message["text"] + as_text(message.get("blocks") or [])
        return message["channel"] == CHANNEL and all(needle in shown for needle in needles)

    [found] = wait_until(lambda: [p for p in fake_slack.posted if says(p)], timeout=timeout,
                         what=f"a channel message saying {needles}")  # fmt: skip
    return found


def production(store) -> registry.AliasState:
    [state] = [a for a in registry.list_aliases(store, "support") if a.alias == "production"]
    return state


def serve_outcomes(http: TestClient, *, rates: dict[str, float], seed: int) -> dict[str, dict[str, int]]:
    """USERS callers each resolve their version and report one outcome of a draft it served: accepted (sent as
    drafted, rated 4-5) with its arm's rate in `rates`, else rewritten and rated 2-3. Returns, per arm, how many
    outcomes and how many accepted."""
    rng = random.Random(seed)
    events_, counts = [], {arm: {"outcomes": 0, "accepted": 0} for arm in rates}
    for k in range(USERS):
        key = f"user-{seed}-{k}"
        answer = http.get("/v1/models/support/resolve", params={"key": key}, headers=APP_AUTH)
        assert answer.status_code == 200, answer.text
        served = answer.json()
        accepted = rng.random() < rates[served["arm"]]
        event = {
            "id": f"{key}-turn-1", "agent": "support", "user": key, "prompt": f"Where is order {k}?",
            "output": f"Order {k} ships on Monday from the Leeds warehouse.",
            "rating": rng.choice([4, 5]) if accepted else rng.choice([2, 3]),
            "model_version": served["version"], "arm": served["arm"],
        }  # fmt: skip
        if not accepted:
            event["final"] = f"Order {k} left the Leeds warehouse today; tracking follows by email."
        events_.append(event)
        counts[served["arm"]]["outcomes"] += 1
        counts[served["arm"]]["accepted"] += accepted
    for start in range(0, len(events_), 1000):  # the API takes at most 1,000 events a batch
        answer = http.post("/v1/feedback", json={"events": events_[start : start + 1000]}, headers=APP_AUTH)
        assert answer.status_code == 200, answer.text
        assert answer.json()["stored"] == len(events_[start : start + 1000])
    return counts


# Setting up: trained versions and a canary ---------------------------------------------------------------


def train(http: TestClient, fake_slack, store, dataset: str, *, name: str) -> str:
    """A local job on the tiny model launched from Slack; serve's poller sees it succeed and registers its
    version. Returns the version id."""
    launched = ask(http, fake_slack, f"jobs launch {dataset} --provider local --base-model tiny --epochs 1", name=name)
    [job_id] = [row["id"] for row in store.query("SELECT id FROM jobs WHERE id NOT IN (SELECT job_id FROM"
                                                  " model_versions WHERE job_id IS NOT NULL)")]  # fmt: skip
    assert job_id in launched
    registered = wait_until(
        lambda: store.query("SELECT id FROM model_versions WHERE job_id = ?", (job_id,)), timeout=120, interval=0.2,
        what=f"serve to register the version job {job_id} trained",
    )  # fmt: skip
    assert jobs.get_job(store, job_id).status is JobState.SUCCEEDED
    return str(registered[0]["id"])


def register(services: Services, adapter: Path, *, base: Path, dataset: str | None = None) -> str:
    """The next version of support: a LoRA adapter of the tiny model, registered by hand."""
    with services.store.write():
        version = registry.register_version(
            services.store, name="support", provider="local", provider_model_id=str(adapter), job_id=None,
            dataset_version_id=dataset, base_model=str(base), metrics={}, cost_usd=None, actor=SCHEDULER,
            reason="trained", now=iso(),
        )  # fmt: skip
    return version.id


def serve_first_version(services: Services, version_id: str) -> None:
    """Production starts out on `version_id` (set up directly: the protected move is not under test here)."""
    direct = build_services(services.settings.model_copy(update={"protected_aliases": []}), store=services.store)
    registry.request_deploy(direct, actor=cli_actor(), name="support", version=version_id, alias="production")


def approve_canary(http: TestClient, fake_slack, services: Services, version: str) -> approvals.Approval:
    """`/finetune deploy support vN --canary 10` from the requester; the requester's own click is refused, two other
    approvers' clicks apply it. Returns the approval as decided."""
    store = services.store
    answer = ask(http, fake_slack, f"deploy support {version.split(':')[-1]} --canary 10", name=f"deploy-{version}")
    [asked] = approvals.pending(store).approvals
    assert asked.id in answer and (asked.action, asked.subject_id) == ("canary", "support@production")
    message = posted(fake_slack, asked.id, "Approve", "Reject")

    post(http, click(asked.id, message["ts"], user=REQUESTER))
    [refusal] = wait_until(lambda: ephemerals(fake_slack, REQUESTER), what="the requester's refusal")
    assert "four eyes" in refusal and approvals.get(store, asked.id).status is ApprovalState.PENDING

    post(http, click(asked.id, message["ts"], user=APPROVERS[0]))
    wait_until(lambda: any("1 of 2 approvals" in u["text"] for u in edits_of(fake_slack, message["ts"])),
               what="the request edited to 1 of 2 approvals")  # fmt: skip
    assert production(store).canary_version_id is None  # one vote moves nothing
    post(http, click(asked.id, message["ts"], user=APPROVERS[1]))
    decided = wait_until(
        lambda: (found := approvals.get(store, asked.id)).status is ApprovalState.APPROVED and found,
        what="the second approval",
    )  # fmt: skip
    state = production(store)
    assert (state.canary_version_id, state.canary_share) == (version, 10)
    posted(fake_slack, "`support@production` (canary)", f"canary *{version}* at 10%")  # the move, announced
    return decided


def guard(services: Services) -> str:
    """Serve's canary guard job, run as its scheduler runs it; what it recorded."""
    guard_canaries(services)
    return str(services.store.scalar("SELECT detail FROM scheduler_runs WHERE job_id = 'canaries'"))


# The better candidate: trained, evaluated, approved, and the winner online ------------------------------------


def test_a_trained_candidate_is_evaluated_from_slack_approved_as_a_canary_and_wins_online(
    services,
    store,
    fake_slack,
    judge,
    models,
):
    feedback.ingest_batch(store, make_events(60), actor=cli_actor())
    dataset = datasets.build_dataset(store, name="support", actor=cli_actor(), recipe=Recipe(split=(0.6, 0.1, 0.3)))
    first = register(services, models.first, base=models.base, dataset=dataset.id)
    serve_first_version(services, first)
    with TestClient(build_app(services), base_url="http://127.0.0.1") as http:
        # 1. The candidate: a real local job, followed by serve's poller until it registers its version.
        candidate = train(http, fake_slack, store, dataset.id, name="train")
        assert (first, candidate) == ("support:v1", "support:v2")
        assert (production(store).version_id, production(store).canary_version_id) == (first, None)

        # 2. The evaluation, asked in Slack and run by serve's scheduler.
        judged_before = len(judge.chats())
        queued = ask(http, fake_slack, f"eval {candidate} --baseline production --max-tokens 8", name="eval")
        evaluation_id = str(store.scalar("SELECT id FROM evaluations"))
        assert evaluation_id in queued and "queued" in queued
        done = wait_until(
            lambda: (found := get_evaluation(store, evaluation_id)).status is not EvaluationState.QUEUED
            and found.finished_at and found,
            timeout=60, interval=0.2, what="serve's scheduler to run the queued evaluation",
        )  # fmt: skip
        assert done.status is EvaluationState.SUCCEEDED, done.status_reason
        assert (done.candidate_ref, done.baseline_label) == (candidate, f"production ({first})")
        assert done.requested_by == f"slack:{REQUESTER}"
        examples = list(datasets.examples(store, dataset.id, split="test"))
        edited = sum(example.edited for example in examples)
        summary = done.summary
        assert summary is not None and summary.judge is not None and done.done == done.total == len(examples)
        assert summary.judge.head_to_head.pairs == len(examples) and summary.calibration.examples == edited > 0
        asked = len(judge.chats()) - judged_before
        assert asked == 2 * len(examples) + 2 * edited  # every pair in both orders, every edited draft by its final
        calibration = summary.calibration.result
        assert calibration is not None and calibration.kappa is not None
        trust = f"judge agrees with users {calibration.accuracy:.0%} (kappa {calibration.kappa:.2f})"
        assert done.headline is not None and done.headline.endswith(trust)
        assert store.scalar("SELECT detail FROM scheduler_runs WHERE job_id = 'evaluations'")
        shown = ask(http, fake_slack, f"eval show {evaluation_id}", name="eval-show")
        assert done.headline in shown and f"the judge picks the user's final text {calibration.accuracy:.0%}" in shown
        assert f"Cohen's kappa {calibration.kappa:.2f}" in shown
        # The channel's one message of the evaluation is edited to its headline, calibration included.
        announced = posted(fake_slack, evaluation_id)
        wait_until(
            lambda: [u for u in fake_slack.method_calls("chat.update")
                     if u.get("ts") == announced["ts"] and done.headline in as_text(u["blocks"])],
            what="the evaluation's message edited with its headline",
        )  # fmt: skip

        # 3. The canary: its approval shows the evaluation; two approvers other than the requester apply it.
        decided = approve_canary(http, fake_slack, services, candidate)
        assert decided.facts["Evaluation"] == done.headline
        request = posted(fake_slack, decided.id, "Approve")
        assert done.headline in as_text(request["blocks"]) and trust in as_text(request["blocks"])
        assert decided.approved_by == [f"slack:{a}" for a in APPROVERS] and decided.requested_by == REQUESTER

        # 4. The better candidate's outcomes, as the application reports them.
        counts = serve_outcomes(http, rates={"stable": 0.60, "canary": 0.85}, seed=1)
        share = counts["canary"]["outcomes"] / USERS
        assert 0.07 < share < 0.13  # the 10% canary share, as resolve splits the callers' keys
        again = http.get("/v1/models/support/resolve", params={"key": "user-1-0"}, headers=APP_AUTH).json()
        assert again["version"] == store.scalar('SELECT model_version FROM feedback WHERE "user" = ?', ("user-1-0",))
        stored = store.scalar("SELECT count(*) FROM feedback WHERE model_version = ? AND arm = 'canary'", (candidate,))
        assert stored == counts["canary"]["outcomes"]

        assert guard(services) == "acted on 0"  # serve's guard leaves a better canary alone
        assert not store.query("SELECT * FROM canary_guard_actions") and not approvals.pending(store).approvals
        assert production(store).canary_version_id == candidate

        created = ask(http, fake_slack, "ab create support --alias production", name="ab-create")
        experiment_id = str(store.scalar("SELECT id FROM experiments"))
        assert experiment_id in created
        concluded = ask(http, fake_slack, f'ab conclude {experiment_id} --reason "ship it"', name="ab-conclude")
        assert "concluded" in concluded
        verdict = posted(fake_slack, experiment_id, "winner")
        assert f"*{candidate}* against *{first}* is *winner*" in verdict["text"]
    [row] = store.query("SELECT status, verdict, result FROM experiments")
    analysis = json.loads(row["result"])
    assert (row["status"], row["verdict"]) == ("concluded", Verdict.WINNER)
    assert (analysis["control_n"], analysis["treatment_n"]) == (counts["stable"]["outcomes"],
                                                                counts["canary"]["outcomes"])  # fmt: skip
    assert not analysis["srm"]["mismatch"]
    [acceptance] = analysis["metrics"]
    assert acceptance["treatment"]["value"] == pytest.approx(
        counts["canary"]["accepted"] / counts["canary"]["outcomes"]
    )
    assert acceptance["sequential_p_value"] < 0.05 and acceptance["difference"] > 0


# The worse candidate: the guard asks for the rollback, or performs it -----------------------------------------


@pytest.mark.parametrize("automatic", [False, True], ids=["proposed", "performed"])
def test_a_worse_canary_is_rolled_back_on_the_evidence_of_its_outcomes(
    tmp_path,
    store,
    fake_slack,
    judge,
    models,
    monkeypatch,
    automatic,
):
    if automatic:
        monkeypatch.setenv("FINETUNE_CANARY_AUTO_ROLLBACK", "true")
    services = build_services(flow_settings(tmp_path, judge, fake_slack), store=store)
    assert services.settings.canary_auto_rollback is automatic
    stable = register(services, models.first, base=models.base)
    serve_first_version(services, stable)
    canary = register(services, models.second, base=models.base)
    with TestClient(build_app(services), base_url="http://127.0.0.1") as http:
        approve_canary(http, fake_slack, services, canary)
        counts = serve_outcomes(http, rates={"stable": 0.85, "canary": 0.55}, seed=2)
        assert counts["canary"]["outcomes"] >= 60

        assert guard(services) == "acted on 1"
        [acted] = store.query("SELECT action, approval_id, evidence FROM canary_guard_actions")
        evidence = acted["evidence"]
        assert evidence.startswith(f"the acceptance rate of {canary} is significantly worse than {stable}'s")
        assert f"{counts['canary']['outcomes']:,} canary and {counts['stable']['outcomes']:,} stable" in evidence
        notice = posted(fake_slack, f"Canary *{canary}*", "is worse than")
        assert evidence in notice["text"]

        if automatic:
            assert acted["action"] == "performed" and acted["approval_id"] is None
            assert "Rolled back by the scheduler (FINETUNE_CANARY_AUTO_ROLLBACK)" in notice["text"]
            assert not approvals.pending(store).approvals
        else:
            assert acted["action"] == "proposed"
            [asked] = approvals.pending(store).approvals
            assert (asked.id, asked.action, asked.requested_by) == (acted["approval_id"], "rollback", "scheduler")
            assert f"approve `{asked.id}`" in notice["text"]
            request = posted(fake_slack, asked.id, "Approve", "Reject")
            assert evidence in as_text(request["blocks"])  # deciders read why, beside the buttons
            state = production(store)
            assert (state.version_id, state.canary_version_id) == (stable, canary)  # nothing moved yet
            for approver in APPROVERS:
                post(http, click(asked.id, request["ts"], user=approver))
            wait_until(lambda: approvals.get(store, asked.id).status is ApprovalState.APPROVED, what="the rollback")

        state = production(store)
        assert (state.version_id, state.canary_version_id, state.canary_share) == (stable, None, 0)
        last = registry.history(store, "support").moves[-1]
        assert last.move == "rollback" and (last.reason or "").startswith("canary guard: ")
        assert last.approval_id == (None if automatic else acted["approval_id"])
        posted(fake_slack, "`support@production` (rollback)")
        assert guard(services) == "acted on 0"  # nothing left to guard
        answer = http.get("/v1/models/support/resolve", params={"key": "user-2-0"}, headers=APP_AUTH)
        assert (answer.json()["version"], answer.json()["arm"]) == (stable, "stable")  # every caller is back
