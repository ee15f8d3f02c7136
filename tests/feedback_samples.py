"""Deterministic feedback events for tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

AGENTS = ("support", "sales", "billing")


def make_events(n: int, *, seed: int = 7, start: int = 0) -> list[dict]:
    rng = random.Random(seed)
    events = []
    for i in range(start, start + n):
        agent = AGENTS[i % len(AGENTS)]
        draft = f"Hello! Thanks for asking about case {i}. " + " ".join(
            rng.choice(WORDS) for _ in range(rng.randint(20, 60))
        )
        final = None
        if i % 3 == 0:
            final = draft.replace("Thanks", "Thank you").rsplit(" ", 3)[0] + " Let me know if that helps."
        event = {
            "agent": agent,
            "intent": rng.choice(["refund", "shipping", "pricing"]),
            "messages": [
                {"role": "user", "content": f"Question {i}: " + " ".join(rng.choice(WORDS) for _ in range(12))}
            ],
            "output": draft,
            "rating": rng.choice([1, 2, 3, 4, 5, "up", "down"]),
            "model": "gpt-4o-mini",
            "created_at": f"2026-10-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
            "tags": [rng.choice(["vip", "new", "eu"])],
        }
        if final is not None:
            event["final"] = final
        events.append(event)
    return events


def write_jsonl(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


WORDS = [
    "order",
    "refund",
    "shipping",
    "account",
    "password",
    "invoice",
    "delivery",
    "tracking",
    "number",
    "please",
    "update",
    "address",
    "payment",
    "card",
    "subscription",
    "plan",
    "upgrade",
    "cancel",
    "renewal",
    "discount",
    "warranty",
    "return",
    "label",
    "store",
    "pickup",
    "weekend",
    "support",
    "ticket",
]
