"""Chat generation with local models: a base model, optionally with a peft adapter, never downloaded.

`LocalGenerator.generate(ref, calls)` answers several conversations of one
model in one `generate` call: prompts are rendered with the tokenizer's chat
template, padded on the left and decoded greedily (temperature 0) or sampled.
Each row keeps its own token limit, stop sequences and stream: a stopping
criterion ends a row at its end-of-turn token, its first stop sequence or its
limit, while the others go on, so a batch answers exactly what each call would
have got alone (for greedy decoding; sampled calls with a seed run alone, so
the seed repeats).

Models load with `local_files_only` (a directory, or a Hugging Face id already
in the local cache), in float32 on CPU and bfloat16 on a GPU; an adapter is
merged into its base once, when loaded. `ModelCache` keeps the most recently
used models (two by default) and each loaded model has a lock, so one batch at
a time runs on it. Sampling draws from torch's global generator, so sampled
batches run one at a time across models (`_RNG`): a seeded call repeats even
while other models answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList
from transformers.utils import logging as transformers_logging

from core.errors import FinetuneError, InvalidInput
from core.inference.base import ChatCall, ChatRequest, ChatResult, FinishReason, ModelUnavailable, Outcome
from core.providers.base import ProviderError
from core.providers.local.base_models import locate_base_model

log = logging.getLogger(__name__)

CACHE_SIZE = 2  # loaded models kept; each holds its weights in memory
ADAPTER_CONFIG = "adapter_config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
REPLACEMENT = "\ufffd"  # what decoding shows for the first bytes of a character still being written

_RNG = threading.Lock()


@dataclass(frozen=True, slots=True)
class ModelRef:
    """What to load: a model directory or Hugging Face id, or an adapter directory and the base it applies to."""

    model: str
    base: str | None = None


class LoadedModel:
    """A model ready to generate, with its tokenizer and the lock one batch at a time holds."""

    def __init__(self, ref: ModelRef, model: Any, tokenizer: Any) -> None:
        self.ref = ref
        self.model = model
        self.tokenizer = tokenizer
        self.lock = threading.Lock()
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.context = _context(model, tokenizer)

    def prompt(self, request: ChatRequest) -> list[int]:
        """The request's messages as prompt tokens; InvalidInput when they leave no room for an answer."""
        messages = [{"role": str(m.role), "content": m.content} for m in request.messages]
        encoded = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        ids = [int(token) for token in encoded["input_ids"]]
        if len(ids) >= self.context:
            raise InvalidInput(
                f"the messages are {len(ids)} tokens long; this model reads at most {self.context} tokens, "
                "its answer included.",
                hint="Shorten the messages or drop the oldest ones.",
                param="messages",
            )
        return ids


