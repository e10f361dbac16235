"""Tokenize + best-fit packing: exactness on real text, and the bad inputs of the stage."""

from __future__ import annotations

import gzip
import json
import math
import random
import re
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from winnow.config import ConfigError
from winnow.document import Document
from winnow.packing import CapacityTree, best_fit_decreasing, split_into_chunks
from winnow.resume import ShardRef
from winnow.shards import ShardWriter
from winnow.stats import StageStats
from winnow.tasks.pack import PackConfig, check_pack, group_shards, pack, run_pack, tokenize
from winnow.tasks.pipeline import load_config
from winnow.tokenizer import TokenizerError, load_tokenizer

TEXT = Path(__file__).resolve().parents[2] / "data" / "text"


def real_docs(n: int = 300, seed: int = 0) -> list[Document]:
    """Paragraph runs of a real book, of widely varying lengths."""
    text = gzip.open(TEXT / "chesterton-thursday.txt.gz", "rt", encoding="utf-8").read()
    paras = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    rng = random.Random(seed)
    docs, i = [], 0
    while len(docs) < n and i < len(paras):
        k = rng.choice([1, 1, 2, 3, 8, 20])
        docs.append(Document(id=f"d{len(docs)}", text="\n\n".join(paras[i : i + k])))
        i += k
    return docs


def as_shards(docs, folder: Path, per_shard: int = 1000, key: str = "k") -> list[ShardRef]:
    """Documents as winnow document shards (what the pack stage reads)."""
    refs = []
    for k in range(0, max(1, len(docs)), per_shard):
        path = folder / "documents" / f"part-{k // per_shard:05d}.parquet"
        with ShardWriter(str(path)) as w:
            w.write_all(docs[k : k + per_shard])
        refs.append(ShardRef(str(path), f"{key}{k}", len(docs[k : k + per_shard])))
    return refs


def pack_to_dir(docs, tmp_path, per_shard: int = 1000, **cfg):
    pc = PackConfig(enabled=True, **cfg)
    return run_pack(as_shards(docs, tmp_path, per_shard), str(tmp_path / "packed"), pc), pc


