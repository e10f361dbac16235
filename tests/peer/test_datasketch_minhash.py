"""datasketch's own MinHash tests, run against winnow's batch signatures (winnow/minhash.py).

Ported from ekzhu/datasketch ``test/test_minhash.py`` at 8d4bda1 (the stored HEAD, version 1.10.0;
the installed datasketch is 2.0.0, whose default is the affine32 scheme winnow implements).
Inputs and expected outcomes are upstream's: ``MinHash(4, 1, hashfunc=fake_hash_func)`` (the
identity on integers) is winnow's ``permutations(4, 1)`` applied by ``signatures`` to the integers
as shingle hashes. winnow has no MinHash object: ``update`` / ``update_batch`` / ``bulk`` are the
signature of the values so far, ``merge`` / ``union`` the element-wise minimum, ``jaccard`` the
fraction of equal values (datasketch's definition), ``==`` equal seeds, sizes and values. Each
value is also checked against datasketch 2.0.0's affine32 MinHash itself. Object tests (pickle,
count, GPU mode, hashfunc kept by union, b-bit MinHash) have no counterpart and are not ported.
"""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import minhash

from winnow.minhash import EMPTY, permutations, signatures


def fake_hash_func(data):
    """Fake hash function that returns the input data unchanged (upstream's test/utils.py)."""
    return data


class Sig:
    """The signature winnow computes for the values given so far, with its parameters."""

    def __init__(self, num_perm: int = 128, seed: int = 1) -> None:
        self.num_perm, self.seed = num_perm, seed
        self.a, self.b = permutations(num_perm, seed)
        self.values: list[int] = []

    def update_batch(self, values) -> None:
        self.values += list(values)

    def update(self, value) -> None:
        self.update_batch([value])

    @property
    def hashvalues(self) -> np.ndarray:
        sig = signatures([np.array(self.values, dtype=np.uint32)], self.a, self.b)[0]
        ref = minhash.MinHash(self.num_perm, self.seed, hashfunc=fake_hash_func, scheme="affine32")
        ref.update_batch(self.values)
        assert np.array_equal(sig, ref.hashvalues)  # winnow equals datasketch's affine32 scheme
        return sig

    def jaccard(self, other: Sig) -> float:
        return float(np.mean(self.hashvalues == other.hashvalues))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Sig) and (self.seed, self.num_perm) == (other.seed, other.num_perm)
                and np.array_equal(self.hashvalues, other.hashvalues))


def merged(*sigs: Sig) -> np.ndarray:
    return np.minimum.reduce([s.hashvalues for s in sigs])


def test_init():
    m1, m2 = Sig(4, 1), Sig(4, 1)
    assert np.array_equal(m1.hashvalues, m2.hashvalues)
    assert np.array_equal(m1.a, m2.a) and np.array_equal(m1.b, m2.b)


def test_is_empty():
    assert (Sig().hashvalues == EMPTY).all()


def test_update():
    m1, m2 = Sig(4, 1), Sig(4, 1)
    m1.update(12)
    for i in range(4):
        assert m1.hashvalues[i] < m2.hashvalues[i]


def test_update_batch():
    m1, m2 = Sig(4, 1), Sig(4, 1)
    m1.update_batch([12, 24])
    for i in range(4):
        assert m1.hashvalues[i] < m2.hashvalues[i]

    m1 = Sig(4, 1)
    m1.update(12)
    m1.update(24)
    m2 = Sig(4, 1)
    m2.update_batch([12, 24])
    assert all(m1.hashvalues == m2.hashvalues)


def test_jaccard():
    m1, m2 = Sig(4, 1), Sig(4, 1)
    assert m1.jaccard(m2) == 1.0
    m2.update(12)
    assert m1.jaccard(m2) == 0.0
    m1.update(13)
    assert m1.jaccard(m2) < 1.0


def test_merge():
    m1, m2 = Sig(4, 1), Sig(4, 1)
    m2.update(12)
    assert np.array_equal(merged(m1, m2), m2.hashvalues)  # m1.merge(m2); m1.jaccard(m2) == 1.0


def test_union():
    m1, m2 = Sig(4, 1), Sig(4, 1)
    m2.update(12)
    u = Sig(4, 1)
    u.update_batch(m1.values + m2.values)
    assert u.jaccard(m2) == 1.0
    assert np.array_equal(u.hashvalues, merged(m1, m2))


def test_eq():
    m1, m2, m3, m4, m5 = Sig(4, 1), Sig(4, 1), Sig(4, 2), Sig(8, 1), Sig(4, 1)
    m1.update(11)
    m2.update(12)
    m3.update(11)
    m4.update(11)
    m5.update(11)
    assert m1 != m2
    assert m1 != m3
    assert m1 != m4
    assert m1 == m5

    m1.update(12)
    m2.update(11)
    assert m1 == m2


@pytest.mark.xfail(strict=True, reason="upstream's expected values at 8d4bda1 (datasketch 1.10) are the legacy "
                                       "scheme's ((a*h+b) mod 2^61-1); winnow implements affine32, datasketch "
                                       "2.0's default (checked in test_byte_tokens_affine32)")
def test_byte_tokens():
    from datasketch.hashfunc import sha1_hash32

    m = Sig(4, 1)
    m.values = [sha1_hash32(b"Hello")]  # MinHash(4, 1).update(b"Hello"): the default hashfunc
    assert m.hashvalues.tolist() == [734825475, 960773806, 359816889, 342714745]


def test_byte_tokens_affine32():
    from datasketch.hashfunc import sha1_hash32

    m = Sig(4, 1)
    m.values = [sha1_hash32(b"Hello")]
    ref = minhash.MinHash(4, 1)  # datasketch 2.0's default scheme
    ref.update(b"Hello")
    assert ref.scheme == "affine32"
    assert m.hashvalues.tolist() == ref.hashvalues.tolist()


def test_bulk():
    b = [[n * 4 for n in range(4)]] * 2
    m1 = Sig(4, 1)
    m1.update_batch(b[0])
    a, bb = permutations(4, 1)
    m2, m3 = signatures([np.array(x, dtype=np.uint32) for x in b], a, bb)  # MinHash.bulk(b, ...)
    assert np.array_equal(m1.hashvalues, m2)
    assert np.array_equal(m1.hashvalues, m3)
