"""Duplicate detection for curation.

Exact duplicates: the same prompt and completion after normalising case,
whitespace, punctuation and digits (so "Order #123 ships Monday." and
"order #456 ships monday" are one example).

Near duplicates: texts whose word-trigram sets overlap by at least a Jaccard
threshold, estimated with one-permutation MinHash (32 bins of the minimum
CRC-32 of the shingles falling in each bin) and found with LSH (8 bands of 4
bins: two texts sharing any band are compared). Signatures are 128 bytes, so
candidate search can live in SQLite rather than in memory.
"""

from __future__ import annotations

import struct
import zlib

BINS = 32
BANDS = 8
ROWS = BINS // BANDS
EMPTY = 0xFFFFFFFF
_MASK = 0xFFFFFFFF
_M1, _M2 = 0x9E3779B1, 0x85EBCA77  # odd multipliers: a trigram's hash depends on word order
_NOISE = (
    bytes(range(33, 48)) + bytes(range(48, 58)) + bytes(range(58, 65)) + bytes(range(91, 97)) + bytes(range(123, 127))
)
_TO_SPACE = bytes.maketrans(_NOISE, b" " * len(_NOISE))


def _words(text: str) -> list[bytes]:
    """Lower-cased words with ASCII punctuation and digits removed (byte-level, so it runs in C)."""
    return text.lower().encode().translate(_TO_SPACE).split()


def normalise(text: str) -> str:
    return b" ".join(_words(text)).decode()


def exact_key(prompt: str, completion: str) -> int:
    """A 64-bit key equal for texts that differ only in case, spacing, punctuation or digits."""
    digest = zlib.crc32(b" ".join(_words(completion))) << 32 | zlib.crc32(b" ".join(_words(prompt)))
    return digest - (1 << 63)  # fit SQLite's signed 64-bit integers


def signature(text: str) -> tuple[int, ...]:
    """One-permutation MinHash of the word trigrams: per bin (top 5 bits), the smallest trigram hash."""
    words = _words(text)
    hashes = [zlib.crc32(w) for w in words]
    if len(hashes) >= 3:
        shingles = [(a * _M1 + b * _M2 + c) & _MASK for a, b, c in zip(hashes, hashes[1:], hashes[2:], strict=False)]
    else:
        shingles = [zlib.crc32(b" ".join(words))] if words else []
    smallest = {h >> 27: h for h in sorted(shingles, reverse=True)}  # the last write per bin is its minimum
    return tuple(smallest.get(b, EMPTY) for b in range(BINS))


def band_keys(sig: tuple[int, ...]) -> list[int]:
    """One 63-bit key per band; equal keys make two texts candidates."""
    keys = []
    for band in range(BANDS):
        chunk = struct.pack(f"<{ROWS}I", *sig[band * ROWS : (band + 1) * ROWS])
        keys.append(zlib.crc32(chunk) << 31 | zlib.adler32(chunk) >> 1)
    return keys


def similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Estimated Jaccard similarity: the share of non-empty bins with the same minimum."""
    used = [(x, y) for x, y in zip(a, b, strict=False) if x != EMPTY or y != EMPTY]
    if not used:
        return 1.0
    return sum(x == y for x, y in used) / len(used)


def pack(sig: tuple[int, ...]) -> bytes:
    return struct.pack(f"<{BINS}I", *sig)


def unpack(blob: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{BINS}I", blob)