def read_sequences(out_dir):
    rows = []
    for path in sorted(out_dir.glob("train-*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return rows


@pytest.mark.parametrize("strategy", ["best_fit", "concat"])
def test_round_trip_every_token_once_in_order(tmp_path, strategy):
    docs = real_docs()
    tok = load_tokenizer()
    L = 256
    manifest, _ = pack_to_dir(docs, tmp_path, seq_len=L, strategy=strategy, buffer_docs=97, sequences_per_shard=50)
    rows = read_sequences(tmp_path / "packed")
    assert len(rows) == manifest["sequences"] and len(manifest["shards"]) == math.ceil(len(rows) / 50)
    assert manifest["groups"] == 1
    assert all(len(r["input_ids"]) <= L for r in rows)
    assert all(sum(r["segment_lengths"]) == len(r["input_ids"]) for r in rows)
    assert manifest["padding_tokens"] == sum(L - len(r["input_ids"]) for r in rows)
    assert manifest["padding_fraction"] == round(manifest["padding_tokens"] / (len(rows) * L), 6)

    pieces = defaultdict(list)
    for r in rows:
        pos = 0
        for n, doc_id, part in zip(r["segment_lengths"], r["document_ids"], r["chunk_index"]):
            pieces[doc_id].append((part, r["input_ids"][pos : pos + n]))
            pos += n
    assert set(pieces) == {d.id for d in docs}
    truncated = 0
    for d in docs:
        parts = sorted(pieces[d.id])
        assert [p for p, _ in parts] == list(range(len(parts)))  # each chunk exactly once
        ids = [t for _, chunk in parts for t in chunk]
        assert ids[-1] == tok.eos_id and tok.decode(ids[:-1]) == d.text  # exact round trip
        n = len(ids)
        if strategy == "best_fit":
            assert len(parts) == max(1, math.ceil(n / L))  # split only when longer than L
            assert (len(parts) == 1) == (n <= L)
        truncated += len(parts) > 1
    assert manifest["truncated_documents"] == truncated
    assert manifest["tokens"] == sum(len(r["input_ids"]) for r in rows)


def test_best_fit_is_near_the_lower_bound_and_beats_concat_on_truncation(tmp_path):
    docs = real_docs(400, seed=3)
    bf, _ = pack_to_dir(docs, tmp_path / "bf", seq_len=512, strategy="best_fit")
    cc, _ = pack_to_dir(docs, tmp_path / "cc", seq_len=512, strategy="concat")
    assert bf["tokens"] == cc["tokens"]
    assert bf["sequences"] <= bf["lower_bound_sequences"] * 1.02
    docs_over_L = bf["truncated_documents"]
    assert cc["truncated_documents"] > docs_over_L  # concat also cuts documents that fit


def test_documents_of_exactly_L_and_L_plus_1_tokens():
    L = 8
    cfg = PackConfig(enabled=True, seq_len=L)
    docs = [("exact", list(range(8))), ("plus1", list(range(9))), ("small", [1, 2, 3])]
    stats = StageStats()
    seqs = list(pack(iter(docs), cfg, stats))
    segs = {(i, p): n for s in seqs for i, p, n in zip(s.document_ids, s.chunk_index, s.segment_lengths)}
    assert segs[("exact", 0)] == 8 and ("exact", 1) not in segs
    assert segs[("plus1", 0)] == 8 and segs[("plus1", 1)] == 1
    assert all(len(s.input_ids) <= L for s in seqs)
    assert stats.counters["documents_split"] == 1
    assert len(seqs) == 3  # ceil(20 / 8)


def test_empty_documents_are_dropped_and_counted():
    tok = load_tokenizer()
    stats = StageStats()
    out = list(tokenize([Document(id="a", text=""), Document(id="b", text="  \n"), Document(id="c", text="Hi.")],
                        tok, PackConfig(), stats))
    assert [i for i, _ in out] == ["c"] and stats.dropped_docs == {"empty_document": 2}


def test_bad_tokenizer_and_lengths(tmp_path):
    with pytest.raises(TokenizerError, match="not found"):
        load_tokenizer(str(tmp_path / "nope" / "tokenizer.json"))
    with pytest.raises(TokenizerError, match="cannot load tiktoken"):
        load_tokenizer("tiktoken:no_such_encoding")
    for bad in ("seq_len: 1", "seq_len: 4294967296"):
        path = tmp_path / "c.yaml"
        path.write_text(f"input: a\noutput: b\npack:\n  {bad}\n")
        with pytest.raises(ConfigError, match="pack.seq_len"):
            load_config(path)


def test_hf_tokenizer_json_trained_here(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    text = gzip.open(TEXT / "austen-persuasion.txt.gz", "rt", encoding="utf-8").read()
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(text.split("\n\n"), trainers.BpeTrainer(vocab_size=2000, special_tokens=["<unk>", "<s>", "</s>"]))
    tk.save(str(tmp_path / "tokenizer.json"))
    # Its own special tokens name EOS and BOS (tests/unit/core/test_tokenizer.py: the other sources).
    found = check_pack(PackConfig(tokenizer=str(tmp_path / "tokenizer.json"), add_bos=True))
    assert (found.eos_token, found.eos_id, found.bos_token, found.bos_id) == ("</s>", 2, "<s>", 1)
    cfg = dict(tokenizer=str(tmp_path / "tokenizer.json"), eos_token="</s>", bos_token="<s>", add_bos=True, seq_len=128)
    docs = real_docs(60)
    manifest, _ = pack_to_dir(docs, tmp_path, **cfg)
    assert manifest["tokenizer"].startswith("hf:") and manifest["eos_id"] == 2 and manifest["bos_id"] == 1
    rows = read_sequences(tmp_path / "packed")
    starts = [r["input_ids"][sum(r["segment_lengths"][:k])] for r in rows
              for k, part in enumerate(r["chunk_index"]) if part == 0]
    assert starts and all(s == 1 for s in starts)  # every document starts with BOS
    card = (tmp_path / "packed" / "__meta__" / "README.md").read_text()
    manifest_file = tmp_path / "packed" / "__meta__" / "manifest.json"
    assert "train-*.parquet" in card and json.loads(manifest_file.read_text())["seq_len"] == 128


def test_groups_pack_in_parallel_within_0_05_percent_of_the_bound(tmp_path):
    """Pack tasks over groups of shards: every document once, nothing <= L cut, and at most a
    partly filled sequence per group more than one task over everything."""
    docs = real_docs(900, seed=5) + [Document(id=f"w{d.id}", text=d.text[::-1]) for d in real_docs(900, seed=6)]
    one, _ = pack_to_dir(docs, tmp_path / "one", per_shard=100, seq_len=512)
    many, _ = pack_to_dir(docs, tmp_path / "many", per_shard=100, seq_len=512, documents_per_task=200)
    assert one["groups"] == 1 and many["groups"] == math.ceil(len(docs) / 200)
    assert many["tokens"] == one["tokens"] and many["documents"] == one["documents"] == len(docs)
    assert many["sequences"] - one["sequences"] <= many["groups"]
    assert many["sequences"] <= math.ceil(many["lower_bound_sequences"] * 1.0005) + many["groups"]
    rows = read_sequences(tmp_path / "many" / "packed")
    assert sorted({i for r in rows for i in r["document_ids"]}) == sorted(d.id for d in docs)
    n = math.ceil(len(docs) / 100)
    assert group_shards(as_shards(docs, tmp_path / "g", 100), 200) == [list(range(k, min(n, k + 2)))
                                                                        for k in range(0, n, 2)]


def test_rerun_with_same_inputs_is_skipped_and_a_change_is_redone(tmp_path):
    docs = real_docs(50)
    refs = as_shards(docs, tmp_path)
    pc = PackConfig(enabled=True, seq_len=256)
    first = run_pack(refs, str(tmp_path / "packed"), pc)
    files = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "packed").glob("train-*.parquet")}
    again = run_pack(refs, str(tmp_path / "packed"), pc)
    assert again["sequences"] == first["sequences"]
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "packed").glob("train-*.parquet")} == files
    # Other settings: the group is redone, and files of the old layout that are not in the new
    # manifest are removed.
    other = run_pack(refs, str(tmp_path / "packed"), PackConfig(enabled=True, seq_len=128, sequences_per_shard=7))
    names = sorted(p.name for p in (tmp_path / "packed").glob("train-*.parquet"))
    assert names == sorted(other["shards"]) and other["seq_len"] == 128 and len(names) > 1
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_capacity_tree_and_best_fit_choice():
    tree = CapacityTree(5000)
    for x in (3, 64, 65, 4095, 4999):
        tree.add(x)
    assert [tree.successor(q) for q in (0, 4, 64, 66, 4096, 5000 - 1)] == [3, 64, 64, 4095, 4999, 4999]
    tree.discard(4095)
    assert tree.successor(66) == 4999
    # Best fit puts the 3-token chunk into the bin with 3 free, not the one with 5 free.
    chunks = [c for i, n in enumerate([7, 5, 3]) for c in split_into_chunks(i, n, 10)]
    bins = best_fit_decreasing(chunks, 10)
    assert sorted(sorted(c.length for c in b.chunks) for b in bins) == [[3, 7], [5]]