class ModelCache:
    """The `capacity` most recently used models; a model being loaded is loaded once, whoever else asks."""

    def __init__(self, *, capacity: int = CACHE_SIZE, device: str | None = None) -> None:
        self.capacity = capacity
        self.device = device
        self.loads = 0  # how many times a model was read from disk
        self._loaded: OrderedDict[ModelRef, LoadedModel] = OrderedDict()
        self._loading: dict[ModelRef, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, ref: ModelRef) -> LoadedModel:
        found = self._cached(ref)
        if found is not None:
            return found
        with self._lock:
            gate = self._loading.setdefault(ref, threading.Lock())
        with gate:
            found = self._cached(ref)
            if found is not None:
                return found
            try:
                loaded = load_model(ref, device=self.device)  # outside the cache lock: other models stay usable
            finally:
                with self._lock:
                    self._loading.pop(ref, None)
            with self._lock:
                self.loads += 1
                self._loaded[ref] = loaded
                while len(self._loaded) > self.capacity:
                    evicted, _ = self._loaded.popitem(last=False)  # a batch still running keeps its own reference
                    log.info("unloaded %s to make room", evicted.model)
            return loaded

    def loaded(self) -> list[ModelRef]:
        """The models in memory, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def clear(self) -> None:
        with self._lock:
            self._loaded.clear()

    def _cached(self, ref: ModelRef) -> LoadedModel | None:
        with self._lock:
            found = self._loaded.get(ref)
            if found is not None:
                self._loaded.move_to_end(ref)
            return found


class LocalGenerator:
    """Answers batches of chat calls with local models, loading them through a `ModelCache`."""

    def __init__(self, *, capacity: int = CACHE_SIZE, device: str | None = None) -> None:
        self.models = ModelCache(capacity=capacity, device=device)

    def generate(self, ref: ModelRef, calls: Sequence[ChatCall], *, name: str) -> list[Outcome]:
        """One outcome per call, in order: its answer, or the error that refused its prompt alone."""
        loaded = self.models.get(ref)
        outcomes: list[Outcome | None] = [None] * len(calls)
        rows: list[tuple[int, list[int]]] = []
        for index, call in enumerate(calls):
            try:
                rows.append((index, loaded.prompt(call.request)))
            except FinetuneError as exc:
                outcomes[index] = exc
        if rows:
            with loaded.lock:
                answers = _generate(loaded, [calls[index] for index, _ in rows], [ids for _, ids in rows], name)
            for (index, _), answer in zip(rows, answers, strict=True):
                outcomes[index] = answer
        return [outcome for outcome in outcomes if outcome is not None]

    def close(self) -> None:
        self.models.clear()


# Loading ------------------------------------------------------------------------------------------


def load_model(ref: ModelRef, *, device: str | None = None) -> LoadedModel:
    """Read `ref` from disk (never from the network) onto `device` (default: the GPU when there is one)."""
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # untyped in transformers
    where = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if where.startswith("cuda") else torch.float32
    _require_directory(ref.model)
    adapter = Path(ref.model)
    if (adapter / ADAPTER_CONFIG).is_file():
        base = local_directory(_base_of(ref, adapter))
        model = _merged(_pretrained(base, dtype), adapter)
        tokenizer = _tokenizer(next((d for d in (adapter, adapter.parent) if (d / TOKENIZER_CONFIG).is_file()), base))
    else:
        directory = local_directory(ref.model)
        model, tokenizer = _pretrained(directory, dtype), _tokenizer(directory)
    if not getattr(tokenizer, "chat_template", None):
        raise ModelUnavailable(
            f"the tokenizer of {ref.model} has no chat template, so conversations cannot be turned into a prompt.",
            hint="Save the tokenizer with a chat template (tokenizer.chat_template) beside the model or adapter.",
            model=ref.model,
        )
    tokenizer.padding_side = "left"
    return LoadedModel(ref, model.to(where).eval(), tokenizer)


def _require_directory(model: str) -> None:
    path = Path(model)
    looks_like_a_path = path.is_absolute() or model.startswith(".") or model.count("/") > 1
    if looks_like_a_path and not path.is_dir():
        raise ModelUnavailable(
            f"the model directory {model} does not exist on this machine.",
            hint="Run serve where the model was trained, or copy its directory to the same path.",
            model=model,
        )


def _base_of(ref: ModelRef, adapter: Path) -> str:
    """The base model of an adapter: the version's, or the one its adapter_config.json records."""
    try:
        config = json.loads((adapter / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"{adapter / ADAPTER_CONFIG} cannot be read: {exc}.",
            hint="Save the adapter again with save_pretrained.",
            model=str(adapter),
        ) from None
    recorded = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    candidates = [str(name) for name in (ref.base, recorded) if name]
    for candidate in candidates:
        if Path(candidate).is_dir():
            return candidate
    if not candidates:
        raise ModelUnavailable(
            f"the adapter {adapter} names no base model.",
            hint="Register the version with its base_model, or set base_model_name_or_path in adapter_config.json.",
            model=str(adapter),
        )
    return candidates[0]  # a Hugging Face id, looked up in the local cache


def local_directory(name: str) -> Path:
    """`name` as a directory on this machine: itself, or a Hugging Face id's snapshot in the local cache.

    Resolved before loading, without the network, because transformers still asks the Hub about adapters of a
    model id even with `local_files_only` (and retries for half a minute when offline); a directory it never
    asks about.
    """
    try:
        found = locate_base_model(name)
    except ProviderError as exc:
        raise ModelUnavailable(
            exc.message, hint=f"Download it once beforehand (hf download {name}), or use a local directory.", model=name
        ) from None
    if found.directory is None:  # `tiny`: built inside each training run, so only its adapter knows where
        raise ModelUnavailable(
            f"{name!r} names no model on its own: the tiny model is built inside the training run that uses it.",
            hint="Call the version trained on it: its adapter records where its tiny base model is.",
            model=name,
        )
    return found.directory


def _pretrained(directory: Path, dtype: torch.dtype) -> Any:
    try:
        return AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, local_files_only=True)
    except OSError as exc:
        raise _not_here(str(directory), exc) from None


