"""Token counts are tiktoken's, work with the network gone, and statistics stay bounded."""

import hashlib
import math
import pickle
import random
import socket
from typing import Any

import pytest
import requests
import tiktoken
import tiktoken.registry
import tiktoken_ext.openai_public

from core.catalog.models import load_catalog
from core.data import tokens
from core.data.tokens import TokenStatsBuilder

CATALOG = load_catalog()
OPENAI = "gpt-4o-mini-2024-07-18"
NOVA = "amazon.nova-micro-v1:0"
SAMPLES = [
    "hello world",
    "Hello, world! Déjà vu — 東京 🙂",
    "def f(x):\n    return x ** 2  # square\n",
    "The literal <|endoftext|> is plain text here.",
    "",
]


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to reach the network fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(requests, "get", refuse)


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path):
    """An empty tiktoken cache and no encoding loaded yet, restored afterwards."""
    cache = tmp_path / "tiktoken-cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(tokens, "_seeded_dir", None)
    monkeypatch.setattr(tokens, "default_cache_dir", lambda: cache)
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    tokens._encoding.cache_clear()
    tokens._counter.cache_clear()
    yield cache
    tokens._encoding.cache_clear()
    tokens._counter.cache_clear()


def test_hello_world_is_two_o200k_tokens():
    assert tokens.count_text("hello world", model=OPENAI, catalog=CATALOG) == 2


@pytest.mark.parametrize("text", SAMPLES)
def test_counts_equal_tiktoken(text):
    expected = len(tiktoken.get_encoding("o200k_base").encode_ordinary(text))
    assert tokens.count_text(text, model=OPENAI, catalog=CATALOG) == expected


def test_counts_work_offline_from_an_empty_cache(fresh_cache, no_network):
    assert tokens.count_text("hello world", model=OPENAI, catalog=CATALOG) == 2
    for blob in tokens.ENCODING_BLOBS.values():
        cached = fresh_cache / hashlib.sha1(blob.url.encode()).hexdigest()
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == blob.sha256
    assert tiktoken.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]


def test_seeding_is_idempotent_and_repairs_a_corrupt_file(fresh_cache):
    assert tokens.ensure_offline_encodings() == fresh_cache
    assert tokens.ensure_offline_encodings() == fresh_cache
    blob = tokens.ENCODING_BLOBS["o200k_base"]
    cached = fresh_cache / tokens.cache_key(blob.url)
    cached.write_bytes(b"not a vocabulary")
    other = fresh_cache.parent / "other"
    tokens.ensure_offline_encodings(other)
    tokens.ensure_offline_encodings(fresh_cache)
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == blob.sha256


def test_pinned_urls_and_hashes_match_the_installed_tiktoken(monkeypatch):
    requested = {}

    class Captured(Exception):
        pass

    def capture(url, expected_hash=None):
        requested[url] = expected_hash
        raise Captured

    monkeypatch.setattr(tiktoken_ext.openai_public, "load_tiktoken_bpe", capture)
    for name in tokens.ENCODING_BLOBS:
        with pytest.raises(Captured):
            tiktoken_ext.openai_public.ENCODING_CONSTRUCTORS[name]()
    assert requested == {blob.url: blob.sha256 for blob in tokens.ENCODING_BLOBS.values()}


def test_count_messages_follows_openai_chat_accounting():
    encoding = tiktoken.get_encoding("o200k_base")
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello world", "name": "ana"},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi."}]},
    ]
    expected = 3  # the reply is primed
    expected += 3 + len(encoding.encode("system")) + len(encoding.encode("You are terse."))
    expected += 3 + len(encoding.encode("user")) + len(encoding.encode("hello world")) + len(encoding.encode("ana")) + 1
    expected += 3 + len(encoding.encode("assistant")) + len(encoding.encode("Hi."))
    assert tokens.count_messages(messages, model=OPENAI, catalog=CATALOG) == expected


def test_exactness_follows_the_catalog():
    assert tokens.is_exact(OPENAI, catalog=CATALOG)
    assert tokens.is_exact(OPENAI + "-ft-suffix", catalog=CATALOG)  # catalog prefix lookup
    assert not tokens.is_exact(NOVA, catalog=CATALOG)
    assert not tokens.is_exact("no-such-model", catalog=CATALOG)
    assert not tokens.is_exact(None, catalog=CATALOG)


def test_estimates_scale_o200k_for_other_families_and_not_for_unknown_ids():
    text = "Please summarise the meeting notes for the release team. " * 20
    o200k = len(tiktoken.get_encoding("o200k_base").encode(text))
    assert tokens.count_text(text, model=NOVA, catalog=CATALOG) == math.ceil(o200k * tokens.ESTIMATE_FACTOR)
    assert tokens.count_text(text, model="no-such-model", catalog=CATALOG) == o200k
    assert tokens.count_text(text, catalog=CATALOG) == o200k


def test_stats_are_exact_where_promised_and_percentiles_within_one_percent():
    rng = random.Random(7)
    values = [max(1, int(rng.lognormvariate(6, 1))) for _ in range(20_000)]
    builder = TokenStatsBuilder()
    for value in values:
        builder.add(value)
    stats = builder.build()
    ordered = sorted(values)
    assert (stats.examples, stats.total, stats.min, stats.max) == (len(values), sum(values), ordered[0], ordered[-1])
    assert stats.mean == round(sum(values) / len(values), 2)
    assert stats.p50 == pytest.approx(ordered[len(values) // 2 - 1], rel=0.01)
    assert stats.p95 == pytest.approx(ordered[math.ceil(0.95 * len(values)) - 1], rel=0.01)
    assert stats.exact


def test_small_counts_are_exact_percentiles():
    builder = TokenStatsBuilder()
    for value in [5, 1, 3, 2, 4]:
        builder.add(value)
    stats = builder.build()
    assert (stats.p50, stats.p95) == (3, 5)


def test_merged_builders_equal_one_builder_and_pickle():
    values = list(range(1, 5_000, 7))
    whole, left, right = TokenStatsBuilder(), TokenStatsBuilder(), TokenStatsBuilder()
    for value in values:
        whole.add(value)
    for value in values[:300]:
        left.add(value)
    for value in values[300:]:
        right.add(value)
    merged = pickle.loads(pickle.dumps(left)).merge(pickle.loads(pickle.dumps(right)))
    assert merged.build() == whole.build()


def test_memory_is_bounded_whatever_the_values():
    builder = TokenStatsBuilder()
    for value in range(0, 10_000_000, 97):
        builder.add(value)
    assert len(builder.buckets) < 1_000


def test_estimates_make_stats_inexact_and_empty_stats_are_zero():
    estimated = TokenStatsBuilder(exact=False)
    assert TokenStatsBuilder().merge(estimated).build().exact is False
    assert TokenStatsBuilder().build().model_dump() == {
        "examples": 0,
        "total": 0,
        "min": 0,
        "max": 0,
        "mean": 0.0,
        "p50": 0,
        "p95": 0,
        "exact": True,
    }


def test_a_model_resolves_once_to_a_tokenizer_that_pickles():
    tokenizer = tokens.resolve(NOVA, catalog=CATALOG)
    assert tokenizer == tokens.tokenizer_for(CATALOG.get(NOVA)) and not tokenizer.exact
    assert tokens.resolve(OPENAI, catalog=CATALOG) == tokens.Tokenizer("o200k_base", exact=True)
    copy = pickle.loads(pickle.dumps(tokenizer))
    assert copy == tokenizer
    assert copy.count_text(SAMPLES[1]) == tokens.count_text(SAMPLES[1], model=NOVA, catalog=CATALOG)
