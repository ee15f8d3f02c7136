"""`finetune demo --fast` end to end, as a user runs it: no keys, no network, the loop run twice on real parts.

It pretrains the tiny base, serves simulated customers through the registry, trains two candidates with real
local LoRA jobs, evaluates them with the stand-in judge over HTTP, canaries them under the guard, and ends with
round 1 promoted and round 2 rolled back. What it printed and what it stored must agree.
"""

from __future__ import annotations

import re

from core.demo.judge import start_judge, verdict
from core.demo.samples import profile
from core.demo.users import ideal_reply, prompts
from core.platform.store import open_store
from core.vocabulary import LoopOutcome
from tests.conftest import finetune_env, run_finetune


def test_the_demo_promotes_a_better_candidate_and_rolls_back_a_worse_one(tmp_path, settings):
    where = tmp_path / "demo"
    done = run_finetune(["demo", "--fast", "--dir", str(where)], finetune_env(settings), timeout=600)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "Round 1 ends promoted" in out and "Round 2 ends rolled_back" in out, out[-4000:]
    assert "as ana and ben: the demo's configured approvers" in out  # it says who approved
    assert "Slack ›" in out and "↳" in out  # the messages Slack would get, threads included
    assert "Traceback" not in out + done.stderr
    store = open_store(where / "data" / "finetune.db")
    runs = store.query("SELECT outcome, version_id FROM loop_runs ORDER BY created_at")
    assert [(r["outcome"], r["version_id"]) for r in runs] == [
        (LoopOutcome.PROMOTED, "support:v2"), (LoopOutcome.ROLLED_BACK, "support:v3"),
    ]  # fmt: skip
    [production] = store.query(
        "SELECT model_version_id, canary_version_id FROM model_aliases WHERE alias = 'production'"
    )
    assert (production["model_version_id"], production["canary_version_id"]) == ("support:v2", None)
    jobs = store.query("SELECT status FROM jobs WHERE provider = 'local'")
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"]
    assert store.scalar("SELECT COUNT(*) FROM canary_guard_actions WHERE action = 'proposed'") == 1
    page = re.search(r"open (\S+\.html)", out)
    assert page and (where / "data" / "reports").is_dir() and page.group(1).endswith(".html")
    store.close()


def test_a_second_demo_replaces_only_a_demo_directory(tmp_path, settings):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    done = run_finetune(["demo", "--dir", str(mine)], finetune_env(settings), timeout=60)
    assert done.returncode != 0 and "not a demo directory" in done.stdout + done.stderr
    assert (mine / "notes.txt").read_text() == "keep me"


def test_the_stand_in_judge_prefers_what_the_reviewers_want_over_http():
    import random

    import httpx

    system = profile("support").system
    [message] = prompts("support", 1, random.Random(4))
    ideal = ideal_reply("support", message)
    prompt = (
        f"rubric\n<conversation>\nSYSTEM: {system}\n\nUSER: {message}\n</conversation>\n\n"
        f"<answer_a>\nLet me analyze this for you. Something else entirely.\n</answer_a>\n\n<answer_b>\n{ideal}\n</answer_b>"
    )
    assert verdict(prompt) == "B"
    assert (
        verdict(
            prompt.replace("<answer_a>\nLet me analyze this for you. Something else entirely.", f"<answer_a>\n{ideal}")
        )
        == "TIE"
    )
    assert verdict("not a judge prompt") == "TIE"
    judge = start_judge()
    try:
        reply = httpx.post(f"{judge.url}/chat/completions", json={"model": "demo-judge", "messages": [
            {"role": "user", "content": prompt}]}, timeout=5).json()  # fmt: skip
        assert reply["choices"][0]["message"]["content"].splitlines()[-1] == "WINNER: B"
        assert httpx.post(f"{judge.url}/chat/completions", content=b"{", timeout=5).status_code == 400
    finally:
        judge.stop()
