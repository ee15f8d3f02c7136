"""The demo's bundled feedback and its simulated users."""

from __future__ import annotations

import json
import random
import re
import tomllib
from collections import Counter
from datetime import timedelta

import pytest

from core.analytics.patterns import mine_patterns, pattern_report
from core.data import edits, feedback
from core.data.pii import Redactor
from core.demo import AGENTS, generate_events, ideal_reply, population, prompts, react, sample_path
from core.demo.samples import (
    DAYS,
    END,
    FILLERS,
    HEDGE,
    PERSON_PLACEHOLDER,
    SIGN_OFF,
    UNFORTUNATELY,
    parse,
    to_jsonl,
)
from core.errors import InvalidInput
from core.platform.actors import cli_actor
from tests.conftest import ROOT

EVENTS = generate_events()
NEXT_STEP = re.compile(
    r"\n\nWould (Monday|Tuesday|Wednesday|Thursday|Friday) at \d{1,2}(am|pm) work for a 20-minute call\?$"
)
INVOICE = re.compile(r"INV-\d{5}")


def prompt_of(event: dict) -> str:
    return next(m["content"] for m in event["messages"] if m["role"] == "user")


def outcome(event: dict) -> str:
    final = event.get("final")
    if final is None or final == event["output"]:
        return "accepted"
    return "rejected" if event["rating"] in (1, 2, "down") else "edited"


def of(agent: str, kind: str | None = None) -> list[dict]:
    return [e for e in EVENTS if e["agent"] == agent and (kind is None or outcome(e) == kind)]


def share(events: list[dict], holds) -> float:
    return sum(1 for e in events if holds(e)) / len(events)


# The bundled file ----------------------------------------------------------------------------------------------


def test_bundled_file_is_the_generators_output():
    assert sample_path().read_text(encoding="utf-8") == to_jsonl(EVENTS)


def test_the_generator_is_deterministic_and_the_seed_matters():
    assert generate_events(0) == EVENTS
    assert generate_events(1) != EVENTS
    assert generate_events(1) == generate_events(1)


def test_the_file_is_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "demo/*.jsonl" in config["tool"]["setuptools"]["package-data"]["core"]


def test_the_sample_ingests_without_an_error_and_its_pii_is_redacted(store):
    report = feedback.ingest_file(store, sample_path(), actor=cli_actor())
    assert (report.lines, report.ingested, report.error_count, report.skipped) == (300, 300, 0, 0)
    assert report.redactions.by_type["EMAIL"] >= 10 and report.redactions.by_type["PHONE"] >= 10
    rows = store.query("SELECT agent, input_messages, ai_output, final_output FROM feedback")
    stored = " ".join(row["input_messages"] for row in rows)
    assert "[EMAIL]" in stored and "[PHONE]" in stored
    assert "@example." not in stored and "555-01" not in stored
    for row in rows:  # the stored (redacted) messages still give the stored finals as their ideal
        prompt = next(m["content"] for m in json.loads(row["input_messages"]) if m["role"] == "user")
        if row["final_output"] is not None:
            assert ideal_reply(row["agent"], prompt) == row["final_output"]
    assert store.scalar("SELECT count(DISTINCT agent) FROM feedback") == 3
    assert store.scalar("SELECT count(*) FROM feedback WHERE final_output IS NOT NULL") > 150


def test_events_use_the_ingest_format_and_stay_short():
    assert [e["id"] for e in EVENTS] == [f"demo-{n:04d}" for n in range(1, 301)]
    for event in EVENTS:
        assert event["model"] == "gpt-4o-mini" and event["template"] == f"{event['agent']}-v1"
        assert [m["role"] for m in event["messages"]] == ["system", "user"]
        for text in (event["output"], event.get("final") or event["output"]):
            assert 20 <= len(text.split()) <= 60, text
    assert len({prompt_of(e) for e in EVENTS}) >= 290
    assert len({e["intent"] for e in EVENTS}) >= 12


def test_times_fall_in_the_six_weeks_before_the_end_mostly_on_workdays():
    from datetime import datetime

    moments = [datetime.fromisoformat(e["created_at"].replace("Z", "+00:00")) for e in EVENTS]
    assert moments == sorted(moments)
    assert all(END - timedelta(days=DAYS) <= m < END for m in moments)
    assert (max(moments) - min(moments)).days >= 35
    assert share(EVENTS, lambda e: datetime.fromisoformat(e["created_at"][:10]).weekday() < 5) >= 0.85


