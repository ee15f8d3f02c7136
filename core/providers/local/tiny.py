"""A tiny causal language model built from a config, for machines that cannot download weights.

`build_tiny_model(directory, texts)` trains a byte-level BPE tokenizer on the
given texts (the `tokenizers` library), gives it a ChatML chat template, builds
a small Llama-architecture model with random weights from a config, and saves
both with `save_pretrained`, so the directory loads like any Hugging Face model
(`AutoModelForCausalLM.from_pretrained(directory)`). The same texts and seed
give the same tokenizer and weights. Tests, the demo and offline users train
and serve it like a real model; it learns the style of its data in a few dozen
steps but knows nothing else.

torch, transformers and tokenizers are imported when it is called: they come
with the `local` extra.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

TINY_MODEL = "tiny"  # the base-model name that means "build the tiny model from the job's own data"
MARKER = "finetune-tiny.json"  # written beside the weights: how the model was built

PAD, START, END = "<|pad|>", "<|im_start|>", "<|im_end|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    """The architecture of the tiny model: about 0.2M parameters when the vocabulary fills up.

    Small enough that a CPU trains it in seconds. Its weights start wider than a
    language model's usual 0.02, so that its (frozen, tied) embeddings leave LoRA
    room to move the logits: with 0.02 the loss barely falls in a few dozen steps.
    """

    vocab_size: int = 2048
    hidden_size: int = 64
    intermediate_size: int = 128
    layers: int = 2
    heads: int = 4
    context: int = 1024
    init_std: float = 0.1
    seed: int = 0


def build_tiny_model(directory: Path, texts: Iterable[str], *, spec: TinySpec | None = None) -> Path:
    """Train a tokenizer on `texts`, build the model, save both under `directory`; returns `directory`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    spec = spec or TinySpec()
    tokenizer = _tokenizer(texts, spec.vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.context,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        initializer_range=spec.init_std,
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    parameters = sum(p.numel() for p in model.parameters())
    (directory / MARKER).write_text(json.dumps({**asdict(spec), "parameters": parameters}, indent=2) + "\n")
    return directory


def is_tiny_model(directory: Path) -> bool:
    return (directory / MARKER).is_file()


def _tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, START, END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte has a token: no text is unknown
        show_progress=False,
    )
    tokenizer.train_from_iterator((text for text in texts if text), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, eos_token=END)  # type: ignore[no-untyped-call]
    fast.chat_template = CHAT_TEMPLATE
    return fast
