"""datatrove's Gopher repetition filter with its n-gram statistics computed on hashes.

datatrove builds every word n-gram as a string (" ".join for the top n-grams, "".join for the
duplicated n-grams, n = 2..10) and counts them in Python sets and Counters: about a quarter of
a shard's time in the end-to-end profile. Here each distinct word gets a polynomial string hash
once, and the hash of an n-gram's joined string is composed from its words' hashes with numpy
(H(st) = H(s) * B^len(t) + H(t)), so equal strings get equal keys, exactly as the string
comparison of the original sees them ("ab"+"c" and "a"+"bc" included).

Keys only propose; words decide. Two n-grams with equal keys count as the same string only once
their word sequences (or, where the words differ, their joined strings) are compared equal, and
an n whose keys turn out to merge different strings is counted by datatrove's own string code.
A hash collision, by chance or built on purpose (spam pages are where adversarial repetition
lives), can cost time but never changes a decision.

The hash: code points + 1 as digits (a leading NUL is a digit too, so "\\0a" and "a" differ) in
base 2^32, reduced modulo two primes near 3e9 (products fit uint64). 2^32 reduces to about 1.3e9
there, of multiplicative order above 1e8; the former moduli just under 2^31 made the base 2 and
38, where different short words collided by construction ("mmmmmmmmmm" and "gutreplsoi"). The
duplicated-n-gram scan, whose skip-ahead is sequential, visits only positions whose key occurred
before.

Rule order, thresholds, early exits and reasons are the original's (each ``top_n_grams`` and
``dup_n_grams`` entry is checked in the order given, the same n twice included); tests check
the decisions are identical on real and adversarial text.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from datatrove.pipeline.filters import GopherRepetitionFilter
from datatrove.pipeline.filters.gopher_repetition_filter import (
    find_all_duplicate,
    find_duplicates,
    find_top_duplicate,
    get_n_grams,
)
from datatrove.utils.text import split_into_words

# Primes below 2^32 (so a product of two residues fits uint64) where the base 2^32 is large.
_P1, _P2 = 3_036_998_537, 2_900_000_017
_B1, _B2 = 2**32 % _P1, 2**32 % _P2
_SPACE = ord(" ") + 1  # the separator as a digit (code point + 1, as every other character)
_MAX_WORD_CACHE = 1_000_000
_U64 = np.uint64
_B1_U, _B2_U, _P1_U, _P2_U = _U64(_B1), _U64(_B2), _U64(_P1), _U64(_P2)
_SHIFT = _U64(32)


@lru_cache(maxsize=4096)
def _length_terms(n: int) -> tuple[int, int, int, int]:
    """(B1^n, B2^n, 1 + B1 + ... + B1^(n-1), the same for B2), each modulo its prime: the
    geometric sum adds 1 to each of n base-2^32 digits."""
    out = []
    for p, b in ((_P1, _B1), (_P2, _B2)):
        out.append(pow(b, n, p))
    for p, b, bn in ((_P1, _B1, out[0]), (_P2, _B2, out[1])):
        out.append((bn - 1) * pow(b - 1, -1, p) % p)
    return out[0], out[1], out[2], out[3]


def _string_hash(s: str) -> tuple[int, int, int, int]:
    """(h1, h2, B1^len mod P1, B2^len mod P2) of s over its code points + 1."""
    # The string's UTF-32 units read as one big integer in base 2^32 (the reduction runs in C,
    # which a per-character Python loop would not); the geometric sum adds the +1 per digit.
    v = int.from_bytes(s.encode("utf-32-be", "surrogatepass"), "big")
    b1, b2, r1, r2 = _length_terms(len(s))
    return (v + r1) % _P1, (v + r2) % _P2, b1, b2


class FastGopherRepetitionFilter(GopherRepetitionFilter):
    """Same parameters and results as datatrove's GopherRepetitionFilter."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # word -> row of self._table: (h1, h2, B1^len, B2^len, len). Ids are distinct within a
        # document (the cache is only cleared between documents), so they also tell words apart.
        self._word_id: dict[str, int] = {}
        self._table = np.zeros((1024, 5), dtype=np.uint64)

    def _word_arrays(self, words: list[str]):
        ids_of = self._word_id
        if len(ids_of) > _MAX_WORD_CACHE:
            ids_of.clear()
        get = ids_of.get
        ids = [get(w) for w in words]
        if None in ids:
            first_new = len(ids_of)
            new: list[str] = []
            for k, w in enumerate(words):
                if ids[k] is None:
                    i = get(w)
                    if i is None:
                        i = ids_of[w] = len(ids_of)
                        new.append(w)
                    ids[k] = i
            need = len(ids_of)
            if need > len(self._table):
                grown = np.zeros((max(need, 2 * len(self._table)), 5), dtype=np.uint64)
                grown[:first_new] = self._table[:first_new]
                self._table = grown
            self._table[first_new:need] = [(*_string_hash(w), len(w)) for w in new]
        idx = np.array(ids, dtype=np.int64)
        rows = self._table[idx]
        return rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], idx, rows[:, 4].astype(np.int64)

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
        if not words:
            return True
        h1, h2, p1, p2, ids, lengths = self._word_arrays(words)
        text_len = len(text)
        grams = _Grams(words, h1, h2, p1, p2, ids, lengths)

        # Top n-grams: the strings " ".join(words[i:i+n]); None where there is none (skipped).
        top = {n: grams.top_chars(n) for n, _ in self.top_n_grams}
        for n, n_frac in self.top_n_grams:
            chars = top[n]
            if chars is not None and chars / text_len > n_frac:
                return False, f"top_{n}_gram"

        # Duplicated n-grams: the strings "".join(words[i:i+n]), no separator.
        repeated = {n: grams.repeated_chars(n) for n, _ in self.dup_n_grams}
        for n, n_frac in self.dup_n_grams:
            if repeated[n] / text_len > n_frac:
                return False, f"duplicated_{n}_n_grams"
        return True


