"""In-process speed of sticky canary resolution with many registered models.

    .venv/bin/python bench/resolve.py                       # 1,000 models, 200,000 calls
    .venv/bin/python bench/resolve.py --models 5000 --calls 500000

Builds a fresh database in a temporary directory holding N registered models,
each with two versions: v1 on `production` and v2 as its canary at 10%. Then
resolves M (model, key) pairs, drawn from a fixed seed, in one thread, and
prints calls per second and the share that reached the canary. A final pass
moves one alias between calls to show that the cache sees the move.

Then the HTTP figure: `finetune serve` starts as a subprocess on a free
loopback port with an application token, on the same database, and
--clients concurrent keep-alive connections (default 50) send
--requests GET /v1/models/NAME/resolve calls between them (default 20,000);
prints p50 and p99 latency and requests per second. Serve is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
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
    parser.add_argument("--clients", type=int, default=50, help="concurrent HTTP connections")
    parser.add_argument("--requests", type=int, default=20_000, help="HTTP resolve calls in all")
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
        http_figure(Path(tmp), names, clients=args.clients, requests=args.requests)


# Over HTTP ---------------------------------------------------------------------------------------------

APP_TOKEN = "bench-app-token-0123456789abcdef0123456789"


def http_figure(data_dir: Path, names: list[str], *, clients: int, requests: int) -> None:
    """p50/p99 of GET /v1/models/NAME/resolve against a real `finetune serve` on loopback."""
    proc, port = start_serve(data_dir)
    try:
        rng = random.Random(11)
        paths = [f"/v1/models/{rng.choice(names)}/resolve?key=user-{rng.randrange(10**9)}" for _ in range(requests)]
        started = time.perf_counter()
        latencies = asyncio.run(load(port, paths, clients))
        elapsed = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"HTTP resolve, {clients} clients, {requests:,} requests: p50 {cuts[49] * 1000:.1f} ms, "
        f"p99 {cuts[98] * 1000:.1f} ms, {requests / elapsed:,.0f} requests/s"
    )


def start_serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINETUNE_", "SLACK_"))}
    env |= {
        "FINETUNE_DATA_DIR": str(data_dir), "FINETUNE_PORT": str(port), "FINETUNE_LOG_LEVEL": "WARNING",
        "FINETUNE_APP_TOKENS": f"bench:{APP_TOKEN}",
    }  # fmt: skip
    command = [sys.executable, "-m", "bot", "serve"]
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(command, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"finetune serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("finetune serve did not answer /healthz within 60 s")


async def load(port: int, paths: list[str], clients: int) -> list[float]:
    """Seconds per request, from `clients` keep-alive connections sending the paths between them."""
    queue = iter(paths)
    latencies: list[float] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for path in queue:
            request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {APP_TOKEN}\r\n\r\n"
            started = time.perf_counter()
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"resolve answered {head.splitlines()[0]!r}")
        writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


if __name__ == "__main__":
    main()
