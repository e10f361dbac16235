"""Best-fit decreasing packing of token chunks into sequences of at most L tokens
("Fewer Truncations Improve Language Modeling", Ding et al. 2024), and the concat baseline.

Best-fit needs, for each chunk, the open bin with the smallest remaining capacity that still
fits it. Remaining capacities are integers in [0, L], so bins are grouped by capacity and a
64-ary bit tree over capacities answers "smallest capacity >= n that has a bin" in
O(log_64 L) word operations (2 levels for L <= 4096, 3 for L <= 262144): the segment-tree
search of the paper, with 64-way nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass(slots=True)
class Chunk:
    doc: int  # index of the document in the input order
    part: int  # 0 for a document's first chunk, 1 for the next, ...
    start: int  # offset of the chunk in the document's token list
    length: int


@dataclass(slots=True)
class Bin:
    chunks: list[Chunk] = field(default_factory=list)
    used: int = 0


class CapacityTree:
    """Set of integers in [0, size) with insert, remove and successor (smallest >= x)."""

    def __init__(self, size: int) -> None:
        self.levels: list[list[int]] = []
        n = size
        while True:
            words = (n + 63) >> 6
            self.levels.append([0] * words)
            if words == 1:
                break
            n = words

    def add(self, x: int) -> None:
        for level in self.levels:
            w = x >> 6
            was_empty = level[w] == 0
            level[w] |= 1 << (x & 63)
            if not was_empty:
                return
            x = w

    def discard(self, x: int) -> None:
        for level in self.levels:
            w = x >> 6
            level[w] &= ~(1 << (x & 63))
            if level[w]:
                return
            x = w

    def successor(self, x: int) -> int | None:
        """Smallest member >= x, or None."""
        levels = self.levels
        depth = 0
        # Walk up until a word holds a member at or after the position.
        while depth < len(levels):
            level = levels[depth]
            w = x >> 6
            if w >= len(level):
                return None
            word = level[w] >> (x & 63)
            if word:
                x += (word & -word).bit_length() - 1
                break
            x = w + 1
            depth += 1
        else:
            return None
        # Walk down to the leaf: take the lowest member in each child word.
        while depth > 0:
            depth -= 1
            word = levels[depth][x]
            x = (x << 6) + (word & -word).bit_length() - 1
        return x


def split_into_chunks(doc_index: int, n_tokens: int, seq_len: int) -> list[Chunk]:
    """A document longer than L becomes ceil(n / L) chunks: the only truncation allowed."""
    return [Chunk(doc_index, k, s, min(seq_len, n_tokens - s))
            for k, s in enumerate(range(0, max(n_tokens, 1), seq_len))] if n_tokens else []


def best_fit_decreasing(chunks: list[Chunk], seq_len: int) -> list[Bin]:
    """Pack chunks (each <= seq_len) into as few bins as best-fit decreasing finds.

    Deterministic: chunks are taken longest first, ties in input order; among bins with the
    same remaining capacity the most recently opened one is used.
    """
    order = sorted(range(len(chunks)), key=lambda i: (-chunks[i].length, i))
    bins: list[Bin] = []
    by_capacity: dict[int, list[int]] = {}
    tree = CapacityTree(seq_len + 1)
    for i in order:
        c = chunks[i]
        n = c.length
        cap = tree.successor(n)
        if cap is None:
            b = len(bins)
            bins.append(Bin())
            rest = seq_len - n
        else:
            stack = by_capacity[cap]
            b = stack.pop()
            if not stack:
                tree.discard(cap)
            rest = cap - n
        target = bins[b]
        target.chunks.append(c)
        target.used += n
        if rest > 0:
            stack = by_capacity.get(rest)
            if stack:
                stack.append(b)
            else:
                by_capacity[rest] = [b]
                tree.add(rest)
    return bins


def concat_chunks(lengths: Iterable[int], seq_len: int) -> Iterator[Bin]:
    """The usual baseline: concatenate documents and cut every L tokens. A document that
    straddles a cut is truncated into pieces in different sequences."""
    current = Bin()
    for doc, n in enumerate(lengths):
        start, part = 0, 0
        while start < n:
            take = min(n - start, seq_len - current.used)
            current.chunks.append(Chunk(doc, part, start, take))
            current.used += take
            start += take
            part += 1
            if current.used == seq_len:
                yield current
                current = Bin()
    if current.used:
        yield current
