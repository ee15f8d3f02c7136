"""`finetune demo`: the closed loop end to end, offline, in a few minutes (terminal only).

It runs in a data directory of its own (DATA_DIR/demo unless --dir says
otherwise; a previous demo there is replaced), with the local provider, a
judge on 127.0.0.1 standing in for an LLM judge, simulated customers and
reviewers, and two configured approvers whose approvals the demo gives and
names. It prints each step, the Slack messages the product would post, the
commands to look further, and writes the weekly digest's HTML page at the end.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from pathlib import Path

import click
from rich.console import Console

from bot.commands import CONTEXT, Invocation, Message
from core.platform.settings import Settings

BASE_MODEL_DIR = "base-model"
MARKER = ".finetune-demo"  # in a directory the demo made: only such a directory is replaced


@click.command("demo", context_settings=CONTEXT, short_help="Run the whole loop offline on sample data, in minutes.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Where the demo keeps its database and models [DATA_DIR/demo].")  # fmt: skip
@click.option(
    "--fast", is_flag=True, help="A shorter demo: three days of traffic before the first round instead of five."
)
@click.pass_obj
def demo_command(inv: Invocation, directory: Path | None, fast: bool) -> Message:
    """Ingest the bundled sample feedback, train a first version and deploy it, simulate a week of customers and
    reviewers, then run the loop twice: a better candidate is evaluated, canaried and promoted; a candidate
    trained on the wrong data passes its offline evaluation and is caught by the acceptance guard and rolled
    back. No keys, no network; the approvals are given as two configured demo approvers, and said so."""
    from core.demo.judge import start_judge

    _quiet()
    where = (directory or inv.settings.data_dir / "demo").resolve()
    _fresh(where)
    console = Console(stderr=False, highlight=False)
    judge = start_judge()
    try:
        return _run(console, where, judge.url, fast=fast)
    finally:
        judge.stop()


def _quiet() -> None:
    """The demo tells its own story: library progress bars and routine logs would drown it."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in ("core", "bot", "httpx", "httpx2", "transformers"):  # the demo says what matters itself
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # without the local extra the demo stops at its first training step, saying what to install
        pass


def _fresh(where: Path) -> None:
    if where.exists() and any(where.iterdir()):
        if not (where / MARKER).is_file():
            raise click.UsageError(
                f"{where} exists and is not a demo directory; pass --dir with an empty or new directory."
            )
        shutil.rmtree(where)
    where.mkdir(parents=True, exist_ok=True)
    (where / MARKER).write_text("made by `finetune demo`; the next demo replaces this directory\n")


def demo_settings(where: Path, judge_url: str, *, canary_plan: str = "25,50,100") -> Settings:
    """The demo's own settings: nothing from the environment decides what it does."""
    return Settings(
        _env_file=None, data_dir=where / "data", local_base_model=str(where / BASE_MODEL_DIR), approvers=["os:ana", "os:ben"], operators=["os:demo-operator"],
        judge_model="compatible:demo-judge", compatible_base_url=judge_url, loop_eval_max_cost_usd=None,
        loop_canary_plan=canary_plan, loop_canary_every="2d", retrain_min_corrections=20,
        retrain_hyperparameters="epochs=12,learning_rate=0.005",
        retrain_provider="local", slack_bot_token=None, slack_signing_secret=None, slack_app_token=None,
        anthropic_api_key=None, openai_api_key=None, auto_approve_usd=100.0,
    )  # fmt: skip


def _run(console: Console, where: Path, judge_url: str, *, fast: bool) -> Message:
    from bot.terminal.demo import DemoPrinter
    from core import inference
    from core.demo.run import Demo, DemoOptions, SimClock
    from core.services import build_services
    from reports.publish import publish_weekly

    options = DemoOptions(fast=fast)
    settings = demo_settings(where, judge_url, canary_plan=options.canary_plan)
    clock = SimClock()
    services = build_services(settings, clock=clock)
    engine = inference.build_engine(settings)
    printer = DemoPrinter(console, lambda: services.store)
    console.print(
        f"[bold]finetune demo[/bold]: everything in {where} (SQLite at {settings.db_path}); local provider, no keys, "
        "no network. Slack is off: the messages it would post are shown as [magenta]Slack ›[/magenta] lines."
    )
    demo = Demo(services, engine, clock, options=options, say=printer.note, between=printer.slack)
    try:
        result = demo.run(where / BASE_MODEL_DIR)
        demo.step("The weekly digest of the last full week, as Slack gets it each Monday")
        published = publish_weekly(services, actor=demo.operator)
        printer.slack()
        demo.detail(published.headline)
        demo.look(f"open {published.page}")
    finally:
        engine.close()
        services.close()
    rounds = ", ".join(f"round {n}: {outcome}" for n, outcome in enumerate(result.rounds, start=1))
    return Message(
        text=f"Demo done in {result.seconds / 60:.1f} minutes ({rounds}). Everything it did is in {where}: "
        f"FINETUNE_DATA_DIR={settings.data_dir} finetune loop (or audit, models history support, report weekly)."
    )


TERMINAL: tuple[click.Command, ...] = (demo_command,)
