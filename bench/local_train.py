"""Throughput and peak memory of local LoRA training: finetune-ops' provider beside a plain trl script.

    .venv/bin/python bench/local_train.py                      # 400 examples, 2 epochs, batch 8
    .venv/bin/python bench/local_train.py --examples 2000 --epochs 1 --batch-size 16

Builds the tiny model (core/providers/local/tiny.py) from synthetic support
conversations, then trains LoRA adapters on the same model and the same data,
with the same batch size, epochs, learning rate, LoRA rank and alpha, twice,
each in a process of its own so that its peak memory is its own:

- ours: `LocalProvider.launch` (the worker process a job runs in), read back
  from the run's metrics.json;
- plain: trl's `SFTTrainer` with a peft `LoraConfig`, written as a user would,
  with nothing from finetune-ops (this file's `--plain` mode).

Tokens per second count the non-padding tokens through the model over the
training time alone (model loading and saving excluded, in both). Peak memory
is the process's peak RSS and, on a GPU, torch's peak allocation. Each side runs
--repeat times, alternating, and its best run counts (a shared machine's load
swings wildly from one run to the next). Prints both side by side and the ratio
of our throughput to the plain script's; exits 1 when it is below 0.9.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# bench/datasets.py would shadow the `datasets` package that trl imports: this folder is no import path here.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != ROOT / "bench"]
TARGET_RATIO = 0.9
WORDS = ["order", "refund", "shipping", "account", "password", "invoice", "delivery", "tracking", "number", "please",
         "update", "address", "payment", "card", "warranty", "renewal", "upgrade", "cancel", "support", "today",
         "monday", "soon", "thanks", "sorry", "help"]  # fmt: skip


def conversations(n: int, *, seed: int = 7) -> list[dict]:
    """Support conversations in the hf-chat shape: a question and the answer a person approved."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        question = f"Question {i}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20)))
        answer = "Thank you for asking. " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 80))) + "."
        rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return rows


# The plain script: trl + peft, nothing from finetune-ops ----------------------------------------------------------------


def plain(model_dir: str, data_file: str, args: argparse.Namespace) -> dict:
    import importlib
    import resource

    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    rows = [json.loads(line) for line in Path(data_file).read_text().splitlines() if line.strip()]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if cuda else torch.float32)
    config = SFTConfig(
        output_dir=str(Path(data_file).parent / "plain-sft"), per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs, learning_rate=args.learning_rate, lr_scheduler_type="linear", warmup_steps=0,
        max_length=2048, packing=False, save_strategy="no", report_to=[], logging_steps=50, disable_tqdm=True,
        bf16=cuda, use_cpu=not cuda, dataloader_num_workers=0, seed=0, max_grad_norm=1.0, weight_decay=0.0,
    )  # fmt: skip
    lora = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                      task_type="CAUSAL_LM")  # fmt: skip
    dataset = importlib.import_module("datasets").Dataset.from_list(rows)  # by name: bench/datasets.py is no package
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer, peft_config=lora)
    tokenized: Any = trainer.train_dataset
    tokens = sum(len(ids) for ids in tokenized["input_ids"]) * args.epochs
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    result = {"tokens_per_second": tokens / seconds, "train_seconds": seconds, "seen_tokens": tokens,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip
    if cuda:
        result["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


# Ours: the local provider ----------------------------------------------------------------------------------------------------


def ours(model_dir: Path, data_file: Path, work: Path, args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))
    from core.platform.settings import Settings
    from core.providers import LaunchRequest
    from core.providers.local import LocalProvider
    from core.vocabulary import JobState, Method

    provider = LocalProvider(Settings(_env_file=None, data_dir=work / "data"))
    hyperparameters = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                       "warmup_steps": 0, "lora_r": args.lora_r, "lora_alpha": args.lora_alpha}  # fmt: skip
    request = LaunchRequest(job_id="job_bench", idempotency_key="job_bench", base_model=str(model_dir),
                            method=Method.SUPERVISED, hyperparameters=hyperparameters, train_file=data_file)  # fmt: skip
    job = provider.launch(request)
    deadline = time.monotonic() + args.timeout
    while job.status not in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
        if time.monotonic() > deadline:
            provider.cancel("job_bench")
            raise SystemExit(f"our run took longer than {args.timeout}s; cancelled")
        time.sleep(0.5)
        job = provider.poll("job_bench")
    if job.status is not JobState.SUCCEEDED:
        raise SystemExit(f"our run ended {job.status}: {job.error}")
    return dict(job.metrics)


