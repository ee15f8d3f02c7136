"""`python3 dev.py serve` behaves like the server it starts: signals reach it and it stops cleanly."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT, free_port, wait_until

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process groups and signals are POSIX")


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def server_pid(port: int) -> int:
    """The pid of the `finetune serve` process listening on `port` (a child of dev.py)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if "finetune serve" in args or ("finetune" in args and args.rstrip().endswith("serve")):
            environ = f"/proc/{pid}/environ"
            try:
                with open(environ, "rb") as handle:
                    if f"FINETUNE_PORT={port}".encode() in handle.read().split(b"\0"):
                        return int(pid)
            except OSError:
                continue
    raise AssertionError(f"no finetune serve on port {port}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_dev_serve_forwards_signals_and_waits(tmp_path, signum):
    port = free_port()
    env = {**os.environ, "FINETUNE_PORT": str(port), "FINETUNE_DATA_DIR": str(tmp_path / "data")}
    dev = subprocess.Popen([sys.executable, str(ROOT / "dev.py"), "serve"], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_until(lambda: healthy(port), timeout=60)
        child = server_pid(port)
        dev.send_signal(signum)
        assert dev.wait(timeout=30) == 0, dev.stderr.read().decode()[-2000:] if dev.stderr else ""
        time.sleep(0.2)
        assert not alive(child), "the server outlived dev.py"
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()


def load_dev():
    import importlib.util

    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_checkout_keeps_its_data_in_its_own_folder(monkeypatch):
    dev = load_dev()
    monkeypatch.delenv("FINETUNE_DATA_DIR", raising=False)
    monkeypatch.setattr(dev, "ROOT", ROOT / "tests")  # a checkout without a .env
    assert dev.checkout_environment()["FINETUNE_DATA_DIR"] == str(ROOT / "tests" / ".finetune")
    monkeypatch.setenv("FINETUNE_DATA_DIR", "/elsewhere")
    assert dev.checkout_environment()["FINETUNE_DATA_DIR"] == "/elsewhere"