class _Grams:
    """The n-gram keys of one document's words, per separator, grown one word at a time
    (H(s + sep + w) = (H(s) * B + sep) * B^len(w) + H(w)) from the last n computed."""

    def __init__(self, words, h1, h2, p1, p2, ids, lengths) -> None:
        self.words, self.ids = words, ids
        self.h1, self.h2, self.p1, self.p2, self.lengths = h1, h2, p1, p2, lengths
        self._last: dict[int | None, tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def _keys_of(self, n: int, sep: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(keys, char lengths) of the joined strings of every n-gram (1 <= n <= words)."""
        last = self._last.get(sep)
        if last is None or last[0] > n:
            g1, g2, glen, start = self.h1, self.h2, self.lengths, 1
        else:
            start, g1, g2, glen, keys = last
            if start == n:
                return keys, glen
        for k in range(start + 1, n + 1):
            m = len(self.h1) - k + 1
            if sep is None:
                a1, a2 = g1[:m], g2[:m]
            else:
                a1 = (g1[:m] * _B1_U + _U64(sep)) % _P1_U
                a2 = (g2[:m] * _B2_U + _U64(sep)) % _P2_U
            g1 = (a1 * self.p1[k - 1:] + self.h1[k - 1:]) % _P1_U
            g2 = (a2 * self.p2[k - 1:] + self.h2[k - 1:]) % _P2_U
            glen = glen[:m] + (0 if sep is None else 1) + self.lengths[k - 1:]
        keys = (g1 << _SHIFT) | g2
        self._last[sep] = (n, g1, g2, glen, keys)  # only the last n: memory stays a few arrays
        return keys, glen

    def _same_strings(self, n: int, joiner: str, pos: np.ndarray, ref: np.ndarray) -> bool:
        """Whether the n-grams at ``pos`` are the same strings as those at ``ref`` (pairs with
        equal keys): equal word ids settle it, else the joined strings are compared."""
        if len(pos) == 0:
            return True
        offsets = np.arange(n)
        ids = self.ids
        differ = np.flatnonzero((ids[pos[:, None] + offsets] != ids[ref[:, None] + offsets]).any(axis=1))
        words = self.words
        for i in differ.tolist():  # "ab"+"c" against "a"+"bc", or a hash collision
            a, b = int(pos[i]), int(ref[i])
            if joiner.join(words[a:a + n]) != joiner.join(words[b:b + n]):
                return False
        return True

    def top_chars(self, n: int) -> int | None:
        """datatrove's find_top_duplicate of the " "-joined n-grams: length x count of the most
        frequent (the first in text order among ties), None when there is no n-gram."""
        if n < 1 or n > len(self.words):
            grams = get_n_grams(self.words, n)
            return find_top_duplicate(grams) if grams else None
        keys, glen = self._keys_of(n, _SPACE)
        _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
        best = int(counts.max())
        if best > 1:
            pos = np.flatnonzero(counts[inverse] == best)
            if not self._same_strings(n, " ", pos, first[inverse[pos]]):
                return find_top_duplicate(get_n_grams(self.words, n))
        # Counter.most_common(1): the first n-gram (in text order) among the most frequent.
        idx = first[counts == best].min()
        return int(glen[idx]) * best

    def repeated_chars(self, n: int) -> int:
        """datatrove's find_all_duplicate on keys: a repeat is counted and jumped over (n words).

        Only positions whose key occurred earlier can be repeats; the scan visits those in order
        and adds the first occurrences between them in bulk."""
        if n < 1 or n > len(self.words):
            return find_all_duplicate(self.words, n)
        keys, glen = self._keys_of(n, None)
        m = len(keys)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        ref = first[inverse]
        candidates = np.flatnonzero(ref != np.arange(m))
        if len(candidates) == 0:
            return 0
        if not self._same_strings(n, "", candidates, ref[candidates]):
            return find_all_duplicate(self.words, n)
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
