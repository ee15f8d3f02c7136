"""How fast core.pii redacts realistic feedback text, on one core.

The mix follows what ingest and export see: most texts 200-2,000 characters, a
few long ones up to 30,000; four in five hold no PII, the rest one or two items.
Texts are generated from a fixed seed, so runs are comparable.

    .venv/bin/python bench/pii_speed.py [--texts N] [--seed S] [--rounds R]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data.pii import Redactor
from tests.pii_samples import support_text


def corpus(n: int, *, seed: int) -> list[str]:
    """`n` texts: 94% of 200-2,000 characters, 5% of 2-8k, 1% of 8-30k; 80% without PII, 15% with one item, 5% two."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        low, high = rng.choices(((200, 2000), (2000, 8000), (8000, 30000)), (94, 5, 1))[0]
        chars = rng.randint(low, high)
        pii = rng.choices((0, 1, 2), (80, 15, 5))[0]
        texts.append(support_text(rng, chars=chars, pii_items=pii))
    return texts


def run(redactor: Redactor, texts: list[str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds to redact every text once (CPU time is what one core costs on a busy machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for text in texts:
        redactor.redact(text)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    texts = corpus(args.texts, seed=args.seed)
    redactor = Redactor(use_presidio=False)
    chars = sum(map(len, texts))
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    found = sum(sum(redactor.redact(t).counts.values()) for t in texts)
    walls, cpus = zip(*(run(redactor, texts) for _ in range(args.rounds)), strict=False)
    print(
        f"{len(texts)} texts, {chars / len(texts):.0f} characters on average, {megabytes:.1f} MB, {found} items redacted"
    )
    for name, seconds in (("wall clock", walls), ("CPU time", cpus)):
        best, median = min(seconds), statistics.median(seconds)
        print(
            f"{name:10}: {len(texts) / best:,.0f} texts/s, {megabytes / best:.1f} MB/s (best of {args.rounds}); "
            f"median {len(texts) / median:,.0f} texts/s, {megabytes / median:.1f} MB/s"
        )


if __name__ == "__main__":
    main()
