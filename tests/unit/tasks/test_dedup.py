"""MinHash near-dedup on real text with planted duplicates of known similarity."""

from __future__ import annotations

import gzip
import random
import re
from pathlib import Path

import numpy as np
import pytest

from winnow.document import Document
from winnow.minhash import WordHasher, permutations, shingle_hash32, shingle_hashes, signatures, words
from winnow.stage import StageError
from winnow.tasks.dedup.config import DedupConfig
from winnow.tasks.dedup.stage import dedup_in_process

TEXT = Path(__file__).resolve().parents[2] / "data" / "text"


def paragraphs(name: str) -> list[str]:
    text = gzip.open(TEXT / name, "rt", encoding="utf-8").read()
    text = re.sub(r"(?<!\n)\n(?!\n)", " ", text)
    return [p for p in re.split(r"\n\s*\n", text) if len(p.split()) >= 60]


def jaccard(a: str, b: str, n: int = 5) -> float:
    def sh(t):
        w = words(t)
        return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}
    x, y = sh(a), sh(b)
    return len(x & y) / len(x | y)


def edit(text: str, rng: random.Random, rate: float) -> str:
    w = text.split()
    for _ in range(max(1, int(len(w) * rate))):
        w[rng.randrange(len(w))] = rng.choice(["lorem", "ipsum", "dolor", "amet", "the", "and"])
    return " ".join(w)


def test_signatures_match_datasketch():
    from datasketch import MinHash

    a, b = permutations(112, seed=7)
    hasher = WordHasher()
    for text in paragraphs("austen-persuasion.txt.gz")[:5] + ["one two three", ""]:
        sig = signatures([shingle_hashes(text, 5, hasher)], a, b)[0]
        m = MinHash(num_perm=112, seed=7, scheme="affine32", hashfunc=shingle_hash32)
        w = words(text)
        for s in ([tuple(w[i : i + 5]) for i in range(len(w) - 4)] if len(w) >= 5 else ([tuple(w)] if w else [])):
            m.update(s)
        assert np.array_equal(sig, m.hashvalues.astype(np.uint32))


def test_planted_near_duplicates_across_shards(tmp_path):
    rng = random.Random(0)
    base = paragraphs("austen-persuasion.txt.gz")[:120] + paragraphs("chesterton-thursday.txt.gz")[:120]
    shards: list[list[Document]] = [[], [], []]
    truth_dup = []
    for i, text in enumerate(base):
        shards[i % 3].append(Document(id=f"orig{i}", text=text))
    for i in range(0, 240, 4):  # near-duplicates (about 0.9 Jaccard) in another shard
        near = edit(base[i], rng, 0.01)
        assert jaccard(base[i], near) >= 0.8
        shards[(i + 1) % 3].append(Document(id=f"near{i}", text=near))
        truth_dup.append(f"near{i}")
    for i in range(2, 240, 8):  # heavily edited: different documents
        far = edit(base[i], rng, 0.3)
        assert jaccard(base[i], far) < 0.5
        shards[(i + 2) % 3].append(Document(id=f"far{i}", text=far))
    kept, summary, stats = dedup_in_process(shards, str(tmp_path), DedupConfig(partitions=3))
    kept_ids = {d.id for s in kept for d in s}
    removed = {d.id for s in shards for d in s} - kept_ids
    # Each planted pair loses exactly one member: the later one in input (shard, row) order.
    position = {d.id: (k, r) for k, s in enumerate(shards) for r, d in enumerate(s)}
    expected = {max(f"orig{i}", f"near{i}", key=position.get) for i in range(0, 240, 4)}
    assert removed == expected
    assert stats.dropped_docs["near_duplicate"] == len(truth_dup) == summary["removed"]
    sizes = {d.id: d.annotations["dedup.cluster_size"] for s in kept for d in s}
    assert all(sizes[min(f"orig{i}", f"near{i}", key=position.get)] == 2 for i in range(0, 240, 4))
    assert all(sizes[f"far{i}"] == 1 for i in range(2, 240, 8))


def test_thousands_of_copies_in_many_shards_and_short_docs(tmp_path):
    text = paragraphs("chesterton-thursday.txt.gz")[3]
    shards = [[Document(id=f"s{k}-{j}", text=text) for j in range(500)] for k in range(5)]
    shards[2].append(Document(id="short-a", text="Hello there."))
    shards[4].append(Document(id="short-b", text="hello, THERE!"))  # same words after normalisation
    shards[3].append(Document(id="empty", text=""))
    shards[1].append(Document(id="unique", text=paragraphs("austen-persuasion.txt.gz")[0]))
    kept, summary, _ = dedup_in_process(shards, str(tmp_path), DedupConfig())
    kept_ids = [d.id for s in kept for d in s]
    assert sorted(kept_ids) == sorted(["s0-0", "short-a", "empty", "unique"])
    first = next(d for d in kept[0] if d.id == "s0-0")
    assert first.annotations["dedup.cluster_size"] == 2500
    assert summary["cluster_size_histogram"] == {2: 1, 2500: 1}


