"""Node labels and partitions of the connected-components rounds: ``mix64``, a bijection of
uint64 whose order looks random, so no id order is an adversarial labelling, and partitions
that come out even whatever the labels."""

from __future__ import annotations

import numpy as np

_M64 = 1 << 64
_C1, _C2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB  # splitmix64's finaliser (Stafford's mix 13)
_C1_INV, _C2_INV = pow(_C1, -1, _M64), pow(_C2, -1, _M64)
_PART_SALT = np.uint64(0x9E3779B97F4A7C15)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 whose outputs look uniformly random. Node
    labels (so that no id order is an adversarial labelling) and, salted, partitions."""
    z = np.array(x, dtype=np.uint64)  # a copy, mixed in place: one temporary at a time
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(_C1)
        z ^= z >> np.uint64(27)
        z *= np.uint64(_C2)
        z ^= z >> np.uint64(31)
    return z


def unmix64(h: np.ndarray) -> np.ndarray:
    """Inverse of :func:`mix64`: labels back to document ids."""
    z = np.asarray(h, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z ^ (z >> np.uint64(31)) ^ (z >> np.uint64(62))
        z = z * np.uint64(_C2_INV)
        z = z ^ (z >> np.uint64(27)) ^ (z >> np.uint64(54))
        z = z * np.uint64(_C1_INV)
        return z ^ (z >> np.uint64(30)) ^ (z >> np.uint64(60))


def partition_of(labels: np.ndarray, n_parts: int) -> np.ndarray:
    """Partition of each node label. Salted and re-mixed, so it is independent of label order:
    star centres have the smallest labels and would otherwise crowd the low partitions."""
    if not 1 <= n_parts < 1 << 31:
        raise ValueError(f"n_parts must be in [1, 2^31), got {n_parts}")
    h = mix64(np.asarray(labels, dtype=np.uint64) ^ _PART_SALT)
    h >>= np.uint64(32)
    h *= np.uint64(n_parts)
    h >>= np.uint64(32)
    return h.astype(np.int32)
