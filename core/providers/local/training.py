"""LoRA fine-tuning of a causal language model: examples to tensors, the training loop, evaluation.

Supervised rows are hf-chat (`{"messages": [...]}`), rendered with the model's
own chat template; the loss counts assistant tokens only (every other label is
-100), found by rendering each conversation up to each assistant turn. DPO rows
are openai-dpo preference pairs (`input.messages`, `preferred_output`,
`non_preferred_output`); the loss is DPO's, with the base model (the adapter
switched off) as the reference, so no second copy of the model is held.

One loop serves both: micro-batches of `batch_size`, `gradient_accumulation_steps`
of them per optimiser step, AdamW with linear warm-up and decay, gradients
clipped at 1. It reports through a `Reporter` and asks it before every
micro-batch whether to stop, which is how a cancel ends a run between steps.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from core.providers.local.config import TrainConfig
from core.providers.local.runs import Stopped
from core.providers.local.tiny import CHAT_TEMPLATE
from core.vocabulary import Method

IGNORE = -100  # the label that the loss skips
LOGS_PER_RUN = 200  # at most this many metric events per run, however many steps it has

Message = Mapping[str, str]
Batch = dict[str, torch.Tensor]


# Examples -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE where the loss does not look

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


@dataclass(frozen=True)
class EncodedPair:
    chosen: Encoded
    rejected: Encoded


def render(tokenizer: Any, messages: Sequence[Message], *, generation_prompt: bool = False) -> str:
    text = tokenizer.apply_chat_template(
        [dict(m) for m in messages], tokenize=False, add_generation_prompt=generation_prompt
    )
    if not isinstance(text, str):
        raise TypeError(f"the chat template returned {type(text).__name__}, not text")
    return text


def ensure_chat_template(tokenizer: Any) -> bool:
    """Give a tokenizer without a chat template the ChatML one; True when it had to."""
    if getattr(tokenizer, "chat_template", None):
        return False
    tokenizer.chat_template = CHAT_TEMPLATE
    return True


def assistant_spans(
    tokenizer: Any, messages: Sequence[Message], *, last_only: bool = False
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of the assistant turns the loss should learn.

    A span runs from the end of the prompt that precedes a turn (the template's own
    generation prompt) to the end of the turn as rendered, end-of-turn token
    included, so the model learns to stop. A template that rewrites earlier turns
    (the prefix property fails) falls back to finding the turn's text.
    """
    text = render(tokenizer, messages)
    turns = [i for i, message in enumerate(messages) if message["role"] == "assistant"]
    spans: list[tuple[int, int]] = []
    for index in turns[-1:] if last_only else turns:
        cursor = spans[-1][1] if spans else 0
        span = _rendered_span(tokenizer, messages, index, text, cursor) or _found_span(
            tokenizer, messages[index], text, cursor
        )
        if span is not None:
            spans.append(span)
    return text, spans


def _rendered_span(
    tokenizer: Any, messages: Sequence[Message], index: int, text: str, cursor: int
) -> tuple[int, int] | None:
    if index == 0:
        return None
    try:
        before = render(tokenizer, messages[:index], generation_prompt=True)
        through = render(tokenizer, messages[: index + 1])
    except Exception:  # a template that refuses a partial conversation
        return None
    if len(before) < cursor or not through.startswith(before) or not text.startswith(through):
        return None
    return len(before), len(through)


def _found_span(tokenizer: Any, message: Message, text: str, cursor: int) -> tuple[int, int] | None:
    content = message["content"]
    start = text.find(content, cursor) if content else -1
    if start < 0:
        return None
    end = start + len(content)
    eos = tokenizer.eos_token
    if isinstance(eos, str) and eos and text.startswith(eos, end):
        end += len(eos)
    return start, end


def encode_chat(tokenizer: Any, messages: Sequence[Message], *, max_length: int, last_only: bool = False) -> Encoded:
    """Token ids of the rendered conversation, with labels on the assistant tokens only, cut at `max_length`."""
    text, spans = assistant_spans(tokenizer, messages, last_only=last_only)
    ids, starts = _tokens_with_starts(tokenizer, text, spans)
    labels = [token if any(a <= s < b for a, b in spans) else IGNORE for token, s in zip(ids, starts, strict=True)]
    return Encoded(ids[:max_length], labels[:max_length])