def _tokenizer(directory: Path) -> Any:
    try:
        return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except OSError as exc:
        raise _not_here(str(directory), exc) from None


def _merged(base: Any, adapter: Path) -> Any:
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(base, adapter, is_trainable=False).merge_and_unload()
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelUnavailable(
            f"the adapter {adapter} does not load onto its base model: {_first_line(exc)}",
            hint="Check that the version's base_model is the model the adapter was trained on.",
            model=str(adapter),
        ) from None


def _not_here(name: str, exc: Exception) -> ModelUnavailable:
    return ModelUnavailable(
        f"{name} is not on this machine ({_first_line(exc)}); local models are never downloaded while serving.",
        hint=f"Download it once beforehand (hf download {name}), or use a local directory.",
        model=name,
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    found = {int(token) for token in [*ids, tokenizer.eos_token_id] if token is not None}
    if not found:
        raise ModelUnavailable(
            f"{model.name_or_path} has no end-of-sequence token, so an answer could never end before its limit.",
            hint="Set eos_token_id in the model's generation_config.json or the tokenizer.",
        )
    return frozenset(found)


def _context(model: Any, tokenizer: Any) -> int:
    """How many tokens the model reads at once, prompt and answer together."""
    configured = getattr(model.config, "max_position_embeddings", None)
    if isinstance(configured, int) and configured > 0:
        return configured
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10_000_000 else 2048


# Generating ---------------------------------------------------------------------------------------


def _generate(loaded: LoadedModel, calls: Sequence[ChatCall], prompts: Sequence[list[int]], name: str) -> list[Outcome]:
    """One `generate` for every row, padded on the left; the rows share the first call's sampling settings."""
    width = max(len(ids) for ids in prompts)
    input_ids = torch.full((len(prompts), width), loaded.pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention[row, width - len(ids) :] = 1
    limits = [
        min(call.request.max_new_tokens, loaded.context - len(ids)) for call, ids in zip(calls, prompts, strict=True)
    ]
    rows = _Rows(loaded, calls, start=width, limits=limits)
    first = calls[0].request
    options: dict[str, Any] = {"do_sample": not first.greedy}
    if not first.greedy:
        options |= {"temperature": first.temperature, "top_p": first.top_p}
    for call in calls:
        rows.tell(call, "")  # started: the model is loaded and the prompt fits
    device = loaded.model.device
    with torch.inference_mode(), _random_state(first):
        output = loaded.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max(limits),
            pad_token_id=loaded.pad_id,
            eos_token_id=sorted(loaded.eos_ids),
            stopping_criteria=StoppingCriteriaList([rows]),
            **options,
        )
    generated = output[:, width:].cpu()
    return [
        rows.result(row, generated[row].tolist(), input_tokens=len(ids), name=name) for row, ids in enumerate(prompts)
    ]


@contextlib.contextmanager
def _random_state(request: ChatRequest) -> Iterator[None]:
    """Greedy decoding draws nothing; sampling holds torch's generator, seeded when the call gives a seed."""
    if request.greedy:
        yield
        return
    with _RNG:
        if request.seed is not None:
            torch.manual_seed(request.seed)
        yield


class _Rows(StoppingCriteria):
    """Ends each row at its own end-of-turn token, stop sequence or limit, and streams its text as it grows."""

    def __init__(self, loaded: LoadedModel, calls: Sequence[ChatCall], *, start: int, limits: list[int]) -> None:
        self.loaded = loaded
        self.calls = calls
        self.start = start
        self.limits = limits
        self.ended: list[FinishReason | None] = [None] * len(calls)
        self.counts = [0] * len(calls)  # tokens generated when the row ended
        self.sent = [""] * len(calls)  # text streamed so far

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        new = input_ids[:, self.start :]
        length = new.shape[1]
        for row, call in enumerate(self.calls):
            if self.ended[row] is None:
                self._step(row, call, new[row], length)
        return torch.tensor([reason is not None for reason in self.ended], device=input_ids.device)  # type: ignore[return-value]

    def _step(self, row: int, call: ChatCall, tokens: torch.Tensor, length: int) -> None:
        if int(tokens[length - 1]) in self.loaded.eos_ids or call.stopped.is_set():
            self._end(row, FinishReason.STOP, length)
            return
        if call.on_text is not None or call.request.stop:
            text = self._decode(tokens[:length].tolist())
            if _first_stop(text, call.request.stop) is not None:
                self._end(row, FinishReason.STOP, length)
                return
            self._stream(row, call, _settled(text, call.request.stop))
        if length >= self.limits[row]:
            self._end(row, FinishReason.LENGTH, length)

    def _end(self, row: int, reason: FinishReason, length: int) -> None:
        self.ended[row], self.counts[row] = reason, length

    def _decode(self, tokens: list[int]) -> str:
        return str(self.loaded.tokenizer.decode(tokens, skip_special_tokens=True))

    def _stream(self, row: int, call: ChatCall, text: str) -> None:
        sent = self.sent[row]
        if len(text) > len(sent) and text.startswith(sent):
            self.tell(call, text[len(sent) :])
            self.sent[row] = text

    def tell(self, call: ChatCall, text: str) -> None:
        """Hand `text` to the call's stream; a stream that fails ends its row, never the batch."""
        if call.on_text is None:
            return
        try:
            call.on_text(text)
        except Exception:
            log.exception("a chat stream refused its text; ending that answer")
            call.stopped.set()

    def result(self, row: int, generated: list[int], *, input_tokens: int, name: str) -> ChatResult:
        reason = self.ended[row] or FinishReason.LENGTH
        count = self.counts[row] or min(len(generated), self.limits[row])
        tokens = generated[:count]
        if tokens and tokens[-1] in self.loaded.eos_ids:
            tokens = tokens[:-1]
        text = self._decode(tokens)
        cut = _first_stop(text, self.calls[row].request.stop)
        text = text if cut is None else text[:cut]
        sent = self.sent[row]
        if text.startswith(sent) and len(text) > len(sent):
            self.tell(self.calls[row], text[len(sent) :])
        return ChatResult(
            text=text, finish_reason=reason, input_tokens=input_tokens, output_tokens=count, latency_ms=0.0,
            cost_usd=0.0, model=name,
        )  # fmt: skip


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Where the first stop sequence in `text` begins, if any."""
    found = [index for index in (text.find(stop) for stop in stops) if index >= 0]
    return min(found) if found else None


def _settled(text: str, stops: Sequence[str]) -> str:
    """The part of `text` that can no longer change: without a character still being written, or a tail
    that may turn out to begin a stop sequence."""
    text = text.rstrip(REPLACEMENT)
    held = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:size]):
                held = size
                break
    return text[: len(text) - held]
