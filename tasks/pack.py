"""Tokenize + pack stage: curated documents -> fixed-length training sequences in sharded Parquet.

Documents are tokenized in batches (EOS appended by default), split into chunks of at most L
tokens only when longer than L, and packed per buffer of documents with best-fit decreasing
(or the concat baseline). Sequences are shuffled within each buffer with a seeded RNG, so
the output is deterministic for a given config and input.
"""

from __future__ import annotations

import json
import posixpath
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from winnow.config import PackConfig
from winnow.document import Document
from winnow.packing import Bin, best_fit_decreasing, concat_chunks, split_into_chunks
from winnow.shardio import _atomic_put, _fs, join, write_bytes_atomic
from winnow.stats import StageStats
from winnow.tokenizer import Tokenizer, TokenizerError, load_tokenizer

STAGE = "pack"
PACKED_DIR = "packed"
MANIFEST = "manifest.json"

SEQUENCE_SCHEMA = pa.schema([
    pa.field("input_ids", pa.list_(pa.int32()), nullable=False),
    # One entry per document segment in the sequence, in order: reset positions / mask
    # attention at these boundaries. sum(segment_lengths) == len(input_ids).
    pa.field("segment_lengths", pa.list_(pa.int32()), nullable=False),
    pa.field("document_ids", pa.list_(pa.string()), nullable=False),
    # 0 for a document's first (or only) chunk; k for the k-th continuation of a document > L.
    pa.field("chunk_index", pa.list_(pa.int32()), nullable=False),
])


def check_pack(cfg: PackConfig) -> Tokenizer:
    tok = load_tokenizer(cfg.tokenizer, cfg.eos_token, cfg.bos_token)
    if cfg.add_eos and tok.eos_id is None:
        raise TokenizerError(f"{tok.name} has no EOS token: set pack.eos_token, or pack.add_eos: false")
    if cfg.add_bos and tok.bos_id is None:
        raise TokenizerError(f"{tok.name} has no BOS token: set pack.bos_token, or pack.add_bos: false")
    return tok


def tokenize(docs: Iterable[Document], tok: Tokenizer, cfg: PackConfig, stats: StageStats,
             batch_size: int = 512) -> Iterator[tuple[str, list[int]]]:
    """(document id, token ids) per document; empty documents are dropped (no tokens)."""
    prefix = [tok.bos_id] if cfg.add_bos else []
    suffix = [tok.eos_id] if cfg.add_eos else []
    batch: list[Document] = []

    def flush() -> Iterator[tuple[str, list[int]]]:
        for doc, ids in zip(batch, tok.encode_batch([d.text for d in batch])):
            yield doc.id, prefix + ids + suffix
        batch.clear()

    for doc in docs:
        n = doc.n_bytes
        stats.take_in(n)
        if not doc.text.strip():
            stats.drop("empty_document", n)
            continue
        stats.keep(n)
        batch.append(doc)
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()


@dataclass
class Sequence:
    input_ids: list[int]
    segment_lengths: list[int]
    document_ids: list[str]
    chunk_index: list[int]


def _materialise(bins: Iterable[Bin], ids: list[str], tokens: list[list[int]]) -> list[Sequence]:
    out = []
    for b in bins:
        # Within a sequence, segments keep the input order of documents (and chunks).
        segs = sorted(b.chunks, key=lambda c: (c.doc, c.part))
        flat: list[int] = []
        for c in segs:
            flat.extend(tokens[c.doc][c.start : c.start + c.length])
        out.append(Sequence(flat, [c.length for c in segs], [ids[c.doc] for c in segs], [c.part for c in segs]))
    return out


def pack(token_docs: Iterable[tuple[str, list[int]]], cfg: PackConfig, stats: StageStats) -> Iterator[Sequence]:
    """Pack per buffer of ``cfg.buffer_docs`` documents; yield shuffled sequences."""
    L = cfg.seq_len
    buffer_no = 0
    ids: list[str] = []
    tokens: list[list[int]] = []

    def flush() -> list[Sequence]:
        nonlocal buffer_no
        lengths = [len(t) for t in tokens]
        stats.counters["tokens"] += sum(lengths)
        stats.counters["documents"] += len(lengths)
        if cfg.strategy == "best_fit":
            chunks = [c for d, n in enumerate(lengths) for c in split_into_chunks(d, n, L)]
            stats.counters["documents_split"] += sum(1 for n in lengths if n > L)
            bins = best_fit_decreasing(chunks, L)
        else:
            bins = list(concat_chunks(lengths, L))
            split = {c.doc for b in bins for c in b.chunks if c.part > 0}
            stats.counters["documents_split"] += len(split)
        seqs = _materialise(bins, ids, tokens)
        random.Random(f"{cfg.seed}:{buffer_no}").shuffle(seqs)
        buffer_no += 1
        ids.clear()
        tokens.clear()
        return seqs

    for doc_id, toks in token_docs:
        ids.append(doc_id)
        tokens.append(toks)
        if len(ids) >= cfg.buffer_docs:
            yield from _count(flush(), stats, L)
    if ids:
        yield from _count(flush(), stats, L)


def _count(seqs: list[Sequence], stats: StageStats, L: int) -> Iterator[Sequence]:
    for s in seqs:
        stats.counters["sequences"] += 1
        stats.counters["padding_tokens"] += L - len(s.input_ids)
        yield s


