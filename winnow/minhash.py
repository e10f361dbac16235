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
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

# Letters, digits and underscore, as Python's \w; the same class in RE2 for the batch path.
_WORD = re.compile(r"[^\W]+", re.UNICODE)
_SEPARATORS_RE2 = r"[^\pL\pN_]+"
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


def signatures(shingles: list[np.ndarray], a: np.ndarray, b: np.ndarray, max_cells: int = 1_000_000) -> np.ndarray:
    """(documents x num_perm) uint32 signatures, one row per array of shingle hashes. A
    document without shingles gets all-max values (datasketch's empty MinHash), which no band
    of a real document matches."""
    lengths = np.fromiter((len(x) for x in shingles), dtype=np.int64, count=len(shingles))
    flat = np.concatenate(shingles) if len(shingles) else np.zeros(0, dtype=np.uint32)
    return signatures_flat(flat.astype(np.uint32, copy=False), lengths, a, b, max_cells)


def signatures_flat(flat: np.ndarray, lengths: np.ndarray, a: np.ndarray, b: np.ndarray,
                    max_cells: int = 1_000_000) -> np.ndarray:
    """Signatures from the shingle hashes of all documents concatenated in document order
    (``lengths[d]`` hashes for document d), in blocks of about ``max_cells`` hash cells."""
    num_perm = len(a)
    out = np.full((len(lengths), num_perm), EMPTY, dtype=np.uint32)
    ends = np.cumsum(lengths)
    rows_per_block = max(1, max_cells // num_perm)
    d0 = 0
    with np.errstate(over="ignore"):
        while d0 < len(lengths):
            base = ends[d0] - lengths[d0]
            # Last document of the block: at least one, as many as fit in rows_per_block.
            d1 = max(d0 + 1, int(np.searchsorted(ends, base + rows_per_block, side="right")))
            d1 = min(d1, len(lengths))
            sel = np.flatnonzero(lengths[d0:d1]) + d0
            if len(sel):
                hv = _fmix32(flat[base : ends[d1 - 1]])
                phv = np.multiply(hv[:, None], a[None, :])
                np.add(phv, b[None, :], out=phv)
                out[sel] = np.minimum.reduceat(phv, (ends[sel] - lengths[sel]) - base, axis=0)
            d0 = d1
    return out


def text_signatures(texts: Sequence[str], n: int, hasher: WordHasher, a: np.ndarray, b: np.ndarray,
                    max_cells: int = 1_000_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signatures of many texts with the per-word work done in Arrow and numpy, once per batch.

    Returns (signatures, has_shingles, exact keys). Signatures equal
    ``signatures([shingle_hashes(t) ...])``; the exact key is a 64-bit hash of the whole
    normalised word sequence (equal for texts that differ only in case, spacing, punctuation).
    Signatures:
    words are split and dictionary-encoded by Arrow, each distinct word is hashed once, and
    the n-gram hashes are computed over the concatenated word hashes of the batch, keeping
    only windows that lie inside one document.
    """
    split = pc.split_pattern_regex(pc.utf8_lower(pa.array(texts, type=pa.large_string())), _SEPARATORS_RE2)
    flat = pc.list_flatten(split)
    parent = pc.list_parent_indices(split).to_numpy()
    keep = pc.not_equal(pc.utf8_length(flat), 0)  # separators at the ends leave empty strings
    flat = pc.filter(flat, keep)
    parent = parent[keep.to_numpy(zero_copy_only=False)]
    encoded = pc.dictionary_encode(flat)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    vocab_hashes = hasher(encoded.dictionary.to_pylist())
    flat_hashes = vocab_hashes[encoded.indices.to_numpy()] if len(encoded) else np.zeros(0, dtype=np.uint64)
    counts = (np.bincount(parent, minlength=len(texts)).astype(np.int64) if len(parent)
              else np.zeros(len(texts), np.int64))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])) if len(counts) else counts
    long_docs = counts >= n
    n_windows = np.where(long_docs, counts - n + 1, 0)
    total = int(n_windows.sum())
    if total:
        first = np.cumsum(n_windows) - n_windows
        win_start = np.repeat(starts, n_windows) + (np.arange(total) - np.repeat(first, n_windows))
        acc = np.zeros(total, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for i in range(n):
                acc += flat_hashes[win_start + i] * _POS_MULT[i]
        grams = (acc >> np.uint64(32)).astype(np.uint32)
    else:
        first = np.zeros(len(texts), dtype=np.int64)
        grams = np.zeros(0, dtype=np.uint32)
    # A document of 1..n-1 words is one shingle of all its words (rare: a small Python loop).
    short = np.flatnonzero((counts > 0) & ~long_docs)
    lengths = n_windows.copy()
    if len(short):
        values = [int(_combine(flat_hashes[starts[d] : starts[d] + counts[d]], int(counts[d]))[0]) for d in short]
        grams = np.insert(grams, first[short], np.array(values, dtype=np.uint32))
        lengths[short] = 1
    exact = np.zeros(len(texts), dtype=np.uint64)
    nonempty = np.flatnonzero(counts)
    if len(nonempty):
        pos = np.arange(len(flat_hashes), dtype=np.uint64) - np.repeat(starts, counts).astype(np.uint64)
        with np.errstate(over="ignore"):
            weighted = flat_hashes * ((pos * _KEY_MULT) | np.uint64(1))
            exact[nonempty] = np.add.reduceat(weighted, starts[nonempty]) ^ counts[nonempty].astype(np.uint64)
    return signatures_flat(grams, lengths, a, b, max_cells), counts > 0, exact


_KEY_MULT = np.uint64(0x9E3779B97F4A7C15)


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents x bands) uint64 bucket keys: a 64-bit mix of each band's ``rows`` values
    (vectorised; two documents share a key when their band values are equal)."""
    if sigs.shape[1] < bands * rows:
        raise ValueError(f"signature has {sigs.shape[1]} values, bands x rows needs {bands * rows}")
    keys = np.empty((sigs.shape[0], bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            h = np.full(sigs.shape[0], band + 1, dtype=np.uint64)
            for j in range(band * rows, (band + 1) * rows):
                h = (h ^ sigs[:, j].astype(np.uint64)) * _KEY_MULT
                h ^= h >> np.uint64(31)
            keys[:, band] = h
    return keys
