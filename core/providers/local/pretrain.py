"""Pretraining a tiny base model from scratch on a team's own conversations, for machines without a real one.

A tiny model built from a config (`tiny.build_tiny_model`) starts from random
weights, so LoRA alone cannot make it write: its frozen embeddings know no
language. `pretrain_tiny` trains every weight of a slightly larger tiny model
on (conversation → reply) pairs for a few hundred steps (about a minute on two
CPU cores), which leaves a base that writes replies in the style of those
conversations: what `finetune demo` uses as "the model the team runs today"
before fine-tuning it. It is a stand-in for a real base model, which is what
anyone with one on their machine (FINETUNE_LOCAL_BASE_MODEL) should use.

torch and transformers are imported when it is called: they come with the
`local` extra.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.providers.local.tiny import TinySpec, build_tiny_model

Conversation = Sequence[Mapping[str, str]]  # chat messages: role and content


BASE = TinySpec(hidden_size=128, intermediate_size=256, layers=3, heads=4, init_std=0.02)  # about 0.75M parameters


@dataclass(frozen=True)
class PretrainSpec:
    """How big the base is and how long it trains; the defaults write readable replies in about a minute."""

    model: TinySpec = BASE
    steps: int = 400
    batch_size: int = 16
    learning_rate: float = 3e-3
    seed: int = 0


@dataclass(frozen=True)
class Pretrained:
    directory: Path
    parameters: int
    first_loss: float
    last_loss: float  # the mean of the last tenth of the steps


def pretrain_tiny(
    directory: Path,
    pairs: Sequence[tuple[Conversation, str]],
    *,
    spec: PretrainSpec | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
) -> Pretrained:
    """Build a tiny model under `directory` and train all its weights on `pairs` (messages, reply): loss on the
    reply's tokens only, as supervised fine-tuning counts it. Same pairs and spec, same weights."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = spec or PretrainSpec()
    if not pairs:
        raise ValueError("pretraining needs at least one (conversation, reply) pair")
    texts = [message["content"] for messages, _ in pairs for message in messages] + [reply for _, reply in pairs]
    build_tiny_model(directory, texts, spec=spec.model)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory)
    torch.manual_seed(spec.seed)
    examples = [_encode(tokenizer, messages, reply) for messages, reply in pairs]
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.0)
    rng = random.Random(spec.seed)
    pad = int(tokenizer.pad_token_id)
    losses: list[float] = []
    model.train()
    for step in range(1, spec.steps + 1):
        batch = rng.sample(examples, min(spec.batch_size, len(examples)))
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([row + [pad] * (width - len(row)) for row, _ in batch])
        labels = torch.tensor([row + [-100] * (width - len(row)) for _, row in batch])
        mask = (ids != pad).long()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.item()))
        if on_step is not None:
            on_step(step, spec.steps, losses[-1])
    model.save_pretrained(directory)
    tail = losses[-max(1, len(losses) // 10) :]
    return Pretrained(
        directory=directory,
        parameters=sum(parameter.numel() for parameter in model.parameters()),
        first_loss=losses[0],
        last_loss=sum(tail) / len(tail),
    )


def _encode(tokenizer: object, messages: Conversation, reply: str) -> tuple[list[int], list[int]]:
    """Token ids of the conversation and reply in the chat template, and labels that count the reply only."""
    render = tokenizer.apply_chat_template  # type: ignore[attr-defined]
    prompt = render(list(messages), tokenize=False, add_generation_prompt=True)
    full = prompt + reply + "<|im_end|>\n"
    ids = tokenizer(full)["input_ids"]  # type: ignore[operator]
    prompt_length = len(tokenizer(prompt)["input_ids"])  # type: ignore[operator]
    return ids, [-100] * prompt_length + ids[prompt_length:]