def test_rehydration_upsamples_by_cluster_size(tmp_path):
    paras = paragraphs("austen-persuasion.txt.gz")
    shards = [[Document(id="a1", text=paras[0]), Document(id="a2", text=paras[0]), Document(id="a3", text=paras[0]),
               Document(id="b", text=paras[1])]]
    kept, _, stats = dedup_in_process(shards, str(tmp_path), DedupConfig(upsample={2: 2, 10: 3}))
    ids = [d.id for d in kept[0]]
    assert ids == ["a1", "a1#copy1", "b"]
    assert stats.docs_out == 3 and stats.dropped_docs["near_duplicate"] == 2


def test_verification_rejects_bucket_collisions_below_threshold(tmp_path):
    rng = random.Random(4)
    paras = paragraphs("chesterton-thursday.txt.gz")
    base = paras[:150]
    variants = [edit(t, rng, 0.12) for t in base]  # Jaccard around 0.6-0.75: LSH lets some through
    js = [jaccard(a, b) for a, b in zip(base, variants)]
    assert max(js) < 0.8
    docs = [[Document(id=f"o{i}", text=t) for i, t in enumerate(base)] + [Document(id=f"v{i}", text=t) for i, t in enumerate(variants)]]
    _, loose, _ = dedup_in_process(docs, str(tmp_path / "loose"), DedupConfig(verify_threshold=None))
    _, strict, _ = dedup_in_process(docs, str(tmp_path / "strict"), DedupConfig(verify_threshold=0.8))
    assert loose["removed"] > 0  # buckets alone merge pairs below 0.8
    assert strict["removed"] < loose["removed"] / 3


def test_bad_dedup_config():
    with pytest.raises(ValueError):
        DedupConfig(upsample={0: 2})
    with pytest.raises(ValueError):
        DedupConfig(bands=0)


def test_incremental_dedup_against_an_earlier_run(tmp_path):
    rng = random.Random(2)
    paras = paragraphs("austen-persuasion.txt.gz")
    first = [[Document(id=f"a{i}", text=t) for i, t in enumerate(paras[:60])]]
    kept_a, _, _ = dedup_in_process(first, str(tmp_path / "run1"), DedupConfig(partitions=4))
    assert len(kept_a[0]) == 60
    # New crawl: 20 re-crawled near-copies of published documents, 20 new ones, one new pair.
    new = [Document(id=f"re{i}", text=edit(paras[i], rng, 0.01)) for i in range(20)]
    new += [Document(id=f"b{i}", text=paras[100 + i]) for i in range(20)]
    new += [Document(id="pair1", text=paras[200]), Document(id="pair2", text=edit(paras[200], rng, 0.01))]
    # The published run is the second index entry: index numbers are part of the ids.
    dedup_in_process([[Document(id="z", text=paras[300])]], str(tmp_path / "run0"), DedupConfig())
    kept_b, summary, stats = dedup_in_process([new[:21], new[21:]], str(tmp_path / "run2"),
                                              DedupConfig(index=[str(tmp_path / "run0"), str(tmp_path / "run1")]))
    kept_ids = {d.id for s in kept_b for d in s}
    assert kept_ids == {f"b{i}" for i in range(20)} | {"pair1"}
    assert summary["removed"] == 21 and stats.dropped_docs["near_duplicate"] == 21
    with pytest.raises(StageError, match="comparable"):
        dedup_in_process([new], str(tmp_path / "run3"), DedupConfig(index=[str(tmp_path / "run1")], rows=4, bands=28))


def test_work_items_are_typed_picklable_and_run_what_they_name(tmp_path):
    import pickle

    from winnow.stage import CorpusContext, LocalMapper
    from winnow.tasks.dedup.bands import BandWork
    from winnow.tasks.dedup.components import StarWork

    cfg = DedupConfig(enabled=True)
    items = [BandWork(0, 1, 2, 3, str(tmp_path), cfg, "key", None, [1, 2]), StarWork(1, 0, str(tmp_path), 2, 2)]
    for item in items:
        assert pickle.loads(pickle.dumps(item)) == item  # what a process or Dask worker receives
    assert [i.label() for i in items] == ["band 0 range 1", "round 1 part 0"]
    ctx = CorpusContext(str(tmp_path), {"anon": True}, LocalMapper())
    assert ctx.env.output == str(tmp_path) and ctx.env.storage_options == {"anon": True}
