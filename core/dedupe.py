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

import re
import struct
import zlib

BINS = 32
BANDS = 8
ROWS = BINS // BANDS
EMPTY = 0xFFFFFFFF
_NOISE = re.compile(r"[\W\d_]+", re.UNICODE)


def normalise(text: str) -> str:
    return _NOISE.sub(" ", text.lower()).strip()


def exact_key(prompt: str, completion: str) -> int:
    """A 64-bit key equal for texts that differ only in case, spacing, punctuation or digits."""
    digest = zlib.crc32(normalise(completion).encode()) << 32 | zlib.crc32(normalise(prompt).encode())
    return digest - (1 << 63)  # fit SQLite's signed 64-bit integers


def signature(text: str) -> tuple[int, ...]:
    words = normalise(text).split()
    mins = [EMPTY] * BINS
    if len(words) < 3:
        shingles = [" ".join(words)] if words else []
    else:
        shingles = [f"{words[i]} {words[i + 1]} {words[i + 2]}" for i in range(len(words) - 2)]
    for shingle in shingles:
        h = zlib.crc32(shingle.encode())
        b = h % BINS
        if h < mins[b]:
            mins[b] = h
    return tuple(mins)


def band_keys(sig: tuple[int, ...]) -> list[int]:
    """One 63-bit key per band; equal keys make two texts candidates."""
    keys = []
    for band in range(BANDS):
        chunk = struct.pack(f"<{ROWS}I", *sig[band * ROWS : (band + 1) * ROWS])
        keys.append(zlib.crc32(chunk) << 31 | zlib.adler32(chunk) >> 1)
    return keys


def similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Estimated Jaccard similarity: the share of non-empty bins with the same minimum."""
    used = [(x, y) for x, y in zip(a, b) if x != EMPTY or y != EMPTY]
    if not used:
        return 1.0
    return sum(x == y for x, y in used) / len(used)


def pack(sig: tuple[int, ...]) -> bytes:
    return struct.pack(f"<{BINS}I", *sig)


def unpack(blob: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{BINS}I", blob)