def test_packed_output_loads_with_datasets(tmp_path, monkeypatch):
    for var, value in (("HF_DATASETS_OFFLINE", "1"), ("HF_HUB_OFFLINE", "1"), ("HF_HOME", str(tmp_path / "hf"))):
        monkeypatch.setenv(var, value)
    datasets = pytest.importorskip("datasets")
    manifest, _ = pack_to_dir(real_docs(80), tmp_path, seq_len=256, sequences_per_shard=20)
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "packed" / "train-*.parquet"), split="train")
    assert len(ds) == manifest["sequences"]
    assert ds.features["input_ids"].feature.dtype == "int32"
    assert sum(len(r) for r in ds["input_ids"]) == manifest["tokens"]
    # A folder read works too: the manifest and the card are `_` files, which readers skip.
    assert pq.read_table(tmp_path / "packed").num_rows == manifest["sequences"]


def test_megatron_files_round_trip_the_packed_sequences(tmp_path):
    from winnow.megatron import read_documents

    docs = real_docs(120)
    refs = as_shards(docs, tmp_path, per_shard=40)
    pc = PackConfig(enabled=True, seq_len=256, megatron=True, documents_per_task=80)
    manifest = run_pack(refs, str(tmp_path / "packed"), pc, megatron_dir=str(tmp_path / "megatron"))
    assert manifest["megatron"] == ["part-00000", "part-00001"]
    rows = []
    for g in range(2):
        rows += [r for r in read_sequences_of(tmp_path / "packed", g)]
        bins = list(read_documents(str(tmp_path / "megatron" / f"part-{g:05d}")))
        parquet = read_sequences_of(tmp_path / "packed", g)
        assert len(bins) == len(parquet)
        for segs, row in zip(bins, parquet):
            assert [int(t) for s in segs for t in s] == row["input_ids"]  # every token, in order
            assert [len(s) for s in segs] == row["segment_lengths"]
    assert len(rows) == manifest["sequences"]


def read_sequences_of(out_dir, group):
    rows = []
    for path in sorted(out_dir.glob(f"train-{group:05d}-*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return rows