# The mix and the planted habits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("agent", AGENTS)
def test_the_mix_of_accepted_edited_and_rejected(agent):
    events = of(agent)
    counts = Counter(outcome(e) for e in events)
    assert 0.40 <= counts["accepted"] / len(events) <= 0.50
    assert 0.35 <= counts["edited"] / len(events) <= 0.45
    assert 0.10 <= counts["rejected"] / len(events) <= 0.20
    for event in of(agent, "accepted"):
        assert event["rating"] in (4, 5, "up")
    for event in of(agent, "edited"):
        assert event["rating"] in (3, 4)
        assert edits.compare(event["output"], event["final"]).acceptance >= 0.45
    for event in of(agent, "rejected"):
        assert edits.compare(event["output"], event["final"]).acceptance < 0.3  # a full rewrite


def test_every_final_and_every_accepted_draft_is_the_ideal_reply():
    for event in EVENTS:
        ideal = ideal_reply(event["agent"], prompt_of(event))
        assert event.get("final", ideal) == ideal
        if outcome(event) == "accepted":
            assert event["output"] == ideal


def test_support_drafts_open_with_filler_and_users_sign_off():
    edited, accepted = of("support", "edited"), of("support", "accepted")
    opens_with_filler = lambda e: any(f"\n\n{f} " in e["output"] for f in FILLERS)  # noqa: E731
    assert share(edited, opens_with_filler) >= 0.65
    assert 0.25 <= share(of("support"), opens_with_filler) <= 0.6
    assert share(edited, lambda e: not e["output"].endswith(SIGN_OFF)) >= 0.6
    assert not any(opens_with_filler(e) for e in accepted)
    for event in of("support"):
        final = event.get("final") or event["output"]
        assert not any(f in final for f in FILLERS)
        if event in edited or event in accepted:
            assert final.endswith(f"\n\n{SIGN_OFF}")


def test_sales_users_delete_hedging_and_add_a_concrete_next_step():
    edited = of("sales", "edited")
    assert share(edited, lambda e: f"{HEDGE} " in e["output"]) >= 0.6
    assert share(edited, lambda e: "just wanted to" in e["output"].lower()) >= 0.55
    assert share(edited, lambda e: not NEXT_STEP.search(e["output"])) >= 0.7
    for event in of("sales"):
        final = event.get("final") or event["output"]
        assert HEDGE not in final and "just wanted to" not in final.lower()
        assert NEXT_STEP.search(final), final


def test_billing_users_drop_unfortunately_and_add_the_invoice_number():
    edited = of("billing", "edited")
    bad_news = [e for e in edited if parse("billing", prompt_of(e)).case.bad_news]
    named = [e for e in edited if INVOICE.search(prompt_of(e))]
    assert len(bad_news) >= 15 and len(named) >= 20
    assert share(bad_news, lambda e: f"\n\n{UNFORTUNATELY} " in e["output"]) >= 0.7
    assert share(named, lambda e: "Invoice reference:" not in e["output"]) >= 0.65
    for event in of("billing"):
        final, invoice = event.get("final") or event["output"], INVOICE.search(prompt_of(event))
        assert "Unfortunately" not in final
        if invoice:
            assert final.endswith(f"\n\nInvoice reference: {invoice.group()}")
        else:
            assert "Invoice reference" not in final


def test_the_analytics_find_the_planted_patterns(store):
    feedback.ingest_file(store, sample_path(), actor=cli_actor())
    mine_patterns(store)
    found = {
        agent: {(p.kind.value, p.phrase) for p in pattern_report(store, agent=agent, limit=40).patterns}
        for agent in AGENTS
    }
    assert {("deleted", "great question"), ("deleted", "analyze this for you")} <= found["support"]
    assert ("added", "best regards the support") in found["support"]
    assert {("deleted", "i think maybe"), ("deleted", "just wanted to")} <= found["sales"]
    assert ("added", "for a 20-minute call") in found["sales"]
    assert {("deleted", "unfortunately"), ("added", "invoice reference")} <= found["billing"]


# Simulated users -------------------------------------------------------------------------------------------------


