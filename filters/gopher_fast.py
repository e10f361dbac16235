"""datatrove's Gopher repetition filter with its n-gram statistics computed on hashes.

datatrove builds every word n-gram as a string (" ".join for the top n-grams, "".join for the
duplicated n-grams, n = 2..10) and counts them in Python sets and Counters: about a quarter of
a shard's time in the end-to-end profile. Here each distinct word gets a polynomial string hash
once, and the hash of an n-gram's joined string is composed from its words' hashes with numpy
(H(st) = H(s) * B^len(t) + H(t)), so equal strings get equal keys, exactly as the string
comparison of the original sees them ("ab"+"c" and "a"+"bc" included). Two independent 31-bit
moduli make a false match of two different strings a ~1e-18 event per pair. The duplicated-n-gram
scan, whose skip-ahead is sequential, visits only positions whose key occurred before.

Rule order, thresholds, early exits and reasons are the original's; tests check the decisions
are identical on real and adversarial text.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from datatrove.pipeline.filters import GopherRepetitionFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates
from datatrove.utils.text import split_into_words

_P1, _P2 = 2_147_483_647, 2_147_483_629  # primes < 2^31: products fit in int64
# Base 2^32: a string's hash is its UTF-32 code units read as one big integer, reduced mod P
# (the reduction runs in C, which a per-character Python loop would not).
_B1, _B2 = 2**32 % _P1, 2**32 % _P2
_SPACE = ord(" ")
_MAX_WORD_CACHE = 1_000_000


@lru_cache(maxsize=4096)
def _powers(n: int) -> tuple[int, int]:
    return pow(_B1, n, _P1), pow(_B2, n, _P2)


def _string_hash(s: str) -> tuple[int, int, int, int]:
    """(h1, h2, B1^len mod P1, B2^len mod P2) of s over its code points."""
    v = int.from_bytes(s.encode("utf-32-be", "surrogatepass"), "big")
    return (v % _P1, v % _P2, *_powers(len(s)))


class FastGopherRepetitionFilter(GopherRepetitionFilter):
    """Same parameters and results as datatrove's GopherRepetitionFilter."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._word_hash: dict[str, tuple[int, int, int, int]] = {}

    def _word_arrays(self, words: list[str]):
        cache = self._word_hash
        if len(cache) > _MAX_WORD_CACHE:
            cache.clear()
        rows = []
        for w in words:
            r = cache.get(w)
            if r is None:
                r = cache[w] = _string_hash(w)
            rows.append(r)
        a = np.array(rows, dtype=np.int64).reshape(-1, 4)
        lengths = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
        return a[:, 0], a[:, 1], a[:, 2], a[:, 3], lengths

    def filter(self, doc):
        """datatrove's decision for one document: True, or (False, reason)."""
        text = doc.text
        if not text:
            return False, "empty"

        paragraphs = self.paragraph_exp.split(text.strip())
        paragraphs_duplicates, char_duplicates = find_duplicates(paragraphs)
        if self.dup_para_frac and paragraphs_duplicates / len(paragraphs) > self.dup_para_frac:
            return False, "dup_para_frac"
        if self.dup_para_char_frac and char_duplicates / len(text) > self.dup_para_char_frac:
            return False, "dup_para_char_frac"

        lines = self._line_splitter.split(text)
        line_duplicates, char_duplicates = find_duplicates(lines)
        if self.dup_line_frac and line_duplicates / len(lines) > self.dup_line_frac:
            return False, "dup_line_frac"
        if self.dup_line_char_frac and char_duplicates / len(text) > self.dup_line_char_frac:
            return False, "dup_line_char_frac"

        words = split_into_words(text, self.language)
        n_words = len(words)
        if n_words == 0:
            return True
        h1, h2, p1, p2, lengths = self._word_arrays(words)
        text_len = len(text)

        # Top n-grams: the strings " ".join(words[i:i+n]).
        top = dict(self.top_n_grams)
        for n, keys, glen in _ngram_keys(h1, h2, p1, p2, lengths, max(top, default=0), _SPACE):
            if n in top:
                _, first, counts = np.unique(keys, return_index=True, return_counts=True)
                best = counts.max()
                # Counter.most_common(1): the first n-gram (in text order) among the most frequent.
                idx = first[counts == best].min()
                if glen[idx] * best / text_len > top[n]:
                    return False, f"top_{n}_gram"

        # Duplicated n-grams: the strings "".join(words[i:i+n]), no separator.
        dup = dict(self.dup_n_grams)
        repeated = {n: _repeated_chars(keys, glen, n)
                    for n, keys, glen in _ngram_keys(h1, h2, p1, p2, lengths, max(dup, default=0), None) if n in dup}
        for n, n_frac in self.dup_n_grams:
            if repeated.get(n, 0) / text_len > n_frac:
                return False, f"duplicated_{n}_n_grams"
        return True


def _ngram_keys(h1, h2, p1, p2, lengths, max_n: int, sep: int | None):
    """Yield (n, keys, char lengths) of the joined strings of every word n-gram, n = 1..max_n,
    growing each hash by one word: H(s + sep + w) = (H(s) * B + sep) * B^len(w) + H(w)."""
    g1, g2, glen = h1, h2, lengths
    for n in range(1, max_n + 1):
        m = len(h1) - n + 1
        if m <= 0:
            return
        if n > 1:
            a1, a2 = (g1[:m], g2[:m]) if sep is None else ((g1[:m] * _B1 + sep) % _P1, (g2[:m] * _B2 + sep) % _P2)
            g1 = (a1 * p1[n - 1:] + h1[n - 1:]) % _P1
            g2 = (a2 * p2[n - 1:] + h2[n - 1:]) % _P2
            glen = glen[:m] + (0 if sep is None else 1) + lengths[n - 1:]
        yield n, (g1 << 31) | g2, glen


def _repeated_chars(keys: np.ndarray, glen: np.ndarray, n: int) -> int:
    """datatrove's find_all_duplicate on keys: a repeat is counted and jumped over (n words).

    Only positions whose key occurred earlier can be repeats; the scan visits those in order and
    adds the first occurrences between them in bulk."""
    m = len(keys)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    candidates = np.flatnonzero(first[inverse] != np.arange(m))
    if len(candidates) == 0:
        return 0
    key_list, len_list = keys.tolist(), glen.tolist()
    unique: set[int] = set()
    repeated = idx = 0
    for c in candidates.tolist():
        if c < idx:  # jumped over by an earlier repeat: never visited
            continue
        unique.update(key_list[idx:c])
        k = key_list[c]
        if k in unique:
            repeated += len_list[c]
            idx = c + n
        else:
            unique.add(k)
            idx = c + 1
    return repeated
