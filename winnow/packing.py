"""Best-fit decreasing packing of token chunks into sequences of at most L tokens
("Fewer Truncations Improve Language Modeling", Ding et al. 2024), and the concat baseline.

Best-fit needs, for each chunk, the open bin with the smallest remaining capacity that still
fits it. Remaining capacities are integers in [0, L], so bins are grouped by capacity and a
64-ary bit tree over capacities answers "smallest capacity >= n that has a bin" in
O(log_64 L) word operations (2 levels for L <= 4096, 3 for L <= 262144): the segment-tree
search of the paper, with 64-way nodes, asked once per run of equal-length chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass(slots=True)
class Chunk:
    """A piece of at most L tokens of one document (documents longer than L are the only ones cut)."""
    doc: int  # index of the document in the input order
    part: int  # 0 for a document's first chunk, 1 for the next, ...
    start: int  # offset of the chunk in the document's token list
    length: int


@dataclass(slots=True)
class Bin:
    """One training sequence being filled."""
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
        """Mark capacity x as available."""
        for level in self.levels:
            w = x >> 6
            was_empty = level[w] == 0
            level[w] |= 1 << (x & 63)
            if not was_empty:
                return
            x = w

    def discard(self, x: int) -> None:
        """Mark capacity x as unavailable (no open bin has it any more)."""
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


def best_fit_decreasing_indices(lengths: list[int], seq_len: int) -> list[list[int]]:
    """Best-fit decreasing over chunk lengths (each in [1, seq_len]); returns, per bin, the
    indices of its chunks.

    Chunks are taken longest first (ties in input order) and each goes to the open bin with
    the smallest remaining capacity that fits it, exactly as item-by-item BFD. Equal-length
    chunks are placed in runs: a bin of remaining capacity c receives c // s chunks of length
    s in a row (after each, it is still the best fit), so the capacity tree is consulted once
    per (length, capacity) pair instead of once per chunk. Among bins of equal capacity the
    most recently touched one is used, which keeps the result deterministic.
    """
    buckets: list[list[int]] = [[] for _ in range(seq_len + 1)]
    for i, n in enumerate(lengths):
        buckets[n].append(i)
    bins: list[list[int]] = []
    stacks: dict[int, list[int]] = {}
    tree = CapacityTree(seq_len + 1)

    def push(b: int, cap: int) -> None:
        stack = stacks.get(cap)
        if stack is None:
            stacks[cap] = [b]
            tree.add(cap)
        else:
            stack.append(b)

    for size in range(seq_len, 0, -1):
        items = buckets[size]
        k, pos = len(items), 0
        while pos < k:
            cap = tree.successor(size)
            if cap is None:
                per_bin = seq_len // size
                while pos < k:
                    take = min(per_bin, k - pos)
                    bins.append(items[pos : pos + take])
                    pos += take
                    rest = seq_len - take * size
                    if rest:
                        push(len(bins) - 1, rest)
                break
            stack = stacks[cap]
            per_bin = cap // size
            while stack and pos < k:
                b = stack.pop()
                take = min(per_bin, k - pos)
                bins[b].extend(items[pos : pos + take])
                pos += take
                rest = cap - take * size
                if rest:
                    push(b, rest)
            if not stack:
                del stacks[cap]
                tree.discard(cap)
    return bins


def best_fit_decreasing(chunks: list[Chunk], seq_len: int) -> list[Bin]:
    """Pack chunks (each <= seq_len) into bins with best-fit decreasing."""
    out = []
    for idx in best_fit_decreasing_indices([c.length for c in chunks], seq_len):
        members = [chunks[i] for i in idx]
        out.append(Bin(members, sum(c.length for c in members)))
    return out


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
