"""In-process speed of sticky canary resolution with many registered models.

    .venv/bin/python bench/resolve.py                       # 1,000 models, 200,000 calls
    .venv/bin/python bench/resolve.py --models 5000 --calls 500000

Builds a fresh database in a temporary directory holding N registered models,
each with two versions: v1 on `production` and v2 as its canary at 10%. Then
resolves M (model, key) pairs, drawn from a fixed seed, in one thread, and
prints calls per second and the share that reached the canary. A final pass
moves one alias between calls to show that the cache sees the move.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.platform.actors import SCHEDULER
from core.platform.store import Store, open_store
from core.platform.timeutil import iso
from core.registry import db, register_version, resolve_model
from core.vocabulary import Arm


def seed(store: Store, models: int) -> list[str]:
    """N models, each v1 on production with v2 as a 10% canary (written as the registry writes them)."""
    names = [f"agent-{i:05d}" for i in range(models)]
    now = iso()
    with store.write():
        for name in names:
            for n in (1, 2):
                register_version(
                    store, name=name, provider="openai", provider_model_id=f"ft:{name}:{n}", job_id=None,
                    dataset_version_id=None, base_model="gpt-4o-mini", metrics={}, cost_usd=None, actor=SCHEDULER,
                    reason="bench", now=now,
                )  # fmt: skip
            db.set_alias(
                store, name=name, alias_name="production", version_id=f"{name}:v1",
                canary_version_id=f"{name}:v2", canary_share=10, now=now,
            )  # fmt: skip
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "finetune.db")
        names = seed(store, args.models)
        rng = random.Random(7)
        pairs = [(rng.choice(names), f"user-{rng.randrange(10**9)}") for _ in range(args.calls)]
        resolve_model(store, names[0], "warm-up")
        started = time.perf_counter()
        canary = sum(resolve_model(store, name, key).arm is Arm.CANARY for name, key in pairs)
        elapsed = time.perf_counter() - started
        print(f"models: {args.models:,}  calls: {args.calls:,}")
        print(f"resolve_model: {args.calls / elapsed:,.0f} calls/s ({elapsed * 1e6 / args.calls:.1f} µs per call)")
        print(f"canary share observed: {100 * canary / args.calls:.2f}% (configured 10%)")
        with store.write():
            db.set_alias(
                store, name=names[0], alias_name="production", version_id=f"{names[0]}:v2", canary_version_id=None,
                canary_share=0, now=iso(),
            )  # fmt: skip
        print(f"after a move, {names[0]}@production -> {resolve_model(store, names[0], 'any').version_id}")
        store.close()


if __name__ == "__main__":
    main()
