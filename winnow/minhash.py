"""MinHash signatures for many documents at once, compatible with datasketch.

datasketch's ``MinHash(num_perm, seed, scheme="affine32", hashfunc=shingle_hash32)``
updated with a document's shingles gives exactly the signature :func:`signatures` computes
for it (tests check this): same permutations (``a``, ``b`` drawn from ``RandomState(seed)``),
same MurmurHash3 pre-mix, same ``a * h + b mod 2^32``. The speed comes from doing the
arithmetic for thousands of documents in one numpy pass, and from hashing each distinct word
once (a shingle's hash combines its words' hashes) instead of hashing every shingle's bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import xxhash

_WORD = re.compile(r"\w+", re.UNICODE)
_M64 = (1 << 64) - 1
# Odd multipliers of the shingle hash, one per position (up to 16-grams).
_POS_MULT = np.array([0x9E3779B97F4A7C15 ^ (i * 0xBF58476D1CE4E5B9 & _M64) | 1 for i in range(16)], dtype=np.uint64)
_FMIX32 = (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16)


def words(text: str) -> list[str]:
    """Normalised words: lower-cased runs of letters/digits (punctuation and spacing ignored)."""
    return _WORD.findall(text.lower())


class WordHasher:
    """64-bit hash per distinct word, cached (web text reuses a small vocabulary)."""

    def __init__(self, max_cache: int = 2_000_000) -> None:
        self._cache: dict[str, int] = {}
        self._max = max_cache

    def __call__(self, ws: Sequence[str]) -> np.ndarray:
        cache = self._cache
        out = []
        for w in ws:
            h = cache.get(w)
            if h is None:
                h = xxhash.xxh3_64_intdigest(w)
                if len(cache) >= self._max:
                    cache.clear()
                cache[w] = h
            out.append(h)
        return np.array(out, dtype=np.uint64)


def _combine(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """Hash of every n-gram (sliding window) as uint32: sum of position-weighted word hashes
    (mod 2^64), high 32 bits. Vectorised; mirrored by :func:`shingle_hash32`."""
    m = len(word_hashes) - n + 1
    acc = np.zeros(m, dtype=np.uint64)
    for i in range(n):
        acc += word_hashes[i : i + m] * _POS_MULT[i]
    return (acc >> np.uint64(32)).astype(np.uint32)


def shingle_hashes(text: str, n: int, hasher: WordHasher) -> np.ndarray:
    """uint32 hashes of the word n-grams of ``text``; a document shorter than n words is one
    shingle of all its words; an empty one has none."""
    ws = words(text)
    if not ws:
        return np.zeros(0, dtype=np.uint32)
    wh = hasher(ws)
    if len(ws) < n:
        return _combine(wh, len(ws))
    return _combine(wh, n)


def shingle_hash32(shingle: Sequence[str]) -> int:
    """The same hash for one shingle (a sequence of normalised words), for datasketch's
    ``hashfunc``: ``MinHash(..., hashfunc=shingle_hash32).update(tuple_of_words)``."""
    acc = 0
    for i, w in enumerate(shingle):
        acc = (acc + xxhash.xxh3_64_intdigest(w) * int(_POS_MULT[i])) & _M64
    return acc >> 32


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters for (num_perm, seed)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def _fmix32(h: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = _FMIX32
    h = h ^ (h >> np.uint32(s1))
    h = h * np.uint32(m1)
    h = h ^ (h >> np.uint32(s2))
    h = h * np.uint32(m2)
    return h ^ (h >> np.uint32(s3))


EMPTY = np.uint32(0xFFFFFFFF)


def signatures(shingles: list[np.ndarray], a: np.ndarray, b: np.ndarray, max_cells: int = 8_000_000) -> np.ndarray:
    """(documents x num_perm) uint32 signatures. A document without shingles gets all-max
    values (datasketch's empty MinHash), which no band of a real document matches."""
    num_perm = len(a)
    out = np.full((len(shingles), num_perm), EMPTY, dtype=np.uint32)
    lengths = np.array([len(s) for s in shingles], dtype=np.int64)
    rows_per_block = max(1, max_cells // num_perm)
    start = 0
    with np.errstate(over="ignore"):
        while start < len(shingles):
            # Group documents so that one block holds about max_cells hash cells.
            end, cells = start, 0
            while end < len(shingles) and (cells == 0 or cells + lengths[end] <= rows_per_block):
                cells += lengths[end]
                end += 1
            docs = [i for i in range(start, end) if lengths[i]]
            if docs:
                hv = _fmix32(np.concatenate([shingles[i] for i in docs]))
                phv = hv[:, None] * a[None, :] + b[None, :]
                offsets = np.concatenate(([0], np.cumsum(lengths[docs])[:-1]))
                out[docs] = np.minimum.reduceat(phv, offsets, axis=0)
            start = end
    return out


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents x bands) uint64 bucket keys: a 64-bit hash of each band's ``rows`` values."""
    if sigs.shape[1] < bands * rows:
        raise ValueError(f"signature has {sigs.shape[1]} values, bands x rows needs {bands * rows}")
    keys = np.empty((sigs.shape[0], bands), dtype=np.uint64)
    for band in range(bands):
        block = np.ascontiguousarray(sigs[:, band * rows : (band + 1) * rows])
        keys[:, band] = [xxhash.xxh3_64_intdigest(row.tobytes()) for row in block] if len(block) else []
    return keys