def test_the_ideal_depends_on_the_message_alone_and_survives_redaction():
    redactor = Redactor()
    for event in EVENTS:
        prompt = prompt_of(event)
        ideal = ideal_reply(event["agent"], prompt, random.Random(1))
        assert ideal_reply(event["agent"], prompt, random.Random(2)) == ideal
        assert ideal_reply(event["agent"], redactor.redact(prompt).text) == ideal
    support = "Is the headlamp coming back? It's been sold out for weeks.\n\nThanks,\nAmara"
    assert ideal_reply("support", support).startswith("Hi Amara,\n\nThe headlamp is due back")
    redacted = ideal_reply("support", support.replace("Amara", PERSON_PLACEHOLDER))
    assert redacted.startswith(f"Hi {PERSON_PLACEHOLDER},")
    assert ideal_reply("support", support.replace("\n\nThanks,\nAmara", "")).startswith("Hi there,")


def test_react_accepts_the_ideal_edits_filler_and_rejects_random_text():
    words = ["zebra", "quantum", "lantern", "oxide", "marble", "violet", "tundra", "pixel", "harbor", "orbit"]
    for seed in range(20):
        rng = random.Random(seed)
        for agent in AGENTS:
            prompt = prompts(agent, 1, rng)[0]
            ideal = ideal_reply(agent, prompt)
            accepted = react(agent, prompt, ideal, rng)
            assert (accepted.accepted, accepted.final, accepted.similarity) == (True, None, 1.0)
            assert accepted.rating in (4, 5)
            greeting, rest = ideal.split("\n\n", 1)
            with_filler = f"{greeting}\n\n{rng.choice(FILLERS)} {rest}"
            edited = react(agent, prompt, with_filler, rng)
            assert (edited.accepted, edited.final) == (False, ideal) and edited.rating in (3, 4)
            soup = " ".join(rng.choice(words) for _ in range(40))
            rejected = react(agent, prompt, soup, rng)
            assert (rejected.accepted, rejected.final) == (False, ideal) and rejected.rating in (1, 2)
            assert rejected.similarity < 0.2


def test_react_agrees_with_the_sample_outcomes():
    rng = random.Random(0)
    agree: Counter[tuple[str, bool]] = Counter()
    for event in EVENTS:
        reaction = react(event["agent"], prompt_of(event), event["output"], rng)
        kind = outcome(event)
        done = "accepted" if reaction.accepted else ("rejected" if reaction.rating <= 2 else "edited")
        agree[kind, done == kind] += 1
        assert reaction.user in {u.name for u in population(event["agent"])}
    assert agree["accepted", False] == 0
    assert agree["edited", True] / (agree["edited", True] + agree["edited", False]) >= 0.9
    assert agree["rejected", True] / (agree["rejected", True] + agree["rejected", False]) >= 0.9


def test_a_tiny_change_sometimes_slides_but_never_a_missing_ending():
    prompt = prompts("support", 1, random.Random(3))[0]
    ideal = ideal_reply("support", prompt)
    tiny = ideal.replace("Best regards,", "Best regards")
    outcomes = {react("support", prompt, tiny, random.Random(seed)).accepted for seed in range(40)}
    assert outcomes == {True, False}
    no_sign_off = ideal.removesuffix(f"\n\n{SIGN_OFF}")
    for seed in range(20):
        reaction = react("support", prompt, no_sign_off, random.Random(seed))
        assert (reaction.accepted, reaction.final) == (False, ideal)


def test_simulated_users_are_seeded():
    assert population("sales") == population("sales", seed=0)
    assert population("sales", seed=1) != population("sales")
    runs = [
        [react("billing", p, "Hi there,\n\nWe will look into it.", random.Random(5)) for p in prompts("billing", 10, r)]
        for r in (random.Random(9), random.Random(9))
    ]
    assert runs[0] == runs[1]


def test_prompts_are_fresh_varied_and_readable():
    rng = random.Random(11)
    for agent in AGENTS:
        messages = prompts(agent, 200, rng)
        assert len(messages) == 200 and len(set(messages)) >= 190
        assert len({parse(agent, m).case.answer for m in messages}) >= 10
        assert any("@example." in m for m in messages)
    assert prompts("sales", 5, random.Random(4)) == prompts("sales", 5, random.Random(4))
    assert prompts("sales", 0, random.Random(4)) == []


def test_bad_input_names_the_argument():
    rng = random.Random(0)
    with pytest.raises(InvalidInput, match="`agent` 'marketing'"):
        prompts("marketing", 3, rng)
    with pytest.raises(InvalidInput, match="`agent`"):
        react("marketing", "hello", "hi", rng)
    with pytest.raises(InvalidInput, match="`prompt`"):
        ideal_reply("support", "What is the meaning of life?")
    with pytest.raises(InvalidInput, match="`n`"):
        prompts("support", -1, rng)


def test_the_sample_reads_back_as_json_lines():
    lines = sample_path().read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == EVENTS