def _tokens_with_starts(tokenizer: Any, text: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Each token and the character it starts at; by offsets where the tokenizer has them, else piece by piece."""
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(encoded["input_ids"]), [start for start, _ in encoded["offset_mapping"]]
    cuts = sorted({0, len(text), *(edge for span in spans for edge in span)})
    ids: list[int] = []
    starts: list[int] = []
    for a, b in itertools.pairwise(cuts):
        piece = tokenizer(text[a:b], add_special_tokens=False)["input_ids"]
        ids.extend(piece)
        starts.extend([a] * len(piece))
    return ids, starts


def encode_rows(tokenizer: Any, rows: Sequence[Mapping[str, Any]], config: TrainConfig) -> tuple[list[Any], int]:
    """Encoded examples (or pairs, for DPO) and how many rows were left out (no assistant token left after the cut)."""
    encoded: list[Any] = []
    for row in rows:
        item = _encode_row(tokenizer, row, config)
        if item is not None:
            encoded.append(item)
    return encoded, len(rows) - len(encoded)


def _encode_row(tokenizer: Any, row: Mapping[str, Any], config: TrainConfig) -> Encoded | EncodedPair | None:
    if config.method is Method.DPO:
        prompt = list(row["input"]["messages"])
        chosen = encode_chat(
            tokenizer, prompt + list(row["preferred_output"]), max_length=config.max_length, last_only=True
        )
        rejected = encode_chat(
            tokenizer, prompt + list(row["non_preferred_output"]), max_length=config.max_length, last_only=True
        )
        return EncodedPair(chosen, rejected) if chosen.trained_tokens and rejected.trained_tokens else None
    example = encode_chat(tokenizer, row["messages"], max_length=config.max_length)
    return example if example.trained_tokens else None


def texts_of(rows: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    """Every message text in hf-chat or openai-dpo rows (what the tiny model's tokenizer learns from)."""
    for row in rows:
        messages = list(row.get("messages") or (row.get("input") or {}).get("messages") or [])
        messages += list(row.get("preferred_output") or []) + list(row.get("non_preferred_output") or [])
        for message in messages:
            yield str(message.get("content") or "")


# Model --------------------------------------------------------------------------------------------------------------


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def dtype_for(device: torch.device) -> torch.dtype:
    """bf16 on a GPU that has it, float32 elsewhere (CPU training in half precision is slow and unstable)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_base(name: str, *, device: torch.device, gradient_checkpointing: bool = False) -> tuple[Any, Any]:
    """The base model and its tokenizer from a directory or the Hugging Face cache; never downloads."""
    tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(name, dtype=dtype_for(device), local_files_only=True)
    model.to(device)
    model.config.use_cache = False
    if gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model, tokenizer


def add_lora(model: Any, config: TrainConfig) -> Any:
    """The model with LoRA adapters on every linear layer but the output head; only they train."""
    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules="all-linear", task_type="CAUSAL_LM",
    )  # fmt: skip
    with _peft_quietly():
        return get_peft_model(model, lora)


@contextlib.contextmanager
def _peft_quietly() -> Iterator[None]:
    """peft still asks transformers for `is_gradient_checkpointing`, which warns; nothing for users to do about it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def parameter_counts(model: Any) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    every = trainable = 0
    for parameter in model.parameters():
        every += parameter.numel()
        trainable += parameter.numel() if parameter.requires_grad else 0
    return every, trainable


def load_adapter(base: str, adapter: str, *, device: torch.device | None = None) -> tuple[Any, Any]:
    """A trained adapter on its base model, ready to generate (tokenizer from the adapter directory)."""
    device = device or pick_device()
    tokenizer = AutoTokenizer.from_pretrained(adapter, local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=dtype_for(device), local_files_only=True)
    model.to(device)
    with _peft_quietly():
        return PeftModel.from_pretrained(model, adapter).eval(), tokenizer


# Training -------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepReport:
    step: int
    total_steps: int
    epoch: float
    train_loss: float
    tokens_per_second: float
    learning_rate: float
    eta_seconds: float


@dataclass(frozen=True)
class TrainResult:
    steps: int
    train_loss: float | None
    eval_loss: float | None
    trained_tokens: int  # tokens the loss looked at, all epochs
    seen_tokens: int  # tokens through the model, all epochs
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.seen_tokens / self.seconds if self.seconds > 0 else 0.0


class Reporter(Protocol):
    def on_log(self, report: StepReport) -> None: ...

    def on_eval(self, step: int, eval_loss: float) -> None: ...

    def should_stop(self) -> bool: ...


class QuietReporter:
    """Reports to nobody and never stops a run (tests, benchmarks)."""

    def __init__(self) -> None:
        self.logs: list[StepReport] = []
        self.evals: list[tuple[int, float]] = []

    def on_log(self, report: StepReport) -> None:
        self.logs.append(report)

    def on_eval(self, step: int, eval_loss: float) -> None:
        self.evals.append((step, eval_loss))

    def should_stop(self) -> bool:
        return False


@dataclass(frozen=True)
class _Objective:
    collate: Callable[[Sequence[Any], int, torch.device], Batch]
    loss: Callable[[Any, Batch, TrainConfig], torch.Tensor]


def train(
    model: Any,
    tokenizer: Any,
    train_set: Sequence[Any],
    eval_set: Sequence[Any],
    config: TrainConfig,
    reporter: Reporter,
) -> TrainResult:
    """Train the LoRA model in place; Stopped when the reporter asks to stop."""
    objective = _OBJECTIVES[config.method]
    device = next(model.parameters()).device
    pad = int(tokenizer.pad_token_id)
    per_epoch, total = _steps(len(train_set), config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _linear_schedule(config.warmup_steps, total))
    log_every = max(1, math.ceil(total / LOGS_PER_RUN))
    window, started = _Window(), time.perf_counter()
    step, eval_loss, trained, seen = 0, None, 0, 0
    model.train()
    torch.manual_seed(config.seed)
    for epoch in range(config.epochs):
        for group in _step_groups(len(train_set), config, epoch):
            for indexes in group:
                if reporter.should_stop():
                    raise Stopped(f"stopped at step {step} of {total}")
                items = [train_set[i] for i in indexes]
                loss = objective.loss(model, objective.collate(items, pad, device), config)
                torch.autograd.backward(loss / len(group))
                tokens, learned = _counts(items)  # from the examples: reading the batch would wait for the GPU
                window.add(loss.detach(), tokens)
                seen, trained = seen + tokens, trained + learned
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step % log_every == 0 or step == total:
                elapsed = time.perf_counter() - started
                eta = elapsed / step * (total - step)
                reporter.on_log(window.report(step, total, step / per_epoch, eta, float(schedule.get_last_lr()[0])))
            if step >= total:
                break
        if eval_set:
            eval_loss = evaluate(model, eval_set, config, pad=pad)
            reporter.on_eval(step, eval_loss)
        if step >= total:
            break
    return TrainResult(step, window.last_loss, eval_loss, trained, seen, time.perf_counter() - started)


@torch.no_grad()
def evaluate(model: Any, eval_set: Sequence[Any], config: TrainConfig, *, pad: int) -> float:
    """The mean loss over `eval_set` (per label token for supervised runs, per pair for DPO)."""
    objective = _OBJECTIVES[config.method]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = weight = 0.0
    for start in range(0, len(eval_set), config.batch_size):
        batch = objective.collate(eval_set[start : start + config.batch_size], pad, device)
        size = (
            float((batch["labels"][:, 1:] != IGNORE).sum())
            if config.method is Method.SUPERVISED
            else len(batch["pairs"])
        )
        total += float(objective.loss(model, batch, config)) * size
        weight += size
    model.train(was_training)
    return total / weight if weight else float("nan")


def _steps(examples: int, config: TrainConfig) -> tuple[int, int]:
    """(optimiser steps per epoch, optimiser steps in the run)."""
    per_epoch = max(1, math.ceil(math.ceil(examples / config.batch_size) / config.gradient_accumulation_steps))
    total = per_epoch * config.epochs
    return per_epoch, min(total, config.max_steps) if config.max_steps else total


def _step_groups(examples: int, config: TrainConfig, epoch: int) -> Iterator[list[list[int]]]:
    """The epoch's micro-batches (indexes into the training set), `gradient_accumulation_steps` to a group."""
    order = list(range(examples))
    random.Random(config.seed * 1_000_003 + epoch).shuffle(order)
    micro = [order[i : i + config.batch_size] for i in range(0, examples, config.batch_size)]
    for i in range(0, len(micro), config.gradient_accumulation_steps):
        yield micro[i : i + config.gradient_accumulation_steps]


def _linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _counts(items: Sequence[Any]) -> tuple[int, int]:
    """(tokens through the model, tokens the loss looks at) of a micro-batch of examples or pairs."""
    examples = [
        e for item in items for e in ((item.chosen, item.rejected) if isinstance(item, EncodedPair) else (item,))
    ]
    return sum(len(e.input_ids) for e in examples), sum(e.trained_tokens for e in examples)


class _Window:
    """Loss and tokens since the last log; losses stay on the device until then, so steps never wait for it."""

    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []
        self.tokens = 0
        self.started = time.perf_counter()
        self.last_loss: float | None = None

    def add(self, loss: torch.Tensor, tokens: int) -> None:
        self.losses.append(loss)
        self.tokens += tokens

    def report(self, step: int, total: int, epoch: float, eta: float, lr: float) -> StepReport:
        loss = float(torch.stack(self.losses).float().mean()) if self.losses else float("nan")
        now = time.perf_counter()
        report = StepReport(
            step=step, total_steps=total, epoch=round(epoch, 3), train_loss=loss,
            tokens_per_second=self.tokens / max(now - self.started, 1e-9), learning_rate=lr, eta_seconds=eta,
        )  # fmt: skip
        self.last_loss, self.losses, self.tokens, self.started = loss, [], 0, now
        return report


# Objectives -------------------------------------------------------------------------------------------------------------


def _padded(examples: Sequence[Encoded], pad: int, device: torch.device) -> Batch:
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


def _sft_collate(examples: Sequence[Any], pad: int, device: torch.device) -> Batch:
    return _padded(examples, pad, device)


def _sft_loss(model: Any, batch: Batch, config: TrainConfig) -> torch.Tensor:
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    loss: torch.Tensor = out.loss
    return loss


def _dpo_collate(pairs: Sequence[Any], pad: int, device: torch.device) -> Batch:
    """Chosen answers first, then rejected ones, in one padded batch."""
    batch = _padded([p.chosen for p in pairs] + [p.rejected for p in pairs], pad, device)
    batch["pairs"] = torch.zeros(len(pairs))
    return batch


def sequence_logps(model: Any, batch: Batch) -> torch.Tensor:
    """Each row's summed log-probability of its labelled tokens."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1, :]
    targets = batch["labels"][:, 1:]
    mask = targets != IGNORE
    picked = torch.gather(logits.float().log_softmax(-1), 2, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1)


def _dpo_loss(model: Any, batch: Batch, config: TrainConfig) -> torch.Tensor:
    policy = sequence_logps(model, batch)
    with torch.no_grad(), model.disable_adapter():
        reference = sequence_logps(model, batch)
    half = policy.shape[0] // 2
    margin = (policy[:half] - reference[:half]) - (policy[half:] - reference[half:])
    return -F.logsigmoid(config.beta * margin).mean()


_OBJECTIVES: dict[Method, _Objective] = {
    Method.SUPERVISED: _Objective(collate=_sft_collate, loss=_sft_loss),
    Method.DPO: _Objective(collate=_dpo_collate, loss=_dpo_loss),
}