class SequenceWriter:
    """Writes sequences into shards under a hidden temp folder; ``finish`` renames them to
    ``train-XXXXX-of-NNNNN.parquet`` (NN is only known at the end) and writes the manifest
    last, which marks the stage as done."""

    def __init__(self, out_dir: str, storage_options: dict[str, Any] | None, per_shard: int) -> None:
        self.out_dir = out_dir
        self.so = storage_options
        self.fs, self._root = _fs(out_dir, storage_options)
        self._tmp = posixpath.join(self._root, f".tmp-{int(time.time() * 1000)}")
        self.fs.makedirs(self._tmp, exist_ok=True)
        self.per_shard = per_shard
        self.shards: list[str] = []
        self._buf: list[Sequence] = []

    def write(self, seq: Sequence) -> None:
        self._buf.append(seq)
        if len(self._buf) >= self.per_shard:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        table = pa.Table.from_pydict({
            "input_ids": [s.input_ids for s in self._buf],
            "segment_lengths": [s.segment_lengths for s in self._buf],
            "document_ids": [s.document_ids for s in self._buf],
            "chunk_index": [s.chunk_index for s in self._buf],
        }, schema=SEQUENCE_SCHEMA)
        path = posixpath.join(self._tmp, f"{len(self.shards):05d}.parquet")
        with self.fs.open(path, "wb") as fh:
            pq.write_table(table, fh, compression="zstd", row_group_size=2048)
        self.shards.append(path)
        self._buf = []

    def finish(self, manifest: dict[str, Any]) -> list[str]:
        self._flush()
        total = len(self.shards)
        final = []
        for k, path in enumerate(self.shards):
            name = f"train-{k:05d}-of-{total:05d}.parquet"
            _atomic_put(self.fs, path, posixpath.join(self._root, name))
            final.append(name)
        try:
            self.fs.rm(self._tmp, recursive=True)
        except FileNotFoundError:
            pass
        manifest["shards"] = final
        write_bytes_atomic(join(self.out_dir, "README.md"), dataset_card(manifest).encode(), self.so)
        write_bytes_atomic(join(self.out_dir, MANIFEST), json.dumps(manifest, indent=1).encode(), self.so)
        return final


def read_manifest(out_dir: str, storage_options: dict[str, Any] | None) -> dict[str, Any] | None:
    fs, path = _fs(join(out_dir, MANIFEST), storage_options)
    try:
        with fs.open(path, "rb") as fh:
            return json.loads(fh.read())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def run_pack(doc_shards: list[str], out_dir: str, cfg: PackConfig, storage_options: dict[str, Any] | None,
             read_docs, input_key: str = "") -> dict[str, Any]:
    """Tokenize and pack the documents of ``doc_shards`` (in order) into ``out_dir``.

    ``input_key`` identifies the input state (e.g. shard names and row counts): a manifest
    with the same key and settings means the work is done and is returned as is.
    """
    done = read_manifest(out_dir, storage_options)
    settings = cfg.model_dump(mode="json")
    if done and done.get("input_key") == input_key and done.get("settings") == settings:
        return {**done, "skipped": True}
    tok = check_pack(cfg)
    stats = StageStats()
    started = time.perf_counter()
    # Stale temp folders of a crashed run are never listed: only manifest-named shards count.
    writer = SequenceWriter(out_dir, storage_options, cfg.sequences_per_shard)

    def all_docs() -> Iterator[Document]:
        for path in doc_shards:
            yield from read_docs(path)

    for seq in pack(tokenize(all_docs(), tok, cfg, stats), cfg, stats):
        writer.write(seq)
    c = stats.counters
    capacity = c["sequences"] * cfg.seq_len
    stats.seconds = time.perf_counter() - started
    manifest = {
        "tokenizer": tok.name,
        "vocab_size": tok.vocab_size,
        "eos_id": tok.eos_id if cfg.add_eos else None,
        "bos_id": tok.bos_id if cfg.add_bos else None,
        "seq_len": cfg.seq_len,
        "strategy": cfg.strategy,
        "buffer_docs": cfg.buffer_docs,
        "seed": cfg.seed,
        "documents": c["documents"],
        "tokens": c["tokens"],
        "sequences": c["sequences"],
        "lower_bound_sequences": -(-c["tokens"] // cfg.seq_len),
        "padding_tokens": c["padding_tokens"],
        "padding_fraction": round(c["padding_tokens"] / capacity, 6) if capacity else 0.0,
        "truncated_documents": c["documents_split"],
        "empty_documents_dropped": stats.dropped_docs.get("empty_document", 0),
        "inputs": doc_shards,
        "input_key": input_key,
        "settings": settings,
        "created": datetime.now(timezone.utc).isoformat(),
        "stats": stats.to_dict(),
    }
    writer.finish(manifest)
    return manifest


def dataset_card(m: dict[str, Any]) -> str:
    return f"""---
configs:
- config_name: default
  data_files: "train-*.parquet"
---
# Packed pretraining sequences (winnow)

| | |
|---|---|
| tokenizer | `{m['tokenizer']}` (vocab {m['vocab_size']:,}; EOS id {m['eos_id']}, BOS id {m['bos_id']}) |
| sequence length L | {m['seq_len']:,} |
| packing | {m['strategy']} (buffer {m['buffer_docs']:,} documents, shuffle seed {m['seed']}) |
| documents | {m['documents']:,} ({m['truncated_documents']:,} longer than L / cut, split into chunks of at most L) |
| tokens | {m['tokens']:,} |
| sequences | {m['sequences']:,} (lower bound ceil(tokens/L) = {m['lower_bound_sequences']:,}) |
| padding | {m['padding_tokens']:,} tokens = {100 * m['padding_fraction']:.3f}% of sequences x L |

Columns: `input_ids` (list<int32>, length <= L, not padded), `segment_lengths` (tokens of each
document segment, in order; they sum to len(input_ids)), `document_ids`, `chunk_index`
(0 = a document's first chunk). Reset positions and mask attention across segment boundaries
to keep documents from attending to each other.

```python
from datasets import load_dataset
ds = load_dataset("parquet", data_files="train-*.parquet", split="train")
```
"""