# The comparison --------------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lora-alpha", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the best counts")
    parser.add_argument("--plain", nargs=2, metavar=("MODEL_DIR", "DATA_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        print(json.dumps(plain(args.plain[0], args.plain[1], args)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-local-train-") as scratch:
        return compare(Path(scratch), args)


def compare(work: Path, args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    from core.providers.local.tiny import build_tiny_model

    rows = conversations(args.examples)
    data_file = work / "train.jsonl"
    data_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    model_dir = build_tiny_model(work / "tiny", (m["content"] for row in rows for m in row["messages"]))
    print(f"{args.examples} examples x {args.epochs} epochs, batch {args.batch_size}, LoRA r={args.lora_r}, "
          f"the tiny model; {_device()}", flush=True)  # fmt: skip

    runs: dict[str, list[dict]] = {"ours": [], "plain": []}
    for trial in range(args.repeat):  # alternating, so a neighbour's load falls on both sides alike
        runs["ours"].append(ours(model_dir, data_file, work / f"trial-{trial}", args))
        runs["plain"].append(_plain_in_its_own_process(model_dir, data_file, args))
    ours_result, plain_result = (max(runs[side], key=lambda r: r["tokens_per_second"]) for side in ("ours", "plain"))
    print(f"best of {args.repeat} alternating runs each (tokens/s of every run: "
          f"ours {_speeds(runs['ours'])}; plain {_speeds(runs['plain'])})")  # fmt: skip
    _print(ours_result, plain_result)
    ratio = ours_result["tokens_per_second"] / plain_result["tokens_per_second"]
    print(f"throughput ratio (finetune-ops / plain trl): {ratio:.2f}x (target >= {TARGET_RATIO}x)")
    return 0 if ratio >= TARGET_RATIO else 1


def _plain_in_its_own_process(model_dir: Path, data_file: Path, args: argparse.Namespace) -> dict:
    flags = ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--learning-rate",
             str(args.learning_rate), "--lora-r", str(args.lora_r), "--lora-alpha", str(args.lora_alpha)]  # fmt: skip
    done = subprocess.run(
        [sys.executable, __file__, "--plain", str(model_dir), str(data_file), *flags],
        capture_output=True, text=True, timeout=args.timeout, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the plain trl run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _speeds(runs: list[dict]) -> str:
    return ", ".join(f"{r['tokens_per_second']:,.0f}" for r in runs)


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    return f"CPU ({torch.get_num_threads()} threads)"


def _print(ours_result: dict, plain_result: dict) -> None:
    rows = [("tokens/s", "tokens_per_second", "{:,.0f}"), ("train seconds", "train_seconds", "{:.2f}"),
            ("tokens", "seen_tokens", "{:,.0f}"), ("peak RSS MB", "peak_rss_mb", "{:,.0f}"),
            ("CUDA max allocated MB", "cuda_max_allocated_mb", "{:,.0f}")]  # fmt: skip
    print(f"{'':24}{'finetune-ops':>16}{'plain trl':>16}")
    for label, key, form in rows:
        if key in ours_result or key in plain_result:
            cells = [form.format(result[key]) if key in result else "-" for result in (ours_result, plain_result)]
            print(f"{label:24}{cells[0]:>16}{cells[1]:>16}")


if __name__ == "__main__":
    sys.exit(main())
