"""Throughput and peak memory of the data pipeline: ingest, build + redact + export, validate, redact.

    .venv/bin/python bench/datasets.py                 # N = 100,000
    .venv/bin/python bench/datasets.py --n 1000000     # N = 1,000,000 (a few GB of disk, several minutes)

Phases: redaction alone (one core), ingest (parse, validate, redact, diff, store),
build (filter, dedupe, split), export (redact again, convert, count tokens
exactly) and validate (every rule, exact tokens). Events are synthetic but shaped like real agent traffic: texts mostly 200-2,000
characters with a tail to 30k, about one in eight carrying PII, a third edited
by the user, and 0.1 % malformed lines (ingested with skip-invalid). Each phase
runs in its own process, so each peak RSS is that phase's alone: the main
process, its largest worker, and the whole process tree summed (shared pages
count once per process there, so the sum overstates). Prints one line per phase.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = [
    "the",
    "order",
    "refund",
    "shipping",
    "account",
    "invoice",
    "delivery",
    "tracking",
    "please",
    "update",
    "address",
    "payment",
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
    "we",
    "you",
    "your",
    "can",
    "will",
    "thanks",
    "happy",
    "help",
    "today",
    "tomorrow",
    "week",
    "business",
    "days",
    "team",
    "policy",
    "item",
    "package",
    "carrier",
    "status",
    "confirm",
]
PII = [
    "dana.smith@example.com", "+1 (415) 555-2671", "+44 20 7946 0958", "4111 1111 1111 1111", "123-45-6789",
    "DE89 3704 0044 0532 0130 00", "10.0.12.7", "AKIAIOSFODNN7EXAMPLE", "sk-proj-abcdefghijklmnopqrstuvwx1234",
]  # fmt: skip


def text_of(rng: random.Random, length: int) -> str:
    words, size = [], 0
    while size < length:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    if rng.random() < 0.125:
        words.insert(rng.randrange(len(words)), rng.choice(PII))
    return " ".join(words)


def length(rng: random.Random) -> int:
    return rng.randint(30_000 // 4, 30_000) if rng.random() < 0.002 else rng.randint(200, 2_000)


def generate(path: Path, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    agents = [f"agent-{i}" for i in range(8)]
    with open(path, "w") as out:
        for i in range(n):
            if rng.random() < 0.001:
                out.write('{"agent": "broken", "output": \n')
                continue
            draft = text_of(rng, length(rng))
            event = {
                "id": f"e{i}",
                "agent": agents[i % len(agents)],
                "messages": [{"role": "user", "content": text_of(rng, rng.randint(40, 400))}],
                "output": draft,
                "rating": rng.randint(1, 5),
                "created_at": 1_760_000_000 + i,
            }
            if i % 3 == 0:
                event["final"] = draft[: len(draft) * 3 // 4] + " " + text_of(rng, 60)
            out.write(json.dumps(event) + "\n")


def peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


class TreeSampler(threading.Thread):
    """Samples the RSS of this process and all its descendants (workers come from a fork server,
    so getrusage does not see them) every 0.1 s; keeps the peak of the sum and of the largest worker."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_total = self.peak_worker = 0.0
        self.done = threading.Event()

    @staticmethod
    def _tree() -> dict[int, float]:
        parents, rss = {}, {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
                rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
            except (OSError, IndexError, ValueError):
                continue
        tree, frontier = {os.getpid()}, [os.getpid()]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
            tree.update(children)
            frontier.extend(children)
        return {pid: rss.get(pid, 0.0) for pid in tree}

    def run(self) -> None:
        while not self.done.wait(0.1):
            tree = self._tree()
            self.peak_total = max(self.peak_total, sum(tree.values()))
            others = [v for pid, v in tree.items() if pid != os.getpid()]
            self.peak_worker = max([self.peak_worker, *others])


def run_phase(phase: str, workdir: Path) -> dict[str, object]:
    from core.platform.actors import cli_actor
    from core.platform.settings import Settings
    from core.platform.store import open_store
    from core.services import build_services

    store = open_store(workdir / "data" / "finetune.db")
    catalog = build_services(Settings(), store=store).catalog  # the app's catalog: FINETUNE_CATALOG_FILE applies
    actor = cli_actor()
    sampler = TreeSampler()
    sampler.start()
    started = time.perf_counter()
    if phase == "ingest":
        from core.data.feedback import ingest_file

        ingested = ingest_file(store, workdir / "events.jsonl", actor=actor, skip_invalid=True)
        items, extra = ingested.lines, f"{ingested.ingested} stored, {ingested.skipped} malformed skipped"
    elif phase == "build":
        from core.data.datasets import build_dataset

        version = build_dataset(store, name="bench", actor=actor)
        items = version.counts["examples"]
        extra = (
            f"{version.counts['rejected_drafts']} rejected drafts left out, "
            f"{version.counts['exact_duplicates']} exact / {version.counts['near_duplicates']} near duplicates dropped"
        )
        (workdir / "version").write_text(version.id)
    elif phase == "export":
        from core.data.exports import export_dataset

        export = export_dataset(
            store, version=(workdir / "version").read_text(), target="openai", actor=actor, data_dir=workdir / "data",
            catalog=catalog,
        )  # fmt: skip
        items = sum(export.counts.values())
        extra = f"redact + convert + exact tokens; redacted {export.redactions.total} items left after ingest"
        (workdir / "train_path").write_text(export.files["train"])
    elif phase == "validate":
        from core.data.validation import validate_file

        report = validate_file(
            Path((workdir / "train_path").read_text()), target="openai", model="gpt-4o-mini-2024-07-18", catalog=catalog
        )
        exact = report.token_stats is not None and report.token_stats.exact
        items, extra = report.examples, f"{report.error_count} errors, tokens exact={exact}"
    elif phase == "redact":
        from core.data.pii import Redactor

        rng, redactor = random.Random(3), Redactor()
        texts = [text_of(rng, length(rng)) for _ in range(20_000)]
        started = time.perf_counter()
        for text in texts:
            redactor.redact(text)
        items, extra = len(texts), "one core, texts of 200-2,000 chars with a tail to 30k"
    else:
        raise SystemExit(f"unknown phase {phase}")
    seconds = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    return {
        "phase": phase, "items": items, "seconds": round(seconds, 1), "per_second": round(items / seconds),
        "peak_rss_mb": round(peak_mb(resource.RUSAGE_SELF)), "worker_peak_rss_mb": round(sampler.peak_worker),
        "tree_peak_rss_mb": round(sampler.peak_total),
        "note": extra,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.workdir)))
        return
    with tempfile.TemporaryDirectory(prefix="finetune-bench-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        generate(workdir / "events.jsonl", args.n)
        size = (workdir / "events.jsonl").stat().st_size / 1e6
        print(
            f"N={args.n:,}: generated {size:,.0f} MB of events in {time.perf_counter() - started:.0f}s on {os.cpu_count()} cores"
        )
        for phase in ("redact", "ingest", "build", "export", "validate"):
            out = subprocess.run(
                [sys.executable, __file__, "--phase", phase, "--workdir", str(workdir)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if out.returncode:
                print(f"{phase}: FAILED\n{out.stderr[-3000:]}")
                raise SystemExit(1)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{r['phase']:>8}: {r['per_second']:>8,}/s  ({r['items']:,} in {r['seconds']}s)  "
                f"peak RSS: main {r['peak_rss_mb']} MB, largest worker {r['worker_peak_rss_mb']} MB, "
                f"whole tree {r['tree_peak_rss_mb']} MB  [{r['note']}]"
            )


if __name__ == "__main__":
    main()
