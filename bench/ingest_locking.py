"""How long a large ingest keeps everyone else waiting: small writes timed beside it.

    .venv/bin/python bench/ingest_locking.py             # N = 100,000
    .venv/bin/python bench/ingest_locking.py --n 200000

Runs `finetune data ingest` on N synthetic events (the generator of
`bench/datasets.py`) in a child process and, while it runs, commits one audit
row every 20 ms from this process, as `finetune status`, Slack or MCP would.
Prints the ingest's duration and the waits of those writes (median, 99th
percentile, longest): the ingest stages its events without the store's write
lock, so only its one publishing transaction can hold a writer up.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _generate(path: Path, n: int) -> None:
    """The synthetic events of bench/datasets.py (loaded by path: bench is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_datasets", ROOT / "bench" / "datasets.py")
    if spec is None or spec.loader is None:
        raise SystemExit("bench/datasets.py is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.generate(path, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    from core.platform import audit
    from core.platform.actors import cli_actor
    from core.platform.store import open_store

    with tempfile.TemporaryDirectory(prefix="finetune-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        events = Path(tmp) / "events.jsonl"
        _generate(events, args.n)
        store = open_store(data_dir / "finetune.db")
        env = {**os.environ, "FINETUNE_DATA_DIR": str(data_dir)}
        started = time.perf_counter()
        ingest = subprocess.Popen(
            [sys.executable, "-m", "bot", "data", "ingest", str(events), "--skip-invalid", "--json"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        waits = []
        while ingest.poll() is None:
            begun = time.perf_counter()
            with store.write():
                audit.record(store, cli_actor(), "bench_probe", {})
            waits.append(time.perf_counter() - begun)
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        if ingest.returncode:
            raise SystemExit(f"ingest failed:\n{ingest.stderr.read().decode()[-3000:] if ingest.stderr else ''}")
        waits.sort()
        print(
            f"N={args.n:,}: ingest {seconds:.1f}s; {len(waits)} writes beside it waited "
            f"median {statistics.median(waits) * 1000:.0f} ms, p99 {waits[int(len(waits) * 0.99)] * 1000:.0f} ms, "
            f"longest {waits[-1] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
