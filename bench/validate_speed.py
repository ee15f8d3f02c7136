"""How fast `validate_file` checks a large chat dataset, and how much memory it takes.

    .venv/bin/python bench/validate_speed.py [N] [--workers W] [--model M] [--target T]

Writes N synthetic chat examples (default 100,000) into a temporary JSONL file,
deterministically (seeded), then validates it and prints examples per second
and the peak memory of this process and its workers together. The examples are
shaped like real feedback: a system prompt, one or two user/assistant turns,
95% of them 200-2,000 characters long and a 5% tail up to 30,000, mixing English
prose, rare words, numbers, markdown, code, accented and CJK text.

It also prints the CPU time spent, which, unlike wall time, does not depend on
what else the machine is running. Memory is sampled every 250 ms from a
separate process, summed over the process tree, and reported two ways: RSS
(pages shared by the forked workers, like the tokenizer tables, count once per
process) and PSS (shared pages split between the processes sharing them: the
memory the tree really occupies).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEED = 20241101
SAMPLE_SECONDS = 0.25

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "or",
    "from",
    "at",
    "which",
    "an",
    "have",
    "not",
    "but",
    "they",
    "all",
    "were",
    "we",
    "when",
    "your",
    "can",
    "there",
    "use",
    "each",
    "she",
    "do",
    "how",
    "their",
    "if",
    "will",
    "up",
    "other",
    "about",
    "out",
    "many",
    "then",
    "them",
    "these",
    "so",
    "some",
    "her",
    "would",
    "make",
    "like",
    "him",
    "into",
    "time",
    "has",
    "look",
    "two",
    "more",
    "write",
    "go",
    "see",
    "number",
    "no",
    "way",
    "could",
    "people",
    "my",
    "than",
    "first",
    "water",
    "been",
    "call",
    "who",
    "oil",
    "its",
    "now",
    "find",
    "long",
    "down",
    "day",
    "did",
    "get",
    "come",
    "made",
    "may",
    "part",
    "model",
    "data",
    "training",
    "example",
    "customer",
    "support",
    "ticket",
    "refund",
    "order",
    "invoice",
    "shipping",
    "account",
    "password",
    "reset",
    "error",
    "request",
    "response",
    "feedback",
    "review",
    "agent",
    "answer",
    "question",
    "please",
    "thanks",
    "update",
    "status",
    "deploy",
    "release",
    "schedule",
    "meeting",
    "report",
    "summary",
    "draft",
    "email",
    "policy",
    "compliance",
    "security",
    "latency",
    "throughput",
    "dataset",
    "evaluation",
    "accuracy",
    "baseline",
    "version",
    "pipeline",
    "export",
    "provider",
    "token",
    "budget",
    "approval",
    "escalation",
]
RARE = [
    "idempotency",
    "kubernetes",
    "serialization",
    "backpressure",
    "deduplication",
    "throughput",
    "observability",
    "reconciliation",
    "amortization",
    "hyperparameter",
    "tokenizer",
    "quantization",
    "orchestration",
    "provenance",
    "misconfiguration",
    "interoperability",
]
FOREIGN = [
    "café",
    "naïve",
    "résumé",
    "façade",
    "jalapeño",
    "Zürich",
    "São",
    "Paulo",
    "Ærøskøbing",
    "東京",
    "データ",
    "学習",
    "модель",
    "данные",
    "обучение",
    "χρόνος",
]
CODE = [
    'def handler(event, context):\n    return {"statusCode": 200, "body": json.dumps(event)}\n',
    "SELECT id, created_at FROM feedback WHERE rating < 3 ORDER BY created_at DESC LIMIT 50;\n",
    "for (let i = 0; i < items.length; i++) { total += items[i].price * items[i].qty; }\n",
    "kubectl rollout restart deployment/api -n prod && kubectl get pods -w\n",
]
MARKUP = [
    "\n- ",
    "\n\n",
    "**Note:**",
    "`config.yaml`",
    "## Summary\n",
    "(see https://example.com/docs/export)",
    "1.",
    "e.g.",
    "—",
]
SYSTEMS = [
    "You are a helpful support agent for an online store. Answer politely and concisely.",
    "You write release notes for engineers. Use bullet points and keep each item short.",
    "You are an assistant that drafts replies to customer emails in the company's voice. "
    "Never promise refunds without an order number, and always offer a next step.",
    "Summarise meetings for busy managers: decisions first, then owners and dates.",
]


def vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    """Words with cumulative weights: mostly common English, some rare words, numbers, code, other scripts."""
    groups = [
        (WORDS, 0.80),
        ([f"{word}{mark}" for word in WORDS[:60] for mark in ".,:?!"], 0.08),
        (RARE, 0.04),
        ([str(rng.randint(0, 99_999)) for _ in range(500)], 0.04),
        (FOREIGN, 0.02),
        (MARKUP, 0.02),
        (CODE, 0.01),
    ]
    words, weights, total = [], [], 0.0
    for group, share in groups:
        for word in group:
            total += share / len(group)
            words.append(word)
            weights.append(total)
    return words, weights


def text_of_length(rng: random.Random, vocab: tuple[list[str], list[float]], length: int) -> str:
    words, weights = vocab
    return " ".join(rng.choices(words, cum_weights=weights, k=length // 5 + 2))[:length]


def example_length(rng: random.Random) -> int:
    low, high = (200, 2_000) if rng.random() < 0.95 else (2_000, 30_000)
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def write_examples(path: Path, n: int) -> None:
    rng = random.Random(SEED)
    vocab = vocabulary(rng)
    with path.open("w", encoding="utf-8") as out:
        for _ in range(n):
            budget = example_length(rng)
            turns = 2 if rng.random() < 0.2 else 1
            messages = [{"role": "system", "content": rng.choice(SYSTEMS)}]
            for _ in range(turns):
                user = max(20, budget // (3 * turns))
                messages.append({"role": "user", "content": text_of_length(rng, vocab, user)})
                messages.append({"role": "assistant", "content": text_of_length(rng, vocab, budget // turns - user)})
            out.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")


def tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    stack.extend(int(child) for child in f.read().split())
        except OSError:
            continue
    return pids


def memory_kib(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def monitor(pid: int) -> None:
    """Sample the tree under `pid` (this process excluded) until stdin closes; print the peaks."""
    import select

    me, peak_rss, peak_pss = os.getpid(), 0, 0
    while not select.select([sys.stdin], [], [], SAMPLE_SECONDS)[0]:
        samples = [memory_kib(p) for p in tree(pid) if p != me]
        peak_rss = max(peak_rss, sum(rss for rss, _ in samples))
        peak_pss = max(peak_pss, sum(pss for _, pss in samples))
    print(json.dumps({"peak_rss_kib": peak_rss, "peak_pss_kib": peak_pss}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000, help="examples to generate (default 100000)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: automatic)")
    parser.add_argument("--model", default="gpt-4o-mini-2024-07-18")
    parser.add_argument("--target", default="openai")
    parser.add_argument("--generate-only", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--monitor", type=int, metavar="PID", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.monitor:
        return monitor(args.monitor)
    if args.generate_only:
        return write_examples(Path(args.generate_only), args.n)

    with tempfile.TemporaryDirectory(prefix="validate-speed-") as folder:
        path = Path(folder) / "examples.jsonl"
        started = time.perf_counter()
        # a separate process, so the generator's memory is not measured
        subprocess.run([sys.executable, __file__, str(args.n), "--generate-only", str(path)], check=True)
        os.sync()  # so writing the file back to disk does not overlap the measurement
        print(
            f"generated {args.n} examples, {path.stat().st_size / 2**20:.0f} MiB,"
            f" in {time.perf_counter() - started:.1f} s"
        )

        from core.data.validation import validate_file
        from core.platform.settings import Settings
        from core.services import build_services

        catalog = build_services(Settings()).catalog  # the app's catalog: FINETUNE_CATALOG_FILE applies

        sampler = subprocess.Popen(
            [sys.executable, __file__, "--monitor", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started, cpu_started = time.perf_counter(), time.process_time()
        report = validate_file(path, target=args.target, model=args.model, workers=args.workers, catalog=catalog)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the joined workers, not the sampler
        cpu += children.ru_utime + children.ru_stime - children_before.ru_utime - children_before.ru_stime
        output, _ = sampler.communicate()  # closing its stdin tells the sampler to print its peaks
        peaks = json.loads(output)

    stats = report.token_stats
    if stats is None:
        raise SystemExit(f"no valid example among {report.examples}: {report.errors_by_kind}")
    print(f"validated {report.examples} examples in {elapsed:.2f} s: {report.examples / elapsed:,.0f} examples/s")
    print(f"CPU time of this process and its workers: {cpu:.1f} s, {cpu / report.examples * 1e6:.0f} µs per example")
    print(
        f"valid {report.valid_examples}, errors {report.error_count}; tokens {stats.total:,} (exact={stats.exact}), "
        f"mean {stats.mean}, p50 {stats.p50}, p95 {stats.p95}, max {stats.max}"
    )
    print(
        f"peak memory of the process tree: RSS {peaks['peak_rss_kib'] / 1024:.0f} MiB, "
        f"PSS {peaks['peak_pss_kib'] / 1024:.0f} MiB"
    )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"max RSS of this process {own:.0f} MiB, of its largest child {workers:.0f} MiB")


if __name__ == "__main__":
    main()
